"""The Sage 100 reader, read through pyodbc and the SQLite ODBC driver from a demo BIJOU dossier."""
from __future__ import annotations

import datetime as dt
import json
from decimal import Decimal

import pytest

from agent import demo_builder as sage
from agent.demo_builder import (BAD_ACCOUNT_NO_NAME, BAD_ACCOUNT_UNKNOWN_REP, BAD_CONTACT_INVALID_EMAIL,
                                BAD_CONTACT_LONG_EMAIL, BAD_UNKNOWN_REP_NO, build_demo_dossier)
from agent.canonical import canonical_json, content_hash
from agent.odbc import column_exists, column_widths, connect, redact, sqlite_connection_string, table_exists
from agent.sage100.reader import Sage100Reader, SourceRow
from agent.sage100.schema import TABLE_NAMES, create_schema, ddl
from shared.models import Entity, parse_record
from shared.rules import sync_order

# After every row of the demo data (2023-2024): the time of the changes the tests make.
T = dt.datetime(2025, 6, 2, 9, 0)


def by_key(rows) -> dict[str, SourceRow]:
    rows = list(rows)
    keyed = {row.key: row for row in rows}
    assert len(keyed) == len(rows), "a key came out twice"
    return keyed


def scalar(connection, query: str, *parameters):
    cursor = connection.cursor()
    try:
        return cursor.execute(query, *parameters).fetchone()[0]
    finally:
        cursor.close()
        connection.rollback()


def column(connection, query: str, *parameters) -> list:
    cursor = connection.cursor()
    try:
        return [row[0] for row in cursor.execute(query, *parameters).fetchall()]
    finally:
        cursor.close()
        connection.rollback()


# --- ODBC plumbing ----------------------------------------------------------------------------------

def test_widths_and_catalog_come_from_the_database(dossier, open_sage):
    connection = open_sage(dossier)
    widths = column_widths(connection, "F_COMPTET")
    assert widths["CT_Num"] == 17 and widths["CT_Intitule"] == 69 and widths["CT_CodePostal"] == 9
    assert "CT_Taux02" not in widths  # numeric, not text
    assert table_exists(connection, "F_DOCLIGNE") and not table_exists(connection, "F_NOPE")
    assert column_exists(connection, "F_COMPTET", "cbModification")
    assert not column_exists(connection, "F_COMPTET", "CT_Nope")


def test_widths_follow_an_older_sage_version(tmp_path, open_sage):
    connection = open_sage(tmp_path / "old.db")
    cursor = connection.cursor()
    cursor.execute("CREATE TABLE F_COMPTET (cbMarq INTEGER PRIMARY KEY, CT_Num varchar(17), CT_Intitule varchar(35))")
    connection.commit()
    assert column_widths(connection, "F_COMPTET")["CT_Intitule"] == 35


def test_redact_hides_passwords():
    text = "Driver={ODBC Driver 18 for SQL Server};Server=sage01;UID=sync;PWD={p@ss;word};Encrypt=yes"
    shown = redact(text)
    assert "p@ss" not in shown and "word" not in shown
    assert shown.startswith("Driver={ODBC Driver 18 for SQL Server};Server=sage01;UID=sync;PWD=***")
    assert redact("Password=hunter2;Database=BIJOU") == "Password=***;Database=BIJOU"


def test_connect_failure_names_no_password(tmp_path):
    from shared.errors import ConnectorError
    with pytest.raises(ConnectorError) as raised:
        connect("Driver={No Such Driver};Server=x;PWD=topsecret", login_timeout=2)
    assert "topsecret" not in str(raised.value) and "topsecret" not in (raised.value.detail or "")


def test_text_decoding_is_chosen_per_connection(dossier, open_sage):
    query = "SELECT CT_Intitule FROM F_COMPTET WHERE CT_Num = 'ECRIN'"
    assert scalar(open_sage(dossier), query) == "L’Écrin d’Émeraude"  # the driver's own decoding
    forced = connect(sqlite_connection_string(dossier), text_encoding="cp1252")
    try:  # the SQLite driver hands out UTF-8: read as CP1252 it shows the setting reaches the driver
        assert scalar(forced, query) == "L’Écrin d’Émeraude".encode("utf-8").decode("cp1252")
    finally:
        forced.close()


def test_create_schema_through_pyodbc_emulates_sage_triggers(tmp_path, open_sage):
    connection = open_sage(tmp_path / "empty.db")
    create_schema(connection.cursor())
    assert all(table_exists(connection, name) for name in TABLE_NAMES)
    cursor = connection.cursor()
    cursor.execute("INSERT INTO EMU_SERVER (ES_Clock) VALUES ('2025-01-02 03:04:05.000')")
    cursor.execute("INSERT INTO F_COLLABORATEUR (CO_No, CO_Nom) VALUES (1, 'MARTIN')")
    connection.commit()
    assert scalar(connection, "SELECT cbModification FROM F_COLLABORATEUR") == dt.datetime(2025, 1, 2, 3, 4, 5)
    assert scalar(connection, "SELECT cbCreation FROM F_COLLABORATEUR") == dt.datetime(2025, 1, 2, 3, 4, 5)
    cursor.execute("UPDATE EMU_SERVER SET ES_Clock = '2025-02-03 04:05:06.789'")
    cursor.execute("UPDATE F_COLLABORATEUR SET CO_Prenom = 'Sophie'")
    connection.commit()
    assert scalar(connection, "SELECT cbModification FROM F_COLLABORATEUR") == dt.datetime(2025, 2, 3, 4, 5, 6, 789000)
    cursor.execute("UPDATE F_COLLABORATEUR SET cbModification = '2020-01-01 00:00:00.000'")
    connection.commit()
    assert scalar(connection, "SELECT cbModification FROM F_COLLABORATEUR") == dt.datetime(2020, 1, 1)
    with pytest.raises(Exception):
        cursor.execute("INSERT INTO F_COLLABORATEUR (CO_No, CO_Nom) VALUES (1, 'DOUBLON')")


