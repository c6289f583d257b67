"""The fast detection paths give what a full read gives: changes found by `cbModification` index
seeks, deletions looked for only in the cbMarq ranges whose count or sum differs, the periodic full
scan that catches what cbModification does not show, the compact checkpoint (and its migration
from the first schema), the history window of documents, and documents read newest first.
Every assertion is on what reached the bus or on the agent's state, through pyodbc."""
from __future__ import annotations

import datetime as dt
import sqlite3
from pathlib import Path

import pytest

from agent import demo_builder as sage
from agent.checkpoint import Checkpoint, moment_number, short_hash
from agent.demo_builder import BAD_ACCOUNT_UNKNOWN_REP, BAD_UNKNOWN_REP_NO
from agent.checkpoint import MARQ_RANGE, TrackState
from agent.odbc import connect, sqlite_connection_string
from agent.sage100.reader import Sage100Reader
from shared.envelope import Op
from shared.rules import sync_order

from agent_support import T0, build_dossier, current_keys, minutes, run_spied

ENTITIES = [entity.value for entity in sync_order()]


@pytest.fixture
def bijou(agent) -> Path:
    return build_dossier(agent.folder, bad_rows=True)


def assert_sums_kept(agent) -> None:
    """The per-range sums the agent keeps are those of the records it tracks."""
    with sqlite3.connect(agent.state_path) as db:
        kept = set(db.execute("SELECT scope, bucket, records, marq_total FROM tracked_sums"))
        counted = set(db.execute(f"SELECT scope, marq / {MARQ_RANGE}, COUNT(*), SUM(marq) FROM tracked"
                                 f" WHERE marq IS NOT NULL AND state NOT IN {TrackState.ORPHANS} GROUP BY 1, 2"))
    assert kept == counted and kept


def full_read(path: Path) -> dict[tuple[str, str], str]:
    """(entity, key) -> record hash (raw hash for an invalid row) of every record, read in full."""
    connection = connect(sqlite_connection_string(path))
    try:
        reader = Sage100Reader(connection)
        return {(entity.value, row.key): row.record_hash or row.raw_hash
                for entity in reader.entities() for row in reader.changed(entity, None)}
    finally:
        connection.close()


def test_changes_found_by_index_seeks_are_exactly_those_a_full_read_finds(agent, bijou):
    agent.run("BIJOU")
    agent.drain("BIJOU")
    before = full_read(bijou)
    at = T0 + minutes(10)
    sage.update_row(bijou, "F_COMPTET", {"CT_Num": "ECRIN"}, {"CT_Ville": "Pontarlier"}, at=at)      # main row
    line = sqlite3.connect(bijou).execute("SELECT DO_Type, DO_Piece, DL_No FROM F_DOCLIGNE WHERE DO_Domaine = 0"
                                          " AND DO_Type = 1 ORDER BY cbMarq LIMIT 1").fetchone()
    sage.update_row(bijou, "F_DOCLIGNE", {"DL_No": line[2]}, {"DL_Design": "Gravure offerte"}, at=at)  # child row
    sage.insert_row(bijou, "F_COLLABORATEUR", {"CO_No": BAD_UNKNOWN_REP_NO, "CO_Nom": "FANTOME", "CO_Prenom": "Paul",
                                               "CO_Vendeur": 1, "CO_EMail": "paul.fantome@bijou.fr"}, at=at)  # joined row
    sage.insert_row(bijou, "F_CONTACTT", {"CT_Num": "ECRIN", "CT_No": 7001, "CT_Nom": "NOUVEAU"}, at=at)
    sage.set_clock(bijou, T0 + minutes(20))
    after = full_read(bijou)
    expected = {key for key, hashed in after.items() if before.get(key) != hashed}

    result, spy = run_spied(agent, bijou)
    delivered = agent.drain("BIJOU")

    assert result.ok and not result.realignment and all(spy.since[e] is not None for e in ENTITIES)
    assert {(e.entity, e.key) for e in delivered.changes()} == expected
    assert ("order", f"1:{line[1]}") in expected and ("contact", "7001") in expected
    assert ("account", BAD_ACCOUNT_UNKNOWN_REP) in expected          # its sales rep now exists: valid
    assert result.counts["changed"] + result.counts["created"] + result.counts["invalid"] == len(expected)
    assert_sums_kept(agent)


