"""Incidents: every record that cannot be synced, on its dossier, in words an administrator reads.

An incident is keyed by (dossier, entity, key, operation). A retryable failure records when the
next attempt is due (exponential backoff on the delivery count, or SSM's `Retry-After`); a
record-fatal one stays open until the record syncs, which resolves every open incident of that
record. Data that names no connected dossier is recorded on the group (`GROUP_DOSSIER`).
"""
from __future__ import annotations

import datetime as dt
import logging
import threading
from typing import Callable, Iterable, Optional

from pydantic import ValidationError

from shared.errors import ConnectorError, RetryableError
from shared.messages import record_name, text
from shared.models import describe_validation_error
from shared.state.records import Incident, IncidentState, utcnow

log = logging.getLogger("ssm_connector.sync")

GROUP_DOSSIER = "_group"

CREATE, UPDATE, DELETE, READ, INVITE = "create", "update", "delete", "read", "invite"
NAME_FILLED = "name-filled"     # a warning: the record synced with a name SSM requires filled in
DELIVERY_ADDRESS = "delivery-address"   # a warning: a devis took another delivery address than the quote's
VALUES_LEFT_OUT = "values-left-out"  # a warning: the record synced without Sage values it could not take
WARNINGS = frozenset({NAME_FILLED, DELIVERY_ADDRESS, VALUES_LEFT_OUT})
"""Operations of incidents that say how a record was synced, not that it failed: a successful
sync of the record does not resolve them; the record's own next state does."""

RETRY_BACKOFF_BASE_S = 30.0
RETRY_BACKOFF_MAX_S = 3600.0


def backoff(attempt: int, retry_after: Optional[float] = None) -> dt.timedelta:
    """The wait before attempt `attempt + 1`: SSM's `Retry-After` if given, else doubling from 30 s."""
    if retry_after is not None:
        return dt.timedelta(seconds=max(0.0, retry_after))
    seconds = min(RETRY_BACKOFF_MAX_S, RETRY_BACKOFF_BASE_S * 2 ** max(0, attempt - 1))
    return dt.timedelta(seconds=seconds)


def describe(error: BaseException, *, entity: str, key: Optional[str]) -> tuple[str, Optional[str]]:
    """(the sentence an administrator reads, internal detail) for any failure of one record."""
    if isinstance(error, ValidationError):
        return describe_validation_error(error, entity=entity, key=key), None
    if isinstance(error, ConnectorError):
        return error.user_message, error.detail
    return text("sync.unexpected", record=record_name(entity, key)), f"{type(error).__name__}: {error}"


class IncidentBook:
    """Records and resolves incidents; knows, per batch, which records have open ones."""

    def __init__(self, store, *, clock: Callable[[], dt.datetime] = utcnow):
        self.store = store
        self.clock = clock
        self._lock = threading.Lock()

    def open_records(self, dossier: str) -> dict[tuple[str, str], list[Incident]]:
        """The dossier's open incidents by (entity, key): one read per batch, not one per record."""
        found: dict[tuple[str, str], list[Incident]] = {}
        for incident in self.store.list_incidents(dossier, state=IncidentState.OPEN):
            found.setdefault((incident.entity, incident.key), []).append(incident)
        return found

    def record_failure(self, dossier: str, entity: str, key: str, operation: str, error: BaseException, *,
                       attempt: int = 1, dead_lettered: bool = False) -> Incident:
        message, detail = describe(error, entity=entity, key=key)
        next_attempt_at = None
        if isinstance(error, RetryableError) and not dead_lettered:
            next_attempt_at = self.clock() + backoff(attempt, getattr(error, "retry_after", None))
        log.warning("%s %s '%s' (%s): %s", dossier, entity, key, operation, message)
        return self.store.record_incident(dossier, entity, key, operation, message, detail=detail,
                                          next_attempt_at=next_attempt_at, dead_lettered=dead_lettered)

    def record(self, dossier: str, entity: str, key: str, operation: str, message: str, *,
               detail: Optional[str] = None, dead_lettered: bool = False, parked: Optional[dict] = None,
               replay_at: Optional[dt.datetime] = None, waiting_for: Optional[str] = None) -> Incident:
        log.warning("%s %s '%s' (%s): %s", dossier, entity, key, operation, message)
        return self.store.record_incident(dossier, entity, key, operation, message, detail=detail,
                                          dead_lettered=dead_lettered, parked=parked, replay_at=replay_at,
                                          waiting_for=waiting_for)

    def record_on_group(self, entity: str, key: str, operation: str, message: str, *,
                        detail: Optional[str] = None, dead_lettered: bool = False) -> Incident:
        return self.record(GROUP_DOSSIER, entity, key, operation, message, detail=detail,
                           dead_lettered=dead_lettered)

    def resolve(self, dossier: str, entity: str, key: str, operation: Optional[str] = None) -> int:
        if operation is not None:
            return int(self.store.resolve_incident(dossier, entity, key, operation))
        return self.store.resolve_incidents_for(dossier, entity, key)

    def resolve_failures(self, dossier: str, entity: str, key: str) -> int:
        """Resolve the record's open incidents except its warnings (the record synced)."""
        return sum(int(self.store.resolve_incident(dossier, entity, key, incident.operation))
                   for incident in self.store.open_incidents_of(dossier, entity, key)
                   if incident.operation not in WARNINGS)


def failure_counted(incidents: Iterable[Incident]) -> bool:
    """Whether a record's open incidents say its failure was counted in a run already: a failure
    that is not retried (no next attempt due) was counted when it happened; a retry was not."""
    return any(i.operation != INVITE and i.next_attempt_at is None for i in incidents)
