"""The `price-quote` command: a quote made in SSM priced by Sage's own rules, read-only.

It turns the command's lines into `agent.sage100.pricing` requests, prices them for the quote's
tiers and date, and answers each line's unit price, combined discount, amount and available stock
with the quote's total. A quote Sage cannot price is refused with the reason of its first refused
line as a code the cloud words in French (`quote.refused.*`): nothing is written either way.
"""
from __future__ import annotations

import datetime as dt
from decimal import Decimal, InvalidOperation

from agent.sage100.pricing import LineRequest, PricingRefused, Reason, default_depot, price_quote
from agent.sage100.writer import CommandRefused, Outcome

REFUSAL_CODES = {Reason.UNKNOWN_ARTICLE: "article", Reason.ARTICLE_ASLEEP: "article", Reason.NO_PRICE: "no_price",
                 Reason.PRICE_INCLUDES_TAX: "no_price", Reason.QUANTITY_NOT_POSITIVE: "quantity",
                 Reason.INVALID_QUANTITY: "quantity", Reason.FRACTIONAL_QUANTITY: "quantity",
                 Reason.UNKNOWN_TIERS: "tiers", Reason.TIERS_ASLEEP: "tiers",
                 Reason.NO_DEFAULT_DEPOT: "default_depot"}

ALL_DEPOTS, DEFAULT_DEPOT = "all", "default"
"""The dossier's `stock_depot` setting: the stock of every depot summed, or of its default depot."""


def price_command(connection, record: dict, *, stock_depot: str | int | None = ALL_DEPOTS) -> Outcome:
    """Price the quote of a `price-quote` command (the connection's transaction is rolled back).

    `stock_depot`: "all" (or None) sums the stock of every depot, "default" takes the dossier's
    default depot (`default_depot`), a number takes that depot."""
    try:
        if stock_depot == DEFAULT_DEPOT:
            stock_depot = default_depot(connection)
        elif stock_depot == ALL_DEPOTS:
            stock_depot = None
        requests = [LineRequest(str(line["article"]), _quantity(line.get("quantity")), key=str(line["line_id"]))
                    for line in record.get("lines") or ()]
        day = dt.date.fromisoformat(record["date"]) if record.get("date") else None
        quote = price_quote(connection, tiers=record.get("account_key"), date=day, lines=requests,
                            stock_depot=stock_depot)
    except PricingRefused as refused:
        first = refused.refusals[0]
        raise CommandRefused(first.message, field="lines", code=REFUSAL_CODES.get(first.reason),
                             article=first.article, tiers=record.get("account_key")) from None
    finally:
        connection.rollback()
    lines = [{"line_id": int(line.key), "article": line.article, "unit_price": str(line.unit_price),
              "discount": str(line.discount), "amount": str(line.amount),
              "stock": None if line.available is None else str(line.available)} for line in quote.lines]
    return Outcome(record.get("key") or "", written={"lines": lines, "total_ht": str(quote.total_ht)})


def _quantity(value) -> Decimal:
    try:
        return Decimal(str(value))
    except (InvalidOperation, ValueError):
        return Decimal(0)
