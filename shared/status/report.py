"""The status report: what each dossier of the group is doing, read from the state store and the bus.

`StatusReader` only reads. For every dossier, active and inactive alike, it gathers the last runs,
the lag (time since the last completed run, and the age of the oldest message still waiting on the
bus when the bus can tell), the pending work of the dossier's bus sessions, its incidents (filtered
by entity and state), the users waiting for an SSM invitation, its Sage collaborators (linked to an
SSM user, to invite or create, without e-mail), the SSM → Sage commands waiting for the agent and
the last journal entries (or one run's). Every sentence is French, from the catalogue, and comes
with its stable `code` (`shared.messages.code_of`). The incidents of the
group partition (payloads naming no known dossier) come apart, as does the last tenant check
(`ssm-connector check-tenant`). Time comes from an injectable clock, so lag is reproducible.
"""
from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from enum import Enum
from typing import TYPE_CHECKING, Callable, Mapping, Optional, Protocol, runtime_checkable

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from shared.bus.protocol import Bus
from shared.config import Settings
from shared.errors import ConfigurationError, ConnectorError, NotFoundError
from shared.inbound.pending import waiting_commands
from shared.messages import code_of, text
from shared.lifecycle import cloud_state, is_running
from shared.state.records import (
    RUN_COUNTERS,
    Dossier,
    Incident,
    IncidentState,
    JournalEntry,
    Run,
    RunState,
    utcnow,
)
from shared.sync.exchange_report import last_export
from shared.sync.user_admin import collaborator_rows
from shared.telemetry import get_logger

if TYPE_CHECKING:
    from shared.state.repository import StateStore

log = get_logger(__name__)

# The dossier id under which incidents about payloads naming no known dossier are recorded.
GROUP_INCIDENTS_DOSSIER = "_group"
INVITE_OPERATION = "invite"
COMPLETED_RUN_STATES = frozenset({RunState.SUCCEEDED, RunState.PARTIAL})
RUNS_READ_FOR_LAG = 100
QUERY_PARAMETERS = ("dossier", "entity", "state", "run", "runs", "journal", "incidents")
RUN_JOURNAL_READ = 500          # journal entries read to find one run's

Clock = Callable[[], dt.datetime]


# --- the query --------------------------------------------------------------------------------
class IncidentStateFilter(str, Enum):
    OPEN = "open"
    RESOLVED = "resolved"
    ALL = "all"


class StatusQueryError(ValueError):
    """A status query parameter has a value the report cannot use; the message says which."""

    code = "status.query.invalid"


