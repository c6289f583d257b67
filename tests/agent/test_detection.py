"""Change and restore detection on Sage 100 databases read through pyodbc with `Driver=SQLite3`:
watermarks and the signpost, the overlap absorbed by content hashes, deletions from the shadow,
child rows re-sending their parent, and restore signals told apart from ordinary deletions."""
from __future__ import annotations

import datetime as dt

import pytest

from agent import demo_builder as sage
from agent.checkpoint import Checkpoint
from agent.dossiers import AgentDossiers
from agent.detection import ChangeDetector, new_run_id, server_now
from agent.odbc import connect, dbms_name, sqlite_connection_string
from shared.messages import text
from agent.sage100.reader import Sage100Reader
from shared.envelope import Envelope, Op
from shared.lifecycle import State
from shared.models import parse_record
from shared.rules import sync_order

from agent_support import T0, build_dossier, current_keys, minutes, run_spied

ENTITIES = [e.value for e in sync_order()]


def run_recording(agent, dossier="BIJOU"):
    """One run of `dossier`; returns its result and the `since` each entity's changes were read from."""
    result, spy = run_spied(agent, dossier=dossier)
    return result, spy.since


def test_every_entity_is_detected_through_pyodbc_with_the_sqlite3_driver(bijou, tmp_path):
    connection = connect(sqlite_connection_string(bijou))
    assert "Driver=SQLite3" in sqlite_connection_string(bijou) and dbms_name(connection).startswith("SQLite")
    reader = Sage100Reader(connection, batch_rows=7)
    with Checkpoint(tmp_path / "agent.db") as checkpoint:
        detector = ChangeDetector(checkpoint, "BIJOU", reader)
        plan = detector.plan("run-1", server_now(connection))
        envelopes = [e if isinstance(e, Envelope) else e.envelope() for e in detector.envelopes(plan)]
        checkpoint.rollback()
    connection.close()

    assert plan.signpost == T0 and plan.realignment
    keys = current_keys(bijou)
    for entity in ENTITIES:
        sent = [e for e in envelopes if e.entity == entity]
        assert {e.key for e in sent} == keys[entity] and len(sent) == len(keys[entity]), entity
        for envelope in sent:
            assert parse_record(entity, envelope.record).key == envelope.key
    assert plan.identity["database_name"] == "BIJOU" and "F_DOCLIGNE" in plan.probes


def test_first_run_reads_everything_then_each_entity_from_its_watermark_or_the_last_start_less_the_overlap(
        agent, bijou):
    first, since_first = run_recording(agent)
    assert set(since_first) == set(ENTITIES) and all(value is None for value in since_first.values())

    second, since_second = run_recording(agent)
    with agent.checkpoint() as checkpoint:
        watermarks = checkpoint.watermarks("BIJOU")
        assert checkpoint.last_signpost("BIJOU") == T0                 # the Sage clock when the run started
    assert not second.realignment
    for entity in ENTITIES:
        assert since_second[entity] == max(watermarks[entity].modified, T0) - dt.timedelta(hours=1), entity
    assert any(watermarks[entity].modified < T0 for entity in ENTITIES)   # older rows: not read again
    assert second.counts["created"] == second.counts["changed"] == 0


def test_the_watermark_never_moves_past_the_signpost(agent, bijou):
    sage.update_row(bijou, "F_COMPTET", {"CT_Num": "RUBIS"}, {"CT_Ville": "Morteau"}, at=T0 + minutes(30))

    result = agent.run("BIJOU")

    with agent.checkpoint() as checkpoint:
        assert checkpoint.watermarks("BIJOU")["account"].modified == T0
    assert "RUBIS" in agent.drain("BIJOU").keys(Op.UPSERT, "account") and result.ok
    sage.set_clock(bijou, T0 + minutes(40))
    again, since = run_recording(agent)
    assert since["account"] == T0 - dt.timedelta(hours=1)
    assert again.counts["changed"] == 0 and agent.drain("BIJOU").changes() == []


