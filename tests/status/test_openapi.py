"""The OpenAPI file: up to date with the code, served by the app, naming every HTTP route the
Function App registers, and describing what the JSON routes really answer."""
from __future__ import annotations

import json
import re

import httpx
import pytest

from local.status_server import http_functions
from shared.status import openapi
from tests.status.serving import serve_status
from tests.status.rich_sample import open_rich_store

KEY = "openapi-test-key"


def spec() -> dict:
    return json.loads(openapi.load())


def test_the_committed_file_is_what_the_code_describes():
    assert openapi.load() == openapi.render(), \
        "functions/openapi.json is stale: .venv/bin/python -m shared.status.openapi > functions/openapi.json"


def test_every_http_route_of_the_function_app_is_described_with_its_methods():
    from function_app import app

    paths = spec()["paths"]
    routes = http_functions(app)
    assert {f.route for f in routes} >= {"status", "status/page", "status/dossiers/{dossier}", "status/openapi.json",
                                         "ssm/hooks"}
    for function in routes:
        path = "/" + function.route.strip("/")
        assert path in paths, f"route {path} ({function.name}) is missing from functions/openapi.json"
        methods = {m.lower() for m in function.methods or {"get"}}
        assert methods <= set(paths[path]), f"{path}: {methods - set(paths[path])} not described"
    assert set(paths) == {"/" + f.route.strip("/") for f in routes}, "a described route the app does not have"


# --- answers against their schemas --------------------------------------------------------------
def resolve(schema: dict, components: dict) -> dict:
    while "$ref" in schema:
        schema = components[schema["$ref"].rsplit("/", 1)[-1]]
    return schema


def problems(value, schema: dict, components: dict, where: str = "$") -> list[str]:
    """What `value` lacks against `schema`: required fields, types, enums (recursively)."""
    schema = resolve(schema, components)
    if "anyOf" in schema:
        branches = [problems(value, s, components, where) for s in schema["anyOf"]]
        return [] if any(not b for b in branches) else [f"{where}: matches no branch ({branches[0]})"]
    kind = schema.get("type")
    checks = {"object": dict, "array": list, "string": str, "boolean": bool, "null": type(None)}
    if kind == "integer" and not (isinstance(value, int) and not isinstance(value, bool)):
        return [f"{where}: {value!r} is no integer"]
    if kind == "number" and not isinstance(value, (int, float)):
        return [f"{where}: {value!r} is no number"]
    if kind in checks and not isinstance(value, checks[kind]):
        return [f"{where}: {value!r} is no {kind}"]
    if "enum" in schema and value not in schema["enum"]:
        return [f"{where}: {value!r} not in {schema['enum']}"]
    found = []
    if isinstance(value, dict):
        found += [f"{where}.{name}: required, missing" for name in schema.get("required", []) if name not in value]
        for name, sub in schema.get("properties", {}).items():
            if name in value:
                found += problems(value[name], sub, components, f"{where}.{name}")
        extra = schema.get("additionalProperties")
        if isinstance(extra, dict):
            for name, item in value.items():
                found += problems(item, extra, components, f"{where}.{name}")
    if isinstance(value, list) and "items" in schema:
        for index, item in enumerate(value):
            found += problems(item, schema["items"], components, f"{where}[{index}]")
    return found


def test_the_checker_finds_a_missing_required_field():
    components = spec()["components"]["schemas"]
    assert problems({"code": None}, {"$ref": "#/components/schemas/ErrorBody"}, components) == \
        ["$.error: required, missing"]
    assert problems({"read": "3", "commands": 1}, {"$ref": "#/components/schemas/HookOutcome"}, components) == \
        ["$.read: '3' is no integer"]


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    with serve_status(open_rich_store(tmp_path_factory.mktemp("openapi") / "state.db"), KEY) as running:
        yield running


@pytest.mark.parametrize("route, status", [
    ("status", 200), ("status?dossier=ORFEVRE&entity=contact&state=all", 200), ("status?dossier=_group", 200),
    ("status?run=BIJOU-run-1&dossier=BIJOU", 200), ("status?state=perhaps", 400), ("status?runs=0", 400),
    ("status/dossiers/MONTRES", 200), ("status/dossiers/MONTRES?entity=account&state=resolved", 200),
    ("status/dossiers/NOPE", 404), ("status/dossiers/BIJOU?journal=-1", 400), ("status/openapi.json", 200),
])
def test_the_json_answers_carry_what_their_schema_requires(server, route, status):
    document = spec()
    response = httpx.get(server.url(route, with_key=True))
    assert response.status_code == status
    assert response.headers["content-type"].startswith("application/json")
    path = "/" + re.sub(r"^status/dossiers/[^?]+", "status/dossiers/{dossier}", route.split("?")[0])
    described = document["paths"][path]["get"]["responses"][str(status)]
    schema = described["content"]["application/json"]["schema"]
    assert problems(response.json(), schema, document["components"]["schemas"]) == []
    if route == "status/openapi.json":
        assert response.json() == document


def test_the_page_route_answers_html_as_described(server):
    response = httpx.get(server.url("status/page", with_key=True))
    assert response.status_code == 200 and response.headers["content-type"].startswith("text/html")
    assert "text/html" in spec()["paths"]["/status/page"]["get"]["responses"]["200"]["content"]
