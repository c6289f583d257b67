"""Change detection for one dossier: what changed in Sage since the last run, and was it restored?

A run first takes a *signpost* (the Sage server's clock at run start), the table probes and the
database identity, and streams into the agent's SQLite (a temporary table) the keys it needs:
on an ordinary cycle only those of the cbMarq ranges where Sage's record count or cbMarq sum
differs from the shadow's (`MARQ_RANGE`), every key when counters went backwards or on the
periodic full scan (`FULL_SCAN_EVERY`: every record re-read, whatever cbModification says),
none on a first load or a realignment (every record is read and staged). It then decides whether the run is a *realignment* (first run, dossier selected again, database
identity changed, records that went back in time, server clock moved back) and reads, entity by
entity in dependency order, the rows modified since `watermark − overlap` (all rows when
realigning). The content hash of each row is compared with the *shadow* of what was sent:
unchanged rows send nothing, rows read again in the overlap are absorbed. Keys in the shadow that
are no longer in Sage become deletions, sent after every upsert, dependents first, unless they
are a *mass deletion* (`DeletionGuard`): a table that suddenly reads (nearly) empty is far more
often a filter, a view or a permission gone wrong than records really deleted, so those
deletions are held (not sent, kept in the shadow) until the rows come back or the user confirms
them; the held keys a user confirmed are sent by the next run, once. Everything
the run would change in the agent's state (shadow, watermarks) is *staged*, not applied: the
relay applies it once the bus has accepted the run's batches.

Restore signals are verified before they trigger a realignment: a table's counters going
backwards is also what an ordinary deletion of its newest row looks like, so a realignment is
ordered only when a record that is still in Sage now carries an older `cbModification`/`cbMarq`
than the one that was sent. Keys present in Sage but neither in the shadow nor read by the run
(a restored copy brought back deleted rows, or rows were back-dated) make the run re-read that
entity in full (within the ranges checked), so no record is ever skipped silently. Documents
older than the dossier's history window are not read at all (`_limit_history`).
"""
from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
import json
import logging
import re
import secrets
from dataclasses import dataclass, field
from typing import Any, Iterable, Iterator, Optional, Protocol

from agent.checkpoint import (ALL_MARQS, FULL_SCAN_REQUESTED, MARQ_RANGE, Checkpoint, DeletionHold, ShadowEntry,
                              StagedRecord, TrackState, Watermark, short_hash, to_text, utc_text)
from shared import sage_rows
from shared.envelope import (MAX_MESSAGE_BYTES, MESSAGE_OVERHEAD_BYTES, SCHEMA_VERSION, WARNINGS_SINCE_VERSION, Envelope,
                             EnvelopeKind, Op, message_id)
from shared.messages import label, record_name, text
from shared.messages import text as message_text
from shared.models import Entity

LOOKUP_CHUNK = 500
DELETE_CHUNK = 1000
# Room, next to a record's own JSON, for the envelope's other fields and the batch frame.
ENVELOPE_FRAME_BYTES = 1024
MAX_ENVELOPE_BYTES = MAX_MESSAGE_BYTES - MESSAGE_OVERHEAD_BYTES - ENVELOPE_FRAME_BYTES
# Some Sage versions stamp cbModification as a smalldatetime, rounded to the nearest minute: a
# change saved just after a run read its entity can carry a time up to 30 s before that run's
# signpost. A shorter overlap would skip it, whatever the configuration asks.
MINIMUM_OVERLAP = dt.timedelta(minutes=2)
# An invalid record's message names its first problems only, so its envelope always fits a message.
MAX_ERROR_CHARS = 4000
# A cycle re-reads every record this often, whatever cbModification says (a change saved without
# touching cbModification, a key renamed in place: the range sums cannot see those).
FULL_SCAN_EVERY = dt.timedelta(days=1)


class SageSource(Protocol):
    """What detection needs from a Sage reader (`agent.sage100.reader.Sage100Reader`)."""

    def entities(self) -> tuple[Entity, ...]: ...
    def changed(self, entity: Entity, since: Optional[dt.datetime]) -> Iterator[Any]: ...
    def keys(self, entity: Entity, spans: Optional[list[tuple[int, int]]] = None) -> Iterator[str]: ...
    def probes(self) -> list[Any]: ...
    def identity(self) -> Any: ...
    def main_table(self, entity: Entity) -> str: ...


log = logging.getLogger(__name__)

COUNTERS = ("read", "created", "changed", "resent", "deleted", "skipped_unchanged", "invalid", "deletions_held")


@dataclass
class RunCounts:
    """What a run did. `resent`: unchanged records sent again because the run realigns;
    `deletions_held`: deletions not sent because they were a mass deletion."""

    read: int = 0
    created: int = 0
    changed: int = 0
    resent: int = 0
    deleted: int = 0
    skipped_unchanged: int = 0
    invalid: int = 0
    deletions_held: int = 0

    def as_dict(self) -> dict[str, int]:
        return dataclasses.asdict(self)


