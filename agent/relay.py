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

A dossier deselected (or configured `active = false`) and one activated again are *notices* to
the cloud (`announce_activity`), one message each in the dossier's session, kept in the agent's
state until the bus accepted them. A deactivation goes out after whatever sealed run the dossier
still had to send; an activation before the dossier's next run, which does not start until the
bus accepted it (the cloud would set aside the changes of a dossier it believes deactivated).
"""
from __future__ import annotations

import contextlib
import datetime as dt
import json
import os
import threading
from dataclasses import dataclass, field
from typing import Callable, ContextManager, Iterable, Iterator, Optional

from agent.checkpoint import ActivityChange, Checkpoint, DeletionHold, RunState
from agent.detection import FULL_SCAN_EVERY, ChangeDetector, DeletionGuard, RenderedEnvelope, new_run_id, server_now
from shared.bus.protocol import Bus, OutgoingMessage
from shared.envelope import (MAX_MESSAGE_BYTES, MESSAGE_OVERHEAD_BYTES, SCHEMA_VERSION, Envelope, EnvelopeBatch,
                             message_id)
from shared.errors import ConnectorError
from shared.telemetry import get_logger, log_context

# Staged batches are committed in groups: an unsealed run is discarded after a crash anyway.
STAGING_COMMIT_BATCHES = 20

SourceOpener = Callable[[], ContextManager[tuple[object, object]]]
"""Opens a dossier's Sage source: a context manager yielding (pyodbc connection, reader)."""


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
    tail = f'],"v":{SCHEMA_VERSION}}}'
    texts: list[str] = []
    ids: list[str] = []
    size = 0

    def batch() -> PackedBatch:
        return PackedBatch((head + ",".join(texts) + tail).encode("utf-8"),
                           message_id(dossier, "batch", *ids), len(texts))

    for envelope in envelopes:
        if isinstance(envelope, Envelope):
            if envelope.dossier != dossier:
                raise ValueError(f"an envelope of dossier {envelope.dossier} in a batch of {dossier}")
            envelope = RenderedEnvelope(envelope.id, envelope.to_json())
        item = len(envelope.text.encode("utf-8")) + 1
        if item + frame > max_bytes:
            raise ValueError(f"an envelope of {item} bytes is too large to send")
        if texts and (size + item + frame > max_bytes or len(texts) >= max_envelopes):
            yield batch()
            texts, ids, size = [], [], 0
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

    def __init__(self, checkpoint: Checkpoint, bus: Bus, queue: str, *, batch_envelopes: int = 500):
        self.checkpoint = checkpoint
        self.bus = bus
        self.queue = queue
        self.batch_envelopes = batch_envelopes

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
                 batch_envelopes: int = 500, history_years: int = 0,
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
        history_years: on the dossier's first run, the fiscal years of documents to send (the
            current one included; 0: all); kept afterwards (`Checkpoint.set_history_from`).
        full_scan_every: how often a run reads every record whatever cbModification says.
    """
    result = DossierRunResult(dossier)
    relay = Relay(checkpoint, bus, queue, batch_envelopes=batch_envelopes)
    utc_now = (utc_clock or (lambda: dt.datetime.now(dt.timezone.utc)))()
    run_id = None
    try:
        relay.recover(dossier, result)
        run_id = new_run_id(utc_now)
        with open_source() as (connection, reader):
            signpost = (signpost_clock or server_now)(connection)
            detector = ChangeDetector(checkpoint, dossier, reader, overlap=overlap, deletion_guard=deletion_guard,
                                      sent_at=utc_now, history_years=history_years,
                                      full_scan_every=full_scan_every)
            plan = detector.plan(run_id, signpost)
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


def open_sage100(odbc_connection_string: str, *, batch_rows: int = 1000, read_workers: int = 1) -> SourceOpener:
    """A `SourceOpener` for a Sage 100 database reached through ODBC; with `read_workers` above 1,
    full reads of large tables are shared among that many reader processes
    (`agent.sage100.parallel`)."""
    @contextlib.contextmanager
    def opener() -> Iterator[tuple[object, object]]:
        from agent.odbc import connect
        from agent.sage100.parallel import ParallelReader
        from agent.sage100.reader import Sage100Reader

        connection = connect(odbc_connection_string)
        try:
            with ParallelReader(Sage100Reader(connection, batch_rows=batch_rows), odbc_connection_string,
                                workers=read_workers, batch_rows=batch_rows) as reader:
                yield connection, reader
        finally:
            try:
                connection.rollback()
            finally:
                connection.close()
    return opener


def run_selected(settings, *, checkpoint: Checkpoint, bus: Bus, dossier: Optional[str] = None,
                 stop: Optional[threading.Event] = None,
                 on_result: Optional[Callable[[DossierRunResult], None]] = None,
                 on_notice: Optional[Callable[[ActivityNotice], None]] = None) -> list[DossierRunResult]:
    """One run of every selected dossier (or of `dossier`), one after the other.

    A dossier that fails does not stop the others. `stop`, once set, lets the current dossier
    finish and skips the rest. First the cloud is told of every dossier deactivated or activated
    again (`note_activity`, `announce_activity`); a dossier active again realigns, and does not
    run while the cloud could not be told (its result carries the error).

    Raises:
        AgentBusyError: another agent process is running dossiers with the same state file.
    """
    from agent.catalog import selected_dossiers

    targets = [dossier] if dossier else selected_dossiers(settings, checkpoint)
    overlap = dt.timedelta(seconds=settings.agent.overlap_s)
    guard = DeletionGuard(settings.agent.max_delete_fraction, settings.agent.max_delete_min)
    results = []
    with checkpoint.exclusive():
        note_activity(settings, checkpoint)
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
    return results


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


def note_activity(settings, checkpoint: Checkpoint) -> None:
    """Record which dossiers the agent knows are active: selected, or configured and not deselected.

    A configured dossier seen with `active = false`, or one the user deselected, becomes a notice
    of deactivation; once active again, a notice of activation, and its next run realigns. A
    dossier that never ran and was never selected or deselected is left out.
    """
    configured = {d.id: d for d in settings.dossiers}
    for dossier, state in checkpoint.dossier_states().items():
        entry = configured.get(dossier)
        active = state.selected if entry is None else entry.active and state.selected is not False
        if active is not None:
            checkpoint.note_activity(dossier, active)


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
    skipped = set(skip)
    notices = []
    for change in checkpoint.unannounced():
        if (only is not None and change.dossier != only) or change.dossier in skipped:
            continue
        with log_context(dossier=change.dossier):
            notice = _announce(checkpoint, bus, settings.bus.changes_queue, change, names.get(change.dossier))
            if notice.ok:
                log.info("the cloud was told that the dossier is %s", activity_text(notice.active))
            else:
                log.error("%s", notice.error)
        notices.append(notice)
        if on_notice is not None:
            on_notice(notice)
    return notices


def activity_text(active: bool) -> str:
    """How the notices name a dossier's activity."""
    return "active again" if active else "deactivated"


