"""HTTP triggers of the realignment preview and of adoption (function key, as the status routes).

`GET status/dossiers/{dossier}/preview`: the dossier's last preview as JSON (stable codes beside
the French labels), 404 with a French sentence when none was computed yet;
`GET status/dossiers/{dossier}/preview/page`: the same as a small HTML page;
`POST status/dossiers/{dossier}/adoptions`: the administrator's decision, a JSON body
`{"action": "confirm"}` (bind the unique matches of the last preview, hold the ambiguous ones),
`{"action": "bind", "entity": "account", "key": "DUPRE", "ssm_id": 12}` or
`{"action": "create", "entity": "account", "key": "DUPRE"}`; the answer says in French what was done.
"""
from __future__ import annotations

import json

import azure.functions as func

from functions import context
from functions.status_http import COMMON_HEADERS, PAGE_HEADERS, status_reader
from shared.errors import ConnectorError
from shared.messages import text
from shared.status.preview_section import render_preview_page
from shared.sync import adoption
from shared.sync.adopter import Adopter
from shared.sync.preview import matches_of

bp = func.Blueprint()


def _json(body: dict, status: int = 200) -> func.HttpResponse:
    return func.HttpResponse(json.dumps(body, ensure_ascii=False, default=str), status_code=status,
                             mimetype="application/json", charset="utf-8", headers=COMMON_HEADERS)


@bp.function_name("status_preview")
@bp.route(route="status/dossiers/{dossier}/preview", methods=[func.HttpMethod.GET],
          auth_level=func.AuthLevel.FUNCTION)
def status_preview(req: func.HttpRequest) -> func.HttpResponse:
    dossier = req.route_params["dossier"]
    preview = status_reader().store.last_preview(dossier)
    if preview is None:
        return _json({"error": text("preview.none", dossier=dossier), "code": "preview.none"}, 404)
    return _json(preview)


@bp.function_name("status_preview_page")
@bp.route(route="status/dossiers/{dossier}/preview/page", methods=[func.HttpMethod.GET],
          auth_level=func.AuthLevel.FUNCTION)
def status_preview_page(req: func.HttpRequest) -> func.HttpResponse:
    dossier = req.route_params["dossier"]
    page = render_preview_page(status_reader().store.last_preview(dossier), dossier)
    return func.HttpResponse(page, mimetype="text/html", charset="utf-8", headers=PAGE_HEADERS)


@bp.function_name("adoptions")
@bp.route(route="status/dossiers/{dossier}/adoptions", methods=[func.HttpMethod.POST],
          auth_level=func.AuthLevel.FUNCTION)
def adoptions(req: func.HttpRequest) -> func.HttpResponse:
    dossier = req.route_params["dossier"]
    try:
        body = req.get_json()
    except ValueError:
        body = None
    action = body.get("action") if isinstance(body, dict) else None
    entity, key = (body or {}).get("entity"), (body or {}).get("key")
    if action not in ("confirm", "bind", "create") or (action != "confirm" and (
            entity not in adoption.ADOPTABLE or not isinstance(key, str) or not key)):
        return _json({"error": text("adoption.refused.bad_request"), "code": "adoption.refused.bad_request"}, 400)
    service = context.sync_service()
    adopter = Adopter(service.store, service.ssm, dossier, apply_batch=service.apply_batch)
    try:
        if action == "confirm":
            preview = service.store.last_preview(dossier)
            if preview is None:
                return _json({"error": text("preview.none", dossier=dossier), "code": "preview.none"}, 404)
            bound, held, refused = adopter.confirm(matches_of(preview))
            return _json({"code": "adoption.done", "message": text("adoption.done", bound=bound, held=held),
                          "refused": refused})
        if action == "create":
            decided = adopter.decide_create(entity, key)
            return _json({"code": "adoption.decided.create", "replayed": decided.replayed,
                          "message": text("adoption.decided.create", what=text(f"adoption.what.{entity}"), key=key)})
        ssm_id = body.get("ssm_id")
        if not isinstance(ssm_id, int):
            return _json({"error": text("adoption.refused.bad_request"), "code": "adoption.refused.bad_request"}, 400)
        decided = adopter.decide_bind(entity, key, ssm_id)
        return _json({"code": "adoption.decided.bind", "replayed": decided.replayed,
                      "message": text("adoption.decided.bind", what=text(f"adoption.what.{entity}"), key=key,
                                      ssm_id=ssm_id)})
    except ConnectorError as exc:
        return _json({"error": exc.user_message, "code": "adoption.refused"}, 409)

