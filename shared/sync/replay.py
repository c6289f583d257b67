"""Dead-lettered changes tried again later, so a long SSM outage or a late dependency loses nothing.

A message dead-letters after its last delivery (about a quarter of an hour of attempts), which a
long SSM outage or an account that reaches SSM late can outlast. Each change it set aside is kept
in its record's incident (`parked`, due at `replay_at`), and `replay_parked` applies the due
ones of every active dossier through the same sync as a message, dependencies first:
- applied, found already in SSM, or set aside for an invitation: the incident is resolved;
- refused for good (SSM rejects its data): the incident stays, without the change, until the
  record changes in Sage;
- still to retry (SSM not answering, a dependency still missing): parked again, later, for
  `REPLAY_DELAYS` (two days in all); then it waits for its next change or a realignment.
A change of the record that arrives in the meantime supersedes the parked one: applying it
resolves the incident, failing records the incident afresh without the parked change. A replay
runs beside the dossier's messages, so each replayed record is checked again just before it is
applied: if its link changed since the parked change was last tried, a newer change reached it
and the parked one is dropped. So an older change is not applied over a newer one.
"""
from __future__ import annotations

import datetime as dt
import logging
from dataclasses import dataclass
from typing import Optional

from pydantic import ValidationError

from shared.messages import text
from shared.counts import AddableCounts
from shared.envelope import Envelope, EnvelopeBatch
from shared.lifecycle import Direction, cloud_state, lets_through
from shared.state.records import Incident, IncidentState

log = logging.getLogger("ssm_connector.sync")

REPLAY_DELAYS = tuple(dt.timedelta(minutes=m) for m in (15, 30, 60, 120, 240, 480, 720, 720, 720, 720))
"""The wait before each replay of a parked change: the first 15 minutes after it was set aside."""
REPLAYS_PER_BATCH = 100
MAX_REPLAYS_PER_DOSSIER = 1000
"""At most this many changes of one dossier per call; the others stay due for the next call."""


def first_replay_at(now: dt.datetime) -> dt.datetime:
    return now + REPLAY_DELAYS[0]


def parked_message(cause: str, replay_at: dt.datetime) -> str:
    return text("sync.replay.parked", cause=cause, at=f"{replay_at:%d/%m/%Y %H:%M}")


def superseded_message(cause: str) -> str:
    return text("sync.replay.superseded", cause=cause)


def not_kept_message(cause: str, why: str) -> str:
    """The message of a change set aside and not (or no longer) kept for a replay: `why`."""
    return text("sync.replay.not_kept", cause=cause, why=why)


def given_up_message(cause: str, replays: int) -> str:
    return not_kept_message(cause, text("sync.replay.why.given_up", replays=replays))


@dataclass
class ReplayOutcome(AddableCounts):
    """What one `replay_parked` did, over every dossier."""

    replayed: int = 0
    resolved: int = 0
    parked_again: int = 0
    given_up: int = 0


def due(store, dossier: str, now: dt.datetime) -> list[Incident]:
    """The dossier's open incidents holding a change due for replay, oldest first; one per record
    (the newest change kept, should a record ever hold two)."""
    newest: dict[tuple[str, str], Incident] = {}
    for incident in store.list_incidents(dossier, state=IncidentState.OPEN):
        if incident.parked and incident.replay_at is not None and incident.replay_at <= now:
            record = (incident.entity, incident.key)
            if record not in newest or _age(incident) > _age(newest[record]):
                newest[record] = incident
    return sorted(newest.values(), key=lambda i: (i.replay_at, i.first_seen))


def _age(incident: Incident) -> tuple[str, dt.datetime]:
    return str(incident.parked.get("sent_at") or ""), incident.first_seen


def replay_parked(service, *, now: Optional[dt.datetime] = None) -> ReplayOutcome:
    """Apply the parked changes due by `now` (the service's clock) of every active dossier; a
    dossier whose replay fails is logged and tried again at the next call, the others go on."""
    now = now or service.clock()
    total = ReplayOutcome()
    for dossier in service.store.list_dossiers():
        if not lets_through(cloud_state(dossier), Direction.SAGE_TO_SSM):
            continue
        try:
            total.add(_replay_dossier(service, dossier.id, due(service.store, dossier.id, now)
                                      [:MAX_REPLAYS_PER_DOSSIER], now))
        except Exception:
            log.exception("%s: the replay of parked changes failed; it is tried again at the next call", dossier.id)
    return total


