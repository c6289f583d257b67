"""The SSM → Sage commands sent to a dossier's agent and not answered yet, for the status page.

A command is noted when the cloud sends it on `sage-commands` and forgotten when the agent's
answer (its command result) is applied. Each is one cursor of the dossier, named
`command:<command id>`, its value the command's entity, key, operation and time sent (JSON); an
answered one keeps an empty value (cursors are never deleted), so a command sent again after its
answer is waiting again. The notes only inform: nothing is decided from them.
"""
from __future__ import annotations

import datetime as dt
import json
from typing import Any, Iterable, Optional

from shared.errors import ConcurrencyError
from shared.state.records import Cursor

PREFIX = "command:"
OPERATIONS = {"price-quote": "price", "create-quote": "create-quote"}    # else create-… / update-…


def _operation(envelope) -> str:
    op = getattr(envelope.op, "value", str(envelope.op))
    return OPERATIONS.get(op, op.split("-")[0])


def note_sent(store, envelopes: Iterable, *, at: dt.datetime) -> None:
    """Note each command envelope sent (its `correlation_id` is the command's id)."""
    for envelope in envelopes:
        command_id = envelope.correlation_id or envelope.run_id
        value = json.dumps({"entity": envelope.entity or "", "key": envelope.key or "",
                            "operation": _operation(envelope), "sent_at": at.isoformat()})
        _save(store, envelope.dossier, PREFIX + command_id, value)


def note_answered(store, dossier: str, command_id: Optional[str]) -> None:
    """The agent answered this command: it waits no more."""
    if not command_id:
        return
    current = store.get_cursor(dossier, PREFIX + command_id)
    if current is not None and current.value:
        _save(store, dossier, PREFIX + command_id, "")


def waiting_commands(store, dossier: str) -> list[dict[str, Any]]:
    """The dossier's commands still waiting for the agent, oldest first."""
    found = []
    for cursor in store.list_cursors(dossier, PREFIX):
        if not cursor.value:
            continue
        try:
            data = json.loads(cursor.value)
            found.append({"command_id": cursor.name[len(PREFIX):], "entity": str(data["entity"]),
                          "key": str(data["key"]), "operation": str(data["operation"]),
                          "sent_at": dt.datetime.fromisoformat(data["sent_at"])})
        except (ValueError, KeyError, TypeError):
            continue                    # a note of another shape: nothing to show
    return sorted(found, key=lambda c: (c["sent_at"], c["command_id"]))


def _save(store, dossier: str, name: str, value: str) -> None:
    for _ in range(5):
        current = store.get_cursor(dossier, name)
        cursor = Cursor(dossier=dossier, name=name, value=value) if current is None \
            else current.model_copy(update={"value": value})
        try:
            store.save_cursor(cursor)
            return
        except ConcurrencyError:
            continue
