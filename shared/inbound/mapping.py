"""The SSM → Sage field mapping, as data: the inverse of `shared.sync.mapping` for the entities
SSM users edit (prospects and contacts).

Each `InboundMapping` says which SSM fields a change is read from (`tracked`, the names the
link's base holds), which of them carry a canonical field to Sage (`to_sage`, SSM field →
canonical name), and the fields only the connector manages (`kept`: changed in SSM, they stay in
SSM and never reach Sage; `sage_only`: Sage's alone, an SSM change is undone). A value
`mapping.MISSING_NAME` ("-", the connector's own filler) means "no value" on the way back.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from shared.models import Entity
from shared.sync import mapping
from shared.sync.merge import normalise, reference_id


@dataclass(frozen=True)
class InboundMapping:
    entity: str
    mapper: mapping.Mapper
    to_sage: dict[str, str]                 # SSM field → canonical field written to Sage
    kept: frozenset[str] = frozenset()
    sage_only: frozenset[str] = frozenset()

    @property
    def resource(self) -> str:
        return self.mapper.resource

    @property
    def tracked(self) -> tuple[str, ...]:
        return (*self.to_sage, *sorted(self.kept | self.sage_only))

    def canonical(self, ssm: dict[str, Any], names=None) -> dict[str, Any]:
        """The canonical values of the SSM fields `names` (all of `to_sage` by default)."""
        return {self.to_sage[name]: sage_value(ssm.get(name)) for name in (names or self.to_sage)
                if name in self.to_sage}


def sage_value(value: Any) -> Any:
    value = reference_id(value)
    if isinstance(value, str):
        value = value.strip()
        return None if not value or value == mapping.MISSING_NAME else value
    return value


def _inverse(mapper: mapping.Mapper) -> dict[str, str]:
    return {ssm: canonical for canonical, ssm in mapper.direct if canonical != "key"}


INBOUND: dict[str, InboundMapping] = {m.entity: m for m in (
    InboundMapping(Entity.ACCOUNT.value, mapping.ACCOUNT, _inverse(mapping.ACCOUNT),
                   kept=frozenset({"salesRepId1"}), sage_only=frozenset({"typeId"})),
    InboundMapping(Entity.CONTACT.value, mapping.CONTACT,
                   {**_inverse(mapping.CONTACT), "firstName": "first_name", "lastName": "last_name"}),
)}


def changed_fields(inbound: InboundMapping, ssm: dict[str, Any], base: dict[str, Any]) -> list[str]:
    """The tracked SSM fields whose value differs from the link's base."""
    return [name for name in inbound.tracked
            if normalise(sage_value(ssm.get(name))) != normalise(sage_value(base.get(name)))]