def test_sql_server_ddl_uses_identity_and_sage_types():
    statements = "\n".join(ddl("mssql"))
    assert "cbMarq int IDENTITY(1,1)" in statements and "AUTOINCREMENT" not in statements
    assert "strftime" not in statements and "EMU_SERVER" not in statements
    assert "CT_Intitule varchar(69) NULL" in statements and "DO_TotalHT numeric(24,6)" in statements
    assert "CREATE TRIGGER TG_CBUPD_F_COMPTET ON F_COMPTET AFTER UPDATE" in statements
    with pytest.raises(ValueError):
        ddl("oracle")


# --- every entity ----------------------------------------------------------------------------------

def test_entities_in_dependency_order(reader):
    assert reader.entities() == tuple(sync_order())


def test_users_are_every_collaborateur(reader):
    users = by_key(reader.changed(Entity.USER, None))
    assert set(users) == {"1", "2", "3", "4", "5"}
    etienne = users["2"].record
    assert (etienne["first_name"], etienne["last_name"], etienne["email"]) == ("Étienne", "LEFÈVRE",
                                                                               "etienne.lefevre@bijou.fr")
    assert etienne["is_sales_rep"] is True and etienne["dormant"] is False
    assert users["4"].record["is_sales_rep"] is False  # the buyer
    assert users["5"].record["dormant"] is True
    assert all(row.error is None and row.marq > 0 and row.modified for row in users.values())


def test_accounts_are_customers_with_their_kind_and_exact_amounts(reader, dossier, open_sage):
    accounts = by_key(reader.changed(Entity.ACCOUNT, None))
    connection = open_sage(dossier)
    assert set(accounts) == set(column(connection, "SELECT CT_Num FROM F_COMPTET WHERE CT_Type = 0"))
    assert {"FONDERIE", "PACIFIQUE", "TRANSPORT", "BERNARD"}.isdisjoint(accounts)
    ecrin = accounts["ECRIN"].record
    assert ecrin["name"] == "L’Écrin d’Émeraude" and ecrin["kind"] == "client"
    assert ecrin["credit_limit"] == "25000.500000" and ecrin["discount_rate"] == "0.000000"
    assert ecrin["region"] == "Île-de-France" and ecrin["fax"] is None
    assert accounts["RUBIS"].record["name"] == "Joaillerie «Le Rubis»"
    assert accounts["PERLES"].record["name"] == "Perles & Œuvres d’Art"
    assert accounts["PRESTIGE"].record["name"] == "Cadeaux «Prestige» 100 €"
    assert accounts["DUPRE"].record["discount_rate"] == "3.750000"
    assert accounts["SAPHIR"].record["kind"] == "prospect"
    comptoir = accounts["COMPTOIR"].record
    assert comptoir["dormant"] is True and comptoir["name"] == "Comptoir de l’Or – Marseille"
    reps = {row.key: scalar(connection, "SELECT CO_No FROM F_COMPTET WHERE CT_Num = ?", row.key)
            for row in accounts.values() if row.record}
    for key, rep in reps.items():
        assert accounts[key].record["rep_key"] == (str(rep) if rep else None)
    assert None in {accounts[key].record["rep_key"] for key in reps}
    parse_record(Entity.ACCOUNT, ecrin)


def test_contacts_belong_to_customers_only(reader, dossier, open_sage):
    contacts = by_key(reader.changed(Entity.CONTACT, None))
    connection = open_sage(dossier)
    expected = column(connection, "SELECT c.CT_No FROM F_CONTACTT c JOIN F_COMPTET t ON t.CT_Num = c.CT_Num"
                                  " WHERE t.CT_Type = 0")
    assert set(contacts) == {str(number) for number in expected}
    assert column(connection, "SELECT COUNT(*) FROM F_CONTACTT c JOIN F_COMPTET t ON t.CT_Num = c.CT_Num"
                              " WHERE t.CT_Type = 1")[0] > 0
    first = contacts["1"].record
    assert first["account_key"] == "LEFEVRE" and first["key"] == "1"
    assert first["last_name"] and "@" in first["email"]


def test_product_families_are_detail_families(reader):
    families = by_key(reader.changed(Entity.PRODUCT_FAMILY, None))
    assert "ZBIJOUX" not in families and "ZCENTRAL" not in families
    assert families["BOUCLES"].record["name"] == "Boucles d’oreilles"
    assert families["ALLIANCES"].record["name"] == "Alliances «Éternité»"
    assert len(families) == 9


def test_products_carry_stock_over_depots_and_category_prices(reader):
    products = by_key(reader.changed(Entity.PRODUCT, None))
    chain = products["CHOR01"].record
    assert chain["unit"] == "Gramme" and chain["name"] == "Chaîne or au gramme"
    # 10.1 + 20.2 + 0 in stock, 0.2 + 0.1 reserved: exact decimals, no binary float drift
    assert chain["stock_total"] == "30.300000"
    assert chain["stock_available"] == "30.000000"
    assert chain["price"] == "92.350000" and chain["cost"] == "48.100000"
    assert [(t["category"], t["category_name"]) for t in chain["tariffs"]] == [
        (1, "Détaillants"), (2, "Grossistes"), (3, "Export (€ HT)")]
    assert chain["tariffs"][1]["price"] == "78.500000" and chain["tariffs"][1]["discount_rate"] == "5.000000"
    voucher = products["CADEAU50"].record
    assert voucher["name"] == "Chèque cadeau 50 €" and voucher["stock_total"] is None
    assert voucher["barcode"] is None
    assert products["BAAR99"].record["dormant"] is True
    assert products["PEOR02"].record["name"] == "Pendentif œil de tigre"
    assert products["ALOR01"].record["name"] == "Alliance or blanc 750‰"
    assert products["BOAR01"].record["unit"] == "Paire"


