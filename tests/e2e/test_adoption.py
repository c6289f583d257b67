"""A tenant that used SSM before Sage was connected: its hand-made records are adopted, not duplicated.

Through the whole local pipeline: hand-made SSM records (no `extId` of ours) seeded in the
simulator, `ssm-connector adopt` / `local --dry-run` run as the administrator runs them, then
`local --once` cycles; both Sage (through the SQLite file) and SSM (over HTTP) are checked by content.
"""
from __future__ import annotations

import sqlite3

import pytest

from agent.demo_builder import delete_row, update_row
from local.cli import main
from local.simulator.user import SsmUserSession
from shared.state.records import AdoptionState, IncidentState
from shared.sync.adopter import ADOPT
from shared.sync.binder import external_id
from tests.e2e.conftest import FAST_CLIENT

D = "BIJOU"


@pytest.fixture(autouse=True)
def fast_client(monkeypatch):
    for name, value in FAST_CLIENT.items():
        monkeypatch.setenv(name, value)


class HandMade:
    """What an SSM user typed in before the connector: ids of the records seeded."""

    def __init__(self, *, ambiguous: bool = False):
        self.ids: dict[str, int] = {}
        self.ambiguous = ambiguous

    def __call__(self, sim) -> None:
        sim.add_custom_field("accounts", "Z_SIRET", "string", 20)
        owner = {"branchId": sim.branch_id, "salesRepId1": sim.admin_id}
        self.ids["siret"] = sim.add_record("accounts", {
            "name": "LEFEVRE BIJOUX (saisi à la main)", "Z_SIRET": "760 596 005 16537", **owner,
            "comment": "Client historique, voir avec Paul", "Z_Notes": "Salon de Besançon 2023"})
        self.ids["name"] = sim.add_record("accounts", {
            "name": "L'ECRIN D'EMERAUDE SARL", "postcode": "75001", "city": "Paris", **owner,
            "comment": "Rencontré en boutique"})
        self.ids["contact"] = sim.add_record("contacts", {
            "accountId": self.ids["siret"], "firstName": "Raphael", "lastName": "BENOIT",
            "email": "RAPHAEL.BENOIT1@lefevre.fr", "salesRepId": sim.admin_id, "comment": "Préfère le mardi"})
        self.ids["product"] = sim.add_record("products", {
            "model": "baar01", "description": "Bague solitaire (fiche faite à la main)", "Z_Brand": "Maison",
            "maxDiscount": 5})
        self.ids["unrelated"] = sim.add_record("accounts", {"name": "Prospect sans rapport", "postcode": "13001",
                                                            **owner})
        if self.ambiguous:
            self.ids["first"] = sim.add_record("accounts", {"name": "Galerie Amethyste", "postcode": "59000",
                                                            **owner})
            self.ids["second"] = sim.add_record("accounts", {"name": "GALERIE AMÉTHYSTE", "postcode": "59 000",
                                                             "comment": "doublon saisi par un autre commercial",
                                                             **owner})


def adopt(p, *args: str) -> int:
    return main(["adopt", "--config", str(p.config_path), "--dossier", D, *args])


def sage_dump(p) -> list[str]:
    connection = sqlite3.connect(p.databases[D])
    try:
        return list(connection.iterdump())
    finally:
        connection.close()


def ssm_state(p) -> dict:
    return {resource: p.simulator.records(resource) for resource in
            ("accounts", "contacts", "products", "productFamilies", "salesorders", "salesordersLines", "sales", "users")}


def sync_state(p) -> list[tuple]:
    """Every row of the state store but the kept reports (tenant check, previews)."""
    connection = sqlite3.connect(p.settings.state.path)
    try:
        return connection.execute("SELECT table_name, partition_key, row_key, data FROM entities"
                                  " WHERE table_name <> 'checks' ORDER BY 1, 2, 3").fetchall()
    finally:
        connection.close()


def ssm_writes(p) -> list:
    return [c for c in p.simulator.calls if c.method in ("POST", "PUT", "DELETE") and c.resource != "login"]