def test_a_cycle_reads_keys_only_in_the_ranges_where_sage_and_the_agent_differ(agent, bijou):
    agent.run("BIJOU")
    agent.drain("BIJOU")
    sage.set_clock(bijou, T0 + minutes(10))

    quiet, spy = run_spied(agent, bijou)
    assert quiet.ok and agent.drain("BIJOU").changes() == []
    assert spy.key_spans == {entity: [] for entity in ENTITIES}

    marq = sqlite3.connect(bijou).execute("SELECT cbMarq FROM F_CONTACTT WHERE CT_No = 3").fetchone()[0]
    assert sage.delete_row(bijou, "F_CONTACTT", {"CT_No": 3}, at=T0 + minutes(15)) == 1
    sage.set_clock(bijou, T0 + minutes(20))
    result, spy = run_spied(agent, bijou)

    assert result.ok and agent.drain("BIJOU").keys(Op.DELETE, "contact") == {"3"}
    bucket = marq // MARQ_RANGE
    assert spy.key_spans["contact"] == [(bucket * MARQ_RANGE - 1, (bucket + 1) * MARQ_RANGE - 1)]
    assert all(spans == [] for entity, spans in spy.key_spans.items() if entity != "contact")
    with agent.checkpoint() as checkpoint:
        assert "3" not in checkpoint.shadow_lookup("BIJOU", "contact", ["3"])
    assert_sums_kept(agent)


def test_a_cycle_without_deletions_compares_only_the_rows_changed_since_and_finds_records_leaving(agent, bijou):
    agent.run("BIJOU")
    agent.drain("BIJOU")
    sage.set_clock(bijou, T0 + minutes(10))
    quiet, spy = run_spied(agent, bijou, full_scan_every=None)
    assert quiet.ok and agent.drain("BIJOU").changes() == []
    # no range compared whole, no orphan looked for among rows unchanged since the last run
    assert all(rows is not None for rows in spy.compared.values())
    assert all(since is not None for since in spy.orphans_since.values()) and spy.orphans_since
    db = sqlite3.connect(bijou)
    contacts = {str(n) for (n,) in db.execute("SELECT CT_No FROM F_CONTACTT WHERE CT_Num = 'ECRIN'")}
    before = full_read(bijou)
    # the account turned supplier: nothing deleted, yet it and its contacts leave what syncs
    sage.update_row(bijou, "F_COMPTET", {"CT_Num": "ECRIN"}, {"CT_Type": 1}, at=T0 + minutes(15))
    sage.set_clock(bijou, T0 + minutes(20))
    gone = set(before) - set(full_read(bijou))

    result, spy = run_spied(agent, bijou, full_scan_every=None)
    delivered = agent.drain("BIJOU")

    assert result.ok and not result.realignment and contacts
    assert {("account", "ECRIN")} | {("contact", n) for n in contacts} <= gone
    assert {(e.entity, e.key) for e in delivered.changes(Op.DELETE)} == gone
    assert spy.compared["account"] is not None and spy.compared["contact"] is not None
    assert spy.key_spans["account"] != []           # the ECRIN row's own span, not a range of 4096
    assert all(high - low == 1 for low, high in spy.key_spans["account"])
    with agent.checkpoint() as checkpoint:
        assert checkpoint.shadow_lookup("BIJOU", "account", ["ECRIN"]) == {}
    assert_sums_kept(agent)


def test_a_header_retyped_alone_orphans_its_lines_at_the_next_cycle(agent, bijou):
    agent.run("BIJOU")
    agent.drain("BIJOU")
    piece = sqlite3.connect(bijou).execute(
        "SELECT h.DO_Piece FROM F_DOCENTETE h WHERE h.DO_Domaine = 0 AND h.DO_Type = 0 AND EXISTS (SELECT 1"
        " FROM F_DOCLIGNE l WHERE l.DO_Domaine = 0 AND l.DO_Type = 0 AND l.DO_Piece = h.DO_Piece)").fetchone()[0]
    # the quote's header made an order by hand, its lines left as a quote's: they have no header now
    sage.update_row(bijou, "F_DOCENTETE", {"DO_Type": 0, "DO_Piece": piece}, {"DO_Type": 1}, at=T0 + minutes(15))
    sage.set_clock(bijou, T0 + minutes(20))

    result, spy = run_spied(agent, bijou, full_scan_every=None)
    delivered = agent.drain("BIJOU")

    assert result.ok and not result.realignment and spy.orphans_since["quote"] is None
    assert ("quote", f"0:{piece}") in {(e.entity, e.key) for e in delivered.changes(Op.INVALID)}
    assert ("order", f"1:{piece}") in {(e.entity, e.key) for e in delivered.changes(Op.UPSERT)}
    with agent.checkpoint() as checkpoint:
        assert checkpoint.shadow_lookup("BIJOU", "quote", [f"0:{piece}"])[f"0:{piece}"].orphan


