"""Sage 100's sale price for a quote's lines: the integrators' resolution order, as tables.

For each line (an article and a quantity) the price comes from the first *price source* that
has one, in this order (`PRICE_SOURCES`): (1) the customer's own row of `F_ARTCLIENT`
(`AC_Categorie` 0, `CT_Num` = the tiers), (2) the row of the customer's tariff category
(`F_COMPTET.N_CatTarif` = `F_ARTCLIENT.AC_Categorie`), (3) the article's own price
`F_ARTICLE.AR_PrixVen`. A source gives no price when its row is missing or its price is zero
(an empty cell of Sage's tariff grid); the next source is tried, and an article with no price
anywhere is refused. A row of `F_ARTCLIENT` then applies its *break kind* (`AC_QteMont`, table
`BREAK_KINDS`) with the bands of `F_TARIFQTE` whose `TQ_RefCF` names the row (`a` + the
two-digit category for a category row, the customer's `CT_Num` for a customer row): 0 simple
price, 1 a discount by quantity band, 2 a discount by amount band (quantity × unit price), 3 a
net unit price by quantity band. A band covers the quantities (or amounts) up to and including
its `TQ_BorneSup` above the previous band's bound; the highest band also covers everything above
its bound (Sage's last band is an "and above" band). The article's own price has no bands.

Discounts combine successively, never by addition: the row's `AC_Remise` (d1), then the band's
discount `TQ_Remise01REM_Valeur` (d2), then the customer's own discount `F_COMPTET.CT_Taux02`
(d3): net = price × (1 − d1) × (1 − d2) × (1 − d3). A quote line carries one discount, so the
line shows the equivalent rate 1 − (1 − d1)(1 − d2)(1 − d3), as a percentage rounded half-up to
2 decimals, and its amount is computed from the figures it shows, so anyone re-multiplying the
line finds its amount: amount = quantity × unit price × (1 − rate), rounded half-up to the cent.
Unit prices are rounded half-up to the dossier's price decimals (2 unless told otherwise) before
any discount. A net price by quantity (kind 3) is a price, not a discount: it replaces the
row's price, and d1 and d3 still apply to it. Arithmetic is `Decimal` throughout; the SQLite
ODBC driver hands numeric columns out as floats, which are read through `Decimal(str(value))`.

Each line also carries its available stock, `AS_QteSto − AS_QteRes` of `F_ARTSTOCK` summed over
every depot or taken in one depot (`stock_depot`); None for an article whose stock Sage does not
follow (`AR_SuiviStock` 0). Stock never refuses a line: a quote may exceed it.

What Sage's schema does not say, and what this module therefore chooses:
- Tariffs have no validity dates in these tables: `date` is kept on the result, not used.
- No column says whether a sale unit (`AR_UniteVen` → `P_UNITE`) allows fractional quantities:
  quantities are fractional unless the caller names the units that must be whole (`whole_units`).
- No column of the reference schema holds the dossier's number of price decimals: the caller
  passes it (`price_decimals`, default 2).
- `TQ_Remise01REM_Valeur` is read as a percentage (its `REM_Type` is not interpreted).
- `AC_Coef` is how Sage computed `AC_PrixVen`; the stored price is used as it is.
- A price entered tax included (`AR_PrixTTC` / `AC_PrixTTC` = 1) is refused: these tables hold
  no VAT rates to take the tax out.
Refusals are collected for every line and raised together as one `PricingRefused`, each naming
its line and its reason in English. Everything is read with parameterized SQL, and nothing is
written; the connection's transaction is left to the caller (end it to see fresh data later).
"""
from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation, localcontext
from enum import Enum
from typing import Any, Optional

from shared.errors import ConnectorError

