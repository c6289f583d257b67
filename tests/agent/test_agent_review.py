"""Review scenarios of the agent: records that must neither be lost, duplicated nor block a
dossier, on demo Sage 100 databases read through pyodbc (`Driver=SQLite3`) and the real
`LocalBus`; what reached the bus and the agent's state are asserted."""
from __future__ import annotations

import datetime as dt

from agent import demo_builder as sage
from shared.envelope import MAX_MESSAGE_BYTES, Op

from agent_support import T0, minutes


def seconds(n: float) -> dt.timedelta:
    return dt.timedelta(seconds=n)


def test_a_record_with_thousands_of_problems_is_reported_and_the_dossier_goes_on(agent, bijou):
    agent.run("BIJOU")
    agent.drain("BIJOU")
    # A Sage version whose DL_Design is wider than SSM accepts: every line of the invoice is refused.
    piece = sage.insert_document(bijou, doc_type=6, tiers="RUBIS", at=T0 + minutes(5),
                                 lines=[{"AR_Ref": "BAAR01", "DL_Qte": 1, "DL_Design": "Bague gravée " + "x" * 70}
                                        for _ in range(4000)])
    sage.update_row(bijou, "F_COMPTET", {"CT_Num": "ECRIN"}, {"CT_Ville": "Besançon"}, at=T0 + minutes(5))
    sage.set_clock(bijou, T0 + minutes(10))

    result = agent.run("BIJOU")
    delivered = agent.drain("BIJOU")

    assert result.ok, result.error
    [invalid] = delivered.changes(Op.INVALID)
    assert invalid.key == f"6:{piece}" and "longer than the 69 characters" in invalid.error
    assert len(invalid.to_json().encode("utf-8")) < MAX_MESSAGE_BYTES // 8
    assert "more problem" in invalid.error
    assert delivered.keys(Op.UPSERT, "account") == {"ECRIN"}
    with agent.checkpoint() as checkpoint:
        assert checkpoint.pending("BIJOU") is None
        assert checkpoint.shadow_lookup("BIJOU", "invoice", [f"6:{piece}"])[f"6:{piece}"].invalid
    assert agent.run("BIJOU").ok and agent.drain("BIJOU").changes() == []

