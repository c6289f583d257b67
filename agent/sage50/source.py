"""The Sage 50 FR entry of the source registry (`agent.sources`): a dossier is its exchange folder
(`[[dossiers]] exchange`), read through the layouts (`layouts`, else the shipped ones), with the
agent's accepted copies and pending writes under its state folder (`<state>/sage50/<dossier>/`).
Before each run the exports are looked at and the writes they now show are answered
(`before_run`), so the cloud binds a record before the run sends it."""
from __future__ import annotations

import contextlib
import datetime as dt
from pathlib import Path
from typing import Iterator

from agent.sage50.exchange import Exchange
from agent.sage50.layout import load_layouts
from agent.sage50.reader import Sage50Reader
from agent.sage50.writer import Sage50Writer
from shared.bus.protocol import OutgoingMessage
from shared.envelope import EnvelopeBatch
from shared.errors import ConfigurationError


def state_folder(settings, dossier: str) -> Path:
    return Path(settings.agent.state_path).resolve().parent / "sage50" / dossier


def _open(settings, dossier: str) -> tuple[object, Exchange, Sage50Reader]:
    configured = settings.dossier(dossier)
    if not configured.exchange:
        raise ConfigurationError(f"The Sage 50 dossier '{dossier}' has no `exchange` folder in the configuration"
                                 " (the folder Sage 50 writes its exports to).")
    exchange = Exchange(configured.exchange, state_folder(settings, dossier), load_layouts(configured.layouts),
                        late_after_s=configured.export_late_after_s)
    exchange.refresh()
    reader = Sage50Reader(exchange, dossier=dossier, company_name=configured.name)
    reader.report = exchange.report()
    return configured, exchange, reader


def open_dossier(settings, dossier: str):
    """The opener of a Sage 50 FR dossier: its accepted exports, refreshed from the exchange folder."""
    @contextlib.contextmanager
    def opener() -> Iterator[tuple[object, object]]:
        _, exchange, reader = _open(settings, dossier)
        yield exchange, reader
    return opener


def signpost_clock(connection) -> dt.datetime:
    """The agent's own clock: Sage 50's exports carry no change time to compare it with."""
    return dt.datetime.now()


def open_writer(settings, dossier: str):
    def opened() -> Sage50Writer:
        configured, exchange, reader = _open(settings, dossier)
        return Sage50Writer(exchange, reader, prospect_prefix=configured.prospect_prefix,
                            confirm_within_s=configured.confirm_within_s)
    return opened


def before_run(settings, bus, dossier: str) -> int:
    """Answer the pending writes the exports now show (or whose delay ran out); returns how many."""
    writer = open_writer(settings, dossier)()
    results = writer.confirm()
    if results:
        batch = EnvelopeBatch(dossier=dossier, envelopes=tuple(results))
        bus.send(settings.bus.changes_queue, [OutgoingMessage(
            body=batch.to_bytes(), message_id=batch.message_id, session_id=dossier,
            application_properties={"results": len(results)})])
    writer.saved()
    return len(results)
