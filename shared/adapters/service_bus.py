"""The bus protocol over Azure Service Bus (azure-servicebus v7), for the cloud runtime.

Queues are session-enabled with duplicate detection (infra/ creates them, with their lock
duration and max delivery count). A send packs each session's messages into as few
`ServiceBusMessageBatch`es as the link allows and checks every message before the first batch
leaves, so a message too big for Service Bus fails the whole send; once batches go out, each
batch is atomic but a send that spans several is not, and its retry is made harmless by the
deterministic message ids and duplicate detection. SDK errors become the connector's: lost
locks `LockLostError`, outages `BusUnavailableError` (both retryable), access or entity
problems `ConfigurationError`.

`websockets=True` carries AMQP over WebSockets on port 443, for networks that let only HTTPS out
(`[bus] websockets`).

Two details of the SDK are absorbed here: it reports the AMQP delivery count (0 on the first
delivery) where the protocol counts deliveries (1 on the first), and it cannot receive without
waiting, so a `max_wait_s` of 0 waits `min_wait_s`.
"""
from __future__ import annotations

import contextlib
import threading
from typing import Any, Iterator, Optional

from azure.core.exceptions import ClientAuthenticationError, HttpResponseError, ResourceNotFoundError, \
    ServiceRequestError
from azure.servicebus import NEXT_AVAILABLE_SESSION, ServiceBusClient, ServiceBusMessage, \
    ServiceBusReceivedMessage, ServiceBusReceiveMode, ServiceBusSubQueue, TransportType
from azure.servicebus.exceptions import MessageLockLostError, MessageSizeExceededError, \
    MessagingEntityDisabledError, MessagingEntityNotFoundError, OperationTimeoutError, \
    ServiceBusAuthenticationError, ServiceBusAuthorizationError, ServiceBusCommunicationError, \
    ServiceBusConnectionError, ServiceBusError, ServiceBusQuotaExceededError, ServiceBusServerBusyError, \
    SessionCannotBeLockedError, SessionLockLostError

from shared.messages import text
from shared.bus.local_bus import BusUnavailableError, LockLostError, MessageTooLargeError, validate_outgoing
from shared.bus.protocol import OutgoingMessage, ReceivedMessage
from shared.errors import ConfigurationError, ConnectorError

DEAD_LETTER_REASON_PROPERTY = "DeadLetterReason"
DEAD_LETTER_DESCRIPTION_PROPERTY = "DeadLetterErrorDescription"
PEEK_PAGE_SIZE = 250

# SDK error → (connector error, catalogue code of the sentence for a Sage administrator). First match wins.
ERROR_TABLE: tuple[tuple[type[BaseException], type[ConnectorError], str], ...] = (
    (MessageLockLostError, LockLostError,
     "bus.lock_lost"),
    (SessionLockLostError, LockLostError,
     "bus.session_lock_lost"),
    (MessageSizeExceededError, MessageTooLargeError,
     "bus.too_large"),
    (ServiceBusAuthenticationError, ConfigurationError,
     "bus.credentials"),
    (ServiceBusAuthorizationError, ConfigurationError,
     "bus.rights"),
    (MessagingEntityNotFoundError, ConfigurationError,
     "bus.no_queue"),
    (MessagingEntityDisabledError, ConfigurationError,
     "bus.queue_disabled"),
    (ServiceBusServerBusyError, BusUnavailableError,
     "bus.busy"),
    (ServiceBusQuotaExceededError, BusUnavailableError,
     "bus.full"),
    (ServiceBusConnectionError, BusUnavailableError,
     "bus.unreachable"),
    (ServiceBusCommunicationError, BusUnavailableError,
     "bus.unreachable"),
    (OperationTimeoutError, BusUnavailableError,
     "bus.timeout"),
    (ServiceBusError, BusUnavailableError,
     "bus.error"),
)

MANAGE_RIGHT_NEEDED = "bus.manage_right"


