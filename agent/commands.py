"""The agent's side of SSM → Sage: the cloud's commands for a dossier, applied to Sage, and the
results sent back on the changes queue, in the dossier's own session.

Commands arrive on `sage-commands` (session = dossier) in the order the cloud sent them. Each is
applied by the Sage writer in its own transaction; the results of a message are sent in one
batch before the message is completed, so a crash in between redelivers the message and the
writer, finding its commands already applied, answers the same results again (the same message
id, dropped by the bus). A command Sage refuses (a value it cannot hold) gets a failed result at
once; a database error (a lock, a timeout) gives the message back to be tried again, and past the
queue's deliveries its commands get failed results: nothing is set aside silently. Results go out
before the dossier's run reads Sage, so the cloud links a new record before it sees it come back.

The writer is the dossier's source adapter's (`agent.sources`): `apply(command_id, op, record)`
answers an `Outcome`, or None when the write waits for Sage's confirmation (Sage 50 FR's import
files: the adapter answers later, `pending` counts them), and `price(record)` prices a quote.
Commands are applied only while the dossier's lifecycle state lets SSM → Sage through
(`shared.lifecycle`): a deactivated or realigning dossier's commands wait on the queue.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Callable, Optional

import pyodbc

from agent.outcomes import CommandRefused, Outcome
from shared.bus.protocol import Bus, OutgoingMessage
from shared.envelope import Envelope, EnvelopeBatch, EnvelopeKind, Op, content_hash
from shared.errors import ConnectorError
from shared.lifecycle import Direction, State, lets_through

log = logging.getLogger("ssm_connector.agent.commands")
MESSAGES_PER_RECEIVE = 10


@dataclass
class CommandStats:
    applied: int = 0
    refused: int = 0
    retried: int = 0
    pending: int = 0
    errors: list[str] = field(default_factory=list)


def result_envelope(command: Envelope, *, outcome: Optional[Outcome] = None, error: Optional[str] = None,
                    field_name: Optional[str] = None, code: Optional[str] = None,
                    values: Optional[dict] = None) -> Envelope:
    record = {"ok": outcome is not None, "command": command.record or {}}
    if outcome is not None:
        record["outcome"] = outcome.to_record()
    else:
        record.update(error=error, field=field_name, code=code, values=values or {})
    command_id = command.correlation_id or command.run_id
    return Envelope(kind=EnvelopeKind.COMMAND_RESULT, dossier=command.dossier, run_id=command_id,
                    entity=command.entity, op=command.op, key=outcome.key if outcome is not None else command.key,
                    hash=content_hash(record), record=record, correlation_id=command_id)


def apply_commands(dossier: str, *, bus: Bus, commands_queue: str, changes_queue: str, open_writer: Callable,
                   max_deliveries: int, max_wait_s: float = 0.0, state: State = State.ACTIVE) -> CommandStats:
    """Apply every command waiting for `dossier` in its lifecycle `state` (none unless SSM → Sage
    goes through); `open_writer()` opens the adapter's writer (closed with `close()` at the end)."""
    stats = CommandStats()
    if not lets_through(state, Direction.SSM_TO_SAGE):
        return stats
    receiver = bus.accept_session(commands_queue, dossier, max_wait_s=max_wait_s)
    if receiver is None:
        return stats
    writer = None
    try:
        while True:
            messages = receiver.receive(MESSAGES_PER_RECEIVE)
            if not messages:
                break
            if writer is None:
                writer = open_writer()
            for message in messages:
                if not _apply_message(receiver, message, writer, bus, changes_queue, max_deliveries, stats):
                    return stats            # given back: the dossier's later commands wait behind it
    finally:
        receiver.close()
        if writer is not None:
            writer.close()
    return stats


def _apply_message(receiver, message, writer, bus: Bus, changes_queue: str, max_deliveries: int,
                   stats: CommandStats) -> bool:
    try:
        batch = EnvelopeBatch.from_bytes(message.body)
    except ValueError as exc:
        receiver.dead_letter(message, "undecodable", str(exc))
        stats.errors.append(f"undecodable command message: {exc}")
        return True
    results = []
    for command in batch.envelopes:
        if command.kind is not EnvelopeKind.COMMAND:
            continue
        try:
            record = {**(command.record or {}), "key": command.key}
            if command.op is Op.PRICE_QUOTE:             # read-only: priced again if asked again
                outcome = writer.price(record)
            else:
                outcome = writer.apply(command.correlation_id or command.run_id, command.op, record, command=command)
            if outcome is None:                          # answered once Sage confirms the write
                stats.pending += 1
                continue
        except CommandRefused as refusal:
            stats.refused += 1
            results.append(result_envelope(command, error=refusal.message, field_name=refusal.field,
                                           code=refusal.code, values=refusal.values))
            continue
        except (pyodbc.Error, ConnectorError) as exc:
            if message.delivery_count < max_deliveries:
                stats.retried += 1
                log.warning("command %s on %s not applied, tried again later: %s", command.op.value, command.key, exc)
                receiver.abandon(message)
                return False
            stats.refused += 1
            results.append(result_envelope(command, error=f"the Sage database kept refusing the write ({exc})",
                                           code="database"))
            continue
        stats.applied += 1
        results.append(result_envelope(command, outcome=outcome))
    if results:
        answer = EnvelopeBatch(dossier=batch.dossier, envelopes=tuple(results))
        bus.send(changes_queue, [OutgoingMessage(body=answer.to_bytes(), message_id=answer.message_id,
                                                 session_id=batch.dossier,
                                                 application_properties={"results": len(results)})])
    receiver.complete(message)
    return True