ZERO = Decimal(0)
HUNDRED = Decimal(100)
CENT = Decimal("0.01")
DEFAULT_PRICE_DECIMALS = 2
DISCOUNT_DECIMALS = 2          # the line's equivalent discount rate, in percent
AMOUNT_DECIMALS = 2
CUSTOMER_ROW_CATEGORY = 0      # AC_Categorie of a customer's own row
CUSTOMER_TYPE = 0              # F_COMPTET.CT_Type of a client (or prospect)
NOT_STOCK_TRACKED = 0          # F_ARTICLE.AR_SuiviStock


# --- what goes in and what comes out ------------------------------------------------------------

@dataclass(frozen=True)
class LineRequest:
    """A line to price: the article (`AR_Ref`), the quantity, and the caller's own line id."""

    article: str
    quantity: Decimal
    key: Optional[str] = None


@dataclass(frozen=True)
class Discount:
    """One discount taken into the line, in the order applied: `origin` is the Sage column."""

    origin: str            # "AC_Remise", "TQ_Remise01REM_Valeur" or "CT_Taux02"
    percent: Decimal


@dataclass(frozen=True)
class PricedLine:
    line: int                          # the line's position in the request, from 1
    key: Optional[str]
    article: str
    designation: Optional[str]         # AR_Design
    quantity: Decimal
    unit_price: Decimal                # before discount, rounded to the price decimals
    discount: Decimal                  # the equivalent rate of `discounts`, percent, 2 decimals
    amount: Decimal                    # HT: quantity × unit_price × (1 − discount/100), to the cent
    source: str                        # the price source: "customer", "category" or "article"
    break_kind: int                    # AC_QteMont of the row used (0 for the article's own price)
    band_bound: Optional[Decimal]      # TQ_BorneSup of the band applied, if one was
    discounts: tuple[Discount, ...]    # the non-zero discounts combined, in order
    available: Optional[Decimal]       # AS_QteSto − AS_QteRes; None when stock is not followed


@dataclass(frozen=True)
class PricedQuote:
    tiers: str
    date: Any
    lines: tuple[PricedLine, ...]
    total_ht: Decimal                  # the sum of the lines' amounts


class Reason(str, Enum):
    UNKNOWN_TIERS = "unknown-tiers"
    TIERS_ASLEEP = "tiers-asleep"
    UNKNOWN_DEPOT = "unknown-depot"
    NO_DEFAULT_DEPOT = "no-default-depot"
    UNKNOWN_ARTICLE = "unknown-article"
    ARTICLE_ASLEEP = "article-asleep"
    NO_PRICE = "no-price"
    PRICE_INCLUDES_TAX = "price-includes-tax"
    UNKNOWN_BREAK_KIND = "unknown-break-kind"
    INVALID_QUANTITY = "invalid-quantity"
    QUANTITY_NOT_POSITIVE = "quantity-not-positive"
    FRACTIONAL_QUANTITY = "fractional-quantity"


@dataclass(frozen=True)
class Refusal:
    line: Optional[int]                # the line's position from 1; None for the whole quote
    key: Optional[str]
    article: Optional[str]
    reason: Reason
    message: str                       # an English sentence naming the line and the reason


class PricingRefused(ConnectorError):
    """Sage cannot price the quote as it is: `refusals` lists every line refused and why."""

    def __init__(self, refusals: Sequence[Refusal]):
        self.refusals = tuple(refusals)
        super().__init__("; ".join(refusal.message for refusal in self.refusals))


# --- the rows the rules work on ------------------------------------------------------------------

@dataclass(frozen=True)
class _Customer:
    num: str
    category: Optional[int]            # N_CatTarif
    discount: Decimal                  # CT_Taux02


@dataclass(frozen=True)
class _Article:
    ref: str
    designation: Optional[str]
    price: Decimal                     # AR_PrixVen
    includes_tax: bool                 # AR_PrixTTC
    asleep: bool
    unit: Optional[int]                # AR_UniteVen
    stock_tracked: bool


