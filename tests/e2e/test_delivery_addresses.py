"""Delivery addresses through the whole local pipeline: Sage's `F_LIVRAISON` rows become SSM account
addresses (created, changed and deleted from Sage only), and a quote made in SSM becomes a devis
delivered to the address the rep chose, else to the client's main one; a tenant without account
addresses is told apart by the tenant check and quotes still reach Sage."""
from __future__ import annotations

from agent.demo_builder import delete_row, insert_row, update_row
from shared.ssm.client import SsmClient
from shared.ssm.tenant import check_tenant
from shared.state.records import IncidentState
from tests.e2e.test_inbound import rep_of, session
from tests.e2e.test_quotes import D, devis_requested, price_book

DEPOT = 9002


def add_addresses(p, tiers: str) -> int:
    """A second delivery address of the client (a shop), as a Sage user enters it; returns the
    `LI_No` of its main one (the demo gives every client its own, as Sage does)."""
    insert_row(p.databases[D], "F_LIVRAISON", {
        "LI_No": DEPOT, "CT_Num": tiers, "LI_Intitule": "Boutique de Dole", "LI_Adresse": "8 place aux Fleurs",
        "LI_Complement": "Cour B", "LI_CodePostal": "39100", "LI_Ville": "Dole", "LI_Principal": 0})
    [main] = p.sage(D, "SELECT LI_No FROM F_LIVRAISON WHERE CT_Num = ? AND LI_Principal = 1", (tiers,))
    return main[0]


def priced_client_with_addresses(p) -> tuple[str, str, int]:
    """A client with the demo's price book, given delivery addresses in Sage and synced: its
    tiers, the first article of its price book and its main address's `LI_No`."""
    tiers, (article, _, _) = price_book(p)
    main = add_addresses(p, tiers)
    assert p.run().ok
    return tiers, article, main


def addresses_of(p, account_id: int) -> dict[str, dict]:
    """The live SSM account addresses of an account, by description."""
    return {r["description"]: r for r in p.simulator.records("accountAddresses")
            if not r.get("deleted") and r["accountId"]["id"] == account_id}


def address_calls(p) -> list:
    return [c for c in p.simulator.calls if c.resource == "accountAddresses"]


def a_client(p) -> str:
    return p.sage(D, "SELECT CT_Num FROM F_COMPTET WHERE CT_Type = 0 AND CT_Prospect = 0 AND CT_Sommeil = 0"
                     " ORDER BY CT_Num")[0][0]


def tenant_findings(p, dossier: str = D) -> dict[str, str]:
    with SsmClient.from_settings(p.settings.ssm) as client:
        report = check_tenant(client, p.settings)
    return {f.code: f.severity.value for f in report.about(dossier) if f.code.startswith("tenant.addresses")}


def test_addresses_created_changed_and_deleted_in_sage_reach_ssm_and_nothing_else_moves(make_pipeline):
    p = make_pipeline()
    assert p.run().ok
    tiers = a_client(p)
    [client] = p.sage(D, "SELECT CT_Intitule, CT_Adresse, CT_Ville FROM F_COMPTET WHERE CT_Num = ?", (tiers,))
    account = p.ssm_id(D, "account", tiers)
    assert set(addresses_of(p, account)) == {client["CT_Intitule"]}     # the main one, from the first load
    main = add_addresses(p, tiers)
    assert p.run().ok

    shown = addresses_of(p, account)
    assert {name: (r["address1"], r.get("address2"), r.get("postcode"), r["city"]) for name, r in shown.items()} == {
        client["CT_Intitule"]: (client["CT_Adresse"], shown[client["CT_Intitule"]].get("address2"),
                                shown[client["CT_Intitule"]].get("postcode"), client["CT_Ville"]),
        "Boutique de Dole": ("8 place aux Fleurs", "Cour B", "39100", "Dole")}
    assert p.ssm_id(D, "delivery_address", str(DEPOT)) == shown["Boutique de Dole"]["id"]
    assert p.ssm_id(D, "delivery_address", str(main)) == shown[client["CT_Intitule"]]["id"]
    assert tenant_findings(p) == {"tenant.addresses.on": "info"}

    p.simulator.reset_calls()
    assert p.run().ok                                   # nothing changed in Sage: no call about addresses
    assert address_calls(p) == []

    update_row(p.databases[D], "F_LIVRAISON", {"LI_No": DEPOT}, {"LI_Ville": "Dole-Centre", "LI_CodePostal": "39101"})
    assert p.run().ok
    changed = addresses_of(p, account)["Boutique de Dole"]
    assert (changed["city"], changed["postcode"]) == ("Dole-Centre", "39101")
    assert [c.method for c in address_calls(p)] == ["PUT"]

    delete_row(p.databases[D], "F_LIVRAISON", {"LI_No": DEPOT})
    assert p.run().ok
    assert set(addresses_of(p, account)) == {client["CT_Intitule"]}
    assert p.simulator.record("accountAddresses", changed["id"])["deleted"] is True    # kept, marked deleted


