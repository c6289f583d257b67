"""Sage rows whose parent Sage does not have: a contact whose account (F_COMPTET) is missing, order
and invoice lines whose document (F_DOCENTETE) is missing. The whole pipeline runs: each is an
open incident naming it in the run that meets it, every other record is exact in SSM, and once
fixed in Sage (the account created, the document created, the line deleted) the incidents close
and the contact and the order are in SSM."""
from __future__ import annotations

from agent.demo_builder import delete_row, insert_row
from shared.sync.incidents import READ

from tests.e2e.conftest import decimal
from tests.e2e.test_hostile_data import open_incidents, text

D = "BIJOU"
ACCOUNT = "ZZABSENT"
ORDER = "BC99999"
INVOICE = "FA99999"


def copy_of(p, table: str, where: str, **changes) -> dict:
    row = dict(p.sage(D, f"SELECT * FROM {table} WHERE {where} ORDER BY cbMarq LIMIT 1")[0])
    return {**{name: value for name, value in row.items() if not name.startswith("cb")}, **changes}


def assert_contacts_exact(p, *, absent: str) -> None:
    contacts = p.live("contacts")
    people = p.sage(D, "SELECT c.*, t.CT_Intitule FROM F_CONTACTT c JOIN F_COMPTET t ON t.CT_Num = c.CT_Num"
                       " WHERE t.CT_Type = 0")
    assert f"{D}:{absent}" not in contacts
    assert len(contacts) == len(people)
    for row in people:
        contact = contacts[f"{D}:{row['CT_No']}"]
        assert (contact["lastName"], contact["email"], contact["accountId"]["value"]) == \
            (text(row["CT_Nom"]), text(row["CT_EMail"]), text(row["CT_Intitule"]))


def assert_documents_exact(p) -> None:
    """Every order and invoice of Sage is in SSM with its total and its lines, and no other."""
    orders = {ext: order for ext, order in p.live("salesorders").items() if ext.startswith(f"{D}:")}
    lines = p.live("salesordersLines")
    documents = p.sage(D, "SELECT * FROM F_DOCENTETE WHERE DO_Domaine = 0 AND DO_Type IN (1, 6, 7)")
    expected = {f"{D}:{'F' if d['DO_Type'] in (6, 7) else d['DO_Type']}:{d['DO_Piece']}": d for d in documents}
    assert orders.keys() == expected.keys()
    for ext, doc in expected.items():
        assert decimal(orders[ext]["total"]) == decimal(doc["DO_TotalHT"]), ext
        sage_lines = p.sage(D, "SELECT DL_Ligne, DL_MontantHT FROM F_DOCLIGNE WHERE DO_Domaine = 0 AND DO_Type = ?"
                               " AND DO_Piece = ?", (doc["DO_Type"], doc["DO_Piece"]))
        assert {f"{ext}/{line['DL_Ligne']}" for line in sage_lines} == {key for key in lines if key.startswith(f"{ext}/")}
        for line in sage_lines:
            assert decimal(lines[f"{ext}/{line['DL_Ligne']}"]["total"]) == decimal(line["DL_MontantHT"])


