"""The `where` filter of the SSM v4 API: a small parser and evaluator.

Grammar (keywords in any case):

    expr       := and_expr (OR and_expr)*
    and_expr   := not_expr (AND not_expr)*
    not_expr   := NOT not_expr | '(' expr ')' | condition
    condition  := field op value
                | field [NOT] LIKE string
                | field [NOT] IN '(' value (',' value)* ')'
                | field IS [NOT] NULL
    op         := = | <> | != | > | < | >= | <=
    field      := name ('.' name)*          e.g. accountId.id, typeId.value
    value      := 'quoted string' ('' inside) | number | TRUE | FALSE | NULL

Evaluation follows SQL Server, which SSM runs on: a comparison with NULL is never true (only
IS NULL matches), text compares without regard to case (assumed default collation), a quoted
ISO date compared with a date field compares as instants, and a reference field named without
`.id` compares its id. Errors raise `WhereError`, which the simulator answers as code 901.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any, Callable

_TOKEN = re.compile(r"""
    \s*(?:
      (?P<string>'(?:[^']|'')*')
    | (?P<number>-?\d+(?:\.\d+)?(?![A-Za-z_]))
    | (?P<op><>|!=|>=|<=|=|>|<)
    | (?P<lparen>\()
    | (?P<rparen>\))
    | (?P<comma>,)
    | (?P<name>[A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z_][A-Za-z0-9_]*)*)
    )""", re.VERBOSE)
_ISO_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}([T ]\d{2}:\d{2}(:\d{2}(\.\d+)?)?)?(Z|[+-]\d{2}:?\d{2})?$")
_KEYWORDS = {"AND", "OR", "NOT", "LIKE", "IN", "IS", "NULL", "TRUE", "FALSE"}


class WhereError(ValueError):
    """The filter cannot be parsed or does not fit the records (unknown field, bad value)."""


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
        elif kind == "number":
            tokens.append(_Token("number", raw, float(raw) if "." in raw else int(raw)))
        elif kind == "name" and raw.upper() in _KEYWORDS:
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
    """A predicate over records as the API returns them; empty filter → everything."""
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
        moment = datetime.fromisoformat(text.strip().replace(" ", "T", 1))
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


def _number_text(number: int | float) -> str:
    return str(int(number)) if isinstance(number, float) and number.is_integer() else str(number)


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


def _like_regex(pattern: str) -> re.Pattern:
    parts = []
    for char in pattern:
        parts.append(".*" if char == "%" else "." if char == "_" else re.escape(char))
    return re.compile("".join(parts), re.IGNORECASE | re.DOTALL)


def _like(actual: Any, regex: re.Pattern, negate: bool) -> bool:
    if actual is None:
        return False
    text = actual if isinstance(actual, str) else _number_text(actual) if isinstance(actual, (int, float)) else str(actual)
    return (regex.fullmatch(text) is not None) != negate


def parse_order(order: str | None, known_fields: set[str]) -> list[tuple[str, bool]]:
    """`name, dateCreated DESC` → [("name", False), ("dateCreated", True)] (True = descending)."""
    if order is None or not order.strip():
        return []
    terms = []
    for part in order.split(","):
        words = part.split()
        if not words or len(words) > 2:
            raise WhereError(f"cannot read the order '{order}'")
        name = words[0]
        descending = False
        if name.startswith("-"):
            name, descending = name[1:], True
        if len(words) == 2:
            if words[1].upper() not in ("ASC", "DESC"):
                raise WhereError(f"cannot read the order '{order}'")
            descending = words[1].upper() == "DESC"
        if name.split(".")[0] not in known_fields:
            raise WhereError(f"unknown field '{name}' in order")
        terms.append((name, descending))
    return terms


def order_records(records: list[dict], terms: list[tuple[str, bool]]) -> list[dict]:
    """Sorted by the order terms, then by id; nulls first ascending, last descending."""
    result = sorted(records, key=lambda r: r.get("id") or 0)
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
