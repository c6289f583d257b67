"""The Service Bus adapter at the SDK boundary: what it asks azure-servicebus to do.

No broker runs here (the Service Bus emulator needs Docker). `StandInServiceBusClient` exposes
the methods of `ServiceBusClient` the adapter uses and keeps what is sent in memory. Everything
that crosses the boundary is the SDK's own: outgoing messages are packed in real
`ServiceBusMessageBatch`es (with their size accounting), and received messages are real
`ServiceBusReceivedMessage`s decoded from AMQP bytes encoded by the SDK's codec, with the
broker's annotations (sequence number, enqueued time, lock token) and AMQP delivery count.
"""
from __future__ import annotations

import datetime as dt
import itertools
import uuid
from collections import defaultdict
from types import SimpleNamespace
from typing import Any, Optional

import pytest
from azure.core.exceptions import ClientAuthenticationError, HttpResponseError
from azure.servicebus import NEXT_AVAILABLE_SESSION, ServiceBusMessage, ServiceBusMessageBatch, \
    ServiceBusReceivedMessage, ServiceBusReceiveMode, ServiceBusSubQueue
from azure.servicebus._pyamqp._encode import encode_payload
from azure.servicebus._pyamqp.message import Header
from azure.servicebus._pyamqp.types import TYPE, VALUE, AMQPTypes
from azure.servicebus._transport._pyamqp_transport import PyamqpTransport
from azure.servicebus.exceptions import MessageLockLostError, MessagingEntityNotFoundError, \
    OperationTimeoutError, ServiceBusConnectionError, ServiceBusServerBusyError, SessionCannotBeLockedError, \
    SessionLockLostError

from shared.adapters import service_bus
from shared.adapters.service_bus import ServiceBusAdapter
from shared.bus.factory import open_bus
from shared.bus.local_bus import BusUnavailableError, LockLostError, MessageTooLargeError
from shared.bus.protocol import Bus, OutgoingMessage, SessionReceiver
from shared.config import BusSettings
from shared.envelope import MAX_MESSAGE_BYTES
from shared.errors import ConfigurationError, RetryableError

QUEUE = "sage-changes"


class _Stored:
    def __init__(self, sequence_number: int, message: ServiceBusMessage, enqueued_at: dt.datetime):
        self.sequence_number = sequence_number
        self.message = message
        self.enqueued_at = enqueued_at
        self.previous_deliveries = 0
        self.locked = False
        self.dead_letter: Optional[tuple[str, str]] = None


class StandInServiceBusClient:
    """Records calls and keeps messages like a session-enabled queue would."""

    def __init__(self, *, max_batch_bytes: int = MAX_MESSAGE_BYTES):
        self.max_batch_bytes = max_batch_bytes
        self.calls: list[tuple] = []
        self.sent_batches: list[tuple[str, list[ServiceBusMessage]]] = []
        self.stored: dict[str, list[_Stored]] = defaultdict(list)
        self.locked_sessions: set[tuple[str, str]] = set()
        self.fail_next: dict[str, BaseException] = {}
        self.closed = False
        self._sequence = itertools.count(1000)

    def get_queue_sender(self, queue_name: str, **kwargs: Any) -> "StandInSender":
        self.calls.append(("get_queue_sender", queue_name, kwargs))
        return StandInSender(self, queue_name)

    def get_queue_receiver(self, queue_name: str, **kwargs: Any) -> "StandInReceiver":
        self.calls.append(("get_queue_receiver", queue_name, kwargs))
        return StandInReceiver(self, queue_name, **kwargs)

    def close(self) -> None:
        self.closed = True

    def raise_if_told(self, operation: str) -> None:
        if operation in self.fail_next:
            raise self.fail_next.pop(operation)

    def accept(self, queue: str, batch: ServiceBusMessageBatch) -> None:
        messages = list(batch._messages)  # what the real sender would put on the wire
        self.sent_batches.append((queue, messages))
        now = dt.datetime.now(dt.timezone.utc)
        self.stored[queue] += [_Stored(next(self._sequence), m, now) for m in messages]

    def calls_named(self, name: str) -> list[tuple]:
        return [c for c in self.calls if c[0] == name]