def test_documents_come_with_all_their_lines_and_consistent_totals(reader, dossier, open_sage):
    connection = open_sage(dossier)
    for entity, types in ((Entity.QUOTE, "(0)"), (Entity.ORDER, "(1)"), (Entity.INVOICE, "(6, 7)")):
        documents = by_key(reader.changed(entity, None))
        pieces = column(connection, f"SELECT DO_Piece FROM F_DOCENTETE WHERE DO_Domaine = 0 AND DO_Type IN {types}")
        assert len(documents) == len(pieces) > 0
        for key, row in documents.items():
            record = row.record
            family, piece = key.split(":")
            doc_type = record["doc_type"]
            assert family == ("F" if entity is Entity.INVOICE else str(doc_type))
            assert record["number"] == piece and record["entity"] == entity.value
            line_ids = column(connection, "SELECT DL_No FROM F_DOCLIGNE WHERE DO_Domaine = 0 AND DO_Type = ?"
                                          " AND DO_Piece = ? ORDER BY DL_Ligne", doc_type, piece)
            assert [line["line_id"] for line in record["lines"]] == [str(number) for number in line_ids]
            assert [line["position"] for line in record["lines"]] == sorted(line["position"] for line in record["lines"])
            assert sum(Decimal(line["total_ht"]) for line in record["lines"]) == Decimal(record["total_ht"])
            assert sum(Decimal(line["total_ttc"]) for line in record["lines"]) == Decimal(record["total_ttc"])
    invoices = by_key(reader.changed(Entity.INVOICE, None))
    assert {row.record["doc_type"] for row in invoices.values()} == {6, 7}
    assert set(reader.keys(Entity.INVOICE)) == set(invoices)
    assert scalar(connection, "SELECT COUNT(*) FROM F_DOCENTETE WHERE DO_Domaine = 1") > 0
    assert scalar(connection, "SELECT COUNT(*) FROM F_DOCENTETE WHERE DO_Type = 3") > 0


def test_sage_no_date_becomes_none(reader, dossier, open_sage):
    quotes = by_key(reader.changed(Entity.QUOTE, None))
    assert scalar(open_sage(dossier), "SELECT DO_Date FROM F_DOCENTETE WHERE DO_Piece = 'DE00002'") == dt.datetime(1753, 1, 1)
    assert quotes["0:DE00002"].record["date"] is None
    assert quotes["0:DE00001"].record["date"] is not None


# --- bad rows ---------------------------------------------------------------------------------------

def test_bad_rows_are_reported_and_the_others_still_come_out(reader, dossier, open_sage):
    accounts = by_key(reader.changed(Entity.ACCOUNT, None))
    no_name = accounts[BAD_ACCOUNT_NO_NAME]
    assert no_name.record is None
    assert no_name.error == f"Impossible de synchroniser le tiers « {BAD_ACCOUNT_NO_NAME} » : name : obligatoire mais vide dans Sage"
    ghost = accounts[BAD_ACCOUNT_UNKNOWN_REP]
    assert ghost.record is None
    assert ghost.error == (f"Impossible de synchroniser le tiers « {BAD_ACCOUNT_UNKNOWN_REP} » : "
                           f"le commercial {BAD_UNKNOWN_REP_NO} n'existe pas dans Sage")
    assert ghost.raw_hash and ghost.marq > 0
    valid = [row for row in accounts.values() if row.record is not None]
    assert len(valid) == len(accounts) - 2 and all(row.error is None for row in valid)

    # an e-mail is optional: the contact syncs without it, and a warning says why
    contacts = by_key(reader.changed(Entity.CONTACT, None))
    too_long, invalid = contacts[str(BAD_CONTACT_LONG_EMAIL)], contacts[str(BAD_CONTACT_INVALID_EMAIL)]
    assert too_long.record["email"] is None and invalid.record["email"] is None
    assert json.loads(too_long.warnings) == [{"column": "CT_EMail", "field": "email", "reason": "too_long", "limit": 69,
                                              "value": "a" * 39 + "…"}]
    assert json.loads(invalid.warnings) == [{"column": "CT_EMail", "field": "email", "reason": "email",
                                             "value": "irene.sans-arobase(at)bijou.fr"}]
    assert invalid.record_hash != content_hash(invalid.record)      # the warning is part of what was sent
    assert all(row.record is not None for row in contacts.values())


def test_a_rep_created_later_resolves_the_account_error(reader, dossier):
    sage.insert_row(dossier, "F_COLLABORATEUR", {"CO_No": BAD_UNKNOWN_REP_NO, "CO_Nom": "FANTÔME",
                                                 "CO_Prenom": "Gaspard", "CO_Vendeur": 1}, at=T)
    changed = by_key(reader.changed(Entity.ACCOUNT, T))
    assert set(changed) == {BAD_ACCOUNT_UNKNOWN_REP}
    assert changed[BAD_ACCOUNT_UNKNOWN_REP].record["rep_key"] == str(BAD_UNKNOWN_REP_NO)
    assert changed[BAD_ACCOUNT_UNKNOWN_REP].modified == T


def test_co_no_zero_means_no_rep_not_an_error(reader, dossier):
    sage.update_row(dossier, "F_COMPTET", {"CT_Num": "ECRIN"}, {"CO_No": 0}, at=T)
    sage.update_row(dossier, "F_COMPTET", {"CT_Num": "NOEL"}, {"CO_No": None}, at=T)
    changed = by_key(reader.changed(Entity.ACCOUNT, T))
    assert changed["ECRIN"].record["rep_key"] is None and changed["ECRIN"].error is None
    assert changed["NOEL"].record["rep_key"] is None and changed["NOEL"].error is None


