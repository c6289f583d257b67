"""The Sage 100 writer on a Sage-schema database read and written through pyodbc (SQLite ODBC
driver), and the SQL Server statements it would send."""
from __future__ import annotations

import sqlite3

import pytest

from agent.demo_builder import build_demo_dossier, update_row
from agent.odbc import connect, sqlite_connection_string
from agent.sage100.dialect import MSSQL
from agent.sage100.writer import CommandRefused, Sage100Writer
from shared.envelope import Op


@pytest.fixture
def database(tmp_path):
    return build_demo_dossier(tmp_path / "BIJOU.db", size="tiny", seed=3).path


@pytest.fixture
def writer(database):
    connection = connect(sqlite_connection_string(database))
    yield Sage100Writer(connection)
    connection.close()


def rows(database, sql, params=()):
    db = sqlite3.connect(database)
    db.row_factory = sqlite3.Row
    try:
        return db.execute(sql, params).fetchall()
    finally:
        db.close()


def test_a_new_prospect_gets_the_next_code_of_its_prefix_and_sages_companion_rows(writer, database):
    first = writer.apply("cmd-1", Op.CREATE_PROSPECT, {"fields": {"name": "Bijoux Léa", "city": "Lyon"}, "rep_key": "2"})
    second = writer.apply("cmd-2", Op.CREATE_PROSPECT, {"fields": {"name": "Atelier Zoé"}})

    assert (first.key, second.key) == ("SSM000001", "SSM000002")
    [tiers] = rows(database, "SELECT * FROM F_COMPTET WHERE CT_Num = 'SSM000001'")
    assert (tiers["CT_Type"], tiers["CT_Prospect"], tiers["CT_Intitule"], tiers["CO_No"]) == (0, 1, "Bijoux Léa", 2)
    assert tiers["cbModification"] is not None                      # stamped by Sage's trigger, not by us
    account = rows(database, "SELECT CG_Num FROM F_COMPTETG WHERE CT_Num = 'SSM000001'")[0][0]
    assert account == tiers["CG_NumPrinc"] == "4110000"
    [delivery] = rows(database, "SELECT * FROM F_LIVRAISON WHERE CT_Num = 'SSM000001'")
    assert (delivery["LI_Principal"], delivery["LI_Ville"], delivery["LI_Intitule"]) == (1, "Lyon", "Bijoux Léa")


def test_a_command_applied_twice_has_one_effect(writer, database):
    first = writer.apply("cmd-1", Op.CREATE_PROSPECT, {"fields": {"name": "Bijoux Léa"}})
    again = writer.apply("cmd-1", Op.CREATE_PROSPECT, {"fields": {"name": "Bijoux Léa"}})

    assert again.key == first.key and again.replayed
    assert len(rows(database, "SELECT * FROM F_COMPTET WHERE CT_Intitule = 'Bijoux Léa'")) == 1


def test_a_change_keeps_the_fields_sage_changed_meanwhile(writer, database):
    key = writer.apply("cmd-1", Op.CREATE_PROSPECT, {"fields": {"name": "Bijoux Léa", "phone": "01"}}).key
    update_row(database, "F_COMPTET", {"CT_Num": key}, {"CT_Intitule": "Bijoux Léa SARL"})

    outcome = writer.apply("cmd-2", Op.UPDATE_PROSPECT, {"key": key, "fields": {"name": "Léa Bijoux", "phone": "02"},
                                                         "base": {"name": "Bijoux Léa", "phone": "01"}})

    [tiers] = rows(database, "SELECT CT_Intitule, CT_Telephone FROM F_COMPTET WHERE CT_Num = ?", (key,))
    assert tuple(tiers) == ("Bijoux Léa SARL", "02")
    assert outcome.written == {"phone": "02"}
    assert [c["field"] for c in outcome.conflicts] == ["name"]


@pytest.mark.parametrize("fields, field, words", [
    ({"name": "Bijoux", "city": "X" * 36}, "city", "CT_Ville holds 35"),
    ({"name": "Bijoux", "city": "Łódź"}, "city", "cannot be stored"),
    ({"name": "Bijoux", "email": "pas-une-adresse"}, "email", "e-mail"),
    ({"city": "Lyon"}, "name", "needs a name"),
])
def test_a_value_sage_cannot_hold_refuses_the_command_and_writes_nothing(writer, database, fields, field, words):
    count = rows(database, "SELECT COUNT(*) FROM F_COMPTET")[0][0]
    with pytest.raises(CommandRefused) as refused:
        writer.apply("cmd-bad", Op.CREATE_PROSPECT, {"fields": fields})
    assert refused.value.field == field and words in refused.value.message
    assert rows(database, "SELECT COUNT(*) FROM F_COMPTET")[0][0] == count
    assert not rows(database, "SELECT name FROM sqlite_master WHERE name = 'SSM_CONNECTOR_COMMANDS'")   # rolled back