def test_a_key_renamed_in_place_is_deleted_under_its_old_key_by_the_next_cycle(agent, bijou):
    agent.run("BIJOU")
    agent.drain("BIJOU")
    marq = sqlite3.connect(bijou).execute("SELECT cbMarq FROM F_CONTACTT WHERE CT_No = 3").fetchone()[0]
    # the same row (same cbMarq: no range count or sum differs) under a new key
    assert sage.update_row(bijou, "F_CONTACTT", {"cbMarq": marq}, {"CT_No": 990300}, at=T0 + minutes(15)) == 1
    sage.set_clock(bijou, T0 + minutes(20))

    result, spy = run_spied(agent, bijou, full_scan_every=None)
    delivered = agent.drain("BIJOU")

    assert result.ok and not result.realignment and spy.key_spans["contact"] == []
    assert delivered.keys(Op.UPSERT, "contact") == {"990300"} and delivered.keys(Op.DELETE, "contact") == {"3"}
    with agent.checkpoint() as checkpoint:
        assert set(checkpoint.shadow_lookup("BIJOU", "contact", ["3", "990300"])) == {"990300"}
    assert_sums_kept(agent)


def test_a_change_that_cbModification_does_not_show_is_found_by_the_periodic_full_scan(agent, bijou):
    agent.run("BIJOU")
    agent.drain("BIJOU")
    # Saved with a cbModification far older than the watermark (a tool writing Sage's tables
    # directly, an import keeping the old stamp): no index seek can see it.
    old = sqlite3.connect(bijou).execute("SELECT cbModification FROM F_COMPTET WHERE CT_Num = 'ECRIN'").fetchone()[0]
    with sqlite3.connect(bijou) as db:
        db.execute("UPDATE F_COMPTET SET CT_Ville = 'Morteau', cbModification = ? WHERE CT_Num = 'ECRIN'",
                   ((dt.datetime.fromisoformat(old) - dt.timedelta(days=1)).isoformat(sep=" "),))
    sage.set_clock(bijou, T0 + minutes(10))

    ordinary, _ = run_spied(agent, bijou)
    assert ordinary.ok and agent.drain("BIJOU").changes() == []

    scan, spy = run_spied(agent, bijou, full_scan_every=dt.timedelta(0))
    delivered = agent.drain("BIJOU")

    assert scan.ok and not scan.realignment and all(spy.since[e] is None for e in ENTITIES)
    assert [(e.key, e.record["city"]) for e in delivered.changes()] == [("ECRIN", "Morteau")]
    assert scan.counts["changed"] == 1 and scan.counts["resent"] == 0
    with agent.checkpoint() as checkpoint:
        assert checkpoint.last_full_scan("BIJOU") is not None


def copied_row(path: Path, table: str, where: str, **changes) -> dict:
    """A row of `table` (the first matching `where`) with `changes`, without Sage's cb columns."""
    db = sqlite3.connect(path)
    db.row_factory = sqlite3.Row
    row = dict(db.execute(f"SELECT * FROM {table} WHERE {where} ORDER BY cbMarq LIMIT 1").fetchone())
    db.close()
    return {**{name: value for name, value in row.items() if not name.startswith("cb")}, **changes}


