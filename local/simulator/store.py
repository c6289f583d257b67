"""The simulator's data: the SSM v4 entity schemas as a table, and a thread-safe record store.

Records are stored as written (references as plain ids) and rendered as the API returns them:
references become `{"id": N, "value": "label"}` (`{"id", "description"}` for users), every field
of the schema is present (null when unset), and `id`, `extId`, `dateCreated`, `dateUpdated`,
`dateDeleted`, `deleted` are on every entity. Writes are validated as SSM does: unknown or
system fields, types, maximum lengths, required fields, references to records that do not exist
(code 910), and read-only records that only the integration may change.

What the public documentation does not give is assumed and marked so in SCHEMAS: maximum
lengths, the fields beyond the documented ones, required fields of users, sales, product
families, and "model or description" for products (an unnamed product would be unusable).
"""
from __future__ import annotations

import random
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any, Callable

from local.simulator.where import WhereError, check_where, order_records, parse_order

STRING, TEXT, INTEGER, NUMBER, BOOLEAN, DATETIME, REF = (
    "string", "text", "integer", "number", "boolean", "datetime", "reference")

CODE_DATABASE, CODE_SQL_GENERATION, CODE_RESOURCE_MISSING = 900, 901, 910


class SimError(Exception):
    """An error answer: HTTP status, SSM's message and, when SSM gives one, its application code."""

    def __init__(self, status: int, message: str, code: int | None = None):
        super().__init__(message)
        self.status = status
        self.message = message
        self.code = code


@dataclass(frozen=True)
class FieldSpec:
    name: str
    type: str
    max_length: int | None = None
    ref: str | None = None          # the resource a reference points to
    required: bool = False          # required on create, cannot be emptied later
    system: bool = False            # maintained by SSM, refused on write


@dataclass(frozen=True)
class ResourceSpec:
    name: str
    fields: tuple[FieldSpec, ...]
    label: Callable[[dict], str]    # how a reference to one of these records is labelled
    writable: bool = True           # False: tenant lists served read-only (GET)
    required_one_of: tuple[str, ...] = ()
    parent: tuple[str, str] | None = None   # (field, resource) whose readOnly this record follows
    ref_label_key: str = "value"


def _s(name, max_length=255, **kw):
    return FieldSpec(name, STRING, max_length, **kw)


def _ref(name, target, **kw):
    return FieldSpec(name, REF, ref=target, **kw)


def _n(name):
    return FieldSpec(name, NUMBER)


def _i(name):
    return FieldSpec(name, INTEGER)


def _b(name):
    return FieldSpec(name, BOOLEAN)


def _t(name, max_length=4000):
    return FieldSpec(name, TEXT, max_length)


def _d(name, **kw):
    return FieldSpec(name, DATETIME, **kw)


COMMON_FIELDS = (
    FieldSpec("id", INTEGER, system=True),
    _s("extId", 100),                                   # length assumed
    _d("dateCreated", system=True),
    _d("dateUpdated", system=True),
    _d("dateDeleted", system=True),
    FieldSpec("deleted", BOOLEAN, system=True),
)


def _names(*parts: str | None) -> str:
    return " ".join(p for p in parts if p)


def _description(record: dict) -> str:
    return record.get("descriptionFR") or record.get("descriptionEN") or ""


def _lookup_list(name: str, extra: tuple[FieldSpec, ...] = ()) -> ResourceSpec:
    return ResourceSpec(name, (_s("descriptionFR", 100), _s("descriptionEN", 100), *extra),
                        _description, writable=False)