def test_a_prospect_converted_in_sage_is_no_longer_written_from_ssm(writer, database):
    key = writer.apply("cmd-1", Op.CREATE_PROSPECT, {"fields": {"name": "Bijoux Léa"}}).key
    update_row(database, "F_COMPTET", {"CT_Num": key}, {"CT_Prospect": 0})
    with pytest.raises(CommandRefused, match="client now"):
        writer.apply("cmd-2", Op.UPDATE_PROSPECT, {"key": key, "fields": {"phone": "02"}, "base": {}})


def test_contacts_are_numbered_in_the_transaction_and_need_their_tiers(writer, database):
    top = rows(database, "SELECT MAX(CT_No) FROM F_CONTACTT")[0][0]
    tiers = rows(database, "SELECT CT_Num FROM F_COMPTET WHERE CT_Type = 0 ORDER BY CT_Num")[0][0]
    outcome = writer.apply("cmd-1", Op.CREATE_CONTACT, {"account_key": tiers, "fields": {"first_name": "Inès"}})
    assert outcome.key == str(top + 1) and outcome.warnings == ["last-name-filled"]
    assert tuple(rows(database, "SELECT CT_Num, CT_Nom, CT_Prenom FROM F_CONTACTT WHERE CT_No = ?", (top + 1,))[0]) \
        == (tiers, "Inès", "Inès")
    with pytest.raises(CommandRefused, match="does not exist"):
        writer.apply("cmd-2", Op.CREATE_CONTACT, {"account_key": "NOPE", "fields": {"last_name": "X"}})


def test_the_sql_server_statements_lock_counters_and_read_cbmarq_past_the_triggers():
    assert MSSQL.max_of("F_CONTACTT", "CT_No") == "SELECT MAX(CT_No) FROM F_CONTACTT WITH (UPDLOCK, HOLDLOCK)"
    assert MSSQL.keys_like("F_COMPTET", "CT_Num") == \
        "SELECT CT_Num FROM F_COMPTET WITH (UPDLOCK, HOLDLOCK) WHERE CT_Num LIKE ?"
    assert MSSQL.insert("F_COMPTET", ["CT_Num", "CT_Intitule"]) == (
        "SET NOCOUNT ON; DECLARE @marq TABLE (cbMarq int); INSERT INTO F_COMPTET (CT_Num, CT_Intitule) "
        "OUTPUT inserted.cbMarq INTO @marq VALUES (?, ?); SELECT cbMarq FROM @marq")
    assert MSSQL.update("F_COMPTET", ["CT_Telephone"], ["CT_Num"]) == \
        "UPDATE F_COMPTET SET CT_Telephone = ? WHERE CT_Num = ?"
    assert MSSQL.select("F_COMPTET", ["CT_Prospect"], ["CT_Num", "CT_Type"], for_update=True) == \
        "SELECT CT_Prospect FROM F_COMPTET WITH (UPDLOCK, HOLDLOCK) WHERE CT_Num = ? AND CT_Type = ?"
    assert MSSQL.begin is None                                          # pyodbc's transaction, committed once


class Recording:
    """A connection whose cursors note every statement (pyodbc's own types cannot be patched)."""

    def __init__(self, connection):
        self._connection = connection
        self.sent: list[str] = []

    def __getattr__(self, name):
        return getattr(self._connection, name)

    def __setattr__(self, name, value):
        if name.startswith("_") or name == "sent":
            object.__setattr__(self, name, value)
        else:
            setattr(self._connection, name, value)

    def cursor(self):
        recording, cursor = self, self._connection.cursor()

        class Cursor:
            def execute(self, sql, *params):
                recording.sent.append(sql)
                return cursor.execute(sql, *params)

            def __getattr__(self, name):
                return getattr(cursor, name)
        return Cursor()


