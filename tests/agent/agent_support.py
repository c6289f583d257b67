"""Helpers of the agent's detection, relay and CLI tests: demo Sage databases read through pyodbc
(`Driver=SQLite3`), the real `LocalBus`, and a reader of what reached the bus."""
from __future__ import annotations

import datetime as dt
import shutil
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

from agent.checkpoint import Checkpoint
from agent.dossiers import AgentDossiers
from agent.demo_builder import build_demo_dossier, set_clock
from agent.odbc import connect, sqlite_connection_string
from agent.relay import DossierRunResult, open_sage100, sync_dossier
from agent.sage100.reader import Sage100Reader
from shared.bus.local_bus import LocalBus
from shared.bus.protocol import OutgoingMessage
from shared.envelope import Envelope, EnvelopeBatch, Op
from shared.models import Entity

QUEUE = "sage-changes"
# The Sage server's clock during the tests: after every row of the demo data (2023-2024).
T0 = dt.datetime(2025, 3, 3, 9, 0)


def minutes(n: float) -> dt.timedelta:
    return dt.timedelta(minutes=n)


def build_dossier(folder: Path, name: str = "BIJOU", *, size: str = "tiny", bad_rows: bool = False,
                  clock: dt.datetime = T0, seed: int = 0) -> Path:
    """A demo Sage 100 company in `folder/<name>.db` whose server clock reads `clock`."""
    path = folder / f"{name}.db"
    build_demo_dossier(path, size=size, company=name, bad_rows=bad_rows, seed=seed)
    set_clock(path, clock)
    return path


def copy_database(source: Path, target: Path) -> None:
    """A file-level copy of a SQLite database, as a backup or a restore of one."""
    for suffix in ("-wal", "-shm"):
        Path(f"{target}{suffix}").unlink(missing_ok=True)
    shutil.copyfile(source, target)
    for suffix in ("-wal", "-shm"):
        if Path(f"{source}{suffix}").exists():
            shutil.copyfile(f"{source}{suffix}", f"{target}{suffix}")


def current_keys(path: Path) -> dict[str, set[str]]:
    """Every key of every entity, read through pyodbc."""
    connection = connect(sqlite_connection_string(path))
    try:
        reader = Sage100Reader(connection)
        return {entity.value: set(reader.keys(entity)) for entity in reader.entities()}
    finally:
        connection.close()


@dataclass
class Delivered:
    """What the bus delivered for one session, in order."""

    messages: list = field(default_factory=list)

    @property
    def message_ids(self) -> list[str]:
        return [m.message_id for m in self.messages]

    @property
    def batches(self) -> list[EnvelopeBatch]:
        return [EnvelopeBatch.from_bytes(m.body) for m in self.messages]

    @property
    def envelopes(self) -> list[Envelope]:
        return [e for batch in self.batches for e in batch.envelopes]

    def changes(self, op: Optional[Op] = None, entity: Optional[str] = None) -> list[Envelope]:
        return [e for e in self.envelopes if e.op not in (Op.RUN_START, Op.RUN_END)
                and (op is None or e.op is op) and (entity is None or e.entity == entity)]

    def keys(self, op: Op, entity: str) -> set[str]:
        return {e.key for e in self.changes(op, entity)}

    def runs(self) -> list[tuple[Envelope, Envelope]]:
        """(run-start, run-end) marker pairs, in order."""
        starts = [e for e in self.envelopes if e.op is Op.RUN_START]
        ends = {e.run_id: e for e in self.envelopes if e.op is Op.RUN_END}
        return [(start, ends.get(start.run_id)) for start in starts]


def drain(bus: LocalBus, session: str) -> Delivered:
    """Receive and complete every message of one session."""
    delivered = Delivered()
    receiver = bus.accept_session(QUEUE, session)
    try:
        while True:
            messages = receiver.receive(max_messages=50)
            if not messages:
                return delivered
            for message in messages:
                receiver.complete(message)
            delivered.messages += messages
    finally:
        receiver.close()


