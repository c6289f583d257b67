"""Conformance suite of the bus protocol, run against every implementation.

Each implementation is a harness (`BUS_HARNESSES`): it opens buses on one shared storage with
given delivery limits, moves time forward (an injected clock, or real waiting for a broker) and
names a picklable spec that a child process turns back into a bus. Adding an implementation is
one more harness class and one more entry in `BUS_HARNESSES` and `_OPENERS`.
"""
from __future__ import annotations

import multiprocessing
import os
import sqlite3
import threading
import time
import uuid
from pathlib import Path
from typing import Any, Callable

import pytest

from shared.bus.factory import open_bus
from shared.bus.local_bus import LocalBus, LockLostError, MessageTooLargeError
from shared.bus.protocol import Bus, OutgoingMessage, SessionReceiver
from shared.config import BusSettings
from shared.envelope import MAX_MESSAGE_BYTES
from shared.errors import RetryableError

LOCK_S = 60.0
WINDOW_S = 600.0
WORK_S = 0.005


class FakeClock:
    def __init__(self) -> None:
        self.now = time.time()

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


class LocalBusHarness:
    name = "local"

    def __init__(self, tmp_path: Path) -> None:
        self.path = str(tmp_path / "bus.db")
        self.clock = FakeClock()
        self._opened: list[LocalBus] = []

    def open(self, **limits: Any) -> Bus:
        bus = LocalBus(self.path, clock=self.clock, **limits)
        self._opened.append(bus)
        return bus

    def advance(self, seconds: float) -> None:
        self.clock.advance(seconds)

    def child_spec(self, **limits: Any) -> tuple:
        return ("local", self.path, limits)

    def close_all(self) -> None:
        for bus in self._opened:
            bus.close()


def _open_local(path: str, limits: dict) -> Bus:
    return LocalBus(path, **limits)


_OPENERS: dict[str, Callable[..., Bus]] = {"local": _open_local}
BUS_HARNESSES = {"local": LocalBusHarness}


def open_from_spec(spec: tuple) -> Bus:
    kind, *args = spec
    return _OPENERS[kind](*args)


@pytest.fixture(params=sorted(BUS_HARNESSES))
def harness(request, tmp_path):
    h = BUS_HARNESSES[request.param](tmp_path)
    yield h
    h.close_all()


@pytest.fixture
def queue() -> str:
    return f"q-{uuid.uuid4().hex[:12]}"


def msg(session: str, n: int | str, *, body: bytes | None = None, **properties: Any) -> OutgoingMessage:
    return OutgoingMessage(body=body if body is not None else f"{session}:{n}".encode(),
                           message_id=f"{session}-{n}", session_id=session,
                           application_properties=properties)


def drain(bus: Bus, queue: str, session: str, *, chunk: int = 100) -> list[str]:
    """Receive and complete everything in one session; the ids in the order received."""
    receiver = bus.accept_session(queue, session)
    assert receiver is not None
    ids = []
    try:
        while batch := receiver.receive(chunk):
            for m in batch:
                receiver.complete(m)
                ids.append(m.message_id)
    finally:
        receiver.close()
    return ids


# --- ordering ----------------------------------------------------------------------------------
def test_one_session_is_delivered_in_send_order_across_many_sends(harness, queue):
    bus = harness.open()
    sent = []
    for part in range(3):
        batch = [msg("d1", part * 40 + i, kind="change", seq=part * 40 + i) for i in range(40)]
        bus.send(queue, batch)
        sent += [m.message_id for m in batch]

    receiver = bus.accept_session(queue)
    assert isinstance(receiver, SessionReceiver) and receiver.session_id == "d1"
    received = []
    while chunk := receiver.receive(7):
        assert len(chunk) <= 7
        for m in chunk:
            received.append(m)
            receiver.complete(m)
    receiver.close()

    assert [m.message_id for m in received] == sent
    assert [m.sequence_number for m in received] == sorted(m.sequence_number for m in received)
    first = received[0]
    assert first.body == b"d1:0" and first.delivery_count == 1 and first.session_id == "d1"
    assert first.application_properties == {"kind": "change", "seq": 0}
    assert first.content_type == "application/json" and first.enqueued_at.tzinfo is not None
    assert bus.pending_count(queue) == 0


