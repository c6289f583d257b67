"""The statuses a quote made in SSM moves through, and the system comments Sage's own connectors
write, as data per Sage product (`reference/ssm-sage-connectors.md` §3, labels exactly so; the comments'
wording is in the message catalogue, `quote.comment.*`).

Sage 100: « Brouillon – En attente » (saved or edited: Sage prices it) → « Brouillon – Validé »
(Sage's prices) → « En attente de synchronisation » (the rep's request: read-only, created in Sage
as a devis). Sage 50 FR's connector names the same stages « Brouillon (⇆) », « Brouillon validé ✔️ »,
« En attente de synchronisation finale (⇆) ».
"""
from __future__ import annotations

from dataclasses import dataclass

from shared.messages import text


@dataclass(frozen=True)
class QuoteStatuses:
    product: str
    pending: str
    validated: str
    awaiting_sync: str

    @property
    def labels(self) -> tuple[str, str, str]:
        return (self.pending, self.validated, self.awaiting_sync)

    @property
    def pricing_comment(self) -> str:
        return text("quote.comment.pricing", product=text(f"product.{self.product}"))

    @property
    def priced_comment(self) -> str:
        return text("quote.comment.priced", product=text(f"product.{self.product}"))


QUOTE_STATUSES: dict[str, QuoteStatuses] = {
    "sage100": QuoteStatuses("sage100", "Brouillon – En attente", "Brouillon – Validé", "En attente de synchronisation"),
    "sage50": QuoteStatuses("sage50", "Brouillon (⇆)", "Brouillon validé ✔️", "En attente de synchronisation finale (⇆)"),
}


def statuses_of(product: str) -> QuoteStatuses:
    return QUOTE_STATUSES.get(product, QUOTE_STATUSES["sage100"])
