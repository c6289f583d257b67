"""The simulator's API over raw HTTP: what it must answer for the client tests to mean anything."""
from __future__ import annotations

import threading
import time
from contextlib import contextmanager
from typing import Iterator

import httpx
import pytest

from local.simulator import FaultPlan, SsmSimulator


@contextmanager
def _login(base_url: str, public_key: str, private_key: str) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=base_url + "/", timeout=5) as http:
        answer = http.post("login", json={"username": public_key, "password": private_key})
        assert answer.status_code == 200
        http.headers["X-Session-Key"] = answer.json()["token"]
        yield http


@pytest.fixture
def api(sim):
    with _login(sim.base_url, sim.public_key, sim.private_key) as http:
        yield http


@pytest.fixture
def user_api(sim):
    with _login(sim.base_url, *sim.user_credentials("rep@demo.example")) as http:
        yield http


def _message(answer: httpx.Response) -> str:
    body = answer.json()
    return body.get("message") or body.get("Message")


def _create(api, resource: str, body: dict) -> int:
    answer = api.post(resource, json=body)
    assert answer.status_code == 200, answer.text
    assert answer.json()["Message"] == "entity created"
    return answer.json()["id"]


@pytest.fixture
def account(sim, api):
    def create(name: str = "Durand SA", **fields) -> int:
        return _create(api, "accounts", {"name": name, "branchId": sim.branch_id,
                                         "salesRepId1": sim.admin_id, **fields})
    return create


# --- sessions -------------------------------------------------------------------------------
def test_calls_without_a_valid_session_are_401(sim):
    with httpx.Client(base_url=sim.base_url + "/") as http:
        assert http.get("accounts").status_code == 401
        assert http.get("accounts", headers={"X-Session-Key": "forged"}).status_code == 401
        assert http.post("login", json={"username": sim.public_key, "password": "no"}).status_code == 401


def test_login_body_is_recorded_without_the_password(sim, api):
    login = [c for c in sim.calls if c.resource == "login"][0]
    assert login.body == {"username": sim.public_key, "password": "***"}


# --- required fields and validation ---------------------------------------------------------
REQUIRED = {
    "accounts": ("branchId", "name", "salesRepId1"),
    "salesorders": ("branchId", "reference", "salesRepId"),
    "salesordersLines": ("quantity", "price", "productId"),
    "contacts": ("accountId",),
}


def _complete_bodies(sim, api) -> dict[str, dict]:
    account_id = _create(api, "accounts", {"name": "A", "branchId": sim.branch_id, "salesRepId1": sim.admin_id})
    product_id = _create(api, "products", {"model": "P1"})
    order_id = _create(api, "salesorders", {"branchId": sim.branch_id, "reference": "R", "salesRepId": sim.admin_id})
    return {
        "accounts": {"name": "B", "branchId": sim.branch_id, "salesRepId1": sim.admin_id},
        "salesorders": {"branchId": sim.branch_id, "reference": "R2", "salesRepId": sim.admin_id},
        "salesordersLines": {"quantity": 2, "price": 9.5, "productId": product_id, "salesOrderId": order_id},
        "contacts": {"accountId": account_id, "lastName": "Martin"},
    }


@pytest.mark.parametrize("resource,missing", [(r, f) for r, fields in REQUIRED.items() for f in fields])
def test_create_without_a_documented_required_field_is_400(sim, api, resource, missing):
    body = _complete_bodies(sim, api)[resource]
    assert api.post(resource, json=body).status_code == 200
    del body[missing]
    answer = api.post(resource, json=body)
    assert answer.status_code == 400
    assert _message(answer) == f"The field '{missing}' is required"


def test_contacts_need_a_name_and_products_a_model_or_description(sim, api, account):
    account_id = account()
    assert api.post("contacts", json={"accountId": account_id}).status_code == 400
    assert api.post("contacts", json={"accountId": account_id, "firstName": "Léa"}).status_code == 200
    assert api.post("products", json={"price": 3.5}).status_code == 400
    assert api.post("products", json={"description": "Vis inox"}).status_code == 200


def test_zero_is_a_price_and_a_quantity(sim, api):
    product_id = _create(api, "products", {"model": "Gratuit"})
    assert api.post("salesordersLines", json={"quantity": 0, "price": 0, "productId": product_id}).status_code == 200