def _announce(checkpoint: Checkpoint, bus: Bus, queue: str, change: ActivityChange,
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
        error = (f"the cloud could not be told that the dossier is {activity_text(change.active)}:"
                 f" {describe_error(exc)}")
        checkpoint.record_error(change.dossier, error)
        return ActivityNotice(change.dossier, change.active, change.change_id, error)
    checkpoint.mark_announced(change.dossier, change.change_id)
    return ActivityNotice(change.dossier, change.active, change.change_id)


def _run_one(settings, checkpoint: Checkpoint, bus: Bus, target: str, overlap: dt.timedelta,
             guard: DeletionGuard) -> DossierRunResult:
    from agent.catalog import connection_string_for

    commands = apply_dossier_commands(settings, bus, target)
    try:
        opener = open_sage100(connection_string_for(settings, target), batch_rows=settings.agent.batch_rows,
                              read_workers=min(settings.agent.read_workers, os.cpu_count() or 1))
    except Exception as exc:
        result = DossierRunResult(target, error=describe_error(exc))
        checkpoint.record_failed_start(target, new_run_id(), result.error)
        return result
    dossier = next((d for d in settings.dossiers if d.id == target), None)
    result = sync_dossier(target, checkpoint=checkpoint, bus=bus, queue=settings.bus.changes_queue,
                          open_source=opener, overlap=overlap, deletion_guard=guard,
                          history_years=dossier.history_years if dossier else DEFAULT_HISTORY_YEARS,
                          full_scan_every=dt.timedelta(seconds=settings.agent.full_scan_s)
                          if settings.agent.full_scan_s else None)
    result.commands = commands
    return result


# The history window of a dossier found on the Sage server but absent from the configuration.
DEFAULT_HISTORY_YEARS = 2


def apply_dossier_commands(settings, bus: Bus, target: str):
    """The cloud's commands for the dossier, applied to Sage before its run reads it (their
    results reach the cloud first); a failure here is logged and the run goes on."""
    from agent.catalog import writer_connection_string_for
    from agent.commands import apply_commands
    from agent.odbc import connect

    dossier = next((d for d in settings.dossiers if d.id == target), None)
    try:
        return apply_commands(target, bus=bus, commands_queue=settings.bus.commands_queue,
                              changes_queue=settings.bus.changes_queue,
                              connect=lambda: connect(writer_connection_string_for(settings, target)),
                              max_deliveries=settings.bus.max_delivery_count,
                              prospect_prefix=dossier.prospect_prefix if dossier else "SSM")
    except Exception as exc:                 # noqa: BLE001 - the dossier's Sage → SSM run still goes
        log.error("commands of %s not applied: %s", target, describe_error(exc))
        return None


__all__ = ["ActivityNotice", "DossierRunResult", "PackedBatch", "Relay", "activity_text", "announce_activity",
           "apply_dossier_commands",
           "note_activity",
           "open_sage100", "outbox_message_id", "pack", "run_selected", "sync_dossier"]