@dataclass(frozen=True)
class Tariff:
    """What a price source found: a price, its own discount, and how its bands apply."""

    source: str
    price: Decimal
    discount: Decimal = ZERO           # AC_Remise
    break_kind: int = 0                # AC_QteMont
    bands_key: Optional[str] = None    # TQ_RefCF of its bands
    includes_tax: bool = False


@dataclass(frozen=True)
class Band:
    bound: Decimal                     # TQ_BorneSup
    discount: Decimal                  # TQ_Remise01REM_Valeur
    net_price: Decimal                 # TQ_PrixNet


@dataclass(frozen=True)
class BandOutcome:
    """What a break kind makes of a tariff: the unit price, the band's discount, the band."""

    price: Decimal
    discount: Decimal = ZERO
    band: Optional[Band] = None


class _Reader:
    """The read-only queries, parameterized; names come from code only."""

    def __init__(self, connection):
        self.cursor = connection.cursor()

    def close(self) -> None:
        self.cursor.close()

    def rows(self, sql: str, parameters: tuple) -> list:
        self.cursor.execute(sql, parameters)
        return self.cursor.fetchall()

    def row(self, sql: str, parameters: tuple):
        found = self.rows(sql, parameters)
        return found[0] if found else None

    def customer(self, num: str):
        return self.row("SELECT CT_Type, CT_Sommeil, N_CatTarif, CT_Taux02 FROM F_COMPTET WHERE CT_Num = ?", (num,))

    def depot_exists(self, depot: int) -> bool:
        return self.row("SELECT DE_No FROM F_DEPOT WHERE DE_No = ?", (depot,)) is not None

    def article(self, ref: str) -> Optional[_Article]:
        row = self.row("SELECT AR_Design, AR_PrixVen, AR_PrixTTC, AR_Sommeil, AR_UniteVen, AR_SuiviStock"
                       " FROM F_ARTICLE WHERE AR_Ref = ?", (ref,))
        if row is None:
            return None
        return _Article(ref, row[0], _decimal(row[1]), _flag(row[2]), _flag(row[3]),
                        None if row[4] is None else int(row[4]), row[5] is None or int(row[5]) != NOT_STOCK_TRACKED)

    def tariff_row(self, ref: str, category: int, customer: Optional[str]):
        sql = ("SELECT AC_PrixVen, AC_Remise, AC_QteMont, AC_PrixTTC FROM F_ARTCLIENT"
               " WHERE AR_Ref = ? AND AC_Categorie = ?")
        if customer is None:
            return self.row(sql, (ref, category))
        return self.row(sql + " AND CT_Num = ?", (ref, category, customer))

    def bands(self, ref: str, key: str) -> list[Band]:
        rows = self.rows("SELECT TQ_BorneSup, TQ_Remise01REM_Valeur, TQ_PrixNet FROM F_TARIFQTE"
                         " WHERE AR_Ref = ? AND TQ_RefCF = ? ORDER BY TQ_BorneSup", (ref, key))
        return [Band(_decimal(bound), _decimal(discount), _decimal(net)) for bound, discount, net in rows]

    def available(self, ref: str, depot: Optional[int]) -> Decimal:
        sql = "SELECT AS_QteSto, AS_QteRes FROM F_ARTSTOCK WHERE AR_Ref = ?"
        rows = self.rows(sql, (ref,)) if depot is None else self.rows(sql + " AND DE_No = ?", (ref, depot))
        return sum((_decimal(stock) - _decimal(reserved) for stock, reserved in rows), ZERO)


@dataclass(frozen=True)
class _Context:
    reader: _Reader
    customer: _Customer
    article: _Article


# --- the price sources, in resolution order --------------------------------------------------------

def _from_row(source: str, row, bands_key: str) -> Optional[Tariff]:
    if row is None:
        return None
    return Tariff(source, _decimal(row[0]), discount=_decimal(row[1]), break_kind=int(row[2] or 0),
                  bands_key=bands_key, includes_tax=_flag(row[3]))


