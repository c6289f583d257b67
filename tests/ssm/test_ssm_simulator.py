"""The simulator's API over raw HTTP: what it must answer for the client tests to mean anything."""
from __future__ import annotations

import threading
import time
from contextlib import contextmanager
from typing import Iterator

import httpx
import pytest

from local.simulator import FaultPlan, SsmSimulator
from shared.ssm import contract


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


def _ids(answer: httpx.Response) -> list[int]:
    assert answer.status_code == 200, answer.text
    return [row["id"] for row in answer.json()]


# --- sessions -------------------------------------------------------------------------------
def test_calls_without_a_valid_session_are_401(sim):
    with httpx.Client(base_url=sim.base_url + "/") as http:
        assert http.get("accounts").status_code == 401
        assert http.get("accounts", headers={"X-Session-Key": "forged"}).status_code == 401
        assert http.post("login", json={"username": sim.public_key, "password": "no"}).status_code == 401


def test_login_takes_exactly_username_and_password_by_post(sim):
    with httpx.Client(base_url=sim.base_url + "/") as http:
        assert http.post("login", json={"username": sim.public_key}).status_code == 400
        assert http.post("login", json={"username": sim.public_key, "password": sim.private_key,
                                        "apiVersion": 4}).status_code == 400
        assert http.get("login").status_code == 400


def test_login_body_is_recorded_without_the_password(sim, api):
    login = [c for c in sim.calls if c.resource == "login"][0]
    assert login.body == {"username": sim.public_key, "password": "***"}


def test_calls_carry_headers_with_the_session_key_masked_and_a_contract_request(sim, api, account):
    account_id = account()
    api.get("accounts", params={"where": f"id={account_id}"}, headers={"count": "10"})
    listed = sim.calls[-1]
    assert listed.headers["X-Session-Key"] == "***" and listed.headers["count"] == "10"
    assert listed.request == contract.Request("GET", "/accounts", {"where": f"id={account_id}"},
                                              listed.headers, None)
    created = sim.calls[-2]
    assert created.request.path == "/accounts" and created.request.body["name"] == "Durand SA"
    assert all(contract.request_violations(c.request) == [] for c in sim.calls)


# --- required fields and validation ---------------------------------------------------------
REQUIRED = {
    "accounts": ("branchId", "name", "salesRepId1"),
    "salesorders": ("branchId", "reference", "salesRepId"),
    "salesordersLines": ("quantity", "price", "productId", "salesOrderId"),
    "contacts": ("accountId", "firstName", "lastName", "salesRepId"),
}


def _complete_bodies(sim, api) -> dict[str, dict]:
    account_id = _create(api, "accounts", {"name": "A", "branchId": sim.branch_id, "salesRepId1": sim.admin_id})
    product_id = _create(api, "products", {"model": "P1"})
    order_id = _create(api, "salesorders", {"branchId": sim.branch_id, "reference": "R", "salesRepId": sim.admin_id})
    return {
        "accounts": {"name": "B", "branchId": sim.branch_id, "salesRepId1": sim.admin_id},
        "salesorders": {"branchId": sim.branch_id, "reference": "R2", "salesRepId": sim.admin_id},
        "salesordersLines": {"quantity": 2, "price": 9.5, "productId": product_id, "salesOrderId": order_id},
        "contacts": {"accountId": account_id, "firstName": "Léa", "lastName": "Martin", "salesRepId": sim.admin_id},
    }


@pytest.mark.parametrize("resource,missing", [(r, f) for r, fields in REQUIRED.items() for f in fields])
def test_create_without_a_documented_required_field_is_400(sim, api, resource, missing):
    body = _complete_bodies(sim, api)[resource]
    assert api.post(resource, json=body).status_code == 200
    del body[missing]
    answer = api.post(resource, json=body)
    assert answer.status_code == 400
    assert _message(answer) == f"The field '{missing}' is required"