def assert_never_duplicated(p) -> None:
    """No SSM record of ours was ever created twice (deleted ones count); SSM's own records, which
    carry no extId, are not ours."""
    for resource in ("accounts", "contacts", "products", "salesorders"):
        ours = [r["extId"] for r in p.simulator.records(resource) if r.get("extId")]
        assert len(ours) == len(set(ours)), f"{resource}: a duplicate was created"


def customers(p) -> list[str]:
    return [r[0] for r in p.sage(D, "SELECT CT_Num FROM F_COMPTET WHERE CT_Type = 0 ORDER BY CT_Num")]


def test_hand_made_accounts_contacts_and_products_are_adopted_without_duplicates(make_pipeline, capsys):
    made = HandMade()
    p = make_pipeline(before_start=made)

    assert adopt(p) == 0
    shown = capsys.readouterr().out
    assert "LEFEVRE" in shown and "SIRET" in shown and "nom et code postal" in shown
    assert ssm_writes(p) == []                                            # the preview alone writes nothing

    assert adopt(p, "--confirm") == 0
    assert "Reprises : 4 fiche(s) reliée(s) ; 0 correspondance(s) ambiguë(s)" in capsys.readouterr().out
    summary = p.run()

    assert summary.ok, summary.render()
    account = p.simulator.record("accounts", made.ids["siret"])
    assert account["extId"] == external_id(D, "LEFEVRE")
    assert (account["name"], account["postcode"], account["vatNumber"]) == ("Bijouterie Lefèvre", "25000",
                                                                            "FR51360284652")
    assert (account["comment"], account["Z_Notes"]) == ("Client historique, voir avec Paul", "Salon de Besançon 2023")
    by_name = p.simulator.record("accounts", made.ids["name"])
    assert (by_name["extId"], by_name["name"], by_name["comment"]) == (
        external_id(D, "ECRIN"), "L’Écrin d’Émeraude", "Rencontré en boutique")
    contact = p.simulator.record("contacts", made.ids["contact"])
    assert (contact["extId"], contact["firstName"], contact["lastName"], contact["email"], contact["comment"]) == (
        external_id(D, "1"), "Raphaël", "Benoît", "raphael.benoit1@lefevre.fr", "Préfère le mardi")
    assert contact["accountId"]["id"] == made.ids["siret"]
    product = p.simulator.record("products", made.ids["product"])
    [design] = p.sage(D, "SELECT AR_Design FROM F_ARTICLE WHERE AR_Ref = 'BAAR01'")
    assert (product["extId"], product["model"], product["description"]) == (external_id(D, "BAAR01"), "BAAR01",
                                                                           design[0])
    assert (product["Z_Brand"], product["maxDiscount"]) == ("Maison", 5)
    unrelated = p.simulator.record("accounts", made.ids["unrelated"])
    assert not unrelated.get("extId") and not unrelated["deleted"]        # SSM's own record, left alone
    store = p.runtime.store
    linked = {link.ssm_id for link in store.list_links(D, "account")}
    live = {a["id"] for a in p.simulator.records("accounts") if not a["deleted"]}
    assert live == linked | {made.ids["unrelated"]}                        # every Sage customer once, no double
    assert len(linked) == len(customers(p))
    assert store.get_link(D, "product", "BAAR01").ssm_id == made.ids["product"]
    [confirmed] = store.list_journal(D, event="adoption-confirmed")       # one line for the confirmation
    assert confirmed.detail == {"bound": 4, "held": 0} and store.list_journal(D, event="adopted") == []
    assert_never_duplicated(p)
    assert [r[0] for r in p.sage(D, "SELECT COUNT(*) FROM F_COMPTET WHERE CT_Num LIKE 'SSM%'")] == [0]

    p.simulator.reset_calls()
    assert p.run().ok
    assert ssm_writes(p) == []                                            # adopted records are ordinary ones now


