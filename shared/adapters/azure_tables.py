"""The Azure Table Storage table store, over `azure-data-tables`.

Implements `shared.state.protocol.TableStore` with the service's own operations: conditional
writes through `If-Match` ETags, entity-group transactions, OData range filters for prefixes.
Our limits are checked before anything is sent (the emulator does not enforce them), SDK
errors become the connector's taxonomy, 64-bit integers are typed `Edm.Int64`, and values come
back as plain Python types (`int`, `float`, `bool`, `str`, timezone-aware `datetime`).
"""
from __future__ import annotations

import datetime as dt
import threading
from typing import Any, Iterator, Optional

from azure.core import MatchConditions
from azure.core.exceptions import (
    HttpResponseError,
    ResourceExistsError,
    ResourceModifiedError,
    ResourceNotFoundError,
    ServiceRequestError,
    ServiceResponseError,
)
from azure.data.tables import (
    EdmType,
    EntityProperty,
    RequestTooLargeError,
    TableClient,
    TableServiceClient,
    TableTransactionError,
    UpdateMode,
)

from shared.messages import text
from shared.errors import (
    AlreadyExistsError,
    ConcurrencyError,
    EntityTooLargeError,
    NotFoundError,
    RetryableError,
)
from shared.state.limits import (
    INT32_RANGE,
    check_entity,
    check_key,
    check_table_name,
    check_transaction,
    entity_size,
    prefix_upper_bound,
    sort_key,
)
from shared.state.protocol import MAX_TRANSACTION_OPERATIONS, OperationKind, TableEntity, TableOperation

MAX_PAGE_ROWS = 1000
_TRANSIENT_STATUS = {408, 429, 500, 502, 503, 504}


def _to_service(entity: TableEntity) -> dict[str, Any]:
    body: dict[str, Any] = {"PartitionKey": entity.partition_key, "RowKey": entity.row_key}
    for name, value in entity.data.items():
        if value is None:
            continue
        if type(value) is int and value not in INT32_RANGE:
            value = EntityProperty(value, EdmType.INT64)
        body[name] = value
    return body


def _from_service_value(value: Any) -> Any:
    if isinstance(value, EntityProperty):
        value = value.value
    if isinstance(value, dt.datetime):
        return dt.datetime(value.year, value.month, value.day, value.hour, value.minute, value.second,
                           value.microsecond, tzinfo=dt.timezone.utc)
    return value


def _from_service(entity: Any) -> TableEntity:
    data = {name: _from_service_value(value) for name, value in entity.items()
            if name not in ("PartitionKey", "RowKey")}
    return TableEntity(entity["PartitionKey"], entity["RowKey"], data, entity.metadata.get("etag"))


def _is_table_missing(error: HttpResponseError) -> bool:
    return str(getattr(error, "error_code", "") or "") == "TableNotFound" or "TableNotFound" in str(error)


