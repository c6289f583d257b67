"""The group's dossiers as an agent installed again reads them: the `group/dossiers` HTTP function,
its binding (the status routes' function key) and its answer from the state store."""
from __future__ import annotations

import json

import azure.functions as func

from functions import group_http
from shared.group_directory import GroupDirectory
from shared.state.records import Link


def call(params=None) -> func.HttpResponse:
    app = func.FunctionApp()
    app.register_functions(group_http.bp)
    [function] = app.get_functions()
    request = func.HttpRequest("GET", "http://127.0.0.1/api/group/dossiers", headers={}, params=params or {},
                               route_params={}, body=b"")
    return function.get_user_function()(request)


def test_the_function_is_a_get_with_function_auth_registered_by_the_app():
    from function_app import app
    from local.dispatcher import registered_functions

    [function] = [f for f in registered_functions(app) if f.get_function_name() == "group_dossiers"]
    trigger = next(b for b in json.loads(function.get_function_json())["bindings"] if b["direction"] == "IN")
    assert (trigger["route"], trigger["methods"], trigger["authLevel"]) == ("group/dossiers", ["GET"], "FUNCTION")


def test_every_dossier_of_the_group_with_its_state_and_records_counted_on_request(served_reader, store):
    for key, ssm_id, deleted in (("C1", 11, False), ("C2", 12, False), ("C3", 13, True)):
        store.save_link(Link(dossier="BIJOU", entity="account", sage_key=key, ssm_id=ssm_id, deleted=deleted))
    answer = call()

    assert answer.status_code == 200 and answer.mimetype == "application/json"
    directory = GroupDirectory.model_validate_json(answer.get_body())
    assert directory.group == "Bijoux & Co"
    assert [d.id for d in directory.dossiers] == sorted((d.id for d in store.list_dossiers()), key=str.lower)
    linked = {d.id: sum(1 for link in store.list_links(d.id) if not link.deleted and link.ssm_id is not None)
              for d in store.list_dossiers()}
    assert {d.id: sum(d.records.values()) for d in directory.dossiers} == linked
    assert linked["BIJOU"] == 2 and [d.records for d in directory.dossiers if d.id == "BIJOU"] == [{"account": 2}]
    states = {d.id: (d.state, d.active) for d in directory.dossiers}
    assert all(state == "inactive" for state, active in states.values() if not active)

    cheap = GroupDirectory.model_validate_json(call({"records": "false"}).get_body())
    assert [d.records for d in cheap.dossiers] == [{} for _ in cheap.dossiers]
