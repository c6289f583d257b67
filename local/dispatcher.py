"""The local dispatcher: drives the Function App's registered Service Bus functions in-process.

It plays the Functions host's part for the embedded runtime. For every function of
`function_app.app` with a `serviceBusTrigger` binding it reads the binding (queue name with its
`%APP_SETTING%` expressions, sessions, cardinality), then, like the host: accepts a session,
receives one message (cardinality `one`, the session processor's way) or up to
`maxMessageBatchSize` (cardinality `many`, from `host.json`), builds real
`azure.functions.ServiceBusMessage` objects, calls the user function, completes every message
when it returns and abandons every message when it raises (the bus dead-letters at its maximum
delivery count). Session locks are renewed for as long as a session is held. It loops until no
session has messages left, then hands each dead-lettered message to the dead-letter function once; the
dead-letter queue of the local bus can only be peeked, so the dispatcher keeps a small ledger of
the dead letters it handed over. Timer-triggered functions are called once by `run_timers`.
"""
from __future__ import annotations

import datetime as dt
import json
import re
import sqlite3
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator, Mapping, Optional

from shared.bus.protocol import Bus, ReceivedMessage, SessionReceiver
from shared.counts import AddableCounts
from shared.errors import ConfigurationError, ConnectorError
from shared.telemetry import get_logger

log = get_logger(__name__)

ROOT = Path(__file__).resolve().parents[1]
HOST_JSON = ROOT / "host.json"
DEAD_LETTER_SUFFIX = "/$DeadLetterQueue"
SERVICE_BUS_TRIGGER = "serviceBusTrigger"
TIMER_TRIGGER = "timerTrigger"
DEFAULT_BATCH_SIZE = 1000           # the host's default maxMessageBatchSize
DEFAULT_CONCURRENT_SESSIONS = 2     # a laptop, not a scaled-out Function App
_APP_SETTING = re.compile(r"%([^%]+)%")


@dataclass(frozen=True)
class ServiceBusFunction:
    """One registered function with a Service Bus trigger, its binding resolved."""

    name: str
    user_function: Callable[..., Any]
    arg_name: str
    queue: str
    sessions: bool
    many: bool
    auto_complete: bool

    @property
    def reads_dead_letters(self) -> bool:
        return self.queue.endswith(DEAD_LETTER_SUFFIX)

    @property
    def source_queue(self) -> str:
        return self.queue[:-len(DEAD_LETTER_SUFFIX)] if self.reads_dead_letters else self.queue


@dataclass
class DispatchStats(AddableCounts):
    """What one `drain()` did."""

    invocations: int = 0
    failed_invocations: int = 0
    completed: int = 0
    abandoned: int = 0
    dead_letters_handled: int = 0
    dead_letters_failed: int = 0
    stopped_at_deadline: bool = False
    pending: dict[str, int] = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)

    def add(self, other: "DispatchStats") -> None:
        super().add(other)
        self.errors.extend(other.errors)
        self.stopped_at_deadline = self.stopped_at_deadline or other.stopped_at_deadline

    @property
    def quiet(self) -> bool:
        return self.invocations == 0 and self.dead_letters_handled == 0 and self.dead_letters_failed == 0


def resolve_app_settings(value: str, app_settings: Mapping[str, str]) -> str:
    """Replace `%NAME%` by the app setting NAME, as the host does for binding properties.

    Raises:
        ConfigurationError: a named app setting is missing (the host refuses to start then too).
    """
    def substitute(match: re.Match) -> str:
        name = match.group(1)
        if name not in app_settings:
            raise ConfigurationError(f"the app setting {name} used by a function binding is not set")
        return str(app_settings[name])
    return _APP_SETTING.sub(substitute, value)


def host_service_bus_options(path: Path = HOST_JSON) -> dict[str, Any]:
    """The `extensions.serviceBus` section of host.json (empty when the file has none)."""
    try:
        host = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return {}
    return dict(host.get("extensions", {}).get("serviceBus", {}))


def registered_functions(app) -> list:
    """`app.get_functions()`, callable more than once.

    The host indexes an app once; `FunctionApp.get_functions` keeps the names it has seen in
    `functions_bindings` and refuses a second call, so that record is cleared first.
    """
    if getattr(app, "functions_bindings", None):
        app.functions_bindings = None
    return app.get_functions()


