"""The `where` and `order` of the SSM v4 API as the simulator evaluates them, in two modes.

The documented mode (the default, `Strictness.documented_where_only`) takes exactly the grammar of
`shared.ssm.contract.where_violations`: `field op literal` joined by AND/OR (AND binds tighter),
op one of `=`, `>`, `LIKE`; literals double-quoted (no quote inside) or bare; field names as GET
answers name them. It runs on stored records (references as ids, dates as instants) through
`compile_documented`, which also tells which `id`/`extId`/reference equalities an index can
answer, so a look-up by `extId` stays O(matches) on a large tenant. `order=<field>` sorts
descending, ties by id descending, nulls last (`sort_descending`).

Semantics (SQL Server, which SSM runs on; assumed where the contract is silent): a comparison
with a null value is never true; `=` compares text without regard to case, references by their
id, booleans against 1/0/true/false; `>` on a date compares instants, and a date literal is
written `2024-05-01T10:00:00.123Z` (the fraction may be left out); LIKE takes `%` and `_`.

The loose mode keeps the earlier, permissive grammar for `Strictness(documented_where_only=False)`
and runs on records shaped as GET returns them (`compile_where`, `parse_order`, `order_records`):

    expr       := and_expr (OR and_expr)*
    and_expr   := not_expr (AND not_expr)*
    not_expr   := NOT not_expr | '(' expr ')' | condition
    condition  := field op value | field [NOT] LIKE string | field [NOT] IN '(' value, ... ')'
                | field IS [NOT] NULL
    op         := = | <> | != | > | < | >= | <=
    field      := name ('.' name)*          e.g. accountId.id, typeId.value
    value      := 'single' ('' inside) | "double" | number | TRUE | FALSE | NULL

Errors raise `WhereError`, which the simulator answers 400 with code 901.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any, Callable, Iterable

from shared.ssm.contract import (BOOLEAN, DATETIME, FLAG01, INTEGER, NUMBER, REF, REF_LIST, STRING)


class WhereError(ValueError):
    """The filter cannot be parsed or does not fit the records (unknown field, bad value)."""


def format_instant(moment: datetime) -> str:
    """ISO 8601 UTC with `Z` and a fraction of 0–3 digits, trailing zeros dropped [W1 examples]:
    `2021-12-14T11:53:29.16Z`, `2024-01-15T09:00:00Z`."""
    moment = moment.astimezone(timezone.utc)
    text = moment.strftime("%Y-%m-%dT%H:%M:%S")
    millis = moment.microsecond // 1000
    if millis:
        text += "." + f"{millis:03d}".rstrip("0")
    return text + "Z"


def _number_text(number: int | float) -> str:
    return str(int(number)) if isinstance(number, float) and number.is_integer() else str(number)


def _like_regex(pattern: str) -> re.Pattern:
    parts = [".*" if char == "%" else "." if char == "_" else re.escape(char) for char in pattern]
    return re.compile("".join(parts), re.IGNORECASE | re.DOTALL)


# =================================================================================================
# Documented mode
# =================================================================================================
@dataclass(frozen=True)
class Column:
    """A field as `where`/`order` name it: the key it is stored under and its contract type."""

    key: str
    type: str


_DOC_TOKEN = re.compile(r"""\s*(?:(?P<dq>"[^"]*")|(?P<op>=|>)|(?P<word>[^\s=<>!"'(),]+))""")
_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_KEYWORDS = {"AND", "OR", "LIKE"}
_DATE_LITERAL = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{1,3})?Z$")
_INTEGER_TEXT = re.compile(r"^-?\d+$")
_DECIMAL_TEXT = re.compile(r"^-?\d+(\.\d+)?$")
_TRUTH = {"1": True, "true": True, "0": False, "false": False}


