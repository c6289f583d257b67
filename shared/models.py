"""Canonical models: one pydantic model per entity of the rule table.

The agent maps Sage rows into these, the cloud maps these into SSM payloads; neither side sees
the other's field names. Text is trimmed, empty text is None, amounts are `Decimal` (never float),
and invalid values (an e-mail without `@`, a value longer than the SSM field) raise a
`pydantic.ValidationError` that `describe_validation_error` turns into one readable sentence.
"""
from __future__ import annotations

import datetime as dt
import re
from decimal import Decimal
from enum import Enum
from typing import Annotated, Literal, Optional

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator
from pydantic.functional_validators import BeforeValidator

from shared.messages import record_name, text

_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")


def _clean_text(value):
    if value is None:
        return None
    if isinstance(value, bytes):
        value = value.decode("cp1252")
    if not isinstance(value, str):
        value = str(value)
    value = value.strip()
    return value or None


def _clean_email(value):
    value = _clean_text(value)
    if value is None:
        return None
    if not _EMAIL.match(value):
        shown = value if len(value) <= 40 else value[:37] + "..."
        raise ValueError(text("sync.invalid.email", value=shown))
    return value


def _clean_decimal(value):
    if value is None or value == "":
        return None
    if isinstance(value, float):
        return Decimal(repr(value))
    return Decimal(value)


def Text(max_length: int):  # noqa: N802 - reads as a type in field declarations
    return Annotated[Optional[Annotated[str, Field(max_length=max_length)]], BeforeValidator(_clean_text),
                     Field(default=None)]


RequiredText = lambda max_length: Annotated[str, BeforeValidator(_clean_text), Field(min_length=1, max_length=max_length)]  # noqa: E731
Email = Annotated[Optional[Annotated[str, Field(max_length=69)]], BeforeValidator(_clean_email), Field(default=None)]
Amount = Annotated[Optional[Decimal], BeforeValidator(_clean_decimal), Field(default=None)]
RequiredAmount = Annotated[Decimal, BeforeValidator(_clean_decimal)]


class Entity(str, Enum):
    USER = "user"
    ACCOUNT = "account"
    CONTACT = "contact"
    PRODUCT_FAMILY = "product_family"
    PRODUCT = "product"
    QUOTE = "quote"
    ORDER = "order"
    INVOICE = "invoice"
    DELIVERY_ADDRESS = "delivery_address"


class AccountKind(str, Enum):
    CLIENT = "client"
    PROSPECT = "prospect"


class CanonicalRecord(BaseModel):
    """Base of every canonical record: `key` is the Sage business key, as text."""

    model_config = ConfigDict(extra="forbid", frozen=True, str_strip_whitespace=True)
    entity: Entity
    key: RequiredText(64)

    def fields(self) -> dict:
        """The record's mapped values, JSON-ready (Decimals as strings), without entity and key."""
        return self.model_dump(mode="json", exclude={"entity", "key"})


class User(CanonicalRecord):
    entity: Literal[Entity.USER] = Entity.USER
    first_name: Text(35)
    last_name: RequiredText(35)
    email: Email
    phone: Text(21)
    mobile: Text(21)
    job_title: Text(35)
    is_sales_rep: bool = True
    dormant: bool = False


class Account(CanonicalRecord):
    entity: Literal[Entity.ACCOUNT] = Entity.ACCOUNT
    kind: AccountKind
    name: RequiredText(69)
    address1: Text(35)
    address2: Text(35)
    postcode: Text(9)
    city: Text(35)
    region: Text(25)
    country: Text(35)
    phone: Text(21)
    fax: Text(21)
    email: Email
    website: Text(69)
    siret: Text(15)
    vat_number: Text(25)
    rep_key: Text(17)
    tariff_category: Optional[int] = None
    discount_rate: Amount
    credit_limit: Amount
    dormant: bool = False


class Contact(CanonicalRecord):
    entity: Literal[Entity.CONTACT] = Entity.CONTACT
    account_key: RequiredText(17)
    first_name: Text(35)
    last_name: Text(35)
    job_title: Text(35)
    civility: Optional[int] = None
    phone: Text(21)
    mobile: Text(21)
    fax: Text(21)
    email: Email