def test_a_quote_with_a_chosen_address_makes_a_devis_with_its_li_no_and_one_without_the_main_one(make_pipeline):
    p = make_pipeline()
    assert p.run().ok
    tiers, a1, main = priced_client_with_addresses(p)
    _, email = rep_of(p)
    account, product = p.ssm_id(D, "account", tiers), p.ssm_id(D, "product", a1)
    chosen = p.ssm_id(D, "delivery_address", str(DEPOT))
    line = [{"product_id": product, "quantity": 1, "price": 1}]
    with session(p, email) as rep:
        to_shop = rep.create_quote(account, reference="Livraison Dole", lines=line, accountAddressId=chosen)
        to_main = rep.create_quote(account, reference="Livraison siège", lines=line)
    assert p.run().ok                                   # priced
    with session(p, email) as rep:
        rep.request_sync(to_shop)
        rep.request_sync(to_main)
    assert p.run().ok

    delivered = dict(p.sage(D, "SELECT DO_Ref, LI_No FROM F_DOCENTETE WHERE DO_Domaine = 0 AND DO_Type = 0"
                               " AND DO_Ref LIKE 'Livraison%'"))
    assert delivered == {"Livraison Dole": DEPOT, "Livraison siège": main}
    assert not [i for i in p.runtime.store.list_incidents(D, state=IncidentState.OPEN) if i.entity == "quote"]


def test_an_ssm_address_of_no_sage_address_is_a_warning_on_the_quote_and_the_devis_takes_the_main_one(make_pipeline):
    p = make_pipeline()
    assert p.run().ok
    tiers, a1, main = priced_client_with_addresses(p)
    _, email = rep_of(p)
    account = p.ssm_id(D, "account", tiers)
    with session(p, email) as rep:                      # an address typed in SSM: Sage has no such address
        typed = rep._client.create("accountAddresses", {"accountId": account, "address1": "Quai 4",
                                                        "city": "Lyon", "description": "Chantier"})
    quote = devis_requested(p, email, account, p.ssm_id(D, "product", a1), "Chantier Lyon", accountAddressId=typed)

    [(piece, delivery)] = p.sage(D, "SELECT DO_Piece, LI_No FROM F_DOCENTETE WHERE DO_Ref = 'Chantier Lyon'")
    assert delivery == main
    [warning] = [i for i in p.runtime.store.list_incidents(D, state=IncidentState.OPEN) if i.entity == "quote"]
    assert (warning.key, warning.operation) == (f"0:{piece}", "delivery-address")
    assert warning.message == p.simulator.record("salesorders", quote)["internalComment"] == (
        f"L'adresse de livraison choisie sur le devis (adresse SSM n° {typed}) n'est aucune adresse de livraison de "
        f"Sage : le devis {piece} a été créé avec l'adresse de livraison principale du client (n° {main}).")
    assert p.simulator.record("salesorders", quote)["reference"].startswith(piece)


def test_a_tenant_without_account_addresses_refuses_them_the_check_says_so_and_quotes_still_reach_sage(
        make_pipeline):
    def no_addresses(simulator):
        simulator.unavailable = frozenset({"accountAddresses"})

    p = make_pipeline(before_start=no_addresses)
    assert p.run().ok
    tiers = a_client(p)
    main = add_addresses(p, tiers)
    p.run()
    refused = {i.key for i in p.runtime.store.list_incidents(D, state=IncidentState.OPEN)
               if i.entity == "delivery_address"}
    assert {str(main), str(DEPOT)} <= refused
    assert p.simulator.records("accountAddresses") == []
    assert tenant_findings(p) == {"tenant.addresses.unavailable": "avertissement"}


