"""Quotes made in SSM through the whole local pipeline: a sales rep builds a quote over HTTP, Sage
prices it by its own rules (read through pyodbc), the rep asks for it, and it becomes a Sage devis."""
from __future__ import annotations

from decimal import Decimal

from agent.demo_builder import delete_row, insert_row, update_row
from shared.state.records import IncidentState
from tests.e2e.test_inbound import rep_of, session

D = "BIJOU"
PENDING, VALIDATED, AWAITING = "Brouillon – En attente", "Brouillon – Validé", "En attente de synchronisation"


def price_book(p) -> tuple[str, list[str]]:
    """A client of tariff category 2 with a 2 % discount, and three articles priced three ways:
    A1 at a price of its own (90), A2 at its category's (45, less 10 %), A3 at its base price (20)
    with its category's quantity breaks (5 % from 6 to 100)."""
    db = p.databases[D]
    tiers = p.sage(D, "SELECT CT_Num FROM F_COMPTET WHERE CT_Type = 0 AND CT_Prospect = 0 AND CT_Sommeil = 0"
                      " ORDER BY CT_Num")[0][0]
    articles = [r[0] for r in p.sage(D, "SELECT AR_Ref FROM F_ARTICLE WHERE AR_Sommeil = 0 ORDER BY AR_Ref")[:3]]
    update_row(db, "F_COMPTET", {"CT_Num": tiers}, {"N_CatTarif": 2, "CT_Taux02": 2})
    for article, base in zip(articles, (100, 50, 20)):
        update_row(db, "F_ARTICLE", {"AR_Ref": article}, {"AR_PrixVen": base})
        delete_row(db, "F_ARTCLIENT", {"AR_Ref": article})
        delete_row(db, "F_TARIFQTE", {"AR_Ref": article})
    a1, a2, a3 = articles
    insert_row(db, "F_ARTCLIENT", {"AR_Ref": a1, "AC_Categorie": 0, "CT_Num": tiers, "AC_PrixVen": 90})
    insert_row(db, "F_ARTCLIENT", {"AR_Ref": a2, "AC_Categorie": 2, "AC_PrixVen": 45, "AC_Remise": 10})
    insert_row(db, "F_ARTCLIENT", {"AR_Ref": a3, "AC_Categorie": 2, "AC_PrixVen": 20, "AC_QteMont": 1})
    insert_row(db, "F_TARIFQTE", {"AR_Ref": a3, "TQ_RefCF": "a02", "TQ_BorneSup": 5, "TQ_Remise01REM_Valeur": 0})
    insert_row(db, "F_TARIFQTE", {"AR_Ref": a3, "TQ_RefCF": "a02", "TQ_BorneSup": 100, "TQ_Remise01REM_Valeur": 5})
    return tiers, articles


def devis_requested(p, email: str, account: int, product: int, reference: str, **fields) -> int:
    """A one-line quote the rep saves, Sage prices, then the rep asks to become a devis (one run
    each); returns the quote's SSM id."""
    with session(p, email) as rep:
        quote = rep.create_quote(account, reference=reference,
                                 lines=[{"product_id": product, "quantity": 1, "price": 1}], **fields)
    assert p.run().ok
    with session(p, email) as rep:
        rep.request_sync(quote)
    assert p.run().ok
    return quote


def status_of(p, quote_id: int) -> str:
    return p.simulator.record("salesorders", quote_id)["statusId"]["value"]