def test_contacts_need_both_names_and_products_a_model(sim, api, account):
    account_id = account()
    contact = {"accountId": account_id, "salesRepId": sim.admin_id}
    assert api.post("contacts", json={**contact, "firstName": "Léa"}).status_code == 400
    assert api.post("contacts", json={**contact, "firstName": "Léa", "lastName": "Roux"}).status_code == 200
    assert api.post("products", json={"description": "Vis inox"}).status_code == 400
    assert api.post("products", json={"model": "VIS", "description": "Vis inox"}).status_code == 200


def test_zero_is_a_price_and_a_quantity_but_a_quantity_is_whole(sim, api):
    product_id = _create(api, "products", {"model": "Gratuit"})
    order_id = _create(api, "salesorders", {"branchId": sim.branch_id, "reference": "R", "salesRepId": sim.admin_id})
    line = {"productId": product_id, "salesOrderId": order_id}
    assert api.post("salesordersLines", json={**line, "quantity": 0, "price": 0}).status_code == 200
    assert api.post("salesordersLines", json={**line, "quantity": 2.5, "price": 1}).status_code == 400


def test_lines_and_orders_have_only_documented_fields(sim, api):
    product_id = _create(api, "products", {"model": "P"})
    order = {"branchId": sim.branch_id, "reference": "R", "salesRepId": sim.admin_id}
    assert api.post("salesorders", json={**order, "date": "2024-01-01T00:00:00Z"}).status_code == 400
    assert api.post("salesorders", json={**order, "number": "BC00042"}).status_code == 400
    order_id = _create(api, "salesorders", {**order, "number": 42, "salesForcecastDate": "2024-02-01T00:00:00Z"})
    line = {"productId": product_id, "salesOrderId": order_id, "quantity": 1, "price": 1}
    assert api.post("salesordersLines", json={**line, "extId": "D1:L1"}).status_code == 400
    line_id = _create(api, "salesordersLines", line)
    read = api.get(f"salesordersLines/{line_id}").json()
    assert read["salesorderId"] == {"id": order_id, "value": "R"} and "salesOrderId" not in read
    assert "extId" not in read


@pytest.mark.parametrize("body,problem", [
    ({"colour": "red"}, "The field 'colour' does not exist in accounts"),
    ({"id": 5}, "The field 'id' is set by the server and cannot be written"),
    ({"dateUpdated": "2024-01-01T00:00:00Z"}, "The field 'dateUpdated' is set by the server and cannot be written"),
    ({"salesRepIdCreated": 1}, "The field 'salesRepIdCreated' is set by the server and cannot be written"),
    ({"address1": "x" * 181}, "The field 'address1' is longer than 180 characters"),
    ({"extId": "x" * 31}, "The field 'extId' is longer than 30 characters"),
    ({"readOnly": "yes"}, "The field 'readOnly' must be true or false"),
    ({"rateId": "2"}, "The field 'rateId' must be the id of a rates record"),
    ({"permissionLevel": 9}, "The field 'permissionLevel' is out of range"),
    ({"typeId": 999999}, "typeId: the accountTypes record 999999 does not exist"),
    ({"name": ""}, "The field 'name' is required and cannot be emptied"),
    ({"Z_Undeclared": "x"}, "The field 'Z_Undeclared' does not exist in accounts"),
])
def test_invalid_writes_are_400(sim, api, account, body, problem):
    account_id = account()
    answer = api.put(f"accounts/{account_id}", json=body)
    assert answer.status_code == 400
    assert _message(answer) == problem


def test_400_bodies_rotate_among_the_five_documented_shapes(sim, api):
    bodies = [api.post("accounts", json={"name": "no branch", "salesRepId1": sim.admin_id}).json()
              for _ in range(6)]
    message = "The field 'branchId' is required"
    assert bodies == [{"message": message}, {"Message": message},
                      {"statusCode": 400, "message": message, "error": "Bad Request"},
                      {"statusCode": 400, "message": message}, {"status": 400, "message": message},
                      {"message": message}]
    sim.error_shape = "status"
    assert api.post("accounts", json={}).json() == {"status": 400, "message": "The request body is empty"}