class StandInSender:
    def __init__(self, client: StandInServiceBusClient, queue: str):
        self.client, self.queue = client, queue
        self.closed = False

    def create_message_batch(self, max_size_in_bytes: Optional[int] = None) -> ServiceBusMessageBatch:
        return ServiceBusMessageBatch(max_size_in_bytes=max_size_in_bytes or self.client.max_batch_bytes)

    def send_messages(self, batch: ServiceBusMessageBatch, **kwargs: Any) -> None:
        self.client.calls.append(("send_messages", self.queue, len(batch)))
        self.client.raise_if_told("send_messages")
        self.client.accept(self.queue, batch)

    def close(self) -> None:
        self.closed = True


class StandInSession:
    def __init__(self, receiver: "StandInReceiver"):
        self._receiver = receiver

    @property
    def session_id(self) -> str:
        return self._receiver.session_id

    def renew_lock(self, **kwargs: Any) -> dt.datetime:
        self._receiver.client.calls.append(("renew_lock", self.session_id))
        self._receiver.client.raise_if_told("renew_lock")
        return dt.datetime.now(dt.timezone.utc) + dt.timedelta(seconds=60)


def _received(stored: _Stored, *, lock_token: Optional[uuid.UUID]) -> ServiceBusReceivedMessage:
    """The message as the broker would deliver it, decoded by the SDK from AMQP bytes."""
    amqp = PyamqpTransport.to_outgoing_amqp_message(stored.message.raw_amqp_message)
    annotations = dict(amqp.message_annotations or {})
    annotations[b"x-opt-sequence-number"] = {TYPE: AMQPTypes.long, VALUE: stored.sequence_number}
    annotations[b"x-opt-enqueued-time"] = stored.enqueued_at
    properties = dict(amqp.application_properties or {})
    if stored.dead_letter:
        properties[b"DeadLetterReason"], properties[b"DeadLetterErrorDescription"] = stored.dead_letter
    amqp = amqp._replace(header=Header(delivery_count=stored.previous_deliveries), message_annotations=annotations,
                         application_properties=properties,
                         delivery_annotations={b"x-opt-lock-token": lock_token} if lock_token else None)
    return ServiceBusReceivedMessage.from_bytes(bytes(encode_payload(bytearray(), amqp)))


class StandInReceiver:
    def __init__(self, client: StandInServiceBusClient, queue: str, *, session_id: Any = None,
                 sub_queue: Any = None, max_wait_time: Optional[float] = None, receive_mode: Any = None, **_: Any):
        self.client, self.queue = client, queue
        self.requested_session, self.sub_queue = session_id, sub_queue
        self.session_id: Optional[str] = None
        self.session = StandInSession(self)
        self._delivered: dict[str, _Stored] = {}

    def __enter__(self) -> "StandInReceiver":
        self.client.calls.append(("open", self.queue, self.requested_session))
        self.client.raise_if_told("open")
        if self.sub_queue is not None:
            return self
        if self.requested_session is NEXT_AVAILABLE_SESSION:
            free = [s.message.session_id for s in self.client.stored[self.queue]
                    if (self.queue, s.message.session_id) not in self.client.locked_sessions and not s.dead_letter]
            if not free:
                raise OperationTimeoutError(message="no session available")
            self.session_id = free[0]
        elif (self.queue, self.requested_session) in self.client.locked_sessions:
            raise SessionCannotBeLockedError(message="session is locked by another receiver")
        else:
            self.session_id = self.requested_session
        self.client.locked_sessions.add((self.queue, self.session_id))
        return self

    def __exit__(self, *exc_info: Any) -> None:
        self.close()

    def receive_messages(self, max_message_count: int = 1, max_wait_time: Optional[float] = None):
        self.client.calls.append(("receive_messages", self.session_id, max_message_count, max_wait_time))
        self.client.raise_if_told("receive_messages")
        available = [s for s in self.client.stored[self.queue]
                     if s.message.session_id == self.session_id and not s.locked and not s.dead_letter]
        received = []
        for stored in available[:max_message_count]:
            stored.locked = True
            message = _received(stored, lock_token=uuid.uuid4())
            self._delivered[str(message.lock_token)] = stored
            received.append(message)
        return received

    def _settle(self, operation: str, message: ServiceBusReceivedMessage, *details: Any) -> _Stored:
        self.client.calls.append((operation, message.message_id, *details))
        self.client.raise_if_told(operation)
        return self._delivered.pop(str(message.lock_token))

    def complete_message(self, message: ServiceBusReceivedMessage) -> None:
        self.client.stored[self.queue].remove(self._settle("complete_message", message))

    def abandon_message(self, message: ServiceBusReceivedMessage) -> None:
        stored = self._settle("abandon_message", message)
        stored.locked, stored.previous_deliveries = False, stored.previous_deliveries + 1

    def dead_letter_message(self, message: ServiceBusReceivedMessage, reason: Optional[str] = None,
                            error_description: Optional[str] = None) -> None:
        stored = self._settle("dead_letter_message", message, reason, error_description)
        stored.locked, stored.dead_letter = False, (reason.encode(), error_description.encode())

    def peek_messages(self, max_message_count: int = 1, *, sequence_number: int = 0, **_: Any):
        self.client.calls.append(("peek_messages", self.sub_queue, max_message_count, sequence_number))
        dead = [s for s in self.client.stored[self.queue] if s.dead_letter and s.sequence_number >= sequence_number]
        return [_received(s, lock_token=None) for s in dead[:max_message_count]]

    def close(self) -> None:
        self.client.calls.append(("close_receiver", self.queue, self.session_id))
        for stored in self._delivered.values():
            stored.locked, stored.previous_deliveries = False, stored.previous_deliveries + 1
        self._delivered.clear()
        self.client.locked_sessions.discard((self.queue, self.session_id))


