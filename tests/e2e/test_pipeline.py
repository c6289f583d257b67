"""Sage → agent → local bus → registered function handlers → SSM simulator, asserted on both sides."""
from __future__ import annotations

from agent.demo_builder import delete_row, update_row
from local.simulator.user import SsmUserSession
from decimal import Decimal

from shared.messages import CATALOGUE
from tests.e2e.conftest import decimal

D = "BIJOU"


def text(value):
    if value is None:
        return None
    value = str(value).strip()
    return value or None


def only_with(records: list[dict], **match) -> dict:
    found = [r for r in records if not r.get("deleted") and all(r.get(k) == v for k, v in match.items())]
    assert len(found) == 1, f"{len(found)} records match {match}"
    return found[0]


def document_ext_id(doc) -> str:
    """Orders are keyed by type and piece, invoices (6 and 7) by `F` and piece."""
    family = "F" if doc["DO_Type"] in (6, 7) else doc["DO_Type"]
    return f"{D}:{family}:{doc['DO_Piece']}"


def test_first_sync_brings_every_entity_with_its_fields_accents_and_decimals(make_pipeline):
    p = make_pipeline()

    summary = p.run()

    assert summary.ok, summary.render()
    assert summary.open_incidents == 0

    users = p.live("users")
    reps = p.sage(D, "SELECT * FROM F_COLLABORATEUR")
    assert reps
    for rep in reps:
        user = users[f"{D}:{rep['CO_No']}"]
        assert (user["name"], user["lastName"], user["email"]) == \
            (text(rep["CO_Prenom"]), text(rep["CO_Nom"]), text(rep["CO_EMail"]))

    accounts = p.live("accounts")
    tiers = p.sage(D, "SELECT * FROM F_COMPTET WHERE CT_Type = 0")
    assert len([e for e in accounts if e.startswith(f"{D}:")]) == len(tiers)
    for row in tiers:
        account = accounts[f"{D}:{row['CT_Num']}"]
        assert account["name"] == text(row["CT_Intitule"])
        assert (account["address1"], account["postcode"], account["city"]) == \
            (text(row["CT_Adresse"]), text(row["CT_CodePostal"]), text(row["CT_Ville"]))
        assert (account["phone"], account["email"], account["vatNumber"]) == \
            (text(row["CT_Telephone"]), text(row["CT_EMail"]), text(row["CT_Identifiant"]))
        prospect = row["CT_Prospect"] == 1
        assert account["typeId"]["value"] == ("Prospect" if prospect else "Client")
        assert account["readOnly"] is (not prospect)
    assert any(ch in a["name"] for a in accounts.values() for ch in "«€éè&"), "the demo has accented names"

    contacts = p.live("contacts")
    people = p.sage(D, "SELECT c.*, t.CT_Intitule FROM F_CONTACTT c JOIN F_COMPTET t ON t.CT_Num = c.CT_Num"
                       " WHERE t.CT_Type = 0")
    assert len(contacts) == len(people)
    for row in people:
        contact = contacts[f"{D}:{row['CT_No']}"]
        assert (contact["firstName"], contact["lastName"], contact["email"]) == \
            (text(row["CT_Prenom"]), text(row["CT_Nom"]), text(row["CT_EMail"]))
        assert (contact["phone1"], contact["phone2"]) == (text(row["CT_Telephone"]), text(row["CT_TelPortable"]))
        assert contact["accountId"]["value"] == text(row["CT_Intitule"])

    for row in p.sage(D, "SELECT * FROM F_FAMILLE WHERE FA_Type = 0"):
        family = only_with(p.simulator.records("productFamilies"), descriptionFR=text(row["FA_Intitule"]))
        assert family["descriptionEN"] == text(row["FA_Intitule"])

    products = p.live("products")
    articles = p.sage(D, "SELECT a.*, f.FA_Intitule FROM F_ARTICLE a LEFT JOIN F_FAMILLE f"
                         " ON f.FA_CodeFamille = a.FA_CodeFamille")
    assert len(products) == len(articles)
    for row in articles:
        product = products[f"{D}:{row['AR_Ref']}"]
        assert (product["model"], product["description"]) == (row["AR_Ref"], text(row["AR_Design"]))
        assert decimal(product["price"]) == decimal(row["AR_PrixVen"])
        assert decimal(product["cost"]) == decimal(row["AR_PrixAch"])
        assert product["notAvailable"] is bool(row["AR_Sommeil"])
        assert product["familyId"]["value"] == text(row["FA_Intitule"])

    orders = p.live("salesorders")
    lines = p.live("salesordersLines")
    documents = p.sage(D, "SELECT * FROM F_DOCENTETE WHERE DO_Domaine = 0 AND DO_Type IN (1, 6, 7)")
    assert {e for e in orders if e.startswith(f"{D}:")} == {document_ext_id(d) for d in documents}
    for doc in documents:
        ext = document_ext_id(doc)
        order = orders[ext]
        assert order["reference"].split(" · ")[0] == doc["DO_Piece"] and order["readOnly"] is True
        assert order["closedDate"][:10] == str(doc["DO_Date"])[:10]
        assert decimal(order["total"]) == decimal(doc["DO_TotalHT"])
        assert order["statusId"]["value"] == ("Commande" if doc["DO_Type"] == 1 else "Facture")
        for line in p.sage(D, "SELECT * FROM F_DOCLIGNE WHERE DO_Domaine = 0 AND DO_Type = ? AND DO_Piece = ?",
                           (doc["DO_Type"], doc["DO_Piece"])):
            synced = lines[f"{ext}/{line['DL_Ligne']}"]
            assert synced["salesorderId"]["id"] == order["id"]
            quantity, unit_price = decimal(line["DL_Qte"]), decimal(line["DL_PrixUnitaire"])
            if quantity == quantity.to_integral_value():
                assert (decimal(synced["quantity"]), decimal(synced["price"])) == (quantity, unit_price)
                assert synced["description"] == text(line["DL_Design"])
            else:                      # SSM's quantity is whole: 1 at the gross amount, the real one in words
                assert synced["quantity"] == 1
                assert decimal(synced["price"]) == (quantity * unit_price).quantize(Decimal("0.0001"))
                assert synced["description"].startswith(text(line["DL_Design"]) or "")
            assert decimal(synced["total"]) == decimal(line["DL_MontantHT"])
            assert decimal(synced["discount1"] or 0) == decimal(line["DL_Remise01REM_Valeur"] or 0)
    assert any(decimal(line["discount1"] or 0) % 1 for line in lines.values()), "fractional discounts travel"
    invoices = p.sage(D, "SELECT * FROM F_DOCENTETE WHERE DO_Domaine = 0 AND DO_Type IN (6, 7)")
    sales = p.live("sales")
    for doc in invoices:
        assert decimal(sales[document_ext_id(doc)]["total"]) == decimal(doc["DO_TotalHT"])


