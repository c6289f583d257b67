"""The error taxonomy of the connector.

Three kinds decide what happens to a record (after Singer and Airbyte):
retryable (try again later, with backoff), fatal for the record (an incident until the data is
fixed) and skippable (nothing to do). Every error carries a sentence a Sage administrator
understands (`user_message`) apart from internal detail (`detail`), which never holds secrets.
"""
from __future__ import annotations

from enum import Enum


class ErrorKind(str, Enum):
    RETRYABLE = "retryable"
    RECORD = "record"
    SKIPPABLE = "skippable"


class ConnectorError(Exception):
    """Base of every error the connector raises on purpose."""

    kind: ErrorKind = ErrorKind.RECORD

    def __init__(self, user_message: str, *, detail: str | None = None):
        super().__init__(user_message)
        self.user_message = user_message
        self.detail = detail

    def __str__(self) -> str:
        return self.user_message if not self.detail else f"{self.user_message} ({self.detail})"


class RetryableError(ConnectorError):
    """A transient failure: rate limit, server error, timeout, concurrency, missing dependency."""

    kind = ErrorKind.RETRYABLE

    def __init__(self, user_message: str, *, detail: str | None = None, retry_after: float | None = None):
        super().__init__(user_message, detail=detail)
        self.retry_after = retry_after


class RecordError(ConnectorError):
    """This record cannot be synced as it is: bad data, mapping or validation."""

    kind = ErrorKind.RECORD


class SkippableError(ConnectorError):
    """Nothing to do for this record (already gone, not in scope)."""

    kind = ErrorKind.SKIPPABLE


class ConfigurationError(ConnectorError):
    """The configuration is incomplete or contradictory; the process cannot start."""


class DependencyMissingError(RetryableError):
    """A record refers to another that is not linked yet (contact before its account): the
    referenced record is `entity`/`key` when known."""

    def __init__(self, user_message: str, *, detail: str | None = None, entity: str | None = None,
                 key: str | None = None):
        super().__init__(user_message, detail=detail)
        self.entity = entity
        self.key = key


# --- state store ---------------------------------------------------------------------------
class NotFoundError(ConnectorError):
    """`get_` of something that does not exist."""


class AlreadyExistsError(ConnectorError):
    """`create_`/`insert` of something that already exists."""


class ConcurrencyError(RetryableError):
    """An ETag did not match: another writer changed the entity first."""


class EntityTooLargeError(RecordError):
    """An entity exceeds Table Storage's 1 MiB limit (or one property its 64 KiB limit)."""


class TransactionTooLargeError(ConnectorError):
    """A transaction has more than 100 operations or spans several partitions."""


# --- SSM ------------------------------------------------------------------------------------
class SsmError(ConnectorError):
    """An SSM API call failed; `status` and `code` are the HTTP status and application code."""

    def __init__(self, user_message: str, *, status: int | None = None, code: int | None = None,
                 detail: str | None = None):
        super().__init__(user_message, detail=detail)
        self.status = status
        self.code = code


class SsmRetryableError(SsmError, RetryableError):
    def __init__(self, user_message: str, *, status: int | None = None, code: int | None = None,
                 detail: str | None = None, retry_after: float | None = None):
        SsmError.__init__(self, user_message, status=status, code=code, detail=detail)
        self.retry_after = retry_after


class SsmRecordError(SsmError, RecordError):
    pass


class SsmSkippableError(SsmError, SkippableError):
    pass


class SsmMissingError(SsmRecordError):
    """The SSM record addressed by id does not exist, or is deleted (SSM answers 400 for both an
    unknown id and a refused write: the client tells them apart by looking the id up)."""


class SsmAuthError(SsmError):
    """The SSM keys are refused: nothing can sync until they are fixed."""
