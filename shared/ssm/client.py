"""The SSM client: every call the cloud side makes to Sage Sales Management goes through here.

It logs in with the integration's public/private key pair and sends the session token as
`X-Session-Key`, logging in again once when SSM answers 401. It reads lists page by page
(`?page=N`, 0-based, page size in both documented headers, `count` and `X-FM-Entity-Count`),
filters only with the documented `where` forms (`shared.ssm.contract`), writes one entity per
call (POST, partial PUT, soft DELETE), and looks up per-tenant reference ids by description.
SSM answers 400 both for an unknown id and for a refused write; after a 400 on one record the
client looks the id up (`where=id=N`) and raises `SsmMissingError` when the record is not there
(or deleted), so callers can recreate or skip it.

Every answer that is not a success is resolved through `shared.ssm.resolution`: transient
failures (429, 500/502/503/504, timeouts, lost connections) are retried with exponential backoff
and full jitter, honouring `Retry-After`; anything else becomes a `SsmRecordError`,
`SsmSkippableError` or `SsmAuthError` whose message an administrator understands. A token bucket
paces requests and a semaphore bounds the requests in flight; one client is shared by a thread
pool. The private key and the session token never appear in a log line, a repr or an error.

Creates are protected against duplicates: when a POST fails in a way that may have been applied
(a lost answer, a 5xx), the client looks the body's `extId` up before sending it again and
returns the existing id if SSM did create it (binding immediately, as OCA connectors do). A body
without `extId` is not sent again after such a failure; the error says the outcome is unknown.
"""
from __future__ import annotations

import logging
import random
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime, timezone
from email.utils import parsedate_to_datetime
from typing import Any, Callable, Iterator

import httpx
from pydantic import SecretStr

from shared.errors import (SsmAuthError, SsmError, SsmMissingError, SsmRecordError,
                           SsmRetryableError, SsmSkippableError)
from shared.ssm import contract
from shared.ssm.lookups import LookupCache
from shared.ssm.ratelimit import TokenBucket
from shared.messages import text
from shared.ssm.resolution import (CONNECTION, LOGIN, TIMEOUT, Action, Resolution, entity_label, sentence,
                                   resolve)

log = logging.getLogger("ssm_connector.ssm")   # under the connector's logger: -vv shows each call

MAX_PAGE_SIZE = 500
"""Page sizes above this are lowered: SSM's maximum is undocumented."""

EXT_IDS_PER_READ = 40
"""`extId` values ORed in one filter when many records are looked up at once."""

SERVER_CAP_MULTIPLE = 50
"""A short page whose length is a multiple of this may be a server-side cap, not the end."""

RETRY_AFTER_CEILING_S = 300.0
"""A `Retry-After` longer than this is not waited for in-process: the error carries it instead."""

UNCONFIRMED_CREATE = "sync.ssm.unconfirmed_create"

_RETRYABLE_AMBIGUOUS_STATUSES = frozenset({500, 502, 503, 504})
_ERROR_CLASSES: dict[Action, type[SsmError]] = {
    Action.RETRY: SsmRetryableError,
    Action.RECORD: SsmRecordError,
    Action.SKIP: SsmSkippableError,
    Action.AUTH: SsmAuthError,
    Action.RELOGIN: SsmAuthError,
}


@dataclass
class ClientStats:
    """What the client sent, for logs, run counts and tests. Updated under a lock."""

    requests: int = 0
    retries: int = 0
    throttled: int = 0
    timeouts: int = 0
    server_errors: int = 0
    logins: int = 0
    recovered_creates: int = 0
    per_resource: Counter = field(default_factory=Counter)
    per_method: Counter = field(default_factory=Counter)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)
    _thread: threading.local = field(default_factory=threading.local, repr=False, compare=False)

    def thread_requests(self) -> int:
        """Requests sent so far by the calling thread (a caller's own share of a shared client)."""
        return getattr(self._thread, "requests", 0)

    def add(self, name: str, amount: int = 1) -> None:
        with self._lock:
            setattr(self, name, getattr(self, name) + amount)

    def sent(self, method: str, resource: str) -> None:
        self._thread.requests = self.thread_requests() + 1
        with self._lock:
            self.requests += 1
            self.per_resource[resource] += 1
            self.per_method[method] += 1

    def snapshot(self) -> dict:
        with self._lock:
            return {"requests": self.requests, "retries": self.retries, "throttled": self.throttled,
                    "timeouts": self.timeouts, "server_errors": self.server_errors,
                    "logins": self.logins, "recovered_creates": self.recovered_creates,
                    "per_resource": dict(self.per_resource), "per_method": dict(self.per_method)}


