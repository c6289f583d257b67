"""An invoice posted by Sage's accounting update (DO_Type 6 → 7, same piece, same lines) stays
one invoice in SSM: same record, its lines and its /sales total untouched, nothing reversed."""
from __future__ import annotations

from agent.demo_builder import update_row
from tests.e2e.conftest import decimal

D = "BIJOU"


def writes(simulator) -> list:
    return [c for c in simulator.calls if c.method in ("POST", "PUT", "DELETE") and c.resource != "login"]


def test_a_posted_invoice_stays_the_same_ssm_record_and_its_sales_total_is_not_reposted(make_pipeline):
    p = make_pipeline()
    assert p.run().ok
    [invoice] = p.sage(D, "SELECT DO_Piece, DO_TotalHT FROM F_DOCENTETE WHERE DO_Domaine = 0 AND DO_Type = 6"
                          " ORDER BY cbMarq LIMIT 1")
    piece = invoice["DO_Piece"]
    [before] = [r for r in p.simulator.records("salesorders") if r["reference"].split(" · ")[0] == piece]
    lines_before = [r for r in p.simulator.records("salesordersLines") if r["salesorderId"]["id"] == before["id"]]
    sales_before = p.simulator.records("sales")
    orders_before = len(p.simulator.records("salesorders"))
    assert lines_before and not before["deleted"]
    assert [decimal(r["total"]) for r in sales_before if r["extId"] == before["extId"]] == [decimal(invoice["DO_TotalHT"])]
    p.simulator.reset_calls()

    where = {"DO_Domaine": 0, "DO_Type": 6, "DO_Piece": piece}
    update_row(p.databases[D], "F_DOCLIGNE", where, {"DO_Type": 7})
    update_row(p.databases[D], "F_DOCENTETE", where, {"DO_Type": 7})
    summary = p.run()

    assert summary.ok, summary.render()
    assert summary.open_incidents == 0
    calls = [(c.method, c.resource, c.id) for c in writes(p.simulator)]
    assert calls in ([], [("PUT", "salesorders", before["id"])]), calls
    after = p.simulator.record("salesorders", before["id"])
    assert not after["deleted"] and after["extId"] == before["extId"] and after["reference"] == before["reference"]
    assert len(p.simulator.records("salesorders")) == orders_before
    assert [r for r in p.simulator.records("salesordersLines") if r["salesorderId"]["id"] == before["id"]] == lines_before
    assert p.simulator.records("sales") == sales_before
    assert not any("reversal" in r["extId"] for r in p.simulator.records("sales"))
