"""A Sage row referring to a row Sage does not have (an order line's article) is an open incident
in the run that meets it, naming both, while the rest of the dossier syncs; once Sage has the
missing row, the next run sends it and, in the same run, the record that waited for it."""
from __future__ import annotations

from agent.demo_builder import insert_row, update_row
from shared.state.records import IncidentState

D = "BIJOU"
MISSING = "ZZART01"


def test_an_order_whose_article_is_missing_from_sage_is_an_incident_at_once_and_follows_the_article(make_pipeline):
    p = make_pipeline()
    [(piece, line_no)] = p.sage(D, "SELECT DO_Piece, DL_No FROM F_DOCLIGNE WHERE DO_Domaine = 0 AND DO_Type = 1"
                                   " ORDER BY DO_Piece, DL_No LIMIT 1")
    update_row(p.databases[D], "F_DOCLIGNE", {"DL_No": line_no}, {"AR_Ref": MISSING})
    orders = {row[0] for row in p.sage(D, "SELECT DO_Piece FROM F_DOCENTETE WHERE DO_Domaine = 0 AND DO_Type = 1")}

    first = p.run()

    assert sum(first.dispatch.pending.values()) == 0 and first.dispatch.dead_letters_handled == 0, first.render()
    [incident] = p.runtime.store.list_incidents(D, state=IncidentState.OPEN)
    assert (incident.entity, incident.key, incident.waiting_for) == ("order", f"1:{piece}", f"product:{MISSING}")
    assert incident.message == (
        f"La commande « 1:{piece} » fait référence à l'article « {MISSING} », qui n'existe pas dans Sage : il "
        f"n'est pas envoyé à SSM. Corrigez la référence dans Sage, ou créez l'article « {MISSING} » : il sera "
        "envoyé dès que Sage l'aura.")
    assert incident.replay_at is None                 # permanent: no timed retry spends calls on it
    sent = {ext.split(":")[-1] for ext in p.live("salesorders") if ext.startswith(f"{D}:1:")}
    assert sent == orders - {piece}                   # every other order synced in the same run

    template = dict(p.sage(D, "SELECT * FROM F_ARTICLE ORDER BY AR_Ref LIMIT 1")[0])
    insert_row(p.databases[D], "F_ARTICLE", {**{c: v for c, v in template.items() if not c.startswith("cb")},
                                             "AR_Ref": MISSING, "AR_Design": "Article créé ensuite"})
    second = p.run()

    assert second.ok and second.open_incidents == 0, second.render()
    product_id = p.ssm("products", f"{D}:{MISSING}")["id"]
    order = p.ssm("salesorders", f"{D}:1:{piece}")
    lines = [line for line in p.simulator.records("salesordersLines") if line["salesorderId"]["id"] == order["id"]]
    assert product_id in {line["productId"]["id"] for line in lines}
    assert p.runtime.store.get_incident(D, "order", f"1:{piece}", incident.operation).state is IncidentState.RESOLVED
