"""The local HTTP server of the Function App's HTTP functions: routing and function-key checks over real HTTP."""
from __future__ import annotations

import io

import azure.functions as func
import httpx
import pytest

from functions import status_http
from local.status_server import FunctionHttpServer, compile_route, start_status_server
from shared.config import StatusSettings

KEY = "test-function-key"


def build_app() -> func.FunctionApp:
    extra = func.Blueprint()

    @extra.route(route="open/{name}/{*rest}", methods=["GET", "POST"], auth_level=func.AuthLevel.ANONYMOUS)
    def echo(req: func.HttpRequest) -> func.HttpResponse:
        return func.HttpResponse(
            f"{req.method} {req.route_params.get('name')} {req.route_params.get('rest')} "
            f"{req.params.get('q')} {req.get_body().decode()} {req.headers.get('x-probe')}")

    @extra.route(route="broken", auth_level=func.AuthLevel.ANONYMOUS)
    def broken(req: func.HttpRequest) -> func.HttpResponse:
        raise RuntimeError("boom")

    app = func.FunctionApp()
    app.register_functions(status_http.bp)
    app.register_functions(extra)
    return app


@pytest.fixture
def server(served_reader):
    with FunctionHttpServer(build_app(), function_key=KEY) as running:
        yield running


@pytest.fixture
def client():
    with httpx.Client(timeout=10) as http:
        yield http


def test_a_key_is_required(server, client):
    assert client.get(server.url("status")).status_code == 401
    assert client.get(server.url("status"), params={"code": "wrong"}).status_code == 401
    assert client.get(server.url("status"), headers={"x-functions-key": "wrong"}).status_code == 401
    assert client.get(server.url("status/page")).status_code == 401
    assert client.get(server.url("status/dossiers/BIJOU")).status_code == 401


def test_the_key_in_a_header_or_the_query(server, client):
    by_header = client.get(server.url("status"), headers={"x-functions-key": KEY})
    assert by_header.status_code == 200
    assert by_header.headers["content-type"] == "application/json; charset=utf-8"
    assert [d["id"] for d in by_header.json()["dossiers"]] == ["BIJOU", "NEUF", "ARCHIVE"]
    by_query = client.get(server.url("status/page", with_key=True))
    assert by_query.status_code == 200
    assert by_query.headers["content-type"] == "text/html; charset=utf-8"
    assert f'name="code" value="{KEY}"' in by_query.text


def test_query_and_route_parameters_reach_the_function(server, client):
    response = client.get(server.url("status/dossiers/ARCHIVE"), params={"state": "all", "code": KEY})
    assert response.status_code == 200
    assert response.json()["id"] == "ARCHIVE"
    assert client.get(server.url("STATUS/Dossiers/NOPE", with_key=True)).status_code == 404
    assert client.get(server.url("status"), params={"state": "x", "code": KEY}).status_code == 400


def test_anonymous_functions_need_no_key_and_get_the_whole_request(server, client):
    response = client.post(server.url("open/caf%C3%A9/a/b"), params={"q": "1"}, content=b"body",
                           headers={"X-Probe": "yes"})
    assert response.status_code == 200
    assert response.text == "POST café a/b 1 body yes"
    assert client.get(server.url("open/x")).text == "GET x None None  None"


def test_unknown_routes_methods_and_failures(server, client):
    assert client.get(f"{server.base_url}/api/nothing-here").status_code == 404
    assert client.get(f"{server.base_url}/status").status_code == 404
    assert client.post(server.url("status", with_key=True)).status_code == 405
    assert client.get(server.url("broken")).status_code == 500
    assert client.get(server.url("status", with_key=True)).status_code == 200


def test_literal_routes_win_over_parameters():
    page, page_rank = compile_route("status/page")
    param, param_rank = compile_route("status/{name}")
    assert page_rank < param_rank
    assert page.match("/status/page") and param.match("/status/page")
    optional, _ = compile_route("items/{id:int?}")
    assert optional.match("/items") and optional.match("/items/12") and not optional.match("/items/x")


def test_a_missing_key_is_generated_and_printed(served_reader, client):
    out = io.StringIO()
    server = start_status_server(StatusSettings(port=0), app=build_app(), out=out)
    try:
        printed = out.getvalue()
        assert server.key_generated and len(server.function_key) >= 32
        assert server.function_key in printed
        assert f"{server.url('status/page')}?code={server.function_key}" in printed
        assert client.get(server.url("status")).status_code == 401
        assert client.get(server.url("status", with_key=True)).status_code == 200
    finally:
        server.stop()


def test_a_configured_key_is_used_and_not_printed(served_reader, client):
    from pydantic import SecretStr

    out = io.StringIO()
    server = start_status_server(StatusSettings(port=0, function_key=SecretStr("configured-key")),
                                 app=build_app(), out=out)
    try:
        assert not server.key_generated
        assert "configured-key" not in out.getvalue()
        assert client.get(server.url("status"), headers={"x-functions-key": "configured-key"}).status_code == 200
    finally:
        server.stop()


def test_the_function_app_itself_is_served(served_reader, client):
    with FunctionHttpServer(function_key=KEY) as server:
        assert {f.name for f in server.functions} >= {"status", "status_page", "status_dossier"}
        assert client.get(server.url("status/page")).status_code == 401
        response = client.get(server.url("status/dossiers/BIJOU"), headers={"x-functions-key": KEY})
        assert response.status_code == 200 and response.json()["open_incidents"] == 4
