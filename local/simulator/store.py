"""The simulator's data: a thread-safe record store whose every rule comes from `shared.ssm.contract`.

There is no schema here: resources, fields, types, lengths, references, required and server-set
fields, read names and label fields are read from `contract.RESOURCES`, and writes are checked
with `contract.body_violations` (unknown and server-set fields, types, lengths, choices, ranges,
required on create, required not emptied by PUT) under the simulator's `Strictness`. The store
adds what only a server can know: a reference (REF or REF_LIST) to a record that does not exist
(400, code 910; a soft-deleted target still exists), an unknown id (400 "… does not exist", code
910; never 404), a PUT on a deleted record and a DELETE of a deleted one (both 400: a strict
choice, the contract is silent), the tenant's custom `Z_*` fields with their types, and
read-only records that ordinary users may not change (the integration keys may, unless
`Strictness.read_only_binds_integration`: Sage's own connectors keep updating read-only clients).

Records are stored as written (references as plain ids, dates as instants) and rendered as GET
returns them: every contract field under its read name, null when unset; references
`{"id": N, "value": label}` (`{"id": N, "description": label}` on users, whose `branches` reads
back as one object of the first branch); `/sales` `deleted` as 0/1; dates ISO 8601 UTC with `Z`
and a 0–3 digit fraction; `salesRepIdCreated/Updated/Deleted` the acting user's id. A label joins
the target's `label_fields`, except language descriptions, of which the first filled one is used.

Indexes keep `id`, `extId` (case-folded) and reference equalities O(matches) on a large tenant;
a listing with the same filter is cached until the resource changes, so reading page after page
costs one scan.
"""
from __future__ import annotations

import random
import secrets
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field as dataclass_field
from datetime import datetime, timedelta, timezone
from itertools import islice
from typing import Any, Callable

from local.simulator.where import (Column, WhereError, check_where, compile_documented, format_instant,
                                   order_records, parse_order, sort_descending)
from shared.ssm import contract
from shared.ssm.contract import (BOOLEAN, CODE_RESOURCE_MISSING, CODE_SQL_GENERATION, DATETIME, FLAG01,
                                 INTEGER, NUMBER, REF, REF_LIST, RESOURCES, STRICT, STRING, Field, Resource,
                                 Strictness)

__all__ = ["STRING", "NUMBER", "INTEGER", "BOOLEAN", "DATETIME", "SimError", "Store", "ManualClock",
           "Principal", "INTEGRATION", "RejectRule", "system_clock", "iso_stamp",
           "CODE_RESOURCE_MISSING", "CODE_SQL_GENERATION"]

CUSTOM_FIELD_TYPES = (STRING, NUMBER, INTEGER, BOOLEAN, DATETIME)

iso_stamp = format_instant

# Where the bookkeeping of a record lives: SERVER_SET names on entities, snake_case on webhooks.
_BOOKKEEPING = {"created": "dateCreated", "updated": "dateUpdated", "deleted_at": "dateDeleted",
                "by_created": "salesRepIdCreated", "by_updated": "salesRepIdUpdated",
                "by_deleted": "salesRepIdDeleted"}
_HOOK_BOOKKEEPING = {"created": "date_created", "updated": "date_updated", "deleted_at": "date_deleted",
                     "by_created": "user_created", "by_updated": "user_updated", "by_deleted": "user_deleted"}

# A line follows the read-only flag of its sales order (simulator behaviour, SW "readOnly").
_PARENTS = {"salesordersLines": ("salesOrderId", "salesorders")}


class SimError(Exception):
    """An error answer: HTTP status, SSM's message and, when one applies, its application code."""

    def __init__(self, status: int, message: str, code: int | None = None):
        super().__init__(message)
        self.status = status
        self.message = message
        self.code = code


class ManualClock:
    """A clock for tests: fixed until `advance` is called; thread-safe."""

    def __init__(self, start: datetime | None = None):
        self._now = start or datetime(2024, 1, 15, 9, 0, tzinfo=timezone.utc)
        self._lock = threading.Lock()

    def __call__(self) -> datetime:
        with self._lock:
            return self._now

    def advance(self, seconds: float = 1.0) -> datetime:
        with self._lock:
            self._now += timedelta(seconds=seconds)
            return self._now


def system_clock() -> datetime:
    return datetime.now(timezone.utc)


@dataclass(frozen=True)
class Principal:
    """Who sends a request: the integration (the connector's keys) or an ordinary SSM user."""

    is_integration: bool
    user_id: int | None = None


