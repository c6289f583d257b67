"""The SSM simulator: a strict stand-in for the public SSM v4 API, served over real HTTP on 127.0.0.1.

It refuses whatever `shared.ssm.contract` does not allow. Every request is routed with
`contract.route` (an undocumented path or method → 400; an unknown resource carries code 910;
the pre-v4 `GET /internalid` and `X-FM-Page` are gone) and checked with
`contract.request_violations` under the simulator's `Strictness` (400 with the first
violation's message, code 901 for `where`/`order`); then the store applies the checks only a
server can make (references to missing records and unknown ids → 400 code 910, never 404).
`POST /login` takes exactly `username` and `password` and answers `{"token"}`; every other call
needs `X-Session-Key` (401 when missing, wrong or expired). Lists are bare JSON arrays, `page`
0-based, the page size from the `count` or `X-FM-Entity-Count` header (default 50, capped at
`Strictness.max_page_size`; both sent and different: the smaller; 0: 400), no paging headers in
the answer, deleted records included, by id ascending when no `order` is given (the default
order is undocumented).
POST → `{"Message": "entity created", "id": N}`, partial PUT → `{"Message": "entity updated"}`,
soft DELETE → `{"Message": "entity deleted"}`. 400 bodies rotate among the five documented shapes
(ssm-api.md §5) unless `error_shape` pins one; the `code` field carrying 900/901/910 is
undocumented (the simulator's choice). `GET /<resource>/schema` and
`GET /extrafields/<resource>/schema` describe fields; webhooks (`/hooks`) are delivered from a
background thread as a JSON array of the changed record, not retried, no secret sent.

Tests and the demo drive it directly too: `faults` (a FaultPlan, changeable at run time; a
`rate_plan` of `contract.RATE_PLANS` sets its rate limit), the calls it received (`calls`, each
with headers, query, body and a `contract.Request`), the records as GET returns them,
credentials of ordinary users, `reject_field` to make SSM refuse one value, and the webhook
deliveries.
"""
from __future__ import annotations

import json
import logging
import queue
import random
import secrets
import socket
import threading
import time
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Callable, Iterable
from urllib.parse import parse_qs, urlsplit

import httpx

from local.simulator.faults import DROP, RATE_LIMITED, TIMEOUT, FaultPlan
from local.simulator.store import (CODE_RESOURCE_MISSING, INTEGRATION, STRING, Principal, RejectRule,
                                   SimError, Store, system_clock)
from shared.ssm import contract
from shared.ssm.contract import (CODE_DATABASE, CREATE, DELETE, GET, LIST, SCHEMA, STRICT, UPDATE,
                                 Request, Strictness)

log = logging.getLogger("local.simulator")

BASE_PATH = "/api/v4"
WRITE_METHODS = frozenset({"POST", "PUT", "DELETE"})
ERROR_SHAPES = ("message", "Message", "statusCode", "statusCodeOnly", "status")
"""The 400 bodies seen in the vendor's examples (ssm-api.md §5), in rotation order:
`{"message"}`, `{"Message"}`, `{"statusCode": 400, "message", "error": "Bad Request"}`,
`{"statusCode": 400, "message"}`, `{"status": 400, "message"}`."""

SALES_ORDER_STATUSES = (("Brouillon – En attente", "Draft – Pending"),
                        ("Brouillon – Validé", "Draft – Validated"),
                        ("En attente de synchronisation", "Awaiting synchronisation"),
                        ("Commande", "Order"), ("Facture", "Invoice"), ("Annulé", "Cancelled"))
COUNTRIES = (  # descriptionFR, descriptionEN (= strName), iso2, iso3, isoNum, phoneCode
    ("France", "France", "FR", "FRA", "250", "33"), ("Belgique", "Belgium", "BE", "BEL", "056", "32"),
    ("Suisse", "Switzerland", "CH", "CHE", "756", "41"), ("Luxembourg", "Luxembourg", "LU", "LUX", "442", "352"),
    ("Espagne", "Spain", "ES", "ESP", "724", "34"), ("Allemagne", "Germany", "DE", "DEU", "276", "49"),
    ("Italie", "Italy", "IT", "ITA", "380", "39"), ("Royaume-Uni", "United Kingdom", "GB", "GBR", "826", "44"))