def test_an_ambiguous_match_waits_for_the_administrator_then_is_bound_to_the_one_chosen(make_pipeline, capsys):
    made = HandMade(ambiguous=True)
    p = make_pipeline(before_start=made)
    [row] = p.sage(D, "SELECT CT_No, CT_Prenom, CT_Nom, CT_EMail FROM F_CONTACTT WHERE CT_Num = 'AMETHYSTE'")
    contact_key = str(row["CT_No"])
    hand_contact = p.simulator.add_record("contacts", {
        "accountId": made.ids["second"], "firstName": "Prénom", "lastName": "À COMPLÉTER",
        "email": row["CT_EMail"].strip().upper(), "salesRepId": p.simulator.admin_id, "comment": "noté au salon"})

    assert adopt(p, "--confirm") == 0
    shown = capsys.readouterr().out
    assert "Reprises : 4 fiche(s) reliée(s) ; 1 correspondance(s) ambiguë(s)" in shown
    assert f"n° SSM {made.ids['first']}" in shown and f"n° SSM {made.ids['second']}" in shown
    held = p.runtime.store.get_adoption(D, "account", "AMETHYSTE")
    assert (held.state, held.candidates) == (AdoptionState.HELD, [made.ids["first"], made.ids["second"]])

    summary = p.run()

    assert summary.ok, summary.render()
    assert p.runtime.store.get_link(D, "account", "AMETHYSTE") is None     # not created, not bound
    named = [a for a in p.simulator.records("accounts") if "ameth" in a["name"].casefold().replace("é", "e")]
    assert sorted(a["id"] for a in named) == [made.ids["first"], made.ids["second"]]
    assert all(not a.get("extId") for a in named)
    waiting = {(i.entity, i.key): i.message for i in p.runtime.store.list_incidents(D, state=IncidentState.OPEN)
               if i.operation == ADOPT}
    addresses = {("delivery_address", str(r["LI_No"]))
                 for r in p.sage(D, "SELECT LI_No FROM F_LIVRAISON WHERE CT_Num = 'AMETHYSTE'")}
    assert set(waiting) == {("account", "AMETHYSTE"), ("contact", contact_key)} | addresses
    assert f"--bind account:AMETHYSTE={made.ids['first']}" in waiting[("account", "AMETHYSTE")]
    assert waiting[("account", "AMETHYSTE")].startswith("Le compte « AMETHYSTE » de Sage ressemble")
    assert p.runtime.store.get_link(D, "contact", contact_key) is None     # its contact waits with it

    assert adopt(p, "--bind", f"account:AMETHYSTE={made.ids['second']}") == 0
    assert "appliquée tout de suite" in capsys.readouterr().out
    chosen = p.simulator.record("accounts", made.ids["second"])
    assert (chosen["extId"], chosen["name"], chosen["comment"]) == (
        external_id(D, "AMETHYSTE"), "Galerie Améthyste", "doublon saisi par un autre commercial")
    assert not p.simulator.record("accounts", made.ids["first"]).get("extId")
    adopted = {(e.entity, e.key) for e in p.runtime.store.list_journal(D, event="adopted")}
    assert adopted == {("account", "AMETHYSTE"), ("contact", contact_key)}   # the choice, and its contact
    assert p.runtime.store.get_adoption(D, "account", "AMETHYSTE") is None
    assert p.runtime.store.get_incident(D, "account", "AMETHYSTE", ADOPT).state is IncidentState.RESOLVED
    contact = p.ssm("contacts", external_id(D, contact_key))    # its hand-made contact adopted, at once
    assert (contact["id"], contact["accountId"]["id"], contact["comment"]) == (hand_contact, made.ids["second"],
                                                                               "noté au salon")
    assert (contact["firstName"], contact["lastName"], contact["email"]) == (
        row["CT_Prenom"], row["CT_Nom"], row["CT_EMail"].strip())
    assert p.runtime.store.get_incident(D, "contact", contact_key, ADOPT).state is IncidentState.RESOLVED

    assert p.run().ok
    assert_never_duplicated(p)
    assert len([a for a in p.simulator.records("accounts") if not a["deleted"]]) == len(customers(p)) + 2