def transport_type(websockets: bool) -> TransportType:
    """AMQP over WebSockets (HTTPS port 443, through a proxy if need be) or AMQP on TCP (port 5671).
    The administration client speaks HTTPS either way."""
    return TransportType.AmqpOverWebsocket if websockets else TransportType.Amqp


def translate_error(exc: BaseException, action: str) -> BaseException:
    """The connector error for an SDK error (`exc` itself when the table does not know it)."""
    for sdk_type, connector_type, user_message in ERROR_TABLE:
        if isinstance(exc, sdk_type):
            return connector_type(text(user_message), detail=f"{action}: {type(exc).__name__}: {exc}")
    return exc


@contextlib.contextmanager
def _translated(action: str) -> Iterator[None]:
    try:
        yield
    except ServiceBusError as exc:
        raise translate_error(exc, action) from exc


def _text(value: Any) -> Any:
    return value.decode("utf-8") if isinstance(value, bytes) else value


def to_received_message(message: ServiceBusReceivedMessage) -> ReceivedMessage:
    """A received or peeked SDK message as the protocol's `ReceivedMessage`."""
    properties = {_text(k): _text(v) for k, v in (message.application_properties or {}).items()}
    reason = properties.pop(DEAD_LETTER_REASON_PROPERTY, None)
    description = properties.pop(DEAD_LETTER_DESCRIPTION_PROPERTY, None)
    lock_token = message.lock_token
    return ReceivedMessage(
        body=b"".join(message.body),
        message_id=message.message_id,
        session_id=message.session_id,
        delivery_count=(message.delivery_count or 0) + 1,
        enqueued_at=message.enqueued_time_utc,
        sequence_number=message.sequence_number,
        lock_token="" if lock_token is None else str(lock_token),
        application_properties=properties,
        content_type=message.content_type or "application/json",
        dead_letter_reason=message.dead_letter_reason or reason,
        dead_letter_description=message.dead_letter_error_description or description,
    )


def to_service_bus_message(message: OutgoingMessage) -> ServiceBusMessage:
    return ServiceBusMessage(message.body, message_id=message.message_id, session_id=message.session_id,
                             application_properties=dict(message.application_properties),
                             content_type=message.content_type)


class ServiceBusSessionReceiver:
    """A locked Service Bus session, as the protocol's `SessionReceiver`."""

    def __init__(self, receiver: Any, queue: str, *, min_wait_s: float):
        self._receiver = receiver
        self.queue = queue
        self.session_id: str = receiver.session.session_id
        self._min_wait_s = min_wait_s
        self._held: dict[str, ServiceBusReceivedMessage] = {}

    def receive(self, max_messages: int = 1, max_wait_s: float = 0.0) -> list[ReceivedMessage]:
        if max_messages < 1:
            raise ValueError("max_messages must be at least 1")
        with _translated(f"receive from {self.queue}/{self.session_id}"):
            raw = self._receiver.receive_messages(max_message_count=max_messages,
                                                  max_wait_time=max(max_wait_s, self._min_wait_s))
        received = []
        for message in raw:
            converted = to_received_message(message)
            self._held[converted.lock_token] = message
            received.append(converted)
        return received

    def complete(self, message: ReceivedMessage) -> None:
        self._settle(message, "complete", self._receiver.complete_message)

    def abandon(self, message: ReceivedMessage) -> None:
        self._settle(message, "abandon", self._receiver.abandon_message)

    def dead_letter(self, message: ReceivedMessage, reason: str, description: str = "") -> None:
        self._settle(message, "dead-letter", lambda raw: self._receiver.dead_letter_message(
            raw, reason=reason, error_description=description))

    def renew_lock(self) -> None:
        with _translated(f"renew the lock of {self.queue}/{self.session_id}"):
            self._receiver.session.renew_lock()

    def close(self) -> None:
        self._held.clear()
        with _translated(f"close {self.queue}/{self.session_id}"):
            self._receiver.close()

    def __enter__(self) -> "ServiceBusSessionReceiver":
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()

    def _settle(self, message: ReceivedMessage, action: str, settle) -> None:
        raw = self._held.get(message.lock_token)
        if raw is None:
            raise LockLostError(detail=f"{action}: message {message.message_id} is not held by the receiver of "
                                       f"{self.queue}/{self.session_id} (settled already or received elsewhere)")
        with _translated(f"{action} message {message.message_id} on {self.queue}/{self.session_id}"):
            settle(raw)
        del self._held[message.lock_token]