SCHEMAS: dict[str, ResourceSpec] = {spec.name: spec for spec in (
    ResourceSpec("accounts", (
        _s("name", 100, required=True),                 # max length assumed
        _ref("branchId", "branches", required=True),
        _ref("salesRepId1", "users", required=True),
        _ref("salesRepId2", "users"), _ref("salesRepId3", "users"),
        _ref("typeId", "accountTypes"),
        _s("address1"), _s("address2"), _s("city", 100), _s("postcode", 20), _s("region", 100),
        _ref("countryId", "countries"),
        _s("email", 100), _s("phone", 50), _s("phone2", 50), _s("fax", 50),
        _s("web"), _s("vatNumber", 50),                 # web assumed
        _i("rateId"), _b("readOnly"), _t("comment"),
        _s("Z_Segment", 100), _t("Z_Notes"),             # this tenant's custom fields
    ), lambda r: r.get("name") or ""),
    ResourceSpec("contacts", (
        _ref("accountId", "accounts", required=True),
        _s("firstName", 50), _s("lastName", 50),
        _s("email", 100), _s("phone1", 50), _s("phone2", 50), _s("fax", 50),
        _s("position", 100), _i("typeId"), _t("comment"),   # position assumed
    ), lambda r: _names(r.get("firstName"), r.get("lastName")),
        required_one_of=("firstName", "lastName")),
    ResourceSpec("products", (
        _s("model", 100), _s("description"),
        _n("price"), _n("cost"), _n("maxDiscount"),
        _ref("familyId", "productFamilies"), _i("categoryId"),
        _b("notAvailable"), _b("readOnly"), _n("stock"),    # stock assumed (total stock)
        _s("Z_Brand", 100),
    ), lambda r: r.get("model") or r.get("description") or "",
        required_one_of=("model", "description")),
    ResourceSpec("productFamilies", (
        _s("descriptionFR", 100, required=True), _s("descriptionEN", 100),   # required assumed
        _i("idParent"), _b("notAvailable"),
    ), _description),
    ResourceSpec("salesorders", (
        _ref("branchId", "branches", required=True),
        _s("reference", 100, required=True),
        _ref("salesRepId", "users", required=True),
        _ref("accountId", "accounts"), _ref("contactId", "contacts"),
        _s("number", 50), _ref("currencyId", "currencies"), _i("rateId"),
        _n("discount1"), _n("discount2"), _n("discount3"), _n("discount4"),
        _ref("statusId", "salesordersStatuses"), _b("readOnly"),
        _d("closedDate"), _d("date"), _n("total"),          # date and total assumed
        _t("comment"), _t("internalComment"),
    ), lambda r: r.get("reference") or ""),
    ResourceSpec("salesordersLines", (
        _ref("salesOrderId", "salesorders"),
        _ref("productId", "products", required=True),
        _n("quantity"), _n("price"),
        _n("discount1"), _n("discount2"), _n("discount3"), _n("discount4"),
        _n("total"), _s("description"), _i("order"),
    ), lambda r: r.get("description") or "", parent=("salesOrderId", "salesorders")),
    ResourceSpec("users", (
        _s("name", 50, required=True), _s("lastName", 50),   # required assumed
        _s("email", 100, required=True),                      # required assumed: SSM login
        _b("isActive"), _ref("managerId", "users"),
        _s("phone", 50), _s("phone2", 50),                    # phones assumed
    ), lambda r: _names(r.get("name"), r.get("lastName")), ref_label_key="description"),
    ResourceSpec("sales", (
        _s("accountExtId", 100), _s("salesRepExtId", 100), _s("productExtId", 100),
        _d("date", required=True), _n("total"), _n("quantity"), _s("description"),
    ), lambda r: r.get("extId") or ""),
    _lookup_list("accountTypes"),
    _lookup_list("branches"),
    _lookup_list("salesordersStatuses"),                # resource name assumed
    _lookup_list("currencies", (_s("symbol", 5),)),
    _lookup_list("countries", (_s("isoCode", 2),)),
)}

# Quantity and price are documented as required on lines, but as numbers 0 is a value.
_REQUIRED_NUMBERS = {"salesordersLines": ("quantity", "price"), "sales": ("total",)}


def iso_stamp(moment: datetime) -> str:
    moment = moment.astimezone(timezone.utc)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def _parse_stamp(text: str) -> datetime | None:
    try:
        moment = datetime.fromisoformat(text.replace(" ", "T", 1))
    except (TypeError, ValueError):
        return None
    return moment if moment.tzinfo else moment.replace(tzinfo=timezone.utc)


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


class _View(Mapping):
    """A stored record seen as the API returns it, references rendered on access."""

    __slots__ = ("_store", "_fields", "_stored")

    def __init__(self, store: "Store", resource: str, stored: dict):
        self._store = store
        self._fields = store._fields[resource]
        self._stored = stored

    def __getitem__(self, name: str) -> Any:
        spec = self._fields[name]
        value = self._stored.get(name)
        if spec.type == REF and value is not None:
            return self._store._reference(spec, value)
        return value

    def __iter__(self):
        return iter(self._fields)

    def __len__(self) -> int:
        return len(self._fields)


def _blank(value: Any) -> bool:
    return value is None or (isinstance(value, str) and not value.strip())