def test_interleaved_sessions_are_each_fifo_and_the_oldest_head_is_offered_first(harness, queue):
    bus = harness.open()
    bus.send(queue, [msg("d2", 0), msg("d3", 0), msg("d2", 1), msg("d1", 0)])
    bus.send(queue, [msg("d1", 1), msg("d2", 2), msg("d3", 1), msg("d1", 2)])

    first, second, third = (bus.accept_session(queue) for _ in range(3))
    assert (first.session_id, second.session_id, third.session_id) == ("d2", "d3", "d1")
    assert bus.accept_session(queue) is None
    assert [m.message_id for m in first.receive(10)] == ["d2-0", "d2-1", "d2-2"]
    assert [m.message_id for m in second.receive(10)] == ["d3-0", "d3-1"]
    assert [m.message_id for m in third.receive(10)] == ["d1-0", "d1-1", "d1-2"]


def test_a_received_message_is_not_received_again_by_its_holder(harness, queue):
    bus = harness.open()
    bus.send(queue, [msg("d1", 0), msg("d1", 1)])
    receiver = bus.accept_session(queue)
    assert [m.message_id for m in receiver.receive(1)] == ["d1-0"]
    assert [m.message_id for m in receiver.receive(1)] == ["d1-1"]
    assert receiver.receive(1) == []


# --- session locks -----------------------------------------------------------------------------
def test_a_locked_session_is_not_given_to_a_second_receiver_until_closed(harness, queue):
    bus, other = harness.open(), harness.open()
    bus.send(queue, [msg("d1", 0), msg("d1", 1)])
    holder = bus.accept_session(queue, "d1")
    assert holder is not None

    assert other.accept_session(queue, "d1") is None
    assert other.accept_session(queue) is None
    bus.send(queue, [msg("d2", 0)])
    assert other.accept_session(queue).session_id == "d2"

    holder.close()
    taker = other.accept_session(queue, "d1")
    assert taker is not None
    assert [m.message_id for m in taker.receive(5)] == ["d1-0", "d1-1"]


def test_an_expired_session_lock_passes_the_session_on_and_the_old_holder_cannot_settle(harness, queue):
    bus, other = harness.open(lock_duration_s=LOCK_S), harness.open(lock_duration_s=LOCK_S)
    bus.send(queue, [msg("d1", 0)])
    holder = bus.accept_session(queue, "d1")
    [stale] = holder.receive()

    harness.advance(LOCK_S + 1)
    taker = other.accept_session(queue, "d1")
    assert taker is not None
    with pytest.raises(LockLostError) as lost:
        holder.complete(stale)
    assert isinstance(lost.value, RetryableError) and lost.value.user_message
    with pytest.raises(LockLostError):
        holder.renew_lock()

    [again] = taker.receive()
    assert again.message_id == "d1-0" and again.delivery_count == 2
    taker.complete(again)
    assert bus.pending_count(queue) == 0


def test_renewing_the_session_lock_keeps_the_session_and_its_messages(harness, queue):
    bus, other = harness.open(lock_duration_s=LOCK_S), harness.open(lock_duration_s=LOCK_S)
    bus.send(queue, [msg("d1", 0)])
    holder = bus.accept_session(queue, "d1")
    [m] = holder.receive()
    harness.advance(LOCK_S * 0.7)
    holder.renew_lock()
    harness.advance(LOCK_S * 0.7)

    assert other.accept_session(queue, "d1") is None
    holder.complete(m)
    assert bus.pending_count(queue) == 0


def test_settling_twice_or_after_close_raises_lock_lost(harness, queue):
    bus = harness.open()
    bus.send(queue, [msg("d1", 0), msg("d1", 1)])
    receiver = bus.accept_session(queue, "d1")
    first, second = receiver.receive(2)
    receiver.complete(first)
    with pytest.raises(LockLostError):
        receiver.complete(first)
    receiver.close()
    with pytest.raises(LockLostError):
        receiver.complete(second)
    assert bus.pending_count(queue) == 1


