"""The relay: runs of each dossier, from Sage to the `sage-changes` bus, without loss or duplicates.

One run of one dossier goes through four steps, each safe to interrupt:

1. *Recover*: a run a previous process left behind is finished first. A sealed run (all its
   batches written) is sent, the batches the bus had already accepted going out again with the
   same message ids (the bus drops them); an unsealed one never sent anything and is dropped.
2. *Detect and stage* (`agent.detection`): the run's envelopes, run-start marker first and
   run-end marker with counts last, are packed into batches (`pack`: the bytes and limits of
   `shared.envelope.pack_batches`, over envelopes already in wire form) and written to the outbox with the shadow and watermark updates they imply, in bounded
   chunks. Writing the run-end batch *seals* the run.
3. *Send*: each outbox batch is sent (body = `EnvelopeBatch.to_bytes()`, session = dossier)
   and marked sent.
4. *Apply*: once every batch is accepted, the staged shadow, watermarks and snapshot are applied
   and the outbox emptied, in one local transaction.

A batch's message id is derived from its content and its run (`outbox_message_id`) and stored
in the outbox, so a re-send after a crash carries exactly the same id, while a later run that
happens to send the same envelopes again (a realignment) is not mistaken for a duplicate.

Which dossiers run, and whether a run must realign, is the dossier's lifecycle state
(`shared.lifecycle`, kept by `agent.dossiers`). A dossier deselected (or configured `active =
false`) and one activated again are *notices* to the cloud (`announce_activity`), one message each
in the dossier's session, kept in the agent's state until the bus accepted them. A deactivation
goes out after whatever sealed run the dossier still had to send; an activation before the
dossier's next run, which does not start until the bus accepted it (the cloud would set aside the
changes of a dossier it believes deactivated). On an agent whose state is new (installed again),
nothing runs while the group already knows dossiers the administrator has not chosen among
(`ChoiceRequired`), and a database whose company is not the one a dossier synchronised before is
refused (`shared.group_directory.company_mismatch`).
"""
from __future__ import annotations

import datetime as dt
import json
import threading
from dataclasses import dataclass, field
from typing import Callable, ContextManager, Iterable, Iterator, Optional

from agent.checkpoint import Checkpoint, DeletionHold, RunState
from agent.detection import FULL_SCAN_EVERY, ChangeDetector, DeletionGuard, RenderedEnvelope, new_run_id, server_now
from agent.dossiers import ActivityChange, AgentDossiers
from agent.sage100.source import open_sage100  # noqa: F401 - the Sage 100 opener, importable from here
from shared.bus.protocol import Bus, OutgoingMessage
from shared.envelope import (MAX_MESSAGE_BYTES, MESSAGE_OVERHEAD_BYTES, SCHEMA_VERSION, Envelope, EnvelopeBatch,
                             message_id)
from shared.errors import ConnectorError
from shared.group_directory import IDENTITY_FIELDS, company_mismatch
from shared.lifecycle import Direction, lets_through
from shared.messages import text
from shared.telemetry import get_logger, log_context

# Staged batches are committed in groups: an unsealed run is discarded after a crash anyway.
STAGING_COMMIT_BATCHES = 20

SourceOpener = Callable[[], ContextManager[tuple[object, object]]]
"""Opens a dossier's Sage source: a context manager yielding (connection, reader), as the dossier's
source adapter (`agent.sources`) makes them."""


def outbox_message_id(run_id: str, batch: EnvelopeBatch) -> str:
    """The bus message id of one batch of one run (deterministic, 64 hex characters)."""
    return message_id(batch.message_id, run_id)


@dataclass(frozen=True)
class PackedBatch:
    """One bus message body: exactly `EnvelopeBatch(...).to_bytes()`, and that batch's `message_id`."""

    body: bytes
    batch_id: str
    envelopes: int


