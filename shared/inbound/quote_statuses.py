"""The statuses a quote made in SSM moves through, and the system comments Sage's own connectors
write, as data per Sage product (`reference/ssm-sage-connectors.md` §3, labels exactly so).

Sage 100: « Brouillon – En attente » (saved or edited: Sage prices it) → « Brouillon – Validé »
(Sage's prices) → « En attente de synchronisation » (the rep's request: read-only, created in Sage
as a devis). Sage 50 FR's connector names the same stages « Brouillon (⇆) », « Brouillon validé ✔️ »,
« En attente de synchronisation finale (⇆) ».
"""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class QuoteStatuses:
    pending: str
    validated: str
    awaiting_sync: str
    pricing_comment: str
    priced_comment: str

    @property
    def labels(self) -> tuple[str, str, str]:
        return (self.pending, self.validated, self.awaiting_sync)


QUOTE_STATUSES: dict[str, QuoteStatuses] = {
    "sage100": QuoteStatuses(
        "Brouillon – En attente", "Brouillon – Validé", "En attente de synchronisation",
        "VALIDATION EN COURS : Les prix sont en cours de calcul avec Sage 100. Veuillez patienter pendant la "
        "mise à jour.",
        "PRIX VALIDÉS : Les prix ont été calculés via Sage 100. Toute modification relancera le calcul."),
    "sage50": QuoteStatuses(
        "Brouillon (⇆)", "Brouillon validé ✔️", "En attente de synchronisation finale (⇆)",
        "VALIDATION EN COURS : Les prix sont en cours de calcul avec Sage 50. Veuillez patienter pendant la "
        "mise à jour.",
        "PRIX VALIDÉS : Les prix ont été calculés via Sage 50. Toute modification relancera le calcul."),
}
NOT_PRICED_COMMENT = "PRIX NON CALCULÉS : {reason}. Corrigez le devis : il sera à nouveau calculé."
STOCK_LINE = "Stock disponible — {article} : {stock}"


def statuses_of(product: str) -> QuoteStatuses:
    return QUOTE_STATUSES.get(product, QUOTE_STATUSES["sage100"])
