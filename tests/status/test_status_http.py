"""The status HTTP functions: their bindings, and their code called in-process with real requests."""
from __future__ import annotations

import json

import azure.functions as func
import pytest

from functions import context, status_http
from shared.config import load_settings
from shared.state.records import Dossier
from tests.status.sample import MARKUP_NAME, open_store

ROUTES = {"status": "status", "status_page": "status/page", "status_dossier": "status/dossiers/{dossier}"}


def app_with_status() -> func.FunctionApp:
    app = func.FunctionApp()
    app.register_functions(status_http.bp)
    return app


def functions_by_name(app) -> dict:
    return {f.get_function_name(): f for f in app.get_functions()}


def get(name: str, *, params=None, route_params=None, headers=None) -> func.HttpResponse:
    function = functions_by_name(app_with_status())[name]
    route = ROUTES[name].replace("{dossier}", (route_params or {}).get("dossier", ""))
    request = func.HttpRequest("GET", f"http://127.0.0.1/api/{route}", headers=headers or {},
                               params=params or {}, route_params=route_params or {}, body=b"")
    return function.get_user_function()(request)


def body_json(response: func.HttpResponse):
    assert response.mimetype == "application/json"
    return json.loads(response.get_body())


@pytest.mark.parametrize("name", sorted(ROUTES))
def test_each_function_is_a_get_http_trigger_with_function_auth(name):
    function = functions_by_name(app_with_status())[name]
    binding = json.loads(function.get_function_json())["bindings"]
    trigger = next(b for b in binding if b["direction"] == "IN")
    assert trigger == {"direction": "IN", "type": "httpTrigger", "name": "req", "methods": ["GET"],
                       "authLevel": "FUNCTION", "route": ROUTES[name]}
    assert {"direction": "OUT", "type": "http", "name": "$return"} in binding


def test_the_function_app_registers_the_status_functions():
    from function_app import app
    from local.dispatcher import registered_functions

    names = {f.get_function_name() for f in registered_functions(app)}
    assert set(ROUTES) <= names


def test_status_json(served_reader):
    response = get("status")
    assert response.status_code == 200
    assert response.headers["Cache-Control"] == "no-store"
    data = body_json(response)
    assert [d["id"] for d in data["dossiers"]] == ["BIJOU", "NEUF", "ARCHIVE"]
    assert data["dossiers"][2]["active"] is False
    assert [i["key"] for i in data["group_incidents"]] == ["INCONNU:CL9"]


def test_status_json_filters(served_reader):
    data = body_json(get("status", params={"dossier": "BIJOU", "entity": "contact", "state": "all"}))
    assert [d["id"] for d in data["dossiers"]] == ["BIJOU"]
    assert [(i["key"], i["state"]) for i in data["dossiers"][0]["incidents"]] == [
        ("CLT001|2", "open"), ("CLT002|1", "resolved")]
    assert data["group_incidents"] == []


def test_bad_filter_is_a_400_that_names_it(served_reader):
    response = get("status", params={"state": "closed"})
    assert response.status_code == 400
    assert "state" in body_json(response)["error"]
    page = get("status_page", params={"state": "closed"})
    assert page.status_code == 400 and page.mimetype == "text/html"
    assert "state" in page.get_body().decode()


def test_dossier_detail(served_reader):
    response = get("status_dossier", route_params={"dossier": "ARCHIVE"}, params={"state": "all"})
    data = body_json(response)
    assert response.status_code == 200
    assert data["id"] == "ARCHIVE" and data["active"] is False
    assert [i["key"] for i in data["incidents"]] == ["ARC1"]


def test_unknown_dossier_is_a_404(served_reader):
    response = get("status_dossier", route_params={"dossier": "NOPE"})
    assert response.status_code == 404
    assert "NOPE" in body_json(response)["error"]


def test_page_is_html_with_escaped_data_and_a_strict_policy(served_reader):
    response = get("status_page")
    page = response.get_body().decode("utf-8")
    assert response.status_code == 200 and response.mimetype == "text/html" and response.charset == "utf-8"
    assert "script-src" not in response.headers["Content-Security-Policy"]
    assert "default-src 'none'" in response.headers["Content-Security-Policy"]
    assert "<script" not in page and "<img" not in page
    assert "Bijouterie &lt;img src=x onerror=document.title=&#x27;pwned&#x27;&gt;" in page
    assert "Archives 2019" in page and "Désactivé" in page


def test_page_keeps_the_query_key_in_its_form(served_reader):
    with_key = get("status_page", params={"code": "k3y\"<", "entity": "contact"}).get_body().decode()
    assert '<input type="hidden" name="code" value="k3y&quot;&lt;">' in with_key
    assert '<option value="contact" selected>' in with_key
    by_header = get("status_page", headers={"x-functions-key": "k3y"}).get_body().decode()
    assert 'name="code"' not in by_header


def test_without_a_given_reader_the_settings_name_the_store(tmp_path):
    store = open_store(tmp_path / "state.db")
    store.create_dossier(Dossier(id="FROMSETTINGS", name=MARKUP_NAME))
    store.close()
    settings = load_settings(environ={
        "SSMCONN__GROUP": "G1",
        "SSMCONN__STATE__PATH": str(tmp_path / "state.db"),
        "SSMCONN__BUS__PATH": str(tmp_path / "bus.db"),
    })
    status_http.use_reader(None)
    context.configure(settings)
    try:
        data = body_json(get("status"))
        assert data["group"] == "G1"
        assert [d["id"] for d in data["dossiers"]] == ["FROMSETTINGS"]
        assert data["dossiers"][0]["pending"] == {"available": True, "changes": 0, "commands": 0,
                                                  "dead_lettered": 0, "error": None}
        other = load_settings(environ={"SSMCONN__GROUP": "G2", "SSMCONN__STATE__PATH": str(tmp_path / "other.db"),
                                       "SSMCONN__BUS__PATH": str(tmp_path / "bus.db")})
        context.configure(other)
        data = body_json(get("status"))
        assert data["group"] == "G2" and data["dossiers"] == []
    finally:
        status_http.reset()
        context.reset()