def pack(dossier: str, envelopes: Iterable[Envelope | RenderedEnvelope], *,
         max_bytes: int = MAX_MESSAGE_BYTES - MESSAGE_OVERHEAD_BYTES, max_envelopes: int = 500) -> Iterator[PackedBatch]:
    """`shared.envelope.pack_batches` over envelopes already in wire form (same limits, same bytes).

    Raises:
        ValueError: one envelope is larger than a message can be (detection reports such
            records as invalid before they get here).
    """
    frame = len(EnvelopeBatch(dossier="x" * 128, envelopes=()).to_bytes())
    head = f'{{"dossier":{json.dumps(dossier, ensure_ascii=False)},"envelopes":['
    texts: list[str] = []
    ids: list[str] = []
    size = 0
    version = SCHEMA_VERSION      # a batch takes the highest version of its envelopes

    def batch() -> PackedBatch:
        return PackedBatch((head + ",".join(texts) + f'],"v":{version}}}').encode("utf-8"),
                           message_id(dossier, "batch", *ids), len(texts))

    for envelope in envelopes:
        newer = SCHEMA_VERSION
        if isinstance(envelope, Envelope):
            if envelope.dossier != dossier:
                raise ValueError(f"an envelope of dossier {envelope.dossier} in a batch of {dossier}")
            newer = envelope.v
            envelope = RenderedEnvelope(envelope.id, envelope.to_json())
        item = len(envelope.text.encode("utf-8")) + 1
        if item + frame > max_bytes:
            raise ValueError(f"an envelope of {item} bytes is too large to send")
        if texts and (size + item + frame > max_bytes or len(texts) >= max_envelopes):
            yield batch()
            texts, ids, size, version = [], [], 0, SCHEMA_VERSION
        version = max(version, newer)
        texts.append(envelope.text)
        ids.append(envelope.id)
        size += item
    if texts:
        yield batch()


log = get_logger("agent.relay")


@dataclass(frozen=True)
class ActivityNotice:
    """A notice of deactivation (`active=False`) or activation sent to the cloud, or why it was not."""

    dossier: str
    active: bool
    change_id: str
    error: Optional[str] = None

    @property
    def ok(self) -> bool:
        return self.error is None


@dataclass
class DossierRunResult:
    """What `sync_dossier` did for one dossier; `ok` is False when it stopped on an error.

    `holds`: the mass deletions the run did not send (each has a `message` for the user).
    """

    dossier: str
    run_id: Optional[str] = None
    realignment: bool = False
    reasons: tuple[str, ...] = ()
    counts: dict[str, int] = field(default_factory=dict)
    holds: tuple[DeletionHold, ...] = ()
    batches_sent: int = 0
    recovered_run_id: Optional[str] = None
    discarded_run_id: Optional[str] = None
    error: Optional[str] = None
    commands: Optional[object] = None       # agent.commands.CommandStats of the commands applied first

    @property
    def ok(self) -> bool:
        return self.error is None


def describe_error(exc: BaseException) -> str:
    """A sentence for the agent's state and console (no connection string, no secret)."""
    if isinstance(exc, ConnectorError):
        return str(exc)
    return f"{type(exc).__name__}: {exc}"