class Store:
    """The records of one simulated tenant."""

    def __init__(self, *, clock: Callable[[], datetime], rng: random.Random):
        self._clock = clock
        self._lock = threading.RLock()
        self._fields: dict[str, dict[str, FieldSpec]] = {
            name: {f.name: f for f in (*COMMON_FIELDS, *spec.fields)} for name, spec in SCHEMAS.items()}
        self._records: dict[str, dict[int, dict]] = {name: {} for name in SCHEMAS}
        self._next_id = {name: rng.randint(11, 4000) for name in SCHEMAS}
        self.reject_rules: list[RejectRule] = []

    # --- schema -------------------------------------------------------------------------------
    def spec(self, resource: str) -> ResourceSpec:
        spec = SCHEMAS.get(resource)
        if spec is None:
            raise SimError(404, f"Resource '{resource}' does not exist", CODE_RESOURCE_MISSING)
        return spec

    def add_custom_field(self, resource: str, name: str, type: str = STRING,
                         max_length: int | None = 255) -> None:
        if not name.startswith("Z_"):
            raise ValueError("custom fields are named Z_...")
        with self._lock:
            self._fields[resource][name] = FieldSpec(name, type, max_length)

    def schema(self, resource: str) -> dict:
        spec = self.spec(resource)
        properties = {}
        for f in self._fields[resource].values():
            entry: dict[str, Any] = {"type": f.type}
            if f.max_length:
                entry["maxLength"] = f.max_length
            if f.ref:
                entry["entity"] = f.ref
            entry["readOnly"] = f.system or not spec.writable
            entry["required"] = f.required
            properties[f.name] = entry
        required = [f.name for f in self._fields[resource].values() if f.required]
        return {"entity": resource, "type": "object", "properties": properties, "required": required,
                "requiredOneOf": list(spec.required_one_of)}

    # --- reading ------------------------------------------------------------------------------
    def render(self, resource: str, stored: dict) -> dict:
        return dict(_View(self, resource, stored))

    def _reference(self, spec: FieldSpec, target_id: int) -> dict:
        target_spec = SCHEMAS[spec.ref]
        target = self._records[spec.ref].get(target_id)
        return {"id": target_id, target_spec.ref_label_key: target_spec.label(target) if target else ""}

    def get(self, resource: str, record_id: int) -> dict:
        with self._lock:
            return self.render(resource, self._stored(resource, record_id))

    def all(self, resource: str, *, include_deleted: bool = True) -> list[dict]:
        self.spec(resource)
        with self._lock:
            rows = [self.render(resource, r) for _, r in sorted(self._records[resource].items())]
        return [r for r in rows if include_deleted or not r["deleted"]]

    def query(self, resource: str, *, where: str | None, order: str | None,
              page: int, size: int) -> list[dict]:
        """One page of the records matching `where`, sorted by `order` then id.

        The filter runs on lazy views that render a reference only when the filter reads it,
        so a lookup such as `extId='...'` stays cheap on a large tenant.
        """
        self.spec(resource)
        with self._lock:
            views = [_View(self, resource, r) for _, r in sorted(self._records[resource].items())]
            sample = _View(self, resource, {})
            try:
                predicate = check_where(where, sample)
                terms = parse_order(order, set(sample))
                selected = order_records([v for v in views if predicate(v)], terms)
            except WhereError as exc:
                raise SimError(400, f"Error generating the SQL query: {exc}", CODE_SQL_GENERATION) from None
            return [dict(view) for view in selected[page * size:(page + 1) * size]]

    def find_ext_id(self, resource: str, ext_id: str) -> int | None:
        self.spec(resource)
        with self._lock:
            for record_id, stored in sorted(self._records[resource].items()):
                if stored.get("extId") == ext_id and not stored.get("deleted"):
                    return record_id
        return None

    # --- writing ------------------------------------------------------------------------------
    def create(self, resource: str, body: Any, principal: Principal = INTEGRATION) -> int:
        spec = self._writable(resource)
        with self._lock:
            self._validate(resource, body, existing=None)
            self._check_parent_editable(spec, body, principal)
            return self._insert(resource, body)

    def seed(self, resource: str, body: dict) -> int:
        """Create as the tenant's set-up does: validated, but lists that are read-only through
        the API (account types, branches, statuses) may be filled too."""
        self.spec(resource)
        with self._lock:
            self._validate(resource, body, existing=None)
            return self._insert(resource, body)

    def _insert(self, resource: str, body: dict) -> int:
        record_id = self._next_id[resource]
        self._next_id[resource] += 1
        stored = {name: None for name in self._fields[resource]}
        stored.update(body)
        stored.update(id=record_id, dateCreated=iso_stamp(self._clock()), dateUpdated=None,
                      dateDeleted=None, deleted=False)
        self._records[resource][record_id] = stored
        return record_id

    def update(self, resource: str, record_id: int, body: Any, principal: Principal = INTEGRATION) -> None:
        spec = self._writable(resource)
        with self._lock:
            stored = self._stored(resource, record_id)
            self._check_editable(spec, stored, principal)
            self._validate(resource, body, existing=stored)
            self._check_parent_editable(spec, body, principal)
            stored.update(body)
            stored["dateUpdated"] = iso_stamp(self._clock())

    def delete(self, resource: str, record_id: int, principal: Principal = INTEGRATION) -> None:
        spec = self._writable(resource)
        with self._lock:
            stored = self._stored(resource, record_id)
            if stored["deleted"]:
                return
            self._check_editable(spec, stored, principal)
            stored["deleted"] = True
            stored["dateDeleted"] = iso_stamp(self._clock())

    # --- checks -------------------------------------------------------------------------------
    def _writable(self, resource: str) -> ResourceSpec:
        spec = self.spec(resource)
        if not spec.writable:
            raise SimError(405, f"{resource} can only be read through the API")
        return spec

    def _stored(self, resource: str, record_id: int) -> dict:
        self.spec(resource)
        stored = self._records[resource].get(record_id)
        if stored is None:
            raise SimError(404, f"Entity {resource} with id {record_id} not found")
        return stored

    def _check_editable(self, spec: ResourceSpec, stored: dict, principal: Principal) -> None:
        if principal.is_integration:
            return
        if stored.get("readOnly"):
            raise SimError(400, "This record is read-only: it is managed by the ERP and cannot be "
                                "changed in Sage Sales Management")
        if spec.parent:
            self._check_parent_editable(spec, stored, principal)

    def _check_parent_editable(self, spec: ResourceSpec, values: dict, principal: Principal) -> None:
        if principal.is_integration or not spec.parent or not isinstance(values, dict):
            return
        link, parent_resource = spec.parent
        parent = self._records[parent_resource].get(values.get(link))
        if parent and parent.get("readOnly"):
            raise SimError(400, f"The {parent_resource} record {parent['id']} is read-only: its "
                                f"lines cannot be changed in Sage Sales Management")

    def _validate(self, resource: str, body: Any, *, existing: dict | None) -> None:
        spec = SCHEMAS[resource]
        fields = self._fields[resource]
        if not isinstance(body, dict):
            raise SimError(400, "The request body must be a JSON object")
        if existing is None and not body:
            raise SimError(400, "The request body is empty")
        for name, value in body.items():
            f = fields.get(name)
            if f is None:
                raise SimError(400, f"The field '{name}' does not exist in {resource}")
            if f.system:
                raise SimError(400, f"The field '{name}' is managed by Sage Sales Management and "
                                    f"cannot be written")
            self._check_value(resource, f, value)
        required = [f.name for f in fields.values() if f.required]
        required += _REQUIRED_NUMBERS.get(resource, ())
        if existing is None:
            for name in required:
                if _blank(body.get(name)):
                    raise SimError(400, f"The field '{name}' is required")
        else:
            for name in required:
                if name in body and _blank(body[name]):
                    raise SimError(400, f"The field '{name}' is required and cannot be emptied")
        if spec.required_one_of:
            merged = {**(existing or {}), **body}
            if all(_blank(merged.get(name)) for name in spec.required_one_of):
                raise SimError(400, "One of the fields " + ", ".join(f"'{n}'" for n in spec.required_one_of)
                               + " is required")
        for rule in self.reject_rules:
            if rule.resource == resource and rule.field in body and rule.predicate(body[rule.field]):
                raise SimError(400, rule.message)

    def _check_value(self, resource: str, f: FieldSpec, value: Any) -> None:
        if value is None:
            return
        kind = f.type
        if kind in (STRING, TEXT):
            if not isinstance(value, str):
                raise SimError(400, f"The field '{f.name}' must be text")
            if f.max_length and len(value) > f.max_length:
                raise SimError(400, f"The field '{f.name}' is longer than {f.max_length} characters")
        elif kind == INTEGER:
            if isinstance(value, bool) or not isinstance(value, int):
                raise SimError(400, f"The field '{f.name}' must be a whole number")
        elif kind == NUMBER:
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                raise SimError(400, f"The field '{f.name}' must be a number")
        elif kind == BOOLEAN:
            if not isinstance(value, bool):
                raise SimError(400, f"The field '{f.name}' must be true or false")
        elif kind == DATETIME:
            if not isinstance(value, str) or _parse_stamp(value) is None:
                raise SimError(400, f"The field '{f.name}' must be an ISO 8601 date")
        elif kind == REF:
            if isinstance(value, bool) or not isinstance(value, int):
                raise SimError(400, f"The field '{f.name}' must be the id of a {f.ref} record")
            if value not in self._records[f.ref]:
                raise SimError(400, f"{f.name}: the {f.ref} record {value} does not exist",
                               CODE_RESOURCE_MISSING)