class StandInAdministrationClient:
    def __init__(self, active: int = 0, error: Optional[BaseException] = None):
        self.active, self.error = active, error
        self.asked: list[str] = []
        self.closed = False

    def get_queue_runtime_properties(self, queue_name: str):
        self.asked.append(queue_name)
        if self.error:
            raise self.error
        return SimpleNamespace(active_message_count=self.active, dead_letter_message_count=0)

    def close(self) -> None:
        self.closed = True


def msg(session: str, n: int, *, body: bytes | None = None, **properties: Any) -> OutgoingMessage:
    return OutgoingMessage(body=body if body is not None else f"{session}:{n}".encode(),
                           message_id=f"{session}-{n}", session_id=session, application_properties=properties)


@pytest.fixture
def client() -> StandInServiceBusClient:
    return StandInServiceBusClient()


@pytest.fixture
def bus(client) -> ServiceBusAdapter:
    return ServiceBusAdapter(client, admin_client=StandInAdministrationClient(active=7), min_wait_s=0.5)


# --- sending ----------------------------------------------------------------------------------
def test_send_builds_one_service_bus_message_per_message_with_ids_properties_and_content_type(client, bus):
    bus.send(QUEUE, [msg("d1", 0, kind="change", count=3, final=True),
                     OutgoingMessage(b"<x/>", "d1-1", "d1", {}, content_type="application/xml")])

    [(queue, sent)] = client.sent_batches
    assert queue == QUEUE
    assert [(m.message_id, m.session_id, m.content_type) for m in sent] == [
        ("d1-0", "d1", "application/json"), ("d1-1", "d1", "application/xml")]
    assert b"".join(sent[0].body) == b"d1:0"
    assert sent[0].application_properties == {"kind": "change", "count": 3, "final": True}


def test_send_packs_each_session_apart_keeps_order_and_drops_repeated_ids(client, bus):
    bus.send(QUEUE, [msg("d1", 0), msg("d2", 0), msg("d1", 1), msg("d1", 0), msg("d2", 1)])

    assert [[(m.session_id, m.message_id) for m in batch] for _, batch in client.sent_batches] == [
        [("d1", "d1-0"), ("d1", "d1-1")], [("d2", "d2-0"), ("d2", "d2-1")]]


