"""The local bus: Service Bus semantics in one SQLite file, for the embedded runtime and tests.

Queues exist on first use. Sessions give per-dossier FIFO: one receiver holds a session's lock
at a time (`lock_duration_s`, renewable) and the messages it receives are locked under that
session lock, as on Service Bus. A message goes away when completed; abandoned, released by
`close()` or left behind by a lost lock (a crashed process), it becomes the head of its session
again and its next delivery counts one more; a message already delivered `max_delivery_count`
times moves to the dead-letter queue instead (reason `MaxDeliveryCountExceeded`). A message id
accepted on a queue within `duplicate_window_s` is dropped on send, silently, and a send is one
transaction. WAL and a busy timeout let several threads and processes share the file; every
change is one `BEGIN IMMEDIATE` transaction, so two receivers never lock the same session.

The error types and the message checks here are shared by the Service Bus adapter, so both
runtimes refuse and report the same things.
"""
from __future__ import annotations

import contextlib
import datetime as dt
import json
import os
import sqlite3
import threading
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator, Optional

from shared.messages import text
from shared.bus.protocol import OutgoingMessage, ReceivedMessage
from shared.process_owner import ProcessOwner
from shared.envelope import MAX_MESSAGE_BYTES
from shared.errors import RecordError, RetryableError
from shared.telemetry import get_logger

log = get_logger(__name__)

MAX_ID_LENGTH = 128
MAX_DELIVERY_COUNT_EXCEEDED = "MaxDeliveryCountExceeded"
PROPERTY_TYPES = (str, int, float, bool, type(None))
SQLITE_BUSY_TIMEOUT_S = 30.0
FIRST_POLL_S = 0.02
LONGEST_POLL_S = 0.25

_SCHEMA = """
CREATE TABLE IF NOT EXISTS messages (
    seq                     INTEGER PRIMARY KEY AUTOINCREMENT,
    queue                   TEXT    NOT NULL,
    session_id              TEXT    NOT NULL,
    message_id              TEXT    NOT NULL,
    body                    BLOB    NOT NULL,
    properties              TEXT    NOT NULL,
    content_type            TEXT    NOT NULL,
    enqueued_at             REAL    NOT NULL,
    delivery_count          INTEGER NOT NULL DEFAULT 0,
    held_by                 TEXT,
    lock_token              TEXT,
    dead_lettered           INTEGER NOT NULL DEFAULT 0,
    dead_letter_reason      TEXT,
    dead_letter_description TEXT
);
CREATE INDEX IF NOT EXISTS messages_by_session ON messages (queue, dead_lettered, session_id, seq);
CREATE INDEX IF NOT EXISTS messages_held ON messages (queue, held_by) WHERE held_by IS NOT NULL;
CREATE TABLE IF NOT EXISTS sessions (
    queue        TEXT NOT NULL,
    session_id   TEXT NOT NULL,
    lock_token   TEXT NOT NULL,
    locked_until REAL NOT NULL,
    owner        TEXT,
    PRIMARY KEY (queue, session_id)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS accepted_ids (
    queue       TEXT NOT NULL,
    message_id  TEXT NOT NULL,
    accepted_at REAL NOT NULL,
    PRIMARY KEY (queue, message_id)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS accepted_ids_by_age ON accepted_ids (queue, accepted_at);
"""

# Messages locked under a session lock that is gone (released, expired or taken over).
_STALE_HOLD = """
    queue = :queue AND held_by IS NOT NULL AND NOT EXISTS (
        SELECT 1 FROM sessions s
        WHERE s.queue = messages.queue AND s.session_id = messages.session_id
          AND s.lock_token = messages.held_by AND s.locked_until > :now)
"""


class LockLostError(RetryableError):
    """The session or message lock is gone (expired, released, or the message is already settled).

    The message will be delivered again, to whoever holds the session next: the work done on it
    must not be acknowledged anywhere else.
    """

    def __init__(self, user_message: str = ("The bus lock on a message expired before it was "
                                            "acknowledged; the message will be processed again."),
                 *, detail: str | None = None):
        super().__init__(user_message, detail=detail)


class BusUnavailableError(RetryableError):
    """The bus could not be reached or was too busy to answer; try again later."""


