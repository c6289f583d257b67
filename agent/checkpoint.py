"""The agent's local state, in one SQLite file beside the agent.

Per dossier it keeps: the watermark of each entity, the *shadow*
(table `tracked`, per record: a short hash of what was last sent, its cbMarq and cbModification,
so unchanged rows send nothing and deletions are found by key comparison; about 40 bytes a
record), the identity and table probes seen at the last completed run (restore
detection), and the run history. A run does not touch any of these while it is in flight: its
outgoing batches and the watermark/shadow/snapshot updates they imply are *staged* in the
outbox tables, and applied in one local transaction only once the bus accepted every batch.
One dossier has at most one pending run; a pending run is *sealed* once its last batch (the
run-end marker) is written, and only sealed runs are ever sent. A dossier's lifecycle state
(selected, active, inactive, realigning, restored) and the notices of its changes for the cloud
are kept in the same file by `agent.dossiers`. *Deletion holds* are the mass deletions a run did
not send (per entity: how many, out of how many records, and the keys): they stay in the shadow
until the rows come back or the user confirms them; a sealed run records the dossier's holds.
"""
from __future__ import annotations

import contextlib
import datetime as dt
import json
import sqlite3
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Iterator, Mapping, Optional

from shared.messages import label, text
from shared.sage_rows import ORPHAN_HASH
from shared.errors import ConnectorError
from shared.process_owner import OwnerFile
from shared.telemetry import get_logger

log = get_logger(__name__)

# 1: the shadow of hex hashes; 2: the compact `tracked` table; 3: rows sent as orphans tracked as
# such (`TrackState.ORPHAN`), a file an agent of schema 2 would misread.
SCHEMA_VERSION = 3
KEY_CHUNK = 500
# The tables holding the change-tracking data (what was sent of each record), measured by bench/.
TRACKING_TABLES = ("tracked", "tracked_sums", "scopes")
# A record's hash in the checkpoint: the first 8 bytes of its SHA-256 (a change goes unseen only
# if its new hash shares them, a chance of 1 in 2**64 per change).
HASH_BYTES = 8
# cbModification in the checkpoint: microseconds since this moment (an integer, exact).
_EPOCH = dt.datetime(2000, 1, 1)
# `detection.full_scan_at` when the next run must be a full scan, however recent the last one.
FULL_SCAN_REQUESTED = "0001-01-01T00:00:00+00:00"
# Whole span of cbMarq values: a key range that stands for every record of an entity.
ALL_MARQS = (-1, 2 ** 62)
# The deletion check compares, per range of this many cbMarq values, Sage's record count and
# cbMarq sum with the agent's (kept up to date in `tracked_sums` as runs are applied).
MARQ_RANGE = 4096

_SCHEMA = """
CREATE TABLE IF NOT EXISTS dossiers (
    dossier           TEXT PRIMARY KEY,
    changed_at        TEXT NOT NULL,
    last_error        TEXT,
    last_error_at     TEXT,
    last_success_at   TEXT
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS watermarks (
    dossier  TEXT NOT NULL,
    entity   TEXT NOT NULL,
    modified TEXT,
    marq     INTEGER,
    PRIMARY KEY (dossier, entity)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS scopes (
    scope   INTEGER PRIMARY KEY,
    dossier TEXT NOT NULL,
    entity  TEXT NOT NULL,
    UNIQUE (dossier, entity)
);
CREATE TABLE IF NOT EXISTS tracked (
    scope    INTEGER NOT NULL,
    key      TEXT NOT NULL,
    hash     BLOB NOT NULL,
    state    INTEGER NOT NULL,
    marq     INTEGER,
    modified INTEGER,
    PRIMARY KEY (scope, key)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS tracked_sums (
    scope      INTEGER NOT NULL,
    bucket     INTEGER NOT NULL,
    records    INTEGER NOT NULL,
    marq_total INTEGER NOT NULL,
    PRIMARY KEY (scope, bucket)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS detection (
    dossier         TEXT PRIMARY KEY,
    history_from    TEXT,
    full_scan_at    TEXT,
    staged_scan_at  TEXT,
    signpost        TEXT,
    staged_signpost TEXT
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS snapshots (
    dossier  TEXT PRIMARY KEY,
    identity TEXT NOT NULL,
    probes   TEXT NOT NULL,
    taken_at TEXT NOT NULL
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS pending_runs (
    dossier     TEXT PRIMARY KEY,
    run_id      TEXT NOT NULL,
    realignment INTEGER NOT NULL,
    identity    TEXT NOT NULL,
    probes      TEXT NOT NULL,
    sealed      INTEGER NOT NULL DEFAULT 0
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS outbox (
    id         INTEGER PRIMARY KEY,
    dossier    TEXT NOT NULL,
    run_id     TEXT NOT NULL,
    seq        INTEGER NOT NULL,
    message_id TEXT NOT NULL,
    envelopes  INTEGER NOT NULL,
    body       BLOB NOT NULL,
    sent_at    TEXT,
    UNIQUE (dossier, seq)
);
CREATE TABLE IF NOT EXISTS staged_tracked (
    scope    INTEGER NOT NULL,
    key      TEXT NOT NULL,
    hash     BLOB NOT NULL,
    state    INTEGER NOT NULL,
    marq     INTEGER,
    modified INTEGER,
    deleted  INTEGER NOT NULL,
    PRIMARY KEY (scope, key)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS staged_watermarks (
    dossier  TEXT NOT NULL,
    entity   TEXT NOT NULL,
    modified TEXT,
    marq     INTEGER,
    PRIMARY KEY (dossier, entity)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS runs (
    run_id      TEXT PRIMARY KEY,
    dossier     TEXT NOT NULL,
    started_at  TEXT NOT NULL,
    ended_at    TEXT,
    state       TEXT NOT NULL,
    realignment INTEGER NOT NULL DEFAULT 0,
    reasons     TEXT NOT NULL DEFAULT '[]',
    counts      TEXT NOT NULL DEFAULT '{}',
    batches     INTEGER NOT NULL DEFAULT 0,
    error       TEXT
);
CREATE INDEX IF NOT EXISTS runs_by_dossier ON runs (dossier, run_id);
CREATE TABLE IF NOT EXISTS deletion_holds (
    dossier      TEXT NOT NULL,
    entity       TEXT NOT NULL,
    held         INTEGER NOT NULL,
    records      INTEGER NOT NULL,
    run_id       TEXT NOT NULL,
    held_at      TEXT NOT NULL,
    confirmed_at TEXT,
    PRIMARY KEY (dossier, entity)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS held_deletions (
    dossier TEXT NOT NULL,
    entity  TEXT NOT NULL,
    key     TEXT NOT NULL,
    PRIMARY KEY (dossier, entity, key)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS staged_held_deletions (
    dossier TEXT NOT NULL,
    entity  TEXT NOT NULL,
    key     TEXT NOT NULL,
    PRIMARY KEY (dossier, entity, key)
) WITHOUT ROWID;
"""

