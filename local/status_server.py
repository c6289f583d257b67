"""Serves the Function App's HTTP functions on 127.0.0.1, as the Functions host does, for the local runtime.

Every function of `function_app.app` with an `httpTrigger` binding is reachable under the host's
route prefix (`/api`, or `extensions.http.routePrefix` of host.json) at its route template
(`{name}`, `{name:int}`, `{name?}` and `{*rest}` segments; literal segments match case-insensitively
and win over parameters). Each request becomes a real `azure.functions.HttpRequest` (method, URL,
headers, query parameters, route parameters, body) handed to the function's own code, and its
`HttpResponse` goes back as is. Functions above auth level ANONYMOUS need the function key, in the
`x-functions-key` header or the `code` query parameter, as on Azure; a missing or wrong key is a 401.
The key comes from `[status] function_key`; when unset, one is generated and printed at start.
"""
from __future__ import annotations

import asyncio
import hmac
import inspect
import json
import re
import secrets
import sys
import threading
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Callable, Optional, TextIO
from urllib.parse import parse_qsl, unquote, urlsplit

from shared.config import StatusSettings
from shared.messages import text
from shared.telemetry import get_logger

log = get_logger(__name__)

ROOT = Path(__file__).resolve().parents[1]
HOST_JSON = ROOT / "host.json"
HTTP_TRIGGER = "httpTrigger"
DEFAULT_ROUTE_PREFIX = "api"
KEY_HEADER = "x-functions-key"
KEY_PARAMETER = "code"
MAX_BODY_BYTES = 100 * 1024 * 1024        # the host's default request size limit
_SEGMENT_PARAMETER = re.compile(r"^\{(\*?)([A-Za-z_][A-Za-z0-9_]*)(?::([^}?]+))?(\??)\}$")
_CONSTRAINT_PATTERNS = {"int": r"-?\d+", "long": r"-?\d+", "alpha": r"[A-Za-z]+", "bool": r"(?i:true|false)",
                        "guid": r"[0-9A-Fa-f]{8}-?(?:[0-9A-Fa-f]{4}-?){3}[0-9A-Fa-f]{12}"}


def host_route_prefix(path: Path = HOST_JSON) -> str:
    """`extensions.http.routePrefix` of host.json, else the host's default `api`."""
    try:
        host = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return DEFAULT_ROUTE_PREFIX
    return str(host.get("extensions", {}).get("http", {}).get("routePrefix", DEFAULT_ROUTE_PREFIX)).strip("/")


@dataclass(frozen=True)
class HttpFunction:
    """One registered HTTP function, its route compiled."""

    name: str
    user_function: Callable[..., Any]
    arg_name: str
    route: str
    methods: Optional[frozenset[str]]        # None: every method
    auth_level: str                          # anonymous, function or admin
    pattern: re.Pattern
    rank: tuple[int, ...]

    @property
    def needs_key(self) -> bool:
        return self.auth_level != "anonymous"


def compile_route(route: str) -> tuple[re.Pattern, tuple[int, ...]]:
    """A regex matching request paths (relative to the prefix) for a route template, and its rank
    (lower wins: literal segments before constrained parameters before parameters before catch-alls)."""
    pattern, rank = "", []
    for segment in [s for s in route.strip("/").split("/") if s]:
        found = _SEGMENT_PARAMETER.match(segment)
        if found is None:
            pattern += "/" + re.escape(segment)
            rank.append(0)
            continue
        catch_all, name, constraint, optional = found.groups()
        if catch_all:
            pattern += f"(?:/(?P<{name}>.*))?"
            rank.append(3)
            continue
        value = _CONSTRAINT_PATTERNS.get((constraint or "").split("(")[0].lower(), r"[^/]+")
        pattern += f"(?:/(?P<{name}>{value})){'?' if optional else ''}"
        rank.append(1 if constraint else 2)
    return re.compile(f"^{pattern}/?$", re.IGNORECASE), tuple(rank)


def _auth_level(binding: dict, default: str) -> str:
    level = binding.get("authLevel")
    level = getattr(level, "value", level)
    return str(level or default).lower()


