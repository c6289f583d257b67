"""Per-tenant reference lists (account types, branches, sales order statuses, currencies).

Their ids differ from one SSM tenant to the next, so the connector never hard-codes them: it
reads the list once per client and finds an entry by its description in any of the documented
languages (`descriptionFR`, `descriptionEN`, … `descriptionRU`; the API returns no plain
`description`), or by a code field (`isoCode` of currencies, `iso2` of countries). Matching ignores case,
repeated spaces and the difference between a hyphen and an en or em dash, because
"Brouillon – En attente" is typed both ways. Deleted entries never match.
"""
from __future__ import annotations

import re
import threading
import unicodedata
from typing import Callable, Iterable

from shared.errors import SsmRecordError
from shared.messages import text

MISSING_VALUE = "—"

ACCOUNT_TYPES = "accountTypes"
BRANCHES = "branches"
SALES_ORDER_STATUSES = "salesorderStatuses"    # singular "salesorder" [SW path, W1]
CURRENCIES = "currencies"
COUNTRIES = "countries"

ACCOUNT_TYPE_CLIENT = "Client"
ACCOUNT_TYPE_PROSPECT = "Prospect"
STATUS_DRAFT_PENDING = "Brouillon – En attente"
STATUS_DRAFT_VALIDATED = "Brouillon – Validé"
STATUS_AWAITING_SYNC = "En attente de synchronisation"
STATUS_ORDER = "Commande"
STATUS_INVOICE = "Facture"
STATUS_CANCELLED = "Annulé"

DESCRIPTION_FIELDS = ("descriptionFR", "descriptionEN", "descriptionES", "descriptionUS", "descriptionIT",
                      "descriptionDE", "descriptionPT", "descriptionBR", "descriptionDK", "descriptionRU",
                      "isoCode", "iso2", "strName")

_DASHES = re.compile(r"[\u2010-\u2015\u2212]")
_SPACES = re.compile(r"\s+")


def normalise(text: str) -> str:
    """The comparison form of a description: NFC, dashes as '-', single spaces, casefolded."""
    text = unicodedata.normalize("NFC", text)
    text = _DASHES.sub("-", text)
    return _SPACES.sub(" ", text).strip().casefold()


def descriptions_of(entry: dict) -> list[str]:
    return [entry[f] for f in DESCRIPTION_FIELDS if isinstance(entry.get(f), str) and entry[f].strip()]


class LookupCache:
    """Description → id for each lookup resource, filled on first use, safe across threads.

    Args:
        fetch: returns every entry of a resource (the client's `list`).
    """

    def __init__(self, fetch: Callable[[str], Iterable[dict]]):
        self._fetch = fetch
        self._lock = threading.Lock()
        self._tables: dict[str, dict[str, int]] = {}
        self._labels: dict[str, list[str]] = {}

    def find(self, resource: str, description: str) -> int | None:
        """The entry's id, or None when the tenant has no such entry."""
        return self._table(resource).get(normalise(description))

    def id_of(self, resource: str, description: str) -> int:
        found = self.find(resource, description)
        if found is None:
            known = ", ".join(f"« {label} »" for label in self._labels[resource]) or MISSING_VALUE
            raise SsmRecordError(text("sync.ssm.unknown_value", resource=resource, description=description,
                                      known=known))
        return found

    def forget(self, resource: str | None = None) -> None:
        with self._lock:
            if resource is None:
                self._tables.clear()
                self._labels.clear()
            else:
                self._tables.pop(resource, None)
                self._labels.pop(resource, None)

    def _table(self, resource: str) -> dict[str, int]:
        with self._lock:
            cached = self._tables.get(resource)
        if cached is not None:
            return cached
        entries = [e for e in self._fetch(resource) if not e.get("deleted")]
        table: dict[str, int] = {}
        labels: list[str] = []
        for entry in sorted(entries, key=lambda e: e["id"]):
            texts = descriptions_of(entry)
            if texts:
                labels.append(texts[0])
            for text in texts:
                table.setdefault(normalise(text), int(entry["id"]))
        with self._lock:
            self._tables[resource] = table
            self._labels[resource] = labels
        return table