def service_bus_functions(app, app_settings: Mapping[str, str]) -> list[ServiceBusFunction]:
    """The app's functions with a Service Bus trigger, in registration order."""
    found = []
    for function, binding in _triggered_by(app, SERVICE_BUS_TRIGGER):
        if "queueName" not in binding:
            raise ConfigurationError(f"function {function.get_function_name()}: only queue triggers run locally")
        found.append(ServiceBusFunction(
            name=function.get_function_name(),
            user_function=function.get_user_function(),
            arg_name=binding["name"],
            queue=resolve_app_settings(binding["queueName"], app_settings),
            sessions=bool(binding.get("isSessionsEnabled")),
            many=str(binding.get("cardinality", "one")).lower() == "many",
            auto_complete=binding.get("autoCompleteMessages", True) is not False,
        ))
    return found


@dataclass(frozen=True)
class TimerFunction:
    """One registered function with a timer trigger: the local runtime calls it once per cycle."""

    name: str
    user_function: Callable[..., Any]
    arg_name: str


def timer_functions(app) -> list[TimerFunction]:
    """The app's functions with a timer trigger, in registration order."""
    return [TimerFunction(function.get_function_name(), function.get_user_function(), binding["name"])
            for function, binding in _triggered_by(app, TIMER_TRIGGER)]


def _triggered_by(app, trigger_type: str) -> Iterator[tuple[Any, dict]]:
    """(function, trigger binding) of the app's functions whose trigger is of `trigger_type`."""
    for function in registered_functions(app):
        trigger = function.get_trigger()
        if trigger is not None and trigger.get_binding_name() == trigger_type:
            yield function, trigger.get_dict_repr()


def to_function_message(message: ReceivedMessage, *, dead_letter_source: Optional[str] = None,
                        locked_until: Optional[dt.datetime] = None):
    """The `azure.functions.ServiceBusMessage` the Python worker would build for `message`."""
    from azure.functions.servicebus import ServiceBusMessage

    metadata = {
        "MessageId": message.message_id, "SessionId": message.session_id,
        "DeliveryCount": message.delivery_count, "SequenceNumber": message.sequence_number,
        "EnqueuedTimeUtc": message.enqueued_at.isoformat(), "ContentType": message.content_type,
        "LockToken": message.lock_token, "ApplicationProperties": dict(message.application_properties),
    }
    return ServiceBusMessage(
        body=message.body,
        trigger_metadata=metadata,
        application_properties=dict(message.application_properties),
        user_properties=dict(message.application_properties),
        content_type=message.content_type,
        dead_letter_reason=message.dead_letter_reason,
        dead_letter_error_description=message.dead_letter_description,
        dead_letter_source=dead_letter_source,
        delivery_count=message.delivery_count,
        enqueued_sequence_number=message.sequence_number,
        enqueued_time_utc=message.enqueued_at,
        lock_token=message.lock_token or None,
        locked_until=locked_until,
        message_id=message.message_id,
        sequence_number=message.sequence_number,
        session_id=message.session_id,
    )


class DeadLetterLedger:
    """Which dead-lettered messages were handed to the dead-letter function, and how it went.

    Keyed by queue and sequence number (never reused by a bus). Kept in its own SQLite file
    beside the bus, or in memory when `path` is None.
    """

    def __init__(self, path: Optional[str]):
        self._lock = threading.Lock()
        self._conn = sqlite3.connect(path or ":memory:", check_same_thread=False, isolation_level=None)
        self._conn.execute("PRAGMA busy_timeout=30000")
        self._conn.execute(
            "CREATE TABLE IF NOT EXISTS handed_over (queue TEXT NOT NULL, sequence_number INTEGER NOT NULL,"
            " message_id TEXT NOT NULL, attempts INTEGER NOT NULL, done INTEGER NOT NULL, last_error TEXT,"
            " at TEXT NOT NULL, PRIMARY KEY (queue, sequence_number))")

    def settled(self, queue: str, sequence_number: int, max_attempts: int) -> bool:
        with self._lock:
            row = self._conn.execute(
                "SELECT done, attempts FROM handed_over WHERE queue = ? AND sequence_number = ?",
                (queue, sequence_number)).fetchone()
        return row is not None and (bool(row[0]) or row[1] >= max_attempts)

    def record(self, queue: str, message: ReceivedMessage, *, done: bool, error: Optional[str] = None) -> int:
        """Note one hand-over; returns the number of attempts so far."""
        now = dt.datetime.now(dt.timezone.utc).isoformat()
        with self._lock:
            self._conn.execute(
                "INSERT INTO handed_over (queue, sequence_number, message_id, attempts, done, last_error, at)"
                " VALUES (?, ?, ?, 1, ?, ?, ?) ON CONFLICT (queue, sequence_number) DO UPDATE SET"
                " attempts = attempts + 1, done = excluded.done, last_error = excluded.last_error, at = excluded.at",
                (queue, message.sequence_number, message.message_id, int(done), error, now))
            row = self._conn.execute("SELECT attempts FROM handed_over WHERE queue = ? AND sequence_number = ?",
                                     (queue, message.sequence_number)).fetchone()
        return int(row[0])

    def close(self) -> None:
        with self._lock:
            self._conn.close()


