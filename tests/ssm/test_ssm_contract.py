"""The simulator against `shared.ssm.contract`, resource by resource: it refuses what the contract
does not allow and answers as the contract documents. Bodies are built from the contract itself,
so a resource added there is tested here without a line changed."""
from __future__ import annotations

import json
import threading
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Iterator

import httpx
import pytest

from shared.ssm import contract
from shared.ssm.contract import (BOOLEAN, CREATE, DATETIME, DELETE, FLAG01, GET, INTEGER, LIST, NUMBER, REF,
                                 REF_LIST, RESOURCES, STRING, UPDATE, Field, Resource)

CREATABLE = sorted(name for name, res in RESOURCES.items() if CREATE in res.operations)
LISTABLE_CREATABLE = [name for name in CREATABLE if LIST in RESOURCES[name].operations]
HOOKED = sorted(name for name, res in RESOURCES.items() if res.hook_entity and CREATE in res.operations)


@pytest.fixture
def api(sim):
    with httpx.Client(base_url=sim.base_url + "/", timeout=5) as http:
        answer = http.post("login", json={"username": sim.public_key, "password": sim.private_key})
        http.headers["X-Session-Key"] = answer.json()["token"]
        yield http


# --- bodies built from the contract ----------------------------------------------------------
def _value(sim, f: Field, n: int = 0) -> Any:
    """A valid value of `f` on this tenant (referenced records are created when needed)."""
    if f.choices:
        return f.choices[0]
    if f.name == "url":
        return "http://127.0.0.1:9/hook"
    if f.type == STRING:
        return f"v{n}"[: f.max_length or 30]
    if f.type == INTEGER:
        return int(f.minimum) if f.minimum is not None else 1
    if f.type == NUMBER:
        return 1.5
    if f.type == BOOLEAN:
        return True
    if f.type == DATETIME:
        return "2024-01-15T09:00:00Z"
    if f.type == FLAG01:
        return 0
    if f.type == REF:
        return _existing(sim, f.ref)
    if f.type == REF_LIST:
        return [_existing(sim, f.ref)]
    raise AssertionError(f"no sample value for {f}")


def _existing(sim, resource: str) -> int:
    """The id of a live record of `resource`, created directly if the tenant has none."""
    live = sim.records(resource, include_deleted=False)
    if live:
        return live[0]["id"]
    return sim.add_record(resource, _body(sim, RESOURCES[resource]))


def _body(sim, res: Resource, n: int = 0) -> dict:
    """A minimal valid create body: the required fields, or one optional field when none is."""
    body = {f.name: _value(sim, f, n) for f in res.fields if f.required}
    if not body:
        optional = next(f for f in res.writable() if f.type == STRING)
        body[optional.name] = _value(sim, optional, n)
    return body


def _create(api, resource: str, body: dict) -> int:
    answer = api.post(resource, json=body)
    assert answer.status_code == 200, answer.text
    return answer.json()["id"]


def _code(answer: httpx.Response) -> int | None:
    return answer.json().get("code")


# --- the contract table itself ---------------------------------------------------------------
def test_every_reference_points_at_a_resource_of_the_contract():
    for res in RESOURCES.values():
        for f in res.fields:
            if f.type in (REF, REF_LIST):
                assert f.ref in RESOURCES, (res.name, f.name)


def test_the_simulator_has_no_schema_of_its_own():
    import local.simulator.store as store
    assert not hasattr(store, "SCHEMAS")
    assert set(store.Store(clock=lambda: None, rng=__import__("random").Random(0))._tables) == set(RESOURCES)


# --- writes ---------------------------------------------------------------------------------
@pytest.mark.parametrize("resource", CREATABLE)
def test_a_minimal_documented_body_is_created(sim, api, resource):
    new_id = _create(api, resource, _body(sim, RESOURCES[resource]))
    assert isinstance(new_id, int)
    assert sim.record(resource, new_id)["id"] == new_id