def test_a_quiet_dossier_is_read_from_the_last_start_and_a_change_committed_late_is_still_found(agent, bijou):
    agent.run("BIJOU")
    sage.set_clock(bijou, T0 + minutes(180))
    quiet, since = run_recording(agent)                    # nothing changed in three hours
    assert since["account"] == T0 - dt.timedelta(hours=1) and quiet.counts["changed"] == 0
    agent.drain("BIJOU")
    # saved by a transaction that began before the quiet run started, committed after it read
    sage.update_row(bijou, "F_COMPTET", {"CT_Num": "RUBIS"}, {"CT_Ville": "Morteau"}, at=T0 + minutes(150))
    sage.set_clock(bijou, T0 + minutes(190))

    late, since = run_recording(agent)

    assert since["account"] == T0 + minutes(180) - dt.timedelta(hours=1)    # not the account's older watermark
    assert agent.drain("BIJOU").keys(Op.UPSERT, "account") == {"RUBIS"} and late.counts["changed"] == 1
    assert late.counts["read"] == 1                     # the rows of the hour before the dossier's start: not read


def test_rows_read_again_in_the_overlap_are_absorbed_by_their_content_hash(agent, bijou):
    agent.run("BIJOU")
    sage.update_row(bijou, "F_COMPTET", {"CT_Num": "RUBIS"}, {"CT_Ville": "Morteau"}, at=T0 + minutes(5))
    sage.set_clock(bijou, T0 + minutes(10))
    assert agent.run("BIJOU").counts["changed"] == 1
    agent.drain("BIJOU")
    sage.update_row(bijou, "F_COMPTET", {"CT_Num": "ECRIN"}, {"CT_Ville": "Pontarlier"}, at=T0 + minutes(15))
    sage.set_clock(bijou, T0 + minutes(20))

    result, since = run_recording(agent)
    delivered = agent.drain("BIJOU")

    assert since["account"] == T0 + minutes(10) - dt.timedelta(hours=1)      # the last run started at T0 + 10
    assert [(e.op, e.key) for e in delivered.changes()] == [(Op.UPSERT, "ECRIN")]
    assert result.counts["read"] >= 2 and result.counts["skipped_unchanged"] == result.counts["read"] - 1


def test_deleting_the_newest_row_is_a_deletion_not_a_restore(agent, bijou):
    sage.insert_row(bijou, "F_COMPTET", {"CT_Num": "DERNIER", "CT_Intitule": "Le plus récent", "CT_Type": 0},
                    at=T0 + minutes(5))
    sage.set_clock(bijou, T0 + minutes(10))
    agent.run("BIJOU")
    agent.drain("BIJOU")
    sage.delete_row(bijou, "F_COMPTET", {"CT_Num": "DERNIER"}, at=T0 + minutes(15))
    sage.set_clock(bijou, T0 + minutes(20))

    result = agent.run("BIJOU")

    assert not result.realignment, result.reasons
    assert [(e.op, e.entity, e.key) for e in agent.drain("BIJOU").changes()] == [(Op.DELETE, "account", "DERNIER")]


def test_a_server_clock_moved_back_beyond_the_overlap_realigns(agent, bijou):
    sage.update_row(bijou, "F_COMPTET", {"CT_Num": "RUBIS"}, {"CT_Ville": "Morteau"}, at=T0 + minutes(180))
    sage.set_clock(bijou, T0 + minutes(181))
    agent.run("BIJOU")
    sage.set_clock(bijou, T0 + minutes(150))
    assert not agent.run("BIJOU").realignment

    sage.set_clock(bijou, T0)
    result = agent.run("BIJOU")

    assert result.realignment and any("horloge" in reason for reason in result.reasons)


