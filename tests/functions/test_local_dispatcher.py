"""The local dispatcher plays the Functions host: sessions, batches, settlement, dead letters."""
from __future__ import annotations

import threading
import time

import azure.functions as func
import pytest

from local.dispatcher import LocalDispatcher, resolve_app_settings, service_bus_functions
from shared.bus.local_bus import MAX_DELIVERY_COUNT_EXCEEDED, LocalBus
from shared.bus.protocol import OutgoingMessage
from shared.errors import ConfigurationError

QUEUE = "orders"


class Recorder:
    """A small Function App whose functions record what the dispatcher hands them."""

    def __init__(self, *, fail_on: bytes | None = None, sleep_s: float = 0.0):
        self.batches: list[list[func.ServiceBusMessage]] = []
        self.dead_letters: list[func.ServiceBusMessage] = []
        self.fail_on = fail_on
        self.sleep_s = sleep_s
        self.lock = threading.Lock()
        self.app = func.FunctionApp(http_auth_level=func.AuthLevel.FUNCTION)
        bp = func.Blueprint()

        @bp.function_name("on_orders")
        @bp.service_bus_queue_trigger(arg_name="messages", queue_name="%ORDERS_QUEUE%", connection="Bus",
                                      is_sessions_enabled=True, cardinality=func.Cardinality.MANY)
        def on_orders(messages):
            time.sleep(self.sleep_s)
            with self.lock:
                self.batches.append(list(messages))
            if self.fail_on is not None and any(m.get_body() == self.fail_on for m in messages):
                raise RuntimeError("cannot process this batch")

        @bp.function_name("on_orders_dead_letters")
        @bp.service_bus_queue_trigger(arg_name="message", queue_name="%ORDERS_QUEUE%/$DeadLetterQueue",
                                      connection="Bus")
        def on_orders_dead_letters(message):
            self.dead_letters.append(message)

        @bp.function_name("every_five_minutes")
        @bp.timer_trigger(arg_name="timer", schedule="0 */5 * * * *")
        def every_five_minutes(timer):
            self.timers.append(timer)
            if self.fail_on == b"timer":
                raise RuntimeError("the timer failed")

        self.timers: list[func.TimerRequest] = []
        self.app.register_functions(bp)

    def bodies(self, session: str) -> list[bytes]:
        return [m.get_body() for batch in self.batches for m in batch if m.session_id == session]


@pytest.fixture
def bus(tmp_path):
    with LocalBus(str(tmp_path / "bus.db"), max_delivery_count=3) as local_bus:
        yield local_bus


def send(bus, session: str, *bodies: bytes, properties=None) -> None:
    bus.send(QUEUE, [OutgoingMessage(body=b, message_id=f"{session}-{b.decode()}", session_id=session,
                                     application_properties=dict(properties or {})) for b in bodies])


def dispatcher_for(recorder: Recorder, bus, **options) -> LocalDispatcher:
    return LocalDispatcher(bus, recorder.app, app_settings={"ORDERS_QUEUE": QUEUE}, **options)


def test_bindings_are_read_with_app_settings_resolved():
    recorder = Recorder()
    functions = {f.name: f for f in service_bus_functions(recorder.app, {"ORDERS_QUEUE": "q1"})}
    assert functions["on_orders"].queue == "q1"
    assert functions["on_orders"].sessions and functions["on_orders"].many
    assert functions["on_orders_dead_letters"].reads_dead_letters
    assert functions["on_orders_dead_letters"].source_queue == "q1"
    with pytest.raises(ConfigurationError, match="ORDERS_QUEUE"):
        service_bus_functions(recorder.app, {})
    assert resolve_app_settings("%A%/x/%B%", {"A": "1", "B": "2"}) == "1/x/2"


def test_messages_are_real_function_messages_in_session_order_and_completed(bus):
    recorder = Recorder()
    send(bus, "D1", b"1", b"2", b"3", properties={"run": "r1"})
    send(bus, "D2", b"a", b"b")
    send(bus, "D1", b"4", b"5")
    dispatcher = dispatcher_for(recorder, bus, max_batch_size=2)

    stats = dispatcher.drain()

    assert recorder.bodies("D1") == [b"1", b"2", b"3", b"4", b"5"]
    assert recorder.bodies("D2") == [b"a", b"b"]
    assert max(len(batch) for batch in recorder.batches) == 2
    assert all(len({m.session_id for m in batch}) == 1 for batch in recorder.batches)
    first = recorder.batches[0][0]
    assert isinstance(first, func.ServiceBusMessage)
    assert first.delivery_count == 1
    assert first.message_id.endswith(first.get_body().decode())
    assert first.sequence_number > 0 and first.enqueued_time_utc is not None
    assert first.content_type == "application/json"
    if first.session_id == "D1":
        assert first.application_properties == {"run": "r1"}
    assert stats.completed == 7 and stats.abandoned == 0 and stats.failed_invocations == 0
    assert stats.pending == {QUEUE: 0}
    assert dispatcher.drain().invocations == 0


