"""Quotes made in SSM: priced by Sage, created in Sage as a devis on the rep's request.

A quote is an SSM sales order in one of its Sage product's quote statuses
(`shared.inbound.quote_statuses`); it belongs to its account's dossier. Its state lives in a link
of entity `quote` keyed `ssm:<id>` until Sage creates it (then keyed by the devis, `0:<piece>`),
whose base notes the content last sent for pricing (`_pricing`), the content Sage priced
(`_priced`) and the content sent for creation (`_creating`). The content is a hash of what
pricing depends on: the account and each line's product and quantity.
- « En attente » (saved, or edited): the pricing comment is written, and the quote is sent to
  Sage for pricing, once per content (`PRICE_QUOTE`).
- « Validé »: an edit since the prices (another content) sends it back to « En attente ».
- « En attente de synchronisation »: the devis is created in Sage from the validated prices
  (`CREATE_QUOTE`), once; a quote changed after its prices goes back to « En attente » first.
A quote Sage cannot take (a product of no article of the dossier, an account not in Sage) goes
back to « En attente » with the reason in its internal comment and an incident; nothing is
written to Sage.
"""
from __future__ import annotations

import datetime as dt
from typing import Callable, Optional

from shared.envelope import Envelope, Op, content_hash, message_id
from shared.models import Entity
from shared.ssm.lookups import SALES_ORDER_STATUSES
from shared.state.records import Link
from shared.sync.binder import Binder
from shared.sync.mapping import ORDER_OF_LINE, SALES_ORDER_LINE
from shared.sync.merge import reference_id
from shared.inbound.quote_statuses import QuoteStatuses, statuses_of
from shared.messages import text

QUOTE = Entity.QUOTE.value
QUOTE_REFUSED = "quote"
RETRY_REFUSED = dt.timedelta(hours=1)


def quote_key(ssm_id: int) -> str:
    return f"ssm:{ssm_id}"