def test_a_quote_goes_through_every_status_with_sages_prices_and_becomes_one_devis(make_pipeline):
    p = make_pipeline()
    assert p.run().ok
    tiers, (a1, a2, a3) = price_book(p)
    assert p.run().ok                                   # the tariffs reach SSM's products
    _, email = rep_of(p)
    product = {a: p.ssm_id(D, "product", a) for a in (a1, a2, a3)}
    with session(p, email) as rep:
        quote = rep.create_quote(p.ssm_id(D, "account", tiers), reference="Salon 2026", lines=[
            {"product_id": product[a1], "quantity": 1, "price": 1},
            {"product_id": product[a2], "quantity": 2, "price": 1},
            {"product_id": product[a3], "quantity": 10, "price": 1}])

    assert p.run().ok
    assert status_of(p, quote) == VALIDATED
    with session(p, email) as rep:
        lines = rep.quote_lines(quote)
    # A1: its own 90, less the client's 2 %: 88.20. A2: 45 less 10 % then 2 % (11.8 %): 2 × 45 × 0.882 = 79.38.
    # A3: 20, 10 pieces in the 6–100 band: 5 % then 2 % (6.9 %): 10 × 20 × 0.931 = 186.20. Total 353.78.
    assert [(Decimal(str(l["price"])), Decimal(str(l["discount1"])), Decimal(str(l["total"]))) for l in lines] == [
        (Decimal("90"), Decimal("2"), Decimal("88.2")), (Decimal("45"), Decimal("11.8"), Decimal("79.38")),
        (Decimal("20"), Decimal("6.9"), Decimal("186.2"))]
    header = p.simulator.record("salesorders", quote)
    assert Decimal(str(header["total"])) == Decimal("353.78")
    assert header["internalComment"].startswith("PRIX VALIDÉS : Les prix ont été calculés via Sage 100.")

    p.simulator.reset_calls()
    assert p.run().ok                                   # nothing changed: never priced again
    assert not [c for c in p.simulator.calls if c.method == "PUT" and c.resource in ("salesorders", "salesordersLines")]

    with session(p, email) as rep:                      # an edit after validation: priced again
        rep._client.update("salesordersLines", lines[2]["id"], {"quantity": 3})
    assert p.run().ok
    assert status_of(p, quote) == VALIDATED
    assert Decimal(str(p.simulator.record("salesordersLines", lines[2]["id"])["total"])) == Decimal("58.8")   # 3 × 20 × 0.98

    with session(p, email) as rep:
        rep.request_sync(quote)
    assert p.run().ok and p.run().ok                    # asked twice over two cycles: one devis

    [devis] = p.sage(D, "SELECT * FROM F_DOCENTETE WHERE DO_Domaine = 0 AND DO_Type = 0 AND DO_Ref = 'Salon 2026'")
    assert devis["DO_Tiers"] == tiers and Decimal(str(devis["DO_TotalHT"])) == Decimal("226.38")   # 88.2+79.38+58.8
    sage_lines = p.sage(D, "SELECT * FROM F_DOCLIGNE WHERE DO_Domaine = 0 AND DO_Type = 0 AND DO_Piece = ?"
                           " ORDER BY DL_Ligne", (devis["DO_Piece"],))
    assert [(l["AR_Ref"], Decimal(str(l["DL_Qte"])), Decimal(str(l["DL_PrixUnitaire"])),
             Decimal(str(l["DL_Remise01REM_Valeur"])), Decimal(str(l["DL_MontantHT"]))) for l in sage_lines] == [
        (a1, 1, 90, Decimal("2"), Decimal("88.2")), (a2, 2, 45, Decimal("11.8"), Decimal("79.38")),
        (a3, 3, 20, Decimal("2"), Decimal("58.8"))]
    assert p.simulator.record("salesorders", quote)["reference"] == f"{devis['DO_Piece']} · Salon 2026"
    assert p.runtime.store.get_link(D, "quote", f"0:{devis['DO_Piece']}").ssm_id == quote

    p.simulator.reset_calls()
    assert p.run().ok                                   # the devis read back from Sage: no change to send
    assert not [c for c in p.simulator.calls if c.method == "PUT" and c.resource in ("salesorders", "salesordersLines")]

    [first] = [l for l in sage_lines if l["AR_Ref"] == a1]
    update_row(p.databases[D], "F_DOCLIGNE", {"DL_No": first["DL_No"]},     # edited in Sage: Sage's from now on
               {"DL_Qte": 2, "DL_MontantHT": 176.4, "DL_MontantTTC": 211.68})
    update_row(p.databases[D], "F_DOCENTETE", {"DO_Domaine": 0, "DO_Type": 0, "DO_Piece": devis["DO_Piece"]},
               {"DO_TotalHT": 314.58})                  # 176.4 + 79.38 + 58.8, as Sage totals it
    assert p.run().ok
    assert Decimal(str(p.simulator.record("salesordersLines", lines[0]["id"])["total"])) == Decimal("176.4")
    assert Decimal(str(p.simulator.record("salesorders", quote)["total"])) == Decimal("314.58")

    delete_row(p.databases[D], "F_DOCENTETE", {"DO_Domaine": 0, "DO_Type": 0, "DO_Piece": devis["DO_Piece"]})
    delete_row(p.databases[D], "F_DOCLIGNE", {"DO_Domaine": 0, "DO_Type": 0, "DO_Piece": devis["DO_Piece"]})
    assert p.run().ok
    assert p.simulator.record("salesorders", quote)["deleted"] is True          # deleted in Sage: in SSM too


