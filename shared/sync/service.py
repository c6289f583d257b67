"""The sync service: applies one bus message (an `EnvelopeBatch`) of Sage changes to SSM.

Run markers register the dossier and open and close its cloud-side run; a run-start also gives
the dossier's name, SSM branch and database identity, which the cloud keeps. A dossier's state is
its lifecycle (`shared.lifecycle`): the cloud moves it as the agent's notices and markers say, and
applies Sage's changes only in a state that lets Sage → SSM through. An ordinary (not
realigning) run or a change of a dossier the store does not know means the cloud lost its state
of that dossier: it is registered again and, until its next realignment, every record without a
link is looked up in SSM by its `extId` before it is created (references too), so nothing is
created twice. Dossier states deactivate it (nothing of it is applied any more, its SSM records
stay) or activate it again (its next run realigns it), as does a realignment run the agent
starts; change envelopes go to
their entity's synchronizer, entity after entity in dependency order, records of one entity in
parallel (one thread per record, `max_workers` at once). Every record ends in exactly one of:
applied, skipped unchanged, failed (an incident until its data is fixed), pending (a user to
invite), ignored by rule (a deactivated dossier, a quote from Sage), waiting (parked alone on a
record it refers to that is not in SSM, sent as soon as that one is: `shared.sync.waiting`), or to
retry — then the batch needs redelivery, and on redelivery what was applied already costs no SSM
call. When SSM as a whole cannot be used (keys refused, not answering) the batch breaker leaves the records not
yet attempted for the redelivery, with one incident on the dossier's connection instead of one per
record. A dossier's first load is done at the first run-end that leaves no collaborateur failed
or set aside: until then collaborateurs are created in SSM, afterwards they wait for an invitation.
`record_dead_letter` turns a message that could not be applied into incidents, each holding its
change for `shared.sync.replay` to try again later.
"""
from __future__ import annotations

import datetime as dt
import hashlib
import logging
import re
import threading
from collections import Counter, defaultdict
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Callable, Iterable, Optional

from pydantic import ValidationError

from shared.envelope import Envelope, EnvelopeBatch, EnvelopeKind, Op
from shared.lifecycle import (Cause, Direction, Event, LifecycleError, State, cloud_changes, cloud_state,
                              lets_through)
from shared.messages import text
from shared.errors import (AlreadyExistsError, ConcurrencyError, ConfigurationError, ConnectorError,
                           DependencyMissingError, EntityTooLargeError, RecordError, RetryableError, SkippableError,
                           SsmAuthError, SsmError)
from shared.messages import record_name, text
from shared.models import Entity
from shared.state.records import Cursor, Dossier, IncidentState, JournalEntry, utcnow
from shared.ssm import contract
from shared.sync import replay, waiting
from shared.sync.adopter import held_keys
from shared.sync.binder import external_id
from shared.sync.breaker import BatchBreaker
from shared.sync.dependencies import BatchDependencies, TenantDefaults, plan
from shared.sync.exchange_report import apply_source_report
from shared.sync.invitations import match_invitations
from shared.sage_rows import describe_left_out, is_row_key
from shared.sync.incidents import GROUP_DOSSIER, READ, VALUES_LEFT_OUT, IncidentBook, failure_counted
from shared.sync.runs import RunBook
from shared.sync.synchronizers import (CREATED, DELETED, IGNORED, LINKED, PENDING, SYNCHRONIZERS,
                                       UNCHANGED, UPDATED, Attempt, Outcome, SyncContext)

log = logging.getLogger("ssm_connector.sync")

FAILED, RETRY, WAITING = "failed", "retry", "waiting"
RUN_COUNTER_OF = {CREATED: "created", UPDATED: "updated", LINKED: "updated", DELETED: "deleted",
                  UNCHANGED: "skipped_unchanged", FAILED: "failed", WAITING: "failed"}
APPLIED_KINDS = frozenset({CREATED, UPDATED, LINKED, UNCHANGED})
"""What a record that others may wait for ended in when it is in SSM now."""
CONNECTION_INCIDENT = ("connection", "ssm")
"""(entity, key) of the dossier's incident when SSM refuses the keys, the settings are wrong or SSM
is not answering; the next batch that gets through resolves it."""
MAX_DOSSIER_SAVES = 10
SSM_CALLS_PREFIX = "ssm_calls."
"""Run counts named so are the SSM calls the run made for one entity (`ssm_calls.account`)."""
STATE_LOST_CURSOR = "state-lost"
"""The dossier's cursor holding when the cloud found its state lost; empty again after a realignment."""
_RETRY_PROMISE = re.compile(r"[;,]?\s*(nouvel essai (automatique|plus tard)|(it|the [\w ]+) will be tried again"
                            r"( later)?)\.?$")


@dataclass
class BatchOutcome:
    """What one batch did. `failed` records are incidents now; `retry` ones need redelivery."""

    applied: int = 0
    skipped_unchanged: int = 0
    failed: int = 0
    retry: list[tuple[str, str, str]] = field(default_factory=list)
    pending: int = 0
    ignored: int = 0
    waiting: int = 0                    # parked alone, waiting for a record they refer to (shared.sync.waiting)
    released: list = field(default_factory=list)   # parked changes whose awaited record this batch applied

    @property
    def needs_redelivery(self) -> bool:
        return bool(self.retry)