def test_an_ambiguous_match_the_administrator_says_is_new_is_created_and_the_candidates_left(make_pipeline, capsys):
    made = HandMade(ambiguous=True)
    p = make_pipeline(before_start=made)
    assert adopt(p, "--confirm") == 0
    assert p.run().ok
    assert p.runtime.store.get_link(D, "account", "AMETHYSTE") is None

    assert adopt(p, "--create", "account:AMETHYSTE") == 0

    created = p.ssm("accounts", external_id(D, "AMETHYSTE"))
    assert created["id"] not in (made.ids["first"], made.ids["second"]) and created["name"] == "Galerie Améthyste"
    assert not p.simulator.record("accounts", made.ids["first"]).get("extId")
    assert not p.simulator.record("accounts", made.ids["second"]).get("extId")
    assert p.run().ok
    assert_never_duplicated(p)


def test_a_dry_run_shows_what_the_realignment_would_do_and_changes_nothing(make_pipeline, capsys):
    made = HandMade()
    p = make_pipeline(before_start=made)
    sage_before, ssm_before, state_before = sage_dump(p), ssm_state(p), sync_state(p)

    assert main(["local", "--config", str(p.config_path), "--dry-run", "--dossier", D, "--json"]) == 0

    [preview] = __import__("json").loads(capsys.readouterr().out)
    counts = {e["entity"]: e for e in preview["entities"]}
    assert preview["first_load"] is True
    assert (counts["account"]["adopt"], counts["account"]["create"]) == (2, len(customers(p)) - 2)
    assert (counts["account"]["ssm_only"], counts["contact"]["adopt"], counts["product"]["adopt"]) == (1, 1, 1)
    assert sage_dump(p) == sage_before and ssm_state(p) == ssm_before        # both systems, by content
    assert ssm_writes(p) == [] and sync_state(p) == state_before            # nor the sync's own state
    assert p.runtime.checkpoint.snapshot(D) is None                         # the agent has not read for real

    assert adopt(p, "--confirm") == 0
    assert p.run().ok
    update_row(p.databases[D], "F_COMPTET", {"CT_Num": "RUBIS"}, {"CT_Telephone": "04 72 00 00 01"})
    delete_row(p.databases[D], "F_ARTICLE", {"AR_Ref": "COPE01"})
    rep = p.sage(D, "SELECT CO_EMail FROM F_COLLABORATEUR WHERE CO_EMail IS NOT NULL ORDER BY CO_No")[0][0].strip()
    with SsmUserSession(p.simulator.base_url, *p.simulator.user_credentials(rep), email=rep) as session:
        session.create_account("Nouveau prospect saisi dans SSM", postcode="25000")
    capsys.readouterr()
    sage_before, ssm_before, state_before = sage_dump(p), ssm_state(p), sync_state(p)
    p.simulator.reset_calls()

    assert main(["local", "--config", str(p.config_path), "--dry-run", "--dossier", D, "--json"]) == 0

    [preview] = __import__("json").loads(capsys.readouterr().out)
    counts = {e["entity"]: e for e in preview["entities"]}
    assert preview["first_load"] is False
    assert (counts["account"]["update"], counts["account"]["create"], counts["account"]["adopt"]) == (1, 0, 0)
    assert counts["account"]["unchanged"] == len(customers(p)) - 1
    assert (counts["account"]["sage_create"], counts["product"]["delete"]) == (1, 1)
    assert sage_dump(p) == sage_before and ssm_state(p) == ssm_before
    assert ssm_writes(p) == [] and sync_state(p) == state_before
    assert p.runtime.store.last_preview(D)["entities"] == preview["entities"]   # kept for the status page

    checkpoint = p.runtime.checkpoint
    agent_before = (checkpoint.watermarks(D), checkpoint.shadow_counts(D), checkpoint.runs(D, limit=50))
    assert main(["agent", "run-once", "--config", str(p.config_path), "--dry-run"]) == 0
    shown = capsys.readouterr().out
    assert "Ce que l'agent enverrait pour le dossier BIJOU" in shown
    [accounts] = [line for line in shown.splitlines() if line.startswith("Comptes")]
    assert accounts.split()[1:] == [str(len(customers(p))), "0", "1", str(len(customers(p)) - 1), "0", "0"]
    assert (checkpoint.watermarks(D), checkpoint.shadow_counts(D), checkpoint.runs(D, limit=50)) == agent_before
    assert sage_dump(p) == sage_before and ssm_writes(p) == [] and sync_state(p) == state_before

    assert p.run().ok                                                      # and the run does what was shown
    assert p.ssm("accounts", external_id(D, "RUBIS"))["phone"] == "04 72 00 00 01"
    assert p.sage(D, "SELECT COUNT(*) FROM F_COMPTET WHERE CT_Intitule = 'Nouveau prospect saisi dans SSM'")[0][0] == 1


