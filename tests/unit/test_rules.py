"""The entity rule table says what DESIGN.md's rule table says, one test per entity."""
from __future__ import annotations

import dataclasses

import pytest

from shared.models import Entity
from shared.rules import (RULES, DeletePolicy, Direction, Side, rule_for, sync_order, validate_rules)

S, M = Side.SAGE, Side.SSM

# entity: (SSM resource, direction, creates in, deletes in, Sage deletion, read-only in SSM)
EXPECTED = {
    Entity.USER: ("users", Direction.SAGE_TO_SSM, {S}, set(), DeletePolicy.NEVER, False),
    Entity.ACCOUNT: ("accounts", Direction.BOTH, {S, M}, {S}, DeletePolicy.SOFT_DELETE_IN_SSM, False),
    Entity.CONTACT: ("contacts", Direction.BOTH, {S, M}, {S}, DeletePolicy.SOFT_DELETE_IN_SSM, False),
    Entity.PRODUCT_FAMILY: ("productFamilies", Direction.SAGE_TO_SSM, {S}, {S},
                            DeletePolicy.NOT_AVAILABLE_IN_SSM, True),
    Entity.PRODUCT: ("products", Direction.SAGE_TO_SSM, {S}, {S}, DeletePolicy.SOFT_DELETE_IN_SSM, True),
    Entity.QUOTE: ("salesorders", Direction.SSM_TO_SAGE, {M}, {S}, DeletePolicy.SOFT_DELETE_IN_SSM, False),
    Entity.ORDER: ("salesorders", Direction.SAGE_TO_SSM, {S}, {S}, DeletePolicy.SOFT_DELETE_IN_SSM, True),
    Entity.INVOICE: ("salesorders", Direction.SAGE_TO_SSM, {S}, {S}, DeletePolicy.SOFT_DELETE_IN_SSM, True),
    Entity.DELIVERY_ADDRESS: ("accountAddresses", Direction.SAGE_TO_SSM, {S}, {S},
                              DeletePolicy.SOFT_DELETE_IN_SSM, True),
}


@pytest.mark.parametrize("entity", list(Entity), ids=lambda e: e.value)
def test_rule_matches_the_design(entity):
    resource, direction, creates, deletes, sage_delete, read_only = EXPECTED[entity]
    rule = rule_for(entity)
    assert rule.ssm_resource == resource
    assert rule.direction is direction
    assert set(rule.creates_in) == creates
    assert set(rule.deletes_in) == deletes
    assert rule.sage_delete is sage_delete
    assert rule.ssm_read_only is read_only
    assert rule.ssm_delete_reaches_sage is False, "an SSM deletion never reaches Sage"
    assert rule.three_way_merge is (direction is Direction.BOTH)
    for dependency in rule.depends_on:
        assert sync_order().index(dependency) < sync_order().index(entity)


def test_users_are_created_only_on_the_first_load():
    assert rule_for(Entity.USER).created_on_admin_choice
    assert not any(r.created_on_admin_choice for r in RULES if r.entity is not Entity.USER)


def test_quotes_are_on_demand():
    assert rule_for(Entity.QUOTE).on_demand


@pytest.mark.parametrize("change, message", [
    (lambda r: dataclasses.replace(r, creates_in=frozenset({S, M})) if r.entity is Entity.PRODUCT else r,
     "Sage-owned but SSM may create"),
    (lambda r: dataclasses.replace(r, three_way_merge=True) if r.entity is Entity.ORDER else r, "3-way merge"),
    (lambda r: dataclasses.replace(r, depends_on=(Entity.CONTACT,)) if r.entity is Entity.ACCOUNT else r,
     "dependency cycle"),
    (lambda r: dataclasses.replace(r, ssm_delete_reaches_sage=True) if r.entity is Entity.CONTACT else r,
     "SSM may not delete"),
])
def test_a_contradictory_table_is_refused(change, message):
    with pytest.raises(ValueError, match=message):
        validate_rules(tuple(change(r) for r in RULES))


def test_a_missing_entity_is_refused():
    with pytest.raises(ValueError, match="no rule for"):
        validate_rules(tuple(r for r in RULES if r.entity is not Entity.INVOICE))