@dataclass
class _Result:
    envelope: Envelope
    kind: str
    conflicts: int = 0
    message: str = ""
    counted_failure: bool = True
    ssm_calls: int = 0


class _Tally:
    """Run counts of one batch, per run, merged into the run records at the end."""

    def __init__(self, delivery_count: int):
        self.first_delivery = delivery_count <= 1
        self.counts: dict[str, Counter] = defaultdict(Counter)

    def add(self, result: _Result) -> None:
        counts = self.counts[result.envelope.run_id]
        if self.first_delivery:
            counts["read"] += 1
        counter = RUN_COUNTER_OF.get(result.kind)
        if counter == "skipped_unchanged" and not self.first_delivery:
            counter = None
        if counter == "failed" and not (self.first_delivery or result.counted_failure):
            counter = None
        if counter:
            counts[counter] += 1
        counts["conflicts"] += result.conflicts
        if result.ssm_calls:
            counts[f"{SSM_CALLS_PREFIX}{result.envelope.entity}"] += result.ssm_calls

    def pop(self, run_id: str) -> Counter:
        return self.counts.pop(run_id, Counter())

    @classmethod
    def of_dead_letter(cls) -> "_Tally":
        """The counts of a dead-lettered message: its records were read and counted when delivered."""
        return cls(delivery_count=2)


def transformed_quotes(envelopes: Iterable[Envelope]) -> dict[str, tuple[str, str]]:
    """The devis pieces the orders and invoices of a batch came from (their lines' `origin_quote`)."""
    found: dict[str, tuple[str, str]] = {}
    for envelope in envelopes:
        if envelope.entity in (Entity.ORDER.value, Entity.INVOICE.value) and envelope.record:
            number = envelope.record.get("number")
            for line in envelope.record.get("lines") or ():
                origin = (line or {}).get("origin_quote")
                if origin and origin != number:
                    found.setdefault(origin, (envelope.entity, number))
    return found


def _parse_time(value) -> Optional[dt.datetime]:
    """An ISO time from an envelope (UTC when it names no zone), None when absent or unreadable."""
    if not isinstance(value, str):
        return None
    try:
        parsed = dt.datetime.fromisoformat(value)
    except ValueError:
        return None
    return parsed if parsed.tzinfo is not None else parsed.replace(tzinfo=dt.timezone.utc)


def _resource_of(entity: str) -> Optional[str]:
    synchronizer = SYNCHRONIZERS.get(entity)
    return synchronizer.mapper.resource if synchronizer is not None else None


def _last_state_change(dossier: Dossier) -> Optional[dt.datetime]:
    """When the dossier was last deactivated or activated again (None if it never was deactivated)."""
    if dossier.deactivated_at is None:
        return None
    times = [t if t.tzinfo is not None else t.replace(tzinfo=dt.timezone.utc)
             for t in (dossier.deactivated_at, dossier.activated_at) if t is not None]
    return max(times)


