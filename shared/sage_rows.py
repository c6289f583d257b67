"""What the agent says about Sage rows it could read only in part, in words for an administrator.

A row whose business key cannot be read (a text in an integer `CT_No`, an unreadable character)
or that repeats the key of an older row is known by its `cbMarq` instead: `row_key(marq)` or
`row_key(marq, key)`. Such a key is never synced to SSM; it only carries the row's incident, and
its deletion (the row fixed or gone) closes that incident.

A row synced without some of its values (an invalid e-mail, a binary phone number, an impossible
date) carries *warnings*: one `{"column", "field", "reason", "value"}` per value left out, that
the cloud records as one incident of the record (`describe_left_out`), closed once the record
syncs without warnings.
"""
from __future__ import annotations

import re
from typing import Any, Iterable, Optional

from shared.messages import text

_ROW_KEY = re.compile(r"^(?:(?P<key>.*) )?\(cbMarq (?P<marq>\d+)\)$", re.DOTALL)
MAX_SHOWN = 40

# Why a value was left out (`reason` of a warning, `sage_row.reason.<reason>` in the catalogue).
EMAIL, TOO_LONG, DATE, BINARY, UNREADABLE, NUMBER, WHOLE, INVALID, MODIFIED = (
    "email", "too_long", "date", "binary", "unreadable", "number", "whole", "invalid", "modified")

# The raw hash of a row whose parent Sage does not have (a contact whose account is missing,
# document lines whose document is) starts with this: the agent tracks it as an orphan, and once
# the parent is back reads the row again by its cbMarq (a contact; lines carry none of their own).
ORPHAN_HASH = "orphan:"


def row_key(marq: int, key: str = "") -> str:
    """The key of a Sage row known by its `cbMarq`: its own key is unreadable, or (`key`) is an
    older row's."""
    return f"{key} (cbMarq {marq})" if key else f"(cbMarq {marq})"


def is_row_key(key: Optional[str]) -> bool:
    return bool(key) and _ROW_KEY.match(key) is not None


def parse_row_key(key: str) -> Optional[tuple[str, int]]:
    """(the older row's key, or "" for an unreadable key; cbMarq) of a `row_key`, None for any other key."""
    match = _ROW_KEY.match(key)
    return (match.group("key") or "", int(match.group("marq"))) if match else None


def shown(value: Any) -> str:
    """A value as an incident quotes it: at most `MAX_SHOWN` characters, binary as `X'…'`."""
    if isinstance(value, (bytes, bytearray, memoryview)):
        value = f"X'{bytes(value).hex().upper()}'"
    value = "" if value is None else str(value)
    return value if len(value) <= MAX_SHOWN else value[:MAX_SHOWN - 1] + "…"


def what(entity: str) -> str:
    """How an incident names a record of `entity` ("Le compte", "L'article", ...)."""
    return text(f"sage_row.what.{entity}")


def reason(column: str, code: str, value: Any = None, **extra: Any) -> str:
    """One value's problem, in French."""
    return text(f"sage_row.reason.{code}", column=column, value=shown(value), **extra)


def describe_left_out(entity: str, key: str, warnings: Iterable[dict]) -> str:
    """The incident of a record synced without the values its warnings name."""
    warnings = list(warnings)
    fields = sorted({w["column"] for w in warnings if w.get("field") and w.get("column")})
    reasons = "; ".join(reason(w.get("column") or "", w.get("reason") or INVALID, w.get("value"),
                               **({"limit": w["limit"]} if "limit" in w else {})) for w in warnings)
    if not fields:
        return text("sage_row.read_in_part", what=what(entity), key=key, reasons=reasons)
    return text("sage_row.left_out", what=what(entity), key=key, fields=", ".join(fields), reasons=reasons)