class Harness:
    """An agent (checkpoint file) and a bus in a temporary folder, running dossiers there."""

    def __init__(self, folder: Path):
        self.folder = folder
        self.state_path = folder / "agent.db"
        self.bus = LocalBus(str(folder / "bus.db"))

    def path(self, dossier: str) -> Path:
        return self.folder / f"{dossier}.db"

    def run(self, dossier: str, *, bus=None, batch_envelopes: int = 500,
            overlap: dt.timedelta = dt.timedelta(hours=1), batch_rows: int = 1000,
            read_workers: int = 1) -> DossierRunResult:
        opener = open_sage100(sqlite_connection_string(self.path(dossier)), batch_rows=batch_rows,
                              read_workers=read_workers)
        with Checkpoint(self.state_path) as checkpoint:
            return sync_dossier(dossier, checkpoint=checkpoint, bus=bus or self.bus, queue=QUEUE, open_source=opener,
                                overlap=overlap, batch_envelopes=batch_envelopes,
                                **AgentDossiers(checkpoint).run_options(dossier))

    def drain(self, dossier: str) -> Delivered:
        return drain(self.bus, dossier)

    def checkpoint(self) -> Checkpoint:
        return Checkpoint(self.state_path)

    def close(self) -> None:
        self.bus.close()


class CrashingBus:
    """A bus that accepts `crash_after` sends, then fails: after the message reached the bus
    (`when="after-send"`, the agent died before recording it) or before (`"before-send"`)."""

    def __init__(self, bus: LocalBus, crash_after: int, when: str = "after-send"):
        self.bus = bus
        self.crash_after = crash_after
        self.when = when
        self.sent = 0

    def send(self, queue: str, messages: list[OutgoingMessage]) -> None:
        if self.sent >= self.crash_after and self.when == "before-send":
            raise ConnectionError("the network went down")
        self.bus.send(queue, messages)
        self.sent += 1
        if self.sent > self.crash_after and self.when == "after-send":
            raise ConnectionError("the agent died right after the bus accepted the message")

    def close(self) -> None:
        pass


class SpyingReader:
    """The real reader, remembering the spans of each key read and whether changes were sought
    by index (`since` given) or read in full."""

    def __init__(self, reader):
        self.reader = reader
        self.key_spans: dict[str, object] = {}
        self.since: dict[str, object] = {}
        self.compared: dict[str, object] = {}       # entity -> the cbMarq values compared (None: every range)
        self.orphans_since: dict[str, object] = {}

    def marq_sums(self, entity, width, buckets=None):
        self.compared[Entity(entity).value] = None if buckets is None else sorted(buckets)
        return self.reader.marq_sums(entity, width, buckets)

    def limit_orphans(self, entity, since):
        self.orphans_since[Entity(entity).value] = since
        return self.reader.limit_orphans(entity, since)

    def __getattr__(self, name):
        return getattr(self.reader, name)

    def keys(self, entity, spans=None):
        self.key_spans[Entity(entity).value] = None if spans is None else list(spans)
        return self.reader.keys(entity, spans)

    def changed(self, entity, since):
        self.since.setdefault(Entity(entity).value, since)
        return self.reader.changed(entity, since)


def run_spied(agent, path: Optional[Path] = None, dossier: str = "BIJOU", **options):
    """One run of `dossier` (its database: `path`, else the agent's) whose reader is a `SpyingReader`."""
    real = open_sage100(sqlite_connection_string(path or agent.path(dossier)))
    spies = []

    @contextmanager
    def source():
        with real() as (connection, reader):
            spies.append(SpyingReader(reader))
            yield connection, spies[-1]

    with Checkpoint(agent.state_path) as checkpoint:
        result = sync_dossier(dossier, checkpoint=checkpoint, bus=agent.bus, queue=QUEUE, open_source=source,
                              **options)
    return result, spies[0]