@pytest.mark.parametrize("body,problem", [
    ({"colour": "red"}, "The field 'colour' does not exist in accounts"),
    ({"id": 5}, "The field 'id' is managed by Sage Sales Management and cannot be written"),
    ({"dateUpdated": "2024-01-01T00:00:00Z"}, "The field 'dateUpdated' is managed by Sage Sales Management and cannot be written"),
    ({"name": "x" * 101}, "The field 'name' is longer than 100 characters"),
    ({"readOnly": "yes"}, "The field 'readOnly' must be true or false"),
    ({"rateId": "2"}, "The field 'rateId' must be a whole number"),
    ({"typeId": 999999}, "typeId: the accountTypes record 999999 does not exist"),
    ({"name": ""}, "The field 'name' is required and cannot be emptied"),
])
def test_invalid_writes_are_400(sim, api, account, body, problem):
    account_id = account()
    answer = api.put(f"accounts/{account_id}", json=body)
    assert answer.status_code == 400
    assert _message(answer) == problem


def test_400_bodies_rotate_among_the_three_documented_shapes(api):
    bodies = [api.post("accounts", json={"name": "no branch"}).json() for _ in range(3)]
    message = "The field 'branchId' is required"
    assert bodies == [{"message": message}, {"Message": message},
                      {"statusCode": 400, "message": message, "error": "Bad Request"}]


def test_a_reference_to_nothing_carries_code_910(api):
    answer = api.post("contacts", json={"accountId": 123456, "lastName": "X"})
    assert answer.status_code == 400 and answer.json()["code"] == 910


def test_reject_field_refuses_one_value(sim, api, account):
    sim.reject_field("accounts", "phone", lambda v: "x" in v, "Invalid phone number")
    account_id = account()
    answer = api.put(f"accounts/{account_id}", json={"phone": "01x"})
    assert answer.status_code == 400 and _message(answer) == "Invalid phone number"
    assert api.put(f"accounts/{account_id}", json={"phone": "0102"}).status_code == 200


def test_unknown_resource_and_unknown_id(api):
    answer = api.get("widgets")
    assert answer.status_code == 404 and answer.json()["code"] == 910
    assert api.get("accounts/987654").status_code == 404
    assert api.put("accounts/987654", json={"city": "Nice"}).status_code == 404
    assert api.put("accounts", json={"city": "Nice"}).status_code == 400


def test_tenant_lists_are_read_only_through_the_api(api):
    assert api.post("accountTypes", json={"descriptionFR": "Fournisseur"}).status_code == 405


# --- writes ---------------------------------------------------------------------------------
def test_partial_put_leaves_other_fields_alone(sim, clock, api, account):
    account_id = account(city="Paris", phone="0102030405", Z_Segment="PME", comment="VIP")
    before = sim.record("accounts", account_id)
    assert before["dateUpdated"] is None
    clock.advance(10)

    answer = api.put(f"accounts/{account_id}", json={"city": "Lyon"})

    assert answer.status_code == 200 and answer.json() == {"Message": "entity updated"}
    after = api.get(f"accounts/{account_id}").json()
    assert after["city"] == "Lyon"
    assert {k: v for k, v in after.items() if k not in ("city", "dateUpdated")} == \
        {k: v for k, v in before.items() if k not in ("city", "dateUpdated")}
    assert after["dateUpdated"] == "2024-01-15T09:00:10.000Z"


def test_soft_deleted_records_are_still_listed(sim, clock, api, account):
    kept, gone = account("Kept"), account("Gone")
    clock.advance(3)
    answer = api.delete(f"accounts/{gone}")
    assert answer.status_code == 200 and answer.json() == {"Message": "entity deleted"}

    listed = {row["id"]: row for row in api.get("accounts").json()}
    assert listed[gone]["deleted"] is True and listed[gone]["dateDeleted"] == "2024-01-15T09:00:03.000Z"
    assert listed[kept]["deleted"] is False and listed[kept]["dateDeleted"] is None
    assert api.get(f"accounts/{gone}").json()["deleted"] is True
    assert api.delete(f"accounts/{gone}").status_code == 200
    assert [r["id"] for r in api.get("accounts", params={"where": "deleted=1"}).json()] == [gone]


def test_references_come_back_as_objects_and_users_with_a_description(sim, api, account):
    account_id = account(typeId=sim.account_type_ids["Prospect"])
    record = api.get(f"accounts/{account_id}").json()
    assert record["typeId"] == {"id": sim.account_type_ids["Prospect"], "value": "Prospect"}
    assert record["branchId"] == {"id": sim.branch_id, "value": "Siège"}
    assert record["salesRepId1"] == {"id": sim.admin_id, "description": "Admin Implémentation"}