def test_no_statement_writes_a_sage_technical_column(database):
    connection = Recording(connect(sqlite_connection_string(database)))
    writer = Sage100Writer(connection)
    writer.apply("cmd-1", Op.CREATE_PROSPECT, {"fields": {"name": "Bijoux Léa"}})
    key = rows(database, "SELECT CT_Num FROM F_COMPTET WHERE CT_Intitule = 'Bijoux Léa'")[0][0]
    writer.apply("cmd-2", Op.UPDATE_PROSPECT, {"key": key, "fields": {"phone": "02"}, "base": {}})
    written = [s for s in connection.sent if s.startswith(("INSERT", "UPDATE"))]
    assert len(written) >= 5 and all("?" in s for s in written)           # parameterized
    assert not any(column in s for s in written for column in ("cbMarq", "cbModification", "cbCreation", "cbHash"))


def test_a_write_that_fails_halfway_leaves_no_half_written_tiers(database):
    import pyodbc

    connection = Recording(connect(sqlite_connection_string(database)))
    real_cursor = connection.cursor

    def failing_cursor():
        cursor = real_cursor()
        execute = cursor.execute

        def execute_or_fail(sql, *params):
            if sql.startswith("INSERT INTO F_LIVRAISON"):
                raise pyodbc.OperationalError("HYT00", "lock request time out period exceeded")
            return execute(sql, *params)
        cursor.execute = execute_or_fail
        return cursor
    object.__setattr__(connection, "cursor", failing_cursor)
    writer = Sage100Writer(connection)

    with pytest.raises(pyodbc.OperationalError):
        writer.apply("cmd-1", Op.CREATE_PROSPECT, {"fields": {"name": "Bijoux Léa"}})

    assert rows(database, "SELECT COUNT(*) FROM F_COMPTET WHERE CT_Intitule = 'Bijoux Léa'")[0][0] == 0
    assert rows(database, "SELECT COUNT(*) FROM F_COMPTETG WHERE CT_Num LIKE 'SSM%'")[0][0] == 0
    assert Sage100Writer(connect(sqlite_connection_string(database))).apply(
        "cmd-1", Op.CREATE_PROSPECT, {"fields": {"name": "Bijoux Léa"}}).key == "SSM000001"   # tried again: once


def test_a_devis_takes_the_chosen_address_of_its_tiers_else_its_main_one_else_none(writer, database):
    """`LI_No`: the quote's address when it is one of the tiers' in F_LIVRAISON; one of another tiers
    (or gone) gives the main address and a warning; a tiers without a main address gets none."""
    tiers, other = [r[0] for r in rows(database, "SELECT DISTINCT CT_Num FROM F_LIVRAISON ORDER BY CT_Num")[:2]]
    [main] = rows(database, "SELECT LI_No FROM F_LIVRAISON WHERE CT_Num = ? AND LI_Principal = 1", (tiers,))
    [foreign] = rows(database, "SELECT LI_No FROM F_LIVRAISON WHERE CT_Num = ? AND LI_Principal = 1", (other,))
    db = sqlite3.connect(database)
    with db:
        db.execute("INSERT INTO F_LIVRAISON (LI_No, CT_Num, LI_Intitule, LI_Principal) VALUES (777, ?, 'Atelier', 0)",
                   (tiers,))
    db.close()
    article = rows(database, "SELECT AR_Ref FROM F_ARTICLE WHERE AR_Sommeil = 0 ORDER BY AR_Ref")[0][0]

    def devis(command_id, **chosen):
        outcome = writer.apply(command_id, Op.CREATE_QUOTE, {
            "ssm_id": 1, "account_key": tiers, "reference": command_id, **chosen,
            "lines": [{"line_id": 1, "article": article, "quantity": 1, "unit_price": "10", "discount": "0",
                       "amount": "10"}]})
        [(li_no,)] = rows(database, "SELECT LI_No FROM F_DOCENTETE WHERE DO_Type = 0 AND DO_Ref = ?", (command_id,))
        assert outcome.written["delivery_address"] == (li_no or None)
        return li_no, outcome.warnings

    assert devis("chosen", delivery_address_key="777") == (777, [])
    assert devis("main") == (main[0], [])
    assert devis("foreign", delivery_address_key=str(foreign[0])) == (main[0], ["delivery-address-gone"])
    assert devis("gone", delivery_address_key="123456") == (main[0], ["delivery-address-gone"])
    update_row(database, "F_LIVRAISON", {"LI_No": main[0]}, {"LI_Principal": 0})
    assert devis("no main") == (0, [])
