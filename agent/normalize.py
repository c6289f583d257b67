"""Normalisation of raw Sage values, the same whatever the ODBC driver returns.

Microsoft's SQL Server driver hands out `Decimal` for `numeric`, `datetime` for `datetime` and
text already decoded; the SQLite ODBC driver hands out `float` for `numeric` and sometimes text
for dates. These pure functions turn both into one form before anything is hashed or mapped:
text trimmed with "" as None, Sage's "no date" (1753-01-01, 1900-01-01) as None, amounts as
exact `Decimal` at the column's scale (floats go through their shortest text, never through
binary arithmetic), smallint flags as bool.
"""
from __future__ import annotations

import datetime as dt
import math
import re
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from functools import lru_cache, partial
from typing import Any, Callable, Sequence

from shared.messages import text as message_text

SAGE_NO_DATES = frozenset({dt.date(1753, 1, 1), dt.date(1900, 1, 1)})
DEFAULT_SCALE = 6
SOURCE_ENCODING = "cp1252"

_DATETIME_FORMATS = ("%Y-%m-%d %H:%M:%S.%f", "%Y-%m-%d %H:%M:%S", "%Y-%m-%dT%H:%M:%S.%f",
                     "%Y-%m-%dT%H:%M:%S", "%Y-%m-%d %H:%M", "%Y-%m-%d")


_CONTROL = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")


def text(value: Any, *, encoding: str = SOURCE_ENCODING) -> str | None:
    """Trimmed text; None for NULL or blank. Bytes are decoded from the Sage code page.

    Raises:
        ValueError: bytes that are not text (control characters, or not of the code page): a
            binary value, never handed on as text.
    """
    if value is None:
        return None
    if isinstance(value, (bytes, bytearray, memoryview)):
        raw = bytes(value)
        try:
            value = raw.decode(encoding)
        except UnicodeDecodeError:
            value = "\x00"
        if _CONTROL.search(value):
            raise ValueError(f"X'{raw.hex().upper()}' is a binary value, not text")
    elif not isinstance(value, str):
        value = str(value)
    value = value.strip()
    return value or None


def decimal(value: Any, scale: int | None = DEFAULT_SCALE) -> Decimal | None:
    """An exact Decimal quantized to `scale` digits (None keeps the value's own exponent).

    A float from the driver is read through `repr`, its shortest round-trip text, so 0.1 stays
    0.1 and not 0.1000000000000000055511151231257827.

    Raises:
        ValueError: the value is not a number (text that does not parse, NaN, infinity).
    """
    if value is None:
        return None
    kind = type(value)
    if kind is float:
        if not math.isfinite(value):
            raise ValueError(message_text("sync.invalid.not_a_number", value=value))
        number = Decimal(repr(value))
    elif kind is Decimal:
        number = value
    elif kind is int:
        number = Decimal(value)
    else:
        number = _parse_decimal(value)
        if number is None:
            return None
    if not number.is_finite():
        raise ValueError(message_text("sync.invalid.not_a_number", value=value))
    if scale is None:
        return number
    return number.quantize(_quantum(scale), rounding=ROUND_HALF_UP)


@lru_cache(maxsize=None)
def _quantum(scale: int) -> Decimal:
    return Decimal(1).scaleb(-scale)


def _parse_decimal(value: Any) -> Decimal | None:
    if isinstance(value, bool):
        return Decimal(int(value))
    if isinstance(value, (bytes, bytearray)):
        value = bytes(value).decode("ascii", "replace")
    if isinstance(value, str):
        value = value.strip()
        if not value:
            return None
    try:
        return value if isinstance(value, Decimal) else Decimal(value)
    except (InvalidOperation, TypeError, ValueError):
        raise ValueError(message_text("sync.invalid.not_a_number", value=value)) from None


_STORED_NUMBER = re.compile(r"[+-]?\d+(?:[.,]\d+)?")


def stored_number(value: str, scale: int | None) -> Decimal:
    """The exact number of a text a numeric column holds (a database without column types, such as
    the SQLite stand-in, keeps what was typed): digits with at most one `.` or `,` as the decimal
    separator, so the French '12,50' is 12.50. Anything else (thousands separators, letters, two
    separators) is ambiguous.

    Raises:
        ValueError: the text is not such a number.
    """
    cleaned = value.strip()
    if not _STORED_NUMBER.fullmatch(cleaned):
        raise ValueError(f"'{value}' is not a number")
    return decimal(cleaned.replace(",", "."), scale=scale)


def integer(value: Any) -> int | None:
    """An int from an int, an integral float/Decimal or digits; None for NULL or blank."""
    if value is None:
        return None
    if isinstance(value, int):
        return int(value)
    if isinstance(value, str):
        value = value.strip()
        if not value:
            return None
    number = decimal(value, scale=None)
    if number != number.to_integral_value():
        raise ValueError(message_text("sync.invalid.not_whole", value=value))
    return int(number)


def flag(value: Any) -> bool:
    """A Sage smallint flag as bool: 1 (or any non-zero) is True, 0 and NULL are False."""
    number = integer(value)
    return bool(number)


def datetime_(value: Any) -> dt.datetime | None:
    """A naive datetime; None for NULL, blank or Sage's "no date" (1753-01-01, 1900-01-01).

    Accepts what either driver returns: `datetime`, `date`, or ISO-like text
    ('2024-03-01 10:15:00.123', '2024-03-01T10:15:00', '2024-03-01').
    """
    if value is None:
        return None
    if isinstance(value, (bytes, bytearray)):
        value = bytes(value).decode("ascii")
    if isinstance(value, str):
        value = value.strip()
        if not value:
            return None
        value = _parse_datetime(value)
    elif isinstance(value, dt.datetime):
        pass
    elif isinstance(value, dt.date):
        value = dt.datetime(value.year, value.month, value.day)
    else:
        raise ValueError(message_text("sync.invalid.not_a_date", value=value))
    if value.tzinfo is not None:
        value = value.replace(tzinfo=None)
    if value.date() in SAGE_NO_DATES:
        return None
    return value