def test_a_second_run_without_any_change_only_reads_ssms_changes(make_pipeline):
    p = make_pipeline()
    assert p.run().ok
    p.simulator.reset_calls()

    summary = p.run()

    assert summary.ok
    calls = [(c.method, c.resource, c.query.get("where", "")) for c in p.simulator.calls if c.resource != "login"]
    assert calls and all(method == "GET" and resource in ("accounts", "contacts", "salesorders", "salesordersLines")
                         and where.startswith("dateCreated>") for method, resource, where in calls), calls
    # the SSM → Sage pass reading what changed, nothing else


def test_a_sage_edit_sends_one_partial_put_with_only_the_changed_fields(make_pipeline):
    p = make_pipeline()
    assert p.run().ok
    client = p.sage(D, "SELECT CT_Num FROM F_COMPTET WHERE CT_Type = 0 AND CT_Prospect = 0 ORDER BY CT_Num")[0][0]
    account_id = p.ssm_id(D, "account", client)
    before = p.simulator.record("accounts", account_id)
    p.simulator.reset_calls()

    update_row(p.databases[D], "F_COMPTET", {"CT_Num": client},
               {"CT_Telephone": "03 81 00 11 22", "CT_Ville": "Besançon Cédex"})
    assert p.run().ok

    writes = [c for c in p.simulator.calls if c.method in ("POST", "PUT", "DELETE") and c.resource != "login"]
    assert [(c.method, c.resource, c.id) for c in writes] == [("PUT", "accounts", account_id)]
    assert writes[0].body == {"phone": "03 81 00 11 22", "city": "Besançon Cédex"}
    after = p.simulator.record("accounts", account_id)
    assert (after["phone"], after["city"]) == ("03 81 00 11 22", "Besançon Cédex")
    unchanged = {k: v for k, v in before.items() if k not in ("phone", "city", "dateUpdated", "salesRepIdUpdated")}
    assert {k: after[k] for k in unchanged} == unchanged