def _readable(store, incidents: list[Incident]) -> list[tuple[Incident, Envelope]]:
    """The incidents with their parked change read back; one that cannot be is no longer kept."""
    readable = []
    for incident in incidents:
        try:
            readable.append((incident, Envelope.model_validate(incident.parked)))
        except ValidationError as exc:
            log.warning("%s %s '%s': parked change unreadable: %s", incident.dossier, incident.entity,
                        incident.key, exc)
            store.repark_incident(incident, replay_at=None, message=not_kept_message(
                cause_of(incident.message), text("sync.replay.why.unreadable")))
    return readable


def replay_released(service, dossier: str, incidents: list[Incident], *,
                    now: Optional[dt.datetime] = None) -> ReplayOutcome:
    """Replay at once the parked changes whose awaited record was just applied
    (`shared.sync.waiting`), and in turn those their own success releases."""
    now = now or service.clock()
    done = _replay_dossier(service, dossier, incidents, now)
    if done.replayed:
        log.info("%s: %d change(s) parked on a record now in SSM replayed at once, %d resolved", dossier,
                 done.replayed, done.resolved)
    return done


def replay_now(service, dossier: str, *, now: Optional[dt.datetime] = None) -> ReplayOutcome:
    """Every parked change of the dossier tried again now, due or not (the administrator's request
    on the status page); what still cannot be applied is parked again as before."""
    now = now or service.clock()
    parked = [i for i in service.store.list_incidents(dossier, state=IncidentState.OPEN) if i.parked]
    newest: dict[tuple[str, str], Incident] = {}
    for incident in parked:
        record = (incident.entity, incident.key)
        if record not in newest or _age(incident) > _age(newest[record]):
            newest[record] = incident
    return _replay_dossier(service, dossier, sorted(newest.values(), key=lambda i: i.first_seen)
                           [:MAX_REPLAYS_PER_DOSSIER], now)


def _replay_dossier(service, dossier: str, incidents: list[Incident], now: dt.datetime) -> ReplayOutcome:
    outcome = ReplayOutcome()
    readable = _readable(service.store, incidents)
    seen = {(i.entity, i.key) for i in incidents}
    start = 0
    while start < len(readable):
        chunk = [incident for incident, _ in readable[start:start + REPLAYS_PER_BATCH]]
        batch = EnvelopeBatch(dossier=dossier,
                              envelopes=tuple(envelope for _, envelope in readable[start:start + REPLAYS_PER_BATCH]))
        start += REPLAYS_PER_BATCH
        applied = service.apply_batch(batch, delivery_count=2,
                                      replayed_since={(i.entity, i.key): i.last_seen for i in chunk})
        more = [i for i in applied.released if (i.entity, i.key) not in seen]   # grandchildren, once each
        seen.update((i.entity, i.key) for i in more)
        readable.extend(_readable(service.store, more[:max(0, MAX_REPLAYS_PER_DOSSIER - len(readable))]))
        retry = {(entity, key) for entity, key, _ in applied.retry}
        outcome.replayed += len(chunk)
        for incident in chunk:
            if (incident.entity, incident.key) not in retry:
                outcome.resolved += _settled(service.store, incident)
                continue
            replays = incident.replays + 1
            if replays < len(REPLAY_DELAYS):
                replay_at = now + REPLAY_DELAYS[replays]
                message = parked_message(cause_of(incident.message), replay_at)
                outcome.parked_again += service.store.repark_incident(incident, replay_at=replay_at, message=message)
            else:
                message = given_up_message(cause_of(incident.message), replays)
                outcome.given_up += service.store.repark_incident(incident, replay_at=None, message=message)
    if outcome.replayed:
        log.info("%s: %d parked change(s) replayed, %d resolved, %d parked again, %d given up", dossier,
                 outcome.replayed, outcome.resolved, outcome.parked_again, outcome.given_up)
    return outcome


def _settled(store, incident: Incident) -> bool:
    """After a replay that neither failed nor needs a retry, whether the incident is resolved.

    The sync resolves a record's incidents when its change applies; a change set aside for
    another reason (a collaborateur waiting for an invitation, which has its own incident) leaves
    the incident open with the change still kept: it is resolved here, or it would be replayed
    at every call. A failure recorded the incident afresh, without the change: it stays open.
    """
    still = store.get_incident(incident.dossier, incident.entity, incident.key, incident.operation)
    if still is None or still.state is IncidentState.RESOLVED:
        return True
    if still.waiting_for and still.parked:
        return False                # still waiting for the record it refers to (shared.sync.waiting)
    if still.parked and still.parked == incident.parked:
        return store.resolve_incident(incident.dossier, incident.entity, incident.key, incident.operation)
    return False


def cause_of(message: str) -> str:
    """The failure a parked incident's message starts with."""
    return message.split(". Modification mise de côté", 1)[0].split(". It was set aside", 1)[0]