@pytest.mark.parametrize("resource,missing", [(name, f) for name in CREATABLE for f in RESOURCES[name].required()])
def test_a_body_missing_a_required_field_is_400(sim, api, resource, missing):
    res = RESOURCES[resource]
    body = _body(sim, res)
    del body[missing]
    if not body:                         # keep the body non-empty: the missing field is the point
        optional = next(f for f in res.writable() if not f.required and f.type == STRING)
        body[optional.name] = "x"
    answer = api.post(resource, json=body)
    assert answer.status_code == 400
    assert answer.json().get("message", answer.json().get("Message")) == f"The field '{missing}' is required"


@pytest.mark.parametrize("resource", CREATABLE)
def test_an_unknown_field_is_400(sim, api, resource):
    answer = api.post(resource, json={**_body(sim, RESOURCES[resource]), "colour": "red"})
    assert answer.status_code == 400 and "colour" in answer.text


@pytest.mark.parametrize("resource", CREATABLE)
def test_a_value_of_the_wrong_type_is_400(sim, api, resource):
    res = RESOURCES[resource]
    body = _body(sim, res)
    for f in res.writable():
        wrong = 12 if f.type == STRING else "twelve"
        answer = api.post(resource, json={**body, f.name: wrong})
        assert answer.status_code == 400, (f.name, answer.text)
        assert f.name in answer.text


WITH_EXT_ID = [n for n in CREATABLE if RESOURCES[n].field("extId") or RESOURCES[n].field("extID")]


@pytest.mark.parametrize("resource", WITH_EXT_ID)
def test_a_too_long_ext_id_is_400(sim, api, resource):
    res = RESOURCES[resource]
    f = res.field("extId") or res.field("extID")
    limit = 255 if resource == "sales" else 30
    assert f.max_length == limit
    body = _body(sim, res)
    assert api.post(resource, json={**body, f.name: "x" * (limit + 1)}).status_code == 400
    new_id = _create(api, resource, {**body, f.name: "x" * limit})
    assert sim.record(resource, new_id)[f.read_name] == "x" * limit


@pytest.mark.parametrize("resource", CREATABLE)
def test_a_server_set_field_is_400(sim, api, resource):
    res = RESOURCES[resource]
    for f in res.fields:
        if f.server_set:
            value = 5 if f.type in (INTEGER, REF, FLAG01) else True if f.type == BOOLEAN else \
                "2024-01-01T00:00:00Z" if f.type == DATETIME else "x"
            answer = api.post(resource, json={**_body(sim, res), f.name: value})
            assert answer.status_code == 400 and "set by the server" in answer.text, f.name


@pytest.mark.parametrize("resource", [n for n in CREATABLE if UPDATE in RESOURCES[n].operations])
def test_required_fields_cannot_be_emptied_by_put(sim, api, resource):
    res = RESOURCES[resource]
    new_id = _create(api, resource, _body(sim, res))
    path = f"{res.item_path.strip('/') if res.item_path else resource}/{new_id}"
    for name in res.required():
        assert api.put(path, json={name: None}).status_code == 400, name
    writable = next(f for f in res.writable() if not f.required and f.type == STRING)
    assert api.put(path, json={writable.name: "changed"}).status_code == 200
    assert sim.record(resource, new_id)[writable.read_name] == "changed"


# --- reads ----------------------------------------------------------------------------------
UNDOCUMENTED_WHERE = ["id IN (1, 2)", "id <> 1", "id = '1'", "(id = 1)", "id.id = 1", "colour = 1",
                      "id >= 1", "id IS NULL", "NOT id = 1"]


@pytest.mark.parametrize("resource", LISTABLE_CREATABLE)
@pytest.mark.parametrize("where", UNDOCUMENTED_WHERE)
def test_an_undocumented_where_form_is_901(api, resource, where):
    answer = api.get(resource, params={"where": where})
    assert answer.status_code == 400 and _code(answer) == 901


@pytest.mark.parametrize("resource", LISTABLE_CREATABLE)
def test_order_is_descending_and_where_takes_ids(sim, api, resource):
    res = RESOURCES[resource]
    before = {r["id"] for r in sim.records(resource)}
    made = [_create(api, resource, _body(sim, res, n)) for n in range(3)]
    listed = [r["id"] for r in api.get(resource, params={"order": "id"}).json()]
    assert listed == sorted(before | set(made), reverse=True)
    where = f"id={made[0]} OR id={made[2]}"
    assert [r["id"] for r in api.get(resource, params={"where": where}).json()] == [made[0], made[2]]
    assert api.get(resource, params={"order": "id DESC"}).status_code == 400


