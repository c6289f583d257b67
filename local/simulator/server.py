"""The SSM simulator: a stand-in for the public SSM v4 API, served over real HTTP on 127.0.0.1.

It answers as `reference/ssm-api.md` describes: `POST /login` → token, `X-Session-Key` on every
other call (401 when missing, wrong or expired), bare JSON arrays paged by `?page=N` (0-based;
the legacy `X-FM-Page` header too) with the size in the `X-FM-Entity-Count` request header
(default 50, at most 500), `where` and `order`, references as `{"id", "value"}` objects, POST →
`{"Message": "entity created", "id": N}`, partial PUT, soft DELETE (still listed, `deleted: true`),
`GET /<entity>/schema`, the legacy `GET /internalid`, and 400 bodies that rotate among the three
documented shapes. Read-only records refuse PUT and DELETE from ordinary users with a 400 (the
documentation lists no 403; 400 is its answer for any refused input); the integration keys may
change them.

Tests and the demo drive it directly too: `faults` (a FaultPlan, changeable at run time), the
calls it received (`calls`, `call_count`), the records as GET returns them, credentials of
ordinary users, and `reject_field` to make SSM refuse one value.
"""
from __future__ import annotations

import json
import random
import secrets
import socket
import threading
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Callable
from urllib.parse import parse_qs, urlsplit

from local.simulator.faults import DROP, RATE_LIMITED, TIMEOUT, FaultPlan
from local.simulator.store import (CODE_DATABASE, CODE_RESOURCE_MISSING, INTEGRATION, STRING,
                                   Principal, RejectRule, SimError, Store, system_clock)

BASE_PATH = "/api/v4"
DEFAULT_PAGE_SIZE = 50
MAX_PAGE_SIZE = 500
WRITE_METHODS = frozenset({"POST", "PUT", "DELETE"})
ERROR_SHAPES = ("message", "Message", "statusCode")

SALES_ORDER_STATUSES = ("Brouillon – En attente", "Brouillon – Validé",
                        "En attente de synchronisation", "Commande", "Facture", "Annulé")
COUNTRIES = (("France", "France", "FR"), ("Belgique", "Belgium", "BE"), ("Suisse", "Switzerland", "CH"),
             ("Luxembourg", "Luxembourg", "LU"), ("Espagne", "Spain", "ES"),
             ("Allemagne", "Germany", "DE"), ("Italie", "Italy", "IT"), ("Royaume-Uni", "United Kingdom", "GB"))


@dataclass(frozen=True)
class Call:
    """One request the simulator received, with the status it answered (None: no answer)."""

    method: str
    path: str
    resource: str
    id: int | None
    query: dict
    body: Any
    status: int | None
    at: datetime
    fault: str | None = None


@dataclass
class _Session:
    principal: Principal
    expires_at: datetime
    generation: int


@dataclass
class _Answer:
    status: int
    body: Any
    headers: dict = field(default_factory=dict)


