"""Sage's accounting update ("mise à jour comptable") turns an invoice (DO_Type 6) into a posted
invoice (DO_Type 7) in place, keeping its piece number and its lines: the agent sends it as a
change of the same invoice, never as a new invoice plus the deletion of the old one. Demo Sage 100
databases read through pyodbc (`Driver=SQLite3`) and the real `LocalBus`."""
from __future__ import annotations

import sqlite3
from pathlib import Path

from agent import demo_builder as sage
from shared.envelope import Op

from agent_support import T0, minutes


def first_unposted_invoice(path: Path) -> str:
    connection = sqlite3.connect(path)
    try:
        return connection.execute("SELECT DO_Piece FROM F_DOCENTETE WHERE DO_Domaine = 0 AND DO_Type = 6"
                                  " ORDER BY cbMarq").fetchone()[0]
    finally:
        connection.close()


def post_invoice(path: Path, piece: str, at) -> None:
    """The accounting update: header and lines go from DO_Type 6 to 7, same DO_Piece and DL_No."""
    where = {"DO_Domaine": 0, "DO_Type": 6, "DO_Piece": piece}
    assert sage.update_row(path, "F_DOCLIGNE", where, {"DO_Type": 7}, at=at) > 0
    assert sage.update_row(path, "F_DOCENTETE", where, {"DO_Type": 7}, at=at) == 1


def test_a_posted_invoice_is_one_upsert_of_the_same_key_and_no_deletion(agent, bijou):
    agent.run("BIJOU")
    first = agent.drain("BIJOU")
    piece = first_unposted_invoice(bijou)
    [sent] = [e for e in first.changes(Op.UPSERT, "invoice") if e.record["number"] == piece]
    assert sent.record["doc_type"] == 6

    post_invoice(bijou, piece, at=T0 + minutes(5))
    sage.set_clock(bijou, T0 + minutes(10))
    result = agent.run("BIJOU")
    delivered = agent.drain("BIJOU")

    assert result.ok and not result.realignment
    assert [(e.op, e.entity, e.key) for e in delivered.changes()] == [(Op.UPSERT, "invoice", sent.key)]
    [posted] = delivered.changes()
    assert posted.record["doc_type"] == 7 and posted.record["number"] == piece
    assert [line["line_id"] for line in posted.record["lines"]] == [line["line_id"] for line in sent.record["lines"]]
    assert {k: v for k, v in posted.record.items() if k != "doc_type"} == \
        {k: v for k, v in sent.record.items() if k != "doc_type"}
    with agent.checkpoint() as checkpoint:
        shadow = checkpoint.shadow_lookup("BIJOU", "invoice", [sent.key])
        assert not shadow[sent.key].invalid
    assert agent.run("BIJOU").ok and agent.drain("BIJOU").changes() == []
