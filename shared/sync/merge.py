"""The 3-way merge: Sage's new values, SSM's current values and the base they both started from.

A field changed on one side only goes to the other side; a field changed on both sides to
different values takes Sage's value (Sage is the primary source) and is reported as a conflict,
except the fields SSM keeps (the account owner), where SSM's change survives. One-way entities
use `diff` (what Sage changed since the base); a realignment uses `realign` (every field where
SSM differs from Sage). Values are compared in a normal form: references `{"id": N, ...}` as N,
numbers as exact decimals, empty text as None.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from typing import Any, Iterable, Optional

from shared.sync.mapping import BOOKKEEPING_PREFIX


def normalise(value: Any) -> Any:
    """The comparison form of a value written to or read from SSM."""
    if isinstance(value, dict) and "id" in value:
        value = value["id"]
    if isinstance(value, bool):
        return ("bool", value)          # never equal to the numbers 0 and 1
    if value is None:
        return value
    if isinstance(value, (int, float, Decimal)):
        try:
            number = Decimal(str(value))
        except InvalidOperation:
            return value
        return number.normalize() if number else Decimal(0)
    if isinstance(value, str):
        return value if value.strip() else None
    return value


def same(a: Any, b: Any) -> bool:
    return normalise(a) == normalise(b)


def reference_id(value: Any) -> Any:
    """A value as SSM reads it back, plain: a reference `{"id": N, ...}` as N, anything else as is."""
    return value["id"] if isinstance(value, dict) and "id" in value else value


def ssm_values(record: dict, names: Iterable[str]) -> dict[str, Any]:
    """The fields `names` of an SSM record as plain values (references reduced to their id)."""
    return {name: reference_id(record.get(name)) for name in names}


@dataclass(frozen=True)
class Conflict:
    field: str
    base: Any
    sage: Any
    ssm: Any
    winner: str           # "sage" or "ssm"


@dataclass
class MergeResult:
    to_ssm: dict[str, Any] = field(default_factory=dict)
    base: dict[str, Any] = field(default_factory=dict)
    conflicts: list[Conflict] = field(default_factory=list)
    changed_in_ssm: list[str] = field(default_factory=list)   # left for the SSM → Sage direction
    refused: list[Conflict] = field(default_factory=list)     # SSM changes to Sage-only fields, undone


def _bookkeeping(base: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in base.items() if k.startswith(BOOKKEEPING_PREFIX)}


def diff(sage: dict[str, Any], base: dict[str, Any], names: Optional[Iterable[str]] = None) -> MergeResult:
    """One-way: the fields Sage changed since the base go to SSM; the new base is Sage's values."""
    result = MergeResult(base={**_bookkeeping(base), **sage})
    for name in (names if names is not None else sage):
        if not same(sage.get(name), base.get(name)):
            result.to_ssm[name] = sage.get(name)
    return result


def merge(sage: dict[str, Any], ssm: dict[str, Any], base: dict[str, Any], *,
          names: Optional[Iterable[str]] = None, ssm_keeps: frozenset[str] = frozenset(),
          sage_only: frozenset[str] = frozenset()) -> MergeResult:
    """Three-way merge of one record (see the module docstring).

    The new base holds what both sides now agree on, and keeps the old base value for a field
    changed in SSM only, so that change is still seen as SSM's by the next merge. Fields in
    `sage_only` may change in Sage only (a prospect's conversion to client): an SSM change to
    one is undone and reported in `refused`.
    """
    result = MergeResult(base=_bookkeeping(base))
    for name in (names if names is not None else sage):
        new, current, old = sage.get(name), ssm.get(name), base.get(name)
        sage_changed = not same(new, old)
        ssm_changed = not same(current, old)
        if name in sage_only:
            if not same(new, current):
                result.to_ssm[name] = new
                if ssm_changed:
                    result.refused.append(Conflict(name, old, new, current, winner="sage"))
            result.base[name] = new
            continue
        if not sage_changed:
            if ssm_changed:
                result.changed_in_ssm.append(name)
            result.base[name] = old
            continue
        if ssm_changed and not same(new, current):
            winner = "ssm" if name in ssm_keeps else "sage"
            result.conflicts.append(Conflict(name, old, new, current, winner=winner))
            if winner == "ssm":
                result.changed_in_ssm.append(name)
                result.base[name] = new
                continue
        if not same(new, current):
            result.to_ssm[name] = new
        result.base[name] = new
    return _only_mapped(result, sage)


def realign(sage: dict[str, Any], ssm: dict[str, Any], base: Optional[dict[str, Any]], *,
            names: Optional[Iterable[str]] = None, ssm_keeps: frozenset[str] = frozenset()) -> MergeResult:
    """Sage overwrites every mapped field where SSM differs, except a kept field SSM changed.

    `base` is None when the link was lost (the record was found by its `extId`): nothing is
    known of who changed what, so kept fields keep SSM's value.
    """
    result = MergeResult(base=_bookkeeping(base or {}))
    for name in (names if names is not None else sage):
        new, current = sage.get(name), ssm.get(name)
        kept = name in ssm_keeps and (base is None or not same(current, base.get(name)))
        if not same(new, current):
            if kept:
                result.changed_in_ssm.append(name)
            else:
                result.to_ssm[name] = new
        result.base[name] = new
    return _only_mapped(result, sage)


def _only_mapped(result: MergeResult, sage: dict[str, Any]) -> MergeResult:
    """Fields no longer mapped (a removed tariff category) leave the base once cleared in SSM."""
    result.base = {k: v for k, v in result.base.items() if k in sage or k.startswith(BOOKKEEPING_PREFIX)}
    return result