def test_one_sender_per_queue_is_created_and_reused(client, bus):
    bus.send(QUEUE, [msg("d1", 0)])
    bus.send(QUEUE, [msg("d1", 1)])
    bus.send("sage-commands", [msg("d1", 2)])
    assert [c[1] for c in client.calls_named("get_queue_sender")] == [QUEUE, "sage-commands"]


def test_a_session_larger_than_one_batch_is_split_in_order_within_the_size_limit():
    client = StandInServiceBusClient(max_batch_bytes=4096)
    bus = ServiceBusAdapter(client)
    messages = [msg("d1", i, body=b"x" * 1000) for i in range(12)]
    bus.send(QUEUE, messages)

    batches = [batch for _, batch in client.sent_batches]
    assert len(batches) >= 3
    assert [m.message_id for batch in batches for m in batch] == [m.message_id for m in messages]
    for batch in batches:
        packed = ServiceBusMessageBatch(max_size_in_bytes=4096)
        for m in batch:
            packed.add_message(m)
        assert packed.size_in_bytes <= 4096


def test_a_message_too_big_for_a_batch_fails_the_send_before_anything_leaves():
    client = StandInServiceBusClient(max_batch_bytes=4096)
    bus = ServiceBusAdapter(client)
    with pytest.raises(MessageTooLargeError) as refused:
        bus.send(QUEUE, [msg("d1", 0), msg("d2", 0, body=b"x" * 5000)])
    assert "d2-0" in refused.value.detail and "4096" in refused.value.detail
    assert client.calls_named("send_messages") == []


def test_a_message_over_the_service_bus_limit_is_refused_without_asking_the_sdk(client, bus):
    with pytest.raises(MessageTooLargeError):
        bus.send(QUEUE, [msg("d1", 0, body=b"x" * (MAX_MESSAGE_BYTES + 1))])
    assert client.calls_named("get_queue_sender") == []


@pytest.mark.parametrize("sdk_error, expected", [
    (ServiceBusConnectionError(message="connection reset"), BusUnavailableError),
    (ServiceBusServerBusyError(message="server busy"), BusUnavailableError),
    (MessagingEntityNotFoundError(message="no such queue"), ConfigurationError),
])
def test_send_errors_become_connector_errors(client, bus, sdk_error, expected):
    client.fail_next["send_messages"] = sdk_error
    with pytest.raises(expected) as raised:
        bus.send(QUEUE, [msg("d1", 0)])
    assert raised.value.user_message and type(sdk_error).__name__ in raised.value.detail
    assert raised.value.__cause__ is sdk_error
    assert isinstance(raised.value, RetryableError) == (expected is BusUnavailableError)


# --- sessions and receiving --------------------------------------------------------------------
def test_accept_session_asks_for_the_next_available_session_in_peek_lock_mode(client, bus):
    bus.send(QUEUE, [msg("d2", 0), msg("d1", 0)])
    receiver = bus.accept_session(QUEUE, max_wait_s=3)

    (_, queue, kwargs), = client.calls_named("get_queue_receiver")
    assert queue == QUEUE
    assert kwargs["session_id"] is NEXT_AVAILABLE_SESSION
    assert kwargs["receive_mode"] == ServiceBusReceiveMode.PEEK_LOCK
    assert kwargs["max_wait_time"] == 3
    assert isinstance(receiver, SessionReceiver) and receiver.session_id == "d2"


def test_accept_session_names_the_session_and_waits_at_least_the_minimum(client, bus):
    bus.send(QUEUE, [msg("d1", 0)])
    receiver = bus.accept_session(QUEUE, "d1")
    (_, _, kwargs), = client.calls_named("get_queue_receiver")
    assert kwargs["session_id"] == "d1" and kwargs["max_wait_time"] == 0.5
    assert receiver.session_id == "d1"


def test_no_free_session_or_a_locked_one_gives_none_and_closes_the_receiver(client, bus):
    assert bus.accept_session(QUEUE) is None
    bus.send(QUEUE, [msg("d1", 0)])
    holder = bus.accept_session(QUEUE, "d1")
    assert bus.accept_session(QUEUE, "d1") is None
    assert bus.accept_session(QUEUE) is None
    assert len(client.calls_named("close_receiver")) == 3
    assert holder.session_id == "d1"