# --- redelivery ----------------------------------------------------------------------------------
def test_a_receiver_that_disappears_before_completing_gets_its_message_redelivered(harness, queue):
    bus = harness.open(lock_duration_s=LOCK_S)
    bus.send(queue, [msg("d1", 0), msg("d1", 1)])
    crashed = bus.accept_session(queue)
    [lost] = crashed.receive()
    assert lost.delivery_count == 1
    del crashed

    assert bus.accept_session(queue) is None
    harness.advance(LOCK_S + 1)
    receiver = bus.accept_session(queue)
    again, after = receiver.receive(2)
    assert (again.message_id, again.delivery_count, again.body) == ("d1-0", 2, b"d1:0")
    assert (after.message_id, after.delivery_count) == ("d1-1", 1)


def test_closing_without_settling_makes_the_messages_available_again(harness, queue):
    bus = harness.open()
    bus.send(queue, [msg("d1", 0), msg("d1", 1)])
    receiver = bus.accept_session(queue)
    receiver.receive(2)
    receiver.close()

    receiver = bus.accept_session(queue)
    assert [(m.message_id, m.delivery_count) for m in receiver.receive(2)] == [("d1-0", 2), ("d1-1", 2)]


def test_an_abandoned_message_comes_back_first(harness, queue):
    bus = harness.open()
    bus.send(queue, [msg("d1", i) for i in range(3)])
    receiver = bus.accept_session(queue)
    first, second = receiver.receive(2)
    receiver.abandon(first)
    receiver.complete(second)

    again, third = receiver.receive(5)
    assert (again.message_id, again.delivery_count) == ("d1-0", 2)
    assert (third.message_id, third.delivery_count) == ("d1-2", 1)


def test_a_message_abandoned_max_delivery_count_times_is_dead_lettered(harness, queue):
    bus = harness.open(max_delivery_count=3)
    bus.send(queue, [msg("d1", 0), msg("d1", 1)])
    receiver = bus.accept_session(queue)
    for delivery in range(1, 4):
        [poison] = receiver.receive()
        assert (poison.message_id, poison.delivery_count) == ("d1-0", delivery)
        receiver.abandon(poison)

    [nxt] = receiver.receive(5)
    assert nxt.message_id == "d1-1"
    [dead] = bus.dead_letters(queue)
    assert (dead.message_id, dead.body, dead.delivery_count) == ("d1-0", b"d1:0", 3)
    assert dead.dead_letter_reason == "MaxDeliveryCountExceeded"
    assert bus.pending_count(queue) == 1


def test_a_message_whose_lock_keeps_expiring_is_dead_lettered(harness, queue):
    bus = harness.open(max_delivery_count=2, lock_duration_s=LOCK_S)
    bus.send(queue, [msg("d1", 0)])
    for _ in range(2):
        bus.accept_session(queue).receive()
        harness.advance(LOCK_S + 1)

    assert bus.accept_session(queue) is None
    assert [m.dead_letter_reason for m in bus.dead_letters(queue, "d1")] == ["MaxDeliveryCountExceeded"]
    assert bus.pending_count(queue) == 0


def test_explicit_dead_letter_keeps_reason_and_description_and_is_not_redelivered(harness, queue):
    bus = harness.open()
    bus.send(queue, [msg("d1", 0, entity="contact"), msg("d1", 1), msg("d2", 0)])
    receiver = bus.accept_session(queue, "d1")
    bad, good = receiver.receive(2)
    receiver.dead_letter(bad, "InvalidEnvelope", "schema version 9 is not supported")
    receiver.complete(good)
    receiver.close()

    assert bus.accept_session(queue).session_id == "d2"
    [dead] = bus.dead_letters(queue, "d1")
    assert (dead.message_id, dead.dead_letter_reason, dead.dead_letter_description) == (
        "d1-0", "InvalidEnvelope", "schema version 9 is not supported")
    assert dead.application_properties == {"entity": "contact"}
    assert bus.dead_letters(queue, "d2") == []
    assert len(bus.dead_letters(queue)) == 1
    assert bus.pending_count(queue, "d1") == 0