@pytest.mark.parametrize("resource", CREATABLE)
def test_an_unknown_id_is_400_on_every_documented_item_operation(api, resource):
    res = RESOURCES[resource]
    path = f"{res.item_path.strip('/') if res.item_path else resource}/987654"
    if GET in res.operations:
        answer = api.get(f"{resource}/987654")
        assert answer.status_code == 400 and "does not exist" in answer.text and _code(answer) == 910
    if UPDATE in res.operations:
        assert api.put(path, json={next(f.name for f in res.writable() if f.type == STRING): "x"}).status_code == 400
    if DELETE in res.operations:
        answer = api.delete(path)
        assert answer.status_code == 400 and "does not exist" in answer.text


@pytest.mark.parametrize("resource", LISTABLE_CREATABLE)
def test_the_count_header_is_honoured_and_capped(sim, api, resource):
    res = RESOURCES[resource]
    existing = len(sim.records(resource))
    for n in range(60 - existing):
        sim.add_record(resource, _body(sim, res, n))
    assert len(api.get(resource, headers={"count": "7"}).json()) == 7
    assert len(api.get(resource, headers={"X-FM-Entity-Count": "9"}).json()) == 9
    assert len(api.get(resource, headers={"count": "500"}).json()) == contract.STRICT.max_page_size == 50
    assert len(api.get(resource, params={"page": 1}, headers={"count": "50"}).json()) == 10
    assert len(api.get(resource).json()) == contract.DEFAULT_PAGE_SIZE


@pytest.mark.parametrize("resource", [n for n in LISTABLE_CREATABLE if DELETE in RESOURCES[n].operations])
def test_deleted_records_are_listed(sim, api, resource):
    res = RESOURCES[resource]
    new_id = _create(api, resource, _body(sim, res))
    path = f"{res.item_path.strip('/') if res.item_path else resource}/{new_id}"
    assert api.delete(path).json() == {"Message": "entity deleted"}
    listed = {r["id"]: r for r in api.get(resource).json()}
    date_deleted = "date_deleted" if resource == "hooks" else "dateDeleted"
    assert listed[new_id]["deleted"] is True and listed[new_id][date_deleted] == "2024-01-15T09:00:00Z"
    assert api.delete(path).status_code == 400


@pytest.mark.parametrize("resource", sorted(n for n, r in RESOURCES.items() if contract.SCHEMA in r.operations))
def test_schemas_describe_every_contract_field_under_its_read_name(api, resource):
    properties = api.get(f"{resource}/schema").json()["properties"]
    res = RESOURCES[resource]
    assert set(properties) == {f.read_name for f in res.fields}
    for f in res.fields:
        entry = properties[f.read_name]
        assert entry["type"][1] == "null" and entry["readOnly"] is f.server_set
        if f.type == REF:
            assert entry["table"] == f.ref and entry["required"] == ["id"]


@pytest.mark.parametrize("resource", CREATABLE)
def test_records_read_back_with_every_field(sim, api, resource):
    res = RESOURCES[resource]
    new_id = _create(api, resource, _body(sim, res))
    if GET in res.operations:
        record = api.get(f"{resource}/{new_id}").json()
    else:
        [record] = [r for r in api.get(resource).json() if r["id"] == new_id]
    custom = set(sim.custom_fields().get(resource, ()))
    assert set(record) == {f.read_name for f in res.fields} | custom
    assert all(record[name] is None for name in custom)
    for f in res.fields:
        value = record[f.read_name]
        if f.type == REF and value is not None:
            assert set(value) == {"id", res.ref_label}


# --- webhooks -------------------------------------------------------------------------------
@contextmanager
def _receiver(status: int = 200) -> Iterator[tuple[str, list]]:
    received: list = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self):
            length = int(self.headers.get("Content-Length") or 0)
            received.append((self.path, dict(self.headers), json.loads(self.rfile.read(length))))
            self.send_response(status)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", received
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