def test_received_messages_are_converted_to_the_protocol(client, bus):
    bus.send(QUEUE, [msg("d1", 0, kind="change", count=3)])
    receiver = bus.accept_session(QUEUE)
    [received] = receiver.receive(5)

    assert received.body == b"d1:0" and received.message_id == "d1-0" and received.session_id == "d1"
    assert received.delivery_count == 1
    assert received.application_properties == {"kind": "change", "count": 3}
    assert received.sequence_number >= 1000
    assert received.enqueued_at.tzinfo is not None
    assert isinstance(received.lock_token, str) and uuid.UUID(received.lock_token)
    assert received.content_type == "application/json"
    assert received.dead_letter_reason is None


def test_receive_asks_for_the_count_and_waits_at_least_the_minimum(client, bus):
    bus.send(QUEUE, [msg("d1", 0)])
    receiver = bus.accept_session(QUEUE)
    receiver.receive(10)
    receiver.receive(3, max_wait_s=2)
    assert client.calls_named("receive_messages") == [("receive_messages", "d1", 10, 0.5),
                                                      ("receive_messages", "d1", 3, 2)]


def test_settlements_reach_the_sdk_with_the_received_sdk_message(client, bus):
    bus.send(QUEUE, [msg("d1", i) for i in range(3)])
    receiver = bus.accept_session(QUEUE)
    first, second, third = receiver.receive(3)
    receiver.complete(first)
    receiver.abandon(second)
    receiver.dead_letter(third, "InvalidEnvelope", "schema version 9")

    assert [c for c in client.calls if c[0].endswith("_message")] == [
        ("complete_message", "d1-0"), ("abandon_message", "d1-1"),
        ("dead_letter_message", "d1-2", "InvalidEnvelope", "schema version 9")]
    [again] = receiver.receive(5)
    assert (again.message_id, again.delivery_count) == ("d1-1", 2)


def test_renew_lock_renews_the_session_and_close_closes_the_receiver(client, bus):
    bus.send(QUEUE, [msg("d1", 0)])
    receiver = bus.accept_session(QUEUE)
    receiver.renew_lock()
    receiver.close()
    assert client.calls_named("renew_lock") == [("renew_lock", "d1")]
    assert client.calls_named("close_receiver") == [("close_receiver", QUEUE, "d1")]


def test_settling_a_message_this_receiver_does_not_hold_raises_lock_lost_without_asking_the_sdk(client, bus):
    bus.send(QUEUE, [msg("d1", 0)])
    receiver = bus.accept_session(QUEUE)
    [received] = receiver.receive()
    receiver.complete(received)
    with pytest.raises(LockLostError):
        receiver.complete(received)
    assert len(client.calls_named("complete_message")) == 1


@pytest.mark.parametrize("operation, sdk_error", [
    ("complete_message", MessageLockLostError(message="lock expired")),
    ("complete_message", SessionLockLostError(message="session lock expired")),
    ("abandon_message", SessionLockLostError(message="session lock expired")),
    ("renew_lock", SessionLockLostError(message="session lock expired")),
])
def test_lost_locks_become_lock_lost_errors(client, bus, operation, sdk_error):
    bus.send(QUEUE, [msg("d1", 0)])
    receiver = bus.accept_session(QUEUE)
    [received] = receiver.receive()
    client.fail_next[operation] = sdk_error
    with pytest.raises(LockLostError) as raised:
        if operation == "renew_lock":
            receiver.renew_lock()
        elif operation == "abandon_message":
            receiver.abandon(received)
        else:
            receiver.complete(received)
    assert isinstance(raised.value, RetryableError) and raised.value.__cause__ is sdk_error


def test_a_receive_that_loses_the_connection_is_retryable(client, bus):
    bus.send(QUEUE, [msg("d1", 0)])
    receiver = bus.accept_session(QUEUE)
    client.fail_next["receive_messages"] = ServiceBusConnectionError(message="link detached")
    with pytest.raises(BusUnavailableError):
        receiver.receive()