ACCOUNT_TYPES = (("Client", "Customer"), ("Prospect", "Prospect"))
TENANT_CUSTOM_FIELDS = {   # this simulated tenant's own extra fields (tenant data, not the contract's)
    "accounts": (("Z_Segment", STRING, 100), ("Z_Notes", STRING, 6000)),
    "products": (("Z_Brand", STRING, 100),),
}


@dataclass(frozen=True)
class Call:
    """One request the simulator received, with the status it answered (None: no answer).

    `path` is the URL path as received (base path included); `headers` are the request's, the
    session key shown as "***"; `body` is the parsed JSON (the login password shown as "***").
    """

    method: str
    path: str
    resource: str
    id: int | None
    query: dict
    body: Any
    status: int | None
    at: datetime
    fault: str | None = None
    headers: dict = field(default_factory=dict)

    @property
    def request(self) -> Request:
        """The request as `contract.request_violations` takes it (path below /api/v4)."""
        path = self.path[len(BASE_PATH):] if self.path.startswith(BASE_PATH) else self.path
        return Request(self.method, path or "/", dict(self.query), dict(self.headers), self.body)


@dataclass(frozen=True)
class HookDelivery:
    """One webhook callback: `status` the receiver's HTTP status, or `error` when none came."""

    hook_id: int
    url: str
    entity: str
    action: str
    record_id: int
    status: int | None
    error: str | None
    at: datetime


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
        session_ttl_s: session lifetime, measured on `clock` (the real one is undocumented).
        clock: returns the current time (aware datetime); a `ManualClock` in tests.
        tenant: the tenant's name, used in the admin's e-mail (`admin@<tenant>.example`).
        rate_plan: a plan of `contract.RATE_PLANS` ("starter", "4", "13") whose limit the fault
            plan enforces; None leaves the fault plan's own limit (none by default).
        strictness: the choices where the contract is silent (`contract.STRICT` by default).
        unavailable: resources this tenant does not offer (W1: account addresses need the tenant
            to have them); every request to one answers 400 "not available", code 910.
    """

    def __init__(self, *, faults: FaultPlan | None = None, seed: int = 0, session_ttl_s: float = 3600,
                 clock: Callable[[], datetime] | None = None, tenant: str = "demo",
                 rate_plan: str | None = None, strictness: Strictness = STRICT,
                 unavailable: Iterable[str] = ()):
        self._rng = random.Random(seed)
        self.clock = clock or system_clock
        self.faults = faults or FaultPlan(seed=seed)
        if rate_plan is not None:
            self.faults.use_rate_plan(rate_plan)
        self.session_ttl_s = session_ttl_s
        self.tenant = tenant
        self.unavailable = frozenset(unavailable)
        self.store = Store(clock=self.clock, rng=self._rng, strictness=strictness)
        self.public_key = f"fm-pub-{self._rng.getrandbits(48):012x}"
        self.private_key = f"fm-priv-{self._rng.getrandbits(128):032x}"
        self.error_shape: str | None = None   # None: rotate among ERROR_SHAPES
        self.max_in_flight = 0                # most requests seen being served at once
        self.internal_errors: list[str] = []  # simulator defects (answered 599); tests assert none
        self.hook_deliveries: list[HookDelivery] = []
        self.hook_failures = 0
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
        self._hook_queue: queue.Queue = queue.Queue()
        self._hook_thread: threading.Thread | None = None
        self._seed_tenant()
        self.store.on_change = self._record_changed

    # --- strictness ---------------------------------------------------------------------------
    @property
    def strictness(self) -> Strictness:
        return self.store.strictness

    @strictness.setter
    def strictness(self, value: Strictness) -> None:
        self.store.strictness = value

    @property
    def max_page_size(self) -> int:
        return self.strictness.max_page_size

    @max_page_size.setter
    def max_page_size(self, value: int) -> None:
        self.strictness = self.strictness.loosened(max_page_size=int(value))

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
        if self._hook_thread is not None:
            self._hook_queue.put(None)
            self._hook_thread.join(timeout=5)
            self._hook_thread = None

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
        self.country_ids = {
            iso2: seed("countries", {"descriptionFR": fr, "descriptionEN": en, "strName": en, "iso2": iso2,
                                     "iso3": iso3, "isoNum": num, "phoneCode": phone})
            for fr, en, iso2, iso3, num, phone in COUNTRIES}
        self.currency_id = seed("currencies", {"descriptionFR": "euro", "descriptionEN": "euro",
                                               "isoCode": "EUR", "symbol": "€"})
        self.branch_id = seed("branches", {"descriptionFR": "Siège", "descriptionEN": "Head office",
                                           "default": True, "mainEnvironment": True,
                                           "currencyId": self.currency_id})
        self.account_type_ids = {fr: seed("accountTypes", {"descriptionFR": fr, "descriptionEN": en})
                                 for fr, en in ACCOUNT_TYPES}
        self.status_ids = {fr: seed("salesorderStatuses", {"descriptionFR": fr, "descriptionEN": en,
                                                           "order": position})
                           for position, (fr, en) in enumerate(SALES_ORDER_STATUSES, start=1)}
        for resource, fields in TENANT_CUSTOM_FIELDS.items():
            for name, kind, max_length in fields:
                self.store.add_custom_field(resource, name, kind, max_length)
        self.admin_email = f"admin@{self.tenant}.example"
        self.admin_id = self.seed_user("Admin", "Implémentation", self.admin_email, level=1)
        self.store.integration_user_id = self.admin_id     # the integration acts as the admin

    def seed_user(self, name: str, last_name: str | None = None, email: str | None = None, *,
                  ext_id: str | None = None, is_active: bool = True, **fields) -> int:
        """A user as an SSM administrator would invite one (every required field filled, no API
        call recorded)."""
        last_name = last_name or "User"
        email = email or f"{name.lower()}.{last_name.lower()}@{self.tenant}.example"
        body = {"name": name, "lastName": last_name, "email": email, "nic": email.split("@")[0],
                "phone": "0100000000", "idPrefix": self.country_ids["FR"], "dbLanguage": "EN",
                "uiLanguage": "EN", "branches": [self.branch_id], "isActive": is_active}
        if ext_id is not None:
            body["extId"] = ext_id
        body.update(fields)
        return self.store.seed("users", body)

    def add_record(self, resource: str, fields: dict) -> int:
        """Insert a record directly (validated, no API call recorded), e.g. many accounts for paging."""
        return self.store.seed(resource, fields)

    def add_custom_field(self, resource: str, name: str, type: str = STRING,
                         max_length: int | None = None) -> None:
        """Declare a tenant custom field `Z_…` of a resource that has them ("string", "number",
        "integer", "boolean", "date-time")."""
        self.store.add_custom_field(resource, name, type, max_length)

    def custom_fields(self) -> dict[str, tuple[str, ...]]:
        """Resource → the tenant's custom field names (as `contract.request_violations` takes them)."""
        return self.store.custom_field_names()

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
                user_id = self.seed_user(local.split(".")[0].title() or "User",
                                         local.split(".")[-1].title(), email)
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

    def wait_for_hooks(self, timeout: float = 5.0) -> bool:
        """Wait until every queued webhook callback has been attempted; False on timeout."""
        deadline = time.monotonic() + timeout
        with self._hook_queue.all_tasks_done:
            while self._hook_queue.unfinished_tasks:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return False
                self._hook_queue.all_tasks_done.wait(remaining)
        return True

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
        headers = dict(handler.headers.items())
        token = next((v for k, v in headers.items() if k.lower() == contract.SESSION_HEADER.lower()), None)
        shown_headers = {k: ("***" if k.lower() == contract.SESSION_HEADER.lower() else v)
                         for k, v in headers.items()}
        inside = url.path == BASE_PATH or url.path.startswith(BASE_PATH + "/")
        path = url.path[len(BASE_PATH):] or "/" if inside else None
        found = contract.route(method, path) if path is not None else None
        resource, record_id = _call_target(path, found)
        body, body_error = _parse_json(raw)
        shown_body = {**body, "password": "***"} \
            if found is not None and found.login and isinstance(body, dict) and "password" in body else body

        if self.faults.latency_s > 0:
            self._stopping.wait(self.faults.latency_s)
        fault = self.faults.decide(method, resource)
        fault_name = None
        answer: _Answer | None
        request = Request(method, path or url.path, query, headers, body)
        if fault is None:
            answer = self._answer(request, found, token, body_error)
        elif fault.kind == RATE_LIMITED:
            fault_name = "rate-limit"
            answer = _Answer(429, {"message": "Too many requests: slow down"},
                             {"Retry-After": str(fault.retry_after or 1)})
        elif fault.kind == DROP:
            fault_name, answer = DROP, None
        elif fault.kind == TIMEOUT:
            fault_name = TIMEOUT
            answer = self._answer(request, found, token, body_error) if self.faults.timeout_applies else None
        else:
            fault_name = f"http-{fault.kind}"
            answer = _Answer(int(fault.kind), _fault_body(int(fault.kind)))

        call = Call(method, url.path, resource, record_id, query, shown_body,
                    answer.status if answer is not None else None, self.clock(), fault_name, shown_headers)
        with self._lock:
            self.calls.append(call)
        if fault_name == TIMEOUT:
            handler.close_connection = True
            self._stopping.wait(self.faults.timeout_hold_s)
        if answer is None:
            handler.close_connection = True
            return
        handler.respond(answer)

    def _answer(self, request: Request, found, token: str | None, body_error: str | None) -> _Answer:
        try:
            return self._dispatch(request, found, token, body_error)
        except SimError as exc:
            return _Answer(exc.status, self._error_body(exc.status, exc.message, exc.code))
        except Exception as exc:  # noqa: BLE001 - a simulator defect must not pass for an SSM outage
            with self._lock:
                self.internal_errors.append(f"{request.method} {request.path}: {exc!r}")
            log.exception("simulator defect")
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
            elif shape == "statusCodeOnly":
                body = {"statusCode": 400, "message": message}
            elif shape == "status":
                body = {"status": 400, "message": message}
            else:
                body = {shape: message}
        if code is not None:
            body["code"] = code      # which field carries 900/901/910 is undocumented
        return body

    def _dispatch(self, request: Request, found, token: str | None, body_error: str | None) -> _Answer:
        if found is None:
            raise SimError(400, f"No such resource: {request.path} (the API lives under {BASE_PATH})",
                           CODE_RESOURCE_MISSING)
        if found.error is not None:
            raise SimError(400, found.error.message, found.error.code)
        if body_error is not None:
            raise SimError(400, f"The request body is not valid JSON: {body_error}")
        if found.login:
            problems = contract.request_violations(request, self.strictness)
            if problems:
                raise SimError(400, problems[0].message, problems[0].code)
            return self._login(request.body)
        principal = self._principal(token)
        problems = contract.request_violations(request, self.strictness, self.store.custom_field_names())
        if problems:
            raise SimError(400, problems[0].message, problems[0].code)
        if found.extrafields_of is not None:
            return _Answer(200, self.store.extra_schema(found.extrafields_of))
        name = found.resource.name
        if name in self.unavailable:
            raise SimError(400, f"The requested service is not available: /{name}", CODE_RESOURCE_MISSING)
        operation = found.operation
        if operation == SCHEMA:
            return _Answer(200, self.store.schema(name))
        if operation == LIST:
            return self._list(name, request)
        if operation == GET:
            return _Answer(200, self.store.get(name, found.record_id))
        if operation == CREATE:
            new_id = self.store.create(name, request.body, principal, checked=True)
            if name == "hooks":
                return _Answer(200, self.store.get(name, new_id))
            return _Answer(200, {"Message": "entity created", "id": new_id})
        if operation == UPDATE:
            self.store.update(name, found.record_id, request.body, principal, checked=True)
            return _Answer(200, {"Message": "entity updated"})
        if operation == DELETE:
            self.store.delete(name, found.record_id, principal)
            return _Answer(200, {"Message": "entity deleted"})
        raise SimError(400, f"{request.method} {request.path} is not documented")

    def _login(self, body: dict) -> _Answer:
        username, password = body["username"], body["password"]
        if not isinstance(username, str) or not isinstance(password, str):
            raise SimError(400, "username and password must be text")
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

    def _list(self, resource: str, request: Request) -> _Answer:
        headers = {k.lower(): v for k, v in request.headers.items()}
        sizes = [int(headers[h.lower()]) for h in contract.PAGE_SIZE_HEADERS if h.lower() in headers]
        size = min(sizes) if sizes else contract.DEFAULT_PAGE_SIZE
        if size < 1:
            raise SimError(400, "The page size must be at least 1")
        size = min(size, self.strictness.max_page_size)
        page = int(request.query.get("page") or 0)
        rows = self.store.query(resource, where=request.query.get("where"),
                                order=request.query.get("order"), page=page, size=size)
        return _Answer(200, rows)

    # --- webhooks -----------------------------------------------------------------------------
    def _record_changed(self, resource: str, action: str, record_id: int) -> None:
        """Queue a callback to every live hook on this entity and action (never blocks)."""
        entity = contract.RESOURCES[resource].hook_entity
        if entity is None:
            return
        hooks = [h for h in self.store.all("hooks", include_deleted=False)
                 if h["entity"] == entity and h["action"] == action]
        if not hooks:
            return
        payload = [self.store.get(resource, record_id)]
        with self._lock:
            if self._hook_thread is None:
                self._hook_thread = threading.Thread(target=self._deliver_hooks, name="ssm-webhooks",
                                                     daemon=True)
                self._hook_thread.start()
        for hook in hooks:
            self._hook_queue.put((hook["id"], hook["url"], entity, action, record_id, payload))

    def _deliver_hooks(self) -> None:
        with httpx.Client(timeout=5.0) as http:
            while True:
                item = self._hook_queue.get()
                try:
                    if item is None:
                        return
                    hook_id, url, entity, action, record_id, payload = item
                    status, error = None, None
                    try:
                        status = http.post(url, json=payload).status_code
                        if status >= 400:
                            error = f"HTTP {status}"
                    except httpx.HTTPError as exc:
                        error = f"{type(exc).__name__}: {exc}"
                    if error:
                        log.warning("webhook %s to %s failed (not retried): %s", hook_id, url, error)
                    with self._lock:
                        if error:
                            self.hook_failures += 1
                        self.hook_deliveries.append(HookDelivery(hook_id, url, entity, action, record_id,
                                                                 status, error, self.clock()))
                finally:
                    self._hook_queue.task_done()


def _call_target(path: str | None, found) -> tuple[str, int | None]:
    """The resource name and record id a call is counted under."""
    if found is not None and found.login:
        return "login", None
    if found is not None and found.extrafields_of is not None:
        return "extrafields", None
    if found is not None and found.resource is not None:
        return found.resource.name, found.record_id
    segments = [s for s in (path or "").split("/") if s]
    return (segments[0] if segments else ""), None


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

    do_POST = do_PUT = do_DELETE = do_PATCH = do_HEAD = do_OPTIONS = do_GET

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
            if self.command != "HEAD":
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