class MessageTooLargeError(RecordError):
    """One message is over the 256 KB Service Bus limit and can never be sent as it is."""


def validate_outgoing(queue: str, messages: list[OutgoingMessage]) -> None:
    """Refuse, before anything is sent, what Service Bus would refuse or store differently.

    Raises:
        ValueError: an empty queue name, a missing or over-long message or session id, a body
            that is not bytes, an application property that is not a plain scalar.
        MessageTooLargeError: a message over `MAX_MESSAGE_BYTES`.
    """
    if not queue:
        raise ValueError("a queue name is required")
    for message in messages:
        for name in ("message_id", "session_id"):
            value = getattr(message, name)
            if not isinstance(value, str) or not value or len(value) > MAX_ID_LENGTH:
                raise ValueError(f"{name} must be a string of 1 to {MAX_ID_LENGTH} characters, got {value!r}")
        if not isinstance(message.body, bytes):
            raise ValueError(f"message {message.message_id}: the body must be bytes")
        for key, value in message.application_properties.items():
            if not isinstance(key, str) or not isinstance(value, PROPERTY_TYPES):
                raise ValueError(f"message {message.message_id}: application property {key!r} must be "
                                 f"a string name with a str, int, float, bool or None value")
        size = message_size(message)
        if size > MAX_MESSAGE_BYTES:
            raise MessageTooLargeError(
                "A bus message is larger than Service Bus accepts (256 KB); it cannot be sent.",
                detail=f"message {message.message_id} of session {message.session_id}: {size} bytes")


def message_size(message: OutgoingMessage) -> int:
    """Bytes a message takes: body, ids, content type and application properties."""
    properties = json.dumps(message.application_properties, separators=(",", ":"))
    return (len(message.body) + len(properties.encode("utf-8")) + len(message.message_id.encode("utf-8"))
            + len(message.session_id.encode("utf-8")) + len(message.content_type.encode("utf-8")))


@dataclass(frozen=True)
class TakenOverSession:
    """A session lock left by a process that is gone, ended by this bus at the next accept."""

    queue: str
    session_id: str
    owner: ProcessOwner
    messages: int            # the messages it held, back on the queue
    reason: str = "gone"     # "gone": its process no longer runs; "expired": no heartbeat (renewal) in time


def _utc(timestamp: float) -> dt.datetime:
    return dt.datetime.fromtimestamp(timestamp, tz=dt.timezone.utc)


def _poll_until(deadline: float, attempt: Callable[[], Any]) -> Any:
    """Call `attempt` until it returns something truthy or the (monotonic) deadline passes."""
    pause = FIRST_POLL_S
    while True:
        result = attempt()
        remaining = deadline - time.monotonic()
        if result or remaining <= 0:
            return result
        time.sleep(min(pause, remaining))
        pause = min(pause * 2, LONGEST_POLL_S)