class ServiceBusAdapter:
    """The `Bus` protocol over a `ServiceBusClient`.

    Args:
        client: the SDK client (or anything with its `get_queue_sender`/`get_queue_receiver`).
        admin_client: a `ServiceBusAdministrationClient`, needed only by `pending_count`.
        min_wait_s: the shortest wait on the broker, used when the caller asks for none.
    """

    def __init__(self, client: Any, *, admin_client: Any = None, min_wait_s: float = 1.0):
        if min_wait_s <= 0:
            raise ValueError("min_wait_s must be positive: the SDK cannot receive without waiting")
        self._client = client
        self._admin = admin_client
        self._min_wait_s = min_wait_s
        self._senders: dict[str, Any] = {}
        self._sender_locks: dict[str, threading.Lock] = {}
        self._lock = threading.Lock()

    @classmethod
    def from_connection_string(cls, conn_str: str, *, websockets: bool = False, **kwargs: Any) -> "ServiceBusAdapter":
        """`websockets`: AMQP over WebSockets on port 443 instead of AMQP on TCP port 5671."""
        from azure.servicebus.management import ServiceBusAdministrationClient
        return cls(ServiceBusClient.from_connection_string(conn_str, transport_type=transport_type(websockets)),
                   admin_client=ServiceBusAdministrationClient.from_connection_string(conn_str), **kwargs)

    @classmethod
    def from_namespace(cls, fully_qualified_namespace: str, credential: Any, *, websockets: bool = False,
                       **kwargs: Any) -> "ServiceBusAdapter":
        """With a token credential (managed identity): Data Sender/Receiver roles for the bus,
        Data Owner as well for `pending_count`. `websockets` as in `from_connection_string`."""
        from azure.servicebus.management import ServiceBusAdministrationClient
        return cls(ServiceBusClient(fully_qualified_namespace, credential, transport_type=transport_type(websockets)),
                   admin_client=ServiceBusAdministrationClient(fully_qualified_namespace, credential), **kwargs)

    # --- Bus protocol ----------------------------------------------------------------------
    def send(self, queue: str, messages: list[OutgoingMessage]) -> None:
        """Send every message, one batch list per session; repeated ids in the list are dropped."""
        validate_outgoing(queue, messages)
        by_session: dict[str, list[OutgoingMessage]] = {}
        seen: set[str] = set()
        for message in messages:
            if message.message_id not in seen:
                seen.add(message.message_id)
                by_session.setdefault(message.session_id, []).append(message)
        if not by_session:
            return
        sender, sender_lock = self._sender(queue)
        with sender_lock, _translated(f"send to {queue}"):
            batches = [batch for session_messages in by_session.values()
                       for batch in self._pack(sender, session_messages)]
            for batch in batches:
                sender.send_messages(batch)

    def accept_session(self, queue: str, session_id: Optional[str] = None,
                       max_wait_s: float = 0.0) -> Optional[ServiceBusSessionReceiver]:
        receiver = self._client.get_queue_receiver(
            queue, session_id=session_id or NEXT_AVAILABLE_SESSION,
            max_wait_time=max(max_wait_s, self._min_wait_s), receive_mode=ServiceBusReceiveMode.PEEK_LOCK)
        try:
            # Open the link now: no free session shows here as a timeout, not at the first receive.
            receiver.__enter__()
        except (OperationTimeoutError, SessionCannotBeLockedError):
            receiver.close()
            return None
        except ServiceBusError as exc:
            receiver.close()
            raise translate_error(exc, f"accept a session on {queue}") from exc
        return ServiceBusSessionReceiver(receiver, queue, min_wait_s=self._min_wait_s)

    def dead_letters(self, queue: str, session_id: Optional[str] = None) -> list[ReceivedMessage]:
        receiver = self._client.get_queue_receiver(queue, sub_queue=ServiceBusSubQueue.DEAD_LETTER,
                                                   receive_mode=ServiceBusReceiveMode.PEEK_LOCK)
        found: list[ReceivedMessage] = []
        with _translated(f"peek the dead letters of {queue}"):
            with receiver:
                next_sequence = 1
                while True:
                    page = receiver.peek_messages(max_message_count=PEEK_PAGE_SIZE, sequence_number=next_sequence)
                    if not page:
                        break
                    found.extend(to_received_message(m) for m in page
                                 if session_id is None or m.session_id == session_id)
                    last = max(m.sequence_number for m in page)
                    if last < next_sequence:
                        break
                    next_sequence = last + 1
        return found

    def pending_count(self, queue: str, session_id: Optional[str] = None) -> int:
        """Active messages of the queue, from the administration API (Manage right needed).

        Raises:
            ConfigurationError: no administration client, missing rights, unknown queue, or a
                count per session, which Service Bus does not keep.
        """
        if session_id is not None:
            raise ConfigurationError(text("bus.no_count_per_dossier"), detail=f"{queue}/{session_id}")
        if self._admin is None:
            raise ConfigurationError(text(MANAGE_RIGHT_NEEDED), detail="no administration client configured")
        try:
            properties = self._admin.get_queue_runtime_properties(queue)
        except ClientAuthenticationError as exc:
            raise ConfigurationError(text(MANAGE_RIGHT_NEEDED), detail=str(exc)) from exc
        except ResourceNotFoundError as exc:
            raise ConfigurationError(text("bus.queue_missing", queue=queue), detail=str(exc)) from exc
        except HttpResponseError as exc:
            if exc.status_code in (401, 403):
                raise ConfigurationError(text(MANAGE_RIGHT_NEEDED), detail=str(exc)) from exc
            raise BusUnavailableError(text("bus.no_length"),
                                      detail=str(exc)) from exc
        except ServiceRequestError as exc:
            raise BusUnavailableError("bus.unreachable",
                                      detail=str(exc)) from exc
        return int(properties.active_message_count or 0)

    def close(self) -> None:
        with self._lock:
            senders, self._senders = list(self._senders.values()), {}
        for sender in senders:
            with contextlib.suppress(ServiceBusError):
                sender.close()
        self._client.close()
        if self._admin is not None:
            self._admin.close()

    # --- internals -------------------------------------------------------------------------
    def _sender(self, queue: str) -> tuple[Any, threading.Lock]:
        with self._lock:
            if queue not in self._senders:
                self._senders[queue] = self._client.get_queue_sender(queue)
                self._sender_locks[queue] = threading.Lock()
            return self._senders[queue], self._sender_locks[queue]

    @staticmethod
    def _pack(sender: Any, messages: list[OutgoingMessage]) -> list[Any]:
        """Batches of one session's messages, in order, each within the link's size limit."""
        batches = [sender.create_message_batch()]
        for message in messages:
            sb_message = to_service_bus_message(message)
            try:
                batches[-1].add_message(sb_message)
                continue
            except MessageSizeExceededError:
                if len(batches[-1]) == 0:
                    raise _too_large(message, batches[-1]) from None
            batches.append(sender.create_message_batch())
            try:
                batches[-1].add_message(sb_message)
            except MessageSizeExceededError:
                raise _too_large(message, batches[-1]) from None
        return batches


def _too_large(message: OutgoingMessage, batch: Any) -> MessageTooLargeError:
    return MessageTooLargeError(
        "bus.too_large",
        detail=f"message {message.message_id} of session {message.session_id}: {len(message.body)} body bytes, "
               f"batch limit {batch.max_size_in_bytes} bytes")
