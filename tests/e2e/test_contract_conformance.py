"""Every request the connector sends, through a whole two-dossier sync with edits, deletions, a
quote turned into an order, decimal quantities and long keys, is one the SSM contract allows."""
from __future__ import annotations

from decimal import Decimal

from agent.demo_builder import delete_row, insert_document, insert_row, transform_document, update_row
from local.demo import declare_connector_fields
from shared.ssm import contract

LONG = "ATELIER_DE_PARIS_NORD"          # a dossier id longer than an extId's dossier tag
LONG_REF = "BAGUE-OR18K-SAPHIR2"         # 19 characters: AR_Ref's width


def _violations(simulator) -> list[tuple[str, str, str]]:
    custom = {resource: set(names) for resource, names in simulator.custom_fields().items()}
    found = []
    for call in simulator.calls:
        for violation in contract.request_violations(call.request, custom_fields=custom):
            found.append((call.method, call.path, violation.message))
    return found


def _first(p, dossier: str, sql: str):
    rows = p.sage(dossier, sql)
    assert rows, sql
    return rows[0]


def test_a_full_two_dossier_sync_sends_nothing_the_contract_does_not_document(make_pipeline):
    p = make_pipeline(companies=("BIJOU", LONG))
    declare_connector_fields(p.simulator)
    for dossier, database in p.databases.items():
        insert_row(database, "F_ARTICLE", {"AR_Ref": LONG_REF, "AR_Design": "Bague or 18 carats saphir",
                                           "FA_CodeFamille": _first(p, dossier, "SELECT FA_CodeFamille FROM F_FAMILLE"
                                                                                " LIMIT 1")[0],
                                           "AR_PrixVen": 1290.0, "AR_PrixAch": 610.0, "AR_Sommeil": 0})
    first = p.run()
    assert first.ok, first.render()

    bijou = p.databases["BIJOU"]
    tiers = _first(p, "BIJOU", "SELECT CT_Num FROM F_COMPTET WHERE CT_Type = 0 AND CT_Prospect = 0 ORDER BY CT_Num")[0]
    update_row(bijou, "F_COMPTET", {"CT_Num": tiers}, {"CT_Telephone": "03 81 25 19 40"})
    contact = _first(p, "BIJOU", "SELECT CT_No FROM F_CONTACTT ORDER BY CT_No")[0]
    delete_row(bijou, "F_CONTACTT", {"CT_No": contact})
    update_row(bijou, "F_ARTICLE", {"AR_Ref": LONG_REF}, {"AR_PrixVen": 1350.0})
    by_gram = insert_document(bijou, doc_type=1, tiers=tiers, rep=1,
                              lines=[{"AR_Ref": LONG_REF, "DL_Qte": "24.6", "DL_PrixUnitaire": "12.50"},
                                     {"AR_Ref": LONG_REF, "DL_Qte": 2}])
    quote = insert_document(bijou, doc_type=0, tiers=tiers, lines=[{"AR_Ref": LONG_REF, "DL_Qte": 3}])
    order = transform_document(bijou, doc_type=0, piece=quote, to_type=1)
    invoice = _first(p, "BIJOU", "SELECT DO_Piece FROM F_DOCENTETE WHERE DO_Type = 6 ORDER BY DO_Piece")[0]
    delete_row(bijou, "F_DOCENTETE", {"DO_Domaine": 0, "DO_Type": 6, "DO_Piece": invoice})
    delete_row(bijou, "F_DOCLIGNE", {"DO_Domaine": 0, "DO_Type": 6, "DO_Piece": invoice})  # as Sage deletes them
    second = p.run()
    assert second.ok, second.render()

    assert _violations(p.simulator) == []
    assert len(p.simulator.calls) > 200
    orders = p.live("salesorders")
    assert {f"BIJOU:1:{by_gram}", f"BIJOU:1:{order}"} <= set(orders)
    lines = sorted((l for l in p.simulator.records("salesordersLines", include_deleted=False)
                    if l["salesorderId"]["id"] == orders[f"BIJOU:1:{by_gram}"]["id"]), key=lambda l: l["order"])
    assert [(l["quantity"], Decimal(str(l["price"]))) for l in lines] == [(1, Decimal("307.5")),
                                                                          (2, Decimal("1350"))]
    products = [r for r in p.simulator.records("products") if r["model"] == LONG_REF]
    assert len(products) == 2 and len({r["extId"] for r in products}) == 2
    assert all(len(r["extId"]) <= 30 for r in p.simulator.records("products"))
    assert f"BIJOU:F:{invoice}" not in p.live("salesorders")
