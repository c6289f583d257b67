"""Acting as an ordinary SSM user through the API, and the simulator's command line."""
from __future__ import annotations

import argparse
import threading

import httpx
import pytest

from local.simulator import SsmUserSession
from local.simulator.cli import register, run
from shared.errors import SsmRecordError
from shared.ssm import contract


@pytest.fixture
def rep(sim):
    email = "marie.rep@demo.example"
    with SsmUserSession(sim.base_url, *sim.user_credentials(email), email=email) as session:
        yield session


def test_a_rep_edits_a_prospect_and_adds_a_contact(sim, rep):
    prospect = rep.create_account("Nouvelle Boulangerie", city="Rennes")
    rep.edit_account(prospect, phone="02 99 00 00 00")
    contact = rep.create_contact(prospect, first_name="Jeanne", last_name="Morel", email="j@b.example")

    account = sim.record("accounts", prospect)
    assert account["typeId"]["value"] == "Prospect"
    assert account["salesRepId1"]["id"] == rep.user_id
    assert (account["city"], account["phone"]) == ("Rennes", "02 99 00 00 00")
    assert account["dateUpdated"] is not None
    person = sim.record("contacts", contact)
    assert person["accountId"]["id"] == prospect and person["salesRepId"]["id"] == rep.user_id

    rep.delete_contact(contact)
    assert sim.record("contacts", contact)["deleted"] is True


def test_a_rep_cannot_edit_a_client_managed_by_sage(sim, rep):
    client_id = sim.add_record("accounts", {"name": "Client Sage", "branchId": sim.branch_id,
                                            "salesRepId1": sim.admin_id, "readOnly": True,
                                            "typeId": sim.account_type_ids["Client"]})
    with pytest.raises(SsmRecordError) as caught:
        rep.edit_account(client_id, name="Renamed")
    assert "read-only" in caught.value.user_message
    assert sim.record("accounts", client_id)["name"] == "Client Sage"


def test_quote_flow_create_save_and_request_sync(sim, rep):
    account = rep.create_account("Client Devis")
    product = sim.add_record("products", {"model": "VIS-10", "price": 0.25})
    quote = rep.create_quote(account, lines=[{"product_id": product, "quantity": 100, "price": 0.25}])

    record = sim.record("salesorders", quote)
    assert record["statusId"]["value"] == "Brouillon – En attente"
    assert record["currencyId"] == {"id": sim.currency_id, "value": "euro"}
    assert [(l["productId"]["id"], l["quantity"], l["order"]) for l in rep.quote_lines(quote)] == [(product, 100, 1)]

    sim.store.update("salesorders", quote, {"statusId": sim.status_ids["Brouillon – Validé"]})
    rep.save_quote(quote, comment="Livraison mardi")
    assert sim.record("salesorders", quote)["statusId"]["value"] == "Brouillon – En attente"

    rep.request_sync(quote)
    record = sim.record("salesorders", quote)
    assert record["statusId"]["value"] == "En attente de synchronisation" and record["readOnly"] is True
    with pytest.raises(SsmRecordError):
        rep.save_quote(quote, comment="trop tard")
    with pytest.raises(SsmRecordError):
        rep.add_quote_line(quote, product_id=product, quantity=1, price=1)


def test_convert_prospect_to_client_just_changes_the_type(sim, rep):
    prospect = rep.create_account("À convertir")
    rep.convert_prospect_to_client(prospect)
    assert sim.record("accounts", prospect)["typeId"]["id"] == sim.account_type_ids["Client"]


def test_a_session_knows_its_user_from_the_keys_alone(sim):
    with SsmUserSession(sim.base_url, *sim.user_credentials("Paul.Vente@demo.example")) as paul:
        account = paul.create_account("Chez Paul")
    owner = sim.record("accounts", account)["salesRepId1"]
    assert owner["value"] == "Paul Vente" and owner["id"] != sim.admin_id


def test_user_actions_are_recorded_as_calls_that_satisfy_the_contract(sim, rep):
    sim.reset_calls()
    account = rep.create_account("Compté")
    rep.create_contact(account, first_name="Jo", last_name="Lin")
    product = sim.add_record("products", {"model": "P"})
    quote = rep.create_quote(account, lines=[{"product_id": product, "quantity": 2, "price": 1.5}])
    rep.quote_lines(quote)
    assert sim.call_count("POST", "accounts") == 1
    assert [contract.request_violations(c.request) for c in sim.calls] == [[]] * len(sim.calls)


def test_a_session_finds_its_user_by_e_mail_only(sim):
    with pytest.raises(ValueError):
        SsmUserSession(sim.base_url, sim.public_key, sim.private_key)


def test_cli_serves_until_stopped_and_prints_keys(capsys):
    parser = argparse.ArgumentParser()
    register(parser.add_subparsers(dest="command"))
    args = parser.parse_args(["simulator", "--port", "0", "--latency-ms", "1", "--seed", "4", "--plan", "none"])
    ready, stop = threading.Event(), threading.Event()
    worker = threading.Thread(target=lambda: run(args, ready=ready, stop=stop))
    worker.start()
    assert ready.wait(5)
    printed = capsys.readouterr().out
    base_url = printed.split("à l'écoute sur ")[1].split()[0]
    public = printed.split("clé publique : ")[1].split()[0]
    private = printed.split("clé privée : ")[1].split()[0]
    answer = httpx.post(base_url + "/login", json={"username": public, "password": private})
    stop.set()
    worker.join(5)
    assert answer.status_code == 200 and answer.json()["token"]
    assert args.handler is run
    assert "limite de débit : aucune" in printed


def test_cli_defaults_to_the_documented_rate_plan_and_rate_limit_overrides_it():
    parser = argparse.ArgumentParser()
    register(parser.add_subparsers(dest="command"))
    assert parser.parse_args(["simulator"]).plan == contract.DEFAULT_RATE_PLAN
    assert parser.parse_args(["simulator", "--plan", "starter"]).plan == "starter"
    with pytest.raises(SystemExit):
        parser.parse_args(["simulator", "--plan", "7"])
    args = parser.parse_args(["simulator", "--port", "0", "--rate-limit", "2.5", "--plan", "13"])
    ready, stop = threading.Event(), threading.Event()
    worker = threading.Thread(target=lambda: run(args, ready=ready, stop=stop))
    worker.start()
    assert ready.wait(5)
    stop.set()
    worker.join(5)