@dataclass(frozen=True)
class DeletionGuard:
    """When a run's deletions of one entity are a mass deletion, held instead of sent.

    A deletion set is held only when it is larger than `max_fraction` of the entity's records
    (in the shadow) and larger than `min_count` too: deletions in a small table go through.
    """

    max_fraction: float = 0.2
    min_count: int = 50

    def holds(self, deletions: int, records: int) -> bool:
        return deletions > self.min_count and deletions > self.max_fraction * records


@dataclass(frozen=True)
class RunPlan:
    dossier: str
    run_id: str
    signpost: dt.datetime
    realignment: bool
    reasons: tuple[str, ...]
    identity: dict[str, Any]
    probes: dict[str, dict[str, Any]]
    confirmed_deletions: dict[str, str] = field(default_factory=dict)   # entity -> confirmed_at
    restored: bool = False      # the database was restored, replaced, or its records went back in time
    full_scan: bool = False                   # every record read (compared, not resent)
    # entity -> the cbMarq spans whose keys were checked (ALL_MARQS: all); absent: none checked
    checked: dict[str, tuple[tuple[int, int], ...]] = field(default_factory=dict)
    # the last applied run's signpost: rows stamped before it less the overlap were read by then
    since_floor: Optional[dt.datetime] = None


@dataclass(frozen=True)
class RenderedEnvelope:
    """An upsert envelope already in its wire form: `text` is exactly `Envelope.to_json()`.

    Detection renders upserts itself from the record's canonical JSON, which it computes anyway
    for the content hash, instead of serialising every record three times through pydantic.
    """

    id: str
    text: str

    def envelope(self) -> Envelope:
        return Envelope.model_validate_json(self.text)


_NEEDS_ESCAPING = re.compile(r'["\\\x00-\x1f]')


def _text(value: str) -> str:
    """A JSON string exactly as `canonical_json` writes it."""
    if _NEEDS_ESCAPING.search(value):
        return json.dumps(value, ensure_ascii=False)
    return f'"{value}"'


def bounded_error(error: str) -> str:
    """`error` cut after its last whole problem within `MAX_ERROR_CHARS`, saying how many more there are."""
    if len(error) <= MAX_ERROR_CHARS:
        return error
    head = error[:MAX_ERROR_CHARS]
    cut = head.rfind("; ")
    if cut > 0:
        head = head[:cut]
    more = error.count("; ", len(head))
    return message_text("agent.more_problems", head=head, more=more)


def new_run_id(now: Optional[dt.datetime] = None) -> str:
    """A unique run id that sorts by start time: UTC timestamp to the microsecond + 6 hex digits."""
    now = (now or dt.datetime.now(dt.timezone.utc)).astimezone(dt.timezone.utc)
    return f"{now:%Y%m%dT%H%M%S%f}Z-{secrets.token_hex(3)}"


def server_now(connection) -> dt.datetime:
    """The Sage server's clock (naive, server time, as `cbModification` is written).

    SQL Server: `GETDATE()`. The SQLite stand-in: the clock its triggers use.
    """
    from agent import odbc
    from agent.normalize import datetime_
    from agent.sage100.schema import EMULATION_TABLE, SQLITE_CLOCK, SQLITE_NOW

    if not odbc.is_sqlite(connection):
        query = "SELECT GETDATE()"
    elif odbc.table_exists(connection, EMULATION_TABLE):
        query = f"SELECT {SQLITE_CLOCK}"
    else:
        query = f"SELECT {SQLITE_NOW}"
    cursor = connection.cursor()
    try:
        value = cursor.execute(query).fetchone()[0]
    finally:
        cursor.close()
        connection.rollback()
    moment = datetime_(value)
    if moment is None:
        raise ValueError(f"the Sage server returned no usable clock value ({value!r})")
    return moment


def identity_dict(identity: Any) -> dict[str, Any]:
    created = getattr(identity, "created_at", None)
    return {"database_name": identity.database_name, "company_name": identity.company_name,
            "siret": getattr(identity, "siret", None),
            "created_at": created.isoformat() if created else None, "fingerprint": identity.fingerprint}


def probes_dict(probes: Iterable[Any]) -> dict[str, dict[str, Any]]:
    return {p.table: {"row_count": None if p.row_count is None else int(p.row_count), "max_marq": int(p.max_marq or 0),
                      "max_modified": to_text(p.max_modified)} for p in probes}


@dataclass
class _CycleFacts:
    """What an ordinary cycle's plan learns once and uses for every entity."""

    before: dict                  # the last applied run's probes, by table
    now: dict                     # this run's probes
    watermarks: dict
    floor: Optional[dt.datetime]  # the last applied run's signpost (None: not to be used)
    held: set[str]                # entities whose deletions are held
    orphan_parents: set[str]      # tables holding the parents of orphan rows
    deleted_from: dict[str, bool] = field(default_factory=dict)   # table -> rows deleted since
    keys_gone: set[str] = field(default_factory=set)              # parent tables a tracked key left


def _later(moment: dt.datetime, floor: Optional[dt.datetime]) -> dt.datetime:
    """`moment`, or `floor` when later: a row committed after the last run read its entity was
    stamped after that run's signpost less the overlap, however old the entity's newest row."""
    return moment if floor is None or floor <= moment else floor