class QuoteDecider:
    """What one pass does with one SSM quote (see the module docstring)."""

    def __init__(self, store, ssm, incidents, *, clock: Callable, command: Callable[..., Envelope]):
        self.store = store
        self.ssm = ssm
        self.incidents = incidents
        self.clock = clock
        self.command = command

    def decide(self, record: dict, dossier: str, product: str) -> Optional[Envelope]:
        statuses = statuses_of(product)
        status = self._status_label(record, statuses)
        ssm_id = int(record["id"])
        binder = Binder(self.store, dossier, QUOTE, clock=self.clock)
        link = binder.to_internal(ssm_id) or binder.to_external(quote_key(ssm_id))
        if status is None or record.get("deleted") or (link is not None and link.base.get("_created")):
            return None                         # not a quote in the making, or Sage's already
        lines = [line for line in self.ssm.list(SALES_ORDER_LINE.resource, where=f"{ORDER_OF_LINE}={ssm_id}")
                 if not line.get("deleted")]
        content = self._content(record, lines)
        base = link.base if link is not None else {}
        if status == statuses.validated and content == base.get("_priced"):
            return None
        if status == statuses.awaiting_sync and content == base.get("_priced"):
            if base.get("_creating") == content:
                return None
            request = self._request(record, lines, dossier, statuses, base.get("_prices") or {}, content)
            if request is None:
                return None
            request["content"] = content
            self._note(binder, link, ssm_id, _creating=content)
            return self.command(dossier, QUOTE, Op.CREATE_QUOTE, quote_key(ssm_id), request,
                                command_id=message_id(dossier, "create", QUOTE, str(ssm_id)))
        if base.get("_pricing") == content and status == statuses.pending:
            return None                         # sent for pricing already: its answer comes
        if base.get("_refused") == content and self.clock().isoformat() < base.get("_retry_at", ""):
            return None                         # refused as it is: tried again later, or once edited
        request = self._request(record, lines, dossier, statuses, None, content)
        if request is None:
            return None
        request["content"] = content
        update = {"internalComment": statuses.pricing_comment}
        if status != statuses.pending:          # edited after its prices: priced again
            update["statusId"] = self.ssm.lookup_id(SALES_ORDER_STATUSES, statuses.pending)
        self.ssm.update("salesorders", ssm_id, update)
        self._note(binder, link, ssm_id, _pricing=content)
        return self.command(dossier, QUOTE, Op.PRICE_QUOTE, quote_key(ssm_id), request)

    # --- what Sage is sent --------------------------------------------------------------------
    def _request(self, record: dict, lines: list[dict], dossier: str, statuses: QuoteStatuses,
                 prices: Optional[dict], content: str) -> Optional[dict]:
        ssm_id = int(record["id"])
        account = self.store.get_link_by_ssm_id(dossier, Entity.ACCOUNT.value, reference_id(record.get("accountId")) or -1)
        if account is None:
            return self.refuse(dossier, ssm_id, statuses, text("quote.refused.account"), content)
        sent = []
        for line in sorted(lines, key=lambda l: (l.get("order") or 0, l["id"])):
            product = self.store.get_link_by_ssm_id(dossier, Entity.PRODUCT.value, reference_id(line.get("productId")) or -1)
            if product is None:
                label = (line.get("productId") or {}).get("value") if isinstance(line.get("productId"), dict) else None
                return self.refuse(dossier, ssm_id, statuses, text(
                    "quote.refused.foreign_product", product=label or reference_id(line.get("productId"))), content)
            item = {"line_id": int(line["id"]), "article": product.sage_key, "quantity": line.get("quantity"),
                    "description": line.get("description")}
            if prices is not None:
                item.update(prices.get(str(line["id"])) or {})
            sent.append(item)
        if not sent:
            return self.refuse(dossier, ssm_id, statuses, text("sage.refused.no_lines"), content)
        owner = self.store.get_link_by_ssm_id(dossier, Entity.USER.value, reference_id(record.get("salesRepId")) or -1)
        request = {"ssm_id": ssm_id, "account_key": account.sage_key, "rep_key": owner.sage_key if owner else None,
                   "reference": record.get("reference"), "date": (record.get("dateCreated") or "")[:10] or None,
                   "lines": sent}
        if prices is not None:
            request.update(self._delivery_address(record, dossier))
        return request

    def _delivery_address(self, record: dict, dossier: str) -> dict:
        """The Sage address (`LI_No`) of the quote's chosen SSM account address, when it is one the
        dossier synced; an address of no Sage address is noted (the devis then takes the main one)."""
        chosen = reference_id(record.get("accountAddressId"))
        if chosen is None:
            return {}
        link = self.store.get_link_by_ssm_id(dossier, Entity.DELIVERY_ADDRESS.value, chosen)
        if link is None or link.deleted:
            return {"delivery_address_unmapped": chosen}
        return {"delivery_address_key": link.sage_key}

    def refuse(self, dossier: str, ssm_id: int, statuses: QuoteStatuses, reason: str, content: Optional[str]) -> None:
        """Back to « En attente » with the reason in its comment, an incident; nothing sent to Sage.
        The same content is tried again after `RETRY_REFUSED`, an edited one at once."""
        self.ssm.update("salesorders", ssm_id, {
            "statusId": self.ssm.lookup_id(SALES_ORDER_STATUSES, statuses.pending),
            "internalComment": text("quote.comment.not_priced", reason=reason[0].upper() + reason[1:])})
        self.incidents.record(dossier, QUOTE, quote_key(ssm_id), QUOTE_REFUSED,
                              text("quote.refused", ssm_id=ssm_id, reason=reason))
        binder = Binder(self.store, dossier, QUOTE, clock=self.clock)
        self._note(binder, binder.to_external(quote_key(ssm_id)), ssm_id, _pricing=None, _refused=content,
                   _retry_at=(self.clock() + RETRY_REFUSED).isoformat())
        return None

    # --- state --------------------------------------------------------------------------------
    def _status_label(self, record: dict, statuses: QuoteStatuses) -> Optional[str]:
        status = reference_id(record.get("statusId"))
        return next((label for label in statuses.labels
                     if status is not None and status == self.ssm.find_id(SALES_ORDER_STATUSES, label)), None)

    @staticmethod
    def _content(record: dict, lines: list[dict]) -> str:
        return content_hash({"account": reference_id(record.get("accountId")),
                             "lines": sorted([reference_id(l.get("productId")), l.get("quantity"), l["id"]] for l in lines)})

    def _note(self, binder: Binder, link: Optional[Link], ssm_id: int, **notes) -> Link:
        key = link.sage_key if link is not None else quote_key(ssm_id)
        base = {**(link.base if link is not None else {}), **notes}
        return binder.bind(key, ssm_id, base={k: v for k, v in base.items() if v is not None}, hash="", link=link)