def _customer_price(context: _Context) -> Optional[Tariff]:
    row = context.reader.tariff_row(context.article.ref, CUSTOMER_ROW_CATEGORY, context.customer.num)
    return _from_row("customer", row, context.customer.num)


def _category_price(context: _Context) -> Optional[Tariff]:
    category = context.customer.category
    if not category or category <= CUSTOMER_ROW_CATEGORY:
        return None
    row = context.reader.tariff_row(context.article.ref, category, None)
    return _from_row("category", row, category_bands_key(category))


def _article_price(context: _Context) -> Optional[Tariff]:
    return Tariff("article", context.article.price, includes_tax=context.article.includes_tax)


@dataclass(frozen=True)
class PriceSource:
    name: str
    description: str
    find: Callable[[_Context], Optional[Tariff]]


PRICE_SOURCES: tuple[PriceSource, ...] = (
    PriceSource("customer", "the customer's own F_ARTCLIENT row (AC_Categorie 0, CT_Num = the tiers)",
                _customer_price),
    PriceSource("category", "the F_ARTCLIENT row of the customer's tariff category (N_CatTarif)", _category_price),
    PriceSource("article", "the article's sale price F_ARTICLE.AR_PrixVen", _article_price),
)


def category_bands_key(category: int) -> str:
    """`TQ_RefCF` of a tariff category's bands: `a01` for category 1."""
    return f"a{category:02d}"


# --- the break kinds (AC_QteMont) ------------------------------------------------------------------

def _band_for(bands: Sequence[Band], measure: Decimal) -> Optional[Band]:
    """The first band whose upper bound reaches `measure`; past the last bound, the last band."""
    for band in bands:
        if measure <= band.bound:
            return band
    return bands[-1] if bands else None


def _simple_price(price: Decimal, quantity: Decimal, bands: Sequence[Band]) -> BandOutcome:
    return BandOutcome(price)


def _discount_by_quantity(price: Decimal, quantity: Decimal, bands: Sequence[Band]) -> BandOutcome:
    band = _band_for(bands, quantity)
    return BandOutcome(price, band.discount if band else ZERO, band)


def _discount_by_amount(price: Decimal, quantity: Decimal, bands: Sequence[Band]) -> BandOutcome:
    band = _band_for(bands, quantity * price)
    return BandOutcome(price, band.discount if band else ZERO, band)


def _net_price_by_quantity(price: Decimal, quantity: Decimal, bands: Sequence[Band]) -> BandOutcome:
    band = _band_for(bands, quantity)
    if band is None or band.net_price <= ZERO:
        return BandOutcome(price)
    return BandOutcome(band.net_price, ZERO, band)


@dataclass(frozen=True)
class BreakKind:
    description: str
    uses_bands: bool
    apply: Callable[[Decimal, Decimal, Sequence[Band]], BandOutcome]   # (unit price, quantity, bands)


BREAK_KINDS: dict[int, BreakKind] = {
    0: BreakKind("simple price", False, _simple_price),
    1: BreakKind("discount by quantity band", True, _discount_by_quantity),
    2: BreakKind("discount by amount band (quantity × unit price)", True, _discount_by_amount),
    3: BreakKind("net unit price by quantity band", True, _net_price_by_quantity),
}


# --- pricing ---------------------------------------------------------------------------------------

def default_depot(connection) -> int:
    """The dossier's default depot: the one `F_DEPOT` row Sage marks `DE_Principal` = 1.

    Raises:
        PricingRefused: no depot, or more than one, is marked so (none is guessed).
    """
    cursor = connection.cursor()
    try:
        cursor.execute("SELECT DE_No FROM F_DEPOT WHERE DE_Principal = 1")
        marked = [int(row[0]) for row in cursor.fetchall()]
    finally:
        cursor.close()
    if len(marked) != 1:
        raise PricingRefused([Refusal(None, None, None, Reason.NO_DEFAULT_DEPOT,
                                      f"{len(marked)} depots are marked DE_Principal = 1 in F_DEPOT, not one")])
    return marked[0]