@pytest.mark.parametrize("resource", HOOKED)
def test_webhooks_deliver_each_change_in_its_get_shape(sim, api, resource):
    res = RESOURCES[resource]
    with _receiver() as (url, received):
        hooks = {}
        for action in contract.HOOK_ACTIONS:
            answer = api.post("hooks", json={"name": f"{res.hook_entity} {action}", "action": action,
                                             "entity": res.hook_entity, "url": f"{url}/{action}"})
            assert answer.status_code == 200, answer.text
            hooks[action] = answer.json()
            assert hooks[action]["secret_key"] and hooks[action]["entity"] == res.hook_entity
            assert hooks[action]["version"] == 4 and hooks[action]["user_created"] == sim.admin_id
        listed = api.get("hooks").json()
        assert {h["id"] for h in listed} == {h["id"] for h in hooks.values()}
        assert set(listed[0]) == {f.read_name for f in RESOURCES["hooks"].fields}

        new_id = _create(api, resource, _body(sim, res))
        writable = next(f for f in res.writable() if not f.required and f.type == STRING)
        assert api.put(f"{resource}/{new_id}", json={writable.name: "changed"}).status_code == 200
        assert api.delete(f"{resource}/{new_id}").status_code == 200
        assert sim.wait_for_hooks(5)

        assert [path for path, _, _ in received] == ["/insert", "/update", "/delete"]
        bodies = [body for _, _, body in received]
        assert all(isinstance(body, list) and len(body) == 1 and body[0]["id"] == new_id for body in bodies)
        assert bodies[1][0][writable.read_name] == "changed" and bodies[2][0]["deleted"] is True
        assert set(bodies[0][0]) == set(sim.record(resource, new_id))
        for _, headers, _ in received:
            assert not any(hook["secret_key"] in value for hook in hooks.values() for value in headers.values())
        assert [(d.action, d.status, d.error) for d in sim.hook_deliveries] == \
            [("insert", 200, None), ("update", 200, None), ("delete", 200, None)]

        assert api.delete(f"hooks/{hooks['insert']['id']}").status_code == 200
        _create(api, resource, _body(sim, res, 1))
        assert sim.wait_for_hooks(5)
        assert len(received) == 3


def test_webhook_failures_are_recorded_and_not_retried(sim, api):
    with _receiver(status=500) as (url, received):
        api.post("hooks", json={"name": "a", "action": "insert", "entity": "account", "url": url})
        _create(api, "accounts", _body(sim, RESOURCES["accounts"]))
        assert sim.wait_for_hooks(5)
    assert len(received) == 1 and sim.hook_failures == 1
    assert sim.hook_deliveries[0].status == 500 and sim.hook_deliveries[0].error == "HTTP 500"


@pytest.mark.parametrize("body", [
    {"name": "a", "action": "upsert", "entity": "account", "url": "http://127.0.0.1:9"},
    {"name": "a", "action": "insert", "entity": "product", "url": "http://127.0.0.1:9"},
    {"name": "a", "action": "insert", "entity": "salesOrder", "url": "http://127.0.0.1:9"},
    {"name": "a", "action": "insert", "entity": "account"},
    {"name": "a", "action": "insert", "entity": "account", "url": "http://127.0.0.1:9", "secret_key": "s"},
])
def test_hooks_take_only_documented_bodies(api, body):
    assert api.post("hooks", json=body).status_code == 400


def test_every_call_of_a_session_satisfies_the_contract(sim, api):
    account = _create(api, "accounts", _body(sim, RESOURCES["accounts"]))
    api.get("accounts", params={"where": f'id={account} AND name LIKE "v%"', "order": "dateCreated", "page": 0},
            headers={"count": "10", "X-FM-Entity-Count": "10"})
    api.put(f"accounts/{account}", json={"city": "Lyon"})
    api.get(f"accounts/{account}", params={"lang": "fr"})
    api.get("extrafields/accounts/schema")
    api.delete(f"accounts/{account}")
    assert all(c.status == 200 for c in sim.calls)
    assert [contract.request_violations(c.request) for c in sim.calls] == [[]] * len(sim.calls)
