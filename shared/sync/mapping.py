"""The Sage → SSM field mapping, as data.

One `Mapper` per SSM resource: `direct` pairs copy a canonical field into an SSM field, `computed`
pairs name a small function that derives an SSM value (an id looked up or linked, a flag),
`on_create` fields are sent only when the SSM record is created (its branch, its `extId`), and
`ssm_keeps` names the fields whose change made in SSM survives Sage's syncs (the account owner),
`sage_only` those of a record edited on both sides that only Sage may change (a prospect's type:
conversion to client happens in Sage).
The *mapped values* of a record are what the link's `base` remembers and what updates are diffed
on; amounts leave as JSON numbers, text untouched (accents included).

Reference resolution (a linked account, the owner, an account type) is asked of a
`MappingContext`, which raises `DependencyMissingError` when a referenced record is not linked.
"""
from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from decimal import ROUND_FLOOR, Decimal
from enum import Enum
from typing import Any, Callable, Optional, Protocol

from shared.messages import record_name
from shared.models import AccountKind, Entity
from shared.ssm.contract import has_ext_id
from shared.ssm.lookups import (ACCOUNT_TYPE_CLIENT, ACCOUNT_TYPE_PROSPECT, STATUS_INVOICE,
                                STATUS_ORDER)

# Products: the total stock goes in SSM's standard `stock` (a whole number, rounded down); the
# exact and available stock, and one price per tariff category, go in the tenant's custom fields
# when `GET /extrafields/products/schema` declares them (SSM refuses a field it does not have).
PRODUCT_CUSTOM_FIELDS = (("stock_total", "Z_stock_total"), ("stock_available", "Z_stock_disponible"))
Z_TARIFF_PREFIX = "Z_tarif_"          # + the tariff category number: Z_tarif_1, Z_tarif_2…

# A contact needs a first and a last name in SSM; Sage may hold only one. The missing one is
# written as this mark (and a warning incident says so): visible, never mistaken for a name.
MISSING_NAME = "-"

ROOT_FAMILY = -1
ACCOUNT_TYPE_BY_KIND = {AccountKind.CLIENT: ACCOUNT_TYPE_CLIENT, AccountKind.PROSPECT: ACCOUNT_TYPE_PROSPECT}
STATUS_BY_ENTITY = {Entity.ORDER: STATUS_ORDER, Entity.INVOICE: STATUS_INVOICE}

# The canonical document amount reported to SSM's `/sales` totals (dashboards and targets).
SALES_TOTAL_FIELD = "total_ht"

BOOKKEEPING_PREFIX = "_"
"""Keys of a link's `base` starting with this are the connector's own notes, never SSM fields."""


class MappingContext(Protocol):
    """What mapping functions may ask about the dossier and the SSM tenant."""

    dossier: str

    def linked_id(self, entity: Entity | str, sage_key: str, *, needed_by: str) -> int: ...

    def owner_id(self, rep_key: Optional[str]) -> int: ...

    def account_owner_id(self, account_key: str) -> int: ...

    def account_type_id(self, description: str) -> int: ...

    def status_id(self, description: str) -> int: ...

    def branch_id(self) -> int: ...

    def custom_fields(self, resource: str) -> frozenset[str]: ...


def to_ssm(value: Any) -> Any:
    """A canonical value as SSM's JSON takes it: amounts as numbers, dates as ISO text."""
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() and abs(value) < 2 ** 53 else float(value)
    if isinstance(value, (dt.date, dt.datetime)):
        return value.isoformat()
    if isinstance(value, Enum):
        return value.value
    return value


MappingFunction = Callable[[Any, MappingContext], Any]