def test_the_status_routes_show_the_preview_in_french_and_take_the_administrators_decisions(make_pipeline):
    import httpx

    made = HandMade(ambiguous=True)
    p = make_pipeline(before_start=made)
    server = p.runtime.start_status_server(port=0)
    with httpx.Client(timeout=30) as client:
        assert client.get(server.url(f"status/dossiers/{D}/preview")).status_code == 401
        missing = client.get(server.url(f"status/dossiers/{D}/preview", with_key=True))
        assert missing.status_code == 404 and "--dry-run" in missing.json()["error"]
        assert main(["local", "--config", str(p.config_path), "--dry-run", "--dossier", D]) == 0

        preview = client.get(server.url(f"status/dossiers/{D}/preview", with_key=True)).json()
        items = {(a["entity"], a["sage_key"]): a for a in preview["adoptions"]}
        counts = {e["entity"]: e for e in preview["entities"]}
        assert (counts["account"]["held"], counts["account"]["adopt"], counts["contact"]["held"]) == (1, 2, 1)
        assert items[("account", "LEFEVRE")]["rule"] == "siret" and items[("account", "LEFEVRE")]["status"] == "unique"
        assert [c["ssm_id"] for c in items[("account", "AMETHYSTE")]["candidates"]] == [made.ids["first"],
                                                                                       made.ids["second"]]
        page = client.get(server.url(f"status/dossiers/{D}/preview/page", with_key=True))
        assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
        assert "Aperçu du premier chargement du dossier BIJOU" in page.text
        assert "ambiguë : en attente de votre choix" in page.text and "L’Écrin d’Émeraude" in page.text
        assert ssm_writes(p) == []

        refused = client.post(server.url(f"status/dossiers/{D}/adoptions", with_key=True), json={"action": "x"})
        assert refused.status_code == 400 and "Demande illisible" in refused.json()["error"]
        confirmed = client.post(server.url(f"status/dossiers/{D}/adoptions", with_key=True), json={"action": "confirm"})
        assert confirmed.json()["message"].startswith("Reprises : 4 fiche(s) reliée(s) ; 1 correspondance(s)")
        assert p.run().ok
        assert p.runtime.store.get_link(D, "account", "AMETHYSTE") is None

        chosen = client.post(server.url(f"status/dossiers/{D}/adoptions", with_key=True),
                             json={"action": "bind", "entity": "account", "key": "AMETHYSTE", "ssm_id": made.ids["first"]})
        assert chosen.status_code == 200 and chosen.json()["replayed"] is True
        taken = client.post(server.url(f"status/dossiers/{D}/adoptions", with_key=True),
                            json={"action": "bind", "entity": "account", "key": "AMETHYSTE", "ssm_id": made.ids["second"]})
        assert taken.status_code == 409 and "déjà relié" in taken.json()["error"]
    account = p.simulator.record("accounts", made.ids["first"])
    assert (account["extId"], account["name"]) == (external_id(D, "AMETHYSTE"), "Galerie Améthyste")
    assert p.run().ok
    assert_never_duplicated(p)