def test_a_reference_to_nothing_carries_code_910(sim, api):
    answer = api.post("contacts", json={"accountId": 123456, "firstName": "X", "lastName": "Y",
                                        "salesRepId": sim.admin_id})
    assert answer.status_code == 400 and answer.json()["code"] == 910
    answer = api.post("users", json={"name": "U", "lastName": "V", "email": "u@x.example", "nic": "u",
                                     "phone": "1", "idPrefix": sim.country_ids["FR"], "dbLanguage": "EN",
                                     "uiLanguage": "EN", "branches": [sim.branch_id, 424242]})
    assert answer.status_code == 400 and answer.json()["code"] == 910


def test_reject_field_refuses_one_value(sim, api, account):
    sim.reject_field("accounts", "phone", lambda v: "x" in v, "Invalid phone number")
    account_id = account()
    answer = api.put(f"accounts/{account_id}", json={"phone": "01x"})
    assert answer.status_code == 400 and _message(answer) == "Invalid phone number"
    assert api.put(f"accounts/{account_id}", json={"phone": "0102"}).status_code == 200


def test_unknown_resource_and_unknown_id_are_400(api):
    answer = api.get("widgets")
    assert answer.status_code == 400 and answer.json()["code"] == 910
    answer = api.get("accounts/987654")
    assert answer.status_code == 400 and "does not exist" in _message(answer)
    assert api.put("accounts/987654", json={"city": "Nice"}).status_code == 400
    assert api.delete("accounts/987654").status_code == 400
    assert api.put("accounts", json={"city": "Nice"}).status_code == 400
    assert api.patch("accounts/1", json={"city": "Nice"}).status_code == 400
    assert api.get("accounts/abc").status_code == 400


def test_value_lists_are_writable_only_where_documented(sim, api):
    assert api.post("accountTypes", json={"descriptionFR": "Fournisseur"}).status_code == 400   # EN required
    supplier = _create(api, "accountTypes", {"descriptionFR": "Fournisseur", "descriptionEN": "Supplier"})
    assert api.put(f"accountTypes/{supplier}", json={"descriptionEN": "Vendor"}).status_code == 400
    assert api.put(f"list/accountTypes/{supplier}", json={"descriptionEN": "Vendor"}).status_code == 200
    assert api.delete(f"list/accountTypes/{supplier}").status_code == 200
    assert api.get(f"accountTypes/{supplier}").json()["deleted"] is True
    status = sim.status_ids["Facture"]
    assert api.put(f"salesorderStatuses/{status}", json={"won": True}).status_code == 200
    assert api.post("salesorderStatuses", json={"descriptionEN": "New"}).status_code == 400
    assert api.delete(f"salesorderStatuses/{status}").status_code == 400
    assert api.post("branches", json={"descriptionEN": "Lyon"}).status_code == 400
    assert api.post("currencies", json={"descriptionEN": "dollar"}).status_code == 400
    inactive = sim.add_record("accountStatuses", {"descriptionFR": "Inactif", "descriptionEN": "Inactive"})
    assert api.put(f"accountStatuses/{inactive}", json={"won": True}).status_code == 400
    assert api.delete(f"accountStatuses/{inactive}").status_code == 200


# --- writes ---------------------------------------------------------------------------------
def test_partial_put_leaves_other_fields_alone(sim, clock, api, account):
    account_id = account(city="Paris", phone="0102030405", Z_Segment="PME", comment="VIP")
    before = sim.record("accounts", account_id)
    assert before["dateUpdated"] is None and before["Z_Segment"] == "PME"
    clock.advance(10.25)

    answer = api.put(f"accounts/{account_id}", json={"city": "Lyon"})

    assert answer.status_code == 200 and answer.json() == {"Message": "entity updated"}
    after = api.get(f"accounts/{account_id}").json()
    assert after["city"] == "Lyon"
    changing = ("city", "dateUpdated", "salesRepIdUpdated")
    assert {k: v for k, v in after.items() if k not in changing} == \
        {k: v for k, v in before.items() if k not in changing}
    assert after["dateUpdated"] == "2024-01-15T09:00:10.25Z" and after["salesRepIdUpdated"] == sim.admin_id


