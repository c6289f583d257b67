"""The SQLite table store: Table Storage's semantics in one local file (the embedded default).

One SQLite file holds every table. Writes run in `BEGIN IMMEDIATE` transactions in WAL mode
with full sync (`synchronous = FULL`): a write is acknowledged only once it is on disk, as the
bus's acknowledgement of the message that caused it is, so no power cut can keep the one and
lose the other (a link lost after its SSM record was created would create it twice). The cost
of that sync is shared: the writes the threads of a process ask for at the same time are
committed together (*group commit*, at most `MAX_TRANSACTION_OPERATIONS` operations per commit),
each still all-or-nothing in a savepoint of its own, and each caller returns once the commit is
on disk. Reads go through one connection per thread and never wait for a writer (WAL). A busy
timeout lets several processes share the file.
Rows sort by RowKey in Table Storage's order (UTF-16 code units), values keep their exact type,
and every write gives the entity a new opaque ETag. Limits are checked before writing, exactly
as the Azure adapter does.
"""
from __future__ import annotations

import contextlib
import datetime as dt
import json
import math
import sqlite3
import threading
import uuid
from pathlib import Path
from typing import Any, Callable, Iterator, Optional

from shared.messages import text
from shared.errors import AlreadyExistsError, ConcurrencyError, NotFoundError
from shared.state.limits import (
    check_entity,
    check_key,
    check_table_name,
    check_transaction,
    prefix_upper_bound,
    sort_key,
)
from shared.state.protocol import MAX_TRANSACTION_OPERATIONS, OperationKind, TableEntity, TableOperation

BUSY_TIMEOUT_MS = 30_000
# Group commits made by every store of this process, and the writes they held (for the benchmarks).
COMMITS_MADE = {"commits": 0, "writes": 0}
QUERY_PAGE_ROWS = 500

_SCHEMA = (
    "CREATE TABLE IF NOT EXISTS tables (name TEXT PRIMARY KEY)",
    """CREATE TABLE IF NOT EXISTS entities (
    table_name TEXT NOT NULL,
    partition_key TEXT NOT NULL,
    row_order BLOB NOT NULL,
    row_key TEXT NOT NULL,
    data TEXT NOT NULL,
    etag TEXT NOT NULL,
    PRIMARY KEY (table_name, partition_key, row_order)
) WITHOUT ROWID""",
)


def _new_etag() -> str:
    stamp = dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    return f'W/"datetime\'{stamp}\';{uuid.uuid4().hex[:12]}"'


def _encode_value(value: Any) -> Any:
    if isinstance(value, dt.datetime):
        return {"datetime": value.astimezone(dt.timezone.utc).isoformat()}
    if isinstance(value, float) and not math.isfinite(value):
        return {"double": repr(value)}
    return value


def _decode_value(value: Any) -> Any:
    if isinstance(value, dict):
        if "datetime" in value:
            return dt.datetime.fromisoformat(value["datetime"])
        return float(value["double"])
    return value


def _encode_data(data: dict[str, Any]) -> str:
    return json.dumps({name: _encode_value(value) for name, value in data.items() if value is not None},
                      ensure_ascii=False, separators=(",", ":"))


def _decode_data(text: str) -> dict[str, Any]:
    return {name: _decode_value(value) for name, value in json.loads(text).items()}