class ProductFamily(CanonicalRecord):
    entity: Literal[Entity.PRODUCT_FAMILY] = Entity.PRODUCT_FAMILY
    name: RequiredText(69)


class TariffPrice(BaseModel):
    """The price of a product for one tariff category of the Sage dossier."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    category: int
    category_name: Text(35)
    price: Amount
    discount_rate: Amount


class Product(CanonicalRecord):
    entity: Literal[Entity.PRODUCT] = Entity.PRODUCT
    name: RequiredText(69)
    family_key: Text(11)
    price: Amount
    cost: Amount
    unit: Text(21)
    barcode: Text(19)
    dormant: bool = False
    stock_total: Amount
    stock_available: Amount
    tariffs: tuple[TariffPrice, ...] = ()


class DocumentLine(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    line_id: RequiredText(20)
    position: int
    product_key: Text(19)
    description: Text(69)
    quantity: RequiredAmount
    unit_price: Amount
    discount_rate: Amount
    total_ht: Amount
    total_ttc: Amount
    origin_quote: Text(13)      # the devis this line came from (Sage's DL_PieceDE), on orders and invoices


class Document(CanonicalRecord):
    """A sales document (quote, order, invoice) with its lines, sent as one unit."""

    entity: Literal[Entity.QUOTE, Entity.ORDER, Entity.INVOICE]
    number: RequiredText(13)
    doc_type: int
    date: Optional[dt.date] = None
    account_key: RequiredText(17)
    reference: Text(17)
    rep_key: Text(17)
    status: Optional[int] = None
    total_ht: Amount
    total_ttc: Amount
    net_to_pay: Amount
    lines: tuple[DocumentLine, ...] = ()

    @field_validator("lines")
    @classmethod
    def _unique_line_ids(cls, lines):
        ids = [line.line_id for line in lines]
        if len(ids) != len(set(ids)):
            raise ValueError(text("sync.invalid.line_numbers"))
        return lines


class DeliveryAddress(CanonicalRecord):
    """A client's delivery address (keyed by its number in the source); `main` marks the client's main one."""

    entity: Literal[Entity.DELIVERY_ADDRESS] = Entity.DELIVERY_ADDRESS
    account_key: RequiredText(17)
    name: Text(35)
    address1: Text(35)
    address2: Text(35)
    postcode: Text(9)
    city: Text(35)
    region: Text(25)
    country: Text(35)
    main: bool = False


MODEL_BY_ENTITY: dict[Entity, type[CanonicalRecord]] = {
    Entity.USER: User,
    Entity.ACCOUNT: Account,
    Entity.CONTACT: Contact,
    Entity.PRODUCT_FAMILY: ProductFamily,
    Entity.PRODUCT: Product,
    Entity.QUOTE: Document,
    Entity.ORDER: Document,
    Entity.INVOICE: Document,
    Entity.DELIVERY_ADDRESS: DeliveryAddress,
}


def parse_record(entity: Entity | str, data: dict) -> CanonicalRecord:
    """Build the canonical record of `entity` from a dict (raises pydantic.ValidationError)."""
    entity = Entity(entity)
    return MODEL_BY_ENTITY[entity].model_validate({**data, "entity": entity})


def describe_validation_error(error: ValidationError, *, entity: str, key: str | None) -> str:
    """One sentence for all the problems, in French words a Sage administrator understands: our
    own checks say theirs (in French), pydantic's are named by kind, never in its English."""
    problems = []
    for item in error.errors():
        field = ".".join(str(p) for p in item.get("loc", ())) or text("sync.invalid.record_field")
        kind, value = item.get("type"), item.get("input")
        if value is None and kind in ("string_type", "missing", "decimal_type"):
            problem = text("sync.invalid.required")
        elif kind in ("string_too_long", "too_long") and "max_length" in item.get("ctx", {}):
            problem = text("sync.invalid.too_long", max=item["ctx"]["max_length"])
        elif kind == "value_error":
            problem = str(item.get("ctx", {}).get("error") or item.get("msg", ""))
        else:
            shown = str(value) if len(str(value)) <= 40 else str(value)[:37] + "..."
            problem = text("sync.invalid.other", value=shown)
        problems.append(text("sync.invalid.problem", field=field, problem=problem))
    return text("sync.invalid", record=record_name(entity, key), problems="; ".join(problems))