def price_lines(connection, *, tiers: str, date: dt.date | dt.datetime | None, lines: Sequence[LineRequest],
                stock_depot: int | None, price_decimals: int = DEFAULT_PRICE_DECIMALS,
                whole_units: Collection[int] = ()) -> list[PricedLine]:
    """Sage's unit price, discount, amount and available stock of each line for `tiers`.

    Args:
        connection: a pyodbc connection to the company database (only read).
        tiers: the customer's `CT_Num` (a client or a prospect).
        date: the quote's date (Sage's tariff tables carry no dates: kept for the record).
        lines: the lines, each an `AR_Ref` and a `Decimal` quantity.
        stock_depot: the depot (`DE_No`) whose stock is shown; None sums every depot.
        price_decimals: the dossier's number of decimals of unit prices.
        whole_units: the sale units (`AR_UniteVen`) whose quantities must be whole numbers.

    Raises:
        PricingRefused: one or more lines (or the whole quote) cannot be priced; nothing partial
            is returned.
    """
    reader = _Reader(connection)
    try:
        customer, refusals = _customer_of(reader, tiers)
        if stock_depot is not None and not reader.depot_exists(stock_depot):
            refusals.append(Refusal(None, None, None, Reason.UNKNOWN_DEPOT,
                                    f"the depot {stock_depot} does not exist in Sage"))
        if refusals:
            raise PricingRefused(refusals)
        priced = []
        for position, request in enumerate(lines, start=1):
            outcome = _price_line(reader, customer, position, request, stock_depot, price_decimals, whole_units)
            (refusals if isinstance(outcome, Refusal) else priced).append(outcome)
        if refusals:
            raise PricingRefused(refusals)
        return priced
    finally:
        reader.close()


def price_quote(connection, *, tiers: str, date: dt.date | dt.datetime | None, lines: Sequence[LineRequest],
                stock_depot: int | None, price_decimals: int = DEFAULT_PRICE_DECIMALS,
                whole_units: Collection[int] = ()) -> PricedQuote:
    """`price_lines` and the quote's total HT (the sum of the lines' amounts)."""
    priced = price_lines(connection, tiers=tiers, date=date, lines=lines, stock_depot=stock_depot,
                         price_decimals=price_decimals, whole_units=whole_units)
    return PricedQuote(tiers, date, tuple(priced), sum((line.amount for line in priced), ZERO))


def combined_discount(percents: Sequence[Decimal]) -> Decimal:
    """The one rate equal to successive discounts: 1 − Π(1 − d), in percent, rounded half-up."""
    with localcontext() as context:
        context.prec = 50
        remaining = Decimal(1)
        for percent in percents:
            remaining *= 1 - percent / HUNDRED
        return ((1 - remaining) * HUNDRED).quantize(Decimal(1).scaleb(-DISCOUNT_DECIMALS), ROUND_HALF_UP)


def line_amount(quantity: Decimal, unit_price: Decimal, discount: Decimal) -> Decimal:
    """quantity × unit price × (1 − discount%), rounded half-up to the cent."""
    with localcontext() as context:
        context.prec = 50
        return (quantity * unit_price * (HUNDRED - discount) / HUNDRED).quantize(CENT, ROUND_HALF_UP)


def round_price(price: Decimal, decimals: int = DEFAULT_PRICE_DECIMALS) -> Decimal:
    return price.quantize(Decimal(1).scaleb(-decimals), ROUND_HALF_UP)


def _customer_of(reader: _Reader, tiers: str) -> tuple[Optional[_Customer], list[Refusal]]:
    num = (tiers or "").strip()
    row = reader.customer(num) if num else None
    if row is None or int(row[0] or 0) != CUSTOMER_TYPE:
        return None, [Refusal(None, None, None, Reason.UNKNOWN_TIERS,
                              f"the customer {num or '(none)'} does not exist in Sage")]
    if _flag(row[1]):
        return None, [Refusal(None, None, None, Reason.TIERS_ASLEEP,
                              f"the customer {num} is dormant in Sage")]
    return _Customer(num, None if row[2] is None else int(row[2]), _decimal(row[3])), []


