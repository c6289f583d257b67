"""The layouts of Sage 50 FR's exchange files, as data, and the strict reading and writing of
one file by its layout.

A layout (`layouts.toml`, replaceable per dossier) declares the file's encoding, separators,
quoting rule, date and decimal formats and, per file, its columns (Sage 50 field label, type,
width, decimals) and how they make a canonical record. `read_file` reads a whole file or refuses
it whole (`LayoutError`: the line, the column and the reason, worded in French from the message
catalogue); `write_records` writes records in the same layout, refusing (`ValueRefused`) a value
the layout cannot carry, never cutting it.
"""
from __future__ import annotations

import datetime as dt
import re
import tomllib
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any, Optional

from shared.messages import Message

SHIPPED_LAYOUTS = Path(__file__).with_name("layouts.toml")
TYPES = ("text", "int", "decimal", "date", "bool")
_DATE_TOKENS = (("DD", "%d"), ("MM", "%m"), ("YYYY", "%Y"))


class LayoutError(Exception):
    """A file that does not match its layout: refused whole. `message` is the French sentence."""

    def __init__(self, code: str, **values: Any):
        self.message = Message.of(f"sage50.file.{code}", **values)
        self.code = code
        self.values = values
        super().__init__(self.message.text)


class ValueRefused(Exception):
    """A value the layout cannot carry into Sage 50 (`code`: a `sage.refused.<code>` reason)."""

    def __init__(self, code: str, field: str, **values: Any):
        super().__init__(f"{field}: {code} {values}")
        self.code = code
        self.field = field
        self.values = values


@dataclass(frozen=True)
class Column:
    label: str
    type: str = "text"
    width: Optional[int] = None
    decimals: Optional[int] = None
    required: bool = False


@dataclass(frozen=True)
class RecordLayout:
    columns: tuple[Column, ...]
    fields: dict[str, Any]           # canonical field → column label, or {column, yes, no}

    def index(self, label: str) -> int:
        return next(i for i, column in enumerate(self.columns) if column.label == label)


@dataclass(frozen=True)
class FileLayout:
    name: str
    file: str
    entity: str                      # a canonical entity, or "document" (quotes, orders, invoices)
    records: dict[str, RecordLayout]  # record type ("" for a file of one record type) → layout
    key: tuple[str, ...] = ()
    header: bool = False
    type_column: Optional[str] = None
    kind_column: Optional[str] = None
    kinds: dict[str, dict] = field(default_factory=dict)

    @property
    def single(self) -> RecordLayout:
        return self.records[""]


@dataclass(frozen=True)
class Format:
    encoding: str = "cp1252"
    field_separator: str = "\t"
    record_separator: str = "\r\n"
    quoting: str = "double-quote"
    date_format: str = "DDMMYYYY"
    decimal_separator: str = ","
    true_words: tuple[str, ...] = ("Oui",)
    false_words: tuple[str, ...] = ("Non", "")

    @property
    def strftime(self) -> str:
        pattern = self.date_format
        for token, directive in _DATE_TOKENS:
            pattern = pattern.replace(token, directive)
        return pattern


@dataclass(frozen=True)
class Layouts:
    format: Format
    files: dict[str, FileLayout]     # by name
    source: str

    def for_entity(self, entity: str) -> FileLayout:
        for layout in self.files.values():
            if layout.entity == entity or (layout.entity == "document" and
                                           any(k["entity"] == entity for k in layout.kinds.values())):
                return layout
        raise KeyError(entity)


def load_layouts(path: Optional[str | Path] = None) -> Layouts:
    """The layouts of `path` (the shipped ones when None).

    Raises:
        ValueError: the file is not a layout file (its problem named).
    """
    path = Path(path) if path else SHIPPED_LAYOUTS
    data = tomllib.loads(path.read_text(encoding="utf-8"))
    fmt = Format(**{name: tuple(value) if isinstance(value, list) else value
                    for name, value in data.items() if name != "file"})
    if fmt.quoting not in ("double-quote", "none"):
        raise ValueError(f"{path}: quoting must be 'double-quote' or 'none'")
    "".encode(fmt.encoding)
    files = {}
    for raw in data.get("file", ()):
        if "records" in raw:
            records = {kind: _record(raw["name"], spec) for kind, spec in raw["records"].items()}
        else:
            records = {"": _record(raw["name"], raw)}
        layout = FileLayout(raw["name"], raw["file"], raw["entity"], records, tuple(raw.get("key", ())),
                            bool(raw.get("header", False)), raw.get("type_column"), raw.get("kind_column"),
                            dict(raw.get("kinds", {})))
        if "" in records:
            labels = {c.label for c in records[""].columns}
            missing = [k for k in layout.key if k not in labels]
            if missing or not layout.key:
                raise ValueError(f"{path}: file {layout.name}: key columns {missing or '(none)'} not declared")
        files[layout.name] = layout
    return Layouts(fmt, files, str(path))