class Relay:
    """Sends a dossier's outbox to the bus and applies the staged state once all is accepted."""

    def __init__(self, checkpoint: Checkpoint, bus: Bus, queue: str, *, batch_envelopes: int = 500,
                 on_applied: Optional[Callable[[bool], None]] = None):
        self.checkpoint = checkpoint
        self.bus = bus
        self.queue = queue
        self.batch_envelopes = batch_envelopes
        self.on_applied = on_applied        # called with the run's `realignment` once it is applied

    def stage(self, detector: ChangeDetector, plan) -> int:
        """Write the run's batches to the outbox and seal it; returns the number of batches."""
        checkpoint = self.checkpoint
        checkpoint.begin_pending(detector.dossier, plan.run_id, realignment=plan.realignment,
                                 identity=plan.identity, probes=plan.probes)
        seq = 0
        for batch in pack(detector.dossier, detector.envelopes(plan), max_envelopes=self.batch_envelopes):
            seq += 1
            checkpoint.add_batch(detector.dossier, plan.run_id, seq, message_id(batch.batch_id, plan.run_id),
                                 batch.envelopes, batch.body)
            if seq % STAGING_COMMIT_BATCHES == 0:
                checkpoint.commit()
        checkpoint.seal(detector.dossier, plan.run_id, detector.counts.as_dict(), detector.notes,
                        holds=detector.holds, confirmations_used=detector.confirmations_used)
        return seq

    def send_pending(self, dossier: str) -> int:
        """Send the sealed run's unsent batches in order, then apply it; returns batches sent."""
        pending = self.checkpoint.pending(dossier)
        sent = 0
        try:
            for batch in self.checkpoint.unsent_batches(dossier):
                self.bus.send(self.queue, [OutgoingMessage(
                    body=batch.body, message_id=batch.message_id, session_id=dossier,
                    application_properties={"run_id": batch.run_id, "seq": batch.seq, "envelopes": batch.envelopes})])
                sent += 1
                # marks committed in groups, like staging: a mark lost in a crash re-sends its batch
                # with the same message id, which the bus drops as a duplicate
                self.checkpoint.mark_sent(dossier, batch.seq, commit=sent % STAGING_COMMIT_BATCHES == 0)
        finally:
            self.checkpoint.commit()
        self.checkpoint.apply_pending(dossier)
        if self.on_applied is not None and pending is not None:
            self.on_applied(pending.realignment)
        return sent

    def recover(self, dossier: str, result: DossierRunResult) -> None:
        """Finish (sealed) or drop (unsealed) what a previous process left for this dossier."""
        pending = self.checkpoint.pending(dossier)
        if pending is None:
            return
        if not pending.sealed:
            result.discarded_run_id = self.checkpoint.discard_pending(
                dossier, reason="the agent stopped before the run was complete; nothing of it was sent")
            return
        try:
            result.batches_sent += self.send_pending(dossier)
        except Exception as exc:
            self.checkpoint.fail_run(dossier, pending.run_id, describe_error(exc))
            raise
        result.recovered_run_id = pending.run_id


def sync_dossier(dossier: str, *, checkpoint: Checkpoint, bus: Bus, queue: str, open_source: SourceOpener,
                 overlap: dt.timedelta = dt.timedelta(hours=1),
                 deletion_guard: DeletionGuard = DeletionGuard(),
                 signpost_clock: Optional[Callable[[object], dt.datetime]] = None,
                 utc_clock: Optional[Callable[[], dt.datetime]] = None,
                 batch_envelopes: int = 500, realignment_requested: bool = False,
                 facts: Optional[dict] = None, on_restored: Optional[Callable[[], None]] = None,
                 on_applied: Optional[Callable[[bool], None]] = None, history_years: int = 0,
                 full_scan_every: Optional[dt.timedelta] = FULL_SCAN_EVERY) -> DossierRunResult:
    """One run of one dossier: recover, detect and stage, send, apply.

    Never raises for a dossier-level failure (Sage unreachable, bus down, unreadable schema):
    the error is recorded in the agent's state and returned in the result.

    Args:
        open_source: opens the dossier's Sage connection and reader (closed before sending).
        deletion_guard: which deletions are a mass deletion, held instead of sent.
        signpost_clock: the run's signpost from the Sage connection (default: the server clock).
        utc_clock: the agent's UTC clock, for run ids and `sent_at`.
        batch_envelopes: at most this many envelopes per bus message.
        realignment_requested: the dossier's lifecycle state asks for a full read (reactivated,
            chosen again after a reinstall).
        facts: what the run-start marker tells the cloud of the dossier (name, ssm_branch, cause).
        on_restored: called when detection finds the database restored or replaced.
        on_applied: called with the run's `realignment` once a run is sent and applied.
        history_years: on the dossier's first run, the fiscal years of documents to send (the
            current one included; 0: all); kept afterwards (`Checkpoint.set_history_from`).
        full_scan_every: how often a run reads every record whatever cbModification says.
    """
    result = DossierRunResult(dossier)
    relay = Relay(checkpoint, bus, queue, batch_envelopes=batch_envelopes, on_applied=on_applied)
    utc_now = (utc_clock or (lambda: dt.datetime.now(dt.timezone.utc)))()
    run_id = None
    try:
        relay.recover(dossier, result)
        run_id = new_run_id(utc_now)
        with open_source() as (connection, reader):
            signpost = (signpost_clock or server_now)(connection)
            detector = ChangeDetector(checkpoint, dossier, reader, overlap=overlap, deletion_guard=deletion_guard,
                                      sent_at=utc_now, realignment_requested=realignment_requested,
                                      history_years=history_years, full_scan_every=full_scan_every)
            plan = detector.plan(run_id, signpost)
            snapshot = checkpoint.snapshot(dossier)
            other = company_mismatch(snapshot.identity, plan.identity) if snapshot is not None else None
            if other is not None:
                raise ConnectorError(text("lifecycle.other_company_run", dossier=dossier, **other))
            if plan.restored and on_restored is not None:
                on_restored()
            detector.start_record = {**(facts or {}), "identity": _identity_facts(plan.identity),
                                     **({"cause": "restored"} if plan.restored else {})}
            checkpoint.start_run(dossier, run_id, realignment=plan.realignment, reasons=list(plan.reasons))
            result.run_id, result.realignment, result.reasons = run_id, plan.realignment, plan.reasons
            try:
                relay.stage(detector, plan)
            except BaseException as exc:
                checkpoint.rollback()
                checkpoint.discard_pending(dossier, reason=describe_error(exc), state=RunState.FAILED)
                raise
            result.counts = detector.counts.as_dict()
            result.holds = tuple(detector.holds)
        result.batches_sent += relay.send_pending(dossier)
    except Exception as exc:
        result.error = describe_error(exc)
        checkpoint.rollback()
        if result.run_id is None and run_id is not None:
            checkpoint.record_failed_start(dossier, run_id, result.error)
        else:
            checkpoint.fail_run(dossier, result.run_id, result.error)
    return result