_CURRENT_KEYS = """
CREATE TEMP TABLE IF NOT EXISTS current_keys (
    entity TEXT NOT NULL,
    key    TEXT NOT NULL,
    PRIMARY KEY (entity, key)
) WITHOUT ROWID;
CREATE TEMP TABLE IF NOT EXISTS checked_spans (
    entity TEXT NOT NULL,
    low    INTEGER NOT NULL,
    top    INTEGER NOT NULL,
    PRIMARY KEY (entity, low)
) WITHOUT ROWID;
"""


class AgentBusyError(ConnectorError):
    """Another agent process is already running dossiers with the same state file."""


class RunState:
    RUNNING = "running"        # detecting and staging
    SENDING = "sending"        # sealed: batches written, being sent
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    INTERRUPTED = "interrupted"  # the process stopped before the run was sealed; nothing was sent


def to_text(value: Optional[dt.datetime]) -> Optional[str]:
    """A naive (Sage server) datetime as sortable text, or None."""
    return None if value is None else value.isoformat(timespec="microseconds")


def from_text(value: Optional[str]) -> Optional[dt.datetime]:
    return None if value is None else dt.datetime.fromisoformat(value)


def utc_text(value: Optional[dt.datetime] = None) -> str:
    value = value or dt.datetime.now(dt.timezone.utc)
    return value.astimezone(dt.timezone.utc).isoformat(timespec="seconds")


@dataclass(frozen=True)
class DossierState:
    """How the dossier's runs went (its lifecycle state is `agent.dossiers`')."""

    dossier: str
    changed_at: str
    last_error: Optional[str]
    last_error_at: Optional[str]
    last_success_at: Optional[str]


# How the messages name several records of an entity, where adding an "s" is not enough.
ENTITY_PLURALS = {"product_family": "product families"}


def plural(entity: str) -> str:
    return ENTITY_PLURALS.get(entity, f"{entity}s")


@dataclass(frozen=True)
class DeletionHold:
    """Deletions of one entity a run did not send: `held` of the `records` the shadow had.

    `confirmed_at` is set once the user confirmed them: the next run sends those still missing.
    """

    dossier: str
    entity: str
    held: int
    records: int
    run_id: str
    held_at: str
    confirmed_at: Optional[str] = None

    @property
    def message(self) -> str:
        return text("agent.hold", dossier=self.dossier, held=f"{self.held:,}".replace(",", "\u202f"),
                    records=f"{self.records:,}".replace(",", "\u202f"), entity=self.entity,
                    what=label("status.entity", self.entity))


@dataclass(frozen=True)
class Watermark:
    modified: Optional[dt.datetime]
    marq: Optional[int]


@dataclass(frozen=True)
class ShadowEntry:
    """What was last sent for one record: the short hash of the record (valid) or of its raw values
    (invalid); `sent_valid`: a valid version of it was sent at some point; `marq`: its cbMarq then."""

    key: str
    hash: bytes
    invalid: bool
    sent_valid: bool
    marq: Optional[int] = None
    orphan: bool = False      # sent as an orphan (`TrackState.ORPHAN`)


class TrackState:
    """`tracked.state`: what the hash of a tracked record is of."""
    VALID = 0                 # the record sent
    INVALID = 1               # the raw values of a record never sent valid
    INVALID_AFTER_VALID = 2   # the raw values of a record that was sent valid before
    ORPHAN = 3                # the rows of a record whose parent Sage does not have, never sent valid
    ORPHAN_AFTER_VALID = 4    # the same, of a record that was sent valid before
    # Orphans are not among the rows Sage's cbMarq sums count (the entity's joins need the parent):
    # they are left out of `tracked_sums`, and looked for among the deletions in every run.
    ORPHANS = (ORPHAN, ORPHAN_AFTER_VALID)
    NEVER_VALID = (INVALID, ORPHAN)


_ORPHAN_STATES = ", ".join(str(state) for state in TrackState.ORPHANS)
# The records of a few cbMarq ranges, and the orphans, are found without reading a scope whole.
_TRACKED_INDEXES = f"""
CREATE INDEX IF NOT EXISTS tracked_by_marq ON tracked (scope, marq);
CREATE INDEX IF NOT EXISTS tracked_orphans ON tracked (scope, key) WHERE state IN ({_ORPHAN_STATES});
"""


@dataclass(frozen=True)
class StagedRecord:
    entity: str
    key: str
    hash: bytes
    state: int
    modified: Optional[dt.datetime]
    marq: Optional[int]
    deleted: bool = False


def short_hash(hex_hash: str) -> bytes:
    """The checkpoint's form of a content hash (hex SHA-256): its first `HASH_BYTES` bytes. The raw
    hash of an orphan row (`shared.sage_rows.ORPHAN_HASH` then the hex) is kept without its mark:
    the record's state says it (`TrackState.ORPHAN`)."""
    hex_hash = hex_hash.removeprefix(ORPHAN_HASH)
    return bytes.fromhex(hex_hash[:2 * HASH_BYTES]) if hex_hash else b""


def moment_number(value: Optional[dt.datetime]) -> Optional[int]:
    """A naive cbModification as the checkpoint keeps it (microseconds since 2000-01-01)."""
    if value is None:
        return None
    delta = value - _EPOCH
    return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds


def moment_of(number: Optional[int]) -> Optional[dt.datetime]:
    return None if number is None else _EPOCH + dt.timedelta(microseconds=number)


@dataclass(frozen=True)
class Snapshot:
    identity: dict[str, Any]
    probes: dict[str, dict[str, Any]]   # table -> {row_count, max_marq, max_modified}
    taken_at: str


@dataclass(frozen=True)
class PendingRun:
    dossier: str
    run_id: str
    realignment: bool
    sealed: bool
    batches: int
    unsent: int


@dataclass(frozen=True)
class OutboxBatch:
    dossier: str
    run_id: str
    seq: int
    message_id: str
    envelopes: int
    body: bytes


@dataclass(frozen=True)
class RunRecord:
    run_id: str
    dossier: str
    started_at: str
    ended_at: Optional[str]
    state: str
    realignment: bool
    reasons: list[str]
    counts: dict[str, int]
    batches: int
    error: Optional[str]