def http_functions(app, *, default_auth_level: str = "function") -> list[HttpFunction]:
    """The app's HTTP-triggered functions, the most specific route first."""
    from local.dispatcher import registered_functions

    found = []
    for function in registered_functions(app):
        trigger = function.get_trigger()
        if trigger is None or trigger.get_binding_name() != HTTP_TRIGGER:
            continue
        binding = trigger.get_dict_repr()
        route = binding.get("route") or function.get_function_name()
        methods = binding.get("methods")
        pattern, rank = compile_route(route)
        found.append(HttpFunction(
            name=function.get_function_name(), user_function=function.get_user_function(),
            arg_name=binding["name"], route=route,
            methods=frozenset(str(getattr(m, "value", m)).upper() for m in methods) if methods else None,
            auth_level=_auth_level(binding, default_auth_level), pattern=pattern, rank=rank))
    return sorted(found, key=lambda f: f.rank)


class FunctionHttpServer:
    """The registered HTTP functions of a Function App, served on a local port.

    Args:
        app: the `azure.functions.FunctionApp` (defaults to `function_app.app`).
        function_key: the key that functions above ANONYMOUS require; generated when None
            (see `key_generated`).
        host: the address to listen on (loopback).
        port: the port (0 picks a free one; see `port` after `start`).
        route_prefix: defaults to host.json's, else `api`.
    """

    def __init__(self, app=None, *, function_key: Optional[str] = None, host: str = "127.0.0.1",
                 port: int = 0, route_prefix: Optional[str] = None):
        if app is None:
            from function_app import app
        self.functions = http_functions(app)
        self.key_generated = not function_key
        self.function_key = function_key or secrets.token_urlsafe(32)
        self.route_prefix = (host_route_prefix() if route_prefix is None else route_prefix).strip("/")
        self._httpd = ThreadingHTTPServer((host, port), _handler_for(self))
        self._httpd.daemon_threads = True
        self._thread: Optional[threading.Thread] = None

    @property
    def host(self) -> str:
        return self._httpd.server_address[0]

    @property
    def port(self) -> int:
        return self._httpd.server_address[1]

    @property
    def base_url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def url(self, route: str, *, with_key: bool = False) -> str:
        """The full URL of a route (`status/page`), optionally with the key as `code`."""
        prefix = f"/{self.route_prefix}" if self.route_prefix else ""
        url = f"{self.base_url}{prefix}/{route.lstrip('/')}"
        if with_key:
            url += ("&" if "?" in url else "?") + f"{KEY_PARAMETER}={self.function_key}"
        return url

    def start(self) -> "FunctionHttpServer":
        """Serve in a background thread."""
        self._thread = threading.Thread(target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05},
                                        name="function-http", daemon=True)
        self._thread.start()
        return self

    def serve_forever(self) -> None:
        self._httpd.serve_forever()

    def stop(self) -> None:
        if self._thread is not None:
            self._httpd.shutdown()
            self._thread.join()
            self._thread = None
        self._httpd.server_close()

    def __enter__(self) -> "FunctionHttpServer":
        return self.start()

    def __exit__(self, *exc_info) -> None:
        self.stop()

    # --- request handling ---------------------------------------------------------------------
    def route(self, method: str, path: str) -> tuple[Optional[HttpFunction], dict[str, str], bool]:
        """(function, route parameters, path known for another method) for a request path."""
        prefix = f"/{self.route_prefix}" if self.route_prefix else ""
        if prefix and not (path.lower() == prefix.lower() or path.lower().startswith(prefix.lower() + "/")):
            return None, {}, False
        relative = path[len(prefix):]
        other_method = False
        for function in self.functions:
            found = function.pattern.match(relative)
            if found is None:
                continue
            if function.methods is not None and method not in function.methods:
                other_method = True
                continue
            params = {k: unquote(v) for k, v in found.groupdict().items() if v is not None}
            return function, params, False
        return None, {}, other_method

    def key_matches(self, headers: dict[str, str], params: dict[str, str]) -> bool:
        given = headers.get(KEY_HEADER) or params.get(KEY_PARAMETER) or ""
        return hmac.compare_digest(given.encode("utf-8"), self.function_key.encode("utf-8"))


