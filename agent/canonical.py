"""Canonical records at the agent's pace: their JSON text, hash and validated form, computed fast.

`canonical_json`/`content_hash` give exactly `shared.envelope`'s text and hash with one JSON
encoder reused. `CanonicalForm.record` gives exactly `parse_record(entity, data).model_dump(
mode="json")` for the reader's already-normalised data by checking the models' constraints
itself (functions generated from the pydantic models, not rules written again) and hands
everything not plainly valid to pydantic, so invalid rows get pydantic's own errors; a model
with anything these checks do not understand always goes through pydantic, and a sample of
fast records is compared with pydantic's, any difference handing the entity over to pydantic.
"""
from __future__ import annotations

import copy
import datetime as dt
import hashlib
import json
import logging
import re
import types
import typing
from decimal import Decimal
from enum import Enum
from typing import Any, Callable, Optional

from annotated_types import MaxLen, MinLen
from pydantic import BaseModel, ValidationError
from pydantic.fields import FieldInfo
from pydantic.functional_validators import BeforeValidator

from shared import envelope, models
from shared.models import MODEL_BY_ENTITY, Entity

log = logging.getLogger(__name__)

VERIFY_EVERY = 1000

# --- canonical JSON ---------------------------------------------------------------------------

_JSON_FORMS: dict[type, Callable[[Any], Any]] = {Decimal: str, dt.datetime: dt.datetime.isoformat,
                                                 dt.date: dt.date.isoformat}


def _json_default(value: Any) -> Any:
    form = _JSON_FORMS.get(type(value))
    return form(value) if form is not None else envelope._json_default(value)


def _make_encoder() -> Callable[[Any], str]:
    make = getattr(json.encoder, "c_make_encoder", None)
    if make is None:
        return envelope.canonical_json
    encode = make(None, _json_default, json.encoder.encode_basestring, None, ":", ",", True, False, True)
    return lambda value: "".join(encode(value, 0))


canonical_json: Callable[[Any], str] = _make_encoder()
canonical_json.__doc__ = "Exactly `shared.envelope.canonical_json(value)` (the value must not contain itself)."


def content_hash(record: Optional[dict]) -> str:
    """Exactly `shared.envelope.content_hash(record)`."""
    if record is None:
        return ""
    return text_hash(canonical_json(record))


def text_hash(text: str) -> str:
    """The content hash of a record already written as canonical JSON."""
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


# --- the fast canonical form ------------------------------------------------------------------

class _NeedsPydantic(Exception):
    """The value is not plainly valid: pydantic decides (and words the error)."""


_UNKNOWN = object()
_SURROGATE = re.compile("[\ud800-\udfff]")  # text pydantic refuses (not valid Unicode)
_KNOWN_CONFIG = frozenset({"extra", "frozen", "str_strip_whitespace"})
_LONGEST_INT = 2 ** 63

# Before-validators of `shared.models` known to return a normalised value unchanged (stripped,
# non-empty text; a finite Decimal): the fast path does not call them. Any other one is called,
# and the value goes on only when the validator returns it as it is.
_UNCHANGING_VALIDATORS = (models._clean_text, models._clean_decimal)


def _unique_line_ids(lines: list[dict]) -> None:
    if len({line["line_id"] for line in lines}) != len(lines):
        raise _NeedsPydantic


# Field validators of `shared.models` (`Model.validator_name`) and the same check on JSON forms.
_KNOWN_FIELD_VALIDATORS: dict[str, Callable[[Any], None]] = {"Document._unique_line_ids": _unique_line_ids}


