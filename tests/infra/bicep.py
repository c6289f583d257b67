"""A reader for the plain subset of Bicep our templates use (the Bicep compiler cannot run here).

It parses `param`, `var`, `resource` and `output` declarations, and the decorators of parameters
(`@minLength(2)`, `@allowed([...])`, ...); object and array literals become Python dicts and lists,
strings and numbers become Python values, and any other expression is kept as its source text
(`Expr`), so tests can check what is declared without evaluating Bicep.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path


class Expr(str):
    """An expression kept as Bicep source text (a reference, a function call, an interpolation)."""


class Interpolated(Expr):
    """A string with `${...}` interpolations, kept without its quotes."""


@dataclass
class Resource:
    symbol: str
    type: str
    api_version: str
    body: dict
    existing: bool = False


@dataclass
class BicepFile:
    params: dict[str, str] = field(default_factory=dict)              # name -> type
    param_defaults: dict[str, object] = field(default_factory=dict)   # name -> default, when it has one
    param_decorators: dict[str, dict[str, object]] = field(default_factory=dict)   # name -> {decorator: argument}
    variables: dict[str, object] = field(default_factory=dict)
    resources: dict[str, Resource] = field(default_factory=dict)
    outputs: dict[str, object] = field(default_factory=dict)

    def of_type(self, resource_type: str) -> list[Resource]:
        return [r for r in self.resources.values() if r.type == resource_type]


def _strip_comments(text: str) -> str:
    """The text without `//` and `/* */` comments; a `//` inside a string ('https://...') stays."""
    out, i, in_string = [], 0, False
    while i < len(text):
        c = text[i]
        if in_string:
            out.append(c)
            if c == "\\" and i + 1 < len(text):
                out.append(text[i + 1])
                i += 1
            elif c == "'":
                in_string = False
        elif text.startswith("//", i):
            end = text.find("\n", i)
            i = len(text) if end < 0 else end
            continue
        elif text.startswith("/*", i):
            end = text.find("*/", i + 2)
            i = len(text) if end < 0 else end + 2
            continue
        else:
            out.append(c)
            in_string = c == "'"
        i += 1
    return "".join(out)


class _Parser:
    def __init__(self, text: str):
        self.text = _strip_comments(text)
        self.pos = 0

    def ws(self):
        while self.pos < len(self.text) and self.text[self.pos] in " \t\r\n,":
            self.pos += 1

    def peek(self) -> str:
        self.ws()
        return self.text[self.pos] if self.pos < len(self.text) else ""

    def value(self):
        ch = self.peek()
        if ch == "{":
            return self.obj()
        if ch == "[":
            return self.arr()
        if ch == "'" and not self.text.startswith("'''", self.pos):
            start = self.pos
            s = self.string()
            if re.match(r"\s*[?.\[(]", self.text[self.pos:self.pos + 2]) and not self.text[self.pos:].lstrip().startswith(("}", "]")):
                return Expr(self.text[start:self.pos] + self.expr_rest())
            return s
        return self.expr()

    def string(self) -> str:
        assert self.text[self.pos] == "'"
        self.pos += 1
        out = []
        while self.text[self.pos] != "'":
            if self.text[self.pos] == "\\":
                out.append(self.text[self.pos + 1])
                self.pos += 2
                continue
            if self.text.startswith("${", self.pos):
                depth, start = 0, self.pos
                while True:
                    c = self.text[self.pos]
                    depth += c == "{"
                    depth -= c == "}"
                    self.pos += 1
                    if depth == 0:
                        break
                out.append(self.text[start:self.pos])
                continue
            out.append(self.text[self.pos])
            self.pos += 1
        self.pos += 1
        text = "".join(out)
        return Interpolated(text) if "${" in text else text

    def expr_rest(self) -> str:
        start, depth = self.pos, 0
        while self.pos < len(self.text):
            c = self.text[self.pos]
            if c == "'":
                self.string()
                continue
            if c in "([{":
                depth += 1
            elif c in ")]}":
                if depth == 0:
                    break
                depth -= 1
            elif c == "\n" and depth == 0:
                break
            self.pos += 1
        return self.text[start:self.pos].strip()

    def expr(self):
        raw = self.expr_rest()
        if raw in ("true", "false"):
            return raw == "true"
        if re.fullmatch(r"-?\d+", raw):
            return int(raw)
        return Expr(raw)

    def key(self) -> str:
        self.ws()
        if self.text[self.pos] == "'":
            return self.string()
        m = re.compile(r"[A-Za-z_$][\w$]*").match(self.text, self.pos)
        self.pos = m.end()
        return m.group(0)

    def obj(self) -> dict:
        self.pos += 1
        out = {}
        while self.peek() != "}":
            k = self.key()
            self.ws()
            assert self.text[self.pos] == ":", self.text[self.pos - 40:self.pos + 40]
            self.pos += 1
            out[k] = self.value()
        self.pos += 1
        return out

    def arr(self) -> list:
        self.pos += 1
        out = []
        while self.peek() != "]":
            out.append(self.value())
        self.pos += 1
        return out


_DECL = re.compile(
    r"^(?P<kind>param|var|resource|output)\s+(?P<name>\w+)\s*(?P<rest>[^\n=]*?)=\s*", re.M)


_DECORATOR = re.compile(r"^[ \t]*@(?P<name>\w+)\(", re.M)
_ANY_DECL = re.compile(r"^(?:param|var|resource|output|type|func|module)\s", re.M)


def _decorators(parser: _Parser) -> list[tuple[int, str, object]]:
    """(position, name, argument) of every decorator at the start of a line; a decorator with no
    argument has None, with several the list of them."""
    found = []
    for m in _DECORATOR.finditer(parser.text):
        parser.pos = m.end()
        args = []
        while parser.peek() != ")":
            args.append(parser.value())
        parser.pos += 1
        found.append((m.start(), m.group("name"), args[0] if len(args) == 1 else (args or None)))
    return found


def parse_bicep(path: str | Path) -> BicepFile:
    text = Path(path).read_text(encoding="utf-8")
    result = BicepFile()
    parser = _Parser(text)
    decorators = _decorators(parser)
    for m in _ANY_DECL.finditer(parser.text):
        mine = [d for d in decorators if d[0] < m.start()]
        decorators = [d for d in decorators if d[0] > m.start()]
        name = re.match(r"\w+\s+(\w+)", parser.text[m.start():]).group(1)
        if parser.text.startswith("param", m.start()):
            result.param_decorators[name] = {d[1]: d[2] for d in mine}
    for m in _DECL.finditer(parser.text):
        kind, name, rest = m.group("kind"), m.group("name"), m.group("rest").strip()
        parser.pos = m.end()
        value = parser.value()
        if kind == "param":
            result.params[name] = rest
            result.param_defaults[name] = value
        elif kind == "var":
            result.variables[name] = value
        elif kind == "output":
            result.outputs[name] = value
        else:
            t = re.match(r"'([^'@]+)@([^']+)'\s*(existing)?", rest)
            result.resources[name] = Resource(name, t.group(1), t.group(2), value, bool(t.group(3)))
    # params with defaults: `param x string = 'y'` — the regex above needs '='; add those without one.
    for m in re.finditer(r"^param\s+(\w+)\s+([^\n=]+)$", parser.text, re.M):
        result.params.setdefault(m.group(1), m.group(2).strip())
    return result


# --- a small evaluator for the expressions the names and checks use ----------------------------------
class BicepFail(Exception):
    """`fail('message')` was evaluated: the deployment would stop with this message."""


_TOKEN = re.compile(r"\s*(?:(?P<num>\d+)|(?P<str>')|(?P<name>[A-Za-z_]\w*)|(?P<op>=>|==|!=|&&|\|\||[()?:,!.\[\]]))")


class _Evaluator:
    """Evaluates a Bicep expression: literals, string interpolation, variables and parameters,
    function calls of `FUNCTIONS`, lambdas, `!`, `&&`, `||`, `==`, `!=`, `? :` and `.property`."""

    def __init__(self, template: "BicepFile", params: dict[str, object], scope: dict[str, object] | None = None):
        self.template, self.params, self.scope = template, params, dict(scope or {})

    # -- tokens
    def run(self, text: str) -> object:
        self.tokens = self._tokenize(text)
        self.i = 0
        value = self.ternary()
        assert self.i == len(self.tokens), f"unparsed: {self.tokens[self.i:]}"
        return value

    def _tokenize(self, text: str) -> list[tuple[str, object]]:
        out, pos = [], 0
        while pos < len(text.rstrip()):
            m = _TOKEN.match(text, pos)
            assert m, f"cannot read {text[pos:]!r}"
            if m.group("str"):
                parser = _Parser(text)
                parser.pos = m.end("str") - 1
                out.append(("str", str(parser.string())))
                pos = parser.pos
                continue
            kind = next(k for k in ("num", "name", "op") if m.group(k))
            out.append((kind, int(m.group(kind)) if kind == "num" else m.group(kind)))
            pos = m.end()
        return out

    def peek(self) -> tuple[str, object] | None:
        return self.tokens[self.i] if self.i < len(self.tokens) else None

    def take(self, op: str | None = None) -> tuple[str, object]:
        token = self.tokens[self.i]
        assert op is None or token == ("op", op), f"expected {op}, found {token}"
        self.i += 1
        return token

    def at(self, op: str) -> bool:
        return self.peek() == ("op", op)

    # -- grammar: ternary > or > and > equality > unary > postfix > primary
    def ternary(self) -> object:
        condition = self.logical_or()
        if not self.at("?"):
            return condition
        self.take("?")
        if condition:
            value = self.ternary()
            self.take(":")
            self._skip_ternary()
            return value
        self._skip_ternary()
        self.take(":")
        return self.ternary()

    def _skip_ternary(self) -> None:
        """Skip one operand without evaluating it (an untaken branch is never evaluated, as in ARM)."""
        depth = 0
        while self.i < len(self.tokens):
            kind, value = self.tokens[self.i]
            if kind == "op" and value in "([":
                depth += 1
            elif kind == "op" and value in ")]":
                if depth == 0:
                    return
                depth -= 1
            elif kind == "op" and value in (":", ",") and depth == 0:
                return
            self.i += 1

    def logical_or(self) -> object:
        value = self.logical_and()
        while self.at("||"):
            self.take()
            right = self.logical_and()
            value = value or right
        return value

    def logical_and(self) -> object:
        value = self.equality()
        while self.at("&&"):
            self.take()
            right = self.equality()
            value = value and right
        return value

    def equality(self) -> object:
        value = self.unary()
        while self.at("==") or self.at("!="):
            op = self.take()[1]
            right = self.unary()
            value = (value == right) if op == "==" else (value != right)
        return value

    def unary(self) -> object:
        if self.at("!"):
            self.take()
            return not self.unary()
        return self.postfix()

    def postfix(self) -> object:
        value = self.primary()
        while self.at(".") or self.at("["):
            if self.take()[1] == ".":
                value = value[self.take()[1]]
            else:
                key = self.ternary()
                self.take("]")
                value = value[key]
        return value

    def primary(self) -> object:
        kind, value = self.take()
        if kind == "num":
            return value
        if kind == "str":
            return self.interpolate(value)
        if kind == "op" and value == "(":
            inner = self.ternary()
            self.take(")")
            return inner
        assert kind == "name", f"unexpected {value!r}"
        if value in ("true", "false"):
            return value == "true"
        if self.at("=>"):                                   # a lambda: kept as a Python callable
            self.take("=>")
            start = self.i
            self._skip_ternary()
            body = self.tokens[start:self.i]
            return lambda arg, name=value, body=body: self._call_lambda(name, arg, body)
        if self.at("("):
            self.take("(")
            args = []
            while not self.at(")"):
                args.append(self.ternary())
                if self.at(","):
                    self.take(",")
            self.take(")")
            return FUNCTIONS[value](*args)
        return self.lookup(value)

    def _call_lambda(self, name: str, arg: object, body: list) -> object:
        inner = _Evaluator(self.template, self.params, {**self.scope, name: arg})
        inner.tokens, inner.i = body, 0
        return inner.ternary()

    def lookup(self, name: str) -> object:
        if name in self.scope:
            return self.scope[name]
        if name in self.params:
            return self.params[name]
        if name in self.template.variables:
            return evaluate(self.template, self.template.variables[name], self.params)
        if name in self.template.param_defaults:
            return evaluate(self.template, self.template.param_defaults[name], self.params)
        raise KeyError(f"unknown name {name}")

    def interpolate(self, text: str) -> str:
        def substitute(match: re.Match) -> str:
            return str(_Evaluator(self.template, self.params, self.scope).run(match.group(1)))
        return re.sub(r"\$\{(.*?)\}", substitute, text)


def _unique_string(*parts: object) -> str:
    import base64
    import hashlib
    digest = hashlib.sha256("|".join(map(str, parts)).encode()).digest()
    return base64.b32encode(digest).decode().lower().replace("=", "")[:13]


def _fail(message: str):
    raise BicepFail(message)


FUNCTIONS = {
    "take": lambda value, count: value[:count],
    "empty": lambda value: len(value) == 0,
    "length": len,
    "range": lambda start, count: list(range(start, start + count)),
    "filter": lambda items, predicate: [x for x in items if predicate(x)],
    "contains": lambda container, item: item in container,
    "substring": lambda text, start, length: text[start:start + length],
    "toLower": str.lower,
    "uniqueString": _unique_string,
    "fail": _fail,
    "resourceGroup": lambda: {"id": "/subscriptions/00000000-0000-0000-0000-000000000000/resourceGroups/rg-ssmconn",
                              "name": "rg-ssmconn", "location": "francecentral"},
    "subscription": lambda: {"id": "/subscriptions/00000000-0000-0000-0000-000000000000",
                             "tenantId": "11111111-1111-1111-1111-111111111111"},
}


def evaluate(template: "BicepFile", value: object, params: dict[str, object]) -> object:
    """The value of a parsed Bicep value (an `Expr`, an interpolated string, a literal, a dict or
    list of them) for these parameter values (the others take their defaults).

    Raises:
        BicepFail: the expression reached `fail(...)`.
    """
    if isinstance(value, dict):
        return {k: evaluate(template, v, params) for k, v in value.items()}
    if isinstance(value, list):
        return [evaluate(template, v, params) for v in value]
    if isinstance(value, Interpolated):
        return _Evaluator(template, params).interpolate(value)
    if isinstance(value, Expr):
        return _Evaluator(template, params).run(value)
    return value