INTEGRATION = Principal(True)


@dataclass
class RejectRule:
    resource: str
    field: str
    predicate: Callable[[Any], bool]
    message: str


def _instant(moment: datetime) -> datetime:
    """UTC, rounded down to the millisecond (SSM keeps about 3 ms)."""
    moment = moment if moment.tzinfo else moment.replace(tzinfo=timezone.utc)
    moment = moment.astimezone(timezone.utc)
    return moment.replace(microsecond=moment.microsecond // 1000 * 1000)


@dataclass
class _Table:
    """One resource's records and indexes."""

    res: Resource
    next_id: int
    records: dict[int, dict] = dataclass_field(default_factory=dict)
    custom: dict[str, Field] = dataclass_field(default_factory=dict)
    indexes: dict[str, dict[Any, set[int]]] = dataclass_field(default_factory=dict)
    version: int = 0
    cache: tuple | None = None          # ((version, mode, where, order), [ids]) of the last listing

    @property
    def bookkeeping(self) -> dict[str, str]:
        return _HOOK_BOOKKEEPING if self.res.field("date_created") else _BOOKKEEPING

    @property
    def ext_id_field(self) -> Field | None:
        return self.res.field("extId") or self.res.field("extID")


class _View(Mapping):
    """A stored record seen as GET returns it, each field rendered on access (loose `where`)."""

    __slots__ = ("_store", "_table", "_stored", "_names")

    def __init__(self, store: "Store", table: _Table, stored: dict):
        self._store = store
        self._table = table
        self._stored = stored
        self._names = store._read_names(table)

    def __getitem__(self, name: str) -> Any:
        f = self._names[name]
        return self._store._render_value(self._table, f, self._stored.get(f.name))

    def __iter__(self):
        return iter(self._names)

    def __len__(self) -> int:
        return len(self._names)


class Store:
    """The records of one simulated tenant."""

    def __init__(self, *, clock: Callable[[], datetime], rng: random.Random,
                 strictness: Strictness = STRICT):
        self._clock = clock
        self.strictness = strictness
        self._lock = threading.RLock()
        self._tables: dict[str, _Table] = {}
        for name, res in RESOURCES.items():
            table = _Table(res, rng.randint(11, 4000))
            indexed = [f.name for f in res.fields if f.type == REF and not f.server_set]
            if table.ext_id_field is not None:
                indexed.append(table.ext_id_field.name)
            table.indexes = {name_: {} for name_ in indexed}
            self._tables[name] = table
        self.reject_rules: list[RejectRule] = []
        self.integration_user_id: int | None = None      # the integration acts as this user
        self.on_change: Callable[[str, str, int], None] | None = None   # (resource, action, id)

    # --- resources and custom fields -----------------------------------------------------------
    def table(self, resource: str) -> _Table:
        table = self._tables.get(resource)
        if table is None:
            raise SimError(400, f"No such resource: /{resource}", CODE_RESOURCE_MISSING)
        return table

    def add_custom_field(self, resource: str, name: str, type: str = STRING,
                         max_length: int | None = None) -> None:
        """Declare a tenant custom field `Z_<name>` (as an administrator does in SSM)."""
        table = self.table(resource)
        if not table.res.custom_fields:
            raise ValueError(f"{resource} has no custom fields in the contract")
        if not name.startswith("Z_"):
            raise ValueError("custom fields are named Z_...")
        if type not in CUSTOM_FIELD_TYPES:
            raise ValueError(f"custom field type must be one of {', '.join(CUSTOM_FIELD_TYPES)}")
        with self._lock:
            table.custom[name] = Field(name, type, max_length if type == STRING else None)
            table.version += 1

    def custom_field_names(self) -> dict[str, tuple[str, ...]]:
        """Resource → its custom field names (for `contract.request_violations`)."""
        with self._lock:
            return {name: tuple(t.custom) for name, t in self._tables.items() if t.custom}

    def schema(self, resource: str) -> dict:
        """`GET /<resource>/schema`: the contract fields under their read names, without the
        custom fields (whether SSM lists them there is undocumented: the strict side)."""
        table = self.table(resource)
        return {"properties": {f.read_name: self._schema_entry(table, f) for f in table.res.fields}}

    def extra_schema(self, resource: str) -> dict:
        """`GET /extrafields/<resource>/schema`: the tenant's custom fields."""
        table = self._tables.get(resource)
        custom = dict(table.custom) if table else {}
        return {"properties": {name: self._schema_entry(table, f) for name, f in custom.items()}}

    @staticmethod
    def _schema_entry(table: _Table | None, f: Field) -> dict:
        kinds = {STRING: "string", INTEGER: "integer", NUMBER: "number", BOOLEAN: "boolean",
                 DATETIME: "string", REF: "object", REF_LIST: "array", FLAG01: "integer"}
        entry: dict[str, Any] = {"description": f.read_name, "type": [kinds.get(f.type, "string"), "null"],
                                 "readOnly": f.server_set}
        if f.max_length:
            entry["maxLength"] = f.max_length
        if f.type == DATETIME:
            entry["format"] = "date-time"
        if f.type in (REF, REF_LIST):
            label = table.res.ref_label if table else "value"
            entry["properties"] = {"id": {"type": "integer"}, label: {"type": "string"}}
            entry["required"] = ["id"]
            entry["table"] = f.ref
        return entry

    # --- reading ------------------------------------------------------------------------------
    def _read_names(self, table: _Table) -> dict[str, Field]:
        names = {f.read_name: f for f in table.res.fields}
        names.update(table.custom)
        return names

    def render(self, resource: str, stored: dict) -> dict:
        table = self._tables[resource]
        with self._lock:
            return self._render(table, stored)

    def _render(self, table: _Table, stored: dict) -> dict:
        out = {f.read_name: self._render_value(table, f, stored.get(f.name)) for f in table.res.fields}
        for name in table.custom:
            out[name] = stored.get(name)
        return out

    def _render_value(self, table: _Table, f: Field, value: Any) -> Any:
        if value is None:
            return None
        kind = f.type
        if kind == DATETIME:
            return format_instant(value) if isinstance(value, datetime) else value
        if kind == FLAG01:
            return 1 if value else 0
        if kind == REF:
            return self._reference(table.res.ref_label, f.ref, value)
        if kind == REF_LIST:
            if table.res.name == "users" and f.name == "branches":     # one object [W1 examples]
                return self._reference(table.res.ref_label, f.ref, value[0]) if value else None
            return [self._reference(table.res.ref_label, f.ref, v) for v in value]
        return value

    def _reference(self, label_key: str, target: str, target_id: int) -> dict:
        return {"id": target_id, label_key: self._label(target, target_id)}

    def _label(self, target: str, target_id: int) -> str:
        table = self._tables.get(target)
        stored = table.records.get(target_id) if table else None
        if stored is None:
            return ""
        names = table.res.label_fields
        values = [str(stored[n]) for n in names if stored.get(n) not in (None, "")]
        if names and all(n.startswith("description") for n in names):
            return values[0] if values else ""
        return " ".join(values)

    def get(self, resource: str, record_id: int) -> dict:
        table = self.table(resource)
        with self._lock:
            return self._render(table, self._stored(table, record_id))

    def all(self, resource: str, *, include_deleted: bool = True) -> list[dict]:
        table = self.table(resource)
        with self._lock:
            return [self._render(table, r) for r in table.records.values()
                    if include_deleted or not r.get("deleted")]

    def find_ext_id(self, resource: str, ext_id: str) -> list[int]:
        """Ids whose extId equals `ext_id` without regard to case (from the index)."""
        table = self.table(resource)
        f = table.ext_id_field
        if f is None:
            return []
        with self._lock:
            return sorted(table.indexes[f.name].get(ext_id.casefold(), ()))

    def query(self, resource: str, *, where: str | None, order: str | None, page: int, size: int) -> list[dict]:
        """One page (0-based) of the records matching `where`, deleted ones included, sorted by
        `order` (descending) or by id when no order is given."""
        table = self.table(resource)
        where = where if where and where.strip() else None
        order = order.strip() if order and order.strip() else None
        with self._lock:
            if where is None and order is None and page * size < 5000:
                rows = islice(table.records.values(), page * size, (page + 1) * size)
                return [self._render(table, r) for r in rows]
            key = (table.version, self.strictness.documented_where_only, where, order)
            cached = table.cache
            if cached is not None and cached[0] == key:
                ids = cached[1]
            else:
                try:
                    if self.strictness.documented_where_only:
                        ids = self._select_documented(table, where, order)
                    else:
                        ids = self._select_loose(table, where, order)
                except WhereError as exc:
                    raise SimError(400, f"Error generating the SQL query: {exc}", CODE_SQL_GENERATION) from None
                table.cache = (key, ids)
            return [self._render(table, table.records[i]) for i in ids[page * size:(page + 1) * size]]

    def _columns(self, table: _Table) -> dict[str, Column]:
        return {name: Column(f.name, f.type) for name, f in self._read_names(table).items()}

    def _select_documented(self, table: _Table, where: str | None, order: str | None) -> list[int]:
        columns = self._columns(table)
        records = table.records
        if where is None:
            selected = list(records.values())
        else:
            compiled = compile_documented(where, columns)
            candidates = compiled.candidates(lambda key, value: self._lookup(table, key, value))
            if candidates is None:
                selected = [r for r in records.values() if compiled(r)]
            else:
                selected = [records[i] for i in sorted(candidates) if i in records and compiled(records[i])]
        if order is not None:
            column = columns.get(order)
            if column is None or order in table.custom:
                raise WhereError(f"cannot order by '{order}': one field name only")
            selected = sort_descending(selected, column)
        return [r["id"] for r in selected]

    def _lookup(self, table: _Table, key: str, value: Any) -> set[int] | None:
        if key == "id":
            return {value} if isinstance(value, int) and value in table.records else set()
        index = table.indexes.get(key)
        if index is None:
            return None
        return index.get(value, set())

    def _select_loose(self, table: _Table, where: str | None, order: str | None) -> list[int]:
        views = [_View(self, table, r) for r in table.records.values()]
        sample = _View(self, table, {})
        predicate = check_where(where, sample)
        terms = parse_order(order, set(sample))
        selected = order_records([v for v in views if predicate(v)], terms)
        return [v["id"] for v in selected]

    # --- writing ------------------------------------------------------------------------------
    def create(self, resource: str, body: Any, principal: Principal = INTEGRATION, *,
               checked: bool = False) -> int:
        """POST: `checked` when `contract.request_violations` already ran on the request."""
        table = self.table(resource)
        with self._lock:
            values = self._check_write(table, body, creating=True, checked=checked)
            self._check_parent_editable(table, values, principal)
            record_id = self._insert(table, values, principal)
        self._changed(resource, "insert", record_id)
        return record_id

    def seed(self, resource: str, body: dict) -> int:
        """Create as the tenant's set-up does: validated against the contract, but any resource
        may be filled, even those the API only reads (branches, statuses, currencies…)."""
        return self.create(resource, body)

    def update(self, resource: str, record_id: int, body: Any, principal: Principal = INTEGRATION, *,
               checked: bool = False) -> None:
        table = self.table(resource)
        with self._lock:
            stored = self._stored(table, record_id)
            if stored.get("deleted"):
                raise SimError(400, f"The {resource} record {record_id} is deleted and cannot be changed")
            self._check_editable(table, stored, principal)
            values = self._check_write(table, body, creating=False, checked=checked)
            self._check_parent_editable(table, values, principal)
            self._unindex(table, stored)
            stored.update(values)
            now = _instant(self._clock())
            marks = table.bookkeeping
            stored[marks["updated"]] = now
            stored[marks["by_updated"]] = self._actor(principal)
            if "internalComment" in values and table.res.field("internalCommentUpdateDate"):
                stored["internalCommentUpdateDate"] = now
                stored["internalCommentUpdateSalesRepId"] = self._actor(principal)
            self._index(table, stored)
            table.version += 1
        self._changed(resource, "update", record_id)

    def delete(self, resource: str, record_id: int, principal: Principal = INTEGRATION) -> None:
        """Soft delete: the record stays listed with `deleted` and `dateDeleted` set; `dateUpdated`
        is left alone [W1]."""
        table = self.table(resource)
        with self._lock:
            stored = self._stored(table, record_id)
            if stored.get("deleted"):
                raise SimError(400, f"The {resource} record {record_id} is already deleted")
            self._check_editable(table, stored, principal)
            marks = table.bookkeeping
            stored["deleted"] = True
            stored[marks["deleted_at"]] = _instant(self._clock())
            stored[marks["by_deleted"]] = self._actor(principal)
            table.version += 1
        self._changed(resource, "delete", record_id)

    def _changed(self, resource: str, action: str, record_id: int) -> None:
        if self.on_change is not None:
            self.on_change(resource, action, record_id)

    def _actor(self, principal: Principal) -> int | None:
        return self.integration_user_id if principal.is_integration else principal.user_id

    def _insert(self, table: _Table, values: dict, principal: Principal) -> int:
        record_id = table.next_id
        table.next_id += 1
        marks = table.bookkeeping
        stored = dict(values)
        stored.update({"id": record_id, marks["created"]: _instant(self._clock()),
                       marks["by_created"]: self._actor(principal), "deleted": False})
        if table.res.name == "hooks":
            stored["secret_key"] = secrets.token_hex(20)
            stored.setdefault("version", 4)
        if "internalComment" in values and table.res.field("internalCommentUpdateDate"):
            stored["internalCommentUpdateDate"] = stored[marks["created"]]
            stored["internalCommentUpdateSalesRepId"] = self._actor(principal)
        table.records[record_id] = stored
        self._index(table, stored)
        table.version += 1
        return record_id

    def _index(self, table: _Table, stored: dict) -> None:
        for key, index in table.indexes.items():
            value = stored.get(key)
            if value is not None:
                index.setdefault(value.casefold() if isinstance(value, str) else value, set()).add(stored["id"])

    def _unindex(self, table: _Table, stored: dict) -> None:
        for key, index in table.indexes.items():
            value = stored.get(key)
            if value is not None:
                ids = index.get(value.casefold() if isinstance(value, str) else value)
                if ids is not None:
                    ids.discard(stored["id"])

    # --- checks -------------------------------------------------------------------------------
    def _stored(self, table: _Table, record_id: int) -> dict:
        stored = table.records.get(record_id)
        if stored is None:
            raise SimError(400, f"The {table.res.name} record {record_id} does not exist",
                           CODE_RESOURCE_MISSING)
        return stored

    def _check_write(self, table: _Table, body: Any, *, creating: bool, checked: bool) -> dict:
        """The values to store, or SimError: the contract's static checks (unless `checked`), then
        custom field types, references to existing records and `reject_field` rules."""
        res = table.res
        if not checked:
            problems = contract.body_violations(res, body, creating=creating, strict=self.strictness,
                                                custom_fields=table.custom)
            if problems:
                raise SimError(400, problems[0].message, problems[0].code)
        values: dict[str, Any] = {}
        for name, value in body.items():
            f = res.field(name)
            if f is None:
                custom = table.custom.get(name)
                if custom is None:
                    continue                  # ignored (only reachable with refuse_unknown_fields off)
                problem = contract.value_problem(res, custom, value, self.strictness)
                if problem:
                    raise SimError(400, problem)
                values[name] = _instant(contract.parse_datetime(value)) \
                    if custom.type == DATETIME and value is not None else value
                continue
            if f.server_set:
                continue                      # ignored (only reachable with refuse_server_set_fields off)
            if value is not None and f.type == REF:
                self._check_reference(f, value)
            elif value is not None and f.type == REF_LIST:
                for target_id in value:
                    self._check_reference(f, target_id)
                value = list(value)
            elif value is not None and f.type == DATETIME:
                value = _instant(contract.parse_datetime(value))
            values[name] = value
        for rule in self.reject_rules:
            if rule.resource == res.name and rule.field in body and rule.predicate(body[rule.field]):
                raise SimError(400, rule.message)
        return values

    def _check_reference(self, f: Field, target_id: int) -> None:
        target = self._tables.get(f.ref)
        if target is None or target_id not in target.records:
            raise SimError(400, f"{f.name}: the {f.ref} record {target_id} does not exist",
                           CODE_RESOURCE_MISSING)

    def _bound_by_read_only(self, principal: Principal) -> bool:
        return not principal.is_integration or self.strictness.read_only_binds_integration

    def _check_editable(self, table: _Table, stored: dict, principal: Principal) -> None:
        if not self._bound_by_read_only(principal):
            return
        if stored.get("readOnly"):
            raise SimError(400, f"The {table.res.name} record {stored['id']} is read-only: it cannot "
                                f"be modified or deleted")
        self._check_parent_editable(table, stored, principal)

    def _check_parent_editable(self, table: _Table, values: dict, principal: Principal) -> None:
        parent = _PARENTS.get(table.res.name)
        if parent is None or not self._bound_by_read_only(principal):
            return
        link, parent_resource = parent
        record = self._tables[parent_resource].records.get(values.get(link))
        if record and record.get("readOnly"):
            raise SimError(400, f"The {parent_resource} record {record['id']} is read-only: its "
                                f"lines cannot be modified")