class AzureTableStore:
    """`TableStore` over an Azure Storage account (or Azurite). Table names get `table_prefix`."""

    def __init__(self, service: TableServiceClient, table_prefix: str = ""):
        self._service = service
        self.table_prefix = table_prefix
        self._clients: dict[str, TableClient] = {}
        self._lock = threading.Lock()
        self._group_lock = threading.Lock()
        self._queues: dict[tuple[str, str], list[_Pending]] = {}
        self._partition_locks: dict[tuple[str, str], threading.Lock] = {}

    @classmethod
    def from_connection_string(cls, conn_str: str, table_prefix: str = "") -> "AzureTableStore":
        return cls(TableServiceClient.from_connection_string(conn_str), table_prefix)

    @classmethod
    def from_account_url(cls, url: str, credential: Any, table_prefix: str = "") -> "AzureTableStore":
        return cls(TableServiceClient(endpoint=url, credential=credential), table_prefix)

    # --- plumbing -------------------------------------------------------------------------
    def _name(self, table: str) -> str:
        check_table_name(table)
        name = self.table_prefix + table
        check_table_name(name)
        return name

    def _client(self, table: str) -> TableClient:
        name = self._name(table)
        with self._lock:
            client = self._clients.get(name)
            if client is None:
                client = self._clients[name] = self._service.get_table_client(name)
            return client

    @staticmethod
    def _where(table: str, pk: str, rk: Optional[str] = None) -> str:
        return f"table '{table}', PartitionKey '{pk}'" + ("" if rk is None else f", RowKey '{rk}'")

    def _translate(self, error: Exception, table: str, where: str) -> Exception:
        """The connector error for an SDK error (the SDK error itself when none applies)."""
        if isinstance(error, (ServiceRequestError, ServiceResponseError)):
            return RetryableError(text("store.unreachable"),
                                  detail=f"{where}: {error}")
        if isinstance(error, RequestTooLargeError):
            return EntityTooLargeError(text("store.too_large"),
                                       detail=f"{where}: {error}")
        if isinstance(error, ResourceModifiedError) or getattr(error, "status_code", None) == 412:
            return ConcurrencyError(text("store.changed"), detail=where)
        if isinstance(error, ResourceExistsError) or getattr(error, "status_code", None) == 409:
            return AlreadyExistsError(text("store.exists"), detail=where)
        if isinstance(error, ResourceNotFoundError) or getattr(error, "status_code", None) == 404:
            if _is_table_missing(error):
                return NotFoundError(text("store.no_table", table=table), detail=where)
            return NotFoundError(text("store.missing"), detail=where)
        if getattr(error, "status_code", None) in _TRANSIENT_STATUS:
            return RetryableError(text("store.busy"),
                                  detail=f"{where}: {error}")
        return error

    # --- TableStore -------------------------------------------------------------------------
    def ensure_table(self, table: str) -> None:
        name = self._name(table)
        try:
            self._service.create_table_if_not_exists(name)
        except HttpResponseError as error:
            raise self._translate(error, table, f"table '{table}'") from error

    def get(self, table: str, partition_key: str, row_key: str) -> TableEntity:
        entity = self.try_get(table, partition_key, row_key)
        if entity is None:
            raise NotFoundError(text("store.missing"),
                                detail=self._where(table, partition_key, row_key))
        return entity

    def try_get(self, table: str, partition_key: str, row_key: str) -> Optional[TableEntity]:
        check_key(partition_key, what="PartitionKey")
        check_key(row_key, what="RowKey")
        client = self._client(table)
        try:
            return _from_service(client.get_entity(partition_key, row_key))
        except ResourceNotFoundError as error:
            if _is_table_missing(error):
                raise self._translate(error, table, self._where(table, partition_key, row_key)) from error
            return None
        except (HttpResponseError, ServiceRequestError) as error:
            raise self._translate(error, table, self._where(table, partition_key, row_key)) from error

    def insert(self, table: str, entity: TableEntity) -> TableEntity:
        check_entity(table, entity)
        return self._write(table, entity, lambda c, body: c.create_entity(body))

    def upsert(self, table: str, entity: TableEntity) -> TableEntity:
        check_entity(table, entity)
        return self._write(table, entity, lambda c, body: c.upsert_entity(body, mode=UpdateMode.REPLACE))

    def update(self, table: str, entity: TableEntity, *, etag: Optional[str]) -> TableEntity:
        check_entity(table, entity)
        condition = MatchConditions.IfNotModified if etag else MatchConditions.Unconditionally
        return self._write(table, entity, lambda c, body: c.update_entity(
            body, mode=UpdateMode.REPLACE, etag=etag, match_condition=condition))

    def _write(self, table: str, entity: TableEntity, send) -> TableEntity:
        client = self._client(table)
        try:
            metadata = send(client, _to_service(entity))
        except (HttpResponseError, ServiceRequestError) as error:
            raise self._translate(error, table, self._where(table, entity.partition_key, entity.row_key)) from error
        data = {k: v for k, v in entity.data.items() if v is not None}
        return TableEntity(entity.partition_key, entity.row_key, data, metadata.get("etag"))

    def delete(self, table: str, partition_key: str, row_key: str, *, etag: Optional[str] = None) -> None:
        check_key(partition_key, what="PartitionKey")
        check_key(row_key, what="RowKey")
        client = self._client(table)
        where = self._where(table, partition_key, row_key)
        statuses: list[int] = []
        condition = MatchConditions.IfNotModified if etag else MatchConditions.Unconditionally
        try:
            client.delete_entity(partition_key, row_key, etag=etag, match_condition=condition,
                                 raw_response_hook=lambda r: statuses.append(r.http_response.status_code))
        except (HttpResponseError, ServiceRequestError) as error:
            raise self._translate(error, table, where) from error
        if statuses and statuses[-1] == 404:
            if etag is not None:
                raise ConcurrencyError(text("store.deleted"), detail=where)
            self._require_table(table, where)

    def _require_table(self, table: str, where: str) -> None:
        """A delete of a missing entity succeeds, but not in a missing table."""
        try:
            next(iter(self._client(table).query_entities("PartitionKey eq @pk", parameters={"pk": ""},
                                                         results_per_page=1)), None)
        except (HttpResponseError, ServiceRequestError) as error:
            raise self._translate(error, table, where) from error

    def query(self, table: str, partition_key: str, *, prefix: Optional[str] = None,
              start: Optional[str] = None, limit: Optional[int] = None) -> Iterator[TableEntity]:
        check_key(partition_key, what="PartitionKey")
        for bound in (prefix, start):
            if bound:
                check_key(bound, what="RowKey bound")
        client = self._client(table)
        conditions = ["PartitionKey eq @pk"]
        parameters: dict[str, Any] = {"pk": partition_key}
        lower = max((s for s in (prefix, start) if s), key=sort_key, default=None)
        if lower:
            conditions.append("RowKey ge @lower")
            parameters["lower"] = lower
        upper = prefix_upper_bound(prefix) if prefix else None
        if upper is not None:
            conditions.append("RowKey lt @upper")
            parameters["upper"] = upper
        if limit is not None and limit <= 0:
            return iter(())
        return self._rows(client, table, " and ".join(conditions), parameters, prefix, limit)

    def _rows(self, client: TableClient, table: str, query_filter: str, parameters: dict[str, Any],
              prefix: Optional[str], limit: Optional[int]) -> Iterator[TableEntity]:
        page = MAX_PAGE_ROWS if limit is None else min(limit, MAX_PAGE_ROWS)
        count = 0
        try:
            for raw in client.query_entities(query_filter, parameters=parameters, results_per_page=page):
                entity = _from_service(raw)
                if prefix and not entity.row_key.startswith(prefix):
                    return
                yield entity
                count += 1
                if limit is not None and count >= limit:
                    return
        except (HttpResponseError, ServiceRequestError) as error:
            raise self._translate(error, table, self._where(table, parameters["pk"])) from error

    def partitions(self, table: str) -> list[str]:
        client = self._client(table)
        found: list[str] = []
        query_filter, parameters = "PartitionKey ge @pk", {"pk": ""}
        try:
            while True:
                first = next(iter(client.query_entities(query_filter, parameters=parameters,
                                                        results_per_page=1, select=["PartitionKey"])), None)
                if first is None:
                    return found
                found.append(first["PartitionKey"])
                query_filter, parameters = "PartitionKey gt @pk", {"pk": first["PartitionKey"]}
        except (HttpResponseError, ServiceRequestError) as error:
            raise self._translate(error, table, f"table '{table}'") from error

    def transact(self, table: str, partition_key: str, operations: list[TableOperation]) -> list[Optional[str]]:
        """As the protocol says. Transactions of one partition that threads ask for at the same time
        are sent as one (`_send_group`): one request instead of several, the service's limits kept."""
        check_transaction(table, partition_key, operations)
        if not operations:
            return []
        item = _Pending(operations)
        key = (table, partition_key)
        with self._group_lock:
            self._queues.setdefault(key, []).append(item)
            partition_lock = self._partition_locks.setdefault(key, threading.Lock())
        while not item.done:
            with partition_lock:
                if item.done:
                    break
                with self._group_lock:
                    group = _take_group(self._queues[key])
                self._send_group(table, partition_key, group)
        if item.error is not None:
            raise item.error
        return item.result

    def _send_group(self, table: str, partition_key: str, group: list["_Pending"]) -> None:
        """One request for the whole group; if the service refuses it (one write's condition
        failed), each write alone, so that only the refused one fails."""
        try:
            if len(group) > 1:
                try:
                    etags = self._transact_now(table, partition_key, [op for item in group for op in item.operations])
                except (ConcurrencyError, AlreadyExistsError, NotFoundError):
                    pass
                else:
                    start = 0
                    for item in group:
                        item.result = etags[start:start + len(item.operations)]
                        start += len(item.operations)
                    return
            for item in group:
                try:
                    item.result = self._transact_now(table, partition_key, item.operations)
                except Exception as exc:            # noqa: BLE001 - handed to its caller
                    item.error = exc
        finally:
            for item in group:
                item.done = True

    def _transact_now(self, table: str, partition_key: str,
                      operations: list[TableOperation]) -> list[Optional[str]]:
        client = self._client(table)
        pending = list(range(len(operations)))
        while True:
            batch = [self._batch_operation(operations[i]) for i in pending]
            try:
                results = client.submit_transaction(batch) if batch else []
            except TableTransactionError as error:
                failed = operations[pending[error.index]] if 0 <= error.index < len(pending) else None
                where = self._where(table, partition_key, failed.entity.row_key if failed else None)
                if error.status_code == 404 and failed is not None and not _is_table_missing(error):
                    if failed.kind is OperationKind.DELETE and failed.etag is None:
                        pending.remove(pending[error.index])
                        continue
                    if failed.kind is OperationKind.DELETE:
                        raise ConcurrencyError(text("store.deleted"),
                                               detail=where) from error
                raise self._translate(error, table, where) from error
            except (HttpResponseError, ServiceRequestError) as error:
                raise self._translate(error, table, self._where(table, partition_key)) from error
            etags: list[Optional[str]] = [None] * len(operations)
            for index, result in zip(pending, results):
                if operations[index].kind is not OperationKind.DELETE:
                    etags[index] = result.get("etag")
            return etags

    @staticmethod
    def _batch_operation(op: TableOperation) -> tuple:
        if op.kind is OperationKind.INSERT:
            return ("create", _to_service(op.entity))
        if op.kind is OperationKind.UPSERT:
            return ("upsert", _to_service(op.entity), {"mode": UpdateMode.REPLACE})
        condition = ({"etag": op.etag, "match_condition": MatchConditions.IfNotModified} if op.etag
                     else {"match_condition": MatchConditions.Unconditionally})
        if op.kind is OperationKind.UPDATE:
            return ("update", _to_service(op.entity), {"mode": UpdateMode.REPLACE, **condition})
        keys = {"PartitionKey": op.entity.partition_key, "RowKey": op.entity.row_key}
        return ("delete", keys, condition)

    def close(self) -> None:
        with self._lock:
            clients, self._clients = list(self._clients.values()), {}
        for client in clients:
            client.close()
        self._service.close()


# The service refuses a batch request over 4 MiB: merged transactions stay well under it.
MAX_GROUP_BYTES = 3 * 1024 * 1024


class _Pending:
    """One transaction waiting to be sent, alone or with others of its partition."""

    __slots__ = ("operations", "rows", "size", "result", "error", "done")

    def __init__(self, operations: list[TableOperation]):
        self.operations = operations
        self.rows = {op.entity.row_key for op in operations}
        self.size = sum(entity_size(op.entity.partition_key, op.entity.row_key, op.entity.data) for op in operations)
        self.result: Optional[list[Optional[str]]] = None
        self.error: Optional[BaseException] = None
        self.done = False


def _take_group(queue: list[_Pending]) -> list[_Pending]:
    """The first waiting transactions that can share one request: at most 100 operations, never
    the same entity twice (the service refuses it), under `MAX_GROUP_BYTES`."""
    group, operations, size, rows = [], 0, 0, set()
    while queue:
        item = queue[0]
        if group and (operations + len(item.operations) > MAX_TRANSACTION_OPERATIONS
                      or size + item.size > MAX_GROUP_BYTES or rows & item.rows):
            break
        group.append(queue.pop(0))
        operations, size, rows = operations + len(item.operations), size + item.size, rows | item.rows
    return group