def _record(name: str, spec: dict) -> RecordLayout:
    columns = tuple(Column(**column) for column in spec["columns"])
    labels = {c.label for c in columns}
    for column in columns:
        if column.type not in TYPES:
            raise ValueError(f"file {name}: column {column.label}: unknown type {column.type}")
    for target, source in spec.get("fields", {}).items():
        label = source["column"] if isinstance(source, dict) else source
        if label not in labels:
            raise ValueError(f"file {name}: field {target} names the undeclared column {label}")
    return RecordLayout(columns, dict(spec.get("fields", {})))


# --- reading -----------------------------------------------------------------------------------

@dataclass(frozen=True)
class ReadRecord:
    line: int                        # the line the record starts on (1 = the file's first line)
    type: str                        # record type ("" for a file of one record type)
    values: dict[str, Any]           # column label → typed value (None when empty)


def read_file(data: bytes, layout: FileLayout, fmt: Format, *, file: str) -> list[ReadRecord]:
    """Every record of `data`, typed by `layout`; the whole file refused on its first problem.

    Raises:
        LayoutError: the file does not match its layout (line and column named).
    """
    try:
        content = data.decode(fmt.encoding)
    except UnicodeDecodeError as exc:
        line = data[:exc.start].count(b"\n") + 1
        raise LayoutError("encoding", file=file, line=line, byte=f"0x{data[exc.start]:02X}",
                          encoding=fmt.encoding.upper()) from None
    if content.startswith("\ufeff"):
        content = content[1:]
    rows = list(_split(content, fmt, file))
    records: list[ReadRecord] = []
    seen: dict[tuple, int] = {}
    for number, (line, fields) in enumerate(rows):
        if number == 0 and layout.header:
            _check_header(fields, layout, file, line)
            continue
        if not fields or fields == [""]:
            continue                                  # an empty line (the file's last one)
        kind = ""
        if layout.type_column is not None:
            kind = fields[0].strip()
            if kind not in layout.records:
                raise LayoutError("record_type", file=file, line=line, column=layout.type_column, value=kind,
                                  expected=", ".join(layout.records))
        record = layout.records[kind]
        if len(fields) != len(record.columns):
            raise LayoutError("column_count", file=file, line=line, found=len(fields), expected=len(record.columns))
        values = {column.label: _parse(value, column, fmt, file, line) for column, value in zip(record.columns, fields)}
        if layout.type_column is not None and not records and kind != next(iter(layout.records)):
            raise LayoutError("orphan_record", file=file, line=line, first=next(iter(layout.records)))
        if layout.key and "" in layout.records:
            key = tuple(values.get(label) for label in layout.key)
            if key in seen:
                raise LayoutError("duplicate_key", file=file, line=line, key=" / ".join(str(k) for k in key),
                                  first=seen[key])
            seen[key] = line
        records.append(ReadRecord(line, kind, values))
    return records


def _check_header(fields: list[str], layout: FileLayout, file: str, line: int) -> None:
    expected = [c.label for c in layout.single.columns]
    found = [f.strip() for f in fields]
    for position, label in enumerate(expected):
        if position >= len(found) or found[position] != label:
            raise LayoutError("header", file=file, line=line, position=position + 1, column=label,
                              found=found[position] if position < len(found) else "")
    if len(found) > len(expected):
        raise LayoutError("column_count", file=file, line=line, found=len(found), expected=len(expected))


def _split(content: str, fmt: Format, file: str):
    """(line, fields) per record: separators inside a quoted value are the value's own."""
    separator = fmt.field_separator
    quoting = fmt.quoting == "double-quote"
    position, line, size = 0, 1, len(content)
    while position < size:
        start_line = line
        fields: list[str] = []
        while True:
            if quoting and position < size and content[position] == '"':
                value, position, line = _quoted(content, position, line, file)
                fields.append(value)
                if position < size and content[position] not in (separator, "\r", "\n"):
                    raise LayoutError("quote", file=file, line=line, column_number=len(fields))
            else:
                end = position
                while end < size and content[end] not in (separator, "\r", "\n"):
                    end += 1
                fields.append(content[position:end])
                position = end
            if position < size and content[position] == separator:
                position += 1
                continue
            break
        if content.startswith("\r\n", position):
            position += 2
        elif position < size:
            position += 1
        line += 1
        yield start_line, fields


def _quoted(content: str, position: int, line: int, file: str) -> tuple[str, int, int]:
    out = []
    start = line
    position += 1
    while True:
        end = content.find('"', position)
        if end < 0:
            raise LayoutError("unclosed_quote", file=file, line=start)
        piece = content[position:end]
        out.append(piece)
        line += piece.count("\n")
        if content.startswith('""', end):
            out.append('"')
            position = end + 2
            continue
        return "".join(out), end + 1, line


