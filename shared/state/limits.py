"""Azure Table Storage's rules, enforced by our own code before every write.

Azurite (and SQLite) accept entities that the real service refuses, so both backends call
these checks first: a limit is then met the same way locally, in the emulator and in the cloud.
Sizes follow the service's documented formula (4 bytes + 2 bytes per key character, and per
property 8 bytes + 2 bytes per name character + the value's size, strings counted in UTF-16).
The module also holds the key rules (legal characters, 1 KiB) and the RowKey order the service
uses (ordinal, by UTF-16 code unit), with the upper bound that turns a prefix into a range.
"""
from __future__ import annotations

import datetime as dt
import re
import struct
from typing import Any, Iterable, Mapping, Optional

from shared.errors import EntityTooLargeError, TransactionTooLargeError
from shared.state.protocol import (
    MAX_ENTITY_BYTES,
    MAX_PROPERTIES,
    MAX_PROPERTY_BYTES,
    MAX_TRANSACTION_OPERATIONS,
    OperationKind,
    TableEntity,
    TableOperation,
)

MAX_KEY_BYTES = 1024
MAX_PROPERTY_NAME_LENGTH = 255
INT32_RANGE = range(-(2**31), 2**31)
INT64_RANGE = range(-(2**63), 2**63)
SYSTEM_PROPERTIES = frozenset({"PartitionKey", "RowKey", "Timestamp", "ETag"})
TABLE_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9]{2,62}$")
PROPERTY_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_ILLEGAL_KEY_CHARACTERS = re.compile(r"[/\\#?\x00-\x1f\x7f-\x9f]")
_OLDEST_DATETIME = dt.datetime(1601, 1, 1, tzinfo=dt.timezone.utc)


def utf16_length(text: str) -> int:
    """Length in UTF-16 code units, the unit Table Storage counts in."""
    return len(text.encode("utf-16-le")) // 2


def value_size(value: Any) -> int:
    """Bytes one property value takes in the service's size formula."""
    if value is None:
        return 0
    if isinstance(value, bool):
        return 1
    if isinstance(value, int):
        return 4 if value in INT32_RANGE else 8
    if isinstance(value, (float, dt.datetime)):
        return 8
    if isinstance(value, str):
        return 4 + 2 * utf16_length(value)
    if isinstance(value, (bytes, bytearray)):
        return 4 + len(value)
    raise TypeError(f"Table Storage cannot hold a {type(value).__name__} value")


def entity_size(partition_key: str, row_key: str, data: Mapping[str, Any]) -> int:
    """Bytes the whole entity takes in the service's size formula."""
    size = 4 + 2 * (utf16_length(partition_key) + utf16_length(row_key))
    for name, value in data.items():
        if value is not None:
            size += 8 + 2 * utf16_length(name) + value_size(value)
    return size


def check_table_name(name: str) -> None:
    """Raise ValueError unless `name` is a legal Table Storage table name."""
    if not isinstance(name, str) or not TABLE_NAME.match(name):
        raise ValueError(f"'{name}' is not a valid table name: letters and digits only, starting "
                         "with a letter, 3 to 63 characters")


def check_key(key: str, *, what: str = "key") -> None:
    """Raise ValueError unless `key` is a legal PartitionKey/RowKey (encode with `shared.keys`)."""
    if not isinstance(key, str):
        raise ValueError(f"{what} must be a string, not {type(key).__name__}")
    bad = _ILLEGAL_KEY_CHARACTERS.search(key)
    if bad:
        raise ValueError(f"{what} {key[:80]!r} holds the character {bad.group()!r}, which Table Storage "
                         "refuses in keys; encode it with shared.keys")
    if 2 * utf16_length(key) > MAX_KEY_BYTES:
        raise ValueError(f"{what} {key[:80]!r}... is longer than Table Storage's 1 KiB")


def _describe(table: str, entity: TableEntity) -> str:
    return f"table '{table}', PartitionKey '{entity.partition_key}', RowKey '{entity.row_key[:200]}'"