def _identity_facts(identity: dict) -> dict:
    """What the cloud keeps of a database's identity, to recognise its company later."""
    return {name: identity.get(name) for name in IDENTITY_FIELDS}


class ChoiceRequired(ConnectorError):
    """The agent's state is new and the group already knows dossiers: the administrator chooses first."""


def run_selected(settings, *, checkpoint: Checkpoint, bus: Bus, dossier: Optional[str] = None,
                 stop: Optional[threading.Event] = None,
                 on_result: Optional[Callable[[DossierRunResult], None]] = None,
                 on_notice: Optional[Callable[[ActivityNotice], None]] = None,
                 directory=None) -> list[DossierRunResult]:
    """One run of every running dossier (or of `dossier`), one after the other.

    A dossier that fails does not stop the others. `stop`, once set, lets the current dossier
    finish and skips the rest. First the cloud is told of every dossier deactivated or activated
    again (`announce_activity`); a dossier active again realigns, and does not run while the
    cloud could not be told (its result carries the error). `directory` (the group's known
    dossiers, `shared.group_directory`) is asked when the agent's state is new or a configured
    dossier was never chosen: a dossier the group already knows runs only once the administrator
    chose it (`agent select`).

    Raises:
        AgentBusyError: another agent process is running dossiers with the same state file.
        ChoiceRequired: the agent's state is new and the group already knows dossiers.
    """
    overlap = dt.timedelta(seconds=settings.agent.overlap_s)
    guard = DeletionGuard(settings.agent.max_delete_fraction, settings.agent.max_delete_min)
    results = []
    with checkpoint.exclusive():
        dossiers = AgentDossiers(checkpoint, settings)
        dossiers.reconcile()
        waiting = awaiting_choice(dossiers, directory)
        targets = [dossier] if dossier else [d for d in dossiers.running() if d not in waiting]
        announce_activity(settings, checkpoint=checkpoint, bus=bus, skip=set(targets), on_notice=on_notice)
        for target in targets:
            if stop is not None and stop.is_set():
                break
            with log_context(dossier=target):
                notices = announce_activity(settings, checkpoint=checkpoint, bus=bus, only=target,
                                            on_notice=on_notice)
                if any(not notice.active for notice in notices):
                    continue            # deactivated meanwhile: nothing of it is sent any more
                unsent = next((notice for notice in notices if not notice.ok), None)
                if unsent is not None:
                    result = DossierRunResult(target, error=unsent.error)
                    checkpoint.record_failed_start(target, new_run_id(), result.error)
                else:
                    result = _run_one(settings, checkpoint, bus, target, overlap, guard)
                _log_result(result)
            results.append(result)
            if on_result is not None:
                on_result(result)
        for target, why in waiting.items():
            log.warning("%s", why)
            result = DossierRunResult(target, error=why)
            results.append(result)
            if on_result is not None:
                on_result(result)
    return results


