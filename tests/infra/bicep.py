"""A reader for the plain subset of Bicep our templates use (the Bicep compiler cannot run here).

It parses `param`, `var`, `resource` and `output` declarations; object and array literals become
Python dicts and lists, strings and numbers become Python values, and any other expression is kept
as its source text (`Expr`), so tests can check what is declared without evaluating Bicep.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path


class Expr(str):
    """An expression kept as Bicep source text (a reference, a function call, an interpolation)."""


@dataclass
class Resource:
    symbol: str
    type: str
    api_version: str
    body: dict
    existing: bool = False


@dataclass
class BicepFile:
    params: dict[str, str] = field(default_factory=dict)
    variables: dict[str, object] = field(default_factory=dict)
    resources: dict[str, Resource] = field(default_factory=dict)
    outputs: dict[str, object] = field(default_factory=dict)

    def of_type(self, resource_type: str) -> list[Resource]:
        return [r for r in self.resources.values() if r.type == resource_type]


class _Parser:
    def __init__(self, text: str):
        self.text = re.sub(r"//[^\n]*", "", text)
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
        return Expr(text) if "${" in text else text

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


def parse_bicep(path: str | Path) -> BicepFile:
    text = Path(path).read_text(encoding="utf-8")
    result = BicepFile()
    parser = _Parser(text)
    for m in _DECL.finditer(parser.text):
        kind, name, rest = m.group("kind"), m.group("name"), m.group("rest").strip()
        parser.pos = m.end()
        value = parser.value()
        if kind == "param":
            result.params[name] = rest
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
