"""The table-store protocol: what Table Storage offers, and nothing more.

Entities live in named tables, addressed by (PartitionKey, RowKey); queries stay within one
partition and return rows in RowKey order; transactions stay within one partition and hold at
most 100 operations; every entity has an ETag and conditional writes raise `ConcurrencyError`
on a mismatch. Both implementations enforce Azure's limits themselves (1 MiB per entity,
64 KiB per property, 100 operations per transaction) so a limit is met the same way locally
and in the cloud.

Property values are `str`, `int`, `float`, `bool`, `datetime` (timezone-aware UTC) or `None`.
"""
from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from enum import Enum
from typing import Any, Iterator, Optional, Protocol, runtime_checkable

MAX_TRANSACTION_OPERATIONS = 100
MAX_ENTITY_BYTES = 1024 * 1024
MAX_PROPERTY_BYTES = 64 * 1024
MAX_PROPERTIES = 252

PropertyValue = str | int | float | bool | dt.datetime | None


@dataclass
class TableEntity:
    partition_key: str
    row_key: str
    data: dict[str, Any] = field(default_factory=dict)
    etag: Optional[str] = None


class OperationKind(str, Enum):
    INSERT = "insert"      # fails if the entity exists
    UPSERT = "upsert"      # insert or replace
    UPDATE = "update"      # replace; with an etag, only if it still matches
    DELETE = "delete"      # with an etag, only if it still matches; without, succeeds when gone


@dataclass
class TableOperation:
    kind: OperationKind
    entity: TableEntity
    etag: Optional[str] = None


@runtime_checkable
class TableStore(Protocol):
    def ensure_table(self, table: str) -> None:
        """Create the table if it does not exist yet."""

    def get(self, table: str, partition_key: str, row_key: str) -> TableEntity:
        """The entity; raises `NotFoundError` when missing."""

    def try_get(self, table: str, partition_key: str, row_key: str) -> Optional[TableEntity]:
        """The entity, or None."""

    def insert(self, table: str, entity: TableEntity) -> TableEntity:
        """Create; raises `AlreadyExistsError` when it exists. Returns it with its new ETag."""

    def upsert(self, table: str, entity: TableEntity) -> TableEntity:
        """Insert or replace unconditionally. Returns it with its new ETag."""

    def update(self, table: str, entity: TableEntity, *, etag: Optional[str]) -> TableEntity:
        """Replace an existing entity; with `etag`, only if unchanged (else `ConcurrencyError`).
        Raises `NotFoundError` when missing."""

    def delete(self, table: str, partition_key: str, row_key: str, *, etag: Optional[str] = None) -> None:
        """Delete; succeeds when already gone unless `etag` is given (then `ConcurrencyError`)."""

    def query(self, table: str, partition_key: str, *, prefix: Optional[str] = None,
              start: Optional[str] = None, limit: Optional[int] = None) -> Iterator[TableEntity]:
        """Entities of one partition in RowKey order, optionally with a RowKey prefix and/or
        RowKey >= `start`, at most `limit` of them."""

    def partitions(self, table: str) -> list[str]:
        """Distinct PartitionKeys of a table (used to list dossiers seen in a table)."""

    def transact(self, table: str, partition_key: str, operations: list[TableOperation]) -> list[Optional[str]]:
        """All or nothing; raises `TransactionTooLargeError` beyond 100 operations or when an
        operation names another partition, `ConcurrencyError`/`AlreadyExistsError` when one
        operation's condition fails (and then nothing is written). Returns each operation's
        new ETag, in order (None for a delete)."""

    def close(self) -> None:
        ...