def test_hashes_follow_content_not_timestamps(reader, dossier):
    before = by_key(reader.changed(Entity.ACCOUNT, None))
    for key in ("ECRIN", BAD_ACCOUNT_NO_NAME):
        sage.touch_rows(dossier, "F_COMPTET", {"CT_Num": key}, at=T)
    touched = by_key(reader.changed(Entity.ACCOUNT, T))
    assert set(touched) == {"ECRIN", BAD_ACCOUNT_NO_NAME} and touched["ECRIN"].modified == T
    # a valid row: its record, text and hash; an invalid row: the hash of its raw values
    assert touched["ECRIN"].record == before["ECRIN"].record and touched["ECRIN"].raw_hash == ""
    assert touched["ECRIN"].record_hash == content_hash(before["ECRIN"].record) == before["ECRIN"].record_hash
    assert touched["ECRIN"].record_text == canonical_json(touched["ECRIN"].record)
    invalid = touched[BAD_ACCOUNT_NO_NAME]
    assert invalid.record is None and invalid.record_text is None and invalid.record_hash == ""
    assert invalid.raw_hash and invalid.raw_hash == before[BAD_ACCOUNT_NO_NAME].raw_hash
    for key in ("ECRIN", BAD_ACCOUNT_NO_NAME):
        sage.update_row(dossier, "F_COMPTET", {"CT_Num": key}, {"CT_Telecopie": "01 42 00 00 00"}, at=T)
    changed = by_key(reader.changed(Entity.ACCOUNT, T))
    assert changed["ECRIN"].record_hash != before["ECRIN"].record_hash
    assert changed[BAD_ACCOUNT_NO_NAME].raw_hash != before[BAD_ACCOUNT_NO_NAME].raw_hash


# --- changes ----------------------------------------------------------------------------------------

def test_changed_since_returns_exactly_the_changed_rows(reader, dossier, open_sage):
    for entity in reader.entities():
        assert list(reader.changed(entity, T)) == [], entity
    sage.update_row(dossier, "F_COMPTET", {"CT_Num": "ECRIN"}, {"CT_Intitule": "L’Écrin d’Émeraude & Cie"}, at=T)
    sage.update_row(dossier, "F_CONTACTT", {"CT_No": 3}, {"CT_Fonction": "Gérante"}, at=T + dt.timedelta(minutes=1))
    accounts = by_key(reader.changed(Entity.ACCOUNT, T))
    assert set(accounts) == {"ECRIN"}
    assert accounts["ECRIN"].record["name"] == "L’Écrin d’Émeraude & Cie" and accounts["ECRIN"].modified == T
    sage.update_row(dossier, "F_COLLABORATEUR", {"CO_No": 3}, {"CO_TelPortable": "06 00 00 00 03"}, at=T)
    # a change of a sales rep re-reads the accounts it follows (their validity depends on it)
    followed = {str(key) for key in column(open_sage(dossier), "SELECT CT_Num FROM F_COMPTET WHERE CT_Type = 0"
                                                                " AND CO_No = 3")}
    assert followed and set(by_key(reader.changed(Entity.ACCOUNT, T))) == {"ECRIN"} | followed
    assert set(by_key(reader.changed(Entity.CONTACT, T))) == {"3"}
    assert set(by_key(reader.changed(Entity.CONTACT, T + dt.timedelta(minutes=1)))) == {"3"}
    assert set(by_key(reader.changed(Entity.CONTACT, T + dt.timedelta(minutes=1, milliseconds=1)))) == set()
    users = by_key(reader.changed(Entity.USER, T))
    assert set(users) == {"3"}
    assert list(reader.changed(Entity.PRODUCT, T)) == []


def test_changed_reads_what_a_new_read_finds_after_a_change(reader, dossier):
    """A read must not stay on an old snapshot of the database once it is over."""
    assert list(reader.changed(Entity.ACCOUNT, T)) == []
    sage.update_row(dossier, "F_COMPTET", {"CT_Num": "GAELLE"}, {"CT_Ville": "Saint-Malo"}, at=T)
    assert by_key(reader.changed(Entity.ACCOUNT, T))["GAELLE"].record["city"] == "Saint-Malo"


def test_a_stock_change_rereads_the_whole_product(reader, dossier):
    sage.update_row(dossier, "F_ARTSTOCK", {"AR_Ref": "CHOR01", "DE_No": 2}, {"AS_QteSto": Decimal("25.05")},
                    at=T + dt.timedelta(hours=1))
    changed = by_key(reader.changed(Entity.PRODUCT, T))
    assert set(changed) == {"CHOR01"}
    product = changed["CHOR01"]
    assert product.record["stock_total"] == "35.150000"
    assert product.record["stock_available"] == "34.850000"
    assert len(product.record["tariffs"]) == 3
    assert product.modified == T + dt.timedelta(hours=1)


def test_category_price_and_category_name_changes_reread_products(reader, dossier, open_sage):
    sage.update_row(dossier, "F_ARTCLIENT", {"AR_Ref": "BAAR01", "AC_Categorie": 2}, {"AC_PrixVen": Decimal("74.99")}, at=T)
    changed = by_key(reader.changed(Entity.PRODUCT, T))
    assert set(changed) == {"BAAR01"}
    assert changed["BAAR01"].record["tariffs"][1]["price"] == "74.990000"
    later = T + dt.timedelta(days=1)
    sage.update_row(dossier, "P_CATTARIF", {"cbIndice": 3}, {"CT_Intitule": "Export « Europe »"}, at=later)
    renamed = by_key(reader.changed(Entity.PRODUCT, later))
    with_category = column(open_sage(dossier), "SELECT DISTINCT AR_Ref FROM F_ARTCLIENT WHERE AC_Categorie = 3")
    assert set(renamed) == set(with_category)
    assert all(row.record["tariffs"][2]["category_name"] == "Export « Europe »" for row in renamed.values())