def check_entity(table: str, entity: TableEntity) -> None:
    """Refuse an entity the real service would refuse.

    Raises:
        ValueError: an illegal key, property name, naive datetime or out-of-range number.
        TypeError: a value type Table Storage cannot hold.
        EntityTooLargeError: more than 252 properties, a string property over 64 KiB,
            or an entity over 1 MiB; the message names the table, the keys and the size.
    """
    check_key(entity.partition_key, what="PartitionKey")
    check_key(entity.row_key, what="RowKey")
    where = _describe(table, entity)
    properties = {name: value for name, value in entity.data.items() if value is not None}
    if len(properties) > MAX_PROPERTIES:
        raise EntityTooLargeError(
            f"A record has too many fields to be stored in the sync state ({len(properties)}, "
            f"the limit is {MAX_PROPERTIES}).", detail=where)
    for name, value in properties.items():
        if not isinstance(name, str) or not PROPERTY_NAME.match(name) or len(name) > MAX_PROPERTY_NAME_LENGTH:
            raise ValueError(f"{name!r} is not a valid property name ({where})")
        if name in SYSTEM_PROPERTIES:
            raise ValueError(f"'{name}' is a system property and cannot be written as data ({where})")
        _check_value(name, value, where)
    size = entity_size(entity.partition_key, entity.row_key, properties)
    if size > MAX_ENTITY_BYTES:
        raise EntityTooLargeError(
            f"A record is too large to be stored in the sync state: {size:,} bytes, the limit is "
            f"{MAX_ENTITY_BYTES:,} bytes (1 MiB).", detail=f"{where}, {size} bytes")


def _check_value(name: str, value: Any, where: str) -> None:
    if isinstance(value, bool) or isinstance(value, float):
        return
    if isinstance(value, int):
        if value not in INT64_RANGE:
            raise ValueError(f"property '{name}' = {value} does not fit a 64-bit integer ({where})")
        return
    if isinstance(value, dt.datetime):
        if value.tzinfo is None or value.utcoffset() is None:
            raise ValueError(f"property '{name}' is a naive datetime; give it a time zone ({where})")
        if value < _OLDEST_DATETIME:
            raise ValueError(f"property '{name}' is before 1601-01-01, which Table Storage refuses ({where})")
        return
    if isinstance(value, str):
        size = value_size(value) - 4
        if size > MAX_PROPERTY_BYTES:
            raise EntityTooLargeError(
                f"A field of a record is too large to be stored in the sync state: field '{name}' is "
                f"{size:,} bytes, the limit is {MAX_PROPERTY_BYTES:,} bytes (64 KiB).",
                detail=f"{where}, property '{name}' {size} bytes")
        return
    raise TypeError(f"property '{name}' is a {type(value).__name__}, which Table Storage cannot hold ({where})")


def check_transaction(table: str, partition_key: str, operations: Iterable[TableOperation]) -> None:
    """Refuse a transaction the service would refuse, before anything is sent.

    Raises:
        TransactionTooLargeError: more than 100 operations, or one naming another partition.
        ValueError: the same entity twice (the service refuses that too), or an illegal key.
        EntityTooLargeError: an entity over a limit (see `check_entity`).
    """
    operations = list(operations)
    if len(operations) > MAX_TRANSACTION_OPERATIONS:
        raise TransactionTooLargeError(
            f"Too many changes in one state-store transaction: {len(operations)}, the limit is "
            f"{MAX_TRANSACTION_OPERATIONS}.", detail=f"table '{table}', PartitionKey '{partition_key}'")
    check_key(partition_key, what="PartitionKey")
    seen: set[str] = set()
    for op in operations:
        entity = op.entity
        if entity.partition_key != partition_key:
            raise TransactionTooLargeError(
                "A state-store transaction cannot span several partitions.",
                detail=f"table '{table}': '{entity.partition_key}' in a transaction on '{partition_key}'")
        if entity.row_key in seen:
            raise ValueError(f"RowKey '{entity.row_key}' appears twice in one transaction on table '{table}'")
        seen.add(entity.row_key)
        if op.kind is OperationKind.DELETE:
            check_key(entity.row_key, what="RowKey")
        else:
            check_entity(table, entity)


def sort_key(key: str) -> bytes:
    """The service's RowKey order as bytes: ordinal by UTF-16 code unit (big-endian compares so)."""
    return key.encode("utf-16-be", "surrogatepass")


def prefix_upper_bound(prefix: str) -> Optional[str]:
    """The smallest string above every string that starts with `prefix`, in the service's order.

    `RowKey ge prefix and RowKey lt bound` then selects exactly the keys that start with `prefix`.
    None when there is no such string (empty prefix, or one made only of U+FFFF).
    """
    raw = prefix.encode("utf-16-be", "surrogatepass")
    codes = list(struct.unpack(f">{len(raw) // 2}H", raw))
    while codes and codes[-1] == 0xFFFF:
        codes.pop()
    if not codes:
        return None
    last = codes.pop() + 1
    if last == 0xD800:
        codes += [0xD800, 0xDC00]          # U+10000: every astral character sorts below it
    elif last == 0xE000 and codes and 0xD800 <= codes[-1] <= 0xDBFF:
        high = codes.pop() + 1            # low surrogate overflow: bump the high surrogate
        if high > 0xDBFF:
            codes.append(0xE000)           # above every surrogate pair
        else:
            codes += [high, 0xDC00]
    else:
        codes.append(last)
    return struct.pack(f">{len(codes)}H", *codes).decode("utf-16-be")