class LocalBus:
    """A durable bus in a SQLite file, with the semantics of Service Bus session queues.

    Args:
        path: the SQLite file (created with its folder if missing).
        max_delivery_count: deliveries after which an unsettled message is dead-lettered.
        lock_duration_s: how long a session lock lasts without `renew_lock()`.
        duplicate_window_s: how long an accepted message id makes later sends of it no-ops.
        clock: seconds since the epoch (defaults to `time.time`); all processes sharing a file
            must use comparable clocks. Waiting (`max_wait_s`) always uses real time.
    """

    def __init__(self, path: str, *, max_delivery_count: int = 10, lock_duration_s: float = 60.0,
                 duplicate_window_s: float = 600.0, clock: Callable[[], float] | None = None):
        if max_delivery_count < 1:
            raise ValueError("max_delivery_count must be at least 1")
        if lock_duration_s <= 0 or duplicate_window_s <= 0:
            raise ValueError("lock_duration_s and duplicate_window_s must be positive")
        self.path = str(path)
        self.max_delivery_count = max_delivery_count
        self.lock_duration_s = lock_duration_s
        self.duplicate_window_s = duplicate_window_s
        self._clock = clock or time.time
        self._pool: list[sqlite3.Connection] = []
        self._pool_pid = os.getpid()
        self._pool_lock = threading.Lock()
        self._closed = False
        Path(self.path).parent.mkdir(parents=True, exist_ok=True)
        self._taken_over: list[TakenOverSession] = []
        with self._connection() as conn:
            conn.execute("PRAGMA journal_mode=WAL")
            conn.executescript(_SCHEMA)
            columns = {row["name"] for row in conn.execute("PRAGMA table_info(sessions)")}
            if "owner" not in columns:          # a bus file of an earlier release
                conn.execute("ALTER TABLE sessions ADD COLUMN owner TEXT")

    # --- connections and transactions -----------------------------------------------------
    def _open_connection(self) -> sqlite3.Connection:
        conn = sqlite3.connect(self.path, timeout=SQLITE_BUSY_TIMEOUT_S, isolation_level=None,
                               check_same_thread=False)
        conn.execute(f"PRAGMA busy_timeout={int(SQLITE_BUSY_TIMEOUT_S * 1000)}")
        conn.execute("PRAGMA synchronous=FULL")
        conn.row_factory = sqlite3.Row
        return conn

    @contextlib.contextmanager
    def _connection(self) -> Iterator[sqlite3.Connection]:
        if self._closed:
            raise RuntimeError("the local bus is closed")
        with self._pool_lock:
            if self._pool_pid != os.getpid():
                # A forked child must not touch its parent's SQLite handles.
                self._pool, self._pool_pid = [], os.getpid()
            conn = self._pool.pop() if self._pool else None
        if conn is None:
            conn = self._open_connection()
        try:
            yield conn
        finally:
            with self._pool_lock:
                if self._closed or self._pool_pid != os.getpid():
                    conn.close()
                else:
                    self._pool.append(conn)

    @contextlib.contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        """One write transaction, taken before any read so decisions cannot race."""
        with self._connection() as conn:
            try:
                conn.execute("BEGIN IMMEDIATE")
                try:
                    yield conn
                    conn.execute("COMMIT")
                except BaseException:
                    if conn.in_transaction:
                        conn.execute("ROLLBACK")
                    raise
            except sqlite3.OperationalError as exc:
                if "locked" in str(exc) or "busy" in str(exc):
                    raise BusUnavailableError(text("bus.local_busy"),
                                              detail=str(exc)) from exc
                raise

    def _now(self) -> float:
        return float(self._clock())

    # --- Bus protocol ----------------------------------------------------------------------
    def send(self, queue: str, messages: list[OutgoingMessage]) -> None:
        """Accept all messages in one transaction, dropping ids already accepted in the window."""
        validate_outgoing(queue, messages)
        if not messages:
            return
        with self._transaction() as conn:
            now = self._now()
            conn.execute("DELETE FROM accepted_ids WHERE queue = ? AND accepted_at <= ?",
                         (queue, now - self.duplicate_window_s))
            for message in messages:
                known = conn.execute("SELECT 1 FROM accepted_ids WHERE queue = ? AND message_id = ?",
                                     (queue, message.message_id)).fetchone()
                if known:
                    continue
                conn.execute(
                    "INSERT INTO messages (queue, session_id, message_id, body, properties, content_type,"
                    " enqueued_at) VALUES (?, ?, ?, ?, ?, ?, ?)",
                    (queue, message.session_id, message.message_id, message.body,
                     json.dumps(message.application_properties), message.content_type, now))
                conn.execute("INSERT INTO accepted_ids (queue, message_id, accepted_at) VALUES (?, ?, ?)",
                             (queue, message.message_id, now))

    def accept_session(self, queue: str, session_id: Optional[str] = None,
                       max_wait_s: float = 0.0) -> Optional["LocalSessionReceiver"]:
        """Lock a session: the given one (even if empty, as Service Bus does), or else the
        unlocked session whose first available message is the oldest.

        Returns None when the given session stays locked by another receiver, or no session
        has available messages, until `max_wait_s` has passed.
        """
        deadline = time.monotonic() + max_wait_s
        return _poll_until(deadline, lambda: self._try_accept(queue, session_id))

    def dead_letters(self, queue: str, session_id: Optional[str] = None) -> list[ReceivedMessage]:
        with self._transaction() as conn:
            self._release_stale_holds(conn, queue, self._now())
            rows = conn.execute(
                "SELECT * FROM messages WHERE queue = :queue AND dead_lettered = 1"
                " AND (:session IS NULL OR session_id = :session) ORDER BY seq",
                {"queue": queue, "session": session_id}).fetchall()
        return [self._to_received(row, lock_token="") for row in rows]

    def pending_count(self, queue: str, session_id: Optional[str] = None) -> int:
        with self._transaction() as conn:
            self._release_stale_holds(conn, queue, self._now())
            if session_id is None:
                row = conn.execute("SELECT COUNT(*) FROM messages WHERE queue = ? AND dead_lettered = 0",
                                   (queue,)).fetchone()
            else:
                row = conn.execute("SELECT COUNT(*) FROM messages WHERE queue = ? AND dead_lettered = 0"
                                   " AND session_id = ?", (queue, session_id)).fetchone()
        return int(row[0])

    def close(self) -> None:
        with self._pool_lock:
            self._closed = True
            pool, self._pool = self._pool, []
            same_process = self._pool_pid == os.getpid()
        if same_process:
            for conn in pool:
                conn.close()

    # --- local extras ----------------------------------------------------------------------
    def sessions_with_messages(self, queue: str) -> list[str]:
        """Sessions with active (not dead-lettered) messages, the oldest first message first."""
        with self._connection() as conn:
            rows = conn.execute(
                "SELECT session_id FROM messages WHERE queue = ? AND dead_lettered = 0"
                " GROUP BY session_id ORDER BY MIN(seq)", (queue,)).fetchall()
        return [row[0] for row in rows]

    def oldest_pending_at(self, queue: str, session_id: Optional[str] = None) -> Optional[dt.datetime]:
        """When the oldest active message (of one session) was enqueued; None when there is none."""
        with self._connection() as conn:
            row = conn.execute(
                "SELECT MIN(enqueued_at) FROM messages WHERE queue = :queue AND dead_lettered = 0"
                " AND (:session IS NULL OR session_id = :session)", {"queue": queue, "session": session_id}
            ).fetchone()
        return None if row[0] is None else _utc(row[0])

    def __enter__(self) -> "LocalBus":
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()

    # --- internals -------------------------------------------------------------------------
    def _release_stale_holds(self, conn: sqlite3.Connection, queue: str, now: float) -> None:
        """Messages whose session lock is gone count as abandoned: available again, or
        dead-lettered once they have had all their deliveries."""
        params = {"queue": queue, "now": now, "max": self.max_delivery_count,
                  "reason": MAX_DELIVERY_COUNT_EXCEEDED, "description": self._exhausted_description()}
        conn.execute(
            "UPDATE messages SET dead_lettered = 1, dead_letter_reason = :reason,"
            " dead_letter_description = :description, held_by = NULL, lock_token = NULL"
            f" WHERE {_STALE_HOLD} AND delivery_count >= :max", params)
        conn.execute(f"UPDATE messages SET held_by = NULL, lock_token = NULL WHERE {_STALE_HOLD}", params)

    def _exhausted_description(self) -> str:
        return f"Message could not be consumed after {self.max_delivery_count} delivery attempts."

    def taken_over(self) -> list["TakenOverSession"]:
        """The session locks of dead processes this bus took over since the last call (then forgotten)."""
        with self._pool_lock:
            found, self._taken_over = self._taken_over, []
        return found

    def _take_over_dead_holders(self, conn: sqlite3.Connection, queue: str, now: float) -> None:
        """Session locks still running whose holder process is gone (killed) end now, not when
        their lock would have expired; locks whose heartbeat (renewal) stopped, messages still held,
        are ended too. Either way their messages come back at once, one delivery counted, and the
        takeover is noted (`taken_over`)."""
        rows = conn.execute(
            "SELECT s.session_id, s.owner, s.locked_until, (SELECT COUNT(*) FROM messages m WHERE m.queue = s.queue"
            " AND m.session_id = s.session_id AND m.held_by = s.lock_token) AS held FROM sessions s"
            " WHERE s.queue = ? AND s.owner IS NOT NULL", (queue,)).fetchall()
        for row in rows:
            owner = ProcessOwner.from_json(row["owner"])
            if owner is None:
                continue
            if row["locked_until"] > now:
                if not owner.is_gone():
                    continue
                reason = "gone"
            elif row["held"]:
                reason = "expired"
            else:
                continue
            conn.execute("DELETE FROM sessions WHERE queue = ? AND session_id = ? AND owner = ?",
                         (queue, row["session_id"], row["owner"]))
            log.warning("local bus %s: session %s of queue %s was locked by %s, %s; lock taken over (%d message(s)"
                        " it held come back)", self.path, row["session_id"], queue, owner.describe(),
                        "which is gone" if reason == "gone" else "whose lock expired without renewal",
                        row["held"])
            with self._pool_lock:
                self._taken_over.append(TakenOverSession(queue, row["session_id"], owner, int(row["held"]), reason))

    def _try_accept(self, queue: str, session_id: Optional[str]) -> Optional["LocalSessionReceiver"]:
        with self._transaction() as conn:
            now = self._now()
            self._take_over_dead_holders(conn, queue, now)
            self._release_stale_holds(conn, queue, now)
            if session_id is not None:
                held = conn.execute(
                    "SELECT 1 FROM sessions WHERE queue = ? AND session_id = ? AND locked_until > ?",
                    (queue, session_id, now)).fetchone()
                if held:
                    return None
            else:
                row = conn.execute(
                    "SELECT m.session_id FROM messages m WHERE m.queue = ? AND m.dead_lettered = 0"
                    " AND NOT EXISTS (SELECT 1 FROM sessions s WHERE s.queue = m.queue"
                    "                 AND s.session_id = m.session_id AND s.locked_until > ?)"
                    " GROUP BY m.session_id ORDER BY MIN(m.seq) LIMIT 1", (queue, now)).fetchone()
                if row is None:
                    return None
                session_id = row[0]
            token = uuid.uuid4().hex
            conn.execute(
                "INSERT INTO sessions (queue, session_id, lock_token, locked_until, owner) VALUES (?, ?, ?, ?, ?)"
                " ON CONFLICT (queue, session_id) DO UPDATE SET lock_token = excluded.lock_token,"
                " locked_until = excluded.locked_until, owner = excluded.owner",
                (queue, session_id, token, now + self.lock_duration_s, ProcessOwner.current().to_json()))
        return LocalSessionReceiver(self, queue, session_id, token)

    def _check_session_lock(self, conn: sqlite3.Connection, receiver: "LocalSessionReceiver", now: float) -> None:
        row = conn.execute("SELECT lock_token, locked_until FROM sessions WHERE queue = ? AND session_id = ?",
                           (receiver.queue, receiver.session_id)).fetchone()
        if row is None or row["lock_token"] != receiver.session_lock_token or row["locked_until"] <= now:
            raise LockLostError(detail=f"session lock lost: queue {receiver.queue}, session {receiver.session_id}")

    def _receive(self, receiver: "LocalSessionReceiver", max_messages: int) -> list[ReceivedMessage]:
        with self._transaction() as conn:
            now = self._now()
            self._check_session_lock(conn, receiver, now)
            self._release_stale_holds(conn, receiver.queue, now)
            rows = conn.execute(
                "SELECT * FROM messages WHERE queue = ? AND dead_lettered = 0 AND session_id = ?"
                " AND held_by IS NULL ORDER BY seq LIMIT ?",
                (receiver.queue, receiver.session_id, max_messages)).fetchall()
            received = []
            for row in rows:
                token = uuid.uuid4().hex
                conn.execute("UPDATE messages SET delivery_count = delivery_count + 1, held_by = ?,"
                             " lock_token = ? WHERE seq = ?", (receiver.session_lock_token, token, row["seq"]))
                received.append(self._to_received(row, lock_token=token, delivery_count=row["delivery_count"] + 1))
        return received

    def _settle(self, receiver: "LocalSessionReceiver", message: ReceivedMessage, outcome: str,
                reason: str = "", description: str = "") -> None:
        if message.session_id != receiver.session_id:
            raise ValueError(f"message {message.message_id} belongs to session {message.session_id},"
                             f" not to this receiver's session {receiver.session_id}")
        with self._transaction() as conn:
            now = self._now()
            self._check_session_lock(conn, receiver, now)
            row = conn.execute(
                "SELECT delivery_count FROM messages WHERE seq = ? AND queue = ? AND dead_lettered = 0"
                " AND held_by = ? AND lock_token = ?",
                (message.sequence_number, receiver.queue, receiver.session_lock_token, message.lock_token)
            ).fetchone()
            if row is None:
                raise LockLostError(detail=f"message lock lost or message already settled: queue {receiver.queue},"
                                           f" session {receiver.session_id}, message {message.message_id}")
            if outcome == "complete":
                conn.execute("DELETE FROM messages WHERE seq = ?", (message.sequence_number,))
            elif outcome == "abandon" and row["delivery_count"] < self.max_delivery_count:
                conn.execute("UPDATE messages SET held_by = NULL, lock_token = NULL WHERE seq = ?",
                             (message.sequence_number,))
            else:
                if outcome == "abandon":
                    reason, description = MAX_DELIVERY_COUNT_EXCEEDED, self._exhausted_description()
                conn.execute(
                    "UPDATE messages SET dead_lettered = 1, dead_letter_reason = ?, dead_letter_description = ?,"
                    " held_by = NULL, lock_token = NULL WHERE seq = ?",
                    (reason, description, message.sequence_number))

    def _renew(self, receiver: "LocalSessionReceiver") -> None:
        with self._transaction() as conn:
            now = self._now()
            self._check_session_lock(conn, receiver, now)
            conn.execute("UPDATE sessions SET locked_until = ? WHERE queue = ? AND session_id = ?",
                         (now + self.lock_duration_s, receiver.queue, receiver.session_id))

    def _release(self, receiver: "LocalSessionReceiver") -> None:
        with self._transaction() as conn:
            conn.execute("DELETE FROM sessions WHERE queue = ? AND session_id = ? AND lock_token = ?",
                         (receiver.queue, receiver.session_id, receiver.session_lock_token))
            self._release_stale_holds(conn, receiver.queue, self._now())

    @staticmethod
    def _to_received(row: sqlite3.Row, *, lock_token: str, delivery_count: Optional[int] = None) -> ReceivedMessage:
        return ReceivedMessage(
            body=bytes(row["body"]), message_id=row["message_id"], session_id=row["session_id"],
            delivery_count=row["delivery_count"] if delivery_count is None else delivery_count,
            enqueued_at=_utc(row["enqueued_at"]), sequence_number=row["seq"], lock_token=lock_token,
            application_properties=json.loads(row["properties"]), content_type=row["content_type"],
            dead_letter_reason=row["dead_letter_reason"], dead_letter_description=row["dead_letter_description"])