def awaiting_choice(dossiers: AgentDossiers, directory) -> dict[str, str]:
    """The configured dossiers the group already knows and the administrator has not chosen on
    this agent, with why each waits (French). Asks `directory` only when there may be some.

    Raises:
        ChoiceRequired: the agent's state is new and the group knows dossiers (or cannot be asked).
    """
    if directory is None:
        return {}
    fresh = dossiers.is_fresh()
    unchosen = [d for d in dossiers.running()
                if not dossiers.chosen(d) and dossiers.checkpoint.snapshot(d) is None]
    if not fresh and not unchosen:
        return {}
    try:
        known = {k.id: k for k in directory.known(records=False)}
    except ConnectorError as exc:
        if fresh:
            raise ChoiceRequired(text("lifecycle.group_unreachable", reason=exc.user_message)) from None
        return {d: text("lifecycle.group_unreachable", reason=exc.user_message) for d in unchosen}
    if fresh and known:
        raise ChoiceRequired(text("lifecycle.choice_required", dossiers=", ".join(sorted(known))))
    return {d: text("lifecycle.awaiting_choice", dossier=d) for d in unchosen if d in known}


def _log_result(result: DossierRunResult) -> None:
    with log_context(run_id=result.run_id):
        if result.ok:
            log.info("run %s%s: %s, %d batch(es) sent", result.run_id,
                     " (realignment: " + "; ".join(result.reasons) + ")" if result.realignment else "",
                     ", ".join(f"{name}={count}" for name, count in result.counts.items()), result.batches_sent)
            for hold in result.holds:
                log.error("%s", hold.message)
        else:
            log.error("run %s failed: %s", result.run_id, result.error)


def announce_activity(settings, *, checkpoint: Checkpoint, bus: Bus, only: Optional[str] = None,
                      skip: Iterable[str] = (),
                      on_notice: Optional[Callable[[ActivityNotice], None]] = None) -> list[ActivityNotice]:
    """Send the notices the bus has not accepted yet (of `only`, or of every dossier not in `skip`).

    Each is one message in its dossier's session, with a message id derived from the change, so
    a notice sent again after a crash is dropped by duplicate detection. A deactivated dossier's
    sealed run still in the outbox is sent first. A notice that cannot be sent is recorded as the
    dossier's last error and stays for the next call; the others still go.
    """
    names = {d.id: d.name for d in settings.dossiers if d.name}
    dossiers = AgentDossiers(checkpoint, settings)
    skipped = set(skip)
    notices = []
    for change in dossiers.unannounced():
        if (only is not None and change.dossier != only) or change.dossier in skipped:
            continue
        with log_context(dossier=change.dossier):
            notice = _announce(checkpoint, dossiers, bus, settings.bus.changes_queue, change,
                               names.get(change.dossier))
            if notice.ok:
                log.info("the cloud was told that the dossier is %s", "active again" if notice.active else "deactivated")
            else:
                log.error("%s", notice.error)
        notices.append(notice)
        if on_notice is not None:
            on_notice(notice)
    return notices


def activity_text(active: bool) -> str:
    """How the notices name a dossier's activity."""
    return text("lifecycle.activity.active" if active else "lifecycle.activity.inactive")