def test_orphan_contacts_and_lines_are_named_incidents_until_fixed_in_sage(make_pipeline):
    p = make_pipeline()
    database = p.databases[D]
    number = p.sage(D, "SELECT MAX(CT_No) + 1 AS n FROM F_CONTACTT")[0]["n"]
    top = p.sage(D, "SELECT MAX(DL_No) AS n FROM F_DOCLIGNE")[0]["n"]
    insert_row(database, "F_CONTACTT", copy_of(p, "F_CONTACTT", "CT_No = 1", CT_No=number, CT_Num=ACCOUNT,
                                               CT_Nom="Orphelin", CT_Prenom="Paul"))
    address = p.sage(D, "SELECT MAX(LI_No) + 1 AS n FROM F_LIVRAISON")[0]["n"]
    insert_row(database, "F_LIVRAISON", copy_of(p, "F_LIVRAISON", "LI_No = 1", LI_No=address, CT_Num=ACCOUNT,
                                                LI_Intitule="Entrepôt", LI_Ville="Nantes"))
    order_line = copy_of(p, "F_DOCLIGNE", "DO_Domaine = 0 AND DO_Type = 1", DO_Piece=ORDER, DL_No=top + 1,
                         DL_Ligne=1000)
    insert_row(database, "F_DOCLIGNE", order_line)
    insert_row(database, "F_DOCLIGNE", copy_of(p, "F_DOCLIGNE", "DO_Domaine = 0 AND DO_Type = 6", DO_Piece=INVOICE,
                                               DL_No=top + 2, DL_Ligne=1000))

    first = p.run()

    assert first.ok, first.render()
    incidents = open_incidents(p)
    assert incidents.keys() == {("contact", str(number), READ), ("order", f"1:{ORDER}", READ),
                                ("invoice", f"F:{INVOICE}", READ), ("delivery_address", str(address), READ)}
    assert (f"l'adresse de livraison « {address} » (LI_Intitule « Entrepôt », LI_Ville « Nantes ») : son compte "
            f"CT_Num « {ACCOUNT} » n'existe pas dans Sage") in incidents[("delivery_address", str(address), READ)]
    assert p.simulator.records("accountAddresses")
    assert all(a.get("description") != "Entrepôt" for a in p.simulator.records("accountAddresses"))
    assert (f"le contact « {number} » (CT_Nom « Orphelin », CT_Prenom « Paul ») : son compte CT_Num « {ACCOUNT} » "
            "n'existe pas dans Sage (F_COMPTET)") in incidents[("contact", str(number), READ)]
    assert (f"F_DOCLIGNE contient 1 ligne(s) de la commande « 1:{ORDER} » (DL_No « {top + 1} »"
            in incidents[("order", f"1:{ORDER}", READ)])
    assert (f"(F_DOCENTETE, DO_Type « 1 », DO_Piece « {ORDER} »)" in incidents[("order", f"1:{ORDER}", READ)])
    assert f"DL_No « {top + 2} »" in incidents[("invoice", f"F:{INVOICE}", READ)]
    assert_contacts_exact(p, absent=str(number))
    assert_documents_exact(p)
    assert f"{D}:F:{INVOICE}" not in p.live("sales")

    again = p.run()                                   # nothing fixed: nothing sent, the incidents stay open
    assert again.ok and open_incidents(p) == incidents

    # the administrator creates the account and the order, and deletes the invoice line
    insert_row(database, "F_COMPTET", copy_of(p, "F_COMPTET", "CT_Num = 'ECRIN'", CT_Num=ACCOUNT,
                                              CT_Intitule="Compte créé ensuite"))
    insert_row(database, "F_DOCENTETE", copy_of(p, "F_DOCENTETE", f"DO_Domaine = 0 AND DO_Type = 1",
                                                DO_Piece=ORDER, DO_TotalHT=order_line["DL_MontantHT"],
                                                DO_TotalTTC=order_line["DL_MontantTTC"]))
    delete_row(database, "F_DOCLIGNE", {"DL_No": top + 2})

    fixed = p.run()

    assert fixed.ok, fixed.render()
    assert open_incidents(p) == {}
    contact = p.ssm("contacts", f"{D}:{number}")
    assert (contact["lastName"], contact["accountId"]["value"]) == ("Orphelin", "Compte créé ensuite")
    link = p.runtime.store.get_link(D, "delivery_address", str(address))
    assert link is not None
    synced = next(a for a in p.simulator.records("accountAddresses") if a["id"] == link.ssm_id)
    assert (synced["description"], synced["city"]) == ("Entrepôt", "Nantes")
    assert p.ssm("accounts", f"{D}:{ACCOUNT}")["name"] == "Compte créé ensuite"
    assert_contacts_exact(p, absent="")
    assert_documents_exact(p)
    assert f"{D}:1:{ORDER}" in p.live("salesorders") and f"{D}:F:{INVOICE}" not in p.live("salesorders")