def test_orphan_rows_cost_a_quiet_cycle_no_key_read_are_never_deleted_and_sync_once_fixed(agent, bijou):
    db = sqlite3.connect(bijou)
    number = db.execute("SELECT MAX(CT_No) + 1 FROM F_CONTACTT").fetchone()[0]
    line_no = db.execute("SELECT MAX(DL_No) + 1 FROM F_DOCLIGNE").fetchone()[0]
    db.close()
    sage.insert_row(bijou, "F_CONTACTT", {"CT_Num": "ZZABSENT", "CT_No": number, "CT_Nom": "ORPHELIN"}, at=T0)
    sage.insert_row(bijou, "F_DOCLIGNE", copied_row(bijou, "F_DOCLIGNE", "DO_Domaine = 0 AND DO_Type = 1",
                                                    DO_Piece="BC99999", DL_No=line_no, DL_Ligne=1000), at=T0)
    # a line of an order Sage has, after it: deleting the orphan line leaves the table's counters as they are
    sage.insert_row(bijou, "F_DOCLIGNE", copied_row(bijou, "F_DOCLIGNE", "DO_Domaine = 0 AND DO_Type = 1",
                                                    DL_No=line_no + 1, DL_Ligne=1001), at=T0)
    first = agent.run("BIJOU")
    sent = agent.drain("BIJOU")
    assert first.ok and {("contact", str(number)), ("order", "1:BC99999")} <= {
        (e.entity, e.key) for e in sent.changes(Op.INVALID)}
    with agent.checkpoint() as checkpoint:
        orphan = checkpoint.shadow_lookup("BIJOU", "contact", [str(number)])[str(number)]
        lines = checkpoint.shadow_lookup("BIJOU", "order", ["1:BC99999"])["1:BC99999"]
        assert orphan.orphan and orphan.invalid and not orphan.sent_valid and lines.orphan
    assert_sums_kept(agent)
    sage.set_clock(bijou, T0 + minutes(10))

    quiet, spy = run_spied(agent, bijou, full_scan_every=None)

    assert quiet.ok and agent.drain("BIJOU").changes() == []
    assert all(spy.key_spans[entity] == [] for entity in ENTITIES)        # Sage's sums are the agent's
    # the account created (the contact unchanged since), the orphan order line deleted
    sage.insert_row(bijou, "F_COMPTET", copied_row(bijou, "F_COMPTET", "CT_Num = 'ECRIN'", CT_Num="ZZABSENT",
                                                   CT_Intitule="Compte créé ensuite"), at=T0 + minutes(15))
    sage.delete_row(bijou, "F_DOCLIGNE", {"DL_No": line_no}, at=T0 + minutes(15))
    sage.set_clock(bijou, T0 + minutes(20))

    fixed, spy = run_spied(agent, bijou, full_scan_every=None)
    delivered = agent.drain("BIJOU")

    assert fixed.ok and not fixed.realignment and spy.key_spans["order"] == []
    assert delivered.keys(Op.UPSERT, "account") == {"ZZABSENT"}
    assert delivered.keys(Op.UPSERT, "contact") == {str(number)} and delivered.keys(Op.DELETE, "contact") == set()
    assert delivered.keys(Op.DELETE, "order") == {"1:BC99999"} and delivered.changes(Op.INVALID) == []
    with agent.checkpoint() as checkpoint:
        adopted = checkpoint.shadow_lookup("BIJOU", "contact", [str(number)])[str(number)]
        assert not adopted.invalid and not adopted.orphan
        assert checkpoint.shadow_lookup("BIJOU", "order", ["1:BC99999"]) == {}
    assert_sums_kept(agent)


# --- the compact checkpoint --------------------------------------------------------------------------
_FIRST_SCHEMA_SHADOW = """
CREATE TABLE shadow (dossier TEXT NOT NULL, entity TEXT NOT NULL, key TEXT NOT NULL, raw_hash TEXT NOT NULL,
    record_hash TEXT NOT NULL, invalid INTEGER NOT NULL, modified TEXT, marq INTEGER,
    PRIMARY KEY (dossier, entity, key)) WITHOUT ROWID;
CREATE TABLE staged_shadow (dossier TEXT NOT NULL, entity TEXT NOT NULL, key TEXT NOT NULL, raw_hash TEXT NOT NULL,
    record_hash TEXT NOT NULL, invalid INTEGER NOT NULL, modified TEXT, marq INTEGER, deleted INTEGER NOT NULL,
    PRIMARY KEY (dossier, entity, key)) WITHOUT ROWID;
DROP TABLE tracked; DROP TABLE staged_tracked; DROP TABLE scopes; DROP TABLE tracked_sums;
PRAGMA user_version = 1;
"""