def _announce(checkpoint: Checkpoint, dossiers: AgentDossiers, bus: Bus, queue: str, change: ActivityChange,
              name: Optional[str]) -> ActivityNotice:
    try:
        if not change.active:
            Relay(checkpoint, bus, queue).recover(change.dossier, DossierRunResult(change.dossier))
        envelope = Envelope.dossier_state(dossier=change.dossier, change_id=change.change_id, active=change.active,
                                          changed_at=dt.datetime.fromisoformat(change.changed_at), name=name)
        batch = EnvelopeBatch(dossier=change.dossier, envelopes=(envelope,))
        bus.send(queue, [OutgoingMessage(body=batch.to_bytes(), message_id=batch.message_id,
                                         session_id=change.dossier,
                                         application_properties={"change_id": change.change_id, "envelopes": 1})])
    except Exception as exc:
        checkpoint.rollback()
        error = text("lifecycle.notice_failed", state=activity_text(change.active), reason=describe_error(exc))
        checkpoint.record_error(change.dossier, error)
        return ActivityNotice(change.dossier, change.active, change.change_id, error)
    dossiers.mark_announced(change.dossier, change.change_id)
    return ActivityNotice(change.dossier, change.active, change.change_id)


def _run_one(settings, checkpoint: Checkpoint, bus: Bus, target: str, overlap: dt.timedelta,
             guard: DeletionGuard) -> DossierRunResult:
    from agent.sources import adapter_for

    dossiers = AgentDossiers(checkpoint, settings)
    commands = apply_dossier_commands(settings, bus, target, checkpoint=checkpoint)
    try:
        source = adapter_for(settings, target)
        source.before_run(settings, bus, target)
        opener = source.open_source(settings, target)
    except Exception as exc:
        result = DossierRunResult(target, error=describe_error(exc))
        checkpoint.record_failed_start(target, new_run_id(), result.error)
        return result
    configured = next((d for d in settings.dossiers if d.id == target), None)
    facts = {"name": configured.name if configured else None,
             "ssm_branch": configured.ssm_branch if configured else None,
             "cause": dossiers.realignment_cause(target)}
    result = sync_dossier(target, checkpoint=checkpoint, bus=bus, queue=settings.bus.changes_queue,
                          open_source=opener, overlap=overlap, deletion_guard=guard,
                          signpost_clock=source.signpost_clock,
                          facts={k: v for k, v in facts.items() if v}, **dossiers.run_options(target),
                          history_years=configured.history_years if configured else DEFAULT_HISTORY_YEARS,
                          full_scan_every=dt.timedelta(seconds=settings.agent.full_scan_s)
                          if settings.agent.full_scan_s else None)
    result.commands = commands
    return result


# The history window of a dossier found on the Sage server but absent from the configuration.
DEFAULT_HISTORY_YEARS = 2


def apply_dossier_commands(settings, bus: Bus, target: str, *, checkpoint: Checkpoint):
    """The cloud's commands for the dossier, applied to Sage by its adapter's writer before its
    run reads Sage (their results reach the cloud first), when its lifecycle state lets SSM → Sage
    through (else they wait on the queue; None); a failure here is logged and the run goes on."""
    from agent.commands import apply_commands
    from agent.sources import adapter_for

    state = AgentDossiers(checkpoint, settings).state(target)
    if not lets_through(state, Direction.SSM_TO_SAGE):
        return None
    try:
        return apply_commands(target, state=state, bus=bus, commands_queue=settings.bus.commands_queue,
                              changes_queue=settings.bus.changes_queue,
                              open_writer=adapter_for(settings, target).open_writer(settings, target),
                              max_deliveries=settings.bus.max_delivery_count)
    except Exception as exc:                 # noqa: BLE001 - the dossier's Sage → SSM run still goes
        log.error("commands of %s not applied: %s", target, describe_error(exc))
        return None


__all__ = ["ActivityNotice", "ChoiceRequired", "DossierRunResult", "PackedBatch", "Relay", "activity_text",
           "announce_activity", "apply_dossier_commands", "awaiting_choice",
           "open_sage100", "outbox_message_id", "pack", "run_selected", "sync_dossier"]