def test_an_error_opening_a_session_other_than_none_available_is_raised_translated(client, bus):
    client.fail_next["open"] = ServiceBusConnectionError(message="dns failure")
    with pytest.raises(BusUnavailableError):
        bus.accept_session(QUEUE)
    assert client.calls_named("close_receiver")


# --- dead letters and counts -----------------------------------------------------------------------
def test_dead_letters_are_peeked_page_by_page_on_the_dead_letter_sub_queue(client, bus, monkeypatch):
    monkeypatch.setattr(service_bus, "PEEK_PAGE_SIZE", 2)
    bus.send(QUEUE, [msg("d1", i, entity="contact") for i in range(3)] + [msg("d2", 0)])
    for session in ("d1", "d2"):
        receiver = bus.accept_session(QUEUE, session)
        for m in receiver.receive(5):
            receiver.dead_letter(m, "MaxDeliveryCountExceeded", "10 attempts")
        receiver.close()

    dead = bus.dead_letters(QUEUE, "d1")
    peeked_from = [c[3] for c in client.calls_named("peek_messages")]
    everything = bus.dead_letters(QUEUE)

    assert [m.message_id for m in dead] == ["d1-0", "d1-1", "d1-2"]
    assert {(m.dead_letter_reason, m.dead_letter_description, m.lock_token) for m in dead} == {
        ("MaxDeliveryCountExceeded", "10 attempts", "")}
    assert dead[0].application_properties == {"entity": "contact"}
    assert [m.message_id for m in everything] == ["d1-0", "d1-1", "d1-2", "d2-0"]
    assert peeked_from == [1, everything[1].sequence_number + 1, everything[3].sequence_number + 1]
    dead_letter_receivers = [kw for _, _, kw in client.calls_named("get_queue_receiver") if "sub_queue" in kw]
    assert len(dead_letter_receivers) == 2
    assert all(kw["sub_queue"] == ServiceBusSubQueue.DEAD_LETTER for kw in dead_letter_receivers)


def test_pending_count_reads_the_queue_runtime_properties(client):
    admin = StandInAdministrationClient(active=42)
    assert ServiceBusAdapter(client, admin_client=admin).pending_count(QUEUE) == 42
    assert admin.asked == [QUEUE]


def _forbidden() -> HttpResponseError:
    error = HttpResponseError(message="Forbidden")
    error.status_code = 403
    return error


@pytest.mark.parametrize("admin", [
    None,
    StandInAdministrationClient(error=ClientAuthenticationError(message="Unauthorized")),
    StandInAdministrationClient(error=_forbidden()),
], ids=["no-admin-client", "unauthorized", "forbidden"])
def test_pending_count_without_the_manage_right_says_so(client, admin):
    with pytest.raises(ConfigurationError) as raised:
        ServiceBusAdapter(client, admin_client=admin).pending_count(QUEUE)
    assert "Manage" in raised.value.user_message


def test_pending_count_per_session_is_refused_clearly(bus):
    with pytest.raises(ConfigurationError) as raised:
        bus.pending_count(QUEUE, "d1")
    assert "par dossier" in raised.value.user_message


def test_close_closes_senders_client_and_administration_client(client):
    admin = StandInAdministrationClient()
    bus = ServiceBusAdapter(client, admin_client=admin)
    bus.send(QUEUE, [msg("d1", 0)])
    sender = bus._senders[QUEUE]
    bus.close()
    assert sender.closed and client.closed and admin.closed


def test_the_adapter_implements_the_bus_protocol(bus):
    assert isinstance(bus, Bus)


# --- factory ------------------------------------------------------------------------------------
def test_open_bus_builds_the_adapter_from_a_connection_string_without_connecting():
    settings = BusSettings(kind="service-bus", connection_string=(
        "Endpoint=sb://example.servicebus.windows.net/;SharedAccessKeyName=RootManageSharedAccessKey;"
        "SharedAccessKey=c2VjcmV0"))
    bus = open_bus(settings)
    try:
        assert isinstance(bus, ServiceBusAdapter)
    finally:
        bus.close()


def test_open_bus_without_a_service_bus_connection_is_a_configuration_error():
    with pytest.raises(ConfigurationError):
        open_bus(BusSettings(kind="service-bus"))