@dataclass(frozen=True)
class Mapper:
    resource: str
    direct: tuple[tuple[str, str], ...] = ()
    computed: tuple[tuple[str, MappingFunction], ...] = ()
    on_create: tuple[tuple[str, MappingFunction], ...] = ()
    ssm_keeps: frozenset[str] = frozenset()
    sage_only: frozenset[str] = frozenset()
    extra: Optional[Callable[[Any, MappingContext], dict]] = None
    extra_prefix: Optional[str] = None

    def values(self, record: Any, ctx: MappingContext) -> dict[str, Any]:
        """The mapped values of `record`: what is diffed against the link's base."""
        values = {ssm: to_ssm(getattr(record, canonical)) for canonical, ssm in self.direct}
        for ssm, function in self.computed:
            values[ssm] = to_ssm(function(record, ctx))
        if self.extra is not None:
            values.update({k: to_ssm(v) for k, v in self.extra(record, ctx).items()})
        return values

    def create_body(self, record: Any, ctx: MappingContext, values: dict[str, Any],
                    ext_id: Optional[str]) -> dict[str, Any]:
        """The POST body: the mapped values that are set, the create-only fields and `extId`."""
        body = {name: value for name, value in values.items() if value is not None}
        for ssm, function in self.on_create:
            body[ssm] = to_ssm(function(record, ctx))
        if ext_id is not None and self.has_ext_id:
            body["extId"] = ext_id
        return body

    @property
    def has_ext_id(self) -> bool:
        """Whether SSM records of this resource carry an `extId` (families and lines do not)."""
        return has_ext_id(self.resource)

    def fields(self, values: dict[str, Any], base: dict[str, Any]) -> list[str]:
        """The SSM fields an update considers: today's mapped ones, plus dynamic ones that went away."""
        names = list(values)
        if self.extra_prefix:
            names += [k for k in base if k.startswith(self.extra_prefix) and k not in values]
        return names


# --- mapping functions -------------------------------------------------------------------------
def account_type(record, ctx: MappingContext) -> int:
    return ctx.account_type_id(ACCOUNT_TYPE_BY_KIND[AccountKind(record.kind)])


def is_client(record, ctx: MappingContext) -> bool:
    return AccountKind(record.kind) is AccountKind.CLIENT


def account_owner(record, ctx: MappingContext) -> int:
    return ctx.owner_id(record.rep_key)


def document_rep(record, ctx: MappingContext) -> int:
    return ctx.owner_id(record.rep_key)


def branch(record, ctx: MappingContext) -> int:
    return ctx.branch_id()


def linked_account(record, ctx: MappingContext) -> int:
    return ctx.linked_id(Entity.ACCOUNT, record.account_key, needed_by=record_name(record.entity.value, record.key))


def linked_family(record, ctx: MappingContext) -> Optional[int]:
    if not record.family_key:
        return None
    return ctx.linked_id(Entity.PRODUCT_FAMILY, record.family_key, needed_by=record_name("product", record.key))


def root_family(record, ctx: MappingContext) -> int:
    return ROOT_FAMILY


def available(record, ctx: MappingContext) -> bool:
    return False


def always(value: Any) -> MappingFunction:
    def constant(record, ctx: MappingContext) -> Any:
        return value
    constant.__name__ = f"always_{value}"
    return constant


def user_first_name(record, ctx: MappingContext) -> str:
    return record.first_name or record.last_name


def user_active(record, ctx: MappingContext) -> bool:
    return not record.dormant


def product_stock_and_tariffs(record, ctx: MappingContext) -> dict:
    """Total and available stock, and one price per tariff category, in the tenant's `Z_*` fields."""
    tenant_fields = ctx.custom_fields("products")
    values: dict[str, Any] = {ssm: getattr(record, canonical) for canonical, ssm in PRODUCT_CUSTOM_FIELDS
                              if ssm in tenant_fields}
    for tariff in record.tariffs:
        name = f"{Z_TARIFF_PREFIX}{tariff.category}"
        if name in tenant_fields:
            values[name] = tariff.price
    return values


def document_reference(record, ctx: MappingContext) -> str:
    """The Sage piece number (SSM's `number` is numeric, a piece is text), then Sage's reference."""
    return f"{record.number} · {record.reference}" if record.reference else record.number


def document_status(record, ctx: MappingContext) -> int:
    return ctx.status_id(STATUS_BY_ENTITY[record.entity])


def document_date(record, ctx: MappingContext) -> Optional[str]:
    """Sales orders have no date field: a Sage document's date is when its sale closed."""
    return f"{record.date.isoformat()}T00:00:00Z" if record.date else None


def contact_first_name(record, ctx: MappingContext) -> str:
    return record.first_name or MISSING_NAME


def contact_last_name(record, ctx: MappingContext) -> str:
    return record.last_name or MISSING_NAME


def contact_owner(record, ctx: MappingContext) -> int:
    """A new contact belongs to its account's owner in SSM (SSM requires an owner)."""
    return ctx.account_owner_id(record.account_key)


def product_stock(record, ctx: MappingContext) -> Optional[int]:
    total = record.stock_total
    return None if total is None else int(Decimal(total).to_integral_value(rounding=ROUND_FLOOR))


def line_product(line, ctx: MappingContext) -> int:
    return ctx.linked_id(Entity.PRODUCT, line.product_key, needed_by=record_name("line", line.line_id))


