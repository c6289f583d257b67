"""Encoding of Sage keys into legal Table Storage keys.

PartitionKey and RowKey may not contain `/`, `\\`, `#`, `?` nor control characters, and are at most
1 KiB. Sage keys may hold any of them. We escape those characters as `~XX` (UTF-8 bytes in hex),
and `~` itself, which keeps ordinary keys readable, the encoding reversible, and prefix queries
working because the separator `|` is never produced by the encoding of a component. `%` is
escaped too and never used as the escape character: the Table service mishandles `%` in keys
that travel in a URL (point reads, updates and deletes).
"""
from __future__ import annotations

_FORBIDDEN = set("/\\#?%~|") | {chr(c) for c in range(0x00, 0x20)} | {chr(c) for c in range(0x7F, 0xA0)}
SEPARATOR = "|"
ESCAPE = "~"
MAX_KEY_BYTES = 1024


def encode_key(value: str) -> str:
    """Encode one key component so it is a legal PartitionKey/RowKey fragment."""
    out = []
    for ch in value:
        if ch in _FORBIDDEN:
            out.append("".join(f"{ESCAPE}{b:02X}" for b in ch.encode("utf-8")))
        else:
            out.append(ch)
    return "".join(out)


def decode_key(value: str) -> str:
    """Inverse of `encode_key`."""
    raw = bytearray()
    i = 0
    while i < len(value):
        ch = value[i]
        if ch == ESCAPE and i + 3 <= len(value):
            raw += bytes([int(value[i + 1:i + 3], 16)])
            i += 3
        else:
            raw += ch.encode("utf-8")
            i += 1
    return raw.decode("utf-8")


def row_key(*parts: str) -> str:
    """Join encoded components into one RowKey; raises ValueError past Azure's 1 KiB limit."""
    key = SEPARATOR.join(encode_key(str(p)) for p in parts)
    if len(key.encode("utf-16-le")) > MAX_KEY_BYTES:
        raise ValueError(f"key too long for Table Storage ({len(key)} characters): {key[:60]}...")
    return key


def split_row_key(key: str) -> list[str]:
    return [decode_key(p) for p in key.split(SEPARATOR)]
