"""HTTP triggers of the status: the JSON report, the HTML page, one dossier's detail, and the
OpenAPI description of the app's routes (`functions/openapi.json`, see `shared.status.openapi`).

All are GET and need the function key (auth level FUNCTION), except the POST
`status/dossiers/{dossier}/replay` (same key), which sends the dossier's records set aside again
at once. Query parameters `dossier`, `entity` and `state` (open, resolved, all; open by default)
filter the incidents, `run` shows one run's journal; a bad value is a 400 that says which, in
French, with its catalogue code. The report is read from the state store and the bus the settings name,
opened once per worker process (`functions.context`); the local runtime and tests can hand in
their own reader with `use_reader`.
"""
from __future__ import annotations

import json
import threading
from typing import Optional

import azure.functions as func

from functions import context
from shared.config import Settings
from shared.errors import NotFoundError
from shared.messages import code_of
from shared.status.openapi import load as load_openapi
from shared.status.page import render_error_page, render_status_page
from shared.status.report import StatusQuery, StatusQueryError, StatusReader

bp = func.Blueprint()

COMMON_HEADERS = {
    "Cache-Control": "no-store",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
}
PAGE_HEADERS = {
    **COMMON_HEADERS,
    "Content-Security-Policy": ("default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; "
                                "base-uri 'none'; frame-ancestors 'none'"),
}

_lock = threading.Lock()
_given_reader: Optional[StatusReader] = None
_built_reader: Optional[StatusReader] = None
_built_for: Optional[Settings] = None


def use_reader(reader: Optional[StatusReader]) -> None:
    """Serve from `reader` from now on; None goes back to one opened from the settings."""
    global _given_reader
    with _lock:
        _given_reader = reader


def reset() -> None:
    """Forget the reader handed in and close the one opened from the settings."""
    global _given_reader, _built_reader, _built_for
    with _lock:
        built, _given_reader, _built_reader, _built_for = _built_reader, None, None, None
    if built is not None:
        _close(built)


def status_reader() -> StatusReader:
    """The reader the handlers use: the one handed in, else one opened from `context.settings()`
    (opened again when the settings were replaced)."""
    global _built_reader, _built_for
    with _lock:
        if _given_reader is not None:
            return _given_reader
        settings = context.settings()
        if _built_reader is None or _built_for is not settings:
            previous = _built_reader
            _built_reader, _built_for = _open_reader(settings), settings
            if previous is not None:
                _close(previous)
        return _built_reader


def _open_reader(settings: Settings) -> StatusReader:
    from shared.bus.factory import open_bus
    from shared.state.factory import open_state_store

    store = open_state_store(settings.state)
    store.ensure_tables()
    return StatusReader.from_settings(settings, store, open_bus(settings.bus))


def _close(reader: StatusReader) -> None:
    reader.store.close()
    if reader.bus is not None:
        reader.bus.close()


def _json(body: str, status: int = 200) -> func.HttpResponse:
    return func.HttpResponse(body, status_code=status, mimetype="application/json", charset="utf-8",
                             headers=COMMON_HEADERS)


def _json_error(status: int, message: str, code: Optional[str] = None) -> func.HttpResponse:
    body = {"code": code or code_of(message), "error": message}
    return _json(json.dumps(body, ensure_ascii=False), status)


@bp.function_name("status")
@bp.route(route="status", methods=[func.HttpMethod.GET], auth_level=func.AuthLevel.FUNCTION)
def status(req: func.HttpRequest) -> func.HttpResponse:
    try:
        query = StatusQuery.from_params(req.params)
    except StatusQueryError as exc:
        return _json_error(400, str(exc), exc.code)
    return _json(status_reader().report(query).model_dump_json())


@bp.function_name("status_page")
@bp.route(route="status/page", methods=[func.HttpMethod.GET], auth_level=func.AuthLevel.FUNCTION)
def status_page(req: func.HttpRequest) -> func.HttpResponse:
    key = req.params.get("code") or None
    try:
        query = StatusQuery.from_params(req.params)
    except StatusQueryError as exc:
        return func.HttpResponse(render_error_page(str(exc), status=400, key=key), status_code=400,
                                 mimetype="text/html", charset="utf-8", headers=PAGE_HEADERS)
    page = render_status_page(status_reader().report(query), key=key)
    return func.HttpResponse(page, mimetype="text/html", charset="utf-8", headers=PAGE_HEADERS)


@bp.function_name("status_dossier")
@bp.route(route="status/dossiers/{dossier}", methods=[func.HttpMethod.GET], auth_level=func.AuthLevel.FUNCTION)
def status_dossier(req: func.HttpRequest) -> func.HttpResponse:
    try:
        query = StatusQuery.from_params({**req.params, "dossier": req.route_params["dossier"]})
        return _json(status_reader().dossier(req.route_params["dossier"], query).model_dump_json())
    except StatusQueryError as exc:
        return _json_error(400, str(exc), exc.code)
    except NotFoundError as exc:
        return _json_error(404, exc.user_message, "status.dossier.unknown")


@bp.function_name("status_openapi")
@bp.route(route="status/openapi.json", methods=[func.HttpMethod.GET], auth_level=func.AuthLevel.FUNCTION)
def status_openapi(req: func.HttpRequest) -> func.HttpResponse:
    return _json(load_openapi())


# --- records set aside: sent again on the administrator's request -----------------------------
@bp.function_name("status_replay")
@bp.route(route="status/dossiers/{dossier}/replay", methods=[func.HttpMethod.POST],
          auth_level=func.AuthLevel.FUNCTION)
def status_replay(req: func.HttpRequest) -> func.HttpResponse:
    """Every record set aside in the dossier tried again now (`shared.sync.replay.replay_now`).

    JSON with the counts; an HTML page in French for a browser (the status page's form).
    """
    from shared.messages import text
    from shared.status.set_aside import replay_done_page
    from shared.sync.replay import replay_now

    dossier = req.route_params["dossier"]
    service = context.sync_service()
    if service.store.try_get_dossier(dossier) is None:
        return _json_error(404, text("crash.replay.unknown", dossier=dossier), "crash.replay.unknown")
    done = replay_now(service, dossier)
    still = sum(1 for i in service.store.list_incidents(dossier) if i.state.value == "open" and i.parked)
    if "text/html" in (req.headers.get("accept") or ""):          # the page's form, from a browser
        key = req.params.get("code")
        back = "../../page?" + "&".join(f"{name}={value}" for name, value in
                                       (("dossier", dossier), ("code", key)) if value)
        page = replay_done_page(dossier, done.replayed, done.resolved, still, back)
        return func.HttpResponse(page, mimetype="text/html", charset="utf-8", headers=PAGE_HEADERS)
    return _json(json.dumps({"dossier": dossier, "replayed": done.replayed, "resolved": done.resolved,
                             "parked_again": done.parked_again, "given_up": done.given_up, "set_aside": still}))