@dataclass(frozen=True)
class _Condition:
    name: str
    key: str
    type: str
    op: str                  # "=", ">" or "LIKE"
    value: Any               # converted to the column's type (a compiled regex for LIKE)

    def __call__(self, stored: dict) -> bool:
        actual = stored.get(self.key)
        if actual is None:
            return False
        if self.op == "LIKE":
            return any(self.value.fullmatch(text) is not None for text in _texts(actual, self.type))
        if self.type == REF_LIST:
            values = actual if isinstance(actual, list) else [actual]
            return any(_test(v, self.op, self.value) for v in values)
        if self.type == STRING or not isinstance(actual, (int, float, datetime)):
            actual = str(actual).casefold()
        return _test(actual, self.op, self.value)


def _test(actual: Any, op: str, literal: Any) -> bool:
    try:
        return actual == literal if op == "=" else actual > literal
    except TypeError:
        return False


def _texts(actual: Any, kind: str) -> list[str]:
    values = actual if isinstance(actual, list) else [actual]
    texts = []
    for value in values:
        if isinstance(value, datetime):
            texts.append(format_instant(value))
        elif isinstance(value, bool):
            texts.append("1" if value else "0")
        elif isinstance(value, (int, float)):
            texts.append(_number_text(value))
        else:
            texts.append(str(value))
    return texts


class DocumentedFilter:
    """A compiled documented `where`: callable on a stored record; `candidates` narrows by index."""

    def __init__(self, groups: list[list[_Condition]]):
        self.groups = groups          # OR of AND groups

    def __call__(self, stored: dict) -> bool:
        return any(all(condition(stored) for condition in group) for group in self.groups)

    def candidates(self, lookup: Callable[[str, Any], "set[int] | None"]) -> set[int] | None:
        """The ids that may match, from `lookup(key, value)` (None: that key has no index), or
        None when some AND group has no indexed equality (the caller then scans)."""
        found: set[int] = set()
        for group in self.groups:
            best: set[int] | None = None
            for condition in group:
                if condition.op != "=":
                    continue
                ids = lookup(condition.key, condition.value)
                if ids is not None and (best is None or len(ids) < len(best)):
                    best = ids
            if best is None:
                return None
            found |= best
        return found


def compile_documented(text: str, columns: dict[str, Column]) -> DocumentedFilter:
    """The documented grammar (module docstring) over `columns` (read name → Column)."""
    tokens: list[tuple[str, str]] = []
    position = 0
    while position < len(text):
        if not text[position:].strip():
            break
        match = _DOC_TOKEN.match(text, position)
        if not match or match.end() == position:
            raise WhereError(f"cannot read the filter near '{text[position:position + 20].strip()}'")
        tokens.append((match.lastgroup, match.group(match.lastgroup)))
        position = match.end()
    if not tokens:
        raise WhereError("the filter is empty")
    groups: list[list[_Condition]] = [[]]
    index = 0
    while True:
        if index + 3 > len(tokens):
            raise WhereError("the filter is incomplete")
        (field_kind, name), (op_kind, op), (literal_kind, literal) = tokens[index:index + 3]
        if field_kind != "word" or not _NAME.match(name) or name.upper() in _KEYWORDS:
            raise WhereError(f"expected a field name, found '{name}'")
        column = columns.get(name)
        if column is None:
            raise WhereError(f"unknown field '{name}'")
        if op_kind == "word" and op.upper() == "LIKE":
            op = "LIKE"
        elif op_kind != "op":
            raise WhereError(f"'{op}' is not a documented operator (= > LIKE)")
        if literal_kind == "dq":
            literal = literal[1:-1]
        elif literal_kind != "word" or literal.upper() in _KEYWORDS:
            raise WhereError(f"'{literal}' is not a documented literal (double quotes or a bare value)")
        groups[-1].append(_Condition(name, column.key, column.type, op, _convert(name, column, op, literal)))
        index += 3
        if index == len(tokens):
            return DocumentedFilter(groups)
        kind, joiner = tokens[index]
        if kind != "word" or joiner.upper() not in ("AND", "OR"):
            raise WhereError(f"expected AND or OR, found '{joiner}'")
        if joiner.upper() == "OR":
            groups.append([])
        index += 1