def test_a_customer_specific_price_is_not_a_category_tariff(reader, dossier):
    before = by_key(reader.changed(Entity.PRODUCT, None))["BOOR03"]
    sage.insert_row(dossier, "F_ARTCLIENT", {"AR_Ref": "BOOR03", "AC_Categorie": 0, "CT_Num": "RUBIS",
                                             "AC_PrixVen": Decimal("500")}, at=T)
    assert list(reader.changed(Entity.PRODUCT, T)) == []
    after = by_key(reader.changed(Entity.PRODUCT, None))["BOOR03"]
    assert [t["category"] for t in after.record["tariffs"]] == [1, 2, 3]
    assert after.record == before.record and after.raw_hash == before.raw_hash


def test_a_line_change_rereads_the_document_with_all_its_lines(reader, dossier, open_sage):
    connection = open_sage(dossier)
    piece = scalar(connection, "SELECT DO_Piece FROM F_DOCENTETE WHERE DO_Domaine = 0 AND DO_Type = 7"
                               " ORDER BY cbMarq")
    lines = column(connection, "SELECT DL_No FROM F_DOCLIGNE WHERE DO_Type = 7 AND DO_Piece = ? ORDER BY DL_Ligne", piece)
    sage.update_row(dossier, "F_DOCLIGNE", {"DL_No": lines[-1]}, {"DL_Design": "Ligne corrigée «SAV»"}, at=T)
    changed = by_key(reader.changed(Entity.INVOICE, T))
    assert set(changed) == {f"F:{piece}"}
    record = changed[f"F:{piece}"].record
    assert [line["line_id"] for line in record["lines"]] == [str(number) for number in lines]
    assert record["lines"][-1]["description"] == "Ligne corrigée «SAV»"
    assert changed[f"F:{piece}"].modified == T
    assert list(reader.changed(Entity.QUOTE, T)) == [] and list(reader.changed(Entity.ORDER, T)) == []


def test_a_deleted_line_resaves_its_document(reader, dossier, open_sage):
    connection = open_sage(dossier)
    piece = "BC00001"
    lines = column(connection, "SELECT DL_No FROM F_DOCLIGNE WHERE DO_Type = 1 AND DO_Piece = ? ORDER BY DL_Ligne", piece)
    assert len(lines) > 1
    sage.delete_row(dossier, "F_DOCLIGNE", {"DL_No": lines[0]}, at=T)
    order = by_key(reader.changed(Entity.ORDER, T))[f"1:{piece}"].record
    assert [line["line_id"] for line in order["lines"]] == [str(number) for number in lines[1:]]
    assert Decimal(order["total_ht"]) == sum(Decimal(line["total_ht"]) for line in order["lines"])


def test_a_quote_turned_into_an_order_keeps_its_line_ids(reader, dossier):
    before = by_key(reader.changed(Entity.QUOTE, None))["0:DE00001"].record
    order_piece = sage.transform_document(dossier, doc_type=0, piece="DE00001", to_type=1, at=T)
    orders = by_key(reader.changed(Entity.ORDER, T))
    assert set(orders) == {f"1:{order_piece}"}
    order = orders[f"1:{order_piece}"].record
    assert [line["line_id"] for line in order["lines"]] == [line["line_id"] for line in before["lines"]]
    assert order["total_ht"] == before["total_ht"] and order["account_key"] == before["account_key"]
    assert "0:DE00001" not in set(reader.keys(Entity.QUOTE))


def test_a_new_document_is_read_with_its_lines(reader, dossier):
    piece = sage.insert_document(dossier, doc_type=0, tiers="RUBIS", at=T, rep=2, lines=[
        {"AR_Ref": "BAOR01", "DL_Qte": 2},
        {"AR_Ref": "CHOR01", "DL_Qte": Decimal("12.5"), "DL_Remise01REM_Valeur": Decimal("5")},
        {"AR_Ref": "CADEAU50", "DL_Qte": 1, "DL_PrixUnitaire": Decimal("50")},
    ])
    quote = by_key(reader.changed(Entity.QUOTE, T))[f"0:{piece}"].record
    assert [line["product_key"] for line in quote["lines"]] == ["BAOR01", "CHOR01", "CADEAU50"]
    assert quote["lines"][1]["quantity"] == "12.500000"
    assert quote["lines"][1]["total_ht"] == "1096.660000"  # 12.5 × 92.35 × 0.95 = 1096.65625
    assert quote["total_ht"] == "3644.660000"  # 2 × 1249 + 1096.66 + 50
    assert quote["rep_key"] == "2" and quote["account_key"] == "RUBIS"


# --- keys, probes, identity, streaming ---------------------------------------------------------------

def test_keys_are_every_current_key(reader, dossier):
    for entity in reader.entities():
        assert set(reader.keys(entity)) == set(by_key(reader.changed(entity, None))), entity
    sage.delete_row(dossier, "F_COMPTET", {"CT_Num": "NOEL"})
    sage.delete_row(dossier, "F_CONTACTT", {"CT_No": 2})
    assert "NOEL" not in set(reader.keys(Entity.ACCOUNT))
    assert "2" not in set(reader.keys(Entity.CONTACT))
    assert "1" in set(reader.keys(Entity.CONTACT))


def test_probes_every_table_read_and_count_those_whose_deletions_matter(reader, dossier, open_sage):
    connection = open_sage(dossier)
    probes = {probe.table: probe for probe in reader.probes()}
    assert set(probes) == {"F_COLLABORATEUR", "F_COMPTET", "F_CONTACTT", "F_FAMILLE", "F_ARTICLE", "P_UNITE",
                           "F_ARTSTOCK", "F_ARTCLIENT", "P_CATTARIF", "F_DOCENTETE", "F_DOCLIGNE", "F_LIVRAISON"}
    counted = {"F_COLLABORATEUR", "F_COMPTET", "F_CONTACTT", "F_FAMILLE", "F_ARTICLE", "F_DOCENTETE", "F_LIVRAISON"}
    for name, probe in probes.items():
        expected = scalar(connection, f"SELECT COUNT(*) FROM {name}") if name in counted else None
        assert probe.row_count == expected, name
        assert probe.max_marq == scalar(connection, f"SELECT MAX(cbMarq) FROM {name}")
        assert isinstance(probe.max_modified, dt.datetime) and probe.max_modified < T
    sage.insert_row(dossier, "F_COMPTET", {"CT_Num": "NOUVEAU", "CT_Intitule": "Nouvelle bijouterie"}, at=T)
    after = {probe.table: probe for probe in reader.probes()}["F_COMPTET"]
    assert after.row_count == probes["F_COMPTET"].row_count + 1
    assert after.max_marq > probes["F_COMPTET"].max_marq and after.max_modified == T