# --- sending ------------------------------------------------------------------------------------
def test_duplicate_ids_are_dropped_within_the_window_and_accepted_after_it(harness, queue):
    bus = harness.open(duplicate_window_s=WINDOW_S)
    bus.send(queue, [msg("d1", "a"), msg("d1", "a", body=b"other"), msg("d1", "b")])
    assert drain(bus, queue, "d1") == ["d1-a", "d1-b"]

    harness.advance(WINDOW_S / 2)
    bus.send(queue, [msg("d1", "a"), msg("d1", "c")])
    assert drain(bus, queue, "d1") == ["d1-c"]

    harness.advance(WINDOW_S / 2 + 1)
    bus.send(queue, [msg("d1", "a")])
    assert drain(bus, queue, "d1") == ["d1-a"]


def test_duplicate_detection_is_per_queue(harness, queue):
    bus = harness.open()
    bus.send(queue, [msg("d1", 0)])
    bus.send(queue + "-other", [msg("d1", 0)])
    assert bus.pending_count(queue) == 1 and bus.pending_count(queue + "-other") == 1


def test_a_send_with_one_bad_message_accepts_none_of_them(harness, queue):
    bus = harness.open()
    good = [msg("d1", 0), msg("d2", 0)]
    too_large = msg("d1", 1, body=b"x" * (MAX_MESSAGE_BYTES + 1))
    with pytest.raises(MessageTooLargeError):
        bus.send(queue, good + [too_large])
    with pytest.raises(ValueError):
        bus.send(queue, good + [OutgoingMessage(b"{}", message_id="no-session", session_id="")])
    assert bus.pending_count(queue) == 0

    bus.send(queue, good)
    assert bus.pending_count(queue) == 2


def test_pending_count_counts_waiting_and_locked_messages_but_not_dead_letters(harness, queue):
    bus = harness.open()
    assert bus.pending_count(queue) == 0
    bus.send(queue, [msg("d1", i) for i in range(3)] + [msg("d2", i) for i in range(2)])
    receiver = bus.accept_session(queue, "d1")
    first, second = receiver.receive(2)
    assert (bus.pending_count(queue), bus.pending_count(queue, "d1"), bus.pending_count(queue, "d2")) == (5, 3, 2)
    receiver.complete(first)
    receiver.dead_letter(second, "Test")
    assert (bus.pending_count(queue), bus.pending_count(queue, "d1")) == (3, 1)
    assert bus.pending_count(queue, "d9") == 0


# --- waiting ------------------------------------------------------------------------------------
def test_waiting_receivers_get_what_is_sent_meanwhile(harness, queue):
    bus, sender_bus = harness.open(), harness.open()
    started = time.monotonic()
    assert bus.accept_session(queue, max_wait_s=0.3) is None
    assert time.monotonic() - started >= 0.3

    def send_later(message: OutgoingMessage) -> threading.Timer:
        timer = threading.Timer(0.2, sender_bus.send, args=(queue, [message]))
        timer.start()
        return timer

    timer = send_later(msg("d1", 0))
    try:
        receiver = bus.accept_session(queue, max_wait_s=5)
    finally:
        timer.join()
    assert receiver is not None and receiver.session_id == "d1"
    assert [m.message_id for m in receiver.receive(1)] == ["d1-0"]

    timer = send_later(msg("d1", 1))
    try:
        assert [m.message_id for m in receiver.receive(1, max_wait_s=5)] == ["d1-1"]
    finally:
        timer.join()