@dataclass(frozen=True)
class _Failure:
    """One attempt that did not succeed."""

    status: int | str               # HTTP status, or TIMEOUT / CONNECTION
    code: int | None                # SSM application code, when the body carries one
    message: str                    # SSM's own words (or the transport error), secrets removed
    retry_after: float | None
    may_have_been_applied: bool     # the server may have done the work before the answer was lost

    @property
    def reason(self) -> str:
        return f"HTTP {self.status}" if isinstance(self.status, int) else self.status


@dataclass(frozen=True)
class _Recovered:
    id: int


RATE_LIMIT_HEADROOM = 0.05
"""The client paces itself this fraction under the tenant's limit: at exactly the limit, timing
jitter against SSM's counting window draws 429s, and each one holds every thread for a second."""


class SsmClient:
    """A thread-safe client of the SSM v4 API. See the module docstring for the behaviour.

    `rate_limit_per_s` is the tenant's limit as SSM enforces it; the client keeps
    `RATE_LIMIT_HEADROOM` under it.
    """

    def __init__(self, base_url: str, public_key: str, private_key: str | SecretStr, *,
                 timeout_s: float = 30.0, max_concurrency: int = 4, rate_limit_per_s: float = 4.0,
                 max_retries: int = 6, page_size: int = contract.DEFAULT_PAGE_SIZE, backoff_base_s: float = 0.5,
                 backoff_max_s: float = 30.0, sleep: Callable[[float], None] = time.sleep,
                 transport: httpx.BaseTransport | None = None):
        self.base_url = base_url.rstrip("/")
        self.public_key = public_key
        self._private_key = private_key if isinstance(private_key, SecretStr) else SecretStr(private_key)
        self.timeout_s = timeout_s
        self.max_retries = max_retries
        self.page_size = max(1, min(page_size, MAX_PAGE_SIZE))
        self.backoff_base_s = backoff_base_s
        self.backoff_max_s = backoff_max_s
        self.stats = ClientStats()
        self._sleep = sleep
        self._jitter = random.Random()
        self._limiter = TokenBucket(rate_limit_per_s * (1 - RATE_LIMIT_HEADROOM), sleep=sleep)
        self._in_flight = threading.BoundedSemaphore(max_concurrency)
        self._session_lock = threading.Lock()
        self._token: str | None = None
        self._issued_tokens: tuple[str, ...] = ()
        self._lookups = LookupCache(lambda resource: self.list(resource))
        self._http = httpx.Client(
            base_url=self.base_url + "/",
            timeout=httpx.Timeout(timeout_s),
            limits=httpx.Limits(max_connections=max_concurrency,
                                max_keepalive_connections=max_concurrency),
            headers={"Accept": "application/json", "User-Agent": "ssm-connector"},
            transport=transport,
        )

    @classmethod
    def from_settings(cls, settings, **overrides) -> "SsmClient":
        """Build the client from `shared.config.SsmSettings` (keyword overrides win)."""
        options = dict(timeout_s=settings.timeout_s, max_concurrency=settings.max_concurrency,
                       rate_limit_per_s=settings.rate_limit_per_s, max_retries=settings.max_retries,
                       page_size=settings.page_size)
        options.update(overrides)
        return cls(settings.base_url, settings.public_key, settings.private_key, **options)

    def __repr__(self) -> str:
        return f"SsmClient({self.base_url!r}, public_key={self.public_key!r})"

    def __enter__(self) -> "SsmClient":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        self._http.close()

    # --- reading ------------------------------------------------------------------------------
    def list(self, resource: str, *, where: str | None = None, order: str | None = None,
             page_size: int | None = None) -> Iterator[dict]:
        """Every record of `resource` matching `where`, page after page (soft-deleted included).

        Reading stops at an empty page or a page shorter than the size asked for, except that a
        short page whose length is a round number (a multiple of 50) is confirmed by reading the
        next page: it may be a server-side cap on the page size, and stopping there would
        silently skip records.
        """
        size = max(1, min(page_size or self.page_size, MAX_PAGE_SIZE))
        previous_ids: list | None = None
        page = 0
        while True:
            params: dict[str, Any] = {"page": page}
            if where:
                params["where"] = where
            if order:
                params["order"] = order
            response = self._call("GET", resource, f"{resource}", params=params,
                                  headers={name: str(size) for name in contract.PAGE_SIZE_HEADERS},
                                  what=f"page {page}")
            rows = self._json(response, resource)
            if not isinstance(rows, list):
                raise SsmRecordError(text("sync.ssm.not_a_list", resource=resource),
                                     status=response.status_code)
            ids = [row.get("id") for row in rows if isinstance(row, dict)]
            if rows and ids == previous_ids:
                raise SsmRecordError(text("sync.ssm.same_page", resource=resource),
                                     status=response.status_code)
            yield from rows
            if not rows:
                return
            if len(rows) < size and len(rows) % SERVER_CAP_MULTIPLE != 0:
                return
            previous_ids = ids
            page += 1

    def get(self, resource: str, id: int) -> dict:
        """One record, deleted ones included. Raises `SsmMissingError` when SSM has no such id."""
        try:
            response = self._call("GET", resource, f"{resource}/{int(id)}", record_id=id)
        except SsmRecordError as exc:
            raise self._missing_or(exc, resource, id, deleted_is_missing=False) from None
        body = self._json(response, resource)
        if not isinstance(body, dict):
            raise SsmRecordError(text("sync.ssm.not_a_record", resource=resource, id=id),
                                 status=response.status_code)
        return body

    def holds_any(self, resource: str, *, ext_id_prefixes=None) -> bool:
        """Whether SSM holds a record of `resource` (soft-deleted ones included), with `extId`
        starting with one of `ext_id_prefixes` when given: one read of one record (`LIKE`, a
        documented operator). A `_` or `%` in a prefix matches more, never less: a yes may be
        wrong, a no is not."""
        field = "extID" if resource == "rates" else "extId"
        where = None if ext_id_prefixes is None else " OR ".join(
            f"{field} LIKE {quote(prefix + '%')}" for prefix in sorted(set(ext_id_prefixes)))
        return next(iter(self.list(resource, where=where, page_size=1)), None) is not None

    def find_by_ext_id(self, resource: str, ext_id: str) -> dict | None:
        """The record whose `extId` is exactly `ext_id`, soft-deleted ones included."""
        return self.find_by_ext_ids(resource, [ext_id]).get(ext_id)

    def find_by_ext_ids(self, resource: str, ext_ids) -> dict[str, dict]:
        """`extId` → record for those of `ext_ids` SSM holds, a few dozen per read (ORed equalities,
        the documented form). SSM compares text without regard to case, so matches are kept on the
        exact value. Several live matches (a duplicate) → the oldest; only deleted ones → the newest.
        """
        wanted = sorted({e for e in ext_ids if e})
        found: dict[str, dict] = {}
        field = "extID" if resource == "rates" else "extId"
        for start in range(0, len(wanted), EXT_IDS_PER_READ):
            chunk = wanted[start:start + EXT_IDS_PER_READ]
            where = " OR ".join(f"{field}={quote(e)}" for e in chunk)
            for row in self.list(resource, where=where):
                ext = row.get(field)
                if ext in chunk and (ext not in found or _preferred(row, found[ext])):
                    found[ext] = row
        return found

    def changed_since(self, resource: str, since: datetime) -> Iterator[dict]:
        """Records created, updated or deleted after `since` (naive datetimes are UTC).

        `dateUpdated` is null on records never edited, hence the three-way condition. `since` is
        rounded down to the millisecond, so the read may include a record twice, never miss one.
        """
        stamp = quote(iso_millis(since))
        where = f"dateCreated>{stamp} OR dateUpdated>{stamp} OR dateDeleted>{stamp}"
        return self.list(resource, where=where, order="id")

    def exists(self, resource: str, id: int) -> dict | None:
        """The record with this id as a list returns it (deleted ones included), or None."""
        for row in self.list(resource, where=f"id={int(id)}"):
            if _as_int(row.get("id")) == int(id):
                return row
        return None

    def schema(self, resource: str) -> dict:
        """`GET /<resource>/schema`: the standard fields of a resource (`{"properties": {...}}`)."""
        return self._description(f"{resource}/schema", resource)

    def custom_fields(self, resource: str) -> frozenset[str]:
        """The tenant's `Z_*` fields of a resource, from `GET /extrafields/<resource>/schema`."""
        if resource not in contract.EXTRA_FIELD_RESOURCES:
            return frozenset()
        body = self._description(f"extrafields/{resource}/schema", resource)
        properties = body.get("properties") if isinstance(body.get("properties"), dict) else body
        return frozenset(name for name in properties if isinstance(name, str) and name.startswith("Z_"))

    def _description(self, path: str, resource: str) -> dict:
        response = self._call("GET", resource, path, what="schema")
        body = self._json(response, resource)
        if not isinstance(body, dict):
            raise SsmRecordError(text("sync.ssm.not_a_description", path=path),
                                 status=response.status_code)
        return body

    def lookup_id(self, resource: str, description: str) -> int:
        """The id of a per-tenant entry (account type, branch, sales order status) by description."""
        return self._lookups.id_of(resource, description)

    def find_id(self, resource: str, description: str) -> int | None:
        """`lookup_id`, or None when the tenant has no such entry."""
        return self._lookups.find(resource, description)

    def forget_lookups(self, resource: str | None = None) -> None:
        self._lookups.forget(resource)

    # --- writing ------------------------------------------------------------------------------
    def create(self, resource: str, body: dict, *, find_existing: Callable[[], int | None] | None = None) -> int:
        """POST one entity; returns its new id (or the id SSM already gave it, see module doc).

        `find_existing` finds the record a POST whose answer was lost may have created, for a
        resource without `extId` (sales order lines); without either, such a POST is not repeated.
        """
        ext_id = body.get("extId")
        recover = (lambda: self._live_id(resource, ext_id)) if ext_id else find_existing
        result = self._call("POST", resource, resource, json=body, recover=recover)
        if isinstance(result, _Recovered):
            return result.id
        answer = self._json(result, resource)
        new_id = answer.get("id", answer.get("Id")) if isinstance(answer, dict) else None
        try:
            return int(new_id)
        except (TypeError, ValueError):
            raise SsmRecordError(text("sync.ssm.no_id", entity=entity_label(resource)),
                                 status=result.status_code) from None

    def update(self, resource: str, id: int, fields: dict) -> None:
        """Partial PUT: only `fields` change in SSM. No fields, no call.

        Raises:
            SsmMissingError: SSM has no such record, or it is deleted.
        """
        if not fields:
            return
        try:
            self._call("PUT", resource, _item_path(resource, id), json=fields, record_id=id)
        except SsmRecordError as exc:
            raise self._missing_or(exc, resource, id, deleted_is_missing=True) from None

    def delete(self, resource: str, id: int) -> None:
        """Soft delete in SSM. A record already gone (unknown or deleted) is not an error."""
        try:
            self._call("DELETE", resource, _item_path(resource, id), record_id=id)
        except SsmSkippableError as exc:
            log.info("%s", exc.user_message)
        except SsmRecordError as exc:
            error = self._missing_or(exc, resource, id, deleted_is_missing=True)
            if not isinstance(error, SsmMissingError):
                raise error from None
            log.info("%s", error.user_message)

    def _missing_or(self, error: SsmRecordError, resource: str, id: int, *,
                    deleted_is_missing: bool) -> SsmRecordError:
        """After a refusal of one record: `SsmMissingError` when SSM has no live record of that id
        (the 400 meant "unknown id"), else the refusal itself."""
        if isinstance(error, SsmMissingError) or error.status not in (400, 404, 410):
            return error
        row = self.exists(resource, id)
        if row is not None and not (deleted_is_missing and _deleted(row)):
            return error
        state = "sync.ssm.deleted" if row is not None else "sync.ssm.missing"
        return SsmMissingError(sentence(text(state, entity=entity_label(resource), id=id)),
                               status=error.status, code=error.code, detail=error.detail)

    # --- the call loop ------------------------------------------------------------------------
    def _call(self, method: str, resource: str, path: str, *, params: dict | None = None,
              json: Any = None, headers: dict | None = None, record_id: int | None = None,
              what: str = "", operation: str | None = None, authenticated: bool = True,
              recover: Callable[[], int | None] | None = None) -> httpx.Response | _Recovered:
        operation = operation or method
        attempts = 0
        logged_in_again = False
        while True:
            attempts += 1
            token = self._session_token() if authenticated else None
            response, failure = self._send(method, resource, path, params=params, json=json,
                                           headers=headers, token=token)
            if failure is None:
                return response
            resolution = resolve(failure.status, failure.code, operation)
            if resolution.action is Action.RELOGIN and not logged_in_again and authenticated:
                logged_in_again = True
                log.info("SSM session expired; logging in again")
                self._drop_session(token)
                attempts -= 1
                continue
            if resolution.action is not Action.RETRY:
                raise self._error(resolution, failure, method, resource, path, record_id, attempts)
            if method == "POST" and operation != LOGIN and failure.may_have_been_applied:
                if recover is None:
                    raise SsmRetryableError(
                        text(UNCONFIRMED_CREATE, entity=entity_label(resource), reason=failure.reason),
                        status=failure.status if isinstance(failure.status, int) else None,
                        code=failure.code, detail=f"POST /{path}")
                existing = recover()
                if existing is not None:
                    self.stats.add("recovered_creates")
                    log.warning("SSM had created the %s %s although its answer was lost; bound to "
                                "the existing record", entity_label(resource), existing)
                    return _Recovered(existing)
            delay = self._delay(attempts, failure.retry_after)
            if attempts > self.max_retries or delay > RETRY_AFTER_CEILING_S:
                raise self._error(resolution, failure, method, resource, path, record_id, attempts)
            self.stats.add("retries")
            log.warning("SSM %s /%s %s: %s; attempt %d of %d, trying again in %.2f s", method, path,
                        what, failure.reason, attempts, self.max_retries + 1, delay)
            if failure.status == 429:
                self._limiter.hold(delay)      # every thread waits; the next acquire sleeps
            else:
                self._sleep(delay)

    def _send(self, method: str, resource: str, path: str, *, params, json, headers,
              token: str | None) -> tuple[httpx.Response | None, _Failure | None]:
        request_headers = dict(headers or {})
        if token is not None:
            request_headers["X-Session-Key"] = token
        self._limiter.acquire()
        with self._in_flight:
            self.stats.sent(method, resource)
            started = time.monotonic()
            try:
                response = self._http.request(method, path, params=params, json=json,
                                              headers=request_headers)
            except httpx.TimeoutException as exc:
                log.debug("SSM %s /%s -> timeout after %.0f ms", method, path,
                          (time.monotonic() - started) * 1000)
                self.stats.add("timeouts")
                unsent = isinstance(exc, (httpx.ConnectTimeout, httpx.PoolTimeout))
                return None, _Failure(TIMEOUT, None, type(exc).__name__, None, not unsent)
            except httpx.TransportError as exc:
                unsent = isinstance(exc, httpx.ConnectError)
                reason = self._redact(str(exc)) or type(exc).__name__
                return None, _Failure(CONNECTION, None, reason, None, not unsent)
        log.debug("SSM %s /%s -> %s in %.0f ms", method, path, response.status_code,
                  (time.monotonic() - started) * 1000)
        if response.is_success:
            return response, None
        status = response.status_code
        if status == 429:
            self.stats.add("throttled")
        elif status >= 500:
            self.stats.add("server_errors")
        message, code = self._ssm_message(response)
        return None, _Failure(status, code, message, retry_after_seconds(response.headers.get("Retry-After")),
                              status in _RETRYABLE_AMBIGUOUS_STATUSES)

    def _delay(self, attempt: int, retry_after: float | None) -> float:
        if retry_after is not None:
            return max(0.0, retry_after)
        ceiling = min(self.backoff_max_s, self.backoff_base_s * (2 ** (attempt - 1)))
        return self._jitter.uniform(0.0, ceiling)

    def _error(self, resolution: Resolution, failure: _Failure, method: str, resource: str,
               path: str, record_id: int | None, attempts: int) -> SsmError:
        entity = entity_label(resource)
        target = text("sync.ssm.target", entity=entity, id=record_id) if record_id is not None \
            else text("sync.ssm.target_resource", resource=resource)
        said = resolution.render(entity=entity, target=target, resource=resource,
                                 message=failure.message, status=failure.status, attempts=attempts,
                                 timeout=f"{self.timeout_s:g}", public_key=self._public_key_hint())
        status = failure.status if isinstance(failure.status, int) else None
        detail = f"{method} /{path}: {failure.reason}" + (f", SSM code {failure.code}" if failure.code else "")
        cls = _ERROR_CLASSES[resolution.action]
        if cls is SsmRetryableError:
            return SsmRetryableError(said, status=status, code=failure.code, detail=detail,
                                     retry_after=failure.retry_after)
        return cls(said, status=status, code=failure.code, detail=detail)

    # --- session ------------------------------------------------------------------------------
    def _session_token(self) -> str:
        with self._session_lock:
            if self._token is None:
                self._token = self._login()
            return self._token

    def _drop_session(self, token: str | None) -> None:
        with self._session_lock:
            if self._token == token:
                self._token = None

    def _login(self) -> str:
        credentials = {"username": self.public_key, "password": self._private_key.get_secret_value()}
        response = self._call("POST", "login", "login", json=credentials, operation=LOGIN,
                              authenticated=False)
        self.stats.add("logins")
        body = self._json(response, "login")
        token = None
        if isinstance(body, dict):
            token = body.get("token") or body.get("Token") or body.get("sessionKey")
        if not isinstance(token, str) or not token:
            raise SsmAuthError(text("sync.ssm.no_token"),
                               status=response.status_code)
        self._issued_tokens = (*self._issued_tokens[-9:], token)
        return token

    def _public_key_hint(self) -> str:
        key = self.public_key or ""
        return (key[:6] + "…") if len(key) > 6 else (key or "empty")

    # --- answers ------------------------------------------------------------------------------
    def _json(self, response: httpx.Response, resource: str) -> Any:
        try:
            return response.json()
        except ValueError:
            raise SsmRecordError(text("sync.ssm.not_json", resource=resource),
                                 status=response.status_code) from None

    def _ssm_message(self, response: httpx.Response) -> tuple[str, int | None]:
        """SSM's own message and application code, whichever of its error shapes it used."""
        try:
            body = response.json()
        except ValueError:
            body = None
        message: str | None = None
        code: int | None = None
        if isinstance(body, dict):
            for key in ("message", "Message", "error", "Error", "detail", "title"):
                if isinstance(body.get(key), str) and body[key].strip():
                    message = body[key].strip()
                    break
            for key in ("code", "Code", "errorCode"):
                code = _as_int(body.get(key))
                if code is not None:
                    break
            if code is None:
                status_code = _as_int(body.get("statusCode"))
                if status_code is not None and status_code >= 900:
                    code = status_code
        elif isinstance(body, str):
            message = body.strip()
        elif body is None:
            text = response.text.strip()
            if text and not text.startswith("<"):
                message = text
        message = message or response.reason_phrase or ""
        if len(message) > 300:
            message = message[:297] + "..."
        return self._redact(message), code

    def _redact(self, text: str) -> str:
        secrets = [self._private_key.get_secret_value(), *self._issued_tokens]
        for secret in secrets:
            if secret and len(secret) >= 4:
                text = text.replace(secret, "***")
        return text

    def _live_id(self, resource: str, ext_id: str) -> int | None:
        record = self.find_by_ext_id(resource, ext_id)
        if record is None or record.get("deleted"):
            return None
        return int(record["id"])