class SqliteTableStore:
    """`TableStore` over one SQLite file (or `":memory:"` for a throw-away store)."""

    def __init__(self, path: str | Path):
        path = str(path)
        if path != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self._lock = threading.RLock()
        self._conn = sqlite3.connect(path, timeout=BUSY_TIMEOUT_MS / 1000, isolation_level=None,
                                     check_same_thread=False)
        self._conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
        if path != ":memory:":
            self._conn.execute("PRAGMA journal_mode = WAL")
        self._conn.execute("PRAGMA synchronous = FULL")
        with self._write() as conn:
            for statement in _SCHEMA:
                conn.execute(statement)
        self._known_tables: set[str] = set()
        self._queue: list[_Pending] = []
        self._queue_lock = threading.Lock()
        self._readers = threading.local()
        self._reader_connections: list[sqlite3.Connection] = []
        self.commits = 0            # group commits made, and the writes they held (for the benchmarks)
        self.writes = 0

    # --- plumbing -------------------------------------------------------------------------
    def _write(self):
        return _WriteTransaction(self._conn, self._lock)

    @contextlib.contextmanager
    def _reading(self) -> Iterator[sqlite3.Connection]:
        """This thread's read connection (the shared one, behind the lock, for `:memory:`)."""
        if self.path == ":memory:":
            with self._lock:
                yield self._conn
            return
        conn = getattr(self._readers, "conn", None)
        if conn is None:
            conn = sqlite3.connect(self.path, timeout=BUSY_TIMEOUT_MS / 1000, isolation_level=None,
                                   check_same_thread=False)
            conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
            self._readers.conn = conn
            with self._queue_lock:
                self._reader_connections.append(conn)
        yield conn

    def _grouped(self, operations: int, work: Callable[[sqlite3.Connection], Any]) -> Any:
        """Run `work(conn)` all or nothing, in a commit shared with the writes other threads ask
        for meanwhile; returns its result (or raises its error) once the commit is on disk."""
        item = _Pending(operations, work)
        with self._queue_lock:
            self._queue.append(item)
        while not item.done:
            with self._lock:
                if item.done:
                    break
                with self._queue_lock:
                    group, size = [], 0
                    while self._queue and (not group or size + self._queue[0].operations <= MAX_TRANSACTION_OPERATIONS):
                        size += self._queue[0].operations
                        group.append(self._queue.pop(0))
                self._commit(group)
        if item.error is not None:
            raise item.error
        return item.result

    def _commit(self, group: list["_Pending"]) -> None:
        conn = self._conn
        try:
            conn.execute("BEGIN IMMEDIATE")
            for item in group:
                conn.execute("SAVEPOINT one_write")
                try:
                    item.result = item.work(conn)
                except BaseException as exc:          # this write alone is undone; the others go on
                    conn.execute("ROLLBACK TO one_write")
                    item.error = exc
                conn.execute("RELEASE one_write")
            conn.execute("COMMIT")
            self.commits += 1
            self.writes += len(group)
            COMMITS_MADE["commits"] += 1
            COMMITS_MADE["writes"] += len(group)
        except BaseException as exc:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            for item in group:
                if item.error is None:
                    item.result, item.error = None, exc
        finally:
            for item in group:
                item.done = True

    def _require_table(self, table: str) -> None:
        check_table_name(table)
        if table in self._known_tables:
            return
        with self._reading() as conn:
            row = conn.execute("SELECT 1 FROM tables WHERE name = ?", (table,)).fetchone()
        if row is None:
            raise NotFoundError(text("store.no_table", table=table), detail="TableNotFound")
        self._known_tables.add(table)

    @staticmethod
    def _row(conn: sqlite3.Connection, table: str, pk: str, rk: str) -> Optional[tuple[str, str]]:
        return conn.execute(
            "SELECT data, etag FROM entities WHERE table_name = ? AND partition_key = ? AND row_order = ?",
            (table, pk, sort_key(rk))).fetchone()

    @staticmethod
    def _store(conn: sqlite3.Connection, table: str, entity: TableEntity) -> TableEntity:
        etag = _new_etag()
        conn.execute(
            "INSERT OR REPLACE INTO entities (table_name, partition_key, row_order, row_key, data, etag) "
            "VALUES (?, ?, ?, ?, ?, ?)",
            (table, entity.partition_key, sort_key(entity.row_key), entity.row_key,
             _encode_data(entity.data), etag))
        return TableEntity(entity.partition_key, entity.row_key,
                           {k: v for k, v in entity.data.items() if v is not None}, etag)

    @staticmethod
    def _remove(conn: sqlite3.Connection, table: str, pk: str, rk: str) -> None:
        conn.execute("DELETE FROM entities WHERE table_name = ? AND partition_key = ? AND row_order = ?",
                     (table, pk, sort_key(rk)))

    def _apply(self, conn: sqlite3.Connection, table: str, op: TableOperation) -> Optional[str]:
        entity = op.entity
        pk, rk = entity.partition_key, entity.row_key
        where = f"table '{table}', PartitionKey '{pk}', RowKey '{rk}'"
        current = self._row(conn, table, pk, rk)
        if op.kind is OperationKind.INSERT:
            if current is not None:
                raise AlreadyExistsError(text("store.exists"), detail=where)
        elif op.kind is OperationKind.UPDATE:
            if current is None:
                raise NotFoundError(text("store.missing"), detail=where)
            if op.etag is not None and current[1] != op.etag:
                raise ConcurrencyError(text("store.changed"), detail=where)
        elif op.kind is OperationKind.DELETE:
            if op.etag is not None and (current is None or current[1] != op.etag):
                raise ConcurrencyError(text("store.changed_or_deleted"),
                                       detail=where)
            if current is not None:
                self._remove(conn, table, pk, rk)
            return None
        return self._store(conn, table, entity).etag

    # --- TableStore -------------------------------------------------------------------------
    def ensure_table(self, table: str) -> None:
        check_table_name(table)
        with self._write() as conn:
            conn.execute("INSERT OR IGNORE INTO tables (name) VALUES (?)", (table,))
        self._known_tables.add(table)

    def get(self, table: str, partition_key: str, row_key: str) -> TableEntity:
        entity = self.try_get(table, partition_key, row_key)
        if entity is None:
            raise NotFoundError(text("store.missing"),
                                detail=f"table '{table}', PartitionKey '{partition_key}', RowKey '{row_key}'")
        return entity

    def try_get(self, table: str, partition_key: str, row_key: str) -> Optional[TableEntity]:
        self._require_table(table)
        check_key(partition_key, what="PartitionKey")
        check_key(row_key, what="RowKey")
        with self._reading() as conn:
            row = self._row(conn, table, partition_key, row_key)
        if row is None:
            return None
        return TableEntity(partition_key, row_key, _decode_data(row[0]), row[1])

    def insert(self, table: str, entity: TableEntity) -> TableEntity:
        return self._single(table, TableOperation(OperationKind.INSERT, entity))

    def upsert(self, table: str, entity: TableEntity) -> TableEntity:
        return self._single(table, TableOperation(OperationKind.UPSERT, entity))

    def update(self, table: str, entity: TableEntity, *, etag: Optional[str]) -> TableEntity:
        return self._single(table, TableOperation(OperationKind.UPDATE, entity, etag))

    def delete(self, table: str, partition_key: str, row_key: str, *, etag: Optional[str] = None) -> None:
        self._require_table(table)
        check_key(partition_key, what="PartitionKey")
        check_key(row_key, what="RowKey")
        self._grouped(1, lambda conn: self._apply(conn, table, TableOperation(
            OperationKind.DELETE, TableEntity(partition_key, row_key), etag)))

    def _single(self, table: str, op: TableOperation) -> TableEntity:
        self._require_table(table)
        check_entity(table, op.entity)
        etag = self._grouped(1, lambda conn: self._apply(conn, table, op))
        data = {k: v for k, v in op.entity.data.items() if v is not None}
        return TableEntity(op.entity.partition_key, op.entity.row_key, data, etag)

    def query(self, table: str, partition_key: str, *, prefix: Optional[str] = None,
              start: Optional[str] = None, limit: Optional[int] = None) -> Iterator[TableEntity]:
        self._require_table(table)
        check_key(partition_key, what="PartitionKey")
        lower = max((sort_key(s) for s in (prefix, start) if s), default=b"")
        bound = prefix_upper_bound(prefix) if prefix else None
        upper = sort_key(bound) if bound is not None else None
        return self._pages(table, partition_key, lower, upper, limit)

    def _pages(self, table: str, partition_key: str, lower: bytes, upper: Optional[bytes],
               limit: Optional[int]) -> Iterator[TableEntity]:
        remaining = limit
        inclusive = True
        while remaining is None or remaining > 0:
            page = QUERY_PAGE_ROWS if remaining is None else min(QUERY_PAGE_ROWS, remaining)
            sql = ("SELECT row_order, row_key, data, etag FROM entities WHERE table_name = ? AND partition_key = ? "
                   f"AND row_order {'>=' if inclusive else '>'} ?")
            args: list[Any] = [table, partition_key, lower]
            if upper is not None:
                sql += " AND row_order < ?"
                args.append(upper)
            sql += " ORDER BY row_order LIMIT ?"
            args.append(page)
            with self._reading() as conn:
                rows = conn.execute(sql, args).fetchall()
            for _, row_key, data, etag in rows:
                yield TableEntity(partition_key, row_key, _decode_data(data), etag)
            if len(rows) < page:
                return
            lower, inclusive = rows[-1][0], False
            if remaining is not None:
                remaining -= len(rows)

    def partitions(self, table: str) -> list[str]:
        self._require_table(table)
        with self._reading() as conn:
            rows = conn.execute("SELECT DISTINCT partition_key FROM entities WHERE table_name = ?",
                                (table,)).fetchall()
        return sorted((r[0] for r in rows), key=sort_key)

    def transact(self, table: str, partition_key: str, operations: list[TableOperation]) -> list[Optional[str]]:
        self._require_table(table)
        check_transaction(table, partition_key, operations)
        return self._grouped(len(operations), lambda conn: [self._apply(conn, table, op) for op in operations])

    def close(self) -> None:
        with self._lock:
            self._conn.close()
            with self._queue_lock:
                for conn in self._reader_connections:
                    conn.close()
                self._reader_connections.clear()


class _Pending:
    """One write waiting for a group commit: its work, then its result or error."""

    __slots__ = ("operations", "work", "result", "error", "done")

    def __init__(self, operations: int, work: Callable[[sqlite3.Connection], Any]):
        self.operations = max(operations, 1)
        self.work = work
        self.result: Any = None
        self.error: Optional[BaseException] = None
        self.done = False


class _WriteTransaction:
    """`with` block around one `BEGIN IMMEDIATE` transaction: commit on success, else roll back."""

    def __init__(self, conn: sqlite3.Connection, lock: threading.RLock):
        self._conn = conn
        self._lock = lock

    def __enter__(self) -> sqlite3.Connection:
        self._lock.acquire()
        try:
            self._conn.execute("BEGIN IMMEDIATE")
        except BaseException:
            self._lock.release()
            raise
        return self._conn

    def __exit__(self, exc_type, exc, tb) -> None:
        try:
            if exc_type is None:
                self._conn.execute("COMMIT")
            else:
                self._conn.execute("ROLLBACK")
        finally:
            self._lock.release()