def _convert(name: str, column: Column, op: str, literal: str) -> Any:
    if op == "LIKE":
        return _like_regex(literal)
    kind = column.type
    if kind in (INTEGER, REF, REF_LIST, NUMBER):
        pattern = _DECIMAL_TEXT if kind == NUMBER else _INTEGER_TEXT
        if not pattern.match(literal.strip()):
            raise WhereError(f"'{literal}' is not a number ({name})")
        text = literal.strip()
        return float(text) if "." in text else int(text)
    if kind in (BOOLEAN, FLAG01):
        truth = _TRUTH.get(literal.strip().casefold())
        if truth is None:
            raise WhereError(f"'{literal}' is not a boolean ({name}: 1, 0, true or false)")
        return truth
    if kind == DATETIME:
        if not _DATE_LITERAL.match(literal.strip()):
            raise WhereError(f"'{literal}' is not a date (write it 2024-05-01T10:00:00.123Z)")
        return datetime.fromisoformat(literal.strip().replace("Z", "+00:00"))
    return literal.casefold()


def sort_descending(records: Iterable[dict], column: Column) -> list[dict]:
    """`order=<field>`: descending [SW, DEV, W1], nulls last, ties by id descending."""
    def key(stored: dict) -> tuple:
        value = stored.get(column.key)
        if isinstance(value, list):
            value = value[0] if value else None
        if value is None:
            return (0, 0, stored["id"])
        if isinstance(value, str):
            return (1, value.casefold(), stored["id"])
        if isinstance(value, datetime):
            return (1, value.timestamp(), stored["id"])
        return (1, value, stored["id"])
    return sorted(records, key=key, reverse=True)


# =================================================================================================
# Loose mode (Strictness.documented_where_only = False): the earlier permissive grammar
# =================================================================================================
_TOKEN = re.compile(r"""
    \s*(?:
      (?P<string>'(?:[^']|'')*')
    | (?P<dqstring>"[^"]*")
    | (?P<number>-?\d+(?:\.\d+)?(?![A-Za-z_]))
    | (?P<op><>|!=|>=|<=|=|>|<)
    | (?P<lparen>\()
    | (?P<rparen>\))
    | (?P<comma>,)
    | (?P<name>[A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z_][A-Za-z0-9_]*)*)
    )""", re.VERBOSE)
_ISO_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}([T ]\d{2}:\d{2}(:\d{2}(\.\d+)?)?)?(Z|[+-]\d{2}:?\d{2})?$")
_LOOSE_KEYWORDS = {"AND", "OR", "NOT", "LIKE", "IN", "IS", "NULL", "TRUE", "FALSE"}


@dataclass(frozen=True)
class _Token:
    kind: str     # string, number, op, lparen, rparen, comma, name, keyword, end
    text: str
    value: Any = None


def _tokenize(text: str) -> list[_Token]:
    tokens: list[_Token] = []
    position = 0
    while position < len(text):
        if text[position:].strip() == "":
            break
        match = _TOKEN.match(text, position)
        if not match or match.end() == position:
            raise WhereError(f"cannot read the filter near '{text[position:position + 20].strip()}'")
        kind = match.lastgroup
        raw = match.group(kind)
        if kind == "string":
            tokens.append(_Token("string", raw, raw[1:-1].replace("''", "'")))
        elif kind == "dqstring":
            tokens.append(_Token("string", raw, raw[1:-1]))
        elif kind == "number":
            tokens.append(_Token("number", raw, float(raw) if "." in raw else int(raw)))
        elif kind == "name" and raw.upper() in _LOOSE_KEYWORDS:
            tokens.append(_Token("keyword", raw.upper()))
        else:
            tokens.append(_Token(kind, raw))
        position = match.end()
    tokens.append(_Token("end", ""))
    return tokens


Predicate = Callable[[dict], bool]