def _call(function: HttpFunction, request) -> Any:
    result = function.user_function(**{function.arg_name: request})
    if inspect.isawaitable(result):
        result = asyncio.run(_awaited(result))
    return result


async def _awaited(awaitable) -> Any:
    return await awaitable


def _handler_for(server: FunctionHttpServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        server_version = "ssm-connector-functions"

        def do_GET(self) -> None:       # noqa: N802 - the stdlib's naming
            self._dispatch()

        do_POST = do_PUT = do_PATCH = do_DELETE = do_HEAD = do_OPTIONS = do_GET

        def log_message(self, format: str, *args) -> None:   # noqa: A002 - the stdlib's signature
            pass    # request lines carry the key in `code`; `_dispatch` logs without the query

        def _dispatch(self) -> None:
            import azure.functions as func

            parts = urlsplit(self.path)
            function, route_params, other_method = server.route(self.command, parts.path)
            if function is None:
                self._plain(405 if other_method else 404, "Method Not Allowed" if other_method else "Not Found")
                return
            try:
                length = int(self.headers.get("Content-Length") or 0)
            except ValueError:
                self._plain(400, "Bad Request: invalid Content-Length")
                return
            if length > MAX_BODY_BYTES:
                self._plain(413, "Request Entity Too Large")
                return
            body = self.rfile.read(length) if length else b""
            headers = {name.lower(): value for name, value in self.headers.items()}
            params = dict(parse_qsl(parts.query, keep_blank_values=True))
            if function.needs_key and not server.key_matches(headers, params):
                log.info("http %s %s -> 401 (function key missing or wrong)", self.command, parts.path)
                self._plain(401, "Unauthorized: this function needs its key "
                                 f"({KEY_HEADER} header or {KEY_PARAMETER} query parameter).")
                return
            request = func.HttpRequest(
                method=self.command, url=f"{server.base_url}{self.path}", headers=headers, params=params,
                route_params=route_params, body=body)
            try:
                response = _call(function, request)
            except Exception:   # the host answers 500 and logs; so do we, and keep serving
                log.exception("http %s %s: function %s failed", self.command, parts.path, function.name)
                self._plain(500, "Internal Server Error")
                return
            self._respond(response, function.name, parts.path)

        def _respond(self, response, name: str, path: str) -> None:
            import azure.functions as func

            if isinstance(response, (str, bytes)):
                response = func.HttpResponse(response)
            if not isinstance(response, func.HttpResponse):
                log.error("http %s: function %s returned %r, not an HttpResponse", path, name, type(response))
                self._plain(500, "Internal Server Error")
                return
            body = response.get_body()
            headers = dict(response.headers.items())
            if not any(k.lower() == "content-type" for k in headers):
                headers["Content-Type"] = f"{response.mimetype}; charset={response.charset}"
            log.info("http %s %s -> %s", self.command, path, response.status_code)
            self.send_response(response.status_code)
            for name_, value in headers.items():
                if name_.lower() != "content-length":
                    self.send_header(name_, value)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(body)

        def _plain(self, status: int, text: str) -> None:
            body = text.encode("utf-8")
            self.close_connection = True      # an unread request body must not be taken for the next request
            self.send_response(status)
            self.send_header("Content-Type", "text/plain; charset=utf-8")
            self.send_header("Content-Length", str(len(body)))
            self.send_header("Connection", "close")
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(body)

    return Handler


# --- the status server of the local runtime ---------------------------------------------------
def start_status_server(settings: StatusSettings, *, app=None, port: Optional[int] = None,
                        out: Optional[TextIO] = None) -> FunctionHttpServer:
    """Start serving the HTTP functions with `[status]` settings; print where the page is.

    The function key is `settings.function_key`, or a new one, printed with the page URL (to
    `out`, standard output by default) since nobody could call the functions otherwise.
    """
    key = settings.function_key.get_secret_value() if settings.function_key is not None else None
    server = FunctionHttpServer(app, function_key=key, host=settings.host,
                                port=settings.port if port is None else port).start()
    out = sys.stdout if out is None else out
    if server.key_generated:
        print(text("status.server.key", key=server.function_key), file=out)
    print(text("status.server.page", url=server.url("status/page", with_key=server.key_generated)), file=out)
    out.flush()
    return server