def test_identity_names_the_dossier_and_changes_on_rebuild(tmp_path, open_sage):
    path = tmp_path / "BIJOU.db"
    build_demo_dossier(path, database_name="BIJOU_2024")
    first = Sage100Reader(open_sage(path)).identity()
    assert first.database_name == "BIJOU_2024" and first.company_name == "BIJOU SA"
    assert isinstance(first.created_at, dt.datetime) and len(first.fingerprint) == 64
    assert Sage100Reader(open_sage(path)).identity() == first
    build_demo_dossier(path, database_name="BIJOU_2024")  # a restore gives a new creation date
    second = Sage100Reader(open_sage(path)).identity()
    assert second.database_name == first.database_name and second.created_at > first.created_at
    assert second.fingerprint != first.fingerprint


def test_small_batches_stream_the_same_rows(tmp_path, open_sage):
    path = tmp_path / "small.db"
    build_demo_dossier(path, size="small", seed=3)
    connection = open_sage(path)
    for entity in (Entity.ACCOUNT, Entity.PRODUCT, Entity.INVOICE):
        whole = list(Sage100Reader(connection, batch_rows=100_000).changed(entity, None))
        paged = list(Sage100Reader(connection, batch_rows=7).changed(entity, None))
        assert len(whole) > 7 * 10
        assert paged == whole
        # documents and accounts newest first, accounts clients then prospects; products in cbMarq order
        in_marq_order = sorted(whole, key=lambda row: row.marq)
        reader = Sage100Reader(connection)
        order = in_marq_order[::-1] if reader.newest_first(entity) else in_marq_order
        if reader.read_passes(entity):
            clients = [row for row in order if row.record is None or row.record["kind"] == "client"]
            order = clients + [row for row in order if row not in clients]
        assert paged == order
        assert (order != in_marq_order) == (entity is not Entity.PRODUCT)
        assert list(Sage100Reader(connection, batch_rows=7).keys(entity)) == [row.key for row in in_marq_order]
    invoice_lines = sum(len(row.record["lines"]) for row in whole)
    assert invoice_lines == scalar(connection, "SELECT COUNT(*) FROM F_DOCLIGNE WHERE DO_Domaine = 0 AND DO_Type IN (6, 7)")


def test_cbmarq_gaps_and_sparse_changes_are_read_in_few_queries(dossier, open_sage):
    sage.insert_row(dossier, "F_COMPTET", {"cbMarq": 40_000_000, "CT_Num": "LOINTAIN", "CT_Type": 0,
                                           "CT_Intitule": "Bijouterie Lointaine"}, at=T)
    sage.insert_row(dossier, "F_COMPTET", {"cbMarq": 2_000_000_000, "CT_Num": "TRESLOIN", "CT_Type": 0,
                                           "CT_Intitule": "Bijouterie Très Lointaine"}, at=T)
    connection = open_sage(dossier)
    statements = []

    class CountingConnection:
        """The pyodbc connection, counting the statements the reader opens."""

        def __getattr__(self, name):
            return getattr(connection, name)

        def cursor(self):
            statements.append(1)
            return connection.cursor()

    reader = Sage100Reader(CountingConnection(), batch_rows=3)
    keys = [row.key for row in reader.changed(Entity.ACCOUNT, T)]
    assert keys == ["LOINTAIN", "TRESLOIN"]
    assert len(statements) < 40
    assert list(reader.keys(Entity.ACCOUNT))[-2:] == ["LOINTAIN", "TRESLOIN"]


def test_reads_are_lazy(tmp_path, open_sage):
    path = tmp_path / "small.db"
    build_demo_dossier(path, size="small")
    rows = Sage100Reader(open_sage(path), batch_rows=10).changed(Entity.ACCOUNT, None)
    first = next(rows)
    assert isinstance(first, SourceRow) and first.key
    rows.close()


def test_since_must_be_naive(reader):
    with pytest.raises(ValueError, match="naive"):
        list(reader.changed(Entity.ACCOUNT, dt.datetime(2025, 1, 1, tzinfo=dt.timezone.utc)))
    with pytest.raises(ValueError, match="no entity"):
        list(reader.keys("supplier"))


def test_the_reader_accepts_an_odbc_connection_string_dossier(tmp_path):
    path = tmp_path / "odbc.db"
    build_demo_dossier(sqlite_connection_string(path))
    connection = connect(sqlite_connection_string(path))
    try:
        assert len(list(Sage100Reader(connection).keys(Entity.PRODUCT))) == 17
    finally:
        connection.close()


# --- hostile values: one row or one field, never the read -----------------------------------------

def test_a_line_the_driver_cannot_decode_costs_its_document_only(reader, dossier):
    import sqlite3

    piece = scalar_sqlite(dossier, "SELECT DO_Piece FROM F_DOCENTETE WHERE DO_Domaine = 0 AND DO_Type = 1"
                                   " ORDER BY cbMarq")
    with sqlite3.connect(dossier) as connection:
        connection.execute(f"UPDATE F_DOCLIGNE SET DL_Design = {sage._surrogate_text('Bague or')}"
                           " WHERE DO_Domaine = 0 AND DO_Type = 1 AND DO_Piece = ?", (piece,))

    orders = by_key(reader.changed(Entity.ORDER, None))

    assert orders[f"1:{piece}"].record is None
    assert "F_DOCLIGNE contient un caractère illisible" in orders[f"1:{piece}"].error
    assert all(row.record is not None for key, row in orders.items() if key != f"1:{piece}")