class SyncService:
    """Applies Sage change batches to SSM (see the module docstring)."""

    def __init__(self, store, ssm, *, admin_user_email: Optional[str] = None, branch: Optional[str] = None,
                 dossier_branches: Optional[dict[str, str]] = None,
                 clock: Callable[[], dt.datetime] = utcnow, max_workers: int = 4):
        self.store = store
        self.ssm = ssm
        self.clock = clock
        self.max_workers = max(1, max_workers)
        self.defaults = TenantDefaults(ssm, admin_user_email=admin_user_email, branch=branch,
                                       dossier_branches=dossier_branches)
        self.runs = RunBook(store, clock=clock)
        self.incidents = IncidentBook(store, clock=clock)
        self._pool: Optional[ThreadPoolExecutor] = None
        self._pool_lock = threading.Lock()
        self._owned: list = []

    @classmethod
    def from_settings(cls, settings) -> "SyncService":
        """Open the configured state store (creating its tables) and SSM client."""
        from shared.ssm.client import SsmClient
        from shared.state.factory import open_state_store

        store = open_state_store(settings.state)
        store.ensure_tables()
        ssm = SsmClient.from_settings(settings.ssm)
        service = cls(store, ssm, admin_user_email=settings.ssm.admin_user_email, branch=settings.ssm.branch,
                      dossier_branches={d.id: d.ssm_branch for d in settings.dossiers},
                      max_workers=settings.ssm.max_concurrency)
        service._owned = [ssm, store]
        return service

    def close(self) -> None:
        with self._pool_lock:
            pool, self._pool = self._pool, None
        if pool is not None:
            pool.shutdown(wait=True)
        for closable in self._owned:
            closable.close()
        self._owned = []

    def __enter__(self) -> "SyncService":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # --- one batch ----------------------------------------------------------------------------
    def apply_batch(self, batch: EnvelopeBatch, *, delivery_count: int = 1,
                    replayed_since: Optional[dict[tuple[str, str], dt.datetime]] = None) -> BatchOutcome:
        """Apply one bus message. Raise in the caller when `needs_redelivery` (abandon the message).

        `replayed_since` marks a replay of dead-lettered changes (`shared.sync.replay`): for each
        (entity, key), when its change was last tried; a record changed since then is left as it is.
        """
        outcome = BatchOutcome()
        tally = _Tally(delivery_count)
        breaker = BatchBreaker(self.ssm)
        dossier = self.store.try_get_dossier(batch.dossier)
        changes: list[Envelope] = []
        try:
            for envelope in batch.envelopes:
                if envelope.kind is EnvelopeKind.CHANGE:
                    if dossier is None:
                        dossier = self._register(envelope, state_lost=True)
                    changes.append(envelope)
                    continue
                self._apply_changes(dossier, changes, outcome, tally, delivery_count, breaker, replayed_since)
                changes = []
                if envelope.kind is EnvelopeKind.RUN_MARKER:
                    dossier = self._apply_marker(dossier, envelope, outcome, tally)
                elif envelope.kind is EnvelopeKind.DOSSIER_STATE:
                    dossier = self._apply_state(dossier, envelope, outcome)
                elif envelope.kind is EnvelopeKind.COMMAND_RESULT and dossier is not None:
                    self._apply_result(dossier, envelope, outcome)
                else:
                    self._not_handled(dossier, envelope, outcome)
            self._apply_changes(dossier, changes, outcome, tally, delivery_count, breaker, replayed_since)
        finally:
            self._merge_counts(batch.dossier, tally)
        if outcome.released and replayed_since is None:     # a replay replays what it releases itself
            replay.replay_released(self, batch.dossier, outcome.released)
        return outcome

    def _apply_changes(self, dossier: Optional[Dossier], envelopes: list[Envelope], outcome: BatchOutcome,
                       tally: _Tally, delivery_count: int, breaker: BatchBreaker,
                       replayed_since: Optional[dict[tuple[str, str], dt.datetime]] = None) -> None:
        if not envelopes:
            return
        if not lets_through(cloud_state(dossier), Direction.SAGE_TO_SSM):
            self._journal(dossier.id, "dossier-inactive", text("journal.inactive_changes", count=len(envelopes)),
                          run_id=envelopes[0].run_id, detail={"count": len(envelopes)})
            outcome.ignored += len(envelopes)
            return
        if dossier.ssm_branch:              # as its agent's run-start gave it, for a process that did not see it
            self.defaults.dossier_branches.setdefault(dossier.id, dossier.ssm_branch)
        open_records = self.incidents.open_records(dossier.id)
        state_lost = self._state_lost(dossier.id)
        deps = BatchDependencies(self.store, self.ssm, dossier.id, self.defaults, find_unlinked=state_lost)
        ctx = SyncContext(store=self.store, ssm=self.ssm, dossier=dossier, deps=deps, incidents=self.incidents,
                          realignment=lambda run_id: self.runs.is_realignment(dossier.id, run_id),
                          held_none=lambda run_id, resource: self.runs.held_none(
                              dossier.id, run_id, resource, lambda: self._holds_none(dossier.id, resource)),
                          run_started_at=lambda run_id: self.runs.started_at(dossier.id, run_id),
                          clock=self.clock, redelivered=delivery_count > 1, open_records=frozenset(open_records),
                          links_lost=state_lost, replayed_since=replayed_since)
        ctx.transformed_quotes = transformed_quotes(envelopes)
        ctx.held_for_adoption = held_keys(self.store, dossier.id)
        waiting_children = waiting.waiting_incidents(open_records)
        retried: set[tuple[str, str]] = set()       # records of this batch left for its redelivery
        ctx.retried_in_batch = retried
        waves, superseded = plan(envelopes)
        for envelope in superseded:
            self._count(_Result(envelope, UNCHANGED), outcome, tally)
        applied: list[tuple[str, str]] = []
        for wave in waves:
            self._prefetch(ctx, wave.entity, wave.envelopes, breaker)
            task = lambda envelope: self._apply_one(ctx, envelope, open_records, delivery_count, breaker)
            if wave.entity == Entity.USER.value or self.max_workers == 1 or len(wave.envelopes) == 1:
                results: Iterable[_Result] = [task(e) for e in wave.envelopes]
            else:
                results = self._executor().map(task, wave.envelopes)
            for result in results:
                self._count(result, outcome, tally)
                if result.kind in APPLIED_KINDS and waiting_children:
                    applied.append((result.envelope.entity or "", result.envelope.key or ""))
                elif result.kind == RETRY:
                    retried.add((result.envelope.entity or "", result.envelope.key or ""))
        outcome.released.extend(waiting.released(waiting_children, applied))
        if breaker.outage is not None:
            self._record_outage(dossier.id, breaker)
        elif not breaker.tripped and CONNECTION_INCIDENT in open_records and \
                (outcome.applied or outcome.skipped_unchanged or breaker.answered):
            self.incidents.resolve(dossier.id, *CONNECTION_INCIDENT)

    def _record_outage(self, dossier_id: str, breaker: BatchBreaker) -> None:
        """One incident on the dossier's connection for the whole batch (once, however many segments)."""
        if breaker.outage_reported:
            return
        breaker.outage_reported = True
        cause = _RETRY_PROMISE.sub("", breaker.outage.user_message).rstrip(". ")
        self.incidents.record(dossier_id, *CONNECTION_INCIDENT, READ, text("sync.outage", cause=cause),
                              detail=breaker.outage.detail)

    def _apply_one(self, ctx: SyncContext, envelope: Envelope, open_records: dict, delivery_count: int,
                   breaker: BatchBreaker) -> _Result:
        calls_before = self.ssm.stats.thread_requests()
        result = self._apply_envelope(ctx, envelope, open_records, delivery_count, breaker)
        result.ssm_calls = self.ssm.stats.thread_requests() - calls_before
        return result

    def _apply_envelope(self, ctx: SyncContext, envelope: Envelope, open_records: dict, delivery_count: int,
                        breaker: BatchBreaker) -> _Result:
        entity, key = envelope.entity or "", envelope.key or ""
        if breaker.tripped:
            return _Result(envelope, RETRY, message=breaker.reason)
        attempt = Attempt()
        try:
            if envelope.op is Op.INVALID:
                if delivery_count > 1 and (entity, key) in open_records:
                    return _Result(envelope, FAILED, counted_failure=False)
                incident = self.incidents.record(
                    ctx.dossier_id, entity, key, READ,
                    envelope.error or text("sync.unreadable", record=record_name(entity, key)))
                return _Result(envelope, FAILED, message=incident.message, counted_failure=incident.attempts == 1)
            if envelope.op is Op.DELETE and is_row_key(key):
                return self._row_fixed(ctx, envelope, open_records)
            synchronizer = SYNCHRONIZERS.get(entity)
            if synchronizer is None or envelope.op not in (Op.UPSERT, Op.DELETE) or not key:
                raise RecordError(text("sync.not_understood", record=record_name(entity, key), op=envelope.op.value))
            outcome = synchronizer(ctx, entity).run(envelope, attempt)
        except (SsmAuthError, ConfigurationError) as exc:
            breaker.stop()
            self.incidents.record(ctx.dossier_id, *CONNECTION_INCIDENT, READ, exc.user_message, detail=exc.detail)
            return _Result(envelope, RETRY, message=exc.user_message)
        except SkippableError:
            outcome = Outcome(UNCHANGED)
        except (RecordError, ValidationError) as exc:
            if isinstance(exc, SsmError):
                breaker.refused()
            incident = self.incidents.record_failure(ctx.dossier_id, entity, key, attempt.operation, exc,
                                                     attempt=delivery_count)
            return _Result(envelope, FAILED, message=incident.message,
                           counted_failure=not failure_counted(open_records.get((entity, key), ())))
        except DependencyMissingError as exc:         # parked alone on the record it refers to
            if exc.entity is None or exc.key is None or (exc.entity, exc.key) in ctx.retried_in_batch:
                return self._retry(ctx, envelope, exc, attempt, delivery_count, breaker)  # with the batch
            incident = waiting.park_on_parent(self.store, self.incidents, ctx.dossier_id, envelope, exc,
                                              attempt.operation, now=self.clock())
            return _Result(envelope, WAITING, message=incident.message,
                           counted_failure=not failure_counted(open_records.get((entity, key), ())))
        except Exception as exc:                     # retryable, or unforeseen: never dropped
            return self._retry(ctx, envelope, exc, attempt, delivery_count, breaker)
        breaker.succeeded()
        if outcome.action != PENDING and (entity, key) in open_records:
            self.incidents.resolve_failures(ctx.dossier_id, entity, key)
        self._record_left_out(ctx, envelope, open_records)
        return _Result(envelope, outcome.action, conflicts=outcome.conflicts)

    def _row_fixed(self, ctx: SyncContext, envelope: Envelope, open_records: dict) -> _Result:
        """A Sage row known by its cbMarq (unreadable key, duplicate key) is fixed or gone: its
        incidents close; it never was in SSM."""
        if (envelope.entity, envelope.key) in open_records:
            self.incidents.resolve(ctx.dossier_id, envelope.entity or "", envelope.key or "")
        return _Result(envelope, UNCHANGED)

    def _record_left_out(self, ctx: SyncContext, envelope: Envelope, open_records: dict) -> None:
        """The warning of a record synced without some of its Sage values; closed once it syncs whole."""
        entity, key = envelope.entity or "", envelope.key or ""
        opened = [i for i in open_records.get((entity, key), ()) if i.operation == VALUES_LEFT_OUT]
        if envelope.op is Op.UPSERT and envelope.warnings:
            message = describe_left_out(entity, key, envelope.warnings)
            if not opened or opened[0].message != message:
                self.incidents.record(ctx.dossier_id, entity, key, VALUES_LEFT_OUT, message)
        elif opened:
            self.incidents.resolve(ctx.dossier_id, entity, key, VALUES_LEFT_OUT)
    def _retry(self, ctx: SyncContext, envelope: Envelope, exc: Exception, attempt: Attempt, delivery_count: int,
               breaker: BatchBreaker) -> _Result:
        entity, key = envelope.entity or "", envelope.key or ""
        if breaker.trips_on(exc, _resource_of(entity)):
            return _Result(envelope, RETRY, message=breaker.reason)
        if not isinstance(exc, ConnectorError):
            log.exception("unexpected failure on %s %s '%s'", ctx.dossier_id, entity, key)
        incident = self.incidents.record_failure(ctx.dossier_id, entity, key, attempt.operation, exc,
                                                 attempt=delivery_count)
        return _Result(envelope, RETRY, message=incident.message)

    def _count(self, result: _Result, outcome: BatchOutcome, tally: _Tally) -> None:
        kind = result.kind
        if kind in (CREATED, UPDATED, DELETED, LINKED):
            outcome.applied += 1
        elif kind == UNCHANGED:
            outcome.skipped_unchanged += 1
        elif kind == FAILED:
            outcome.failed += 1
        elif kind == RETRY:
            outcome.retry.append((result.envelope.entity or "", result.envelope.key or "", result.message))
        elif kind == PENDING:
            outcome.pending += 1
        elif kind == IGNORED:
            outcome.ignored += 1
        elif kind == WAITING:
            outcome.waiting += 1
        tally.add(result)

    def _prefetch(self, ctx: SyncContext, entity: str, envelopes: list[Envelope], breaker: BatchBreaker) -> None:
        """On a realignment, read SSM's records of this wave ahead, a few dozen per call."""
        synchronizer = SYNCHRONIZERS.get(entity)
        if synchronizer is None or entity == Entity.USER.value or breaker.tripped \
                or not synchronizer.mapper.has_ext_id:
            return
        resource = synchronizer.mapper.resource
        keys = [e.key for e in envelopes if e.op is Op.UPSERT and e.key and ctx.may_hold_earlier(e.run_id, resource)]
        if len(keys) < 2:
            return
        try:
            ctx.deps.prefetch(resource, keys)
        except ConnectorError as exc:
            if not breaker.trips_on(exc, synchronizer.mapper.resource):
                log.warning("read-ahead of %s failed, records are read one by one: %s", entity, exc)

    def _executor(self) -> ThreadPoolExecutor:
        with self._pool_lock:
            if self._pool is None:
                self._pool = ThreadPoolExecutor(self.max_workers, thread_name_prefix="ssm-sync")
            return self._pool

    # --- run markers --------------------------------------------------------------------------
    def _apply_marker(self, dossier: Optional[Dossier], envelope: Envelope, outcome: BatchOutcome,
                      tally: _Tally, *, match_invites: bool = True, in_order: bool = True) -> Optional[Dossier]:
        """Open or close a run. `in_order` is False for a dead-lettered message, read out of order."""
        if envelope.op is Op.RUN_START:
            record = envelope.record or {}
            realignment = bool(record.get("realignment"))
            if dossier is None:
                dossier = self._register(envelope, name=record.get("name"), state_lost=not realignment)
            dossier = self._learn_facts(dossier, record)
            if cloud_state(dossier) is State.INACTIVE and realignment and in_order:
                dossier = self._reactivate_for_realignment(dossier, envelope)
            if realignment and cloud_state(dossier) is not State.INACTIVE:
                dossier = self._realigning(dossier, envelope)
            if not lets_through(cloud_state(dossier), Direction.SAGE_TO_SSM):
                self._journal(dossier.id, "dossier-inactive", text("journal.run_inactive"), run_id=envelope.run_id)
                outcome.ignored += 1
                return dossier
            self.runs.start(dossier.id, envelope.run_id, realignment=realignment,
                            reasons=tuple((envelope.record or {}).get("reasons") or ()))
            return apply_source_report(self.store, self.incidents, dossier, (envelope.record or {}).get("source"),
                                       now=self.clock(), run_id=envelope.run_id)
        if envelope.op is not Op.RUN_END:
            self._not_handled(dossier, envelope, outcome)
            return dossier
        if dossier is None:
            dossier = self._register(envelope, state_lost=True)
        if not lets_through(cloud_state(dossier), Direction.SAGE_TO_SSM):
            outcome.ignored += 1
            return dossier
        if outcome.retry:
            return dossier          # the run ends when the redelivered batch gets through
        counts = tally.pop(envelope.run_id)
        if any(counts.values()):
            self.runs.add(dossier.id, envelope.run_id, counts)
        previous = self.store.get_run(dossier.id, envelope.run_id)
        if previous is not None and previous.ended_at is not None:
            return dossier          # a redelivered run-end: the run is closed already
        run = self.runs.end(dossier.id, envelope.run_id, agent_counts=envelope.counts)
        dossier = self._after_run(dossier.id, envelope.run_id, realignment=run.realignment)
        if match_invites:
            try:
                self.retry_pending_invites(dossier.id)
            except ConnectorError as exc:
                log.warning("invitations of %s not checked: %s", dossier.id, exc)
        return dossier

    def _holds_none(self, dossier_id: str, resource: str) -> Optional[bool]:
        """Whether SSM holds no record of the dossier in `resource`, under today's `extId` or an
        earlier release's, or no record at all when the resource's records carry no `extId`
        (product families): one read; None when SSM did not answer."""
        prefixes = {external_id(dossier_id, ""), f"{dossier_id}:"} if contract.has_ext_id(resource) else None
        try:
            return not self.ssm.holds_any(resource, ext_id_prefixes=prefixes)
        except ConnectorError as exc:
            log.warning("records of %s in SSM %s not probed, each is looked for: %s", dossier_id, resource, exc)
            return None

    def _register(self, envelope: Envelope, *, name: Optional[str] = None, state_lost: bool = False) -> Dossier:
        """Connect a dossier the store does not know; `state_lost` when the agent synced it before."""
        try:
            dossier = self.store.create_dossier(Dossier(id=envelope.dossier, name=name, active=True,
                                                        activated_at=self.clock(), created_at=self.clock()))
        except AlreadyExistsError:
            return self.store.get_dossier(envelope.dossier)
        if not state_lost:
            self._journal(dossier.id, "dossier-registered", text("journal.registered", dossier=dossier.id),
                          run_id=envelope.run_id)
            return dossier
        self._save_cursor(dossier.id, STATE_LOST_CURSOR, self.clock().isoformat())
        self._journal(dossier.id, "state-lost", text("journal.state_lost", dossier=dossier.id), run_id=envelope.run_id,
                      detail={"envelope": f"{envelope.kind.value} {envelope.op.value}"})
        return dossier

    def _state_lost(self, dossier_id: str) -> bool:
        """Whether the cloud lost this dossier's state and no realignment has rebuilt it since."""
        cursor = self.store.get_cursor(dossier_id, STATE_LOST_CURSOR)
        return cursor is not None and bool(cursor.value)

    def _save_cursor(self, dossier_id: str, name: str, value: str) -> None:
        for _ in range(MAX_DOSSIER_SAVES):
            current = self.store.get_cursor(dossier_id, name)
            cursor = Cursor(dossier=dossier_id, name=name, value=value) if current is None \
                else current.model_copy(update={"value": value})
            try:
                self.store.save_cursor(cursor)
                return
            except ConcurrencyError:
                continue
        raise ConcurrencyError(text("sync.busy.cursor"),
                               detail=f"{dossier_id} {name}")

    # --- dossier states ---------------------------------------------------------------------
    def _apply_state(self, dossier: Optional[Dossier], envelope: Envelope, outcome: BatchOutcome, *,
                     in_order: bool = True) -> Optional[Dossier]:
        """The agent deactivated the dossier, or activated it again (then its next run realigns it).

        A state the dossier already has changes nothing. Out of order (`in_order=False`, a
        dead-lettered message), a change older than the last one applied is not applied.
        """
        active = envelope.op is Op.ACTIVATE
        if envelope.op not in (Op.ACTIVATE, Op.DEACTIVATE):
            self._not_handled(dossier, envelope, outcome)
            return dossier
        record = envelope.record or {}
        if dossier is None:
            if active:
                return self._register(envelope, name=record.get("name"))
            log.info("deactivation of %s ignored: the dossier is not connected to this group", envelope.dossier)
            outcome.ignored += 1
            return None
        changed_at = _parse_time(record.get("changed_at")) or self.clock()
        if not in_order:
            last = _last_state_change(dossier)
            if last is not None and changed_at <= last:
                self._journal(dossier.id, "dossier-state-outdated",
                              text("journal.state_outdated.activated" if active
                                   else "journal.state_outdated.deactivated",
                                   at=f"{changed_at:%d/%m/%Y %H:%M}"), run_id=envelope.run_id)
                return dossier
        event = Event.REACTIVATE if active else Event.DEACTIVATE

        def changes_of(current: Dossier) -> dict:
            update = cloud_changes(current, event, at=changed_at)
            if update and record.get("name"):
                update["name"] = record["name"]
            return update
        dossier, changed = self._update_dossier(dossier.id, changes_of)
        if changed:
            message = text("journal.activated" if active else "journal.deactivated", dossier=dossier.id)
            self._journal(dossier.id, "dossier-activated" if active else "dossier-deactivated", message,
                          run_id=envelope.run_id, detail={"changed_at": changed_at.isoformat()})
        return dossier

    def _learn_facts(self, dossier: Dossier, record: dict) -> Dossier:
        """Keep what a run-start marker tells of the dossier: its name, SSM branch, database identity."""
        facts = {name: record[name] for name in ("name", "ssm_branch", "identity") if record.get(name)}
        if facts.get("ssm_branch"):
            self.defaults.dossier_branches.setdefault(dossier.id, facts["ssm_branch"])
        return self._update_dossier(dossier.id, lambda d: {k: v for k, v in facts.items()
                                                           if getattr(d, k) != v})[0]

    def _realigning(self, dossier: Dossier, envelope: Envelope) -> Dossier:
        """A realignment run starts: the dossier is realigning (restored, when the agent says so)."""
        cause = (envelope.record or {}).get("cause")
        event = Event.RESTORE if cause == Cause.RESTORED.value else Event.REALIGN
        why = Cause(cause) if cause in {c.value for c in Cause} else None
        try:
            dossier, changed = self._update_dossier(
                dossier.id, lambda d: cloud_changes(d, event, at=self.clock(), cause=why))
        except LifecycleError as exc:
            log.warning("dossier %s: %s", dossier.id, exc)
            return dossier
        if changed:
            self._journal(dossier.id, "dossier-realigning",
                          text(f"lifecycle.journal.{dossier.realignment_cause or Cause.REACTIVATED.value}",
                               dossier=dossier.id), run_id=envelope.run_id, detail={"cause": dossier.realignment_cause})
        return dossier

    def _reactivate_for_realignment(self, dossier: Dossier, envelope: Envelope) -> Dossier:
        cause = (envelope.record or {}).get("cause")
        why = Cause(cause) if cause in {c.value for c in Cause} else Cause.REACTIVATED
        dossier, changed = self._update_dossier(
            dossier.id, lambda d: cloud_changes(d, Event.REACTIVATE, at=self.clock(), cause=why))
        if changed:
            self._journal(dossier.id, "dossier-activated", text("journal.reactivated_by_realignment", dossier=dossier.id),
                          run_id=envelope.run_id)
        return dossier

    def _update_dossier(self, dossier_id: str, changes_of: Callable[[Dossier], dict]) -> tuple[Dossier, bool]:
        """Save `changes_of(dossier)` on the stored dossier under its ETag, read again after a
        concurrent write; nothing when there are none. Returns the dossier and whether it changed."""
        for _ in range(MAX_DOSSIER_SAVES):
            dossier = self.store.get_dossier(dossier_id)
            changes = changes_of(dossier)
            if not changes:
                return dossier, False
            try:
                return self.store.upsert_dossier(dossier.model_copy(update=changes)), True
            except ConcurrencyError:
                continue
        raise ConcurrencyError(text("sync.busy.dossier"),
                               detail=dossier_id)

    def _after_run(self, dossier_id: str, run_id: str, *, realignment: bool) -> Dossier:
        """A run-end marks the first load done; a
        realignment's end clears the request, and ends the look-ups before create of a dossier
        whose state was lost."""
        state_lost = self._state_lost(dossier_id)
        if realignment and state_lost:
            self._save_cursor(dossier_id, STATE_LOST_CURSOR, "")
            self._journal(dossier_id, "state-rebuilt", text("journal.state_rebuilt"))
            state_lost = False
        first_load_ends = not self.store.get_dossier(dossier_id).first_load_done

        def changes_of(dossier: Dossier) -> dict:
            changes = {}
            if realignment or (not dossier.first_load_done and first_load_ends):
                changes = cloud_changes(dossier, Event.SYNCED, at=self.clock())
            if realignment:
                changes.update(needs_realignment=False, realignment_cause=None, last_realigned_at=self.clock())
            elif changes.get("first_load_done") and state_lost:
                changes.update(needs_realignment=True)
            return changes
        return self._update_dossier(dossier_id, changes_of)[0]

    def _merge_counts(self, dossier_id: str, tally: _Tally) -> None:
        for run_id in list(tally.counts):
            counts = tally.pop(run_id)
            if any(counts.values()):
                self.runs.add(dossier_id, run_id, counts)

    # --- what belongs to no dossier of the group ------------------------------------------------
    def _unknown_dossier(self, envelope: Envelope, *, dead_lettered: bool = False) -> None:
        entity = envelope.entity or "run"
        key = envelope.key or envelope.run_id
        self.incidents.record_on_group(
            entity, key, READ,
            text("sync.unknown_dossier", dossier=envelope.dossier),
            detail=f"dossier {envelope.dossier}: {envelope.kind.value} {envelope.op.value} {entity} '{key}'",
            dead_lettered=dead_lettered)

    def _apply_result(self, dossier: Dossier, envelope: Envelope, outcome: BatchOutcome) -> None:
        """Sage's answer to a command (`shared.inbound.results`); SSM not answering → redelivery."""
        from shared.inbound.results import ResultBinder

        try:
            binder = ResultBinder(self.store, self.ssm, self.incidents, clock=self.clock,
                                  owner_without_rep=lambda: int(self.defaults.admin_user()["id"]))
            done = binder.apply(dossier.id, envelope)
        except RetryableError as exc:
            outcome.retry.append((envelope.entity or "", envelope.key or "", exc.user_message))
            return
        except RecordError as exc:
            self.incidents.record_failure(dossier.id, envelope.entity or "", envelope.key or "", "bind", exc)
            outcome.failed += 1
            return
        if done == "applied":
            outcome.applied += 1
        else:
            outcome.failed += 1

    def _not_handled(self, dossier: Optional[Dossier], envelope: Envelope, outcome: BatchOutcome) -> None:
        self._journal(dossier.id if dossier else GROUP_DOSSIER, "envelope-not-handled",
                      text("journal.not_handled", kind=envelope.kind.value, op=envelope.op.value), run_id=envelope.run_id,
                      detail={"entity": envelope.entity, "key": envelope.key})
        outcome.ignored += 1

    def _journal(self, dossier_id: str, event: str, message: str, *, run_id: Optional[str] = None,
                 entity: Optional[str] = None, key: Optional[str] = None, detail: Optional[dict] = None) -> None:
        self.store.append_journal(JournalEntry(dossier=dossier_id, at=self.clock(), run_id=run_id, entity=entity,
                                               key=key, event=event, message=message, detail=detail or {}))

    # --- dead letters -------------------------------------------------------------------------
    def record_dead_letter(self, body: bytes, *, reason: str, description: str = "") -> None:
        """Turn a message that could not be applied into incidents (dead_lettered=True).

        Every change of the batch not applied yet, and not replaced by a newer one of the same record
        in the batch, becomes (or updates) an incident of its record, keeping the reason of the last
        failure when one is known; run markers still open and close their run, and a dossier state
        applies unless a later one was applied meanwhile. A body that is not a batch becomes one
        incident on the group.
        """
        why = reason + (f": {description}" if description else "")
        try:
            batch = EnvelopeBatch.from_bytes(body)
        except Exception as exc:
            digest = hashlib.sha256(body if isinstance(body, bytes) else str(body).encode()).hexdigest()[:16]
            self.incidents.record_on_group(
                "message", digest, READ,
                text("sync.unreadable_message", reason=why),
                detail=f"{type(exc).__name__}: {str(exc)[:500]}", dead_lettered=True)
            return
        dossier = self.store.try_get_dossier(batch.dossier)
        tally = _Tally.of_dead_letter()
        outcome = BatchOutcome()
        open_by_record = {}
        if dossier is not None:
            for incident in self.store.list_incidents(dossier.id, state=IncidentState.OPEN):
                open_by_record.setdefault((incident.entity, incident.key), incident)
        newest = {(e.entity, e.key): position for position, e in enumerate(batch.envelopes)
                  if e.kind is EnvelopeKind.CHANGE}
        for position, envelope in enumerate(batch.envelopes):
            if envelope.kind is EnvelopeKind.RUN_MARKER:
                dossier = self._apply_marker(dossier, envelope, outcome, tally, match_invites=False, in_order=False)
                continue
            if envelope.kind is EnvelopeKind.DOSSIER_STATE:
                dossier = self._apply_state(dossier, envelope, outcome, in_order=False)
                continue
            if envelope.kind is not EnvelopeKind.CHANGE or newest[(envelope.entity, envelope.key)] != position:
                continue
            if dossier is None:
                self._unknown_dossier(envelope, dead_lettered=True)
                continue
            self._dead_letter_change(dossier.id, envelope, why, open_by_record, tally)
        self._merge_counts(batch.dossier, tally)

    def _dead_letter_change(self, dossier_id: str, envelope: Envelope, why: str, open_by_record: dict,
                            tally: _Tally) -> bool:
        """Record the change's incident unless it was applied after all; returns whether it was set aside."""
        entity, key = envelope.entity or "", envelope.key or ""
        link = self.store.get_link(dossier_id, entity, key) if entity and key else None
        if link is not None and link.hash == envelope.hash and link.deleted == (envelope.op is Op.DELETE):
            return False
        previous = open_by_record.get((entity, key))
        if previous is not None and previous.waiting_for and previous.parked.get("hash") == envelope.hash:
            return False            # parked alone already, waiting for the record it refers to
        if previous is not None:
            operation, cause = previous.operation, previous.message
        else:
            operation = ("delete" if envelope.op is Op.DELETE else READ if envelope.op is Op.INVALID
                         else "update" if link is not None and link.ssm_id is not None else "create")
            cause = envelope.error or text("sync.not_sent", record=record_name(entity, key))
        cause = _RETRY_PROMISE.sub('', cause).rstrip('. ')
        if envelope.op is Op.INVALID:  # the agent could not read it: it comes again once fixed in Sage
            self.incidents.record(dossier_id, entity, key, operation,
                                  replay.not_kept_message(cause, text("sync.replay.why.attempts")),
                                  detail=f"dead-lettered message ({why})", dead_lettered=True)
        else:
            replay_at = replay.first_replay_at(self.clock())
            try:
                self.incidents.record(dossier_id, entity, key, operation, replay.parked_message(cause, replay_at),
                                      detail=f"dead-lettered message ({why})", dead_lettered=True,
                                      parked=envelope.model_dump(mode="json"), replay_at=replay_at)
                for older in self.store.open_incidents_of(dossier_id, entity, key):
                    if older.operation != operation and older.parked:  # one change kept per record: this newer one
                        self.store.repark_incident(
                            older, replay_at=None, message=replay.superseded_message(replay.cause_of(older.message)))
            except EntityTooLargeError:  # too large to keep: it waits for its next change, as it says
                self.incidents.record(dossier_id, entity, key, operation, replay.not_kept_message(
                                          cause, text("sync.replay.why.too_large")),
                                      detail=f"dead-lettered message ({why})", dead_lettered=True)
        tally.add(_Result(envelope, FAILED, counted_failure=previous is None or not failure_counted([previous])))
        return True

    # --- users waiting for an invitation --------------------------------------------------------
    def retry_pending_invites(self, dossier: str) -> int:
        """Link the collaborateurs waiting for an SSM user (`shared.sync.invitations`)."""
        return match_invitations(self.store, self.ssm, self.incidents, dossier, clock=self.clock)