def quote(text: str) -> str:
    """A where-clause text literal in the documented form: double quotes (none inside)."""
    return contract.where_literal(str(text))


def _item_path(resource: str, id: int) -> str:
    """Where one record is changed or deleted: `<resource>/<id>`, or the contract's own path
    (account types are changed at `list/accountTypes/<id>`)."""
    described = contract.resource(resource)
    base = described.item_path.strip("/") if described is not None and described.item_path else resource
    return f"{base}/{int(id)}"


def _deleted(row: dict) -> bool:
    return bool(row.get("deleted"))           # `/sales` says 0/1, the others true/false


def _preferred(candidate: dict, current: dict) -> bool:
    """Among records sharing an `extId`: a live one before a deleted one, then the oldest live."""
    if _deleted(candidate) != _deleted(current):
        return not _deleted(candidate)
    if _deleted(candidate):
        return candidate["id"] > current["id"]
    return candidate["id"] < current["id"]


def iso_millis(moment: datetime) -> str:
    """UTC ISO 8601 with milliseconds, rounded down (`2024-05-01T10:00:00.123Z`)."""
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=timezone.utc)
    moment = moment.astimezone(timezone.utc)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def retry_after_seconds(value: str | None, *, now: datetime | None = None) -> float | None:
    """`Retry-After` as seconds: either delta-seconds or an HTTP date; None when absent or bad."""
    if not value:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=timezone.utc)
    return max(0.0, (when - (now or datetime.now(timezone.utc))).total_seconds())


def _as_int(value: Any) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, str) and value.strip().isdigit():
        return int(value.strip())
    return None