def test_a_devis_transformed_into_an_order_in_sage_says_so_in_ssm_and_stays(make_pipeline):
    from agent.demo_builder import transform_document
    p = make_pipeline()
    assert p.run().ok
    tiers, (a1, _, _) = price_book(p)
    assert p.run().ok
    _, email = rep_of(p)
    quote = devis_requested(p, email, p.ssm_id(D, "account", tiers), p.ssm_id(D, "product", a1), "Vitrine")
    [devis] = p.sage(D, "SELECT DO_Piece FROM F_DOCENTETE WHERE DO_Type = 0 AND DO_Ref = 'Vitrine'")

    order = transform_document(p.databases[D], doc_type=0, piece=devis[0], to_type=1)
    assert p.run().ok

    kept = p.simulator.record("salesorders", quote)
    assert kept["deleted"] is False and kept["internalComment"] == f"Devenu dans Sage la commande {order}."
    assert f"{D}:1:{order}" in p.live("salesorders")                         # the order itself, as every order
    assert [e.key for e in p.runtime.store.list_journal(D, event="quote-transformed")] == [f"0:{devis[0]}"]


def test_a_quote_sage_cannot_price_goes_back_pending_with_the_reason_and_nothing_in_sage(make_pipeline):
    p = make_pipeline()
    assert p.run().ok
    tiers, (a1, _, _) = price_book(p)
    _, email = rep_of(p)
    product = p.ssm_id(D, "product", a1)
    assert p.run().ok
    update_row(p.databases[D], "F_ARTICLE", {"AR_Ref": a1}, {"AR_Sommeil": 1})   # asleep since
    devis_before = p.sage(D, "SELECT COUNT(*) FROM F_DOCENTETE WHERE DO_Type = 0")[0][0]
    with session(p, email) as rep:
        quote = rep.create_quote(p.ssm_id(D, "account", tiers), lines=[{"product_id": product, "quantity": 1,
                                                                        "price": 1}])
    p.runtime.pass_ssm_changes()                        # before the agent marks the product unavailable
    p.runtime.run_agent()
    p.runtime.drain()

    header = p.simulator.record("salesorders", quote)
    assert header["statusId"]["value"] == PENDING
    assert header["internalComment"] == (f"PRIX NON CALCULÉS : L'article « {a1} » est inconnu ou en sommeil dans "
                                         f"Sage. Corrigez le devis : il sera à nouveau calculé.")
    assert [i.key for i in p.runtime.store.list_incidents(D, state=IncidentState.OPEN) if i.entity == "quote"] == \
        [f"ssm:{quote}"]
    assert p.sage(D, "SELECT COUNT(*) FROM F_DOCENTETE WHERE DO_Type = 0")[0][0] == devis_before


def test_each_quote_sage_cannot_take_is_refused_with_its_reason_and_the_others_go_on(make_pipeline):
    p = make_pipeline(companies=("BIJOU", "ATELIER"))
    assert p.run().ok
    tiers, (a1, a2, _) = price_book(p)
    update_row(p.databases[D], "F_ARTICLE", {"AR_Ref": a2}, {"AR_PrixVen": 0})   # no price at all for A2
    delete_row(p.databases[D], "F_ARTCLIENT", {"AR_Ref": a2})
    assert p.run().ok
    _, email = rep_of(p)
    account = p.ssm_id(D, "account", tiers)
    elsewhere = p.ssm_id("ATELIER", "product", p.sage("ATELIER", "SELECT AR_Ref FROM F_ARTICLE ORDER BY AR_Ref")[0][0])
    with session(p, email) as rep:
        no_price = rep.create_quote(account, [{"product_id": p.ssm_id(D, "product", a2), "quantity": 1, "price": 1}])
        nothing = rep.create_quote(account, [{"product_id": p.ssm_id(D, "product", a1), "quantity": 0, "price": 1}])
        foreign = rep.create_quote(account, [{"product_id": elsewhere, "quantity": 1, "price": 1}])
        fine = rep.create_quote(account, [{"product_id": p.ssm_id(D, "product", a1), "quantity": 1, "price": 1}])
    devis_before = p.sage(D, "SELECT COUNT(*) FROM F_DOCENTETE WHERE DO_Type = 0")[0][0]

    assert p.run().ok

    comments = {quote: p.simulator.record("salesorders", quote)["internalComment"]
                for quote in (no_price, nothing, foreign)}
    assert f"L'article « {a2} » n'a aucun prix dans Sage" in comments[no_price]
    assert f"La quantité de l'article « {a1} » doit être positive" in comments[nothing]
    assert "n'est pas un article de ce dossier Sage" in comments[foreign]
    assert all(p.simulator.record("salesorders", q)["statusId"]["value"] == PENDING for q in comments)
    assert status_of(p, fine) == VALIDATED                                     # the others go on
    refused = {i.key for i in p.runtime.store.list_incidents(D, state=IncidentState.OPEN) if i.entity == "quote"}
    assert refused == {f"ssm:{q}" for q in (no_price, nothing, foreign)}
    assert p.sage(D, "SELECT COUNT(*) FROM F_DOCENTETE WHERE DO_Type = 0")[0][0] == devis_before
