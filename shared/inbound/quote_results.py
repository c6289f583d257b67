"""Sage's answers about quotes made in SSM: prices to show, a devis created, or a refusal.

Priced: each SSM line gets Sage's unit price, discount and amount, the quote its total, the status
« Validé », the second system comment and the available stock of its articles; the link notes the
content Sage priced and the prices, which a later creation sends back unchanged. Created: the
quote's link is keyed by the devis (`0:<piece>`), SSM shows the piece at the head of its reference
and keeps the quote read-only; from then on Sage owns it. Refused: back to « En attente » with
Sage's reason in the comment, and an incident.
"""
from __future__ import annotations

import logging
from decimal import Decimal
from typing import Callable

from shared.envelope import Envelope, Op
from shared.messages import text
from shared.ssm.lookups import SALES_ORDER_STATUSES
from shared.sync.binder import Binder
from shared.sync.incidents import DELIVERY_ADDRESS
from shared.sync.mapping import SALES_ORDER_LINE, to_ssm
from shared.inbound.quote_statuses import statuses_of
from shared.inbound.refusals import refusal_text
from shared.inbound.quotes import QUOTE, QuoteDecider, quote_key

DELIVERY_ADDRESS_GONE = "delivery-address-gone"
"""The agent's warning: the quote's address is not one of its tiers' in Sage any more."""
log = logging.getLogger("ssm_connector.inbound")


class QuoteResults:
    def __init__(self, store, ssm, incidents, *, clock: Callable):
        self.store = store
        self.ssm = ssm
        self.incidents = incidents
        self.clock = clock

    def apply(self, dossier: str, envelope: Envelope) -> str:
        result = envelope.record or {}
        command = result.get("command") or {}
        ssm_id = int(command["ssm_id"])
        statuses = statuses_of(self.store.get_dossier(dossier).product)
        if not result.get("ok"):
            QuoteDecider(self.store, self.ssm, self.incidents, clock=self.clock,
                         command=None).refuse(dossier, ssm_id, statuses, refusal_text(result), command.get("content"))
            return "failed"
        self.incidents.resolve(dossier, QUOTE, quote_key(ssm_id))
        written = (result.get("outcome") or {}).get("written") or {}
        if envelope.op is Op.PRICE_QUOTE:
            self._priced(dossier, ssm_id, command, written, statuses)
        else:
            self._created(dossier, ssm_id, command, written,
                          (result.get("outcome") or {}).get("warnings") or ())
        return "applied"

    def _priced(self, dossier: str, ssm_id: int, command: dict, written: dict, statuses) -> None:
        prices = {}
        stock = []
        for line in written.get("lines") or ():
            price = {"price": to_ssm(Decimal(line["unit_price"])), "discount1": to_ssm(Decimal(line["discount"])),
                     "total": to_ssm(Decimal(line["amount"]))}
            self.ssm.update(SALES_ORDER_LINE.resource, int(line["line_id"]), price)
            prices[str(line["line_id"])] = {"unit_price": line["unit_price"], "discount": line["discount"],
                                            "amount": line["amount"]}
            if line.get("stock") is not None:
                stock.append(text("quote.comment.stock", article=line["article"], stock=_number(line["stock"])))
        comment = "\n".join([statuses.priced_comment, *stock])
        self.ssm.update("salesorders", ssm_id, {"total": to_ssm(Decimal(written["total_ht"])), "internalComment": comment,
                                                "statusId": self.ssm.lookup_id(SALES_ORDER_STATUSES, statuses.validated)})
        binder = Binder(self.store, dossier, QUOTE, clock=self.clock)
        link = binder.to_external(quote_key(ssm_id))
        base = {**(link.base if link else {}), "_priced": command.get("content"), "_prices": prices}
        binder.bind(quote_key(ssm_id), ssm_id, base=base, hash="", link=link)

    def _created(self, dossier: str, ssm_id: int, command: dict, written: dict, warnings=()) -> None:
        binder = Binder(self.store, dossier, QUOTE, clock=self.clock)
        piece = written["piece"]
        pending = binder.to_external(quote_key(ssm_id))
        link = binder.to_external(f"0:{piece}")
        lines = written.get("lines") or {}
        binder.bind(f"0:{piece}", ssm_id, base={"_created": True, "_ssm_lines": lines,
                                                "_sent": _sent(command, lines, written)}, hash="", link=link)
        if pending is not None:
            binder.unbind(pending)
        reference = command.get("reference")
        update = {"reference": f"{piece} · {reference}" if reference else piece, "readOnly": True}
        warning = self._address_warning(command, written, warnings, piece)
        if warning:
            update["internalComment"] = warning
            self.incidents.record(dossier, QUOTE, f"0:{piece}", DELIVERY_ADDRESS, warning)
        self.ssm.update("salesorders", ssm_id, update)
        # no journal line: nothing to act on; SSM's reference now starts with the piece
        log.info("%s: %s", dossier, text("quote.created_in_sage", ssm_id=ssm_id, piece=piece))


    @staticmethod
    def _address_warning(command: dict, written: dict, warnings, piece: str) -> str | None:
        """Why the devis' delivery address is not the one chosen on the quote, in French (or None)."""
        unmapped = command.get("delivery_address_unmapped")
        if unmapped is None and DELIVERY_ADDRESS_GONE not in warnings:
            return None
        taken = written.get("delivery_address")
        instead = text("quote.address.main", number=taken) if taken else text("quote.address.none")
        if unmapped is not None:
            return text("quote.address.unmapped", address=unmapped, piece=piece, instead=instead)
        return text("quote.address.gone", key=command.get("delivery_address_key"), piece=piece, instead=instead)


def _sent(command: dict, lines: dict, written: dict) -> dict:
    """What SSM shows of the devis just created, as the Sage → SSM side compares it (so the devis
    read back from Sage is no change)."""
    shown = {}
    for item in command.get("lines") or ():
        number = lines.get(str(item["line_id"]))
        if number is not None:
            shown[str(number)] = {"quantity": int(Decimal(str(item["quantity"]))),
                                  "price": to_ssm(Decimal(str(item["unit_price"]))),
                                  "discount1": to_ssm(Decimal(str(item.get("discount") or 0))),
                                  "total": to_ssm(Decimal(str(item["amount"])))}
    return {"total": to_ssm(Decimal(str(written.get("total_ht") or 0))), "lines": shown}


def _number(value) -> str:
    number = Decimal(str(value)).normalize()
    return format(number, "f").replace(".", ",")
