"""HTTP trigger of the group's dossiers, for an agent installed again: `GET /api/group/dossiers`.

Needs the function key (auth level FUNCTION), as the status routes. The answer is
`shared.group_directory.GroupDirectory` as JSON: every dossier the group knows, active or not,
with its lifecycle state, last run, linked record counts (left out with `?records=false`) and the
identity of its Sage database.
It is read from the same state store as the status (`functions.status_http.status_reader`).
"""
from __future__ import annotations

import azure.functions as func

from functions.status_http import COMMON_HEADERS, status_reader
from shared.group_directory import RECORDS_PARAMETER, ROUTE, GroupDirectory, known_dossiers

bp = func.Blueprint()


@bp.function_name("group_dossiers")
@bp.route(route=ROUTE, methods=[func.HttpMethod.GET], auth_level=func.AuthLevel.FUNCTION)
def group_dossiers(req: func.HttpRequest) -> func.HttpResponse:
    reader = status_reader()
    records = (req.params.get(RECORDS_PARAMETER) or "true").lower() != "false"
    body = GroupDirectory(group=reader.group, dossiers=known_dossiers(reader.store, records=records)).model_dump_json()
    return func.HttpResponse(body, status_code=200, mimetype="application/json", charset="utf-8",
                             headers=COMMON_HEADERS)