def _parse(raw: str, column: Column, fmt: Format, file: str, line: int) -> Any:
    value = raw if column.type == "text" else raw.strip()
    if column.type == "text":
        value = value.strip(" ")
        if column.width is not None and len(value) > column.width:
            raise LayoutError("too_long", file=file, line=line, column=column.label, length=len(value),
                              width=column.width)
        if not value:
            value = None
    elif column.type == "bool":
        if value in fmt.true_words:
            return True
        if value in fmt.false_words:
            return False
        raise LayoutError("bool", file=file, line=line, column=column.label, value=value,
                          expected=" / ".join(w for w in fmt.true_words + fmt.false_words if w))
    elif not value:
        value = None
    elif column.type == "int":
        if not re.fullmatch(r"-?\d+", value):
            raise LayoutError("int", file=file, line=line, column=column.label, value=value)
        value = int(value)
    elif column.type == "decimal":
        value = _decimal(value, column, fmt, file, line)
    elif column.type == "date":
        try:
            if len(value) != len(fmt.date_format):
                raise ValueError
            value = dt.datetime.strptime(value, fmt.strftime).date()
        except ValueError:
            raise LayoutError("date", file=file, line=line, column=column.label, value=value,
                              format=fmt.date_format) from None
    if value is None and column.required:
        raise LayoutError("required", file=file, line=line, column=column.label)
    return value


def _decimal(value: str, column: Column, fmt: Format, file: str, line: int) -> Decimal:
    sep = re.escape(fmt.decimal_separator)
    places = "" if column.decimals is None else f"{{1,{column.decimals}}}" if column.decimals else "{0}"
    pattern = rf"-?\d+(?:{sep}\d{places or '+'})?" if places != "{0}" else r"-?\d+"
    if not re.fullmatch(pattern, value):
        raise LayoutError("decimal", file=file, line=line, column=column.label, value=value,
                          separator=fmt.decimal_separator, decimals=column.decimals if column.decimals is not None
                          else "?")
    try:
        return Decimal(value.replace(fmt.decimal_separator, "."))
    except InvalidOperation:
        raise LayoutError("decimal", file=file, line=line, column=column.label, value=value,
                          separator=fmt.decimal_separator, decimals=column.decimals) from None


# --- writing -----------------------------------------------------------------------------------

def write_records(rows: list[tuple[str, dict[str, Any]]], layout: FileLayout, fmt: Format) -> bytes:
    """The file holding `rows` ((record type, column label → value)) in `layout`.

    Raises:
        ValueRefused: a value the layout cannot carry (too long, a character outside the
            encoding, a tab or line break where quoting is "none", a number with too many decimals).
    """
    lines = []
    if layout.header:
        lines.append(fmt.field_separator.join(c.label for c in layout.single.columns))
    for kind, values in rows:
        record = layout.records[kind]
        lines.append(fmt.field_separator.join(_format(values.get(c.label), c, fmt) for c in record.columns))
    text = fmt.record_separator.join(lines) + fmt.record_separator
    return text.encode(fmt.encoding)


def _format(value: Any, column: Column, fmt: Format) -> str:
    if value is None:
        if column.required:
            raise ValueRefused("required", column.label, column=column.label)
        return fmt.false_words[0] if column.type == "bool" and fmt.false_words else ""
    if column.type == "bool":
        return fmt.true_words[0] if value else fmt.false_words[0]
    if column.type == "date":
        if isinstance(value, str):
            value = dt.date.fromisoformat(value[:10])
        return value.strftime(fmt.strftime)
    if column.type == "int":
        return str(int(value))
    if column.type == "decimal":
        number = Decimal(str(value))
        if column.decimals is not None:
            exponent = number.normalize().as_tuple().exponent
            if isinstance(exponent, int) and -exponent > column.decimals:
                raise ValueRefused("decimals", column.label, column=column.label, value=str(value),
                                   decimals=column.decimals)
            number = number.quantize(Decimal(1).scaleb(-column.decimals))
        return format(number, "f").replace(".", fmt.decimal_separator)
    text = str(value)
    if column.width is not None and len(text) > column.width:
        raise ValueRefused("width", column.label, length=len(text), column=column.label, width=column.width)
    try:
        text.encode(fmt.encoding)
    except UnicodeEncodeError as exc:
        raise ValueRefused("codepage", column.label, char=text[exc.start]) from None
    if any(ch in text for ch in (fmt.field_separator, "\r", "\n", '"')) or text.startswith('"'):
        if fmt.quoting != "double-quote":
            if '"' in text and not any(ch in text for ch in (fmt.field_separator, "\r", "\n")):
                return text
            raise ValueRefused("separator", column.label, column=column.label)
        return '"' + text.replace('"', '""') + '"'
    return text