def test_a_key_repeated_by_a_newer_row_names_that_row_by_its_cbmarq(reader, dossier):
    import sqlite3

    with sqlite3.connect(dossier) as connection:
        marq = sage._copy_row(connection, "F_ARTICLE", 1, {"AR_Ref": scalar_sqlite(
            dossier, "SELECT AR_Ref FROM F_ARTICLE WHERE cbMarq = 1") + " "})
        connection.execute("UPDATE F_CONTACTT SET CT_No = 'B7' WHERE cbMarq = 3")
    first = scalar_sqlite(dossier, "SELECT AR_Ref FROM F_ARTICLE WHERE cbMarq = 1")

    keys = list(reader.keys(Entity.PRODUCT))

    assert keys.count(first) == 1 and f"{first} (cbMarq {marq})" in keys
    assert reader.duplicate_copies(Entity.PRODUCT) == {marq: first}
    assert reader.copies_of(Entity.PRODUCT, first) == 2
    # a key that is not a number names its row by cbMarq, in the key read and in the row read alike
    assert "(cbMarq 3)" in list(reader.keys(Entity.CONTACT))
    contacts = by_key(reader.changed(Entity.CONTACT, None))
    assert contacts["(cbMarq 3)"].record is None and "CT_No « B7 » n'est pas un nombre entier" in \
        contacts["(cbMarq 3)"].error


def test_probes_skip_a_change_time_that_is_not_a_date(reader, dossier):
    import sqlite3

    with sqlite3.connect(dossier) as connection:
        connection.execute("UPDATE F_ARTICLE SET cbModification = 'zzz' WHERE cbMarq = 1")
    newest = scalar_sqlite(dossier, "SELECT MAX(cbModification) FROM F_ARTICLE WHERE cbMarq <> 1")

    [probe] = [p for p in reader.probes() if p.table == "F_ARTICLE"]

    assert probe.max_modified == dt.datetime.fromisoformat(newest)


def scalar_sqlite(path, query: str, *parameters):
    import sqlite3

    with sqlite3.connect(path) as connection:
        return connection.execute(query, parameters).fetchone()[0]


def test_a_line_amount_typed_as_text_is_read_exactly_or_costs_its_document(reader, dossier):
    import sqlite3

    pieces = [row[0] for row in sqlite3.connect(dossier).execute(
        "SELECT DO_Piece FROM F_DOCENTETE WHERE DO_Domaine = 0 AND DO_Type = 1 ORDER BY cbMarq LIMIT 2")]
    with sqlite3.connect(dossier) as connection:
        connection.execute("UPDATE F_DOCLIGNE SET DL_PrixUnitaire = '12,50' WHERE DO_Type = 1 AND DO_Piece = ?",
                           (pieces[0],))
        connection.execute("UPDATE F_DOCLIGNE SET DL_PrixUnitaire = '12.50 €' WHERE DO_Type = 1 AND DO_Piece = ?",
                           (pieces[1],))

    orders = by_key(reader.changed(Entity.ORDER, None))

    assert {line["unit_price"] for line in orders[f"1:{pieces[0]}"].record["lines"]} == {"12.500000"}
    assert orders[f"1:{pieces[1]}"].record is None
    assert "F_DOCLIGNE.DL_PrixUnitaire « 12.50 € » n'est pas un nombre" in orders[f"1:{pieces[1]}"].error


# --- rows whose parent Sage does not have (orphans) ----------------------------------------------

def _copy_of(connection, table: str, where: str, **changes) -> dict:
    cursor = connection.cursor()
    try:
        cursor.execute(f"SELECT * FROM {table} WHERE {where} ORDER BY cbMarq")
        names = [description[0] for description in cursor.description]
        row = dict(zip(names, cursor.fetchone()))
    finally:
        cursor.close()
        connection.rollback()
    return {**{name: value for name, value in row.items() if not name.startswith("cb")}, **changes}


def test_a_contact_whose_account_is_missing_is_an_invalid_row_in_every_read_until_the_account_exists(
        reader, dossier, open_sage):
    connection = open_sage(dossier)
    number = scalar(connection, "SELECT MAX(CT_No) FROM F_CONTACTT") + 1
    sage.insert_row(dossier, "F_CONTACTT", _copy_of(connection, "F_CONTACTT", "CT_No = 1", CT_No=number,
                                                    CT_Num="ZZABSENT", CT_Nom="Orphelin", CT_Prenom="Paul"), at=T)
    customers = set(column(connection, "SELECT c.CT_No FROM F_CONTACTT c JOIN F_COMPTET t ON t.CT_Num = c.CT_Num"
                                       " WHERE t.CT_Type = 0"))

    contacts = by_key(reader.changed(Entity.CONTACT, None))
    orphan = contacts.pop(str(number))
    assert {key for key, row in contacts.items() if row.record is None} == set()
    assert set(contacts) == {str(no) for no in customers}          # every other contact, as before
    assert orphan.record_text is None and orphan.raw_hash and orphan.marq > 0
    assert orphan.error == (
        f"Le connecteur ne synchronise pas le contact « {number} » (CT_Nom « Orphelin », CT_Prenom « Paul ») : son "
        "compte CT_Num « ZZABSENT » n'existe pas dans Sage (F_COMPTET). Créez ce compte dans Sage, ou rattachez le "
        "contact à un compte existant : il sera synchronisé et cet incident se fermera.")
    assert str(number) in set(reader.keys(Entity.CONTACT))         # still in Sage: never a deletion
    later = T + dt.timedelta(hours=1)
    assert list(reader.changed(Entity.CONTACT, later)) == [orphan]  # met by every read, whatever `since`

    sage.insert_row(dossier, "F_COMPTET", _copy_of(connection, "F_COMPTET", "CT_Num = 'ECRIN'", CT_Num="ZZABSENT",
                                                   CT_Intitule="Compte créé ensuite"), at=later)
    assert list(reader.orphans(Entity.CONTACT)) == []
    # the agent reads the former orphan again by its cbMarq (`ChangeDetector._orphans_adopted`)
    [fixed] = reader.changed_between(Entity.CONTACT, orphan.marq - 1, orphan.marq)
    assert fixed.key == str(number) and fixed.record["account_key"] == "ZZABSENT" and fixed.error is None


