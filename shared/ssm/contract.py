"""The SSM v4 API contract as data: what a real tenant accepts, from `reference/ssm-api.md`.

One table of resources (path, operations, fields with type, length, reference, required on
create, server-set, name as read back), the `where` grammar, the page-size headers and the rate
plans. The SSM simulator refuses whatever this module does not allow, the client sends nothing
it does not document, and a test validates every request of a full sync against it
(`request_violations`).

Each fact carries the source tag of the reference. Where the contract is silent (its section 12)
the strict side is taken and marked `assumed`; each such choice is a switch of `Strictness`, so a
real tenant's answer can loosen it without touching the code that relies on it:
- unknown fields and server-set fields in a write are refused (SSM may ignore them);
- `extId` longer than 30 characters is refused on every resource (documented for products only;
  255 on `/sales`);
- `where` accepts only the documented operators `=`, `>`, `LIKE`, `AND`, `OR`, double-quoted or
  bare literals, no parentheses, and plain field names (no `field.id`); a quote inside a quoted
  literal cannot be written;
- a user's `dbLanguage`/`uiLanguage` is one of the documented codes (FR is not among them);
- a page holds at most `max_page_size` records whatever the `count` header asks for;
- the integration keys may change records marked `readOnly` (Sage's own connectors do).

Account addresses (`/accountAddresses`, the delivery addresses of quotes and orders) are listed
among the value lists in the reference (§10.13: GET and schema). W1's pages "Create / Update /
Delete an Account Address" and "Get Account Addresses Schema" document their writes and fields
(`accountId` required, `address1`/`address2` ≤180, `city` ≤200, `countryId`, `description`,
`postcode`, `region`): they are declared from those pages. Their schema has no `extId`, so none
is accepted (records are found again through the connector's links only); `where` on them is
not shown by any source and the connector does not use it.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any, Iterable, Mapping

# --- field types ---------------------------------------------------------------------------------
STRING, INTEGER, NUMBER, BOOLEAN, DATETIME, REF, REF_LIST, FLAG01 = (
    "string", "integer", "number", "boolean", "date-time", "reference", "reference-list", "0/1")

# --- operations ----------------------------------------------------------------------------------
LIST, GET, CREATE, UPDATE, DELETE, SCHEMA = "list", "get", "create", "update", "delete", "schema"
METHOD_OF = {LIST: "GET", GET: "GET", CREATE: "POST", UPDATE: "PUT", DELETE: "DELETE", SCHEMA: "GET"}

# --- paging, rates, languages --------------------------------------------------------------------
PAGE_SIZE_HEADERS = ("count", "X-FM-Entity-Count")     # both official [SW, PA] / [DEV]
DEFAULT_PAGE_SIZE = 50                                 # [DEV, PA Readme]
SESSION_HEADER = "X-Session-Key"                       # [PA script, DEV]
RATE_PLANS: dict[str, float] = {                       # requests per second
    "starter": 50 / 60,                                # 50 per minute [KB-8948844]
    "4": 4.0,                                          # [PA Readme]
    "13": 13.0,                                        # [PA Readme]
}
DEFAULT_RATE_PLAN = "4"                                # the lower documented plan
USER_LANGUAGES = ("ES", "EN", "US", "IT", "DE", "PT", "BR", "RU")   # [W1 "Create User"]
LANGUAGE_SUFFIXES = ("ES", "EN", "US", "IT", "DE", "FR", "BR", "DK", "PT", "RU")
WHERE_OPERATORS = ("=", ">", "LIKE", "AND", "OR")      # [DEV]
HOOK_ACTIONS = ("insert", "update", "delete")          # [SW, W1]
EXT_ID_MAX_ASSUMED = 30                                # products' documented limit, applied to all

CODE_DATABASE, CODE_SQL_GENERATION, CODE_RESOURCE_MISSING = 900, 901, 910   # [DEV]


@dataclass(frozen=True)
class Field:
    """One field of a resource as the contract documents it.

    `required`: must be present (not null, not blank) on create. `server_set`: returned, never
    accepted. `read_as`: the name GET answers use when it differs from the written one.
    `assumed`: a strict choice where the contract is silent (module docstring).
    """

    name: str
    type: str
    max_length: int | None = None
    ref: str | None = None
    required: bool = False
    server_set: bool = False
    read_as: str | None = None
    choices: tuple | None = None
    minimum: float | None = None
    maximum: float | None = None
    assumed: bool = False
    source: str = ""

    @property
    def read_name(self) -> str:
        return self.read_as or self.name


@dataclass(frozen=True)
class Resource:
    """One API resource: its path, the operations documented on it and its fields.

    `ref_label`: the key of the label in the reference objects this resource's records carry
    (`value`, or `description` on users). `item_path`: a different path for PUT/DELETE of one
    record (account types are changed at `/list/accountTypes/{id}`). `hook_entity`: the webhook
    entity name when its changes can be subscribed to.
    """

    name: str
    operations: frozenset[str]
    fields: tuple[Field, ...]
    ref_label: str = "value"
    custom_fields: bool = False
    item_path: str | None = None
    hook_entity: str | None = None
    label_fields: tuple[str, ...] = ()
    source: str = ""

    @property
    def path(self) -> str:
        return f"/{self.name}"

    def field(self, name: str) -> Field | None:
        return self._by_name().get(name)

    def read_field(self, name: str) -> Field | None:
        """The field known under `name` in GET answers (and `where`/`order`)."""
        return self._by_read_name().get(name)

    def writable(self) -> tuple[Field, ...]:
        return tuple(f for f in self.fields if not f.server_set)

    def required(self) -> tuple[str, ...]:
        return tuple(f.name for f in self.fields if f.required)

    def _by_name(self) -> dict[str, Field]:
        cached = _INDEX.get((self.name, "w"))
        if cached is None:
            cached = _INDEX[(self.name, "w")] = {f.name: f for f in self.fields}
        return cached

    def _by_read_name(self) -> dict[str, Field]:
        cached = _INDEX.get((self.name, "r"))
        if cached is None:
            cached = _INDEX[(self.name, "r")] = {f.read_name: f for f in self.fields}
        return cached


_INDEX: dict[tuple[str, str], dict[str, Field]] = {}


# --- builders ------------------------------------------------------------------------------------
def s(name, max_length=None, **kw) -> Field:
    return Field(name, STRING, max_length, **kw)


def ref(name, target, **kw) -> Field:
    return Field(name, REF, ref=target, **kw)


def num(name, **kw) -> Field:
    return Field(name, NUMBER, **kw)


def integer(name, **kw) -> Field:
    return Field(name, INTEGER, **kw)


def boolean(name, **kw) -> Field:
    return Field(name, BOOLEAN, **kw)


def date(name, **kw) -> Field:
    return Field(name, DATETIME, **kw)


def ext_id(max_length=EXT_ID_MAX_ASSUMED, *, assumed=True, name="extId") -> Field:
    return Field(name, STRING, max_length, assumed=assumed)


SERVER_SET = (
    Field("id", INTEGER, server_set=True, source="SW"),
    date("dateCreated", server_set=True), date("dateUpdated", server_set=True),
    date("dateDeleted", server_set=True),
    integer("salesRepIdCreated", server_set=True), integer("salesRepIdUpdated", server_set=True),
    integer("salesRepIdDeleted", server_set=True),
    boolean("deleted", server_set=True),
)
"""Server-set on every entity [SW responses, W1 schemas]."""


def _descriptions(*, required_en: bool = False, lengths: Mapping[str, int] | None = None) -> tuple[Field, ...]:
    lengths = lengths or {}
    return tuple(s(f"description{lang}", lengths.get(lang), required=(required_en and lang == "EN"))
                 for lang in LANGUAGE_SUFFIXES)


def _value_list(name: str, *extra: Field, operations: Iterable[str] = (LIST, GET, SCHEMA),
                required_en: bool = False, item_path: str | None = None) -> Resource:
    return Resource(name, frozenset(operations),
                    (*SERVER_SET, integer("order"), *_descriptions(required_en=required_en), *extra),
                    item_path=item_path, label_fields=("descriptionFR", "descriptionEN"), source="SW")


RESOURCES: dict[str, Resource] = {r.name: r for r in (
    Resource("users", frozenset({LIST, GET, CREATE, SCHEMA}), (
        *SERVER_SET,
        s("name", required=True), s("lastName", required=True), s("email", required=True),
        s("nic", required=True), s("phone", required=True),
        ref("idPrefix", "countries", required=True, source="SW, W1: phone country"),
        s("dbLanguage", required=True, choices=USER_LANGUAGES),
        s("uiLanguage", required=True, choices=USER_LANGUAGES),
        Field("branches", REF_LIST, ref="branches", required=True, source="W1"),
        boolean("isActive"), boolean("billable"), boolean("computeSfm"), boolean("branchRestriction"),
        integer("level", minimum=1, maximum=5),
        ref("managerId", "users"), ref("rateId", "rates"), ref("userTypeId", "userTypes"),
        ext_id(), s("phoneExtension"), s("locale"), date("lastPasswordChangeDate"),
    ), ref_label="description", label_fields=("name", "lastName"), source="SW, W1"),
    Resource("accounts", frozenset({LIST, GET, CREATE, UPDATE, DELETE, SCHEMA}), (
        *SERVER_SET,
        s("name", required=True), ref("branchId", "branches", required=True),
        ref("salesRepId1", "users", required=True),
        *(ref(f"salesRepId{n}", "users") for n in range(2, 6)),
        ref("typeId", "accountTypes"), ref("statusId", "accountStatuses"),
        ref("segmentId", "accountSegments"), ref("rateId", "rates"), ref("countryId", "countries"),
        s("address1", 180), s("address2", 180), s("city", 200), s("postcode"), s("region"),
        s("phone"), s("phone2"), s("phone3"), s("fax"), s("email"), s("website"), s("vatNumber"),
        s("comment", 6000), ext_id(), boolean("readOnly"), boolean("public"),
        integer("permissionLevel", minimum=1, maximum=5),
        boolean("geocoded"), integer("geocodingAccuracy"), num("latitude"), num("longitude"),
        date("dateGeocoded"),
    ), custom_fields=True, hook_entity="account", label_fields=("name",), source="SW, W1"),
    Resource("contacts", frozenset({LIST, GET, CREATE, UPDATE, DELETE, SCHEMA}), (
        *SERVER_SET,
        ref("accountId", "accounts", required=True), s("firstName", required=True),
        s("lastName", required=True), ref("salesRepId", "users", required=True),
        ref("typeId", "contactTypes"),
        s("phone1"), s("phone2"), s("fax"), s("email"), s("email2"), s("email3"),
        s("address1", 180), s("city", 200), s("postcode"), s("region"), ref("countryId", "countries"),
        s("comment", 6000), ext_id(), date("birthday"), s("linkedin"), s("skype"),
        boolean("useCompanyAddress", read_as="UseCompanyAddress"),
        integer("gender", choices=(0, 1)), integer("permissionLevel"),
        boolean("marketingCommunications"), boolean("readOnly"),
    ), custom_fields=True, hook_entity="contact", label_fields=("firstName", "lastName"), source="SW, W1"),
    Resource("products", frozenset({LIST, GET, CREATE, UPDATE, DELETE, SCHEMA}), (
        *SERVER_SET,
        s("model", required=True), s("description", 6000), num("price"), num("cost"),
        num("maxDiscount"), ref("familyId", "productFamilies"), ref("categoryId", "productCategories"),
        integer("stock"), boolean("notAvailable"), boolean("readOnly"),
        integer("permissionLevel", minimum=1, maximum=5),
        ext_id(30, assumed=False),
    ), custom_fields=True, label_fields=("model",), source="W1"),
    Resource("productFamilies", frozenset({LIST, GET, CREATE, UPDATE, SCHEMA}), (
        *SERVER_SET,
        *_descriptions(required_en=True, lengths={"EN": 150, "FR": 150, "DE": 150, "IT": 150, "ES": 50}),
        integer("idParent"), boolean("notAvailable"), boolean("branchRestriction"),
    ), label_fields=("descriptionFR", "descriptionEN"), source="W1"),
    Resource("productCategories", frozenset({LIST, GET, SCHEMA}), (
        *SERVER_SET, integer("cLevel2"), *_descriptions(),
    ), label_fields=("descriptionFR", "descriptionEN"), source="W1"),
    Resource("rates", frozenset({LIST, GET, CREATE}), (
        *SERVER_SET, *_descriptions(), ref("branchId", "branches"),
        Field("branchVisibility", REF_LIST, ref="branches"), s("comments", read_as="Comments"),
        integer("currencyId"), date("startDate"), date("endDate"),
        ext_id(name="extID"),
    ), label_fields=("descriptionFR", "descriptionEN", "descriptionES"), source="W1"),
    Resource("productRates", frozenset({LIST, GET, CREATE, SCHEMA}), (
        *SERVER_SET, ref("productId", "products", required=True), ref("rateId", "rates", required=True),
        num("salePrice"), num("costPrice"), *(num(f"discount{n}") for n in range(1, 5)),
        num("tempBuyingPrice"), num("tempListedPrice"),
    ), source="W1"),
    Resource("salesorders", frozenset({LIST, GET, CREATE, UPDATE, DELETE, SCHEMA}), (
        *SERVER_SET,
        s("reference", required=True), ref("branchId", "branches", required=True),
        ref("salesRepId", "users", required=True),
        ref("accountId", "accounts"), ref("contactId", "contacts"),
        ref("opportunityId", "opportunities"), ref("accountAddressId", "accountAddresses"),
        ref("statusId", "salesorderStatuses"), ref("currencyId", "currencies"), ref("rateId", "rates"),
        integer("number"), integer("year"), num("total"),
        *(num(f"discount{n}") for n in range(1, 5)),
        date("salesForcecastDate"), date("closedDate"),
        s("comment"), s("internalComment"),
        boolean("mainSalesorder"), boolean("archived"), boolean("blocked"), boolean("readOnly"),
        ext_id(),
        date("internalCommentUpdateDate", server_set=True),
        integer("internalCommentUpdateSalesRepId", server_set=True),
    ), custom_fields=True, hook_entity="salesorder", label_fields=("reference",), source="SW, W1"),
    Resource("salesordersLines", frozenset({LIST, GET, CREATE, UPDATE, DELETE, SCHEMA}), (
        *SERVER_SET,
        ref("productId", "products", required=True),
        Field("quantity", INTEGER, required=True, minimum=-2 ** 31, maximum=2 ** 31 - 1, source="SW int32"),
        num("price", required=True),
        ref("salesOrderId", "salesorders", required=True, read_as="salesorderId", source="SW; read DEV"),
        s("description", 2000), num("total"), *(num(f"discount{n}") for n in range(1, 5)),
        integer("order"),
    ), label_fields=("description",), source="SW, W1"),
    Resource("sales", frozenset({LIST, GET, CREATE, UPDATE, SCHEMA}), (
        *SERVER_SET[:-1], Field("deleted", FLAG01, server_set=True, source="W1: 0/1"),
        s("accountExtId", 100, required=True), ref("accountId", "accounts", required=True),
        date("date", required=True), ext_id(255, assumed=False), s("salesRepExtId", 100, required=True),
        num("total", required=True), ref("salesRepId", "users", server_set=True),
    ), label_fields=("extId",), source="W1"),
    _value_list("salesorderStatuses", boolean("won"), boolean("lost"),
                Field("branchVisibility", REF_LIST, ref="branches"),
                operations=(LIST, GET, UPDATE)),
    _value_list("branches", boolean("default"), boolean("imperialSystem"), boolean("mainEnvironment"),
                integer("currencyId"), integer("timeZoneId"), ext_id()),
    _value_list("accountTypes", Field("branchVisibility", REF_LIST, ref="branches"),
                boolean("internal"), boolean("computeSfm"), integer("visitCycle"),
                operations=(LIST, GET, SCHEMA, CREATE, UPDATE, DELETE), required_en=True,
                item_path="/list/accountTypes"),
    _value_list("accountStatuses", Field("branchVisibility", REF_LIST, ref="branches"),
                boolean("won"), boolean("lost"), operations=(LIST, GET, DELETE)),
    _value_list("accountSegments"),
    _value_list("contactTypes"),
    _value_list("activityTypes"),
    _value_list("opportunityTypes"),
    _value_list("opportunityStatuses", integer("won"), boolean("endStatus"), integer("idParent")),
    _value_list("countries", s("iso2"), s("iso3"), s("isoNum"), s("phoneCode"), s("strName")),
    _value_list("currencies", s("isoCode"), s("symbol")),
    _value_list("timezones", s("idIanaZone"), s("shortDescription"), s("fullDescription")),
    _value_list("userTypes"),
    Resource("accountAddresses", frozenset({LIST, GET, CREATE, UPDATE, DELETE, SCHEMA}), (
        *SERVER_SET,
        ref("accountId", "accounts", required=True, source="W1 'Create an Account Address'"),
        s("address1", 180), s("address2", 180), s("city", 200), ref("countryId", "countries"),
        s("description"), s("postcode"), s("region"),
    ), label_fields=("description", "address1"),
        source="W1 'List/Get/Create/Update/Delete an Account Address', 'Get Account Addresses Schema'"),
    Resource("opportunities", frozenset({LIST, GET, CREATE, UPDATE, DELETE}), (
        *SERVER_SET, s("reference", required=True), ref("branchId", "branches", required=True),
        ref("salesRepId", "users", required=True), num("salesProbability", required=True),
        ref("accountId1", "accounts", required=True), integer("type_id"), ext_id(),
    ), custom_fields=True, hook_entity="opportunity", label_fields=("reference",), source="SW"),
    Resource("hooks", frozenset({LIST, CREATE, DELETE}), (
        Field("id", INTEGER, server_set=True),
        s("name", required=True), s("action", required=True, choices=HOOK_ACTIONS),
        s("entity", required=True, choices=("account", "contact", "opportunity", "activity",
                                            "calendar", "salesorder")),
        s("url", required=True), integer("version"),
        s("secret_key", server_set=True), integer("user_created", server_set=True),
        integer("user_updated", server_set=True), integer("user_deleted", server_set=True),
        date("date_created", server_set=True), date("date_updated", server_set=True),
        date("date_deleted", server_set=True), boolean("deleted", server_set=True),
    ), label_fields=("name",), source="SW, W1"),
)}

EXTRA_FIELD_RESOURCES = ("accounts", "activities", "calendar", "contacts", "opportunities",
                         "products", "rates", "salesorders", "users")
"""`GET /extrafields/{resource}/schema` lists the custom fields of these [W1]."""

LOGIN = "login"


def resource(name: str) -> Resource | None:
    return RESOURCES.get(name)


def documents_writes(name: str) -> bool:
    """Whether the contract documents creating, changing and deleting records of this resource."""
    found = RESOURCES.get(name)
    return found is not None and {CREATE, UPDATE, DELETE} <= found.operations


def has_ext_id(name: str) -> bool:
    """Whether records of this resource carry an `extId` (product families and lines do not)."""
    found = RESOURCES.get(name)
    return found is not None and found.field("extId") is not None


# --- strictness switches -------------------------------------------------------------------------
@dataclass(frozen=True)
class Strictness:
    """The choices taken where the contract is silent (module docstring); True = strict side."""

    refuse_unknown_fields: bool = True
    refuse_server_set_fields: bool = True
    ext_id_max_on_every_resource: bool = True
    documented_where_only: bool = True
    documented_user_languages_only: bool = True
    max_page_size: int = DEFAULT_PAGE_SIZE
    read_only_binds_integration: bool = False

    def loosened(self, **changes) -> "Strictness":
        return replace(self, **changes)


STRICT = Strictness()


# --- request validation --------------------------------------------------------------------------
@dataclass(frozen=True)
class Violation:
    """One way a request breaks the contract, with the 400 message SSM would give."""

    rule: str
    message: str
    code: int | None = None


@dataclass(frozen=True)
class Route:
    """A request path resolved against the contract."""

    operation: str | None
    resource: Resource | None
    record_id: int | None = None
    extrafields_of: str | None = None
    login: bool = False
    error: Violation | None = None


def route(method: str, path: str) -> Route:
    """The documented operation a method and path (below the base path) name, or an error."""
    method = method.upper()
    segments = [p for p in path.strip("/").split("/") if p]
    if segments == [LOGIN]:
        return Route(CREATE, None, login=True) if method == "POST" else \
            Route(None, None, error=Violation("method", "Use POST /login"))
    if len(segments) == 3 and segments[0] == "extrafields" and segments[2] == "schema":
        if method != "GET" or segments[1] not in EXTRA_FIELD_RESOURCES:
            return Route(None, None, error=Violation("path", f"No such resource: /{'/'.join(segments)}",
                                                     CODE_RESOURCE_MISSING))
        return Route(SCHEMA, None, extrafields_of=segments[1])
    if len(segments) == 3 and segments[0] == "list":
        found = RESOURCES.get(segments[1])
        if found is None or found.item_path != f"/list/{segments[1]}" or not segments[2].isdigit():
            return Route(None, None, error=Violation("path", f"No such resource: /{'/'.join(segments)}",
                                                     CODE_RESOURCE_MISSING))
        operation = {"PUT": UPDATE, "DELETE": DELETE}.get(method)
        if operation is None:
            return Route(None, found, error=Violation("method", f"{method} is not documented on "
                                                                f"/list/{found.name}/{{id}}"))
        return Route(operation, found, int(segments[2]))
    found = RESOURCES.get(segments[0]) if segments else None
    if found is None or len(segments) > 2:
        return Route(None, None, error=Violation("path", f"No such resource: /{'/'.join(segments)}",
                                                 CODE_RESOURCE_MISSING))
    if len(segments) == 1:
        operation = {"GET": LIST, "POST": CREATE}.get(method)
        record_id = None
    elif segments[1] == "schema":
        operation = SCHEMA if method == "GET" else None
        record_id = None
    elif segments[1].isdigit():
        operation = {"GET": GET, "PUT": UPDATE, "DELETE": DELETE}.get(method)
        record_id = int(segments[1])
        if operation in (UPDATE, DELETE) and found.item_path:
            operation = None
    else:
        return Route(None, found, error=Violation("path", f"'{segments[1]}' is not an id of {found.name}"))
    if operation is None or operation not in found.operations:
        return Route(None, found, error=Violation(
            "method", f"{method} /{'/'.join(segments)} is not documented"))
    return Route(operation, found, record_id)


def body_violations(res: Resource, body: Any, *, creating: bool, strict: Strictness = STRICT,
                    custom_fields: Iterable[str] = ()) -> list[Violation]:
    """What the contract refuses in a POST (creating) or PUT body of `res`."""
    if not isinstance(body, dict):
        return [Violation("body", "The request body must be a JSON object")]
    if creating and not body:
        return [Violation("body", "The request body is empty")]
    problems: list[Violation] = []
    custom = set(custom_fields)
    for name, value in body.items():
        f = res.field(name)
        if f is None:
            if name in custom and res.custom_fields:
                continue
            if strict.refuse_unknown_fields:
                problems.append(Violation("unknown-field", f"The field '{name}' does not exist in {res.name}"))
            continue
        if f.server_set:
            if strict.refuse_server_set_fields:
                problems.append(Violation("server-set", f"The field '{name}' is set by the server and "
                                                        f"cannot be written"))
            continue
        problem = value_problem(res, f, value, strict)
        if problem:
            problems.append(Violation("type", problem))
    for name in res.required():
        if creating and _blank(body.get(name)):
            problems.append(Violation("required", f"The field '{name}' is required"))
        elif not creating and name in body and _blank(body[name]):
            problems.append(Violation("required", f"The field '{name}' is required and cannot be emptied"))
    return problems


def value_problem(res: Resource, f: Field, value: Any, strict: Strictness = STRICT) -> str | None:
    """Why `value` cannot be written to `f`, or None."""
    if value is None:
        return None
    kind = f.type
    if kind == STRING:
        if not isinstance(value, str):
            return f"The field '{f.name}' must be text"
        limit = f.max_length
        if limit is not None and f.assumed and f.name in ("extId", "extID") \
                and not strict.ext_id_max_on_every_resource:
            limit = None
        if limit is not None and len(value) > limit:
            return f"The field '{f.name}' is longer than {limit} characters"
        if f.choices and value not in f.choices:
            if f.name in ("dbLanguage", "uiLanguage") and not strict.documented_user_languages_only:
                return None
            return f"The field '{f.name}' must be one of {', '.join(map(str, f.choices))}"
        return None
    if kind in (INTEGER, REF):
        if isinstance(value, bool) or not isinstance(value, int):
            what = f"the id of a {f.ref} record" if kind == REF else "a whole number"
            return f"The field '{f.name}' must be {what}"
        if f.minimum is not None and value < f.minimum or f.maximum is not None and value > f.maximum:
            return f"The field '{f.name}' is out of range"
        if f.choices and value not in f.choices:
            return f"The field '{f.name}' must be one of {', '.join(map(str, f.choices))}"
        return None
    if kind == NUMBER:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            return f"The field '{f.name}' must be a number"
        return None
    if kind == BOOLEAN:
        return None if isinstance(value, bool) else f"The field '{f.name}' must be true or false"
    if kind == DATETIME:
        return None if parse_datetime(value) is not None else f"The field '{f.name}' must be a date"
    if kind == REF_LIST:
        if not isinstance(value, list) or not value or \
                any(isinstance(v, bool) or not isinstance(v, int) for v in value):
            return f"The field '{f.name}' must be a list of {f.ref} ids"
        return None
    if kind == FLAG01:
        return None if value in (0, 1) and not isinstance(value, bool) else f"The field '{f.name}' must be 0 or 1"
    return None


_DATE_FORMS = re.compile(r"^\d{4}-\d{2}-\d{2}([T ]\d{2}:\d{2}:\d{2}(\.\d{1,7})?)?(Z|[+-]\d{2}:\d{2})?$")


def parse_datetime(value: Any) -> datetime | None:
    """A date as SSM takes it (`2018-10-10 00:00:00`, ISO 8601 with or without `Z`), or None."""
    if not isinstance(value, str) or not _DATE_FORMS.match(value.strip()):
        return None
    try:
        return datetime.fromisoformat(value.strip().replace("Z", "+00:00").replace(" ", "T", 1))
    except ValueError:
        return None


def _blank(value: Any) -> bool:
    return value is None or (isinstance(value, str) and not value.strip()) or value == []


# --- where ---------------------------------------------------------------------------------------
_WHERE_TOKEN = re.compile(r"""
    \s*(?:
      (?P<dq>"[^"]*")
    | (?P<sq>'(?:[^']|'')*')
    | (?P<op><>|!=|>=|<=|=|>|<)
    | (?P<paren>[()])
    | (?P<comma>,)
    | (?P<word>[^\s=<>!(),"']+)
    )""", re.VERBOSE)
_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


def where_violations(res: Resource, where: str, strict: Strictness = STRICT,
                     custom_fields: Iterable[str] = ()) -> list[Violation]:
    """What the documented `where` grammar refuses: `field op literal` joined by AND/OR, with op
    one of `=`, `>`, `LIKE`; literals double-quoted (no quote inside) or bare; known fields only."""
    if not strict.documented_where_only:
        return []
    tokens = []
    position = 0
    while position < len(where):
        if not where[position:].strip():
            break
        match = _WHERE_TOKEN.match(where, position)
        if not match or match.end() == position:
            return [Violation("where", f"cannot read the filter near '{where[position:position + 20]}'",
                              CODE_SQL_GENERATION)]
        tokens.append((match.lastgroup, match.group(match.lastgroup)))
        position = match.end()
    known = set(custom_fields)
    problems: list[Violation] = []
    expect = "field"
    for kind, text in tokens:
        upper = text.upper()
        if expect == "field":
            if kind != "word" or not _NAME.match(text) or upper in WHERE_OPERATORS:
                problems.append(_where_error(f"expected a field name, found '{text}'"))
                break
            if res.read_field(text) is None and text not in known:
                problems.append(_where_error(f"unknown field '{text}'"))
                break
            expect = "op"
        elif expect == "op":
            if kind == "op" and text in ("=", ">") or kind == "word" and upper == "LIKE":
                expect = "literal"
            else:
                problems.append(_where_error(f"'{text}' is not a documented operator (= > LIKE)"))
                break
        elif expect == "literal":
            if kind == "dq" or (kind == "word" and upper not in WHERE_OPERATORS):
                expect = "joiner"
            else:
                problems.append(_where_error(f"'{text}' is not a documented literal "
                                             f"(double quotes or a bare value)"))
                break
        else:
            if kind == "word" and upper in ("AND", "OR"):
                expect = "field"
            else:
                problems.append(_where_error(f"expected AND or OR, found '{text}'"))
                break
    if not problems and expect != "joiner":
        problems.append(_where_error("the filter is incomplete"))
    return problems


def _where_error(message: str) -> Violation:
    return Violation("where", f"Error generating the SQL query: {message}", CODE_SQL_GENERATION)


def order_violations(res: Resource, order: str, strict: Strictness = STRICT) -> list[Violation]:
    """`order=<field>` sorts descending [SW, DEV, W1]; nothing else is documented."""
    if not strict.documented_where_only:
        return []
    if res.read_field(order.strip()) is None:
        return [Violation("order", f"cannot order by '{order}': one field name only", CODE_SQL_GENERATION)]
    return []


def where_literal(value: Any) -> str:
    """A documented `where` literal: a number bare, text in double quotes.

    Raises:
        ValueError: the text holds a double quote, which no documented form can carry.
    """
    if isinstance(value, bool):
        return "1" if value else "0"
    if isinstance(value, int):
        return str(value)
    text = str(value)
    if '"' in text:
        raise ValueError(f"a double quote cannot be written in an SSM filter: {text!r}")
    return f'"{text}"'


# --- whole requests ------------------------------------------------------------------------------
@dataclass(frozen=True)
class Request:
    """One request as sent: method, path below the base path, query, headers, JSON body."""

    method: str
    path: str
    query: Mapping[str, str] = field(default_factory=dict)
    headers: Mapping[str, str] = field(default_factory=dict)
    body: Any = None


def request_violations(request: Request, strict: Strictness = STRICT,
                       custom_fields: Mapping[str, Iterable[str]] | None = None) -> list[Violation]:
    """Everything in one request that the contract does not document (static checks only:
    whether a referenced record exists is the server's business)."""
    found = route(request.method, request.path)
    if found.error:
        return [found.error]
    if found.login:
        body = request.body
        if not isinstance(body, dict) or set(body) != {"username", "password"}:
            return [Violation("login", "POST /login takes exactly username and password")]
        return []
    res = found.resource
    problems: list[Violation] = []
    headers = {k.lower(): v for k, v in request.headers.items()}
    if SESSION_HEADER.lower() not in headers:
        problems.append(Violation("session", "X-Session-Key header missing"))
    for legacy in ("x-fm-page", "x-fm-publickey", "x-fm-signature", "x-fm-unixtimestamp", "x-fm-api-version"):
        if legacy in headers:
            problems.append(Violation("header", f"pre-v4 header {legacy} is not part of v4"))
    custom = (custom_fields or {}).get(res.name, ()) if res else ()
    allowed_query = {LIST: {"page", "where", "order", "lang"}, GET: {"lang"}}.get(found.operation, set())
    for name in request.query:
        if name not in allowed_query:
            problems.append(Violation("query", f"query parameter '{name}' is not documented here"))
    if found.operation == LIST:
        page = request.query.get("page")
        if page is not None and not str(page).isdigit():
            problems.append(Violation("query", f"page must be a whole number ≥ 0, not '{page}'"))
        for name in PAGE_SIZE_HEADERS:
            value = headers.get(name.lower())
            if value is not None and not str(value).isdigit():
                problems.append(Violation("header", f"{name} must be a whole number"))
        if request.query.get("where"):
            problems += where_violations(res, request.query["where"], strict, custom)
        if request.query.get("order"):
            problems += order_violations(res, request.query["order"], strict)
    if found.operation in (CREATE, UPDATE):
        problems += body_violations(res, request.body, creating=found.operation == CREATE,
                                    strict=strict, custom_fields=custom)
    elif request.body not in (None, b"", ""):
        problems.append(Violation("body", f"{request.method} takes no body"))
    return problems
