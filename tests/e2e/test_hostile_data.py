"""A damaged Sage database: every hostile value costs its row or its field, never the dossier.

One demo dossier holds one row of each case (`agent.demo_builder.add_hostile_rows`): text in a
`cbModification` column, lone UTF-16 surrogates, duplicate `CT_Num` and `AR_Ref`, impossible
dates, prices typed as text, a binary phone number, a text key in the integer `CT_No`, malformed
optional values. The whole pipeline runs: the good records are exact in SSM, each bad row is an
open incident naming it, and once fixed in Sage the row syncs and its incident closes.
"""
from __future__ import annotations

from decimal import Decimal

from agent.demo_builder import add_hostile_rows, delete_row, update_row
from shared.sync.incidents import READ, VALUES_LEFT_OUT

from tests.e2e.conftest import decimal

D = "BIJOU"


def text(value):
    value = None if value is None else str(value).strip()
    return value or None


def open_incidents(p) -> dict[tuple[str, str, str], str]:
    [status] = [d for d in p.runtime.status() if d.id == D]
    return {(i.entity, i.key, i.operation): i.message for i in status.incidents if i.state.value == "open"}


def assert_accounts_exact(p, *, except_keys: set[str], without: dict[str, str]) -> None:
    """Every client or prospect of Sage is in SSM with Sage's values (`without`: key → the one SSM
    field the record was synced without)."""
    accounts = p.live("accounts")
    for key in except_keys:
        assert f"{D}:{key}" not in accounts
    rows = p.sage(D, f"SELECT * FROM F_COMPTET WHERE CT_Type = 0 AND CT_Num = TRIM(CT_Num)"
                     f" AND CT_Num NOT IN ({', '.join('?' * len(except_keys))})", tuple(except_keys))
    assert len(rows) == len([key for key in accounts if key.startswith(f"{D}:")])
    for row in rows:
        account = accounts[f"{D}:{row['CT_Num']}"]
        expected = {"name": text(row["CT_Intitule"]), "city": text(row["CT_Ville"]),
                    "phone": text(row["CT_Telephone"]), "email": text(row["CT_EMail"]),
                    "website": text(row["CT_Site"]), "vatNumber": text(row["CT_Identifiant"])}
        if row["CT_Num"] in without:
            expected[without[row["CT_Num"]]] = None
        assert {name: account.get(name) for name in expected} == expected, row["CT_Num"]