def test_read_only_records_refuse_ordinary_users_but_not_the_integration(sim, api, user_api, account):
    client_id = account("Client Sage", readOnly=True)
    order_id = _create(api, "salesorders", {"branchId": sim.branch_id, "reference": "FA001",
                                            "salesRepId": sim.admin_id, "readOnly": True})
    product_id = _create(api, "products", {"model": "P"})
    line_id = _create(api, "salesordersLines", {"salesOrderId": order_id, "productId": product_id,
                                                "quantity": 1, "price": 10})

    for answer in (user_api.put(f"accounts/{client_id}", json={"phone": "1"}),
                   user_api.delete(f"accounts/{client_id}"),
                   user_api.put(f"salesordersLines/{line_id}", json={"quantity": 3}),
                   user_api.post("salesordersLines", json={"salesOrderId": order_id, "productId": product_id,
                                                           "quantity": 1, "price": 1})):
        assert answer.status_code == 400
        assert "read-only" in _message(answer)
    assert sim.record("accounts", client_id)["phone"] is None
    assert api.put(f"accounts/{client_id}", json={"phone": "1"}).status_code == 200
    assert api.put(f"salesordersLines/{line_id}", json={"quantity": 3}).status_code == 200


def test_users_and_sales_totals(api):
    user_id = _create(api, "users", {"name": "Paul", "lastName": "Leroy", "email": "paul@demo.example",
                                     "extId": "D1:PL"})
    assert api.get(f"users/{user_id}").json()["email"] == "paul@demo.example"
    assert api.post("users", json={"name": "Sans mail"}).status_code == 400
    sale_id = _create(api, "sales", {"accountExtId": "D1:C001", "salesRepExtId": "D1:PL", "extId": "D1:FA42",
                                     "date": "2024-02-01T00:00:00Z", "total": 1250.5})
    assert api.get(f"sales/{sale_id}").json()["total"] == 1250.5


def test_schema_describes_fields(api):
    schema = api.get("accounts/schema").json()
    assert schema["properties"]["name"] == {"type": "string", "maxLength": 100, "readOnly": False,
                                            "required": True}
    assert schema["properties"]["dateCreated"]["readOnly"] is True
    assert sorted(schema["required"]) == ["branchId", "name", "salesRepId1"]


def test_legacy_internalid_lookup(api, account):
    account_id = account(extId="D1:C042")
    assert api.get("internalid", params={"type": "accounts", "externalid": "D1:C042"}).json() == {"id": account_id}
    assert api.get("internalid", params={"type": "accounts", "externalid": "nope"}).status_code == 404


# --- reading --------------------------------------------------------------------------------
def test_paging_is_zero_based_with_entity_count_header_and_legacy_page_header(sim, api):
    ids = [sim.add_record("products", {"model": f"P{n:03d}"}) for n in range(120)]
    assert [r["id"] for r in api.get("products").json()] == ids[:50]          # default 50
    page = api.get("products", params={"page": 2}, headers={"X-FM-Entity-Count": "40"})
    assert [r["id"] for r in page.json()] == ids[80:120]
    assert page.headers["X-FM-Entity-Count"] == "40"
    legacy = api.get("products", headers={"X-FM-Page": "1", "X-FM-Entity-Count": "100"})
    assert [r["id"] for r in legacy.json()] == ids[100:]
    assert api.get("products", params={"page": 3}, headers={"X-FM-Entity-Count": "40"}).json() == []
    assert len(api.get("products", headers={"X-FM-Entity-Count": "100000"}).json()) == 120
    assert api.get("products", params={"page": -1}).status_code == 400


def test_page_size_is_capped(sim, api):
    for n in range(510):
        sim.add_record("products", {"model": f"P{n}"})
    assert len(api.get("products", headers={"X-FM-Entity-Count": "1000"}).json()) == 500


def test_incremental_where_on_dates_returns_exactly_the_changed_records(sim, clock, api, account):
    old = [account(f"Old {n}") for n in range(4)]
    since = "2024-01-15T09:00:00.000Z"
    clock.advance(60)
    edited, removed = old[1], old[2]
    api.put(f"accounts/{edited}", json={"city": "Nantes"})
    api.delete(f"accounts/{removed}")
    new = account("New")

    where = f"dateCreated>'{since}' OR dateUpdated>'{since}' OR dateDeleted>'{since}'"
    changed = [r["id"] for r in api.get("accounts", params={"where": where, "order": "id"}).json()]
    assert changed == sorted([edited, removed, new])
    assert [r["id"] for r in api.get("accounts", params={"where": f"dateDeleted>'{since}'"}).json()] == [removed]
    assert [r["id"] for r in api.get("accounts", params={"where": "dateUpdated IS NULL AND deleted=0"}).json()] == \
        sorted([old[0], old[3], new])