def as_first_schema(state: Path, dossier_path: Path) -> int:
    """Rewrite the agent's state as the first schema wrote it (full hex hashes, one shadow row per
    record with its dossier and entity); returns the records written."""
    connection = connect(sqlite_connection_string(dossier_path))
    reader = Sage100Reader(connection)
    rows = [("BIJOU", entity.value, row.key, row.raw_hash, row.record_hash, int(row.record_text is None),
             row.modified.isoformat(timespec="microseconds") if row.modified else None, row.marq)
            for entity in reader.entities() for row in reader.changed(entity, None)]
    connection.close()
    with sqlite3.connect(state) as db:
        db.executescript(_FIRST_SCHEMA_SHADOW)
        db.executemany("INSERT INTO shadow VALUES (?, ?, ?, ?, ?, ?, ?, ?)", rows)
    return len(rows)


def test_the_first_schemas_shadow_is_migrated_and_nothing_is_sent_again(agent, bijou):
    agent.run("BIJOU")
    agent.drain("BIJOU")
    with agent.checkpoint() as checkpoint:
        counts = checkpoint.shadow_counts("BIJOU")
    written = as_first_schema(agent.state_path, bijou)
    assert written == sum(c["records"] for c in counts.values())

    with agent.checkpoint() as checkpoint:
        assert checkpoint.shadow_counts("BIJOU") == counts
        ecrin = checkpoint.shadow_lookup("BIJOU", "account", ["ECRIN"])["ECRIN"]
        assert ecrin.hash == short_hash(full_read(bijou)[("account", "ECRIN")]) and len(ecrin.hash) == 8
    with sqlite3.connect(agent.state_path) as db:
        assert db.execute("PRAGMA user_version").fetchone()[0] == 3
        assert not db.execute("SELECT 1 FROM sqlite_schema WHERE name IN ('shadow', 'staged_shadow')").fetchall()
    sage.set_clock(bijou, T0 + minutes(10))

    quiet = agent.run("BIJOU")
    assert quiet.ok and agent.drain("BIJOU").changes() == []
    sage.update_row(bijou, "F_COMPTET", {"CT_Num": "ECRIN"}, {"CT_Ville": "Ornans"}, at=T0 + minutes(15))
    sage.set_clock(bijou, T0 + minutes(20))
    changed = agent.run("BIJOU")
    assert [(e.key, e.record["city"]) for e in agent.drain("BIJOU").changes()] == [("ECRIN", "Ornans")]
    assert changed.counts["changed"] == 1 and changed.counts["created"] == 0
    assert_sums_kept(agent)


def test_a_row_the_first_schema_sent_as_an_orphan_is_tracked_as_one(tmp_path):
    state = tmp_path / "agent-state.db"
    Checkpoint(state).close()
    with sqlite3.connect(state) as db:
        db.executescript(_FIRST_SCHEMA_SHADOW)
        db.executemany("INSERT INTO shadow VALUES ('BIJOU', 'contact', ?, ?, ?, ?, NULL, ?)",
                       [("990", "orphan:" + "ab" * 32, "", 1, 42), ("991", "cd" * 32, "ef" * 32, 0, 43),
                        ("992", "orphan:" + "12" * 32, "34" * 32, 1, 44)])

    with Checkpoint(state) as checkpoint:
        found = checkpoint.shadow_lookup("BIJOU", "contact", ["990", "991", "992"])
        assert found["990"].orphan and not found["990"].sent_valid and found["990"].hash == bytes.fromhex("ab" * 8)
        assert found["992"].orphan and found["992"].sent_valid and found["992"].invalid
        assert not found["991"].orphan and found["991"].hash == bytes.fromhex("ef" * 8)
        assert checkpoint.marq_sums("BIJOU", "contact") == {0: (1, 43)}     # as Sage's sums: no orphan


def test_an_agent_state_written_before_signposts_were_kept_opens_and_keeps_the_next_one(agent, bijou):
    agent.run("BIJOU")
    agent.drain("BIJOU")
    with sqlite3.connect(agent.state_path) as db:             # the detection table as earlier releases made it
        db.executescript("CREATE TABLE old (dossier TEXT PRIMARY KEY, history_from TEXT, full_scan_at TEXT,"
                         " staged_scan_at TEXT) WITHOUT ROWID; INSERT INTO old SELECT dossier, history_from,"
                         " full_scan_at, staged_scan_at FROM detection; DROP TABLE detection;"
                         " ALTER TABLE old RENAME TO detection;")
    with agent.checkpoint() as checkpoint:
        assert checkpoint.last_signpost("BIJOU") is None and checkpoint.history_from("BIJOU") is not None
    sage.set_clock(bijou, T0 + minutes(10))

    again = agent.run("BIJOU")

    assert again.ok and not again.realignment and agent.drain("BIJOU").changes(Op.UPSERT) == []
    with agent.checkpoint() as checkpoint:
        assert checkpoint.last_signpost("BIJOU") == T0 + minutes(10)