def test_a_sage_deletion_soft_deletes_in_ssm(make_pipeline):
    p = make_pipeline()
    assert p.run().ok
    contact = p.sage(D, "SELECT CT_No FROM F_CONTACTT ORDER BY CT_No")[0][0]
    contact_id = p.ssm_id(D, "contact", str(contact))
    p.simulator.reset_calls()

    delete_row(p.databases[D], "F_CONTACTT", {"CT_No": contact})
    assert p.run().ok

    record = p.simulator.record("contacts", contact_id)
    assert record["deleted"] is True and record["dateDeleted"]
    assert p.simulator.call_count("DELETE", "contacts") == 1
    assert p.simulator.call_count(writes_only=True) == 1
    assert f"{D}:{contact}" not in p.live("contacts")


def test_an_ssm_only_field_set_by_a_user_survives_a_sage_update(make_pipeline):
    p = make_pipeline()
    assert p.run().ok
    prospect = p.sage(D, "SELECT CT_Num FROM F_COMPTET WHERE CT_Type = 0 AND CT_Prospect = 1 ORDER BY CT_Num")[0][0]
    account_id = p.ssm_id(D, "account", prospect)
    email = "vendeuse@demo.example"
    with SsmUserSession(p.simulator.base_url, *p.simulator.user_credentials(email), email=email) as rep:
        rep.edit_account(account_id, Z_Segment="Grands comptes", comment="Rappeler après le salon")

    update_row(p.databases[D], "F_COMPTET", {"CT_Num": prospect}, {"CT_Telephone": "01 42 60 30 70"})
    assert p.run().ok

    record = p.simulator.record("accounts", account_id)
    assert record["phone"] == "01 42 60 30 70"
    assert (record["Z_Segment"], record["comment"]) == ("Grands comptes", "Rappeler après le salon")


def test_two_dossiers_sync_side_by_side_with_their_own_ext_ids(make_pipeline):
    p = make_pipeline(companies=("BIJOU", "ATELIER"))

    summary = p.run()

    assert summary.ok
    accounts = p.live("accounts")
    for dossier in ("BIJOU", "ATELIER"):
        tiers = p.sage(dossier, "SELECT CT_Num, CT_Intitule FROM F_COMPTET WHERE CT_Type = 0")
        for num, name in tiers:
            assert accounts[f"{dossier}:{num}"]["name"] == text(name)
    assert {s.id for s in summary.dossiers} == {"BIJOU", "ATELIER"}


def test_the_runtime_serves_status_and_repeats_its_cycle(make_pipeline):
    import io
    import json
    import threading
    import urllib.request

    p = make_pipeline(environ={"SSMCONN__AGENT__INTERVAL_S": "0.2"})
    out = io.StringIO()

    p.runtime.serve(threading.Event(), out=out, cycles=2)

    printed = out.getvalue()
    cycle_title = CATALOGUE["local.cycle.title"].split("{")[0]           # "Passage du "
    assert printed.count(cycle_title) == 2 and "Page d'état de synchronisation : http://127.0.0.1:" in printed
    server = p.runtime.status_server
    with urllib.request.urlopen(server.url("status", with_key=True), timeout=10) as answer:
        report = json.loads(answer.read().decode("utf-8"))
    assert [d["id"] for d in report["dossiers"]] == [D]
    assert report["dossiers"][0]["health"] == "ok"
    assert len([r for r in report["dossiers"][0]["runs"] if r["side"] == "cloud"]) == 2