def test_a_failing_batch_is_redelivered_then_dead_lettered_and_handed_over_once(bus):
    recorder = Recorder(fail_on=b"bad")
    send(bus, "D1", b"bad")
    send(bus, "D2", b"good")
    dispatcher = dispatcher_for(recorder, bus)

    stats = dispatcher.drain()

    assert [m.delivery_count for batch in recorder.batches for m in batch if m.get_body() == b"bad"] == [1, 2, 3]
    assert recorder.bodies("D2") == [b"good"]
    assert stats.abandoned == 3 and stats.completed == 1 and stats.failed_invocations == 3
    assert len(recorder.dead_letters) == 1
    dead = recorder.dead_letters[0]
    assert dead.get_body() == b"bad" and dead.session_id == "D1"
    assert dead.dead_letter_reason == MAX_DELIVERY_COUNT_EXCEEDED
    assert stats.dead_letters_handled == 1
    # the dead letter stays peekable on the bus but is not handed over again
    assert len(bus.dead_letters(QUEUE)) == 1
    assert dispatcher.drain().dead_letters_handled == 0
    assert len(recorder.dead_letters) == 1
    # nor by a new dispatcher on the same bus file (the ledger lives beside it)
    dispatcher.close()
    again = dispatcher_for(recorder, bus)
    assert again.drain().dead_letters_handled == 0
    assert len(recorder.dead_letters) == 1


def test_session_lock_is_renewed_while_a_long_batch_runs(tmp_path):
    recorder = Recorder(sleep_s=1.0)
    with LocalBus(str(tmp_path / "bus.db"), lock_duration_s=0.3) as short_lock_bus:
        send(short_lock_bus, "D1", b"1")
        stats = dispatcher_for(recorder, short_lock_bus, lock_renewal_interval_s=0.05).drain()
        assert stats.completed == 1 and stats.errors == []
        assert short_lock_bus.pending_count(QUEUE) == 0
        assert [m.delivery_count for batch in recorder.batches for m in batch] == [1]


def test_session_lock_is_renewed_across_many_short_invocations(tmp_path):
    # each invocation is shorter than the renewal interval, the session's whole hold is longer
    # than the lock: the lock is the session's, so it is renewed between invocations too
    recorder = Recorder(sleep_s=0.03)
    bodies = [str(n).encode() for n in range(20)]
    with LocalBus(str(tmp_path / "bus.db"), lock_duration_s=0.3) as short_lock_bus:
        send(short_lock_bus, "D1", *bodies)
        stats = dispatcher_for(recorder, short_lock_bus, max_batch_size=1,
                               lock_renewal_interval_s=0.1).drain()
        assert stats.errors == [] and stats.completed == len(bodies)
        assert short_lock_bus.pending_count(QUEUE) == 0
        assert recorder.bodies("D1") == bodies
        assert {m.delivery_count for batch in recorder.batches for m in batch} == {1}


def test_without_renewal_an_expired_lock_means_redelivery_never_loss(tmp_path):
    recorder = Recorder(sleep_s=0.4)
    with LocalBus(str(tmp_path / "bus.db"), lock_duration_s=0.15, max_delivery_count=2) as short_lock_bus:
        send(short_lock_bus, "D1", b"1")
        stats = dispatcher_for(recorder, short_lock_bus, lock_renewal_interval_s=60).drain()
        assert stats.completed == 0 and stats.errors
        assert [m.delivery_count for batch in recorder.batches for m in batch] == [1, 2]
        assert [m.get_body() for m in recorder.dead_letters] == [b"1"]


def test_timer_functions_are_called_once_per_run_and_their_failures_reported(bus):
    recorder = Recorder()
    dispatcher = dispatcher_for(recorder, bus)
    assert dispatcher.run_timers().errors == []
    assert len(recorder.timers) == 1 and isinstance(recorder.timers[0], func.TimerRequest)
    assert dispatcher.drain().invocations == 0 and len(recorder.timers) == 1   # the bus does not call timers
    recorder.fail_on = b"timer"
    stats = dispatcher.run_timers()
    assert stats.failed_invocations == 1 and "the timer failed" in stats.errors[0]


def test_a_cardinality_one_session_function_gets_one_real_message_per_invocation_in_session_order(bus):
    """As the host's session processor does for `Cardinality.ONE`: one `ServiceBusMessage` per call,
    a session's messages in order, a failing one abandoned alone and dead-lettered without the others."""
    app = func.FunctionApp(http_auth_level=func.AuthLevel.FUNCTION)
    calls: list[func.ServiceBusMessage] = []

    @app.function_name("one_by_one")
    @app.service_bus_queue_trigger(arg_name="message", queue_name="%ORDERS_QUEUE%", connection="Bus",
                                   is_sessions_enabled=True, cardinality=func.Cardinality.ONE)
    def one_by_one(message: func.ServiceBusMessage) -> None:
        calls.append(message)
        if message.get_body() == b"bad":
            raise RuntimeError("cannot process this message")

    [binding] = service_bus_functions(app, {"ORDERS_QUEUE": QUEUE})
    assert binding.sessions and not binding.many
    send(bus, "D1", b"1", b"bad", b"2")
    send(bus, "D2", b"a")

    stats = LocalDispatcher(bus, app, app_settings={"ORDERS_QUEUE": QUEUE}, max_batch_size=50).drain()

    assert all(isinstance(m, func.ServiceBusMessage) for m in calls)
    assert [(m.get_body(), m.delivery_count) for m in calls if m.session_id == "D1"] == [
        (b"1", 1), (b"bad", 1), (b"bad", 2), (b"bad", 3), (b"2", 1)]
    assert [m.get_body() for m in calls if m.session_id == "D2"] == [b"a"]
    assert stats.invocations == len(calls) and stats.completed == 3 and stats.abandoned == 3
    assert [m.body for m in bus.dead_letters(QUEUE)] == [b"bad"]