def test_hostile_rows_cost_their_row_or_field_and_sync_once_fixed(make_pipeline):
    p = make_pipeline()
    database = p.databases[D]
    bad = add_hostile_rows(database)

    summary = p.run()

    # no dossier-wide failure: the agent's run and the bus went through
    assert summary.ok, summary.render()
    incidents = open_incidents(p)
    left_out = {key for (entity, key, operation) in incidents if operation == VALUES_LEFT_OUT}
    refused = {(entity, key) for (entity, key, operation) in incidents if operation == READ}
    duplicate_account = f"{bad.duplicate_account} (cbMarq {bad.duplicate_account_marq})"
    duplicate_product = f"{bad.duplicate_product} (cbMarq {bad.duplicate_product_marq})"
    bad_key = f"(cbMarq {bad.bad_key_marq})"
    assert refused == {("account", bad.unreadable_name), ("account", duplicate_account), ("contact", bad_key),
                       ("product", bad.ambiguous_price), ("product", duplicate_product),
                       ("invoice", bad.zero_date)}
    assert left_out == {bad.modified_text, bad.binary_phone, bad.bad_email, bad.long_website, bad.unreadable_phone,
                        bad.impossible_date}
    assert len(incidents) == len(left_out) + len(refused)
    # each incident names the row and the value, in French
    assert "CT_Intitule contient un caractère illisible" in incidents[("account", bad.unreadable_name, READ)]
    assert "F_COMPTET contient 2 fiches de clé « " + bad.duplicate_account + " »" in incidents[("account", duplicate_account, READ)]
    assert "« Sans-Numéro »" in incidents[("contact", bad_key, READ)] and \
        "CT_No « A12 » n'est pas un nombre entier" in incidents[("contact", bad_key, READ)]
    assert "AR_PrixVen « 1 250,00 » n'est pas un nombre" in incidents[("product", bad.ambiguous_price, READ)]
    assert "DO_Date « 0000-00-00 00:00:00 » n'est pas une date valide" in incidents[("invoice", bad.zero_date, READ)]
    assert "sans CT_Telephone : CT_Telephone contient une valeur binaire (X'0381251940')" in \
        incidents[("account", bad.binary_phone, VALUES_LEFT_OUT)]
    assert "« contact(at)bijou.fr » n'est pas une adresse e-mail valide" in \
        incidents[("account", bad.bad_email, VALUES_LEFT_OUT)]
    assert "cbModification « pas une date » est illisible" in incidents[("account", bad.modified_text, VALUES_LEFT_OUT)]
    assert "sans DO_Date : DO_Date « 2026-02-30" in incidents[("order", bad.impossible_date, VALUES_LEFT_OUT)]

    # every good record is exact in SSM; the rows synced in part have everything but the bad value
    assert_accounts_exact(p, except_keys={bad.unreadable_name},
                          without={bad.binary_phone: "phone", bad.bad_email: "email", bad.long_website: "website"})
    assert p.ssm("accounts", f"{D}:{bad.duplicate_account}")["name"] != "Doublon saisi à la main"
    products = p.live("products")
    assert f"{D}:{bad.ambiguous_price}" not in products
    assert decimal(products[f"{D}:{bad.french_price}"]["price"]) == Decimal("12.5")   # never 12
    assert products[f"{D}:{bad.duplicate_product}"]["description"] != "Doublon d'article"
    for row in p.sage(D, "SELECT * FROM F_ARTICLE WHERE typeof(AR_PrixVen) <> 'text' AND AR_Ref = TRIM(AR_Ref)"):
        assert decimal(products[f"{D}:{row['AR_Ref']}"]["price"]) == decimal(row["AR_PrixVen"]), row["AR_Ref"]
    contacts = p.live("contacts")
    assert contacts[f"{D}:{bad.unreadable_phone}"]["phone1"] is None
    good_contacts = p.sage(D, "SELECT c.* FROM F_CONTACTT c JOIN F_COMPTET t ON t.CT_Num = c.CT_Num"
                              " WHERE t.CT_Type = 0 AND typeof(c.CT_No) = 'integer' AND c.CT_No <> ?",
                           (int(bad.unreadable_phone),))
    assert len(contacts) == len(good_contacts) + 1
    for row in good_contacts:
        contact = contacts[f"{D}:{row['CT_No']}"]
        assert (contact["lastName"], contact["phone1"], contact["email"]) == \
            (text(row["CT_Nom"]), text(row["CT_Telephone"]), text(row["CT_EMail"]))
    orders = p.live("salesorders")
    assert orders[f"{D}:{bad.impossible_date}"].get("closedDate") is None
    assert f"{D}:{bad.zero_date}" not in orders and f"{D}:{bad.zero_date}" not in p.live("sales")

    # a second run with nothing fixed changes nothing and keeps every incident open; an e-mail
    # spoilt in a record already in SSM is left out too: SSM keeps the one it had
    spoilt = p.sage(D, "SELECT CT_Num, CT_EMail FROM F_COMPTET WHERE CT_Type = 0 AND CT_Num = ?",
                    (bad.duplicate_account,))[0]
    update_row(database, "F_COMPTET", {"CT_Num": spoilt["CT_Num"]}, {"CT_EMail": "compta@@bijou"})
    assert p.run().ok
    assert open_incidents(p).keys() == incidents.keys() | {("account", spoilt["CT_Num"], VALUES_LEFT_OUT)}
    assert p.ssm("accounts", f"{D}:{spoilt['CT_Num']}")["email"] == spoilt["CT_EMail"]
    update_row(database, "F_COMPTET", {"CT_Num": spoilt["CT_Num"]}, {"CT_EMail": "compta@dupre.fr"})

    # the administrator fixes each row in Sage
    update_row(database, "F_COMPTET", {"CT_Num": bad.modified_text}, {"CT_Ville": "Besançon"})
    update_row(database, "F_COMPTET", {"CT_Num": bad.unreadable_name}, {"CT_Intitule": "Bijouterie lisible"})
    update_row(database, "F_COMPTET", {"CT_Num": bad.binary_phone}, {"CT_Telephone": "03 81 25 19 40"})
    update_row(database, "F_COMPTET", {"CT_Num": bad.bad_email}, {"CT_EMail": "contact@rubis.fr"})
    update_row(database, "F_COMPTET", {"CT_Num": bad.long_website}, {"CT_Site": "www.coeur.fr"})
    delete_row(database, "F_COMPTET", {"cbMarq": bad.duplicate_account_marq})
    update_row(database, "F_CONTACTT", {"cbMarq": bad.bad_key_marq}, {"CT_No": 990500})
    update_row(database, "F_CONTACTT", {"CT_No": int(bad.unreadable_phone)}, {"CT_Telephone": "03 81 00 00 01"})
    update_row(database, "F_ARTICLE", {"AR_Ref": bad.ambiguous_price}, {"AR_PrixVen": Decimal("1250")})
    delete_row(database, "F_ARTICLE", {"cbMarq": bad.duplicate_product_marq})
    piece = bad.impossible_date.split(":")[1]
    update_row(database, "F_DOCENTETE", {"DO_Domaine": 0, "DO_Type": 1, "DO_Piece": piece}, {"DO_Date": "2024-05-02"})
    invoice = bad.zero_date.split(":")[1]
    update_row(database, "F_DOCENTETE", {"DO_Domaine": 0, "DO_Piece": invoice}, {"DO_Date": "2024-05-03"})

    fixed = p.run()

    assert fixed.ok, fixed.render()
    assert open_incidents(p) == {}
    assert p.ssm("accounts", f"{D}:{spoilt['CT_Num']}")["email"] == "compta@dupre.fr"
    assert_accounts_exact(p, except_keys=set(), without={})
    assert decimal(p.ssm("products", f"{D}:{bad.ambiguous_price}")["price"]) == Decimal("1250")
    assert p.ssm("contacts", f"{D}:990500")["lastName"] == "Sans-Numéro"
    assert p.ssm("contacts", f"{D}:{bad.unreadable_phone}")["phone1"] == "03 81 00 00 01"
    assert p.ssm("salesorders", f"{D}:{bad.impossible_date}")["closedDate"][:10] == "2024-05-02"
    assert p.ssm("salesorders", f"{D}:{bad.zero_date}")["closedDate"][:10] == "2024-05-03"
    # the rows known by their cbMarq only ever were incidents: SSM never heard of them
    assert not [call for call in p.simulator.calls if "cbMarq" in call.path or "cbMarq" in str(call.query)
                or "cbMarq" in str(call.body)]