def test_addresses_switched_off_for_a_dossier_are_not_sent_and_its_quotes_take_the_main_address(make_pipeline):
    p = make_pipeline(dossier_settings={D: {"delivery_addresses": "false"}})
    assert p.run().ok
    tiers, a1, main = priced_client_with_addresses(p)
    assert address_calls(p) == [] and p.runtime.store.get_link(D, "delivery_address", str(main)) is None
    assert tenant_findings(p) == {"tenant.addresses.off": "info"}

    _, email = rep_of(p)
    devis_requested(p, email, p.ssm_id(D, "account", tiers), p.ssm_id(D, "product", a1), "Sans adresse")
    assert p.sage(D, "SELECT LI_No FROM F_DOCENTETE WHERE DO_Ref = 'Sans adresse'")[0][0] == main


def stock_shown(p, dossier_settings=None) -> str:
    """The stock a priced quote shows for one article held in three depots."""
    tiers, (a1, _, _) = price_book(p)
    for depot, stock, reserved in ((1, 10, 2), (2, 6, 1), (3, 3, 0)):
        delete_row(p.databases[D], "F_ARTSTOCK", {"AR_Ref": a1, "DE_No": depot})
        insert_row(p.databases[D], "F_ARTSTOCK", {"AR_Ref": a1, "DE_No": depot, "AS_QteSto": stock,
                                                  "AS_QteRes": reserved})
    assert p.run().ok
    _, email = rep_of(p)
    with session(p, email) as rep:
        quote = rep.create_quote(p.ssm_id(D, "account", tiers), reference="Stock",
                                 lines=[{"product_id": p.ssm_id(D, "product", a1), "quantity": 1, "price": 1}])
    assert p.run().ok
    comment = p.simulator.record("salesorders", quote)["internalComment"]
    return next(line for line in comment.splitlines() if a1 in line)


def test_a_priced_quote_shows_the_stock_of_every_depot_or_of_the_dossiers_default_one_as_configured(make_pipeline):
    every = make_pipeline()
    assert every.run().ok
    assert stock_shown(every).endswith(": 16")             # (10 − 2) + (6 − 1) + (3 − 0)

    default = make_pipeline(dossier_settings={D: {"stock_depot": "default"}})
    assert default.run().ok
    update_row(default.databases[D], "F_DEPOT", {"DE_No": 1}, {"DE_Principal": 0})
    update_row(default.databases[D], "F_DEPOT", {"DE_No": 2}, {"DE_Principal": 1})
    assert stock_shown(default).endswith(": 5")             # depot 2, Sage's default: 6 − 1


def test_an_address_whose_create_answer_was_lost_is_found_again_and_not_created_twice(make_pipeline):
    from local.simulator.faults import TIMEOUT

    p = make_pipeline(client_options=dict(timeout_s=0.3, max_retries=0, backoff_base_s=0.01))
    assert p.run().ok
    tiers = a_client(p)
    account = p.ssm_id(D, "account", tiers)
    p.simulator.faults.timeout_hold_s = 0.8
    p.simulator.faults.fail_next(TIMEOUT, method="POST", resource="accountAddresses")   # done, answer lost
    add_addresses(p, tiers)
    p.simulator.reset_calls()

    p.run()
    assert p.run().ok

    posts = [c for c in address_calls(p) if c.method == "POST"]
    assert len(posts) == 1 and posts[0].fault == TIMEOUT            # the create was never sent again
    shop = [r for r in p.simulator.records("accountAddresses")
            if r["accountId"]["id"] == account and r["description"] == "Boutique de Dole"]
    assert len(shop) == 1 and not shop[0].get("deleted")
    assert p.runtime.store.get_link(D, "delivery_address", str(DEPOT)).ssm_id == shop[0]["id"]
    assert [i for i in p.runtime.store.list_incidents(D, state=IncidentState.OPEN)
            if i.entity == "delivery_address"] == []