class _Parser:
    def __init__(self, text: str):
        self.tokens = _tokenize(text)
        self.index = 0

    def peek(self) -> _Token:
        return self.tokens[self.index]

    def take(self) -> _Token:
        token = self.tokens[self.index]
        self.index += 1
        return token

    def accept_keyword(self, word: str) -> bool:
        token = self.peek()
        if token.kind == "keyword" and token.text == word:
            self.index += 1
            return True
        return False

    def expect(self, kind: str, what: str) -> _Token:
        token = self.take()
        if token.kind != kind:
            raise WhereError(f"expected {what} but found '{token.text or 'the end'}'")
        return token

    def parse(self) -> Predicate:
        predicate = self.expr()
        if self.peek().kind != "end":
            raise WhereError(f"unexpected '{self.peek().text}'")
        return predicate

    def expr(self) -> Predicate:
        parts = [self.and_expr()]
        while self.accept_keyword("OR"):
            parts.append(self.and_expr())
        return parts[0] if len(parts) == 1 else (lambda r, ps=tuple(parts): any(p(r) for p in ps))

    def and_expr(self) -> Predicate:
        parts = [self.not_expr()]
        while self.accept_keyword("AND"):
            parts.append(self.not_expr())
        return parts[0] if len(parts) == 1 else (lambda r, ps=tuple(parts): all(p(r) for p in ps))

    def not_expr(self) -> Predicate:
        if self.accept_keyword("NOT"):
            inner = self.not_expr()
            return lambda r: not inner(r)
        if self.peek().kind == "lparen":
            self.take()
            inner = self.expr()
            self.expect("rparen", "')'")
            return inner
        return self.condition()

    def value(self) -> Any:
        token = self.take()
        if token.kind in ("string", "number"):
            return token.value
        if token.kind == "keyword" and token.text in ("TRUE", "FALSE"):
            return token.text == "TRUE"
        if token.kind == "keyword" and token.text == "NULL":
            return None
        raise WhereError(f"expected a value but found '{token.text or 'the end'}'")

    def condition(self) -> Predicate:
        field = self.expect("name", "a field name").text
        token = self.peek()
        if token.kind == "op":
            self.take()
            op = "<>" if token.text == "!=" else token.text
            literal = self.value()
            return lambda r: _compare(_field(r, field), op, literal)
        negate = self.accept_keyword("NOT")
        if self.accept_keyword("LIKE"):
            pattern = self.expect("string", "a quoted LIKE pattern").value
            regex = _like_regex(pattern)
            return lambda r: _like(_field(r, field), regex, negate)
        if self.accept_keyword("IN"):
            self.expect("lparen", "'(' after IN")
            values = [self.value()]
            while self.peek().kind == "comma":
                self.take()
                values.append(self.value())
            self.expect("rparen", "')' closing the IN list")
            return lambda r: _in(_field(r, field), values, negate)
        if negate:
            raise WhereError(f"expected LIKE or IN after NOT following '{field}'")
        if self.accept_keyword("IS"):
            is_not = self.accept_keyword("NOT")
            if not self.accept_keyword("NULL"):
                raise WhereError("expected NULL after IS")
            return lambda r: (_field(r, field) is None) != is_not
        raise WhereError(f"expected an operator after '{field}'")


def compile_where(text: str | None) -> Predicate:
    """Loose mode: a predicate over records as the API returns them; empty filter → everything."""
    if text is None or not text.strip():
        return lambda record: True
    return _Parser(text).parse()


def check_where(text: str | None, sample: dict) -> Predicate:
    """`compile_where`, then a trial run on `sample` so unknown fields fail even on empty lists."""
    predicate = compile_where(text)
    predicate(sample)
    return predicate


def _field(record: dict, path: str) -> Any:
    parts = path.split(".")
    if parts[0] not in record:
        raise WhereError(f"unknown field '{parts[0]}'")
    value = record[parts[0]]
    for part in parts[1:]:
        if value is None:
            return None
        if not isinstance(value, dict):
            raise WhereError(f"'{path}': '{parts[0]}' is not a reference")
        if part not in value:
            raise WhereError(f"'{path}': a reference has no '{part}'")
        value = value[part]
    if isinstance(value, dict) and "id" in value:
        return value["id"]
    return value


def _instant(text: str) -> datetime | None:
    if not isinstance(text, str) or not _ISO_DATE.match(text.strip()):
        return None
    try:
        moment = datetime.fromisoformat(text.strip().replace(" ", "T", 1).replace("Z", "+00:00"))
    except ValueError:
        return None
    return moment if moment.tzinfo else moment.replace(tzinfo=timezone.utc)