def test_soft_deleted_records_are_still_listed_and_cannot_be_changed(sim, clock, api, account):
    kept, gone = account("Kept"), account("Gone")
    clock.advance(3)
    answer = api.delete(f"accounts/{gone}")
    assert answer.status_code == 200 and answer.json() == {"Message": "entity deleted"}

    listed = {row["id"]: row for row in api.get("accounts").json()}
    assert listed[gone]["deleted"] is True and listed[gone]["dateDeleted"] == "2024-01-15T09:00:03Z"
    assert listed[gone]["dateUpdated"] is None and listed[gone]["salesRepIdDeleted"] == sim.admin_id
    assert listed[kept]["deleted"] is False and listed[kept]["dateDeleted"] is None
    assert api.get(f"accounts/{gone}").json()["deleted"] is True
    assert api.delete(f"accounts/{gone}").status_code == 400          # strict choice
    assert api.put(f"accounts/{gone}", json={"city": "Nice"}).status_code == 400   # strict choice
    assert _ids(api.get("accounts", params={"where": "deleted=1"})) == [gone]


def test_references_come_back_as_objects_and_on_users_with_a_description(sim, api, account):
    account_id = account(typeId=sim.account_type_ids["Prospect"])
    record = api.get(f"accounts/{account_id}").json()
    assert record["typeId"] == {"id": sim.account_type_ids["Prospect"], "value": "Prospect"}
    assert record["branchId"] == {"id": sim.branch_id, "value": "Siège"}
    assert record["salesRepId1"] == {"id": sim.admin_id, "value": "Admin Implémentation"}
    assert record["salesRepIdCreated"] == sim.admin_id
    admin = api.get(f"users/{sim.admin_id}").json()
    assert admin["branches"] == {"id": sim.branch_id, "description": "Siège"}
    assert admin["idPrefix"] == {"id": sim.country_ids["FR"], "description": "France"}


def test_read_names_differ_where_the_contract_says(sim, api, account):
    contact_id = _create(api, "contacts", {"accountId": account(), "firstName": "A", "lastName": "B",
                                           "salesRepId": sim.admin_id, "useCompanyAddress": True})
    contact = api.get(f"contacts/{contact_id}").json()
    assert contact["UseCompanyAddress"] is True and "useCompanyAddress" not in contact
    rate_id = _create(api, "rates", {"descriptionES": "Tarifa", "comments": "VIP", "extID": "T1"})
    rate = api.get(f"rates/{rate_id}").json()
    assert rate["Comments"] == "VIP" and rate["extID"] == "T1"


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
                   user_api.delete(f"salesordersLines/{line_id}"),
                   user_api.post("salesordersLines", json={"salesOrderId": order_id, "productId": product_id,
                                                           "quantity": 1, "price": 1})):
        assert answer.status_code == 400
        assert "read-only" in _message(answer)
    assert sim.record("accounts", client_id)["phone"] is None
    assert api.put(f"accounts/{client_id}", json={"phone": "1"}).status_code == 200
    assert api.put(f"salesordersLines/{line_id}", json={"quantity": 3}).status_code == 200


def test_read_only_can_bind_the_integration_too(sim, api, account):
    client_id = account("Client Sage", readOnly=True)
    sim.strictness = sim.strictness.loosened(read_only_binds_integration=True)
    assert api.put(f"accounts/{client_id}", json={"phone": "1"}).status_code == 400


