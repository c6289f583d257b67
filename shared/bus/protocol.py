"""The bus protocol: the part of Service Bus the connector relies on.

Queues with sessions (session id = dossier id): one receiver holds a session's lock at a time
and gets its messages in FIFO order. Peek-lock: a received message is invisible until it is
completed (gone), abandoned (back at the head of its session, delivery count + 1), dead-lettered,
or its lock expires (as abandoned — a crash before completion redelivers). When the delivery
count reaches `max_delivery_count` the message moves to the dead-letter queue. Messages whose id
was already accepted within the duplicate-detection window are dropped on send, silently.
A send of several messages is atomic: all are accepted or none.
"""
from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Any, Optional, Protocol, runtime_checkable


@dataclass
class OutgoingMessage:
    body: bytes
    message_id: str
    session_id: str
    application_properties: dict[str, Any] = field(default_factory=dict)
    content_type: str = "application/json"


@dataclass
class ReceivedMessage:
    body: bytes
    message_id: str
    session_id: str
    delivery_count: int                 # 1 on the first delivery
    enqueued_at: dt.datetime
    sequence_number: int
    lock_token: str
    application_properties: dict[str, Any] = field(default_factory=dict)
    content_type: str = "application/json"
    dead_letter_reason: Optional[str] = None
    dead_letter_description: Optional[str] = None


@runtime_checkable
class SessionReceiver(Protocol):
    session_id: str

    def receive(self, max_messages: int = 1, max_wait_s: float = 0.0) -> list[ReceivedMessage]:
        """Up to `max_messages` next messages of this session, in order, locked for this receiver."""

    def complete(self, message: ReceivedMessage) -> None: ...

    def abandon(self, message: ReceivedMessage) -> None:
        """Give the message back; it is redelivered first (or dead-lettered at max deliveries)."""

    def dead_letter(self, message: ReceivedMessage, reason: str, description: str = "") -> None: ...

    def renew_lock(self) -> None:
        """Extend the session lock and the locks of the messages it holds."""

    def close(self) -> None:
        """Release the session lock; unsettled messages become available again."""


@runtime_checkable
class Bus(Protocol):
    def send(self, queue: str, messages: list[OutgoingMessage]) -> None:
        """Atomically accept all messages (dropping duplicate ids) or raise."""

    def accept_session(self, queue: str, session_id: Optional[str] = None,
                       max_wait_s: float = 0.0) -> Optional[SessionReceiver]:
        """Lock a session with available messages (a given one, or the next free one);
        None when there is none within `max_wait_s`."""

    def dead_letters(self, queue: str, session_id: Optional[str] = None) -> list[ReceivedMessage]:
        """Peek the dead-letter queue (no lock, nothing removed)."""

    def pending_count(self, queue: str, session_id: Optional[str] = None) -> int:
        """Active (not dead-lettered) messages waiting or locked."""

    def close(self) -> None: ...