# --- durability and competition -------------------------------------------------------------------
def test_messages_locks_dead_letters_and_seen_ids_survive_a_restart(harness, queue):
    bus = harness.open(max_delivery_count=1, lock_duration_s=LOCK_S)
    bus.send(queue, [msg("d1", i) for i in range(4)])
    receiver = bus.accept_session(queue)
    first, poison = receiver.receive(2)
    receiver.complete(first)
    receiver.abandon(poison)
    bus.close()

    reopened = harness.open(max_delivery_count=1, lock_duration_s=LOCK_S)
    assert reopened.pending_count(queue) == 2
    assert reopened.accept_session(queue) is None
    harness.advance(LOCK_S + 1)
    assert [m.message_id for m in reopened.dead_letters(queue)] == ["d1-1"]
    reopened.send(queue, [msg("d1", 0), msg("d1", 3), msg("d1", 4)])
    assert drain(reopened, queue, "d1") == ["d1-2", "d1-3", "d1-4"]


def _compete(spec: tuple, queue: str, start: Any, results: Any, worker: str) -> None:
    """Take sessions until none is left, completing at most a few messages per turn."""
    bus = open_from_spec(spec)
    start.wait()
    idle = 0
    try:
        while idle < 3:
            receiver = bus.accept_session(queue, max_wait_s=0.2)
            if receiver is None:
                idle += 1
                continue
            idle = 0
            held_from = time.time()
            done = []
            for m in receiver.receive(4):
                time.sleep(WORK_S)
                receiver.complete(m)
                done.append(m.message_id)
            held_until = time.time()
            receiver.close()
            results.put((worker, receiver.session_id, held_from, held_until, done))
    finally:
        bus.close()
        results.put((worker, None, 0.0, 0.0, []))


@pytest.mark.slow
@pytest.mark.parametrize("workers", ["processes", "threads"])
def test_competing_consumers_never_share_a_session_and_complete_everything_once(harness, queue, workers):
    sessions = [f"d{i}" for i in range(6)]
    bus = harness.open()
    sent = {s: [] for s in sessions}
    for round_ in range(5):
        batch = [msg(s, round_ * 6 + i) for s in sessions for i in range(6)]
        bus.send(queue, batch)
        for m in batch:
            sent[m.session_id].append(m.message_id)

    spec = harness.child_spec()
    if workers == "processes":
        ctx = multiprocessing.get_context("spawn")
        start, results = ctx.Barrier(2), ctx.Queue()
        runners = [ctx.Process(target=_compete, args=(spec, queue, start, results, f"w{i}")) for i in range(2)]
    else:
        import queue as queue_module
        start, results = threading.Barrier(2), queue_module.Queue()
        runners = [threading.Thread(target=_compete, args=(spec, queue, start, results, f"w{i}")) for i in range(2)]
    for runner in runners:
        runner.start()
    turns, finished = [], 0
    while finished < 2:
        worker, session, held_from, held_until, done = results.get(timeout=120)
        if session is None:
            finished += 1
        else:
            turns.append((worker, session, held_from, held_until, done))
    for runner in runners:
        runner.join(timeout=30)

    completed = [mid for *_, done in turns for mid in done]
    assert sorted(completed) == sorted(mid for ids in sent.values() for mid in ids)
    for session in sessions:
        in_order = [mid for _, s, *_, done in sorted(turns, key=lambda t: t[2]) if s == session for mid in done]
        assert in_order == sent[session]
    assert {worker for worker, *_ in turns} == {"w0", "w1"}
    for a in turns:
        for b in turns:
            if a[0] != b[0] and a[1] == b[1]:
                assert a[3] <= b[2] or b[3] <= a[2], f"{a[0]} and {b[0]} held {a[1]} at the same time"
    assert bus.pending_count(queue) == 0


def _receive_and_die(spec: tuple, queue: str) -> None:
    bus = open_from_spec(spec)
    receiver = bus.accept_session(queue)
    receiver.receive(1)
    os._exit(3)