def test_users_and_sales_totals(sim, api, account):
    user = {"name": "Paul", "lastName": "Leroy", "email": "paul@demo.example", "nic": "pleroy",
            "phone": "0600000000", "idPrefix": sim.country_ids["FR"], "dbLanguage": "EN", "uiLanguage": "EN",
            "branches": [sim.branch_id], "extId": "D1:PL"}
    user_id = _create(api, "users", user)
    assert api.get(f"users/{user_id}").json()["email"] == "paul@demo.example"
    assert api.post("users", json={"name": "Sans mail"}).status_code == 400
    assert api.post("users", json={**user, "uiLanguage": "FR"}).status_code == 400
    assert api.put(f"users/{user_id}", json={"phone": "1"}).status_code == 400        # PUT undocumented
    sale = {"accountExtId": "D1:C001", "accountId": account(), "salesRepExtId": "D1:PL", "extId": "D1:" + "F" * 250,
            "date": "2024-02-01 00:00:00", "total": 1250.5}
    sale_id = _create(api, "sales", sale)
    read = api.get(f"sales/{sale_id}").json()
    assert (read["total"], read["date"], read["deleted"], read["salesRepId"]) == \
        (1250.5, "2024-02-01T00:00:00Z", 0, None)
    assert api.post("sales", json={**sale, "extId": "x" * 256}).status_code == 400
    assert api.delete(f"sales/{sale_id}").status_code == 400                          # DELETE undocumented


def test_schema_describes_fields_in_the_documented_shape(sim, api):
    sim.add_custom_field("contacts", "Z_Hobby", "string", 40)
    properties = api.get("accounts/schema").json()["properties"]
    assert properties["address1"] == {"description": "address1", "type": ["string", "null"], "readOnly": False,
                                      "maxLength": 180}
    assert properties["dateCreated"]["readOnly"] is True and properties["dateCreated"]["format"] == "date-time"
    assert properties["typeId"]["table"] == "accountTypes" and properties["typeId"]["required"] == ["id"]
    assert "Z_Segment" not in properties
    assert api.get("contacts/schema").json()["properties"]["UseCompanyAddress"]["type"] == ["boolean", "null"]
    extra = api.get("extrafields/contacts/schema").json()
    assert extra == {"properties": {"Z_Hobby": {"description": "Z_Hobby", "type": ["string", "null"],
                                                "readOnly": False, "maxLength": 40}}}
    assert set(api.get("extrafields/accounts/schema").json()["properties"]) == {"Z_Segment", "Z_Notes"}
    assert api.get("extrafields/users/schema").json() == {"properties": {}}
    assert api.get("extrafields/salesordersLines/schema").status_code == 400


def test_custom_fields_are_typed_and_only_where_the_contract_has_them(sim, api, account):
    sim.add_custom_field("accounts", "Z_Score", "number")
    account_id = account(Z_Score=4.5)
    assert api.put(f"accounts/{account_id}", json={"Z_Score": "high"}).status_code == 400
    with pytest.raises(ValueError):
        sim.add_custom_field("salesordersLines", "Z_Colour", "string")
    assert _ids(api.get("accounts", params={"where": "Z_Score>4"})) == [account_id]


def test_pre_v4_routes_and_headers_are_gone(api, account):
    account(extId="D1:C042")
    assert api.get("internalid", params={"type": "accounts", "externalid": "D1:C042"}).status_code == 400
    assert api.get("accounts", headers={"X-FM-Page": "1"}).status_code == 400
    assert api.get("accounts", headers={"X-FM-API-Version": "4"}).status_code == 400
    assert api.get("accounts", params={"pageSize": "10"}).status_code == 400


# --- reading --------------------------------------------------------------------------------
def test_paging_is_zero_based_with_either_page_size_header_and_no_answer_headers(sim, api):
    ids = [sim.add_record("products", {"model": f"P{n:03d}"}) for n in range(120)]
    assert _ids(api.get("products")) == ids[:50]                                   # default 50
    page = api.get("products", params={"page": 2}, headers={"count": "40"})
    assert _ids(page) == ids[80:120]
    assert not {h.lower() for h in page.headers} & {"x-fm-entity-count", "x-fm-next-page", "x-fm-prev-page"}
    assert _ids(api.get("products", params={"page": 1}, headers={"X-FM-Entity-Count": "30"})) == ids[30:60]
    assert _ids(api.get("products", params={"page": 3}, headers={"count": "40"})) == []
    assert len(api.get("products", headers={"count": "100000"}).json()) == 50      # capped
    assert api.get("products", params={"page": -1}).status_code == 400
    assert api.get("products", headers={"count": "many"}).status_code == 400