def _price_line(reader: _Reader, customer: _Customer, position: int, request: LineRequest,
                stock_depot: Optional[int], price_decimals: int, whole_units: Collection[int]) -> PricedLine | Refusal:
    ref = (request.article or "").strip()

    def refuse(reason: Reason, why: str) -> Refusal:
        return Refusal(position, request.key, ref or None, reason, f"line {position} ({ref or 'no article'}): {why}")

    try:
        quantity = _decimal(request.quantity, strict=True)
    except (InvalidOperation, ValueError, TypeError):
        return refuse(Reason.INVALID_QUANTITY, f"the quantity {request.quantity!r} is not a number")
    article = reader.article(ref) if ref else None
    if article is None:
        return refuse(Reason.UNKNOWN_ARTICLE, "the article does not exist in Sage")
    if article.asleep:
        return refuse(Reason.ARTICLE_ASLEEP, "the article is dormant in Sage")
    if quantity <= ZERO:
        return refuse(Reason.QUANTITY_NOT_POSITIVE, f"the quantity must be above zero, not {quantity}")
    if article.unit in whole_units and quantity != quantity.to_integral_value():
        return refuse(Reason.FRACTIONAL_QUANTITY, f"the article is sold in whole units, not {quantity}")

    context = _Context(reader, customer, article)
    for source in PRICE_SOURCES:
        tariff = source.find(context)
        if tariff is None:
            continue
        kind = BREAK_KINDS.get(tariff.break_kind)
        if kind is None:
            return refuse(Reason.UNKNOWN_BREAK_KIND,
                          f"the {source.name} tariff has a break kind Sage's tables do not define"
                          f" ({tariff.break_kind})")
        bands = reader.bands(ref, tariff.bands_key) if kind.uses_bands and tariff.bands_key else []
        outcome = kind.apply(round_price(tariff.price, price_decimals), quantity, bands)
        unit_price = round_price(outcome.price, price_decimals)
        if unit_price <= ZERO:
            continue                                    # an empty cell: the next source decides
        if tariff.includes_tax:
            return refuse(Reason.PRICE_INCLUDES_TAX,
                          f"the {source.name} price is entered tax included, which the connector cannot convert")
        discounts = tuple(Discount(origin, percent) for origin, percent in
                          (("AC_Remise", tariff.discount), ("TQ_Remise01REM_Valeur", outcome.discount),
                           ("CT_Taux02", customer.discount)) if percent)
        discount = combined_discount([item.percent for item in discounts])
        return PricedLine(
            line=position, key=request.key, article=ref, designation=article.designation, quantity=quantity,
            unit_price=unit_price, discount=discount, amount=line_amount(quantity, unit_price, discount),
            source=source.name, break_kind=tariff.break_kind, band_bound=outcome.band.bound if outcome.band else None,
            discounts=discounts,
            available=reader.available(ref, stock_depot) if article.stock_tracked else None)
    return refuse(Reason.NO_PRICE, "Sage has no sale price for this article")


def _decimal(value: Any, *, strict: bool = False) -> Decimal:
    """A Sage number as a Decimal (floats through their text, so 89.9 stays 89.9); None is 0."""
    if value is None:
        if strict:
            raise ValueError("no value")
        return ZERO
    if isinstance(value, Decimal):
        result = value
    elif isinstance(value, bool):
        raise TypeError("not a number")
    else:
        result = Decimal(str(value).strip())
    if strict and not result.is_finite():
        raise ValueError("not a finite number")
    return result


def _flag(value: Any) -> bool:
    return value is not None and int(value) == 1