def parent_order(line, ctx: MappingContext) -> int:
    return ctx.order_id  # type: ignore[attr-defined]


def whole_quantity(line) -> bool:
    quantity = Decimal(line.quantity)
    return quantity == quantity.to_integral_value() and abs(quantity) < 2 ** 31


def line_quantity(line, ctx: MappingContext) -> int:
    """SSM's quantity is a whole number: a decimal Sage quantity (grams, metres) is sent as 1."""
    return int(Decimal(line.quantity)) if whole_quantity(line) else 1


def line_price(line, ctx: MappingContext) -> Any:
    """The unit price; for a decimal quantity sent as 1, the gross amount of the line, so the
    line's amount stays exact."""
    if line.unit_price is None:
        return 0
    if whole_quantity(line):
        return line.unit_price
    return (Decimal(line.quantity) * Decimal(line.unit_price)).quantize(Decimal("0.0001"))


def line_description(line, ctx: MappingContext) -> Optional[str]:
    """Sage's designation; for a decimal quantity, followed by the real one: « 24,6 × 12,50 € »."""
    if whole_quantity(line):
        return line.description
    real = f"{french_number(line.quantity)} × {french_number(line.unit_price or 0, 2)} €"
    return f"{line.description} — {real}" if line.description else real


def french_number(value: Any, decimals: Optional[int] = None) -> str:
    number = Decimal(value)
    text = f"{number:.{decimals}f}" if decimals is not None else format(number.normalize(), "f")
    return text.replace(".", ",")


# --- the mappers -------------------------------------------------------------------------------
USER = Mapper(
    resource="users",
    direct=(("last_name", "lastName"), ("email", "email")),
    computed=(("name", user_first_name), ("isActive", user_active)),
)

ACCOUNT = Mapper(
    resource="accounts",
    direct=(("name", "name"), ("address1", "address1"), ("address2", "address2"),
            ("postcode", "postcode"), ("city", "city"), ("region", "region"), ("phone", "phone"),
            ("fax", "fax"), ("email", "email"), ("website", "website"), ("vat_number", "vatNumber")),
    computed=(("typeId", account_type), ("readOnly", is_client), ("salesRepId1", account_owner)),
    on_create=(("branchId", branch),),
    ssm_keeps=frozenset({"salesRepId1"}),
    sage_only=frozenset({"typeId", "readOnly"}),
)

CONTACT = Mapper(
    resource="contacts",
    direct=(("email", "email"), ("phone", "phone1"), ("mobile", "phone2")),
    computed=(("firstName", contact_first_name), ("lastName", contact_last_name),
              ("accountId", linked_account)),
    on_create=(("salesRepId", contact_owner),),
)

PRODUCT_FAMILY = Mapper(
    resource="productFamilies",
    direct=(("name", "descriptionFR"), ("name", "descriptionEN")),
    computed=(("notAvailable", available),),
    on_create=(("idParent", root_family),),
)

PRODUCT = Mapper(
    resource="products",
    direct=(("key", "model"), ("name", "description"), ("price", "price"), ("cost", "cost"),
            ("dormant", "notAvailable")),
    computed=(("familyId", linked_family), ("stock", product_stock), ("readOnly", always(True))),
    extra=product_stock_and_tariffs,
    extra_prefix=Z_TARIFF_PREFIX,
)

SALES_ORDER = Mapper(
    resource="salesorders",
    direct=(("total_ht", "total"),),
    computed=(("reference", document_reference), ("accountId", linked_account),
              ("salesRepId", document_rep), ("statusId", document_status), ("readOnly", always(True)),
              ("closedDate", document_date)),
    on_create=(("branchId", branch),),
)

SALES_ORDER_LINE = Mapper(
    resource="salesordersLines",
    direct=(("discount_rate", "discount1"), ("total_ht", "total"), ("position", "order")),
    computed=(("productId", line_product), ("quantity", line_quantity), ("price", line_price),
              ("description", line_description)),
    on_create=(("salesOrderId", parent_order),),
)

DELIVERY_ADDRESS = Mapper(
    resource="accountAddresses",
    direct=(("name", "description"), ("address1", "address1"), ("address2", "address2"),
            ("postcode", "postcode"), ("city", "city"), ("region", "region")),
    computed=(("accountId", linked_account),),
)

ORDER_OF_LINE = "salesorderId"
"""A line's sales order, as SSM names it when reading and filtering (it is written `salesOrderId`)."""

SALES_RESOURCE = "sales"
USERS_RESOURCE = "users"