def test_where_with_nested_references_in_like_and_parentheses(sim, api, account):
    prospect, client = sim.account_type_ids["Prospect"], sim.account_type_ids["Client"]
    a = account("Alpha", typeId=prospect, city="Paris")
    b = account("Beta", typeId=client, city="Lyon")
    c = account("Gamma", typeId=prospect, city="Lille")
    contact = _create(api, "contacts", {"accountId": b, "lastName": "Roux"})

    def ids(where, order="id"):
        answer = api.get("accounts", params={"where": where, "order": order})
        assert answer.status_code == 200, answer.text
        return [r["id"] for r in answer.json()]

    assert ids(f"typeId.id={prospect}") == [a, c]
    assert ids("typeId.value='client'") == [b]
    assert ids(f"typeId.id={prospect} AND (city LIKE 'L%' OR name='alpha')") == [a, c]
    assert ids(f"id IN ({a}, {c})") == [a, c]
    assert ids(f"id NOT IN ({a}, {c}) AND name <> 'Alpha'") == [b]
    assert ids("city NOT LIKE 'L%'") == [a]
    assert ids("name >= 'Beta'", order="name DESC") == [c, b]
    assert [r["id"] for r in api.get("contacts", params={"where": f"accountId.id={b}"}).json()] == [contact]
    bad = api.get("accounts", params={"where": "city LIKE"})
    assert bad.status_code == 400 and bad.json()["code"] == 901
    assert api.get("accounts", params={"order": "colour"}).status_code == 400


# --- tenant and test controls ---------------------------------------------------------------
def test_tenant_ids_are_not_1_and_2_and_change_with_the_seed(sim):
    assert set(sim.account_type_ids.values()).isdisjoint({1, 2})
    other = SsmSimulator(seed=8)
    assert other.account_type_ids != sim.account_type_ids
    assert [r["descriptionFR"] for r in sim.records("salesordersStatuses")] == [
        "Brouillon – En attente", "Brouillon – Validé", "En attente de synchronisation",
        "Commande", "Facture", "Annulé"]
    assert sim.records("users")[0]["email"] == "admin@demo.example"


def test_calls_are_counted_by_method_resource_and_writes(sim, api, account):
    sim.reset_calls()
    account_id = account()
    api.get(f"accounts/{account_id}")
    api.put(f"accounts/{account_id}", json={"city": "Metz"})
    api.get("branches")
    assert sim.call_count() == 4
    assert sim.call_count("GET") == 2
    assert sim.call_count(resource="accounts") == 3
    assert sim.call_count(writes_only=True) == 2
    assert [(c.method, c.resource, c.id, c.status) for c in sim.calls][:3] == [
        ("POST", "accounts", None, 200), ("GET", "accounts", account_id, 200), ("PUT", "accounts", account_id, 200)]


# --- faults ---------------------------------------------------------------------------------
def test_error_rate_is_seeded_and_reproducible():
    def statuses(seed: int) -> list[int]:
        with SsmSimulator(seed=seed, faults=FaultPlan(error_rate=0.4, seed=seed, resources=frozenset({"branches"}))) as sim:
            with _login(sim.base_url, sim.public_key, sim.private_key) as http:
                return [http.get("branches").status_code for _ in range(20)]

    first = statuses(5)
    assert first == statuses(5)
    assert {s for s in first if s != 200} <= {500, 502, 503}
    assert 3 <= sum(s != 200 for s in first) <= 14


def test_rate_limit_answers_429_with_retry_after(sim, api):
    sim.faults.rate_limit_per_s = 5
    answers = [api.get("branches") for _ in range(8)]
    limited = [a for a in answers if a.status_code == 429]
    assert len(limited) == 3
    assert all(a.headers["Retry-After"] == "1" for a in limited)
    time.sleep(1.05)
    assert api.get("branches").status_code == 200


def test_latency_is_added_to_every_request(sim, api):
    sim.faults.latency_s = 0.15
    started = time.monotonic()
    api.get("branches")
    assert time.monotonic() - started >= 0.15


def test_a_timeout_holds_the_answer_but_the_write_is_applied(sim, api, account):
    sim.faults.timeout_hold_s = 0.8
    sim.faults.fail_next("timeout", method="POST")
    with pytest.raises(httpx.ReadTimeout):
        api.post("accounts", json={"name": "Lost", "branchId": sim.branch_id, "salesRepId1": sim.admin_id},
                 timeout=0.2)
    assert [r["name"] for r in sim.records("accounts")] == ["Lost"]
    assert sim.calls[-1].fault == "timeout"


def test_expired_sessions_are_refused_until_the_next_login(sim, api):
    sim.expire_sessions()
    assert api.get("branches").status_code == 401
    with _login(sim.base_url, sim.public_key, sim.private_key) as fresh:
        assert fresh.get("branches").status_code == 200


def test_many_threads_write_safely(sim):
    errors = []

    def worker(n: int) -> None:
        try:
            with _login(sim.base_url, sim.public_key, sim.private_key) as http:
                for k in range(10):
                    assert http.post("products", json={"model": f"T{n}-{k}"}).status_code == 200
        except Exception as exc:  # noqa: BLE001 - collected and asserted below
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors
    ids = [r["id"] for r in sim.records("products")]
    assert len(ids) == len(set(ids)) == 60
