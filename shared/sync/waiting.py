"""Records parked on the record they refer to: set aside at once, sent as soon as it is in SSM.

A change that refers to a record with no link in SSM (a contact whose account, an order whose
article is not there) is not retried with the whole batch: it is parked alone, in its own open
incident naming it and the record it waits for (`Incident.waiting_for`), and the rest of the batch
goes on. Two cases, told apart by what the cloud knows of the referenced record:

- temporary: the referenced record is known but not in SSM yet (it has an open incident of its
  own: refused, parked, waiting itself). The child waits for it;
- permanent: nothing of it ever reached the cloud, nor does a link exist. The agent sends a
  dossier's records in dependency order on one FIFO session (accounts before contacts,
  articles before documents), so by the time a child is applied every record it refers to that
  Sage has was applied or is an incident: a reference to a record the cloud never heard of is a
  reference to a record missing from Sage itself (or deleted there). That incident says so at
  once; no timed retry is spent on it.

Either way the parked change is re-checked when Sage changes: as soon as the referenced record
is applied (created in Sage later, or fixed), every change waiting for it is replayed in the same
invocation (`shared.sync.replay.replay_released`), and a new change of the child itself
supersedes the parked one. A temporary wait is also replayed on the dead-letter schedule.
"""
from __future__ import annotations

import datetime as dt
from typing import Iterable, Optional

from shared.envelope import Envelope
from shared.errors import DependencyMissingError
from shared.messages import text
from shared.state.records import Incident
from shared.sync import replay

WHAT = {  # entity: (the record, to the record)
    "account": ("le compte", "au compte"), "contact": ("le contact", "au contact"),
    "product": ("l'article", "à l'article"), "product_family": ("la famille d'articles", "à la famille d'articles"),
    "order": ("la commande", "à la commande"), "invoice": ("la facture", "à la facture"),
    "quote": ("le devis", "au devis"), "user": ("le collaborateur", "au collaborateur"),
    "sales": ("le total des ventes", "au total des ventes")}


def what(entity: str) -> str:
    return WHAT.get(entity, (entity, f"à {entity}"))[0]


def to_what(entity: str) -> str:
    return WHAT.get(entity, (entity, f"à {entity}"))[1]


def waiting_key(entity: str, key: str) -> str:
    return f"{entity}:{key}"


def waiting_incidents(open_records: dict[tuple[str, str], list[Incident]]) -> dict[str, list[Incident]]:
    """The open incidents holding a change parked on another record, by the record waited for."""
    found: dict[str, list[Incident]] = {}
    for incidents in open_records.values():
        for incident in incidents:
            if incident.waiting_for and incident.parked:
                found.setdefault(incident.waiting_for, []).append(incident)
    return found


def released(waiting: dict[str, list[Incident]], applied: Iterable[tuple[str, str]]) -> list[Incident]:
    """The parked changes whose awaited record was just applied."""
    return [incident for entity, key in applied for incident in waiting.get(waiting_key(entity, key), ())]


def park_on_parent(store, incidents, dossier: str, envelope: Envelope, error: DependencyMissingError,
                   operation: str, *, now: dt.datetime) -> Incident:
    """Park the change alone, waiting for the record it refers to; permanent when the cloud never
    heard of that record (see the module docstring)."""
    entity, key = envelope.entity or "", envelope.key or ""
    parent_entity, parent_key = error.entity or "", error.key or ""
    known = bool(store.open_incidents_of(dossier, parent_entity, parent_key)) or \
        store.get_link(dossier, parent_entity, parent_key) is not None
    values = dict(what=what(entity).capitalize(), key=key, to_parent=to_what(parent_entity),
                  parent_what=what(parent_entity), parent_key=parent_key)
    if known:
        message = text("crash.waiting_parent", **values)
        replay_at: Optional[dt.datetime] = replay.first_replay_at(now)
    else:
        message = text("crash.parent_missing", **values)
        replay_at = None
    return incidents.record(dossier, entity, key, operation, message, detail=error.detail, dead_lettered=True,
                            parked=envelope.model_dump(mode="json"), replay_at=replay_at,
                            waiting_for=waiting_key(parent_entity, parent_key))