def _coerce(actual: Any, literal: Any) -> tuple[Any, Any]:
    """Both sides in one comparable type, SQL Server style, or WhereError."""
    if isinstance(actual, bool):
        if isinstance(literal, bool):
            return actual, literal
        if literal in (0, 1):
            return actual, bool(literal)
        if isinstance(literal, str) and literal.lower() in ("true", "false", "0", "1"):
            return actual, literal.lower() in ("true", "1")
        raise WhereError(f"'{literal}' is not a boolean")
    if isinstance(actual, (int, float)):
        if isinstance(literal, bool):
            return actual, int(literal)
        if isinstance(literal, (int, float)):
            return actual, literal
        try:
            return actual, float(literal)
        except (TypeError, ValueError):
            raise WhereError(f"'{literal}' is not a number") from None
    if isinstance(actual, str):
        left, right = _instant(actual), _instant(literal) if isinstance(literal, str) else None
        if left is not None and right is not None:
            return left, right
        if isinstance(literal, bool):
            literal = "1" if literal else "0"
        text = literal if isinstance(literal, str) else _number_text(literal)
        return actual.casefold(), text.casefold()
    raise WhereError("this field cannot be compared")


def _compare(actual: Any, op: str, literal: Any) -> bool:
    if actual is None or literal is None:
        return False
    left, right = _coerce(actual, literal)
    if op == "=":
        return left == right
    if op == "<>":
        return left != right
    if op == ">":
        return left > right
    if op == "<":
        return left < right
    if op == ">=":
        return left >= right
    return left <= right


def _in(actual: Any, values: list, negate: bool) -> bool:
    if actual is None:
        return False
    found = any(_compare(actual, "=", value) for value in values)
    return found != negate


def _like(actual: Any, regex: re.Pattern, negate: bool) -> bool:
    if actual is None:
        return False
    text = actual if isinstance(actual, str) else _number_text(actual) \
        if isinstance(actual, (int, float)) else str(actual)
    return (regex.fullmatch(text) is not None) != negate


def parse_order(order: str | None, known_fields: set[str]) -> list[tuple[str, bool]]:
    """Loose mode: `name, dateCreated ASC` → [("name", True), ("dateCreated", False)]
    (True = descending). A bare field name sorts descending, as the contract documents."""
    if order is None or not order.strip():
        return []
    terms = []
    for part in order.split(","):
        words = part.split()
        if not words or len(words) > 2:
            raise WhereError(f"cannot read the order '{order}'")
        name = words[0]
        descending = True
        if name.startswith("-"):
            name = name[1:]
        if len(words) == 2:
            if words[1].upper() not in ("ASC", "DESC"):
                raise WhereError(f"cannot read the order '{order}'")
            descending = words[1].upper() == "DESC"
        if name.split(".")[0] not in known_fields:
            raise WhereError(f"unknown field '{name}' in order")
        terms.append((name, descending))
    return terms


def order_records(records: list[dict], terms: list[tuple[str, bool]]) -> list[dict]:
    """Loose mode: sorted by the order terms, then by id in the first term's direction; nulls
    first ascending, last descending (SQL Server)."""
    first_descending = bool(terms) and terms[0][1]
    result = sorted(records, key=lambda r: r.get("id") or 0, reverse=first_descending)
    for name, descending in reversed(terms):
        present = [r for r in result if _field(r, name) is not None]
        absent = [r for r in result if _field(r, name) is None]
        present.sort(key=lambda r: _sortable(_field(r, name)), reverse=descending)
        result = (present + absent) if descending else (absent + present)
    return result


def _sortable(value: Any) -> tuple:
    if isinstance(value, str):
        instant = _instant(value)
        return (1, instant.timestamp()) if instant else (2, value.casefold())
    if isinstance(value, bool):
        return (0, int(value))
    if isinstance(value, (int, float)):
        return (0, value)
    return (3, str(value))