class LocalSessionReceiver:
    """The holder of one session's lock on a `LocalBus` queue (see `SessionReceiver`)."""

    def __init__(self, bus: LocalBus, queue: str, session_id: str, session_lock_token: str):
        self._bus = bus
        self.queue = queue
        self.session_id = session_id
        self.session_lock_token = session_lock_token
        self._closed = False

    def receive(self, max_messages: int = 1, max_wait_s: float = 0.0) -> list[ReceivedMessage]:
        if max_messages < 1:
            raise ValueError("max_messages must be at least 1")
        self._check_open()
        deadline = time.monotonic() + max_wait_s
        return _poll_until(deadline, lambda: self._bus._receive(self, max_messages))

    def complete(self, message: ReceivedMessage) -> None:
        self._check_open()
        self._bus._settle(self, message, "complete")

    def abandon(self, message: ReceivedMessage) -> None:
        self._check_open()
        self._bus._settle(self, message, "abandon")

    def dead_letter(self, message: ReceivedMessage, reason: str, description: str = "") -> None:
        self._check_open()
        self._bus._settle(self, message, "dead-letter", reason, description)

    def renew_lock(self) -> None:
        self._check_open()
        self._bus._renew(self)

    def close(self) -> None:
        """Release the session; a no-op when the bus is closed already (its lock then expires)."""
        if self._closed:
            return
        self._closed = True
        if not self._bus._closed:
            self._bus._release(self)

    def __enter__(self) -> "LocalSessionReceiver":
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()

    def _check_open(self) -> None:
        if self._closed:
            raise LockLostError(detail=f"the receiver of session {self.session_id} on {self.queue} is closed")