class StatusQuery(BaseModel):
    """What to show: one dossier or all, incidents of one entity or all, in which state, how many;
    `run` shows that run's journal instead of the latest entries."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    dossier: Optional[str] = None
    entity: Optional[str] = None
    state: IncidentStateFilter = IncidentStateFilter.OPEN
    run: Optional[str] = None
    runs: int = Field(default=10, ge=1, le=RUNS_READ_FOR_LAG)
    journal: int = Field(default=20, ge=0, le=500)
    incidents: int = Field(default=200, ge=1, le=5000)

    @classmethod
    def from_params(cls, params: Mapping[str, str]) -> "StatusQuery":
        """Read the known query-string parameters; blank ones mean "no filter", others are ignored.

        Raises:
            StatusQueryError: a value out of range or not one of the allowed words.
        """
        values = {name: params[name].strip() for name in QUERY_PARAMETERS
                  if name in params and params[name] is not None and params[name].strip()}
        try:
            return cls.model_validate(values)
        except ValidationError as exc:
            problems = "; ".join(text("status.query.problem", name=".".join(map(str, e["loc"])),
                                      value=e.get("input")) for e in exc.errors())
            raise StatusQueryError(text("status.query.invalid", problems=problems)) from None

    def incident_state(self) -> Optional[IncidentState]:
        """The incident state to list, None for all."""
        return None if self.state is IncidentStateFilter.ALL else IncidentState(self.state.value)


# --- the report -------------------------------------------------------------------------------
class _Out(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Health(str, Enum):
    INACTIVE = "inactive"
    NEVER_SYNCED = "never-synced"
    OK = "ok"
    ATTENTION = "attention"      # open incidents, or the last run ended with failed records
    ERROR = "error"              # the last run failed


class RunStatus(_Out):
    run_id: str
    side: str
    direction: str
    started_at: dt.datetime
    ended_at: Optional[dt.datetime]
    duration_seconds: Optional[float]
    state: RunState
    realignment: bool
    counts: dict[str, int]
    code: Optional[str] = Field(description="catalogue code of `message`")
    message: Optional[str]


class IncidentStatus(_Out):
    dossier: str
    entity: str
    key: str
    operation: str
    code: Optional[str] = Field(description="catalogue code of `message` (stable; None: a sentence older "
                                            "than the catalogue)")
    message: str
    detail: Optional[str]
    first_seen: dt.datetime
    last_seen: dt.datetime
    attempts: int
    state: IncidentState
    dead_lettered: bool
    next_attempt_at: Optional[dt.datetime]
    replay_at: Optional[dt.datetime]          # a dead-lettered change kept to be tried again then
    resolved_at: Optional[dt.datetime]


class JournalStatus(_Out):
    at: dt.datetime
    run_id: Optional[str]
    entity: Optional[str]
    key: Optional[str]
    event: str
    code: Optional[str] = Field(description="catalogue code of `message`")
    message: str


class CommandStatus(_Out):
    command_id: str
    entity: str
    key: str
    operation: str = Field(description="create, update, price or create-quote")
    sent_at: dt.datetime


class LagStatus(_Out):
    last_completed_at: Optional[dt.datetime] = Field(
        default=None, description="end of the last run that succeeded or ended with only record failures")
    seconds: Optional[float] = Field(default=None, description="now - last_completed_at")
    by_direction: dict[str, float] = Field(
        default_factory=dict, description="seconds since the last completed run, per direction")
    oldest_pending_at: Optional[dt.datetime] = None
    oldest_pending_seconds: Optional[float] = None


class PendingStatus(_Out):
    available: bool = Field(description="False when the bus did not answer")
    changes: Optional[int] = Field(default=None, description="None: unknown (the bus cannot count them)")
    commands: Optional[int] = Field(default=None, description="None: unknown (the bus cannot count them)")
    dead_lettered: Optional[int] = Field(default=None, description="None: unknown")
    error: Optional[str] = Field(default=None, description="why the bus did not answer, or why a figure is unknown")


class CollaboratorStatus(_Out):
    key: str
    name: str
    email: Optional[str]
    state: str = Field(description="linked, to-create or no-email")
    state_label: str
    ssm_id: Optional[int]


class TenantFindingStatus(_Out):
    code: str
    severity: str = Field(description="bloquant, avertissement or info")
    dossier: Optional[str] = Field(description="None: the group")
    text: str


class TenantCheckStatus(_Out):
    checked_at: dt.datetime
    blocking: bool
    findings: list[TenantFindingStatus]


class DossierStatus(_Out):
    id: str
    name: Optional[str]
    product: str
    active: bool
    state: str = Field(description="the dossier's lifecycle state (shared.lifecycle.State)")
    health: Health
    created_at: dt.datetime
    activated_at: Optional[dt.datetime]
    deactivated_at: Optional[dt.datetime]
    needs_realignment: bool
    last_realigned_at: Optional[dt.datetime]
    first_load_done: bool
    lag: LagStatus
    pending: Optional[PendingStatus] = Field(description="None when the bus is not consulted")
    runs: list[RunStatus]
    open_incidents: int
    incidents: list[IncidentStatus] = Field(description="newest first, at most query.incidents")
    incidents_total: int = Field(description="incidents matching the query, before the limit")
    invites: list[IncidentStatus] = Field(description="open 'invite' incidents: users to invite in SSM")
    journal: list[JournalStatus] = Field(description="newest first; only the run `query.run` when given")
    commands: list[CommandStatus] = Field(
        default_factory=list, description="SSM → Sage commands sent to the agent and not answered yet")
    collaborators: list[CollaboratorStatus] = Field(
        default_factory=list, description="the dossier's Sage collaborators and their SSM user, by Sage key")
    last_export: Optional[str] = Field(
        default=None, description="file-exchange sources (Sage 50 FR): « Dernière exportation reçue il y a … »")
    set_aside: int = Field(default=0, description="open incidents each holding one record's change set aside "
                                                  "(dead letters), sent again by POST status/dossiers/{id}/replay")


class DossierChoice(_Out):
    id: str
    name: Optional[str]
    active: bool


class StatusReport(_Out):
    group: str
    generated_at: dt.datetime
    query: StatusQuery
    dossier_choices: list[DossierChoice] = Field(description="every dossier of the group, whatever the query")
    dossiers: list[DossierStatus]
    group_incidents: list[IncidentStatus]
    group_incidents_total: int
    tenant_check: Optional[TenantCheckStatus] = Field(default=None, description="the last tenant check, if any")


# --- optional bus capability -----------------------------------------------------------------
@runtime_checkable
class PendingAgeProbe(Protocol):
    """A bus that can tell when the oldest active message of a session was enqueued."""

    def oldest_pending_at(self, queue: str, session_id: Optional[str] = None) -> Optional[dt.datetime]: ...


# --- building it ------------------------------------------------------------------------------
def _aware(value: Optional[dt.datetime]) -> Optional[dt.datetime]:
    if value is not None and value.tzinfo is None:
        return value.replace(tzinfo=dt.timezone.utc)
    return value


def _seconds(later: dt.datetime, earlier: Optional[dt.datetime]) -> Optional[float]:
    if earlier is None:
        return None
    return round((later - _aware(earlier)).total_seconds(), 3)


def _ordered_counts(counts: dict[str, int]) -> dict[str, int]:
    ordered = {name: int(counts.get(name, 0)) for name in RUN_COUNTERS}
    ordered.update({name: value for name, value in sorted(counts.items()) if name not in ordered})
    return ordered


def _run_status(run: Run) -> RunStatus:
    ended = _aware(run.ended_at)
    return RunStatus(
        run_id=run.run_id, side=run.side, direction=run.direction, started_at=_aware(run.started_at),
        ended_at=ended, duration_seconds=_seconds(ended, run.started_at) if ended else None,
        state=run.state, realignment=run.realignment, counts=_ordered_counts(run.counts),
        code=code_of(run.message), message=run.message)


def _incident_status(incident: Incident) -> IncidentStatus:
    return IncidentStatus(
        dossier=incident.dossier, entity=incident.entity, key=incident.key, operation=incident.operation,
        code=code_of(incident.message), message=incident.message, detail=incident.detail, first_seen=_aware(incident.first_seen),
        last_seen=_aware(incident.last_seen), attempts=incident.attempts, state=incident.state,
        dead_lettered=incident.dead_lettered, next_attempt_at=_aware(incident.next_attempt_at),
        replay_at=_aware(incident.replay_at) if incident.parked else None, resolved_at=_aware(incident.resolved_at))


def _journal_status(entry: JournalEntry) -> JournalStatus:
    return JournalStatus(at=_aware(entry.at), run_id=entry.run_id, entity=entry.entity, key=entry.key,
                         event=entry.event, code=code_of(entry.message), message=entry.message)


def _collaborators(store: "StateStore", dossier_id: str) -> list[CollaboratorStatus]:
    return [CollaboratorStatus(key=r.key, name=r.name, email=r.email, state=r.state, state_label=r.state_label,
                               ssm_id=r.ssm_id) for r in collaborator_rows(store, dossier_id)]


def _tenant_check(store: "StateStore") -> Optional[TenantCheckStatus]:
    """The last tenant check saved; one that cannot be read (an older shape) is left out."""
    saved = store.last_tenant_check()
    if not saved:
        return None
    try:
        return TenantCheckStatus(
            checked_at=saved["checked_at"], blocking=bool(saved.get("blocking")),
            findings=[TenantFindingStatus(code=f["code"], severity=f["severity"], dossier=f.get("dossier"),
                                          text=f["text"]) for f in saved.get("findings", [])])
    except (KeyError, TypeError, ValidationError) as exc:
        log.warning("status: the last tenant check could not be read: %r", exc)
        return None


def _newest_first(incidents: list[Incident]) -> list[Incident]:
    return sorted(incidents, key=lambda i: (_aware(i.last_seen), i.entity, i.key), reverse=True)


@dataclass(frozen=True)
class _HealthFacts:
    running: bool
    last_run_state: Optional[RunState]
    open_incidents: int
    ever_completed: bool


# The first rule that holds gives the health; none holding means OK.
_HEALTH_RULES: tuple[tuple[Callable[[_HealthFacts], bool], Health], ...] = (
    (lambda f: not f.running, Health.INACTIVE),
    (lambda f: f.last_run_state is RunState.FAILED, Health.ERROR),
    (lambda f: not f.ever_completed, Health.NEVER_SYNCED),
    (lambda f: f.open_incidents > 0 or f.last_run_state is RunState.PARTIAL, Health.ATTENTION),
)


def _health(dossier: Dossier, runs: list[Run], open_incidents: int) -> Health:
    facts = _HealthFacts(
        running=is_running(cloud_state(dossier)), last_run_state=runs[0].state if runs else None, open_incidents=open_incidents,
        ever_completed=any(r.state in COMPLETED_RUN_STATES and r.ended_at for r in runs))
    for holds, health in _HEALTH_RULES:
        if holds(facts):
            return health
    return Health.OK


@dataclass
class StatusReader:
    """Builds status reports from a state store and, optionally, the bus.

    Args:
        store: the state store (dossiers, runs, journal, incidents).
        group: the name of the group of dossiers (one SSM tenant).
        bus: when given, pending and dead-lettered messages are counted per dossier session.
        changes_queue / commands_queue: the queue names on that bus.
        clock: "now", timezone-aware UTC.
    """

    store: "StateStore"
    group: str = "default"
    bus: Optional[Bus] = None
    changes_queue: str = "sage-changes"
    commands_queue: str = "sage-commands"
    clock: Clock = field(default=utcnow)

    @classmethod
    def from_settings(cls, settings: Settings, store: "StateStore", bus: Optional[Bus] = None, *,
                      clock: Clock = utcnow) -> "StatusReader":
        return cls(store=store, group=settings.group, bus=bus, changes_queue=settings.bus.changes_queue,
                   commands_queue=settings.bus.commands_queue, clock=clock)

    def report(self, query: StatusQuery = StatusQuery()) -> StatusReport:
        """The whole group, or the one dossier (or the group partition) named by `query.dossier`."""
        now = _aware(self.clock())
        known = sorted(self.store.list_dossiers(), key=lambda d: (not d.active, d.id))
        dossiers = [d for d in known if query.dossier is None or d.id == query.dossier]
        group_incidents: list[Incident] = []
        if query.dossier in (None, GROUP_INCIDENTS_DOSSIER):
            group_incidents = self._incidents(GROUP_INCIDENTS_DOSSIER, query)
        return StatusReport(
            group=self.group, generated_at=now, query=query,
            dossier_choices=[DossierChoice(id=d.id, name=d.name, active=d.active) for d in known],
            dossiers=[self._dossier_status(d, query, now) for d in dossiers],
            group_incidents=[_incident_status(i) for i in group_incidents[:query.incidents]],
            group_incidents_total=len(group_incidents),
            tenant_check=_tenant_check(self.store))

    def dossier(self, dossier_id: str, query: StatusQuery = StatusQuery()) -> DossierStatus:
        """One dossier's status. Raises `NotFoundError` for a dossier the group does not know."""
        dossier = self.store.try_get_dossier(dossier_id)
        if dossier is None:
            raise NotFoundError(text("status.dossier.unknown", dossier=dossier_id))
        return self._dossier_status(dossier, query, _aware(self.clock()))

    def _incidents(self, partition: str, query: StatusQuery) -> list[Incident]:
        return _newest_first(self.store.list_incidents(partition, entity=query.entity, state=query.incident_state()))

    def _dossier_status(self, dossier: Dossier, query: StatusQuery, now: dt.datetime) -> DossierStatus:
        runs = sorted(self.store.list_runs(dossier.id, limit=RUNS_READ_FOR_LAG),
                      key=lambda r: _aware(r.started_at), reverse=True)
        open_incidents = _newest_first(self.store.list_incidents(dossier.id, state=IncidentState.OPEN))
        if query.state is IncidentStateFilter.OPEN:
            listed = [i for i in open_incidents if query.entity is None or i.entity == query.entity]
        else:
            listed = self._incidents(dossier.id, query)
        invites = [i for i in open_incidents if i.operation == INVITE_OPERATION]
        journal = self._journal(dossier.id, query)
        pending = self._pending(dossier.id)
        return DossierStatus(
            id=dossier.id, name=dossier.name, product=dossier.product, active=dossier.active,
            state=cloud_state(dossier).value, health=_health(dossier, runs, len(open_incidents)),
            created_at=_aware(dossier.created_at), activated_at=_aware(dossier.activated_at),
            deactivated_at=_aware(dossier.deactivated_at), needs_realignment=dossier.needs_realignment,
            last_realigned_at=_aware(dossier.last_realigned_at), first_load_done=dossier.first_load_done,
            lag=self._lag(runs, pending, dossier.id, now),
            pending=pending,
            runs=[_run_status(r) for r in runs[:query.runs]],
            open_incidents=len(open_incidents),
            incidents=[_incident_status(i) for i in listed[:query.incidents]],
            incidents_total=len(listed),
            invites=[_incident_status(i) for i in invites],
            journal=[_journal_status(e) for e in journal],
            commands=[CommandStatus(**c) for c in waiting_commands(self.store, dossier.id)],
            collaborators=_collaborators(self.store, dossier.id),
            last_export=last_export(self.store, dossier.id, now),
            set_aside=sum(1 for i in open_incidents if i.parked))

    def _journal(self, dossier_id: str, query: StatusQuery) -> list[JournalEntry]:
        if query.run is None:
            return self.store.list_journal(dossier_id, limit=query.journal, entity=query.entity) \
                if query.journal else []
        entries = self.store.list_journal(dossier_id, limit=RUN_JOURNAL_READ)     # the whole run, every entity
        return [e for e in entries if e.run_id == query.run][:max(query.journal, 1)]

    def _lag(self, runs: list[Run], pending: Optional[PendingStatus], dossier_id: str,
             now: dt.datetime) -> LagStatus:
        last_by_direction: dict[str, dt.datetime] = {}
        for run in runs:
            if run.state in COMPLETED_RUN_STATES and run.ended_at is not None:
                ended = _aware(run.ended_at)
                if run.direction not in last_by_direction or ended > last_by_direction[run.direction]:
                    last_by_direction[run.direction] = ended
        last = max(last_by_direction.values(), default=None)
        oldest = self._oldest_pending_at(dossier_id) if pending is not None and pending.available else None
        return LagStatus(
            last_completed_at=last, seconds=_seconds(now, last),
            by_direction={d: _seconds(now, t) for d, t in sorted(last_by_direction.items())},
            oldest_pending_at=oldest, oldest_pending_seconds=_seconds(now, oldest))

    def _pending(self, dossier_id: str) -> Optional[PendingStatus]:
        """The dossier's messages waiting and dead-lettered. A figure the bus cannot give with the
        rights it was given (Service Bus counts no session's messages, and counting a queue needs the
        Manage right the Function App does not hold) is None, shown as unknown, never as zero;
        `error` says why. A bus that does not answer at all makes the whole figure unavailable."""
        if self.bus is None:
            return None
        queues = (self.changes_queue, self.commands_queue)
        unknown: list[str] = []

        def figure(count: Callable[[], int]) -> Optional[int]:
            try:
                return count()
            except ConfigurationError as exc:      # cannot count here; says so, and the rest goes on
                if exc.user_message not in unknown:
                    unknown.append(exc.user_message)
                return None

        try:
            changes = figure(lambda: self.bus.pending_count(self.changes_queue, dossier_id))
            commands = figure(lambda: self.bus.pending_count(self.commands_queue, dossier_id))
            dead = figure(lambda: sum(len(self.bus.dead_letters(q, dossier_id)) for q in queues))
        except Exception as exc:  # the page must still show the state store's view when the bus cannot answer
            log.warning("status: the bus could not count the messages of dossier %s: %r", dossier_id, exc)
            reason = exc.user_message if isinstance(exc, ConnectorError) else text("status.pending.bus_silent")
            return PendingStatus(available=False, error=reason)
        return PendingStatus(available=True, changes=changes, commands=commands, dead_lettered=dead,
                             error=" ".join(unknown) or None)

    def _oldest_pending_at(self, dossier_id: str) -> Optional[dt.datetime]:
        if not isinstance(self.bus, PendingAgeProbe):
            return None
        try:
            ages = [self.bus.oldest_pending_at(q, dossier_id) for q in (self.changes_queue, self.commands_queue)]
        except Exception as exc:  # same reason as in _pending: an optional figure, never a failed page
            log.warning("status: the bus could not date the messages of dossier %s: %r", dossier_id, exc)
            return None
        return min((_aware(a) for a in ages if a is not None), default=None)