@pytest.mark.slow
def test_a_process_killed_before_completing_leaves_its_message_to_the_next_receiver_at_once(harness, queue):
    bus = harness.open(lock_duration_s=LOCK_S)
    bus.send(queue, [msg("d1", 0)])
    child = multiprocessing.get_context("spawn").Process(
        target=_receive_and_die, args=(harness.child_spec(lock_duration_s=LOCK_S), queue))
    child.start()
    child.join(timeout=60)
    assert child.exitcode == 3

    # The holder is gone (same host, its PID no longer runs): its session lock is taken over
    # now, not when it would have expired, and the message it held counts one delivery.
    receiver = bus.accept_session(queue)
    [again] = receiver.receive()
    assert (again.message_id, again.delivery_count) == ("d1-0", 2)
    [taken] = bus.taken_over()
    assert (taken.queue, taken.session_id, taken.owner.pid, taken.messages) == (queue, "d1", child.pid, 1)
    assert bus.taken_over() == []


def test_a_session_held_by_a_live_process_or_another_host_is_taken_over_once_its_heartbeat_is_stale(tmp_path):
    import json
    import socket

    clock = FakeClock()
    with LocalBus(str(tmp_path / "bus.db"), clock=clock, lock_duration_s=LOCK_S) as bus:
        bus.send("q", [msg("d1", 0), msg("d2", 0)])
        held = [bus.accept_session("q", "d1"), bus.accept_session("q", "d2")]
        for receiver in held:
            receiver.receive()
        other_host = json.dumps({"host": socket.gethostname() + "-other", "pid": 1, "started": ""})
        with sqlite3.connect(bus.path) as conn:     # d2's holder: a process on another machine
            conn.execute("UPDATE sessions SET owner = ? WHERE session_id = 'd2'", (other_host,))

        assert bus.accept_session("q") is None and bus.taken_over() == []
        clock.advance(LOCK_S + 1)             # no renewal (heartbeat) since: both locks are stale

        assert bus.accept_session("q") is not None
        taken = {(t.session_id, t.reason, t.messages) for t in bus.taken_over()}
        assert taken == {("d1", "expired", 1), ("d2", "expired", 1)}


# --- local bus specifics ----------------------------------------------------------------------------
def test_local_bus_lists_sessions_with_messages_oldest_first(tmp_path):
    with LocalBus(str(tmp_path / "bus.db")) as bus:
        bus.send("q", [msg("d2", 0), msg("d1", 0), msg("d2", 1)])
        assert bus.sessions_with_messages("q") == ["d2", "d1"]
        drain(bus, "q", "d2")
        assert bus.sessions_with_messages("q") == ["d1"]
        assert bus.sessions_with_messages("other") == []


def test_local_bus_dates_the_oldest_pending_message_of_a_session(tmp_path):
    clock = FakeClock()
    with LocalBus(str(tmp_path / "bus.db"), clock=clock) as bus:
        assert bus.oldest_pending_at("q") is None
        bus.send("q", [msg("d1", 0)])
        first_sent = clock.now
        clock.advance(30)
        bus.send("q", [msg("d2", 0), msg("d1", 1)])
        assert bus.oldest_pending_at("q", "d1").timestamp() == pytest.approx(first_sent)
        assert bus.oldest_pending_at("q", "d2").timestamp() == pytest.approx(first_sent + 30)
        assert bus.oldest_pending_at("q").timestamp() == pytest.approx(first_sent)
        drain(bus, "q", "d1")
        assert bus.oldest_pending_at("q").timestamp() == pytest.approx(first_sent + 30)
        assert bus.oldest_pending_at("q", "d1") is None


def test_local_bus_file_is_in_wal_mode_and_created_with_its_folder(tmp_path):
    path = tmp_path / "var" / "sub" / "bus.db"
    LocalBus(str(path)).close()
    with sqlite3.connect(path) as conn:
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


def test_open_bus_builds_a_local_bus_from_settings(tmp_path):
    settings = BusSettings(kind="local", path=str(tmp_path / "bus.db"), max_delivery_count=2)
    bus = open_bus(settings)
    try:
        assert isinstance(bus, LocalBus) and bus.max_delivery_count == 2
        bus.send("q", [msg("d1", 0)])
    finally:
        bus.close()
    with LocalBus(settings.path) as again:
        assert again.pending_count("q") == 1