def _years_before(day: dt.date, years: int) -> dt.date:
    try:
        return day.replace(year=day.year - years)
    except ValueError:                     # 29 February
        return day.replace(year=day.year - years, day=28)


def _sent_as_orphan(row: Any) -> bool:
    """A row referring to a parent Sage does not have (`shared.sage_rows.ORPHAN_HASH`)."""
    return row.record_text is None and (row.raw_hash or "").startswith(sage_rows.ORPHAN_HASH)


def _chunks(items: Iterable[Any], size: int) -> Iterator[list[Any]]:
    chunk: list[Any] = []
    for item in items:
        chunk.append(item)
        if len(chunk) >= size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


@dataclass
class ChangeDetector:
    """Detects one run's changes of one dossier and stages their effect in the checkpoint.

    Use `plan()` once, then iterate `envelopes(plan)` to the end: run-start marker first,
    run-end marker (with `counts`) last. Staged writes are left uncommitted for the caller.
    An `overlap` shorter than `MINIMUM_OVERLAP` is taken as `MINIMUM_OVERLAP`. Once iterated,
    `holds` are the deletions held and `confirmations_used` (entity -> `confirmed_at`) the
    user's confirmations the run acted on: the caller records both when it seals the run.
    """

    checkpoint: Checkpoint
    dossier: str
    source: SageSource
    overlap: dt.timedelta = dt.timedelta(hours=1)
    deletion_guard: DeletionGuard = field(default_factory=DeletionGuard)
    counts: RunCounts = field(default_factory=RunCounts)
    notes: list[str] = field(default_factory=list)
    sent_at: Optional[dt.datetime] = None
    holds: list[DeletionHold] = field(default_factory=list)
    confirmations_used: dict[str, str] = field(default_factory=dict)
    realignment_requested: bool = False     # the dossier's lifecycle state asks for a full read
    start_record: dict[str, Any] = field(default_factory=dict)   # what the run-start marker tells the cloud
    full_scan_every: Optional[dt.timedelta] = FULL_SCAN_EVERY
    history_years: int = 0          # fiscal years of documents sent, the current one included; 0: all
    clock: Optional[Any] = None                    # the agent's UTC clock (tests)

    def __post_init__(self) -> None:
        self.overlap = max(self.overlap, MINIMUM_OVERLAP)

    # --- planning --------------------------------------------------------------------------
    def plan(self, run_id: str, signpost: dt.datetime) -> RunPlan:
        """Probe the dossier, find where records were added or deleted and decide whether this
        run realigns.

        The held deletions the user confirmed are read first: a confirmation given later is left
        for the next run. Keys are read only where they are needed: every key when counters went
        backwards (a restore is verified record by record) or on a full scan; on an ordinary
        cycle, only those of the rows where Sage and the agent differ (`_ordinary_spans`); none
        on a first load or a realignment, which read and
        stage every record (the source still looks for rows repeating an older row's key,
        `_duplicate_copies`). A row read under a new key at a cbMarq tracked under another key
        has its old key checked too (`Checkpoint.check_reused_marqs`).
        """
        confirmed = {entity: hold.confirmed_at for entity, hold in self.checkpoint.deletion_holds(self.dossier).items()
                     if hold.confirmed_at is not None}
        probes = probes_dict(self.source.probes())
        identity = identity_dict(self.source.identity())
        self.checkpoint.ensure_scopes(self.dossier, [entity.value for entity in self.source.entities()])
        self._limit_history(signpost.date())
        self.checkpoint.clear_current_keys()
        snapshot = self.checkpoint.snapshot(self.dossier)
        watermarks = self.checkpoint.watermarks(self.dossier)
        last = self.checkpoint.last_signpost(self.dossier)
        floor = last if last is not None and signpost >= last else None      # a clock moved back: none
        self.checkpoint.stage_signpost(self.dossier, signpost)
        again = [message_text("agent.reason.reselected")] if self.realignment_requested else []
        if snapshot is None:
            restored, reasons = [], again or [message_text("agent.reason.first")]
        else:
            restored = self._restore_signals(snapshot, signpost, identity, watermarks)
            reasons = again + restored
        checked: dict[str, tuple[tuple[int, int], ...]] = {}
        counters_dropped = snapshot is not None and self._counters_dropped(snapshot.probes, probes, watermarks)
        full_scan = self._full_scan_due()
        if counters_dropped or full_scan or reasons:
            for entity in self.source.entities():
                self._limit_orphans(entity, None)
        if counters_dropped or (full_scan and not reasons):
            for entity in self.source.entities():
                self.checkpoint.load_current_keys(entity.value, self.source.keys(entity))
                checked[entity.value] = (ALL_MARQS,)
            if counters_dropped:
                reverted = self._reverted_records(snapshot.probes, probes, watermarks)
                if reverted:
                    restored.append(message_text("agent.reason.reverted", records=", ".join(reverted)))
                    reasons.append(restored[-1])
        elif reasons:
            for entity in self.source.entities():
                # every record is read and staged: no key is needed, only the rows repeating an
                # older row's key (`_duplicate_copies`), found by a key read of no span
                keys = self._keys_in(entity, []) if hasattr(self.source, "duplicate_copies") else ()
                self.checkpoint.load_current_keys(entity.value, keys, spans=(ALL_MARQS,))
                checked[entity.value] = (ALL_MARQS,)
        else:
            facts = _CycleFacts(snapshot.probes, probes, watermarks, floor,
                                held=set(self.checkpoint.deletion_holds(self.dossier)),
                                orphan_parents={table for entity in self.source.entities()
                                                for table in self._orphan_parents(entity)})
            for entity in self.source.entities():
                spans = self._ordinary_spans(entity, facts)
                self.checkpoint.load_current_keys(entity.value, self._keys_in(entity, spans), spans=spans)
                checked[entity.value] = tuple(spans)
        if reasons or full_scan:
            self.checkpoint.stage_full_scan(self.dossier, self._utc_now())
        return RunPlan(self.dossier, run_id, signpost, bool(reasons), tuple(reasons), identity, probes, confirmed,
                       restored=bool(restored), full_scan=full_scan and not reasons, checked=checked,
                       since_floor=floor)

    def _keys_in(self, entity: Entity, spans: list[tuple[int, int]]) -> Iterator[str]:
        """The entity's keys within `spans` (all of them when `spans` is `[ALL_MARQS]` or the
        source reads only whole tables, as Sage 50's exports)."""
        if spans == [ALL_MARQS] or not hasattr(self.source, "marq_sums"):
            return self.source.keys(entity)
        return self.source.keys(entity, spans)

    def _utc_now(self) -> dt.datetime:
        return (self.clock or (lambda: dt.datetime.now(dt.timezone.utc)))()

    def _full_scan_due(self) -> bool:
        if not self.checkpoint.has_shadow(self.dossier):
            return False
        last = self.checkpoint.last_full_scan(self.dossier)
        if last is not None and last.isoformat() == FULL_SCAN_REQUESTED:
            return True
        if self.full_scan_every is None:
            return False
        return last is None or self._utc_now() - last >= self.full_scan_every

    def _ordinary_spans(self, entity: Entity, facts: "_CycleFacts") -> list[tuple[int, int]]:
        """An ordinary cycle's spans of `entity` whose keys are read: those of the rows changed
        since the last probes where Sage and the agent differ, when no row that matters was
        deleted (`_narrow_since`), else those of the `MARQ_RANGE` ranges whose record count or
        cbMarq sum differs. Its orphans are looked for among the same changed rows, unless the
        agent tracks one already (each cycle then checks it is still one) or a parent of them
        lost its key (`_note_keys_gone`)."""
        since = None if entity.value in facts.held else self._narrow_since(entity, facts)
        touched = None
        if since is not None:
            top = (facts.before.get(self.source.main_table(entity)) or {}).get("max_marq", 0)
            touched = self.source.touched_rows(entity, since, top)
        self._note_keys_gone(entity, touched, facts)
        narrow = since is not None and not self.checkpoint.has_orphans(self.dossier, entity.value) \
            and not facts.keys_gone.intersection(self._orphan_parents(entity))
        self._limit_orphans(entity, since if narrow else None)
        return self._differing_spans(entity, touched)

    def _orphan_parents(self, entity: Entity) -> tuple[str, ...]:
        return getattr(self.source, "orphan_parents", lambda _: ())(entity)

    def _note_keys_gone(self, entity: Entity, touched: Optional[list[int]], facts: "_CycleFacts") -> None:
        """When `entity`'s table holds other rows' parents (a document's lines, an account's
        contacts): whether a key the agent tracks at a row changed since is gone (renamed in
        place, or the row left the entity), which may orphan rows that did not change; not
        knowing counts as gone. Entities are read parents first."""
        table = self.source.main_table(entity)
        if table not in facts.orphan_parents or table in facts.keys_gone:
            return
        if touched is None:
            facts.keys_gone.add(table)
            return
        tracked = self.checkpoint.keys_at(self.dossier, entity.value, touched) if touched else set()
        if tracked:
            current = self.source.keys_at(entity, touched)
            if current is None or not tracked <= current:
                facts.keys_gone.add(table)

    def _limit_orphans(self, entity: Entity, since: Optional[dt.datetime]) -> None:
        limit = getattr(self.source, "limit_orphans", None)
        if limit is not None:
            limit(entity, since)

    def _narrow_since(self, entity: Entity, facts: "_CycleFacts") -> Optional[dt.datetime]:
        """When this cycle may look at `entity`'s records only where something changed: the moment
        changes are looked for from; None when every range must be compared.

        Every range is compared when the entity was never read, when the source cannot say where
        rows changed, when its deletions are held (the agent still tracks records Sage does not
        have: `plan` asks for them again), or when a row was deleted from a table whose deletions
        take records out of the entity or orphan its rows (`deletion_tables`): nothing marks where
        a deleted row was. Rows were deleted when a table counts fewer rows than it did plus those
        added above its highest cbMarq since (`facts.deleted_from` keeps each table's answer).
        Otherwise changes are looked for from the latest cbModification the last run's probes saw
        in the tables whose changed rows matter (`change_tables`), or from the last run's signpost
        (`facts.floor`) when later, less the overlap, as the changed reads do."""
        previous = facts.watermarks.get(entity.value)
        deletion_tables = getattr(self.source, "deletion_tables", None)
        if previous is None or previous.modified is None or deletion_tables is None:
            return None
        for table in deletion_tables(entity):
            if table not in facts.deleted_from:
                then, current = facts.before.get(table) or {}, facts.now.get(table) or {}
                counts = then.get("row_count"), current.get("row_count")
                facts.deleted_from[table] = None in counts or counts[1] != counts[0] + self.source.rows_above(
                    table, then.get("max_marq", 0))
            if facts.deleted_from[table]:
                return None
        seen = [(facts.before.get(table) or {}).get("max_modified") for table in self.source.change_tables(entity)]
        if None in seen:
            return None
        return _later(min(dt.datetime.fromisoformat(moment) for moment in seen), facts.floor) - self.overlap

    def _differing_spans(self, entity: Entity, touched: Optional[list[int]] = None) -> list[tuple[int, int]]:
        """The cbMarq spans (`low < cbMarq <= top`) where Sage's record count or cbMarq sum is not
        the agent's: a record there was deleted, added, or is unknown to the agent. Every
        `MARQ_RANGE` range is compared; with `touched` (cbMarq values), only those rows are (the
        others are known to be as they were: `_narrow_since`)."""
        sums = getattr(self.source, "marq_sums", None)
        if sums is None:
            return [ALL_MARQS]
        if touched is not None and not touched:
            return []
        width = MARQ_RANGE if touched is None else 1
        theirs = sums(entity, width, touched)
        mine = self.checkpoint.marq_sums(self.dossier, entity.value, width, touched)
        spans: list[tuple[int, int]] = []
        for bucket in sorted(set(theirs) | set(mine)):
            if theirs.get(bucket) == mine.get(bucket):
                continue
            low, top = bucket * width - 1, (bucket + 1) * width - 1
            if spans and spans[-1][1] == low:
                spans[-1] = (spans[-1][0], top)
            else:
                spans.append((low, top))
        return spans

    def _limit_history(self, today: dt.date) -> None:
        """Documents older than the dossier's history window are not read (nor sent, nor deleted).

        The window is set on the dossier's first run (`history_years` fiscal years, the current
        one included; 0: all) and kept: it never moves forward by itself, so documents once sent
        stay followed; `ssm-connector agent history` moves it back to send older ones.
        """
        limit = getattr(self.source, "limit_history", None)
        if limit is None:
            return
        if not self.checkpoint.has_history_window(self.dossier):
            start = None
            if self.history_years > 0:
                fiscal = getattr(self.source, "fiscal_year_start", lambda day: None)(today)
                fiscal = fiscal or dt.date(today.year, 1, 1)
                start = _years_before(fiscal, self.history_years - 1)
            self.checkpoint.set_history_from(self.dossier, start, all_history=start is None)
        start = self.checkpoint.history_from(self.dossier)
        limit(start if start is not None and start.year > 1 else None)

    def _restore_signals(self, snapshot, signpost: dt.datetime, identity: dict,
                         watermarks: dict[str, Watermark]) -> list[str]:
        """Why the database looks restored or replaced (its identity changed, the server clock
        is behind what was sent); records gone back in time are added by `plan`."""
        reasons = []
        before = snapshot.identity
        if before.get("fingerprint") != identity["fingerprint"]:
            changes = [f"{name} {before.get(name)!r} → {identity[name]!r}"
                       for name in ("database_name", "company_name", "created_at")
                       if before.get(name) != identity[name]]
            reasons.append(message_text("agent.reason.other_database_changes", changes=", ".join(changes)) if changes
                           else message_text("agent.reason.other_database"))
        latest_sent = max((w.modified for w in watermarks.values() if w.modified), default=None)
        if latest_sent is not None and signpost < latest_sent - self.overlap:
            reasons.append(message_text("agent.reason.clock", clock=f"{signpost:%d/%m/%Y %H:%M}",
                                latest=f"{latest_sent:%d/%m/%Y %H:%M}"))
        return reasons

    @staticmethod
    def _drops(before: dict, now: dict, watermarks: dict[str, Watermark]):
        newest_now = max((p["max_modified"] for p in now.values() if p["max_modified"]), default=None)
        newest_before = max([p["max_modified"] for p in before.values() if p.get("max_modified")]
                            + [to_text(w.modified) for w in watermarks.values() if w.modified], default=None)
        marq_dropped = {table for table, p in now.items()
                        if table in before and p["max_marq"] < before[table].get("max_marq", 0)}
        time_dropped = newest_before is not None and (newest_now is None or newest_now < newest_before)
        return newest_now, time_dropped, marq_dropped

    def _counters_dropped(self, before: dict, now: dict, watermarks: dict[str, Watermark]) -> bool:
        """A table's highest cbMarq or the latest cbModification went backwards (a restore, or the
        newest row deleted): the records are then checked one by one (`_reverted_records`)."""
        _, time_dropped, marq_dropped = self._drops(before, now, watermarks)
        return bool(time_dropped or marq_dropped)

    def _reverted_records(self, before: dict, now: dict, watermarks: dict[str, Watermark]) -> list[str]:
        """Records still in Sage whose cbModification or cbMarq is below what was sent."""
        newest_now, time_dropped, marq_dropped = self._drops(before, now, watermarks)
        if not time_dropped and not marq_dropped:
            return []
        found = []
        for entity in self.source.entities():
            main_table = self.source.main_table(entity)
            probe = now.get(main_table)
            keys = self.checkpoint.reverted_keys(
                self.dossier, entity.value,
                max_modified=dt.datetime.fromisoformat(newest_now) if time_dropped and newest_now else None,
                max_marq=probe["max_marq"] if probe and main_table in marq_dropped else None)
            found += [record_name(entity.value, key) for key in keys]
        return found[:10]

    # --- detection -------------------------------------------------------------------------
    def envelopes(self, plan: RunPlan) -> Iterator[Envelope | RenderedEnvelope]:
        self._rendering_checked = False
        self._orphans_seen: dict[str, set[str]] = {}
        self._render_heads: dict[str, str] = {}
        yield Envelope.run_marker(dossier=self.dossier, run_id=plan.run_id, start=True,
                                  realignment=plan.realignment, sent_at=self.sent_at, facts=self.start_record,
                                  source=getattr(self.source, "report", None),
                                  name=self.start_record.get("name") or plan.identity.get("company_name"),
                                  reasons=plan.reasons)
        entities = self.source.entities()
        watermarks = self.checkpoint.watermarks(self.dossier)
        for entity in entities:
            previous = None if plan.realignment else watermarks.get(entity.value)
            since = None
            if previous is not None and previous.modified is not None and not plan.full_scan:
                since = _later(previous.modified, plan.since_floor) - self.overlap
            newest = self._newest_start(previous)
            newest = yield from self._upserts(plan, entity, self.source.changed(entity, since), newest)
            newest = yield from self._orphans_adopted(plan, entity, newest)
            missing = 0 if plan.realignment or since is None else self.checkpoint.count_unknown_keys(
                self.dossier, entity.value)
            if missing:
                spans = plan.checked.get(entity.value, (ALL_MARQS,))
                if ALL_MARQS in spans or not hasattr(self.source, "changed_between"):
                    self.notes.append(message_text("agent.note.read_in_full", count=missing,
                                                   entity=label("status.entity", entity.value)))
                    newest = yield from self._upserts(plan, entity, self.source.changed(entity, None), newest)
                else:
                    self.notes.append(message_text("agent.note.read_in_spans", count=missing,
                                                   entity=label("status.entity", entity.value), spans=len(spans)))
                    for low, top in spans:
                        newest = yield from self._upserts(plan, entity, self.source.changed_between(entity, low, top),
                                                          newest)
            if newest is not None:
                modified, marq = newest
                if modified > plan.signpost:
                    modified = plan.signpost
                self.checkpoint.stage_watermark(self.dossier, entity.value, Watermark(modified, marq))
        for entity in reversed(entities):
            yield from self._deletions(plan, entity, plan.confirmed_deletions.get(entity.value))
        yield Envelope.run_marker(dossier=self.dossier, run_id=plan.run_id, start=False,
                                  counts=self.counts.as_dict(), sent_at=self.sent_at)

    @staticmethod
    def _newest_start(previous: Optional[Watermark]) -> Optional[tuple[dt.datetime, int]]:
        if previous is None or previous.modified is None:
            return None
        return previous.modified, previous.marq or 0

    def _upserts(self, plan: RunPlan, entity: Entity, rows: Iterable[Any],
                 newest: Optional[tuple[dt.datetime, int]]):
        """Yield the upserts/invalids of the entity's `rows`; returns the newest (modified, marq) read.
        Rows repeating an older row's key (`_duplicate_copies`) go as incidents of their own."""
        name = entity.value
        # Copies are looked for once a row is read under a key never sent or sent from another
        # cbMarq: a cycle re-reading only rows sent as they are asks nothing of the source.
        copies = None
        for chunk in _chunks(rows, LOOKUP_CHUNK):
            keys = [row.key for row in chunk]
            shadow = self.checkpoint.shadow_lookup(self.dossier, name, keys)
            if copies is None and any(row.key not in shadow or shadow[row.key].marq != row.marq for row in chunk):
                copies = self._duplicate_copies(entity)
            if copies and any(copies.get(row.marq) == row.key for row in chunk):
                chunk = [self._as_copy(entity, row) if copies.get(row.marq) == row.key else row for row in chunk]
                keys = [row.key for row in chunk]
                shadow = self.checkpoint.shadow_lookup(self.dossier, name, keys)
            already = self.checkpoint.staged_keys(self.dossier, name, keys)
            if not plan.realignment and ALL_MARQS not in plan.checked.get(name, (ALL_MARQS,)):
                self.checkpoint.check_reused_marqs(self.dossier, name, [(row.marq, row.key) for row in chunk
                                                                        if row.key not in shadow])
            staged: list[StagedRecord] = []
            out: list[Envelope] = []
            for row in chunk:
                self.counts.read += 1
                if _sent_as_orphan(row):
                    self._orphans_seen.setdefault(name, set()).add(row.key)
                if row.modified is not None:
                    stamp = (row.modified, row.marq or 0)
                    if newest is None or stamp > newest:
                        newest = stamp
                if row.key in already:
                    continue
                already.add(row.key)
                envelope, record = self._compare(plan, name, row, shadow.get(row.key))
                if envelope is not None:
                    out.append(envelope)
                    staged.append(record)
            if staged:
                self.checkpoint.stage_records(self.dossier, staged)
            yield from out
        return newest

    def _orphans_adopted(self, plan: RunPlan, entity: Entity, newest: Optional[tuple[dt.datetime, int]]):
        """Rows last sent as orphans (a contact whose account Sage did not have) that this run
        neither read nor staged: their parent is back, maybe with an old cbModification (rows
        restored), so each is read again by its cbMarq; it syncs and its incident closes (its key is
        loaded: counted again in Sage's cbMarq sums, not in the agent's, its range differs). A row
        still an orphan was read (the source reports orphans in every read) and staged or skipped
        as unchanged: `orphans_seen` keeps it from being read twice."""
        read_span = getattr(self.source, "changed_between", None)
        if read_span is None:
            return newest
        seen = self._orphans_seen.pop(entity.value, set())
        for key, marq in self.checkpoint.orphan_rows(self.dossier, entity.value):
            if key not in seen:
                newest = yield from self._upserts(plan, entity, read_span(entity, marq - 1, marq), newest)
        return newest

    def _copies_left_alone(self, plan: RunPlan, entity: Entity) -> Iterator[Envelope | RenderedEnvelope]:
        """Among the keys gone from Sage, rows that repeated an older row's key: each is read again,
        since with the older row deleted it is that key's record now (not read otherwise when it
        did not change)."""
        read_span = getattr(self.source, "changed_between", None)
        if read_span is None:
            return
        marqs = [parsed[1] for key in self.checkpoint.deleted_keys(self.dossier, entity.value)
                 if (parsed := sage_rows.parse_row_key(key)) is not None and parsed[0]]
        for marq in marqs:
            yield from self._upserts(plan, entity, read_span(entity, marq - 1, marq), None)

    def _duplicate_copies(self, entity: Entity) -> dict[int, str]:
        """Rows repeating an older row's key (cbMarq → key), as the source's key read found them."""
        copies = getattr(self.source, "duplicate_copies", None)
        return copies(entity) if copies is not None else {}

    def _as_copy(self, entity: Entity, row: Any) -> Any:
        """A row repeating an older row's key: not synced, an incident of its own (keyed by its
        cbMarq) that closes once the row gets a key of its own or is deleted."""
        record = row.record or {}
        names = ", ".join(f"« {record[field]} »" for field in ("name", "last_name", "first_name", "account_key")
                          if record.get(field)) or text("sage_row.no_names")
        count = getattr(self.source, "copies_of", lambda *_: 0)(entity, row.key) or 2
        table = getattr(self.source, "table_of", lambda _: label("status.entity", entity.value))(entity)
        error = text("sage_row.duplicate", key=row.key, count=count, table=table,
                     marq=row.marq, names=names)
        return dataclasses.replace(row, key=sage_rows.row_key(row.marq, row.key), record_text=None, record_hash="",
                                   error=error, raw_hash=row.raw_hash or row.record_hash, warnings=None)

    def _compare(self, plan: RunPlan, entity: str, row: Any,
                 prior: Optional[ShadowEntry]) -> tuple[Optional[Envelope | RenderedEnvelope],
                                                        Optional[StagedRecord]]:
        """The envelope to send for one row (None when unchanged) and its staged shadow entry."""
        sent_valid = prior is not None and prior.sent_valid
        if row.record_text is None:
            if (not plan.realignment and prior is not None and prior.invalid and prior.hash == short_hash(row.raw_hash)
                    and prior.orphan == _sent_as_orphan(row)):
                self.counts.skipped_unchanged += 1
                return None, None
            error = row.error or message_text("sync.unreadable", record=record_name(entity, row.key))
            return self._invalid(plan, entity, row, error, sent_valid)
        text, record_hash = row.record_text, row.record_hash
        hashed = short_hash(record_hash)
        unchanged = prior is not None and not prior.invalid and prior.hash == hashed
        if unchanged and not plan.realignment:
            self.counts.skipped_unchanged += 1
            return None, None
        size = len(text) if text.isascii() else len(text.encode("utf-8"))
        if size > MAX_ENVELOPE_BYTES:
            return self._invalid(plan, entity, row,
                                 message_text("agent.too_large", record=record_name(entity, row.key),
                                              size=len(text) // 1024, limit=MAX_ENVELOPE_BYTES // 1024),
                                 sent_valid)
        if unchanged:
            self.counts.resent += 1
        elif sent_valid:
            self.counts.changed += 1
        else:
            self.counts.created += 1
        envelope = self._render_upsert(plan.run_id, entity, row, text, record_hash)
        return envelope, StagedRecord(entity, row.key, hashed, TrackState.VALID, row.modified, row.marq)

    def _render_upsert(self, run_id: str, entity: str, row: Any, record_text: str,
                       record_hash: str) -> Envelope | RenderedEnvelope:
        """The upsert in wire form; the run's first one is checked against pydantic's rendering."""
        if row.warnings is not None:     # synced without some of its values: the warnings travel with it
            return Envelope(v=WARNINGS_SINCE_VERSION, kind=EnvelopeKind.CHANGE, dossier=self.dossier, run_id=run_id,
                            entity=entity, key=row.key, op=Op.UPSERT, hash=record_hash, record=row.record,
                            sent_at=self.sent_at, warnings=json.loads(row.warnings))
        if not self._rendering_checked:
            self._rendering_checked = True
            model = Envelope(kind=EnvelopeKind.CHANGE, dossier=self.dossier, run_id=run_id, entity=entity,
                             key=row.key, op=Op.UPSERT, hash=record_hash, record=row.record, sent_at=self.sent_at)
            sent_at = model.model_dump(mode="json").get("sent_at")
            self._render_tail = (f',"run_id":{_text(run_id)}'
                                 + (f',"sent_at":{_text(sent_at)}' if sent_at is not None else "")
                                 + f',"v":{SCHEMA_VERSION}}}')
            self._render_fast = self._upsert_text(entity, row.key, record_text, record_hash) == model.to_json()
            if not self._render_fast:
                log.warning("upsert rendering differs from the envelope model's; using the model for this run")
                return model
        if not self._render_fast:
            return Envelope(kind=EnvelopeKind.CHANGE, dossier=self.dossier, run_id=run_id, entity=entity,
                            key=row.key, op=Op.UPSERT, hash=record_hash, record=row.record, sent_at=self.sent_at)
        return RenderedEnvelope(message_id(self.dossier, EnvelopeKind.CHANGE.value, entity, row.key,
                                           Op.UPSERT.value, record_hash),
                                self._upsert_text(entity, row.key, record_text, record_hash))

    def _upsert_text(self, entity: str, key: str, record_text: str, record_hash: str) -> str:
        head = self._render_heads.get(entity)
        if head is None:
            head = self._render_heads[entity] = f'{{"dossier":{_text(self.dossier)},"entity":{_text(entity)},"hash":"'
        return (f'{head}{record_hash}","key":{_text(key)},"kind":"change","op":"upsert","record":{record_text}'
                f'{self._render_tail}')

    def _invalid(self, plan: RunPlan, entity: str, row: Any, error: str,
                 sent_valid: bool) -> tuple[Envelope, StagedRecord]:
        self.counts.invalid += 1
        envelope = Envelope.invalid(dossier=self.dossier, run_id=plan.run_id, entity=entity, key=row.key,
                                    error=bounded_error(error), raw_hash=row.raw_hash, sent_at=self.sent_at)
        raw_hash = row.raw_hash or hashlib.sha256(error.encode("utf-8")).hexdigest()
        if _sent_as_orphan(row):
            state = TrackState.ORPHAN_AFTER_VALID if sent_valid else TrackState.ORPHAN
        else:
            state = TrackState.INVALID_AFTER_VALID if sent_valid else TrackState.INVALID
        return envelope, StagedRecord(entity, row.key, short_hash(raw_hash), state, row.modified, row.marq)

    def _deletions(self, plan: RunPlan, entity: Entity, confirmed_at: Optional[str]) -> Iterator[Envelope]:
        """The entity's deletions, unless they are a mass deletion the user has not confirmed."""
        name = entity.value
        if confirmed_at is not None:
            self.confirmations_used[name] = confirmed_at
        unconfirmed = self.checkpoint.count_deleted_keys(self.dossier, name,
                                                         held=False if confirmed_at is not None else None)
        if unconfirmed:
            yield from self._copies_left_alone(plan, entity)
        records = self.checkpoint.shadow_size(self.dossier, name) if unconfirmed else 0
        if not self.deletion_guard.holds(unconfirmed, records):
            yield from self._send_deletions(plan, name, held=None)
            return
        self.checkpoint.stage_held_deletions(self.dossier, name)
        hold = DeletionHold(self.dossier, name, unconfirmed, records, plan.run_id, utc_text())
        self.holds.append(hold)
        self.counts.deletions_held += unconfirmed
        if confirmed_at is not None:
            yield from self._send_deletions(plan, name, held=True)

    def _send_deletions(self, plan: RunPlan, name: str, held: Optional[bool]) -> Iterator[Envelope]:
        for keys in _chunks(self.checkpoint.deleted_keys(self.dossier, name, held=held), DELETE_CHUNK):
            self.checkpoint.stage_records(self.dossier, [StagedRecord(name, key, b"", TrackState.VALID, None, None,
                                                                      deleted=True) for key in keys])
            self.counts.deleted += len(keys)
            for key in keys:
                yield Envelope.change(dossier=self.dossier, run_id=plan.run_id, entity=name, key=key, record=None,
                                      sent_at=self.sent_at)