def date(value: Any) -> dt.date | None:
    """The date part of `datetime_(value)`."""
    moment = datetime_(value)
    return moment.date() if moment else None


def _parse_datetime(value: str) -> dt.datetime:
    for pattern in _DATETIME_FORMATS:
        try:
            return dt.datetime.strptime(value, pattern)
        except ValueError:
            continue
    try:
        return dt.datetime.fromisoformat(value)
    except ValueError:
        raise ValueError(message_text("sync.invalid.not_a_date", value=value)) from None


def zero_as_none(value: Any) -> int | None:
    """A reference number where Sage's 0 means "none" (`CO_No`, `N_CatTarif`)."""
    number = integer(value)
    return number or None


@lru_cache(maxsize=None)
def normalizer_for(column_type: str) -> Callable[[Any], Any]:
    """The normalising function of a declared SQL type (`varchar(35)`, `numeric(24,6)`, ...)."""
    kind, _, arguments = column_type.lower().partition("(")
    kind = kind.strip()
    if kind in ("varchar", "char", "nvarchar", "nchar", "text"):
        return text
    if kind in ("numeric", "decimal"):
        parts = arguments.rstrip(")").split(",")
        scale = int(parts[1]) if len(parts) > 1 and parts[1].strip() else 0
        return partial(decimal, scale=scale)
    if kind in ("smallint", "int", "integer", "tinyint", "bigint"):
        return integer
    if kind in ("datetime", "smalldatetime", "datetime2", "date"):
        return datetime_
    if kind in ("float", "real"):
        return partial(decimal, scale=None)
    return _unchanged


def _unchanged(value: Any) -> Any:
    return value


def by_column_type(value: Any, column_type: str) -> Any:
    """Normalise `value` according to its declared SQL type."""
    return normalizer_for(column_type)(value)


# --- whole rows -------------------------------------------------------------------------------

Normalizer = Callable[[Any], Any]

# Per normaliser, an expression giving exactly its result for the types drivers hand out most
# (`{v}`: the value, `{f}`: the normaliser itself, called for every other type and for errors).
_FAST_PATHS: dict[Normalizer, str] = {
    text: "(({v}.strip() or None) if type({v}) is str else {v} if {v} is None else {f}({v}))",
    integer: "({v} if type({v}) is int or {v} is None else {f}({v}))",
    int: "({v} if type({v}) is int else {f}({v}))",
    datetime_: "({v} if type({v}) is _datetime and {v}.tzinfo is None and {v}.year > 1900"
               " or {v} is None else {f}({v}))",
    _unchanged: "{v}",
}
_FAST_DECIMAL = ("(_Decimal(repr({v})){quantize} if type({v}) is float and {v} - {v} == 0.0"
                 " else {v}{quantize} if type({v}) is _Decimal and {v}.is_finite()"
                 " else {v} if {v} is None else {f}({v}))")


def _fast_path(normalizer: Normalizer, index: int) -> tuple[str, dict[str, Any]]:
    """The expression normalising `v<index>` and the names it uses."""
    name = f"f{index}"
    names: dict[str, Any] = {name: normalizer}
    if isinstance(normalizer, partial) and normalizer.func is decimal and not normalizer.args \
            and set(normalizer.keywords) == {"scale"}:
        scale = normalizer.keywords["scale"]
        quantize = ""
        if scale is not None:
            names[f"q{index}"] = _quantum(scale)
            quantize = f".quantize(q{index}, _HALF_UP)"
        template = _FAST_DECIMAL.replace("{quantize}", quantize)
    else:
        template = _FAST_PATHS.get(normalizer, "{f}({v})")
    return template.format(v=f"v{index}", f=name), names


def row_normalizer(head: Sequence[Normalizer],
                   named: Sequence[tuple[str, Normalizer]]) -> Callable[[Sequence[Any]], tuple[list, dict]]:
    """One function normalising a whole fetched row: `len(head)` leading values, then `named` ones.

    `row_normalizer(head, named)(row)` returns `([head values], {name: value})`, exactly what
    calling each normaliser on its value gives, and raises the same `ValueError` for the first
    invalid value. It is generated once per column list so the values of the common driver
    types (`str`, `int`, `float`, `Decimal`, `datetime`, None) are normalised inline, without
    a function call each; every other value goes through its normaliser.
    """
    normalizers = [*head, *(normalizer for _, normalizer in named)]
    namespace: dict[str, Any] = {"_Decimal": Decimal, "_HALF_UP": ROUND_HALF_UP, "_datetime": dt.datetime}
    expressions = []
    for index, normalizer in enumerate(normalizers):
        expression, names = _fast_path(normalizer, index)
        expressions.append(expression)
        namespace.update(names)
    variables = "".join(f"v{index}, " for index in range(len(normalizers)))
    head_list = ", ".join(expressions[:len(head)])
    fields = ", ".join(f"{name!r}: {expression}" for (name, _), expression in zip(named, expressions[len(head):]))
    source = (f"def normalize_row(row):\n"
              f"    {variables}= row\n"
              f"    return [{head_list}], {{{fields}}}\n")
    exec(compile(source, f"<row normalizer of {len(normalizers)} columns>", "exec"), namespace)
    return namespace["normalize_row"]