class Checkpoint:
    """The agent's SQLite state file. One instance per process; not shared between threads.

    Writes accumulate in one implicit transaction until `commit()`; every method that completes a
    step the rest of the design relies on (selection, sealing, marking a batch sent, applying a
    run) commits by itself.
    """

    def __init__(self, path: str | Path):
        self.path = str(path)
        self.lock_taken_over = None      # the killed process whose run lock the last `exclusive` took over
        if self.path != ":memory:":
            Path(self.path).parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(self.path, timeout=30.0)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=FULL")
        self._db.execute("PRAGMA temp_store=FILE")
        version = self._db.execute("PRAGMA user_version").fetchone()[0]
        if version > SCHEMA_VERSION:
            raise RuntimeError(f"the agent state {self.path} was written by a newer agent (schema {version})")
        self._db.executescript(_SCHEMA)
        _add_missing_columns(self._db, "detection", ("signpost", "staged_signpost"))
        if version == 1:
            _migrate_shadow(self._db)
        # 2 → 3 changes no row: an agent of schema 2 sent no orphan row
        if self._db.execute("SELECT 1 FROM tracked_sums LIMIT 1").fetchone() is None \
                and self._db.execute("SELECT 1 FROM tracked LIMIT 1").fetchone() is not None:
            self._db.execute(f"INSERT INTO tracked_sums (scope, bucket, records, marq_total) SELECT scope,"
                             f" marq / {MARQ_RANGE}, COUNT(*), SUM(marq) FROM tracked WHERE marq IS NOT NULL"
                             f" AND state NOT IN ({_ORPHAN_STATES}) GROUP BY 1, 2")
        self._db.execute(f"PRAGMA user_version={SCHEMA_VERSION}")
        self._db.executescript(_TRACKED_INDEXES)
        self._db.executescript(_CURRENT_KEYS)
        self._db.commit()
        self._scopes: dict[tuple[str, str], int] = {}

    def close(self) -> None:
        self._db.close()

    def __enter__(self) -> "Checkpoint":
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()

    def commit(self) -> None:
        self._db.commit()

    @contextlib.contextmanager
    def exclusive(self, wait_s: float = 0.0) -> Iterator[None]:
        """Hold the agent's run lock: one process at a time runs dossiers with this state.

        The lock is an exclusive transaction on `<state>.lock`, so the operating system releases
        it when a process dies, on every platform.

        Raises:
            AgentBusyError: another process holds it for longer than `wait_s`.
        """
        if self.path == ":memory:":
            yield
            return
        lock = sqlite3.connect(f"{self.path}.lock", timeout=wait_s, isolation_level=None)
        owner = OwnerFile(f"{self.path}.lock.owner")
        try:
            lock.execute("BEGIN EXCLUSIVE")
        except sqlite3.OperationalError as exc:
            lock.close()
            holder = owner.read()
            held_by = holder.describe() if holder else "holder unknown"
            raise AgentBusyError(text("agent.busy"), detail=f"{self.path}.lock ({held_by}): {exc}") from None
        self.lock_taken_over = owner.claim()
        if self.lock_taken_over is not None:
            log.warning("agent run lock %s.lock: its previous holder (%s) stopped without releasing it (killed);"
                        " taken over, the interrupted run resumes", self.path, self.lock_taken_over.describe())
        try:
            yield
        finally:
            owner.release()
            lock.execute("ROLLBACK")
            lock.close()

    def rollback(self) -> None:
        self._db.rollback()

    @property
    def connection(self) -> sqlite3.Connection:
        """The state file's connection, for the modules keeping their own tables in it (`agent.dossiers`)."""
        return self._db

    # --- how each dossier's runs went ---------------------------------------------------------
    _DOSSIER = "SELECT dossier, changed_at, last_error, last_error_at, last_success_at FROM dossiers"

    def dossier_state(self, dossier: str) -> Optional[DossierState]:
        row = self._db.execute(f"{self._DOSSIER} WHERE dossier = ?", (dossier,)).fetchone()
        return None if row is None else DossierState(*row)

    def dossier_states(self) -> dict[str, DossierState]:
        return {row[0]: DossierState(*row) for row in self._db.execute(f"{self._DOSSIER} ORDER BY dossier")}

    def record_error(self, dossier: str, message: str) -> None:
        self._ensure_dossier(dossier)
        self._db.execute("UPDATE dossiers SET last_error = ?, last_error_at = ? WHERE dossier = ?",
                         (message, utc_text(), dossier))
        self._db.commit()

    def _ensure_dossier(self, dossier: str) -> None:
        self._db.execute("INSERT OR IGNORE INTO dossiers (dossier, changed_at) VALUES (?, ?)",
                         (dossier, utc_text()))

    # --- watermarks, shadow, snapshot (the applied state) ---------------------------------------
    def watermarks(self, dossier: str) -> dict[str, Watermark]:
        rows = self._db.execute("SELECT entity, modified, marq FROM watermarks WHERE dossier = ?", (dossier,))
        return {entity: Watermark(from_text(modified), marq) for entity, modified, marq in rows}

    def scope(self, dossier: str, entity: str, *, create: bool = False) -> int:
        """The number standing for (dossier, entity) in the tracked records; -1 (no record) when
        it has none yet, unless `create`."""
        found = self._scopes.get((dossier, entity))
        if found is None:
            row = self._db.execute("SELECT scope FROM scopes WHERE dossier = ? AND entity = ?",
                                   (dossier, entity)).fetchone()
            if row is None and not create:
                return -1
            if row is None:
                self._db.execute("INSERT INTO scopes (dossier, entity) VALUES (?, ?)", (dossier, entity))
                row = self._db.execute("SELECT scope FROM scopes WHERE dossier = ? AND entity = ?",
                                       (dossier, entity)).fetchone()
            found = self._scopes[(dossier, entity)] = row[0]
        return found

    def ensure_scopes(self, dossier: str, entities: Iterable[str]) -> None:
        """Number every (dossier, entity) a run may track, in a transaction of its own."""
        for entity in entities:
            self.scope(dossier, entity, create=True)
        self._db.commit()

    def shadow_lookup(self, dossier: str, entity: str, keys: list[str]) -> dict[str, ShadowEntry]:
        found: dict[str, ShadowEntry] = {}
        scope = self.scope(dossier, entity)
        for part, marks in _in_parts(keys):
            for key, hash_, state, marq in self._db.execute(
                    f"SELECT key, hash, state, marq FROM tracked WHERE scope = ? AND key IN ({marks})", (scope, *part)):
                found[key] = ShadowEntry(key, hash_, state != TrackState.VALID, state not in TrackState.NEVER_VALID,
                                         marq, state in TrackState.ORPHANS)
        return found

    def shadow_counts(self, dossier: str) -> dict[str, dict[str, int]]:
        rows = self._db.execute("SELECT c.entity, COUNT(*), SUM(t.state != 0) FROM scopes c"
                                " JOIN tracked t ON t.scope = c.scope WHERE c.dossier = ? GROUP BY c.entity",
                                (dossier,))
        return {entity: {"records": total, "invalid": int(invalid or 0)} for entity, total, invalid in rows}

    def has_shadow(self, dossier: str) -> bool:
        return self._db.execute("SELECT 1 FROM scopes c JOIN tracked t ON t.scope = c.scope WHERE c.dossier = ?"
                                " LIMIT 1", (dossier,)).fetchone() is not None

    def snapshot(self, dossier: str) -> Optional[Snapshot]:
        row = self._db.execute("SELECT identity, probes, taken_at FROM snapshots WHERE dossier = ?",
                               (dossier,)).fetchone()
        return None if row is None else Snapshot(json.loads(row[0]), json.loads(row[1]), row[2])

    def marq_sums(self, dossier: str, entity: str, width: int = MARQ_RANGE,
                  buckets: Optional[Iterable[int]] = None) -> dict[int, tuple[int, int]]:
        """Per range of `width` cbMarq values (`cbMarq / width`): how many records are tracked and
        the sum of their cbMarq. Compared with the same sums in Sage, a range whose sums differ
        holds a record deleted, added or unknown to the agent. For `MARQ_RANGE` they are kept
        (`tracked_sums`, one row per range): reading them costs nothing like the records' count;
        with `buckets`, only those ranges are read."""
        scope = self.scope(dossier, entity)
        if buckets is not None and width in (1, MARQ_RANGE):
            # per range, the kept sums; per cbMarq (a width of 1), the records found by their cbMarq
            sql = ("SELECT bucket, records, marq_total FROM tracked_sums WHERE scope = ? AND bucket IN ({})"
                   if width == MARQ_RANGE else
                   "SELECT marq, COUNT(*), SUM(marq) FROM tracked WHERE scope = ? AND marq IN ({})"
                   f" AND state NOT IN ({_ORPHAN_STATES}) GROUP BY marq")
            return {bucket: (count, total) for part, marks in _in_parts(sorted(set(buckets)))
                    for bucket, count, total in self._db.execute(sql.format(marks), (scope, *part))}
        if width == MARQ_RANGE:
            rows = self._db.execute("SELECT bucket, records, marq_total FROM tracked_sums WHERE scope = ?", (scope,))
        elif buckets is not None:
            raise ValueError(f"buckets are read for widths 1 and {MARQ_RANGE} only")
        else:
            rows = self._db.execute("SELECT marq / ?, COUNT(*), SUM(marq) FROM tracked WHERE scope = ?"
                                    " AND marq IS NOT NULL GROUP BY 1", (width, scope))
        return {bucket: (count, total) for bucket, count, total in rows}

    # --- detection settings: the history window and the last full scan -------------------------
    def history_from(self, dossier: str) -> Optional[dt.date]:
        """The date from which documents are sent (None: all), once set for the dossier."""
        row = self._db.execute("SELECT history_from FROM detection WHERE dossier = ?", (dossier,)).fetchone()
        return dt.date.fromisoformat(row[0]) if row and row[0] else None

    def has_history_window(self, dossier: str) -> bool:
        return self._db.execute("SELECT 1 FROM detection WHERE dossier = ? AND history_from IS NOT NULL",
                                (dossier,)).fetchone() is not None

    def set_history_from(self, dossier: str, start: Optional[dt.date], *, all_history: bool = False) -> None:
        """Documents dated from `start` on are sent (`all_history`: every document). A window
        moved back makes the next run a full scan: the older documents it now holds changed in no
        way a cycle looks for."""
        value = "0001-01-01" if all_history else start.isoformat() if start else None
        moved = self.has_history_window(dossier)
        self._db.execute("INSERT INTO detection (dossier, history_from) VALUES (?, ?) ON CONFLICT (dossier)"
                         " DO UPDATE SET history_from = excluded.history_from", (dossier, value))
        if moved:
            self._db.execute("UPDATE detection SET full_scan_at = ? WHERE dossier = ?", (FULL_SCAN_REQUESTED, dossier))
        self._db.commit()

    def last_full_scan(self, dossier: str) -> Optional[dt.datetime]:
        """When the dossier's last full scan was applied (`FULL_SCAN_REQUESTED`: one is asked for)."""
        row = self._db.execute("SELECT full_scan_at FROM detection WHERE dossier = ?", (dossier,)).fetchone()
        return dt.datetime.fromisoformat(row[0]) if row and row[0] else None

    def last_signpost(self, dossier: str) -> Optional[dt.datetime]:
        """The Sage server's clock when the dossier's last applied run started (naive), if known."""
        row = self._db.execute("SELECT signpost FROM detection WHERE dossier = ?", (dossier,)).fetchone()
        return from_text(row[0]) if row else None

    def stage_signpost(self, dossier: str, signpost: dt.datetime) -> None:
        """The pending run's signpost: once applied, the dossier's last one (`last_signpost`)."""
        self._db.execute("INSERT INTO detection (dossier, staged_signpost) VALUES (?, ?) ON CONFLICT (dossier)"
                         " DO UPDATE SET staged_signpost = excluded.staged_signpost", (dossier, to_text(signpost)))

    def stage_full_scan(self, dossier: str, at: dt.datetime) -> None:
        """The pending run reads every record: once applied, it is the dossier's last full scan."""
        self._db.execute("INSERT INTO detection (dossier, staged_scan_at) VALUES (?, ?) ON CONFLICT (dossier)"
                         " DO UPDATE SET staged_scan_at = excluded.staged_scan_at", (dossier, at.isoformat()))

    # --- keys currently in Sage (a temporary table, so 1M keys never sit in a Python set) -------
    def clear_current_keys(self) -> None:
        """Empty the key table. It and `load_current_keys` end their transaction (they write only
        temporary tables), so the run reads the agent's state afresh after the keys are loaded."""
        self._db.execute("DELETE FROM temp.current_keys")
        self._db.execute("DELETE FROM temp.checked_spans")
        self._db.commit()

    def load_current_keys(self, entity: str, keys: Iterable[str], chunk: int = 5000, *,
                          spans: Iterable[tuple[int, int]] = (ALL_MARQS,)) -> int:
        """Stream the keys of one entity's records whose cbMarq is within `spans` (`low < cbMarq <=
        top`; default: all) into the temporary key table; returns how many. Deletions are looked
        for among the tracked records within those spans only."""
        self._db.execute("DELETE FROM temp.current_keys WHERE entity = ?", (entity,))
        self._db.execute("DELETE FROM temp.checked_spans WHERE entity = ?", (entity,))
        self._db.executemany("INSERT OR REPLACE INTO temp.checked_spans VALUES (?, ?, ?)",
                             [(entity, low, top) for low, top in spans])
        total = 0
        buffer: list[tuple[str, str]] = []
        for key in keys:
            buffer.append((entity, key))
            if len(buffer) >= chunk:
                self._db.executemany("INSERT OR IGNORE INTO temp.current_keys VALUES (?, ?)", buffer)
                total += len(buffer)
                buffer.clear()
        if buffer:
            self._db.executemany("INSERT OR IGNORE INTO temp.current_keys VALUES (?, ?)", buffer)
            total += len(buffer)
        self._db.commit()
        return total

    def check_reused_marqs(self, dossier: str, entity: str, rows: list[tuple[int, str]]) -> int:
        """Among rows read under a key never sent (`(cbMarq, key)`), those at a cbMarq the agent
        tracks under another key (a key renamed in place, a row given a readable key): their cbMarq
        joins the spans checked for deletions, so the run deletes the old key. A new row's cbMarq is
        above every tracked one, so only the others are looked up. Returns how many were found."""
        scope = self.scope(dossier, entity)
        top = self._db.execute("SELECT MAX(bucket) FROM tracked_sums WHERE scope = ?", (scope,)).fetchone()[0]
        if top is None:
            return 0
        wanted = {marq: key for marq, key in rows if marq and marq > 0 and marq // MARQ_RANGE <= top}
        found = 0
        for part, marks in _in_parts(sorted(wanted)):
            for key, marq in self._db.execute(f"SELECT key, marq FROM tracked WHERE scope = ? AND marq IN ({marks})",
                                              (scope, *part)).fetchall():
                if key != wanted[marq]:
                    self._db.execute("INSERT OR IGNORE INTO temp.checked_spans VALUES (?, ?, ?)",
                                     (entity, marq - 1, marq))
                    self._db.execute("INSERT OR IGNORE INTO temp.current_keys VALUES (?, ?)", (entity, wanted[marq]))
                    found += 1
        return found

    def reverted_keys(self, dossier: str, entity: str, *, max_modified: Optional[dt.datetime],
                      max_marq: Optional[int], limit: int = 5) -> list[str]:
        """Keys sent with a cbModification or cbMarq above what the table now holds, yet still in Sage.

        Such a record went back in time: the database was restored (or its clock moved back).
        A record that is simply gone (deleted) is not returned. The entity's keys must have been
        loaded whole (`load_current_keys` without spans).
        """
        modified = moment_number(max_modified)
        rows = self._db.execute(
            "SELECT s.key FROM tracked s JOIN temp.current_keys c ON c.entity = ? AND c.key = s.key"
            " WHERE s.scope = ? AND ((? IS NOT NULL AND s.modified > ?)"
            "       OR (? IS NOT NULL AND s.marq > ?)) ORDER BY s.key LIMIT ?",
            (entity, self.scope(dossier, entity), modified, modified, max_marq, max_marq, limit))
        return [row[0] for row in rows]

    def count_unknown_keys(self, dossier: str, entity: str) -> int:
        """Keys in Sage (among those loaded) never sent and that the pending run has not read either."""
        return self._db.execute(
            "SELECT COUNT(*) FROM temp.current_keys c WHERE c.entity = :e"
            " AND NOT EXISTS (SELECT 1 FROM tracked s WHERE s.scope = :s AND s.key = c.key)"
            " AND NOT EXISTS (SELECT 1 FROM staged_tracked g WHERE g.scope = :s AND g.key = c.key)",
            {"s": self.scope(dossier, entity), "e": entity}).fetchone()[0]

    def orphan_rows(self, dossier: str, entity: str) -> list[tuple[str, int]]:
        """(key, cbMarq) of the rows last sent as orphans (`TrackState.ORPHAN`, a contact whose
        account Sage did not have) whose key the run loaded and the pending run has not staged.
        Driven by the keys loaded, so a cycle that loaded none but the orphans' pays nothing: once
        the parent is back, the row counts in Sage's cbMarq sums again, its span is loaded."""
        scope = self.scope(dossier, entity)
        return [(key, int(marq)) for key, marq in self._db.execute(
            f"SELECT s.key, s.marq FROM temp.current_keys c CROSS JOIN tracked s"
            f" WHERE c.entity = :e AND s.scope = :s AND s.key = c.key AND s.state IN ({_ORPHAN_STATES})"
            f" AND s.marq > 0 AND NOT EXISTS (SELECT 1 FROM staged_tracked g WHERE g.scope = :s AND g.key = s.key)"
            f" ORDER BY s.marq", {"e": entity, "s": scope})]

    # A record of the checked spans, or one sent as an orphan (the orphans' keys are loaded in
    # every run, whatever the spans), not among the keys loaded nor staged by the pending run.
    # Each kind is found by its own index (`_TRACKED_INDEXES`): a few ranges cost a few seeks.
    _DELETED = ("FROM tracked s WHERE s.scope = :s AND s.key IN ("
                "  SELECT t.key FROM temp.checked_spans r JOIN tracked t ON t.scope = :s AND t.marq > r.low"
                "  AND t.marq <= r.top WHERE r.entity = :e"
                "  UNION SELECT t.key FROM tracked t WHERE t.scope = :s AND t.marq IS NULL"
                "  AND EXISTS (SELECT 1 FROM temp.checked_spans r WHERE r.entity = :e)"
                f" UNION SELECT t.key FROM tracked t INDEXED BY tracked_orphans WHERE t.scope = :s"
                f" AND t.state IN ({_ORPHAN_STATES}))"
                " AND NOT EXISTS (SELECT 1 FROM temp.current_keys c WHERE c.entity = :e AND c.key = s.key)"
                " AND NOT EXISTS (SELECT 1 FROM staged_tracked g WHERE g.scope = :s AND g.key = s.key)")
    _AMONG_HELD = {True: "EXISTS", False: "NOT EXISTS"}

    def _deleted_where(self, held: Optional[bool]) -> str:
        """FROM and WHERE of the deleted keys (`deleted_keys`); parameters :d, :e and :s."""
        if held is None:
            return self._DELETED
        return (f"{self._DELETED} AND {self._AMONG_HELD[held]}"
                " (SELECT 1 FROM held_deletions h WHERE h.dossier = :d AND h.entity = :e AND h.key = s.key)")

    def deleted_keys(self, dossier: str, entity: str, page: int = 1000, *,
                     held: Optional[bool] = None) -> Iterator[str]:
        """Keys sent before (or upserted by the pending run) that are not in Sage any more.

        Only the tracked records within the spans checked by the run (`load_current_keys`) are
        considered. Keys upserted by the pending run are excluded from the deleted set even when
        absent from the key table, because the key table was filled before the run read its
        changes. Paged by key, so the caller may write between pages. `held`: only the keys
        among the entity's held deletions (True), only the others (False), or all (None).
        """
        last = ""
        # `+s.key`: the page bound must not take the key index from the few candidates' lookup
        query = f"SELECT s.key {self._deleted_where(held)} AND +s.key > :last ORDER BY s.key LIMIT :page"
        parameters = {"d": dossier, "e": entity, "s": self.scope(dossier, entity), "page": page}
        while True:
            rows = self._db.execute(query, {**parameters, "last": last}).fetchall()
            if not rows:
                return
            for (key,) in rows:
                yield key
            last = rows[-1][0]

    def count_deleted_keys(self, dossier: str, entity: str, *, held: Optional[bool] = None) -> int:
        """How many keys `deleted_keys` would yield."""
        return self._db.execute(f"SELECT COUNT(*) {self._deleted_where(held)}",
                                {"d": dossier, "e": entity, "s": self.scope(dossier, entity)}).fetchone()[0]

    def keys_at(self, dossier: str, entity: str, marqs: Iterable[int]) -> set[str]:
        """The keys tracked (not as orphans) at these cbMarq values (found by their index)."""
        scope = self.scope(dossier, entity)
        return {key for part, marks in _in_parts(sorted(set(marqs))) for (key,) in self._db.execute(
            f"SELECT key FROM tracked WHERE scope = ? AND marq IN ({marks}) AND state NOT IN ({_ORPHAN_STATES})",
            (scope, *part))}

    def has_orphans(self, dossier: str, entity: str) -> bool:
        """Whether a record of `entity` was last sent as an orphan (`TrackState.ORPHANS`)."""
        return self._db.execute(f"SELECT 1 FROM tracked INDEXED BY tracked_orphans WHERE scope = ?"
                                f" AND state IN ({_ORPHAN_STATES}) LIMIT 1",
                                (self.scope(dossier, entity),)).fetchone() is not None

    def shadow_size(self, dossier: str, entity: str) -> int:
        return self._db.execute("SELECT COUNT(*) FROM tracked WHERE scope = ?",
                                (self.scope(dossier, entity),)).fetchone()[0]

    # --- deletion holds -------------------------------------------------------------------------
    def deletion_holds(self, dossier: str) -> dict[str, DeletionHold]:
        rows = self._db.execute("SELECT entity, held, records, run_id, held_at, confirmed_at FROM deletion_holds"
                                " WHERE dossier = ? ORDER BY entity", (dossier,))
        return {row[0]: DeletionHold(dossier, *row) for row in rows}

    def confirm_deletions(self, dossier: str, entity: str) -> Optional[DeletionHold]:
        """The user confirms the held deletions of `entity`: the next run sends them (once).

        Returns the hold, or None when the entity has none. Confirming twice keeps the first time.
        """
        self._db.execute("UPDATE deletion_holds SET confirmed_at = COALESCE(confirmed_at, ?)"
                         " WHERE dossier = ? AND entity = ?",
                         (dt.datetime.now(dt.timezone.utc).isoformat(timespec="microseconds"), dossier, entity))
        self._db.commit()
        return self.deletion_holds(dossier).get(entity)

    def stage_held_deletions(self, dossier: str, entity: str) -> int:
        """Stage the keys the pending run holds: its deleted keys not among confirmed ones."""
        return self._db.execute(
            f"INSERT OR IGNORE INTO staged_held_deletions (dossier, entity, key)"
            f" SELECT :d, :e, s.key {self._deleted_where(False)}",
            {"d": dossier, "e": entity, "s": self.scope(dossier, entity)}).rowcount

    def _replace_deletion_holds(self, dossier: str, holds: Iterable[DeletionHold],
                                confirmations_used: Mapping[str, str]) -> None:
        """The dossier's holds become the pending run's, with the keys it staged.

        A hold the user confirmed while the run was in flight (the run did not use that
        confirmation) is kept as it was, so the confirmation still means exactly what the user saw.
        """
        kept = {entity for entity, hold in self.deletion_holds(dossier).items()
                if hold.confirmed_at is not None and confirmations_used.get(entity) != hold.confirmed_at}
        marks = ",".join("?" * len(kept))
        for table in ("deletion_holds", "held_deletions"):
            self._db.execute(f"DELETE FROM {table} WHERE dossier = ? AND entity NOT IN ({marks})", (dossier, *kept))
        self._db.executemany(
            "INSERT INTO deletion_holds (dossier, entity, held, records, run_id, held_at) VALUES (?, ?, ?, ?, ?, ?)",
            [(dossier, h.entity, h.held, h.records, h.run_id, h.held_at) for h in holds if h.entity not in kept])
        self._db.execute(f"INSERT INTO held_deletions (dossier, entity, key) SELECT dossier, entity, key"
                         f" FROM staged_held_deletions WHERE dossier = ? AND entity NOT IN ({marks})",
                         (dossier, *kept))
        self._db.execute("DELETE FROM staged_held_deletions WHERE dossier = ?", (dossier,))

    # --- the pending run: staging and outbox ---------------------------------------------------
    def begin_pending(self, dossier: str, run_id: str, *, realignment: bool, identity: dict, probes: dict) -> None:
        if self.pending(dossier) is not None:
            raise RuntimeError(f"dossier {dossier} still has a pending run; send or discard it first")
        self._db.execute("INSERT INTO pending_runs (dossier, run_id, realignment, identity, probes)"
                         " VALUES (?, ?, ?, ?, ?)",
                         (dossier, run_id, int(realignment), json.dumps(identity, sort_keys=True),
                          json.dumps(probes, sort_keys=True)))

    def staged_keys(self, dossier: str, entity: str, keys: list[str]) -> set[str]:
        """Which of `keys` the pending run already staged."""
        found: set[str] = set()
        scope = self.scope(dossier, entity)
        for part, marks in _in_parts(keys):
            found.update(row[0] for row in self._db.execute(
                f"SELECT key FROM staged_tracked WHERE scope = ? AND key IN ({marks})", (scope, *part)))
        return found

    def stage_records(self, dossier: str, records: Iterable[StagedRecord]) -> None:
        self._db.executemany(
            "INSERT OR REPLACE INTO staged_tracked (scope, key, hash, state, modified, marq, deleted)"
            " VALUES (?, ?, ?, ?, ?, ?, ?)",
            [(self.scope(dossier, r.entity, create=True), r.key, r.hash, r.state, moment_number(r.modified), r.marq,
              int(r.deleted)) for r in records])

    def stage_watermark(self, dossier: str, entity: str, watermark: Watermark) -> None:
        self._db.execute("INSERT OR REPLACE INTO staged_watermarks (dossier, entity, modified, marq)"
                         " VALUES (?, ?, ?, ?)", (dossier, entity, to_text(watermark.modified), watermark.marq))

    def add_batch(self, dossier: str, run_id: str, seq: int, message_id: str, envelopes: int, body: bytes) -> None:
        self._db.execute("INSERT INTO outbox (dossier, run_id, seq, message_id, envelopes, body)"
                         " VALUES (?, ?, ?, ?, ?, ?)", (dossier, run_id, seq, message_id, envelopes, body))

    def seal(self, dossier: str, run_id: str, counts: dict[str, int], notes: list[str] = (), *,
             holds: Iterable[DeletionHold] = (), confirmations_used: Mapping[str, str] = {}) -> None:
        """The pending run is complete: from now on it will be sent, even after a crash.

        The dossier's deletion holds become the run's `holds`; `confirmations_used` (entity ->
        `confirmed_at`) are the confirmations the run acted on, which are thereby spent.
        """
        cursor = self._db.execute("UPDATE pending_runs SET sealed = 1 WHERE dossier = ? AND run_id = ?",
                                  (dossier, run_id))
        if cursor.rowcount != 1:
            raise RuntimeError(f"no pending run {run_id} for dossier {dossier}")
        self._replace_deletion_holds(dossier, holds, confirmations_used)
        self._db.execute("UPDATE runs SET state = ?, counts = ?,"
                         " batches = (SELECT COUNT(*) FROM outbox WHERE dossier = ?) WHERE run_id = ?",
                         (RunState.SENDING, json.dumps(counts), dossier, run_id))
        for note in notes:
            self._db.execute("UPDATE runs SET reasons = json_insert(reasons, '$[#]', ?) WHERE run_id = ?",
                             (note, run_id))
        self._db.commit()

    def pending(self, dossier: str) -> Optional[PendingRun]:
        row = self._db.execute(
            "SELECT p.run_id, p.realignment, p.sealed,"
            " (SELECT COUNT(*) FROM outbox o WHERE o.dossier = p.dossier),"
            " (SELECT COUNT(*) FROM outbox o WHERE o.dossier = p.dossier AND o.sent_at IS NULL)"
            " FROM pending_runs p WHERE p.dossier = ?", (dossier,)).fetchone()
        if row is None:
            return None
        return PendingRun(dossier, row[0], bool(row[1]), bool(row[2]), row[3], row[4])

    def unsent_batches(self, dossier: str) -> Iterator[OutboxBatch]:
        """The pending run's unsent batches in order, one at a time (bodies are not all loaded)."""
        last = -1
        while True:
            row = self._db.execute(
                "SELECT run_id, seq, message_id, envelopes, body FROM outbox"
                " WHERE dossier = ? AND sent_at IS NULL AND seq > ? ORDER BY seq LIMIT 1", (dossier, last)).fetchone()
            if row is None:
                return
            last = row[1]
            yield OutboxBatch(dossier, row[0], row[1], row[2], row[3], bytes(row[4]))

    def mark_sent(self, dossier: str, seq: int, *, commit: bool = True) -> None:
        """The bus accepted batch `seq`. Without `commit`, the mark waits for the next commit: a
        mark lost in a crash only sends the batch again, with its message id, which the bus drops."""
        self._db.execute("UPDATE outbox SET sent_at = ? WHERE dossier = ? AND seq = ?", (utc_text(), dossier, seq))
        if commit:
            self._db.commit()

    def apply_pending(self, dossier: str) -> str:
        """Apply a fully sent run in one transaction: shadow, watermarks, snapshot, history.

        Returns the run id. Raises RuntimeError if the run is not sealed or a batch is unsent.
        """
        pending = self.pending(dossier)
        if pending is None or not pending.sealed or pending.unsent:
            raise RuntimeError(f"dossier {dossier}: no fully sent run to apply")
        db = self._db
        db.commit()
        try:
            db.execute("BEGIN IMMEDIATE")
            if pending.realignment:
                db.execute("DELETE FROM watermarks WHERE dossier = ?", (dossier,))
            scopes = "(SELECT scope FROM scopes WHERE dossier = ?)"
            sums = ("INSERT INTO tracked_sums (scope, bucket, records, marq_total) {select} ON CONFLICT (scope, bucket)"
                    " DO UPDATE SET records = records + excluded.records, marq_total = marq_total + excluded.marq_total")
            db.execute(sums.format(select=(                   # what the records replaced or deleted counted
                f"SELECT t.scope, t.marq / {MARQ_RANGE}, -COUNT(*), -SUM(t.marq) FROM staged_tracked g CROSS JOIN"
                f" tracked t ON t.scope = g.scope AND t.key = g.key WHERE g.scope IN {scopes} AND t.marq IS NOT NULL"
                f" AND t.state NOT IN ({_ORPHAN_STATES}) GROUP BY 1, 2")), (dossier,))
            db.execute(sums.format(select=(                   # what the records staged count
                f"SELECT scope, marq / {MARQ_RANGE}, COUNT(*), SUM(marq) FROM staged_tracked"
                f" WHERE scope IN {scopes} AND deleted = 0 AND marq IS NOT NULL AND state NOT IN ({_ORPHAN_STATES})"
                f" GROUP BY 1, 2")), (dossier,))
            db.execute(f"DELETE FROM tracked_sums WHERE scope IN {scopes} AND records = 0", (dossier,))
            for (scope,) in db.execute("SELECT scope FROM scopes WHERE dossier = ?", (dossier,)).fetchall():
                db.execute("DELETE FROM tracked WHERE scope = :s AND key IN (SELECT key FROM staged_tracked"
                           " WHERE scope = :s AND deleted = 1)", {"s": scope})
            db.execute("INSERT OR REPLACE INTO tracked (scope, key, hash, state, marq, modified)"
                       " SELECT scope, key, hash, state, marq, modified"
                       f" FROM staged_tracked WHERE scope IN {scopes} AND deleted = 0 ORDER BY scope, key",
                       (dossier,))
            db.execute("UPDATE detection SET full_scan_at = COALESCE(staged_scan_at, full_scan_at),"
                       " staged_scan_at = NULL, signpost = COALESCE(staged_signpost, signpost),"
                       " staged_signpost = NULL WHERE dossier = ?", (dossier,))
            db.execute("INSERT OR REPLACE INTO watermarks (dossier, entity, modified, marq)"
                       " SELECT dossier, entity, modified, marq FROM staged_watermarks WHERE dossier = ?", (dossier,))
            db.execute("INSERT OR REPLACE INTO snapshots (dossier, identity, probes, taken_at)"
                       " SELECT dossier, identity, probes, ? FROM pending_runs WHERE dossier = ?",
                       (utc_text(), dossier))
            self._clear_pending(dossier)
            self._ensure_dossier(dossier)
            db.execute("UPDATE dossiers SET last_error = NULL, last_error_at = NULL, last_success_at = ?"
                       " WHERE dossier = ?", (utc_text(), dossier))
            db.execute("UPDATE runs SET state = ?, ended_at = ?, error = NULL WHERE run_id = ?",
                       (RunState.SUCCEEDED, utc_text(), pending.run_id))
            db.execute("COMMIT")
        except BaseException:
            if db.in_transaction:
                db.execute("ROLLBACK")
            raise
        return pending.run_id

    def discard_pending(self, dossier: str, *, reason: str, state: str = RunState.INTERRUPTED) -> Optional[str]:
        """Drop an unsealed pending run (nothing of it was sent); returns its run id."""
        pending = self.pending(dossier)
        if pending is None:
            return None
        if pending.sealed:
            raise RuntimeError(f"dossier {dossier}: run {pending.run_id} is sealed and must be sent, not discarded")
        self._db.rollback()
        self._clear_pending(dossier)
        self._db.execute("UPDATE runs SET state = ?, ended_at = ?, error = ? WHERE run_id = ? AND state = ?",
                         (state, utc_text(), reason, pending.run_id, RunState.RUNNING))
        self._db.commit()
        return pending.run_id

    def _clear_pending(self, dossier: str) -> None:
        self._db.execute("DELETE FROM staged_tracked WHERE scope IN (SELECT scope FROM scopes WHERE dossier = ?)",
                         (dossier,))
        self._db.execute("UPDATE detection SET staged_scan_at = NULL, staged_signpost = NULL WHERE dossier = ?",
                         (dossier,))
        for table in ("staged_watermarks", "staged_held_deletions", "outbox", "pending_runs"):
            self._db.execute(f"DELETE FROM {table} WHERE dossier = ?", (dossier,))

    # --- run history --------------------------------------------------------------------------
    def start_run(self, dossier: str, run_id: str, *, realignment: bool, reasons: list[str]) -> None:
        self._ensure_dossier(dossier)
        self._db.execute("INSERT INTO runs (run_id, dossier, started_at, state, realignment, reasons)"
                         " VALUES (?, ?, ?, ?, ?, ?)",
                         (run_id, dossier, utc_text(), RunState.RUNNING, int(realignment), json.dumps(reasons)))
        self._db.commit()

    def set_run_counts(self, run_id: str, counts: dict[str, int]) -> None:
        self._db.execute("UPDATE runs SET counts = ? WHERE run_id = ?", (json.dumps(counts), run_id))

    def fail_run(self, dossier: str, run_id: Optional[str], error: str) -> None:
        """Record a failed run (or, without a run id, a dossier that could not even start one)."""
        if run_id is not None:
            self._db.execute("UPDATE runs SET error = ?, ended_at = ?,"
                             " state = CASE WHEN state = ? THEN ? ELSE state END WHERE run_id = ?",
                             (error, utc_text(), RunState.RUNNING, RunState.FAILED, run_id))
        self._db.commit()
        self.record_error(dossier, error)

    def record_failed_start(self, dossier: str, run_id: str, error: str) -> None:
        self._ensure_dossier(dossier)
        now = utc_text()
        self._db.execute("INSERT INTO runs (run_id, dossier, started_at, ended_at, state, error)"
                         " VALUES (?, ?, ?, ?, ?, ?)", (run_id, dossier, now, now, RunState.FAILED, error))
        self._db.commit()
        self.record_error(dossier, error)

    def runs(self, dossier: Optional[str] = None, limit: int = 20) -> list[RunRecord]:
        rows = self._db.execute(
            "SELECT run_id, dossier, started_at, ended_at, state, realignment, reasons, counts, batches, error"
            " FROM runs WHERE (? IS NULL OR dossier = ?) ORDER BY run_id DESC LIMIT ?",
            (dossier, dossier, limit)).fetchall()
        return [RunRecord(r[0], r[1], r[2], r[3], r[4], bool(r[5]), json.loads(r[6]), json.loads(r[7]), r[8], r[9])
                for r in rows]

    def known_dossiers(self) -> list[str]:
        rows = self._db.execute("SELECT dossier FROM dossiers UNION SELECT dossier FROM runs"
                                " UNION SELECT dossier FROM snapshots ORDER BY 1")
        return [row[0] for row in rows]


def _in_parts(values: list) -> Iterator[tuple[list, str]]:
    """`values` in slices of at most `KEY_CHUNK`, each with the `?,?,…` of its `IN (…)`."""
    for start in range(0, len(values), KEY_CHUNK):
        part = values[start:start + KEY_CHUNK]
        yield part, ",".join("?" * len(part))


def _add_missing_columns(db: sqlite3.Connection, table: str, columns: Iterable[str]) -> None:
    """Columns a later release added to `table` (TEXT, NULL in the rows already there)."""
    present = {row[1] for row in db.execute(f"PRAGMA table_info({table})")}
    for column in columns:
        if column not in present:
            db.execute(f"ALTER TABLE {table} ADD COLUMN {column} TEXT")


def _migrate_shadow(db: sqlite3.Connection) -> None:
    """Schema 1 → 2: the shadow (hex hashes and texts, dossier and entity on every row) becomes the
    compact `tracked` table (a scope number, the key, an 8-byte hash, cbMarq and cbModification as
    integers; a row sent as an orphan, its raw hash marked `ORPHAN_HASH`, in state
    `TrackState.ORPHAN`); a run staged but not yet applied keeps its staged records the same way."""
    def rows(table: str, deleted: bool) -> Iterator[tuple]:
        columns = "dossier, entity, key, raw_hash, record_hash, invalid, modified, marq" + (", deleted" if deleted else "")
        for row in db.execute(f"SELECT {columns} FROM {table} ORDER BY dossier, entity, key"):
            dossier, entity, key, raw_hash, record_hash, invalid, modified, marq = row[:8]
            db_scope = scopes.get((dossier, entity))
            if db_scope is None:
                db.execute("INSERT OR IGNORE INTO scopes (dossier, entity) VALUES (?, ?)", (dossier, entity))
                db_scope = scopes[(dossier, entity)] = db.execute(
                    "SELECT scope FROM scopes WHERE dossier = ? AND entity = ?", (dossier, entity)).fetchone()[0]
            orphan = bool(invalid) and (raw_hash or "").startswith(ORPHAN_HASH)
            state = (TrackState.VALID if not invalid else
                     (TrackState.ORPHAN_AFTER_VALID if orphan else TrackState.INVALID_AFTER_VALID) if record_hash
                     else TrackState.ORPHAN if orphan else TrackState.INVALID)
            hashed = short_hash(raw_hash if invalid else record_hash)
            yield (db_scope, key, hashed, state, marq, moment_number(from_text(modified)), *row[8:])

    scopes: dict[tuple[str, str], int] = {}
    existing = {name for (name,) in db.execute("SELECT name FROM sqlite_schema WHERE type = 'table'")}
    if "shadow" in existing:
        batch = []
        for row in rows("shadow", False):
            batch.append(row)
            if len(batch) >= 10_000:
                db.executemany("INSERT OR REPLACE INTO tracked (scope, key, hash, state, marq, modified)"
                               " VALUES (?, ?, ?, ?, ?, ?)", batch)
                batch.clear()
        db.executemany("INSERT OR REPLACE INTO tracked (scope, key, hash, state, marq, modified)"
                       " VALUES (?, ?, ?, ?, ?, ?)", batch)
        db.execute("DROP TABLE shadow")
    if "staged_shadow" in existing:
        db.executemany("INSERT OR REPLACE INTO staged_tracked (scope, key, hash, state, marq, modified, deleted)"
                       " VALUES (?, ?, ?, ?, ?, ?, ?)", list(rows("staged_shadow", True)))
        db.execute("DROP TABLE staged_shadow")
