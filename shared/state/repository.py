"""The typed state store: dossiers, links, cursors, runs, journal and incidents over a `TableStore`.

Every record but a dossier lives in its dossier's partition, so nothing of one dossier can touch
another's. Rows are laid out for the reads the sync and the status page make:

- `dossiers`: PartitionKey "group", RowKey the dossier id.
- `links`: RowKey `link|<entity>|<sage key>`, and beside it, in the same partition and written
  in the same transaction, the reverse index `ssm|<entity>|<ssm id>` → sage key. (Table Storage
  transactions cover one table, so the index lives in the links table itself.)
- `cursors`: RowKey the cursor name.
- `runs`: RowKey `at|<inverted start time>|<run id>` (newest first) and a pointer row
  `id|<run id>` with the same content, both written in one transaction, so `get_run` is one read.
- `journal`: RowKey `<inverted time>|<sequence>`: newest first.
- `incidents`: RowKey `<entity>|<key>|<operation>`.
- `checks`: PartitionKey "group", RowKey `tenant`: the last tenant check (`ssm-connector check-tenant`);
  PartitionKey the dossier, RowKey `preview`: the dossier's last realignment preview.
- `adoptions`: RowKey `<entity>|<sage key>`: a Sage record held back from creation until the
  administrator says which SSM record it is, or that it is new (`shared.sync.adopter`).

Key components go through `shared.keys`, so any Sage key is a legal RowKey. Dict and list fields
are canonical JSON, split across `<name>_0`, `<name>_1`… when longer than one property may hold;
enums are stored as their value; datetimes in UTC. Writes that must not be lost to a concurrent
writer are guarded by ETags and raise `ConcurrencyError`: the caller re-reads and tries again.
"""
from __future__ import annotations

import datetime as dt
import itertools
import json
import typing
import uuid
from enum import Enum
from typing import Any, Callable, Iterator, Optional, TypeVar

from shared.messages import text
from shared.envelope import canonical_json
from shared.errors import AlreadyExistsError, ConcurrencyError, NotFoundError
from shared.keys import SEPARATOR, encode_key, row_key
from shared.state.limits import utf16_length
from shared.state.protocol import OperationKind, TableEntity, TableOperation, TableStore
from shared.state.records import (
    Adoption,
    Cursor,
    Dossier,
    Incident,
    IncidentState,
    JournalEntry,
    Link,
    Run,
    utcnow,
)

DOSSIERS, LINKS, CURSORS, RUNS, JOURNAL, INCIDENTS = "dossiers", "links", "cursors", "runs", "journal", "incidents"
CHECKS = "checks"
ADOPTIONS = "adoptions"
TABLES = (DOSSIERS, LINKS, CURSORS, RUNS, JOURNAL, INCIDENTS, CHECKS, ADOPTIONS)
GROUP_PARTITION = "group"
JSON_CHUNK_UNITS = 30_000
MAX_WRITE_ATTEMPTS = 10
MAX_INCIDENT_TEXT = 16_000
_LINK, _BY_SSM_ID = "link", "ssm"
_RUN_BY_TIME, _RUN_BY_ID = "at", "id"
_TENANT_CHECK = "tenant"
_PREVIEW = "preview"
_TIME_ORIGIN = dt.datetime(1, 1, 1, tzinfo=dt.timezone.utc)
_INVERTED_TIME_CEILING = 10**18 - 1
_journal_sequence = itertools.count()

R = TypeVar("R", Dossier, Link, Cursor, Run, JournalEntry, Incident, Adoption)


# --- record ⇄ entity ---------------------------------------------------------------------------
def _is_json_field(annotation: Any) -> bool:
    if typing.get_origin(annotation) in (dict, list) or annotation in (dict, list):
        return True
    return False