def test_a_delivery_address_whose_account_is_missing_is_an_invalid_row_until_the_address_is_deleted(
        reader, dossier, open_sage):
    connection = open_sage(dossier)
    number = scalar(connection, "SELECT MAX(LI_No) FROM F_LIVRAISON") + 1
    sage.insert_row(dossier, "F_LIVRAISON", _copy_of(connection, "F_LIVRAISON", "LI_No = 1", LI_No=number,
                                                     CT_Num="ZZABSENT", LI_Intitule="Entrepôt", LI_Ville="Nantes"),
                    at=T)

    addresses = by_key(reader.changed(Entity.DELIVERY_ADDRESS, None))
    orphan = addresses.pop(str(number))
    assert all(row.record is not None for row in addresses.values())
    assert orphan.record_text is None and orphan.error == (
        f"Le connecteur ne synchronise pas l'adresse de livraison « {number} » (LI_Intitule « Entrepôt », LI_Ville "
        "« Nantes ») : son compte CT_Num « ZZABSENT » n'existe pas dans Sage (F_COMPTET). Créez ce compte dans Sage, "
        "ou supprimez cette adresse : cet incident se fermera.")
    assert str(number) in set(reader.keys(Entity.DELIVERY_ADDRESS))     # still in Sage: never a deletion

    sage.delete_row(dossier, "F_LIVRAISON", {"LI_No": number})
    assert str(number) not in set(reader.keys(Entity.DELIVERY_ADDRESS))
    assert list(reader.orphans(Entity.DELIVERY_ADDRESS)) == []


def test_a_contact_of_a_supplier_is_not_an_orphan(reader, dossier, open_sage):
    connection = open_sage(dossier)
    suppliers = column(connection, "SELECT c.CT_No FROM F_CONTACTT c JOIN F_COMPTET t ON t.CT_Num = c.CT_Num"
                                   " WHERE t.CT_Type = 1")
    assert suppliers and list(reader.orphans(Entity.CONTACT)) == []
    assert not {str(no) for no in suppliers} & set(reader.keys(Entity.CONTACT))


def test_lines_whose_document_is_missing_are_one_invalid_row_of_the_document_key(reader, dossier, open_sage):
    connection = open_sage(dossier)
    line = _copy_of(connection, "F_DOCLIGNE", "DO_Domaine = 0 AND DO_Type = 1")
    top = scalar(connection, "SELECT MAX(DL_No) FROM F_DOCLIGNE")
    orders_before = by_key(reader.changed(Entity.ORDER, None))
    for offset in (1, 2):
        sage.insert_row(dossier, "F_DOCLIGNE", {**line, "DO_Piece": "BC99999", "DL_No": top + offset,
                                                "DL_Ligne": 1000 * offset, "AR_Ref": "BAGUE0"}, at=T)
    sage.insert_row(dossier, "F_DOCLIGNE", {**line, "DO_Type": 6, "DO_Piece": "FA99999", "DL_No": top + 3}, at=T)

    orders = by_key(reader.changed(Entity.ORDER, None))
    orphan = orders.pop("1:BC99999")
    assert orders == orders_before                                  # every order read as before
    assert orphan.record_text is None and orphan.marq == 0 and orphan.modified == T
    assert orphan.error == (
        f"F_DOCLIGNE contient 2 ligne(s) de la commande « 1:BC99999 » (DL_No « {top + 1} », DL_Ligne « 1000 », "
        f"AR_Ref « BAGUE0 »; DL_No « {top + 2} », DL_Ligne « 2000 », AR_Ref « BAGUE0 »), mais ce document n'existe "
        "pas dans Sage (F_DOCENTETE, DO_Type « 1 », DO_Piece « BC99999 ») : ces lignes ne sont pas synchronisées. "
        "Supprimez-les, ou créez le document dans Sage : cet incident se fermera.")
    assert "1:BC99999" in set(reader.keys(Entity.ORDER))
    assert [row.key for row in reader.changed(Entity.ORDER, T + dt.timedelta(hours=1))] == ["1:BC99999"]
    [invoice] = [row for row in reader.changed(Entity.INVOICE, None) if row.record is None]
    assert invoice.key == "F:FA99999" and f"DL_No « {top + 3} »" in invoice.error
    assert [row.key for row in reader.orphans(Entity.QUOTE)] == []

    sage.delete_row(dossier, "F_DOCLIGNE", {"DL_No": top + 1}, at=T)  # one line fixed: the other still named
    [again] = reader.orphans(Entity.ORDER)
    assert again.raw_hash != orphan.raw_hash and "1 ligne(s)" in again.error and str(top + 1) not in again.error
    sage.delete_row(dossier, "F_DOCLIGNE", {"DL_No": top + 2}, at=T)
    assert list(reader.orphans(Entity.ORDER)) == [] and "1:BC99999" not in set(reader.keys(Entity.ORDER))


def test_a_posted_invoice_whose_lines_kept_the_unposted_type_is_not_an_orphan(reader, dossier, open_sage):
    connection = open_sage(dossier)
    piece = scalar(connection, "SELECT DO_Piece FROM F_DOCENTETE WHERE DO_Domaine = 0 AND DO_Type = 6 ORDER BY cbMarq")
    sage.update_row(dossier, "F_DOCENTETE", {"DO_Domaine": 0, "DO_Type": 6, "DO_Piece": piece}, {"DO_Type": 7}, at=T)
    assert list(reader.orphans(Entity.INVOICE)) == []