def test_page_size_cap_is_a_strictness_setting(sim, api):
    for n in range(130):
        sim.add_record("products", {"model": f"P{n}"})
    assert len(api.get("products", headers={"count": "1000"}).json()) == 50
    sim.max_page_size = 120
    assert sim.strictness.max_page_size == 120
    assert len(api.get("products", headers={"count": "1000"}).json()) == 120


def test_incremental_where_on_dates_returns_exactly_the_changed_records(sim, clock, api, account):
    old = [account(f"Old {n}") for n in range(4)]
    since = "2024-01-15T09:00:00.000Z"
    clock.advance(60)
    edited, removed = old[1], old[2]
    api.put(f"accounts/{edited}", json={"city": "Nantes"})
    api.delete(f"accounts/{removed}")
    new = account("New")

    where = f'dateCreated>"{since}" OR dateUpdated>"{since}" OR dateDeleted>"{since}"'
    changed = _ids(api.get("accounts", params={"where": where, "order": "id"}))
    assert changed == sorted([edited, removed, new], reverse=True)
    assert _ids(api.get("accounts", params={"where": 'dateDeleted>"2024-01-15T09:00:00Z"'})) == [removed]
    assert _ids(api.get("accounts", params={"where": "dateCreated>2024-01-15T09:00:59.999Z"})) == [new]
    bad = api.get("accounts", params={"where": 'dateCreated>"2024-01-15"'})
    assert bad.status_code == 400 and bad.json()["code"] == 901


def test_where_takes_the_documented_forms(sim, api, account):
    prospect, client = sim.account_type_ids["Prospect"], sim.account_type_ids["Client"]
    a = account("Alpha", typeId=prospect, city="Paris", extId="D1:A")
    b = account("Beta", typeId=client, city="Lyon", extId="D1:B")
    c = account("Gamma", typeId=prospect, city="Lille", extId="D1:C", readOnly=True)
    contact = _create(api, "contacts", {"accountId": b, "firstName": "Jo", "lastName": "Roux",
                                        "salesRepId": sim.admin_id})

    def ids(where, **params):
        return _ids(api.get("accounts", params={"where": where, **params}))

    assert ids(f"typeId={prospect}") == [a, c]
    assert ids('city LIKE "L%"') == [b, c]
    assert ids("city LIKE L_lle") == [c]
    assert ids('name="alpha"') == [a]                                  # text without regard to case
    assert ids(f'typeId={prospect} AND city LIKE "L%" OR name=Beta') == [b, c]   # AND binds tighter
    assert ids('extId="d1:a" OR extId="D1:C"') == [a, c]
    assert ids("readOnly=1") == [c] and ids("readOnly=true") == [c]
    assert ids(f"id>{a}") == [b, c]
    assert ids("", order="name") == [c, b, a]                          # order is descending
    assert ids(f"salesRepId1={sim.admin_id}", order="city") == [a, b, c]
    assert _ids(api.get("contacts", params={"where": f"accountId={b}"})) == [contact]


@pytest.mark.parametrize("where", [
    "typeId IN (1, 2)", "name <> 'x'", "name='Alpha'", "(name=Alpha)", "typeId.id=5", "colour=red",
    "name >= Alpha", "dateUpdated IS NULL", "NOT name=Alpha", "city LIKE", "name=\"Al\"pha\"",
])
def test_undocumented_where_forms_are_901(api, account, where):
    account("Alpha")
    answer = api.get("accounts", params={"where": where})
    assert answer.status_code == 400 and answer.json()["code"] == 901


@pytest.mark.parametrize("order", ["colour", "name DESC", "name,id", "-name", "typeId.id"])
def test_undocumented_order_forms_are_901(api, order):
    answer = api.get("accounts", params={"order": order})
    assert answer.status_code == 400 and answer.json()["code"] == 901