def _json_chunks(text: str) -> list[str]:
    """`text` cut into pieces of at most JSON_CHUNK_UNITS UTF-16 units, never inside a character."""
    chunks, start = [], 0
    while start < len(text):
        end = min(len(text), start + JSON_CHUNK_UNITS)
        while utf16_length(text[start:end]) > JSON_CHUNK_UNITS:
            end -= max(1, (utf16_length(text[start:end]) - JSON_CHUNK_UNITS) // 2)
        chunks.append(text[start:end])
        start = end
    return chunks


def _json_properties(name: str, value: Any) -> dict[str, str]:
    text = canonical_json(value)
    if utf16_length(text) <= JSON_CHUNK_UNITS:
        return {name: text}
    return {f"{name}_{i}": chunk for i, chunk in enumerate(_json_chunks(text))}


def _read_json(name: str, data: dict[str, Any]) -> Optional[Any]:
    if name in data:
        return json.loads(data[name])
    parts = list(itertools.takewhile(lambda p: p is not None, (data.get(f"{name}_{i}") for i in itertools.count())))
    return json.loads("".join(parts)) if parts else None


def _utc(value: dt.datetime) -> dt.datetime:
    return value.astimezone(dt.timezone.utc) if value.tzinfo is not None else value


def to_properties(record: R) -> dict[str, Any]:
    """The entity properties of a record (its ETag excluded)."""
    properties: dict[str, Any] = {}
    for name, field in type(record).model_fields.items():
        if name == "etag":
            continue
        value = getattr(record, name)
        if _is_json_field(field.annotation):
            properties.update(_json_properties(name, value))
        elif isinstance(value, Enum):
            properties[name] = value.value
        elif isinstance(value, dt.datetime):
            properties[name] = _utc(value)
        else:
            properties[name] = value
    return properties


def from_entity(model: type[R], entity: TableEntity) -> R:
    """The record stored in `entity`, carrying the entity's ETag."""
    values: dict[str, Any] = {}
    for name, field in model.model_fields.items():
        if name == "etag":
            continue
        if _is_json_field(field.annotation):
            value = _read_json(name, entity.data)
            if value is not None:
                values[name] = value
        elif entity.data.get(name) is not None:
            values[name] = entity.data[name]
    record = model.model_validate(values)
    record.etag = entity.etag
    return record


def _clip(text: Optional[str]) -> Optional[str]:
    if text is None or len(text) <= MAX_INCIDENT_TEXT:
        return text
    return text[:MAX_INCIDENT_TEXT - 1] + "…"


def _partition(dossier: str) -> str:
    return encode_key(dossier)


def _prefix(*parts: str) -> str:
    return row_key(*parts) + SEPARATOR


def _inverted_time(at: dt.datetime) -> str:
    """Digits that sort newest first."""
    elapsed = (_utc(at) - _TIME_ORIGIN) // dt.timedelta(microseconds=1)
    return f"{_INVERTED_TIME_CEILING - elapsed:018d}"


class StateStore:
    """Typed access to the per-dossier state, over any `TableStore`.

    Args:
        tables: the backend (SQLite locally, Azure Table Storage in the cloud).
        clock: the current time (UTC), injectable for tests.
    """

    def __init__(self, tables: TableStore, *, clock: Callable[[], dt.datetime] = utcnow):
        self.tables = tables
        self.clock = clock

    def ensure_tables(self) -> None:
        for table in TABLES:
            self.tables.ensure_table(table)

    def close(self) -> None:
        self.tables.close()

    # --- dossiers ---------------------------------------------------------------------------
    def _dossier_entity(self, d: Dossier) -> TableEntity:
        return TableEntity(GROUP_PARTITION, encode_key(d.id), to_properties(d))

    def create_dossier(self, d: Dossier) -> Dossier:
        """Raises `AlreadyExistsError` when a dossier with this id exists."""
        try:
            stored = self.tables.insert(DOSSIERS, self._dossier_entity(d))
        except AlreadyExistsError as error:
            raise AlreadyExistsError(text("store.dossier_exists", dossier=d.id), detail=error.detail) from error
        return d.model_copy(update={"etag": stored.etag})

    def upsert_dossier(self, d: Dossier) -> Dossier:
        """Create or replace; with `d.etag`, only if unchanged since read (else `ConcurrencyError`)."""
        entity = self._dossier_entity(d)
        if d.etag is None:
            stored = self.tables.upsert(DOSSIERS, entity)
        else:
            try:
                stored = self.tables.update(DOSSIERS, entity, etag=d.etag)
            except NotFoundError as error:
                raise ConcurrencyError(text("store.dossier_deleted", dossier=d.id), detail=error.detail) from error
        return d.model_copy(update={"etag": stored.etag})

    def get_dossier(self, dossier_id: str) -> Dossier:
        d = self.try_get_dossier(dossier_id)
        if d is None:
            raise NotFoundError(text("status.dossier.unknown", dossier=dossier_id))
        return d

    def try_get_dossier(self, dossier_id: str) -> Optional[Dossier]:
        entity = self.tables.try_get(DOSSIERS, GROUP_PARTITION, encode_key(dossier_id))
        return None if entity is None else from_entity(Dossier, entity)

    def list_dossiers(self) -> list[Dossier]:
        return [from_entity(Dossier, e) for e in self.tables.query(DOSSIERS, GROUP_PARTITION)]

    # --- links --------------------------------------------------------------------------------
    @staticmethod
    def _link_key(entity: str, sage_key: str) -> str:
        return row_key(_LINK, entity, sage_key)

    @staticmethod
    def _index_key(entity: str, ssm_id: int) -> str:
        return row_key(_BY_SSM_ID, entity, str(ssm_id))

    def get_link(self, dossier: str, entity: str, sage_key: str) -> Optional[Link]:
        stored = self.tables.try_get(LINKS, _partition(dossier), self._link_key(entity, sage_key))
        return None if stored is None else from_entity(Link, stored)

    def get_link_by_ssm_id(self, dossier: str, entity: str, ssm_id: int) -> Optional[Link]:
        index = self.tables.try_get(LINKS, _partition(dossier), self._index_key(entity, ssm_id))
        if index is None:
            return None
        link = self.get_link(dossier, entity, index.data["sage_key"])
        return link if link is not None and link.ssm_id == ssm_id else None

    def _stale_index_deletion(self, dossier: str, entity: str, sage_key: str,
                              ssm_id: Optional[int]) -> list[TableOperation]:
        """The deletion of the index row of `ssm_id` when it still points to this link."""
        if ssm_id is None:
            return []
        index = self.tables.try_get(LINKS, _partition(dossier), self._index_key(entity, ssm_id))
        if index is None or index.data.get("sage_key") != sage_key:
            return []
        return [TableOperation(OperationKind.DELETE, TableEntity(index.partition_key, index.row_key), index.etag)]

    def save_link(self, link: Link) -> Link:
        """Insert (no etag) or conditionally replace (etag from a read) a link and its index row.

        Raises `ConcurrencyError` when another writer created, changed or deleted the link first:
        re-read it and decide again. Returns the link with its new ETag and `updated_at`.
        """
        link = link.model_copy(update={"updated_at": self.clock()})
        pk = _partition(link.dossier)
        entity = TableEntity(pk, self._link_key(link.entity, link.sage_key), to_properties(link))
        operations: list[TableOperation] = []
        if link.etag is None:
            operations.append(TableOperation(OperationKind.INSERT, entity))
        else:
            current = self.tables.try_get(LINKS, pk, entity.row_key)
            if current is None or current.etag != link.etag:
                raise ConcurrencyError(text("store.changed"),
                                       detail=f"{link.dossier} {link.entity} {link.sage_key}")
            operations.append(TableOperation(OperationKind.UPDATE, entity, link.etag))
            previous_ssm_id = current.data.get("ssm_id")
            if previous_ssm_id != link.ssm_id:
                operations += self._stale_index_deletion(link.dossier, link.entity, link.sage_key, previous_ssm_id)
        if link.ssm_id is not None:
            index = TableEntity(pk, self._index_key(link.entity, link.ssm_id),
                                {"entity": link.entity, "ssm_id": link.ssm_id, "sage_key": link.sage_key})
            operations.append(TableOperation(OperationKind.UPSERT, index))
        try:
            etags = self.tables.transact(LINKS, pk, operations)
        except (AlreadyExistsError, NotFoundError) as error:
            raise ConcurrencyError(text("store.changed_or_deleted"),
                                   detail=error.detail) from error
        return link.model_copy(update={"etag": etags[0]})

    def delete_link(self, link: Link) -> None:
        """Delete a link and its index row; with `link.etag`, only if unchanged since read."""
        pk = _partition(link.dossier)
        rk = self._link_key(link.entity, link.sage_key)
        for _ in range(MAX_WRITE_ATTEMPTS):
            current = self.tables.try_get(LINKS, pk, rk)
            if current is None:
                if link.etag is not None:
                    raise ConcurrencyError(text("store.deleted"),
                                           detail=f"{link.dossier} {link.entity} {link.sage_key}")
                return
            operations = [TableOperation(OperationKind.DELETE, TableEntity(pk, rk), link.etag or current.etag)]
            operations += self._stale_index_deletion(link.dossier, link.entity, link.sage_key,
                                                     current.data.get("ssm_id"))
            try:
                self.tables.transact(LINKS, pk, operations)
                return
            except ConcurrencyError:
                if link.etag is not None:
                    raise
        raise ConcurrencyError(text("store.busy_writers", what=text("store.what.link")),
                               detail=f"{link.dossier} {link.entity} {link.sage_key}")

    def list_links(self, dossier: str, entity: Optional[str] = None) -> Iterator[Link]:
        prefix = _prefix(_LINK, entity) if entity is not None else _prefix(_LINK)
        return (from_entity(Link, e) for e in self.tables.query(LINKS, _partition(dossier), prefix=prefix))

    # --- cursors -----------------------------------------------------------------------------
    def get_cursor(self, dossier: str, name: str) -> Optional[Cursor]:
        stored = self.tables.try_get(CURSORS, _partition(dossier), encode_key(name))
        return None if stored is None else from_entity(Cursor, stored)

    def list_cursors(self, dossier: str, prefix: str) -> list[Cursor]:
        """The dossier's cursors whose name starts with `prefix`."""
        return [from_entity(Cursor, e) for e in self.tables.query(CURSORS, _partition(dossier),
                                                                   prefix=encode_key(prefix))]

    def save_cursor(self, c: Cursor) -> Cursor:
        """Insert (no etag) or conditionally replace (etag from `get_cursor`); `ConcurrencyError`
        when another writer got there first."""
        c = c.model_copy(update={"updated_at": self.clock()})
        entity = TableEntity(_partition(c.dossier), encode_key(c.name), to_properties(c))
        try:
            if c.etag is None:
                stored = self.tables.insert(CURSORS, entity)
            else:
                stored = self.tables.update(CURSORS, entity, etag=c.etag)
        except (AlreadyExistsError, NotFoundError) as error:
            raise ConcurrencyError(text("store.changed"), detail=error.detail) from error
        return c.model_copy(update={"etag": stored.etag})

    # --- runs ----------------------------------------------------------------------------------
    @staticmethod
    def _run_order_key(run: Run) -> str:
        return row_key(_RUN_BY_TIME, _inverted_time(run.started_at), run.run_id)

    def save_run(self, run: Run) -> Run:
        """Write a run (unconditionally without etag; with one, only if unchanged since `get_run`)."""
        pk = _partition(run.dossier)
        pointer_key = row_key(_RUN_BY_ID, run.run_id)
        order_key = self._run_order_key(run)
        current = self.tables.try_get(RUNS, pk, pointer_key)
        if run.etag is not None and (current is None or current.etag != run.etag):
            raise ConcurrencyError(text("store.changed"), detail=f"{run.dossier} {run.run_id}")
        properties = to_properties(run)
        pointer = TableEntity(pk, pointer_key, {**properties, "order_key": order_key})
        operations = [
            TableOperation(OperationKind.UPDATE, pointer, run.etag) if run.etag is not None
            else TableOperation(OperationKind.UPSERT, pointer),
            TableOperation(OperationKind.UPSERT, TableEntity(pk, order_key, properties)),
        ]
        previous_order_key = current.data.get("order_key") if current is not None else None
        if previous_order_key and previous_order_key != order_key:
            operations.append(TableOperation(OperationKind.DELETE, TableEntity(pk, previous_order_key)))
        try:
            etags = self.tables.transact(RUNS, pk, operations)
        except NotFoundError as error:
            raise ConcurrencyError(text("store.deleted"), detail=error.detail) from error
        return run.model_copy(update={"etag": etags[0]})

    def get_run(self, dossier: str, run_id: str) -> Optional[Run]:
        stored = self.tables.try_get(RUNS, _partition(dossier), row_key(_RUN_BY_ID, run_id))
        return None if stored is None else from_entity(Run, stored)

    def list_runs(self, dossier: str, limit: int = 20) -> list[Run]:
        """The latest runs, newest first. They carry no ETag (use `get_run` before a guarded save)."""
        rows = self.tables.query(RUNS, _partition(dossier), prefix=_prefix(_RUN_BY_TIME), limit=limit)
        return [from_entity(Run, TableEntity(e.partition_key, e.row_key, e.data)) for e in rows]

    # --- journal -------------------------------------------------------------------------------
    def append_journal(self, e: JournalEntry) -> None:
        sequence = _INVERTED_TIME_CEILING - next(_journal_sequence)
        key = f"{_inverted_time(e.at)}{SEPARATOR}{sequence:018d}{uuid.uuid4().hex[:8]}"
        self.tables.insert(JOURNAL, TableEntity(_partition(e.dossier), key, to_properties(e)))

    def list_journal(self, dossier: str, limit: int = 100, entity: Optional[str] = None,
                     event: Optional[str] = None) -> list[JournalEntry]:
        """The latest entries, newest first, optionally of one entity and/or one event."""
        entries: list[JournalEntry] = []
        if limit <= 0:
            return entries
        unfiltered = entity is None and event is None
        for stored in self.tables.query(JOURNAL, _partition(dossier), limit=limit if unfiltered else None):
            entry = from_entity(JournalEntry, stored)
            if (entity is None or entry.entity == entity) and (event is None or entry.event == event):
                entries.append(entry)
                if len(entries) >= limit:
                    break
        return entries

    # --- incidents -----------------------------------------------------------------------------
    @staticmethod
    def _incident_key(entity: str, key: str, operation: str) -> str:
        return row_key(entity, key, operation)

    def get_incident(self, dossier: str, entity: str, key: str, operation: str) -> Optional[Incident]:
        stored = self.tables.try_get(INCIDENTS, _partition(dossier), self._incident_key(entity, key, operation))
        return None if stored is None else from_entity(Incident, stored)

    def _write_incident(self, incident: Incident) -> Incident:
        entity = TableEntity(_partition(incident.dossier),
                             self._incident_key(incident.entity, incident.key, incident.operation),
                             to_properties(incident))
        if incident.etag is None:
            stored = self.tables.insert(INCIDENTS, entity)
        else:
            stored = self.tables.update(INCIDENTS, entity, etag=incident.etag)
        return incident.model_copy(update={"etag": stored.etag})

    def record_incident(self, dossier: str, entity: str, key: str, operation: str, message: str,
                        detail: Optional[str] = None, next_attempt_at: Optional[dt.datetime] = None,
                        dead_lettered: bool = False, parked: Optional[dict] = None,
                        replay_at: Optional[dt.datetime] = None, waiting_for: Optional[str] = None) -> Incident:
        """Record that a record failed to sync.

        A new incident starts at one attempt. An open one gets one more attempt, `last_seen`
        now, and the new message, detail, next attempt and dead-letter flag. A resolved one
        opens again as a new episode: attempts back to 1 and `first_seen` now, so the backoff
        and dead-letter count start afresh. The parked change is the one given, or none: a
        failure recorded afresh supersedes what was parked before. Message and detail are cut to
        MAX_INCIDENT_TEXT characters, so an incident is always recordable.
        """
        message, detail = _clip(message), _clip(detail)
        for _ in range(MAX_WRITE_ATTEMPTS):
            now = self.clock()
            current = self.get_incident(dossier, entity, key, operation)
            changes = dict(message=message, detail=detail, last_seen=now, next_attempt_at=next_attempt_at,
                           dead_lettered=dead_lettered, state=IncidentState.OPEN, resolved_at=None,
                           parked=parked or {}, replay_at=replay_at if parked else None, replays=0,
                           waiting_for=waiting_for if parked else None)
            if current is None:
                incident = Incident(dossier=dossier, entity=entity, key=key, operation=operation,
                                    first_seen=now, attempts=1, **changes)
            elif current.state is IncidentState.OPEN:
                incident = current.model_copy(update={**changes, "attempts": current.attempts + 1})
            else:
                incident = current.model_copy(update={**changes, "attempts": 1, "first_seen": now})
            try:
                return self._write_incident(incident)
            except (AlreadyExistsError, ConcurrencyError, NotFoundError):
                continue
        raise ConcurrencyError(text("store.busy_writers", what=text("store.what.incident")),
                               detail=f"{dossier} {entity} {key} {operation}")

    def repark_incident(self, incident: Incident, *, replay_at: Optional[dt.datetime],
                        message: Optional[str] = None) -> bool:
        """Park `incident`'s change again until `replay_at`, one replay more, tried now (`last_seen`),
        even if a failure recorded meanwhile dropped it (None: never again, the change is dropped).
        False when the incident is no longer open."""
        changes = {"parked": incident.parked if replay_at is not None else {}, "replay_at": replay_at,
                   "replays": incident.replays + 1, "dead_lettered": True,
                   "waiting_for": incident.waiting_for if replay_at is not None else None}
        if message is not None:
            changes["message"] = _clip(message)
        return self._update_open_incident(incident.dossier, incident.entity, incident.key, incident.operation,
                                          lambda: {**changes, "last_seen": self.clock()}, "updated")

    def resolve_incident(self, dossier: str, entity: str, key: str, operation: str) -> bool:
        """Mark an open incident resolved; True if there was one."""
        return self._update_open_incident(dossier, entity, key, operation, lambda: {
            "state": IncidentState.RESOLVED, "resolved_at": self.clock(), "next_attempt_at": None}, "resolved")

    def _update_open_incident(self, dossier: str, entity: str, key: str, operation: str,
                              changes: Callable[[], dict[str, Any]], done: str) -> bool:
        """Apply `changes()` to an open incident under its ETag, again on a concurrent write;
        False when there is no open incident."""
        for _ in range(MAX_WRITE_ATTEMPTS):
            current = self.get_incident(dossier, entity, key, operation)
            if current is None or current.state is not IncidentState.OPEN:
                return False
            try:
                self._write_incident(current.model_copy(update=changes()))
                return True
            except (ConcurrencyError, NotFoundError):
                continue
        raise ConcurrencyError(text("store.busy_writers", what=text("store.what.incident")),
                               detail=f"{dossier} {entity} {key} {operation}")

    def resolve_incidents_for(self, dossier: str, entity: str, key: str) -> int:
        """Resolve the open incidents of one record, whatever the operation; how many were."""
        open_ones = self.open_incidents_of(dossier, entity, key)
        return sum(self.resolve_incident(dossier, i.entity, i.key, i.operation) for i in open_ones)

    def open_incidents_of(self, dossier: str, entity: str, key: str) -> list[Incident]:
        """The open incidents of one record, whatever the operation."""
        return [i for i in self._incidents(dossier, _prefix(entity, key))
                if i.state is IncidentState.OPEN and (i.entity, i.key) == (entity, key)]

    def list_incidents(self, dossier: str, entity: Optional[str] = None,
                       state: Optional[IncidentState] = None) -> list[Incident]:
        prefix = _prefix(entity) if entity is not None else None
        return [i for i in self._incidents(dossier, prefix) if state is None or i.state is IncidentState(state)]

    def _incidents(self, dossier: str, prefix: Optional[str]) -> Iterator[Incident]:
        return (from_entity(Incident, e) for e in self.tables.query(INCIDENTS, _partition(dossier), prefix=prefix))

    # --- tenant check ------------------------------------------------------------------------
    def save_tenant_check(self, report: dict[str, Any]) -> None:
        """Keep `report` (a tenant report's JSON form) as the group's last tenant check."""
        properties = {"checked_at": self.clock(), **_json_properties("report", report)}
        self.tables.upsert(CHECKS, TableEntity(GROUP_PARTITION, _TENANT_CHECK, properties))

    def last_tenant_check(self) -> Optional[dict[str, Any]]:
        """The last tenant report saved, None when there is none (or the table predates it)."""
        try:
            stored = self.tables.try_get(CHECKS, GROUP_PARTITION, _TENANT_CHECK)
        except NotFoundError:
            return None
        return None if stored is None else _read_json("report", stored.data)

    # --- realignment preview and adoptions ----------------------------------------------------
    def save_preview(self, dossier: str, report: dict[str, Any]) -> None:
        """Keep `report` (a realignment preview's JSON form) as the dossier's last preview."""
        properties = {"checked_at": self.clock(), **_json_properties("report", report)}
        self.tables.upsert(CHECKS, TableEntity(_partition(dossier), _PREVIEW, properties))

    def last_preview(self, dossier: str) -> Optional[dict[str, Any]]:
        """The dossier's last preview, None when there is none."""
        try:
            stored = self.tables.try_get(CHECKS, _partition(dossier), _PREVIEW)
        except NotFoundError:
            return None
        return None if stored is None else _read_json("report", stored.data)

    def get_adoption(self, dossier: str, entity: str, sage_key: str) -> Optional[Adoption]:
        try:
            stored = self.tables.try_get(ADOPTIONS, _partition(dossier), row_key(entity, sage_key))
        except NotFoundError:           # a store whose tables predate adoptions holds none
            return None
        return None if stored is None else from_entity(Adoption, stored)

    def save_adoption(self, adoption: Adoption) -> Adoption:
        """Insert (no etag) or conditionally replace; `ConcurrencyError` when another writer got there first."""
        entity = TableEntity(_partition(adoption.dossier), row_key(adoption.entity, adoption.sage_key),
                             to_properties(adoption))
        try:
            if adoption.etag is None:
                stored = self.tables.insert(ADOPTIONS, entity)
            else:
                stored = self.tables.update(ADOPTIONS, entity, etag=adoption.etag)
        except (AlreadyExistsError, NotFoundError) as error:
            raise ConcurrencyError("Another process changed this adoption first.", detail=error.detail) from error
        return adoption.model_copy(update={"etag": stored.etag})

    def delete_adoption(self, adoption: Adoption) -> None:
        """Delete an adoption row (already gone: nothing)."""
        self.tables.delete(ADOPTIONS, _partition(adoption.dossier), row_key(adoption.entity, adoption.sage_key))

    def list_adoptions(self, dossier: str) -> list[Adoption]:
        try:
            return [from_entity(Adoption, e) for e in self.tables.query(ADOPTIONS, _partition(dossier))]
        except NotFoundError:
            return []
