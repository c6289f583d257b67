"""The entity rule table: which system owns what, as data.

One row per entity of DESIGN.md's rule table. The sync code asks this table ("may SSM create a
contact?", "does a Sage deletion of a product reach SSM?") instead of hard-coding answers, and
`validate_rules` checks the table's own consistency at import. Where each entity lives in a Sage
product (tables, filters, keys) is that product's source adapter's business (`agent.sources`),
never this table's.
"""
from __future__ import annotations

from dataclasses import dataclass
from enum import Enum

from shared.models import Entity


class Side(str, Enum):
    SAGE = "sage"
    SSM = "ssm"


class Direction(str, Enum):
    SAGE_TO_SSM = "sage_to_ssm"
    SSM_TO_SAGE = "ssm_to_sage"
    BOTH = "both"


class DeletePolicy(str, Enum):
    SOFT_DELETE_IN_SSM = "soft_delete_in_ssm"   # Sage deletion → SSM `DELETE` (soft)
    NOT_AVAILABLE_IN_SSM = "not_available"      # kept, flagged unavailable
    NEVER = "never"                             # deletions do not propagate


@dataclass(frozen=True)
class EntityRule:
    entity: Entity
    ssm_resource: str
    direction: Direction
    creates_in: frozenset[Side]
    updates_in: frozenset[Side]
    deletes_in: frozenset[Side]
    sage_delete: DeletePolicy
    ssm_delete_reaches_sage: bool
    ssm_read_only: bool
    depends_on: tuple[Entity, ...] = ()
    three_way_merge: bool = False
    created_on_admin_choice: bool = False   # a paid SSM licence: created only when an administrator chooses
    on_demand: bool = False

    def may_create(self, side: Side) -> bool:
        return side in self.creates_in

    def may_update(self, side: Side) -> bool:
        return side in self.updates_in

    def may_delete(self, side: Side) -> bool:
        return side in self.deletes_in


S, M = Side.SAGE, Side.SSM
_sage_only = frozenset({S})
_both = frozenset({S, M})

RULES: tuple[EntityRule, ...] = (
    EntityRule(Entity.USER, "users", Direction.SAGE_TO_SSM,
               _sage_only, _sage_only, frozenset(), DeletePolicy.NEVER, False, False,
               created_on_admin_choice=True),
    EntityRule(Entity.ACCOUNT, "accounts", Direction.BOTH,
               _both, _both, _sage_only, DeletePolicy.SOFT_DELETE_IN_SSM, False, False,
               depends_on=(Entity.USER,), three_way_merge=True),
    EntityRule(Entity.CONTACT, "contacts", Direction.BOTH,
               _both, _both, _sage_only, DeletePolicy.SOFT_DELETE_IN_SSM, False, False,
               depends_on=(Entity.ACCOUNT,), three_way_merge=True),
    EntityRule(Entity.PRODUCT_FAMILY, "productFamilies", Direction.SAGE_TO_SSM,
               _sage_only, _sage_only, _sage_only, DeletePolicy.NOT_AVAILABLE_IN_SSM, False, True),
    EntityRule(Entity.PRODUCT, "products", Direction.SAGE_TO_SSM,
               _sage_only, _sage_only, _sage_only, DeletePolicy.SOFT_DELETE_IN_SSM, False, True,
               depends_on=(Entity.PRODUCT_FAMILY,)),
    EntityRule(Entity.QUOTE, "salesorders",
               Direction.SSM_TO_SAGE, frozenset({M}), _both, _sage_only,
               DeletePolicy.SOFT_DELETE_IN_SSM, False, False,
               depends_on=(Entity.ACCOUNT, Entity.PRODUCT, Entity.USER), on_demand=True),
    EntityRule(Entity.ORDER, "salesorders",
               Direction.SAGE_TO_SSM, _sage_only, _sage_only, _sage_only,
               DeletePolicy.SOFT_DELETE_IN_SSM, False, True,
               depends_on=(Entity.ACCOUNT, Entity.PRODUCT, Entity.USER)),
    EntityRule(Entity.INVOICE, "salesorders",
               Direction.SAGE_TO_SSM, _sage_only, _sage_only, _sage_only,
               DeletePolicy.SOFT_DELETE_IN_SSM, False, True,
               depends_on=(Entity.ACCOUNT, Entity.PRODUCT, Entity.USER)),
    EntityRule(Entity.DELIVERY_ADDRESS, "accountAddresses", Direction.SAGE_TO_SSM,
               _sage_only, _sage_only, _sage_only, DeletePolicy.SOFT_DELETE_IN_SSM, False, True,
               depends_on=(Entity.ACCOUNT,)),
)

RULE_BY_ENTITY: dict[Entity, EntityRule] = {rule.entity: rule for rule in RULES}

# Clients and prospects are one Sage record kind and one SSM resource; their rules differ by kind.
CLIENT_IS_READ_ONLY_IN_SSM = True
PROSPECT_CONVERSION_ONLY_IN_SAGE = True


def rule_for(entity: Entity | str) -> EntityRule:
    return RULE_BY_ENTITY[Entity(entity)]


def sync_order(rules: tuple[EntityRule, ...] = RULES) -> list[Entity]:
    """Entities in an order where every dependency comes before its dependents."""
    by_entity = {rule.entity: rule for rule in rules}
    done: list[Entity] = []
    pending = [rule.entity for rule in rules]
    while pending:
        progressed = False
        for entity in list(pending):
            if all(dep in done for dep in by_entity[entity].depends_on):
                done.append(entity)
                pending.remove(entity)
                progressed = True
        if not progressed:
            raise ValueError(f"dependency cycle among {pending}")
    return done


def validate_rules(rules: tuple[EntityRule, ...] = RULES) -> None:
    """Raise ValueError when the table contradicts itself."""
    seen = set()
    for rule in rules:
        if rule.entity in seen:
            raise ValueError(f"{rule.entity.value}: two rules")
        seen.add(rule.entity)
        if rule.direction is Direction.SAGE_TO_SSM and (M in rule.creates_in or M in rule.deletes_in):
            raise ValueError(f"{rule.entity.value}: Sage-owned but SSM may create or delete")
        if rule.direction is Direction.SAGE_TO_SSM and rule.updates_in != _sage_only:
            raise ValueError(f"{rule.entity.value}: Sage-owned but updated in SSM")
        if rule.ssm_delete_reaches_sage and M not in rule.deletes_in:
            raise ValueError(f"{rule.entity.value}: SSM deletion reaches Sage but SSM may not delete")
        if rule.three_way_merge and rule.direction is not Direction.BOTH:
            raise ValueError(f"{rule.entity.value}: 3-way merge on a one-way entity")
        if rule.ssm_read_only and rule.direction is not Direction.SAGE_TO_SSM:
            raise ValueError(f"{rule.entity.value}: read-only in SSM yet edited there")
        for dep in rule.depends_on:
            if dep not in {r.entity for r in rules}:
                raise ValueError(f"{rule.entity.value}: depends on unknown {dep}")
    missing = set(Entity) - seen
    if missing:
        raise ValueError(f"no rule for {sorted(e.value for e in missing)}")
    sync_order(rules)


validate_rules()