def test_the_loose_where_mode_still_takes_the_old_grammar(sim, api, account):
    sim.strictness = sim.strictness.loosened(documented_where_only=False)
    prospect = sim.account_type_ids["Prospect"]
    a = account("Alpha", typeId=prospect, city="Paris")
    b = account("Beta", city="Lyon")
    c = account("Gamma", typeId=prospect, city="Lille")

    def ids(where, order="id ASC"):
        return _ids(api.get("accounts", params={"where": where, "order": order}))

    assert ids(f"typeId.id={prospect}") == [a, c]
    assert ids("typeId.value='prospect' AND (city LIKE 'L%' OR name='alpha')") == [a, c]
    assert ids(f"id IN ({a}, {c})") == [a, c]
    assert ids("name <> 'Alpha' AND typeId IS NULL") == [b]
    assert ids("city LIKE 'L%'", order="name") == [c, b]


def test_extid_lookups_use_the_index(sim, api):
    for n in range(3000):
        sim.add_record("products", {"model": f"P{n}", "extId": f"D1:P{n}"})
    target = sim.store.find_ext_id("products", "d1:p2999")
    started = time.perf_counter()
    for _ in range(50):
        assert _ids(api.get("products", params={"where": 'extId="D1:P2999" OR extId="D1:PX"'})) == target
    assert len(target) == 1 and time.perf_counter() - started < 5


# --- tenant and test controls ---------------------------------------------------------------
def test_tenant_is_seeded_as_documented_and_ids_change_with_the_seed(sim, api):
    assert set(sim.account_type_ids.values()).isdisjoint({1, 2})
    other = SsmSimulator(seed=8)
    assert other.account_type_ids != sim.account_type_ids
    assert [r["descriptionFR"] for r in sim.records("salesorderStatuses")] == [
        "Brouillon – En attente", "Brouillon – Validé", "En attente de synchronisation",
        "Commande", "Facture", "Annulé"]
    assert api.get("salesordersStatuses").status_code == 400
    assert sim.records("users")[0]["email"] == "admin@demo.example"
    [euro] = api.get("currencies").json()
    assert (euro["id"], euro["descriptionFR"], euro["isoCode"], euro["symbol"]) == \
        (sim.currency_id, "euro", "EUR", "€")
    [branch] = api.get("branches").json()
    assert (branch["descriptionFR"], branch["descriptionEN"], branch["default"]) == ("Siège", "Head office", True)
    countries = {c["iso2"]: c for c in api.get("countries").json()}
    assert set(countries) == {"FR", "BE", "CH", "LU", "ES", "DE", "IT", "GB"}
    assert (countries["FR"]["phoneCode"], countries["FR"]["iso3"], countries["LU"]["phoneCode"]) == ("33", "FRA", "352")
    types = {t["descriptionFR"]: t["descriptionEN"] for t in api.get("accountTypes").json()}
    assert set(types) == {"Client", "Prospect"} and all(types.values())


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
        faults = FaultPlan(error_rate=0.4, seed=seed, resources=frozenset({"branches"}))
        with SsmSimulator(seed=seed, faults=faults) as sim:
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


@pytest.mark.parametrize("plan,allowed,window", [("4", 4, 1.0), ("13", 13, 1.0), ("starter", 50, 60.0)])
def test_rate_plans_set_the_documented_limits(plan, allowed, window):
    with SsmSimulator(seed=1, rate_plan=plan) as sim:
        assert sim.faults.rate_limit_window_s == window
        with _login(sim.base_url, sim.public_key, sim.private_key) as http:      # the login counts
            statuses = [http.get("branches").status_code for _ in range(allowed + 1)]
    assert statuses[:allowed - 1] == [200] * (allowed - 1) and statuses[-2:] == [429, 429]
    assert SsmSimulator(rate_plan=None).faults.rate_limit_per_s is None


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