def test_a_dossier_selected_again_is_realigned_once_with_every_record_resent(agent):
    path = build_dossier(agent.folder, "BIJOU", bad_rows=True)
    agent.run("BIJOU")
    agent.drain("BIJOU")
    with agent.checkpoint() as checkpoint:
        AgentDossiers(checkpoint).deselect("BIJOU")
        assert AgentDossiers(checkpoint).select("BIJOU") == (State.INACTIVE, State.REALIGNING)

    result = agent.run("BIJOU")
    delivered = agent.drain("BIJOU")

    assert result.realignment and result.reasons == (text("agent.reason.reselected"),)
    total = sum(len(keys) for keys in current_keys(path).values())
    assert len(delivered.changes()) == total
    assert len(delivered.changes(Op.INVALID)) == result.counts["invalid"] == 2   # the two bad e-mails are left out, with a warning
    assert result.counts["resent"] == total - 2
    assert not agent.run("BIJOU").realignment


def test_child_rows_send_their_parent_again_as_one_unit(agent, bijou):
    first = agent.run("BIJOU")
    sent = agent.drain("BIJOU")
    product = sent.changes(Op.UPSERT, "product")[0]
    document = next(e for e in sent.changes(Op.UPSERT, "invoice") if len(e.record["lines"]) >= 2)
    doc_type, piece = document.key.split(":")
    quote = sent.changes(Op.UPSERT, "quote")[0]
    at = T0 + minutes(5)
    assert sage.update_row(bijou, "F_ARTSTOCK", {"AR_Ref": product.key}, {"AS_QteSto": 12345}, at=at) >= 1
    dropped = document.record["lines"][-1]["line_id"]
    assert sage.delete_row(bijou, "F_DOCLIGNE", {"DL_No": int(dropped)}, at=at) == 1
    order_piece = sage.transform_document(bijou, doc_type=0, piece=quote.key.split(":")[1], to_type=1, at=at)
    sage.set_clock(bijou, T0 + minutes(10))

    result = agent.run("BIJOU")
    delivered = agent.drain("BIJOU")

    assert first.ok and result.ok
    new_product = [e for e in delivered.changes(Op.UPSERT, "product") if e.key == product.key][0]
    assert new_product.record["stock_total"] != product.record["stock_total"]
    new_document = [e for e in delivered.changes(Op.UPSERT, "invoice") if e.key == document.key][0]
    assert [l["line_id"] for l in new_document.record["lines"]] == [l["line_id"] for l in document.record["lines"][:-1]]
    order = [e for e in delivered.changes(Op.UPSERT, "order") if e.key == f"1:{order_piece}"][0]
    assert [l["line_id"] for l in order.record["lines"]] == [l["line_id"] for l in quote.record["lines"]]
    assert delivered.keys(Op.DELETE, "quote") == {quote.key}


def test_a_record_too_large_for_one_bus_message_is_reported_not_dropped(agent, bijou):
    agent.run("BIJOU")
    agent.drain("BIJOU")
    piece = sage.insert_document(bijou, doc_type=6, tiers="RUBIS", at=T0 + minutes(5),
                                 lines=[{"AR_Ref": "BAAR01", "DL_Qte": 1, "DL_Design": f"Bague ligne {n:04d} " * 3}
                                        for n in range(1500)])
    sage.set_clock(bijou, T0 + minutes(10))

    result = agent.run("BIJOU")
    delivered = agent.drain("BIJOU")

    assert result.ok
    [invalid] = delivered.changes(Op.INVALID)
    assert invalid.key == f"F:{piece}" and "le bus en accepte" in invalid.error
    assert result.counts["invalid"] == 1


def test_run_ids_are_unique_and_sort_by_start_time():
    moments = [dt.datetime(2025, 1, 1, tzinfo=dt.timezone.utc) + dt.timedelta(microseconds=n) for n in range(50)]
    ids = [new_run_id(moment) for moment in moments] + [new_run_id(moments[-1]) for _ in range(50)]
    assert len(set(ids)) == len(ids)
    assert [i[:22] for i in sorted(ids)] == [i[:22] for i in ids]
    assert ids[0].startswith("20250101T000000000000Z-")