class _LockRenewer:
    """Renews a session lock in the background while the session is held."""

    def __init__(self, receiver: SessionReceiver, interval_s: float):
        self._receiver = receiver
        self._interval_s = interval_s
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"renew-{receiver.session_id}", daemon=True)

    def _run(self) -> None:
        while not self._stop.wait(self._interval_s):
            try:
                self._receiver.renew_lock()
            except Exception as exc:  # the settlement that follows reports a lost lock
                log.warning("could not renew the lock of session %s: %s", self._receiver.session_id, exc)
                return

    def __enter__(self) -> "_LockRenewer":
        self._thread.start()
        return self

    def __exit__(self, *exc_info) -> None:
        self._stop.set()
        self._thread.join()


class LocalDispatcher:
    """Runs the app's Service Bus functions against a bus until it is quiet.

    Args:
        bus: the bus the agent sends to (a `LocalBus`, usually).
        app: the `azure.functions.FunctionApp` (defaults to `function_app.app`).
        app_settings: values for the `%NAME%` expressions of the bindings (the Function App's
            application settings).
        max_batch_size: messages per invocation of a `many` function (default: host.json's
            `maxMessageBatchSize`).
        max_concurrent_sessions: sessions processed at once (default: host.json's
            `maxConcurrentSessions`, at most 2).
        ledger_path: SQLite file of the dead-letter ledger (default: beside the bus file).
        max_dead_letter_attempts: hand-overs of one dead letter before giving up on it.
        lock_renewal_interval_s: how often a session lock is renewed while the session is held
            (default: a third of the bus's lock duration).
    """

    def __init__(self, bus: Bus, app=None, *, app_settings: Optional[Mapping[str, str]] = None,
                 max_batch_size: Optional[int] = None, max_concurrent_sessions: Optional[int] = None,
                 ledger_path: Optional[str] = None, max_dead_letter_attempts: int = 3,
                 lock_renewal_interval_s: Optional[float] = None):
        if app is None:
            from function_app import app
        options = host_service_bus_options()
        self.bus = bus
        self.functions = service_bus_functions(app, app_settings or {})
        for function in self.functions:
            if not function.reads_dead_letters and not function.sessions:
                raise ConfigurationError(f"function {function.name}: the local bus only has session queues")
            if not function.auto_complete:
                raise ConfigurationError(f"function {function.name}: autoCompleteMessages=false is not supported")
        self.max_batch_size = max_batch_size or int(options.get("maxMessageBatchSize", DEFAULT_BATCH_SIZE))
        self.max_concurrent_sessions = max_concurrent_sessions or min(
            int(options.get("maxConcurrentSessions", DEFAULT_CONCURRENT_SESSIONS)), DEFAULT_CONCURRENT_SESSIONS)
        self.timers = timer_functions(app)
        self.max_dead_letter_attempts = max_dead_letter_attempts
        lock_duration_s = float(getattr(bus, "lock_duration_s", 60.0))
        self.lock_renewal_interval_s = lock_renewal_interval_s or max(lock_duration_s / 3, 0.05)
        if ledger_path is None and getattr(bus, "path", None):
            ledger_path = str(Path(bus.path).with_suffix(".dead-letters.db"))
        self.ledger = DeadLetterLedger(ledger_path)
        self._deadline: Optional[float] = None

    @property
    def queues(self) -> list[str]:
        return [f.queue for f in self.functions if not f.reads_dead_letters]

    def drain(self, *, max_rounds: int = 1000, deadline: Optional[float] = None) -> DispatchStats:
        """Process every session queue until quiet, then the dead letters; repeat until a round
        does nothing. Past `deadline` (a `time.monotonic()` value) no new message is received:
        the invocation under way ends and the rest stays on the bus (`stopped_at_deadline`).
        Returns the totals, with the messages still pending per queue."""
        total = DispatchStats()
        self._deadline = deadline
        for _ in range(max_rounds):
            if self._past_deadline():
                total.stopped_at_deadline = True
                break
            round_stats = DispatchStats()
            for function in self.functions:
                if not function.reads_dead_letters:
                    round_stats.add(self._drain_sessions(function))
            for function in self.functions:
                if function.reads_dead_letters:
                    round_stats.add(self._drain_dead_letters(function))
            total.add(round_stats)
            if round_stats.quiet:
                break
        self._deadline = None
        total.pending = {queue: self.bus.pending_count(queue) for queue in self.queues}
        return total

    def _past_deadline(self) -> bool:
        return self._deadline is not None and time.monotonic() >= self._deadline

    def run_timers(self) -> DispatchStats:
        """Call every timer-triggered function once, as its schedule would (the cycle is the clock)."""
        from azure.functions.timer import TimerRequest

        stats = DispatchStats()
        for timer in self.timers:
            stats.invocations += 1
            try:
                timer.user_function(**{timer.arg_name: TimerRequest(past_due=False)})
            except Exception as exc:
                _failed(stats, f"timer function {timer.name}", exc)
        return stats

    def close(self) -> None:
        self.ledger.close()

    # --- session queues ------------------------------------------------------------------
    def _drain_sessions(self, function: ServiceBusFunction) -> DispatchStats:
        workers = max(1, self.max_concurrent_sessions)
        if workers == 1:
            return self._session_worker(function)
        stats = DispatchStats()
        with ThreadPoolExecutor(max_workers=workers, thread_name_prefix=f"dispatch-{function.name}") as pool:
            for result in [pool.submit(self._session_worker, function) for _ in range(workers)]:
                stats.add(result.result())
        return stats

    def _session_worker(self, function: ServiceBusFunction) -> DispatchStats:
        stats = DispatchStats()
        while not self._past_deadline():
            receiver = self.bus.accept_session(function.queue)
            if receiver is None:
                return stats
            try:
                # the host renews a session's lock for as long as it holds the session, between
                # invocations as well as during them
                with _LockRenewer(receiver, self.lock_renewal_interval_s):
                    self._drain_session(function, receiver, stats)
            finally:
                receiver.close()
        stats.stopped_at_deadline = True
        return stats

    def _drain_session(self, function: ServiceBusFunction, receiver: SessionReceiver, stats: DispatchStats) -> None:
        batch_size = self.max_batch_size if function.many else 1
        while not self._past_deadline():
            messages = receiver.receive(max_messages=batch_size)
            if not messages:
                return
            argument = [to_function_message(m) for m in messages]
            stats.invocations += 1
            try:
                function.user_function(**{function.arg_name: argument if function.many else argument[0]})
            except Exception as exc:
                _failed(stats, f"{function.name} (session {receiver.session_id})", exc)
                if not self._settle(receiver, messages, receiver.abandon, stats, "abandoned"):
                    return
                continue
            if not self._settle(receiver, messages, receiver.complete, stats, "completed"):
                return

    @staticmethod
    def _settle(receiver: SessionReceiver, messages: list[ReceivedMessage], settle: Callable[[ReceivedMessage], None],
                stats: DispatchStats, counter: str) -> bool:
        """Settle every message; False when the session lock is gone (they come back later)."""
        for message in messages:
            try:
                settle(message)
            except ConnectorError as exc:
                stats.errors.append(f"session {receiver.session_id}: {_describe(exc)}")
                log.warning("could not settle message %s of session %s: %s", message.message_id,
                            receiver.session_id, exc)
                return False
            setattr(stats, counter, getattr(stats, counter) + 1)
        return True

    # --- dead letters --------------------------------------------------------------------
    def _drain_dead_letters(self, function: ServiceBusFunction) -> DispatchStats:
        stats = DispatchStats()
        for message in self.bus.dead_letters(function.source_queue):
            if self._past_deadline():
                stats.stopped_at_deadline = True
                break
            if self.ledger.settled(function.queue, message.sequence_number, self.max_dead_letter_attempts):
                continue
            argument = to_function_message(message, dead_letter_source=function.source_queue)
            stats.invocations += 1
            try:
                function.user_function(**{function.arg_name: [argument] if function.many else argument})
            except Exception as exc:
                attempts = self.ledger.record(function.queue, message, done=False, error=_describe(exc))
                stats.failed_invocations += 1
                if attempts >= self.max_dead_letter_attempts:
                    stats.dead_letters_failed += 1
                stats.errors.append(f"{function.name} (dead letter {message.message_id}, attempt {attempts}): "
                                    f"{_describe(exc)}")
                log.warning("dead-letter function %s failed on %s: %s", function.name, message.message_id,
                            _describe(exc))
                continue
            self.ledger.record(function.queue, message, done=True)
            stats.dead_letters_handled += 1
        return stats


def _failed(stats: DispatchStats, what: str, exc: BaseException) -> None:
    """Count and report an invocation that raised (with its traceback when it is not ours)."""
    stats.failed_invocations += 1
    stats.errors.append(f"{what}: {_describe(exc)}")
    log.warning("%s failed: %s", what, _describe(exc), exc_info=not isinstance(exc, ConnectorError))


def _describe(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}"