def test_the_checkpoint_keeps_a_short_hash_and_integers_per_record(agent, bijou):
    agent.run("BIJOU")
    with sqlite3.connect(agent.state_path) as db:
        row = db.execute("SELECT key, hash, state, marq, modified FROM tracked LIMIT 1").fetchone()
        assert isinstance(row[1], bytes) and len(row[1]) == 8 and isinstance(row[4], int)
        assert moment_number(dt.datetime(2000, 1, 1, 0, 0, 1)) == 1_000_000


# --- the history window and the order of a first load ------------------------------------------------
def document_dates(path: Path) -> dict[tuple[str, str], dt.date | None]:
    connection = connect(sqlite_connection_string(path))
    try:
        reader = Sage100Reader(connection)
        return {(entity, row.key): (dt.date.fromisoformat(row.record["date"]) if row.record and row.record["date"]
                                    else None)
                for entity in ("quote", "order", "invoice") for row in reader.changed(entity, None)}
    finally:
        connection.close()


def test_documents_older_than_the_history_window_are_sent_on_demand_only(agent, bijou):
    dates = document_dates(bijou)
    start = dt.date(2024, 1, 1)            # P_DOSSIER: fiscal years from 1 January; T0 is in 2025
    recent = {key for key, day in dates.items() if day is None or day >= start}
    older = set(dates) - recent
    assert recent and older

    first, _ = run_spied(agent, bijou, history_years=2)
    delivered = agent.drain("BIJOU")

    assert first.ok
    assert {(e.entity, e.key) for e in delivered.changes() if e.entity in ("quote", "order", "invoice")} == recent
    with agent.checkpoint() as checkpoint:
        assert checkpoint.history_from("BIJOU") == start
    sage.set_clock(bijou, T0 + minutes(10))
    quiet, _ = run_spied(agent, bijou, history_years=2)
    assert quiet.ok and agent.drain("BIJOU").changes() == []     # nothing older counts as deleted or new

    with agent.checkpoint() as checkpoint:
        checkpoint.set_history_from("BIJOU", None, all_history=True)     # `ssm-connector agent history --all`
    sage.set_clock(bijou, T0 + minutes(20))
    more, _ = run_spied(agent, bijou, history_years=2)
    sent = agent.drain("BIJOU")

    assert more.ok and {(e.entity, e.key) for e in sent.changes()} == older
    assert {e.op for e in sent.changes()} == {Op.UPSERT} and more.counts["created"] == len(older)
    assert_sums_kept(agent)


def test_a_first_load_sends_reference_data_first_then_documents_newest_first(agent, bijou):
    agent.run("BIJOU")
    changes = [e for e in agent.drain("BIJOU").changes() if e.op is Op.UPSERT]
    order = [e.entity for e in changes]
    assert order == sorted(order, key=ENTITIES.index)           # users, accounts, contacts, products, documents
    keys = current_keys(bijou)
    assert {e.key for e in changes if e.entity == "quote"} == keys["quote"]
    kinds = [e.record["kind"] for e in changes if e.entity == "account"]
    assert kinds == sorted(kinds) and set(kinds) == {"client", "prospect"}    # clients, then prospects
    with sqlite3.connect(bijou) as db:
        marq = {f"{t}:{p}": m for t, p, m in db.execute(
            "SELECT DO_Type, DO_Piece, cbMarq FROM F_DOCENTETE WHERE DO_Domaine = 0 AND DO_Type IN (0, 1)")}
        account_marq = dict(db.execute("SELECT CT_Num, cbMarq FROM F_COMPTET"))
    for kind in ("client", "prospect"):                                       # each newest first
        marqs = [account_marq[e.key] for e in changes if e.entity == "account" and e.record["kind"] == kind]
        assert len(marqs) > 1 and marqs == sorted(marqs, reverse=True), kind
    for entity in ("quote", "order"):
        marqs = [marq[e.key] for e in changes if e.entity == entity]
        assert marqs == sorted(marqs, reverse=True), entity