class _Compiler:
    """Writes, for each model, a function checking data and returning its JSON form.

    A value type is turned into Python statements reading `v` and setting `o` (renamed `o<field
    index>` in the model's function); every name the statements use is kept in `namespace`.
    """

    def __init__(self):
        self.namespace: dict[str, Any] = {"_NeedsPydantic": _NeedsPydantic, "_Decimal": Decimal, "_date": dt.date,
                                          "_Enum": Enum, "_LONGEST_INT": _LONGEST_INT, "_MISSING": _UNKNOWN,
                                          "_deepcopy": copy.deepcopy, "_surrogate": _SURROGATE.search}
        self.sources: dict[str, str] = {}
        self.functions: dict[type[BaseModel], str | None] = {}

    def name(self, value: Any, prefix: str) -> str:
        name = f"{prefix}{len(self.namespace)}"
        self.namespace[name] = value
        return name

    def model(self, model: type[BaseModel]) -> str | None:
        """The name of `model`'s function (raises `_NeedsPydantic`), None if the model is not understood."""
        if model not in self.functions:
            self.functions[model] = None
            self.functions[model] = self._model(model)
        return self.functions[model]

    def _model(self, model: type[BaseModel]) -> str | None:
        config = model.model_config
        if set(config) - _KNOWN_CONFIG or config.get("extra") not in (None, "forbid", "ignore"):
            return None
        decorators = model.__pydantic_decorators__
        if any((decorators.validators, decorators.root_validators, decorators.field_serializers,
                decorators.model_serializers, decorators.model_validators, decorators.computed_fields)):
            return None
        checks: dict[str, list[str]] = {}
        for name, decorator in decorators.field_validators.items():
            check = _KNOWN_FIELD_VALIDATORS.get(f"{model.__name__}.{name}")
            if check is None or len(decorator.info.fields) != 1 or decorator.info.mode != "after":
                return None
            checks.setdefault(decorator.info.fields[0], []).append(self.name(check, "check"))
        body = ["if type(data) is not dict: raise _NeedsPydantic"]
        if config.get("extra") == "forbid":
            body.append(f"if not data.keys() <= {self.name(frozenset(model.model_fields), 'fields')}:"
                        " raise _NeedsPydantic")
        outputs = []
        for index, (name, info) in enumerate(model.model_fields.items()):
            if info.default_factory is not None or info.alias or info.validation_alias or info.exclude:
                return None
            statements = self._field(info)
            if statements is None:
                return None
            statements = [re.sub(r"\bo\b", f"o{index}", line) for line in statements]
            if info.is_required():
                body += [f"v = data.get({name!r}, _MISSING)", "if v is _MISSING: raise _NeedsPydantic", *statements]
            else:
                default = self._default(statements, info.default, f"o{index}")
                if default is _UNKNOWN:
                    return None
                if default is None and statements[0] == "if v is None:":
                    body += [f"v = data.get({name!r})", *statements]  # missing and None give None alike
                else:
                    shared = default is None or type(default) in (bool, int, str)
                    missing = (f"o{index} = {self.name(default, 'default')}" if shared
                               else f"o{index} = _deepcopy({self.name(default, 'default')})")
                    body += [f"v = data.get({name!r}, _MISSING)", "if v is _MISSING:", f"    {missing}", "else:",
                             *_indent(statements)]
            body += [f"{check}(o{index})" for check in checks.get(name, [])]
            outputs.append(f"{name!r}: o{index}")
        function = f"dump_{model.__name__}_{len(self.namespace)}"
        source = "\n".join([f"def {function}(data):", *_indent(body), f"    return {{{', '.join(outputs)}}}"])
        exec(compile(source, f"<fast canonical form of {model.__name__}>", "exec"), self.namespace)
        self.sources[function] = source
        return function

    def _default(self, statements: list[str], default: Any, output: str) -> Any:
        """The JSON form of a field's default (pydantic does not validate defaults, only dumps them)."""
        scope = {**self.namespace, "v": default}
        try:
            exec("\n".join(statements), scope)
        except _NeedsPydantic:
            return _UNKNOWN
        return scope[output]

    def _field(self, info: FieldInfo) -> list[str] | None:
        validators = [item for item in info.metadata if isinstance(item, BeforeValidator)]
        constraints = [item for item in info.metadata if not isinstance(item, BeforeValidator)]
        if len(validators) > 1:
            return None
        statements = self._type(info.annotation, constraints)
        if statements is None or not validators or validators[0].func in _UNCHANGING_VALIDATORS:
            return statements
        validator = self.name(validators[0].func, "validator")
        return ["try:", f"    cleaned = {validator}(v)", "except Exception:", "    raise _NeedsPydantic from None",
                "if type(cleaned) is not type(v) or cleaned != v: raise _NeedsPydantic", *statements]

    def _type(self, annotation: Any, constraints: list) -> list[str] | None:
        """Statements checking a value of `annotation` (with its length constraints), None if unknown."""
        origin = typing.get_origin(annotation)
        if origin is typing.Annotated:
            inner, *metadata = typing.get_args(annotation)
            more = []
            for item in metadata:
                more += item.metadata if isinstance(item, FieldInfo) else [item]
            return self._type(inner, constraints + more)
        if origin in (typing.Union, types.UnionType):
            members = [member for member in typing.get_args(annotation) if member is not type(None)]
            if len(members) != 1 or len(members) == len(typing.get_args(annotation)):
                return None
            statements = self._type(members[0], constraints)
            if statements is None:
                return None
            return ["if v is None:", "    o = None", "else:", *_indent(statements)]
        lengths = {type(item): item for item in constraints}
        if set(lengths) - {MinLen, MaxLen} or len(lengths) != len(constraints):
            return None
        if annotation is str:
            shortest = max(lengths[MinLen].min_length if MinLen in lengths else 1, 1)
            longest = lengths[MaxLen].max_length if MaxLen in lengths else None
            size = f"{shortest} <= len(v)" + (f" <= {longest}" if longest is not None else "")
            return [f"if type(v) is not str or not {size} or v.strip() != v: raise _NeedsPydantic",
                    "if not v.isascii() and _surrogate(v) is not None: raise _NeedsPydantic",
                    "o = v"]
        if constraints:
            return None
        if annotation is bool:
            return ["if type(v) is not bool: raise _NeedsPydantic", "o = v"]
        if annotation is int:
            return ["if type(v) is not int or not -_LONGEST_INT <= v < _LONGEST_INT: raise _NeedsPydantic", "o = v"]
        if annotation is Decimal:
            return ["if type(v) is not _Decimal or not v.is_finite(): raise _NeedsPydantic", "o = str(v)"]
        if annotation is dt.date:
            return ["if type(v) is not _date: raise _NeedsPydantic", "o = v.isoformat()"]
        if isinstance(annotation, type) and issubclass(annotation, Enum):
            if not all(type(member.value) is str for member in annotation):
                return None
            return self._choice({**{member: member.value for member in annotation},
                                 **{member.value: member.value for member in annotation}})
        if origin is typing.Literal:
            values = typing.get_args(annotation)
            if not all(isinstance(value, Enum) and type(value.value) is str for value in values):
                return None
            return self._choice({value: value.value for value in values})
        if origin is tuple:
            arguments = typing.get_args(annotation)
            if len(arguments) == 2 and arguments[1] is Ellipsis and isinstance(arguments[0], type) \
                    and issubclass(arguments[0], BaseModel):
                item = self.model(arguments[0])
                if item is None:
                    return None
                return ["if type(v) is not list and type(v) is not tuple: raise _NeedsPydantic",
                        f"o = [{item}(element) for element in v]"]
        return None

    def _choice(self, choices: dict[Any, str]) -> list[str]:
        return [f"o = {self.name(choices, 'choices')}.get(v) if isinstance(v, (str, _Enum)) else None",
                "if o is None: raise _NeedsPydantic"]