class SsmSimulator:
    """One simulated SSM tenant. `start()` serves it; use as a context manager in tests.

    Args:
        faults: the fault plan (none by default); `sim.faults` may be changed at any time.
        seed: seeds the ids (so no one can hard-code them), the keys and the fault generator
            when `faults` is not given.
        session_ttl_s: session lifetime, measured on `clock`.
        clock: returns the current time (aware datetime); a `ManualClock` in tests.
        tenant: the tenant's name, used in the admin's e-mail (`admin@<tenant>.example`).
    """

    def __init__(self, *, faults: FaultPlan | None = None, seed: int = 0, session_ttl_s: float = 3600,
                 clock: Callable[[], datetime] | None = None, tenant: str = "demo"):
        self._rng = random.Random(seed)
        self.clock = clock or system_clock
        self.faults = faults or FaultPlan(seed=seed)
        self.session_ttl_s = session_ttl_s
        self.tenant = tenant
        self.store = Store(clock=self.clock, rng=self._rng)
        self.public_key = f"fm-pub-{self._rng.getrandbits(48):012x}"
        self.private_key = f"fm-priv-{self._rng.getrandbits(128):032x}"
        self.error_shape: str | None = None   # None: rotate among ERROR_SHAPES
        self.max_page_size = MAX_PAGE_SIZE    # larger X-FM-Entity-Count values are capped to this
        self.max_in_flight = 0                # most requests seen being served at once
        self.internal_errors: list[str] = []  # simulator defects (answered 599); tests assert none
        self._in_flight = 0
        self.calls: list[Call] = []
        self._lock = threading.Lock()
        self._sessions: dict[str, _Session] = {}
        self._retired_tokens: list[str] = []
        self._user_keys: dict[str, tuple[str, int]] = {}   # public key (e-mail) → (private key, user id)
        self._shape_turn = 0
        self._stopping = threading.Event()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self._seed_tenant()

    # --- life cycle ---------------------------------------------------------------------------
    def start(self, host: str = "127.0.0.1", port: int = 0) -> "SsmSimulator":
        handler = type("SsmHandler", (_Handler,), {"simulator": self})
        self._server = ThreadingHTTPServer((host, port), handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05},
                                        name="ssm-simulator", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stopping.set()
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    def __enter__(self) -> "SsmSimulator":
        return self if self._server else self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    @property
    def base_url(self) -> str:
        if self._server is None:
            raise RuntimeError("the simulator is not started")
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}{BASE_PATH}"

    # --- tenant set-up ------------------------------------------------------------------------
    def _seed_tenant(self) -> None:
        seed = self.store.seed
        self.account_type_ids = {
            name: seed("accountTypes", {"descriptionFR": name, "descriptionEN": name})
            for name in ("Client", "Prospect")}
        self.branch_id = seed("branches", {"descriptionFR": "Siège", "descriptionEN": "Head office"})
        self.status_ids = {name: seed("salesordersStatuses", {"descriptionFR": name, "descriptionEN": name})
                           for name in SALES_ORDER_STATUSES}
        self.currency_id = seed("currencies", {"descriptionFR": "EUR", "descriptionEN": "EUR", "symbol": "€"})
        for french, english, iso in COUNTRIES:
            seed("countries", {"descriptionFR": french, "descriptionEN": english, "isoCode": iso})
        self.admin_email = f"admin@{self.tenant}.example"
        self.admin_id = self.seed_user("Admin", "Implémentation", self.admin_email)

    def seed_user(self, name: str, last_name: str | None = None, email: str | None = None, *,
                  ext_id: str | None = None, is_active: bool = True, **fields) -> int:
        """A user as an SSM administrator would invite one (no API call recorded)."""
        email = email or f"{name.lower()}.{(last_name or 'user').lower()}@{self.tenant}.example"
        return self.store.seed("users", {"name": name, "lastName": last_name, "email": email,
                                         "extId": ext_id, "isActive": is_active, **fields})

    def add_record(self, resource: str, fields: dict) -> int:
        """Insert a record directly (validated, no API call recorded), e.g. many accounts for paging."""
        return self.store.seed(resource, fields)

    def add_custom_field(self, resource: str, name: str, type: str = STRING,
                         max_length: int | None = 255) -> None:
        self.store.add_custom_field(resource, name, type, max_length)

    def reject_field(self, resource: str, field: str, predicate: Callable[[Any], bool],
                     message: str) -> None:
        """From now on SSM answers 400 `message` to a write of `field` whose value matches."""
        self.store.reject_rules.append(RejectRule(resource, field, predicate, message))

    def clear_rejections(self) -> None:
        self.store.reject_rules.clear()

    def user_credentials(self, email: str) -> tuple[str, str]:
        """API keys of an ordinary SSM user (created as a user if the e-mail is unknown).

        The public key is the user's e-mail, so a session knows who it acts for.
        """
        with self._lock:
            known = self._user_keys.get(email.casefold())
            if known is not None:
                return email.casefold(), known[0]
            user_id = next((u["id"] for u in self.store.all("users")
                            if (u["email"] or "").casefold() == email.casefold()), None)
            if user_id is None:
                local = email.split("@")[0]
                user_id = self.store.seed("users", {"name": local.split(".")[0].title() or "User",
                                                    "lastName": local.split(".")[-1].title(),
                                                    "email": email, "isActive": True})
            private = f"fm-user-priv-{self._rng.getrandbits(128):032x}"
            self._user_keys[email.casefold()] = (private, user_id)
            return email.casefold(), private

    # --- what tests look at -------------------------------------------------------------------
    def records(self, resource: str, *, include_deleted: bool = True) -> list[dict]:
        return self.store.all(resource, include_deleted=include_deleted)

    def record(self, resource: str, id: int) -> dict:
        try:
            return self.store.get(resource, id)
        except SimError as exc:
            raise LookupError(exc.message) from None

    def call_count(self, method: str | None = None, resource: str | None = None, *,
                   writes_only: bool = False) -> int:
        """Calls received (login included unless a resource is named), filtered."""
        with self._lock:
            calls = list(self.calls)
        return sum(1 for c in calls
                   if (method is None or c.method == method.upper())
                   and (resource is None or c.resource == resource)
                   and (not writes_only or (c.method in WRITE_METHODS and c.resource != "login")))

    def reset_calls(self) -> None:
        with self._lock:
            self.calls.clear()

    def expire_sessions(self) -> None:
        self.faults.expire_sessions()

    def issued_tokens(self) -> list[str]:
        """Every session token handed out so far (to check that none leaks into logs)."""
        with self._lock:
            return list(self._sessions) + list(self._retired_tokens)

    # --- one request --------------------------------------------------------------------------
    def _serve(self, handler: "_Handler") -> None:
        with self._lock:
            self._in_flight += 1
            self.max_in_flight = max(self.max_in_flight, self._in_flight)
        try:
            self._serve_one(handler)
        finally:
            with self._lock:
                self._in_flight -= 1

    def _serve_one(self, handler: "_Handler") -> None:
        method = handler.command
        url = urlsplit(handler.path)
        query = {k: v[-1] for k, v in parse_qs(url.query, keep_blank_values=True).items()}
        length = int(handler.headers.get("Content-Length") or 0)
        raw = handler.rfile.read(length) if length else b""
        segments = [s for s in url.path[len(BASE_PATH):].split("/") if s] \
            if url.path.startswith(BASE_PATH + "/") or url.path == BASE_PATH else None
        resource = segments[0] if segments else ""
        record_id = int(segments[1]) if segments and len(segments) > 1 and segments[1].isdigit() else None
        body, body_error = _parse_json(raw)
        shown_body = {**body, "password": "***"} if resource == "login" and isinstance(body, dict) else body

        if self.faults.latency_s > 0:
            self._stopping.wait(self.faults.latency_s)
        fault = self.faults.decide(method, resource)
        fault_name = None
        answer: _Answer | None
        if fault is None:
            answer = self._answer(method, segments, query, handler.headers, body, body_error)
        elif fault.kind == RATE_LIMITED:
            fault_name = "rate-limit"
            answer = _Answer(429, {"message": "Too many requests: slow down"},
                             {"Retry-After": str(fault.retry_after or 1)})
        elif fault.kind == DROP:
            fault_name, answer = DROP, None
        elif fault.kind == TIMEOUT:
            fault_name = TIMEOUT
            answer = self._answer(method, segments, query, handler.headers, body, body_error) \
                if self.faults.timeout_applies else None
        else:
            fault_name = f"http-{fault.kind}"
            answer = _Answer(int(fault.kind), _fault_body(int(fault.kind)))

        call = Call(method, url.path, resource, record_id, query, shown_body,
                    answer.status if answer is not None else None, self.clock(), fault_name)
        with self._lock:
            self.calls.append(call)
        if fault_name == TIMEOUT:
            handler.close_connection = True
            self._stopping.wait(self.faults.timeout_hold_s)
        if answer is None:
            handler.close_connection = True
            return
        handler.respond(answer)

    def _answer(self, method, segments, query, headers, body, body_error) -> _Answer:
        try:
            return self._route(method, segments, query, headers, body, body_error)
        except SimError as exc:
            return _Answer(exc.status, self._error_body(exc.status, exc.message, exc.code))
        except Exception as exc:  # noqa: BLE001 - a simulator defect must not pass for an SSM outage
            with self._lock:
                self.internal_errors.append(f"{method} {'/'.join(segments or [])}: {exc!r}")
            return _Answer(599, {"message": f"simulator defect: {exc!r}"})

    def _error_body(self, status: int, message: str, code: int | None) -> dict:
        if status != 400:
            body: dict = {"message": message}
        else:
            with self._lock:
                shape = self.error_shape or ERROR_SHAPES[self._shape_turn % len(ERROR_SHAPES)]
                self._shape_turn += 1
            if shape == "statusCode":
                body = {"statusCode": 400, "message": message, "error": "Bad Request"}
            else:
                body = {shape: message}
        if code is not None:
            body["code"] = code
        return body

    def _route(self, method, segments, query, headers, body, body_error) -> _Answer:
        if segments is None:
            raise SimError(404, "Not found")
        if not segments:
            raise SimError(404, "Resource missing in the path", CODE_RESOURCE_MISSING)
        resource = segments[0]
        if resource == "login":
            if method != "POST":
                raise SimError(405, "Use POST /login")
            return self._login(body)
        principal = self._principal(headers.get("X-Session-Key"))
        if body_error and method in ("POST", "PUT"):
            raise SimError(400, f"The request body is not valid JSON: {body_error}")
        if resource == "internalid" and method == "GET":
            return self._internal_id(query)
        self.store.spec(resource)
        rest = segments[1:]
        if not rest:
            if method == "GET":
                return self._list(resource, query, headers)
            if method == "POST":
                new_id = self.store.create(resource, body, principal)
                return _Answer(200, {"Message": "entity created", "id": new_id})
            if method in ("PUT", "DELETE"):
                raise SimError(400, "The id of the entity is missing in the path")
            raise SimError(405, f"{method} is not allowed on {resource}")
        if len(rest) == 1 and rest[0] == "schema" and method == "GET":
            return _Answer(200, self.store.schema(resource))
        if len(rest) != 1 or not rest[0].isdigit():
            raise SimError(400, f"'{'/'.join(rest)}' is not an entity id")
        record_id = int(rest[0])
        if method == "GET":
            return _Answer(200, self.store.get(resource, record_id))
        if method == "PUT":
            self.store.update(resource, record_id, body, principal)
            return _Answer(200, {"Message": "entity updated"})
        if method == "DELETE":
            self.store.delete(resource, record_id, principal)
            return _Answer(200, {"Message": "entity deleted"})
        raise SimError(405, f"{method} is not allowed on {resource}/{record_id}")

    def _login(self, body) -> _Answer:
        if not isinstance(body, dict) or not body.get("username") or not body.get("password"):
            raise SimError(400, "username and password are required")
        username, password = str(body["username"]), str(body["password"])
        if username == self.public_key and secrets.compare_digest(password, self.private_key):
            principal = INTEGRATION
        else:
            with self._lock:
                known = self._user_keys.get(username)
            if known is None or not secrets.compare_digest(password, known[0]):
                raise SimError(401, "Invalid credentials")
            principal = Principal(False, known[1])
        token = secrets.token_hex(24)
        session = _Session(principal, self.clock() + timedelta(seconds=self.session_ttl_s),
                           self.faults.session_generation)
        with self._lock:
            self._sessions[token] = session
        return _Answer(200, {"token": token})

    def _principal(self, token: str | None) -> Principal:
        with self._lock:
            session = self._sessions.get(token or "")
        if session is None:
            raise SimError(401, "Invalid session key" if token else "X-Session-Key header missing")
        if session.generation != self.faults.session_generation or self.clock() >= session.expires_at:
            with self._lock:
                if self._sessions.pop(token, None) is not None:
                    self._retired_tokens.append(token)
            raise SimError(401, "Session expired")
        return session.principal

    def _list(self, resource: str, query: dict, headers) -> _Answer:
        size = _non_negative(headers.get("X-FM-Entity-Count"), DEFAULT_PAGE_SIZE, "X-FM-Entity-Count")
        size = max(1, min(size, self.max_page_size))
        page_text = query.get("page", headers.get("X-FM-Page"))
        page = _non_negative(page_text, 0, "page")
        rows = self.store.query(resource, where=query.get("where"), order=query.get("order"),
                                page=page, size=size)
        more = len(rows) == size
        return _Answer(200, rows, {"X-FM-Entity-Count": str(len(rows)),
                                   "X-FM-Next-Page": str(page + 1) if more else ""})

    def _internal_id(self, query: dict) -> _Answer:
        resource, ext_id = query.get("type", ""), query.get("externalid", "")
        if not resource or not ext_id:
            raise SimError(400, "type and externalid are required")
        found = self.store.find_ext_id(resource, ext_id)
        if found is None:
            raise SimError(404, f"No {resource} with external id '{ext_id}'")
        return _Answer(200, {"id": found})


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    timeout = 60
    wbufsize = -1            # headers and body leave in one write, flushed after each request
    simulator: SsmSimulator

    def setup(self):
        super().setup()
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def do_GET(self):
        self.simulator._serve(self)

    do_POST = do_PUT = do_DELETE = do_PATCH = do_GET

    def respond(self, answer: _Answer) -> None:
        data = json.dumps(answer.body, ensure_ascii=False).encode("utf-8")
        try:
            self.send_response(answer.status)
            self.send_header("Content-Type", "application/json; charset=utf-8")
            self.send_header("Content-Length", str(len(data)))
            for name, value in answer.headers.items():
                if value != "":
                    self.send_header(name, value)
            self.end_headers()
            self.wfile.write(data)
            self.wfile.flush()
        except OSError:
            self.close_connection = True

    def log_message(self, format, *args):
        pass


def _fault_body(status: int) -> dict:
    if status == 500:
        return {"statusCode": 500, "message": "Database error", "code": CODE_DATABASE}
    if status in (502, 503, 504):
        return {"message": "Service temporarily unavailable"}
    if status == 401:
        return {"message": "Session expired"}
    if status == 429:
        return {"message": "Too many requests: slow down"}
    return {"message": f"Injected HTTP {status}"}


def _parse_json(raw: bytes) -> tuple[Any, str | None]:
    if not raw:
        return None, None
    try:
        return json.loads(raw.decode("utf-8")), None
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        return None, str(exc)


def _non_negative(text: str | None, default: int, name: str) -> int:
    if text is None or str(text).strip() == "":
        return default
    try:
        value = int(str(text).strip())
    except ValueError:
        raise SimError(400, f"'{text}' is not a valid {name}") from None
    if value < 0:
        raise SimError(400, f"{name} cannot be negative")
    return value