# --- AMQP over WebSockets ---------------------------------------------------------------------
CONNECTION_STRING = ("Endpoint=sb://example.servicebus.windows.net/;SharedAccessKeyName=agent-send;"
                     "SharedAccessKey=c2VjcmV0;EntityPath=sage-changes")


@pytest.mark.parametrize("websockets, transport, port", [
    (False, "Amqp", 5671),
    (True, "AmqpOverWebsocket", 443),
], ids=["amqp-tcp", "amqp-over-websockets"])
def test_bus_websockets_setting_chooses_the_sdk_transport(websockets, transport, port):
    """`[bus] websockets = true` (or SSMCONN__BUS__WEBSOCKETS=true): AMQP over WebSockets, port 443 only."""
    from azure.servicebus import TransportType

    from shared.config import load_settings

    settings = load_settings(environ={"SSMCONN__BUS__KIND": "service-bus",
                                      "SSMCONN__BUS__CONNECTION_STRING": CONNECTION_STRING,
                                      **({"SSMCONN__BUS__WEBSOCKETS": "true"} if websockets else {})})
    assert settings.bus.websockets is websockets
    bus = open_bus(settings.bus)
    try:
        config = bus._client._config
        assert config.transport_type is getattr(TransportType, transport)
        assert config.connection_port == port
    finally:
        bus.close()


def test_websockets_also_apply_with_a_managed_identity():
    from azure.core.credentials import AccessToken
    from azure.servicebus import TransportType

    class Credential:
        def get_token(self, *scopes, **kwargs):
            return AccessToken("token", 4102444800)

    bus = ServiceBusAdapter.from_namespace("example.servicebus.windows.net", Credential(), websockets=True)
    try:
        assert bus._client._config.transport_type is TransportType.AmqpOverWebsocket
    finally:
        bus.close()
    assert BusSettings().websockets is False


# --- the status report on Service Bus -------------------------------------------------------------
class ReceiverWithoutListen(StandInReceiver):
    def __enter__(self) -> "StandInReceiver":
        from azure.servicebus.exceptions import ServiceBusAuthorizationError

        raise ServiceBusAuthorizationError(message="Unauthorized access. 'Listen' claim(s) are required")


class ReceiveOnChangesOnly(StandInServiceBusClient):
    """The Function App's rights: Receive on sage-changes, Send only on sage-commands."""

    def get_queue_receiver(self, queue_name: str, **kwargs: Any) -> "StandInReceiver":
        if queue_name != "sage-commands":
            return super().get_queue_receiver(queue_name, **kwargs)
        self.calls.append(("get_queue_receiver", queue_name, kwargs))
        return ReceiverWithoutListen(self, queue_name, **kwargs)


def test_messages_waiting_that_service_bus_cannot_count_are_unknown_never_zero(tmp_path):
    """Service Bus keeps no count per session, and counting a queue needs the Manage right the Function
    App does not hold: the report says unknown (None) with the reason, and the page « inconnu »."""
    from shared.state.records import Dossier
    from shared.status.page import render_status_page
    from shared.status.report import StatusReader
    from tests.status.sample import NOW, open_store

    store = open_store(tmp_path / "state.db")
    store.create_dossier(Dossier(id="BIJOU", name="Bijou SA", created_at=NOW))
    client = ReceiveOnChangesOnly()
    bus = ServiceBusAdapter(client, admin_client=StandInAdministrationClient(error=_forbidden()), min_wait_s=0.5)
    bus.send("sage-changes", [msg("BIJOU", 0)])

    pending = StatusReader(store, bus=bus, clock=lambda: NOW).report().dossiers[0].pending

    assert pending.available is True
    assert (pending.changes, pending.commands) == (None, None)
    assert pending.dead_lettered is None            # sage-commands' dead letters cannot be read either
    assert "par dossier" in pending.error and "Listen" in pending.error
    page = render_status_page(StatusReader(store, bus=bus, clock=lambda: NOW).report())
    assert "inconnu" in page
    assert "0 message Sage" not in page and "0 messages Sage" not in page
    overview = page[page.index("<table"):page.index("</table>")]
    assert ">inconnu<" in overview
    store.close()