def _indent(lines: list[str]) -> list[str]:
    return ["    " + line for line in lines]


_COMPILER = _Compiler()


def _fast_form(model: type[BaseModel]) -> Callable[[dict], dict] | None:
    """The fast JSON form of `model` (raises `_NeedsPydantic`), None if the model is not understood."""
    function = _COMPILER.model(model)
    return _COMPILER.namespace[function] if function is not None else None


class CanonicalForm:
    """The canonical record of one entity in JSON form, from the reader's mapped data.

    `record(data)` equals `shared.models.parse_record(entity, data).model_dump(mode="json")`
    and raises the same `pydantic.ValidationError`. The first fast record, and one in
    `verify_every` after it (never when 0), is checked against pydantic's.
    """

    def __init__(self, entity: Entity | str, *, verify_every: int = VERIFY_EVERY):
        self.entity = Entity(entity)
        self._fast = _fast_form(MODEL_BY_ENTITY[self.entity])
        self._verify_every = verify_every
        self._until_verified = 0 if verify_every else -1

    @property
    def fast(self) -> bool:
        """Whether plainly valid records are checked without pydantic."""
        return self._fast is not None

    def record(self, data: dict) -> dict:
        if self._fast is not None:
            try:
                fast = self._fast({**data, "entity": self.entity})
            except _NeedsPydantic:
                pass
            else:
                if self._until_verified:
                    self._until_verified -= 1
                    return fast
                self._until_verified = self._verify_every - 1
                try:
                    full = self._full(data)
                except ValidationError:
                    self._hand_over(data)
                    raise
                if canonical_json(full) != canonical_json(fast):
                    self._hand_over(data)
                return full
        return self._full(data)

    def _hand_over(self, data: dict) -> None:
        log.warning("the fast canonical form of %s %r differs from pydantic's; %s records are validated by"
                    " pydantic from now on", self.entity.value, data.get("key"), self.entity.value)
        self._fast = None

    def _full(self, data: dict) -> dict:
        return models.parse_record(self.entity, data).model_dump(mode="json")
