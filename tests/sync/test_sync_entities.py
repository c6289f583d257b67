"""Every entity of the rule table arrives in SSM with the right fields, and only once."""
from __future__ import annotations

from decimal import Decimal

from shared.models import Entity
from shared.state.records import IncidentState
from shared.sync.binder import external_id
from tests.sync.records import (client, contact, document, family, invite, line, only, product, prospect,
                                user, writes)


def test_every_entity_arrives_with_its_fields(sim, service, agent, store):
    invited = sim.seed_user("Amélie", "Durand", "Amelie.Durand@bijou.example", ext_id="BIJOU:3")
    rep = user("3", "Amélie", "Durand", "amelie.durand@bijou.example")
    order = document(Entity.ORDER, "BC00042", [line("101", 1), line("102", 2, quantity="1", unit_price="80.5",
                                                                    discount="0", description="Écrin velours")],
                     rep_key="3")
    invoice = document(Entity.INVOICE, "FA00077", [line("201", 1, quantity="1")], rep_key="3",
                       reference=None)
    outcome = service.apply_batch(agent.run(rep, client(rep_key="3"), prospect(), contact(), family(), product(),
                                            order, invoice))

    assert outcome.failed == 0 and not outcome.retry
    assert outcome.applied == 8
    assert writes(sim, "users") == []                         # linked by e-mail, never created by a sync
    assert store.get_link("BIJOU", "user", "3").ssm_id == invited

    account = only(sim.records("accounts"), extId="BIJOU:C001")
    assert account["name"] == "Bijouterie Émeraude"
    assert account["typeId"]["id"] == sim.account_type_ids["Client"] and account["readOnly"] is True
    assert account["salesRepId1"]["id"] == invited
    assert account["branchId"]["id"] == sim.branch_id
    assert (account["postcode"], account["vatNumber"]) == ("75002", "FR12345678901")

    lead = only(sim.records("accounts"), extId="BIJOU:P001")
    assert lead["typeId"]["id"] == sim.account_type_ids["Prospect"] and lead["readOnly"] is False
    assert lead["salesRepId1"]["id"] == sim.admin_id          # no rep in Sage: the admin owns it

    person = only(sim.records("contacts"), extId="BIJOU:7")
    assert (person["firstName"], person["lastName"], person["phone2"]) == ("Hélène", "Lefèvre", "06 12 34 56 78")
    assert person["accountId"]["id"] == account["id"]
    assert person["salesRepId"]["id"] == invited               # required by SSM: the account's owner

    fam = only(sim.records("productFamilies"), descriptionEN="Bagues et alliances")
    assert (fam["descriptionFR"], fam["idParent"], fam["notAvailable"]) == ("Bagues et alliances", -1, False)

    item = only(sim.records("products"), extId="BIJOU:BAG-OR-18")
    assert (item["model"], item["description"]) == ("BAG-OR-18", "Bague or 18 carats")
    assert Decimal(str(item["price"])) == Decimal("1249.90") and Decimal(str(item["cost"])) == Decimal("612.35")
    assert item["familyId"]["id"] == fam["id"] and item["readOnly"] is True and item["notAvailable"] is False
    assert (item["stock"], item["Z_stock_disponible"]) == (14, 11.5)
    assert (Decimal(str(item["Z_tarif_1"])), Decimal(str(item["Z_tarif_2"]))) == (Decimal("1199"), Decimal("999.99"))

    sales_order = only(sim.records("salesorders"), extId="BIJOU:1:BC00042")
    assert sales_order["statusId"]["id"] == sim.status_ids["Commande"] and sales_order["readOnly"] is True
    assert (sales_order["number"], sales_order["reference"]) == (None, "BC00042 · CDE-ÉTÉ")
    assert sales_order["closedDate"].startswith("2024-03-14")   # no date field: the sale closed that day
    assert sales_order["accountId"]["id"] == account["id"] and sales_order["salesRepId"]["id"] == invited
    assert Decimal(str(sales_order["total"])) == order.total_ht
    order_lines = sorted((l for l in sim.records("salesordersLines") if l["salesorderId"]["id"] == sales_order["id"]),
                         key=lambda l: l["order"])
    assert [(l["order"], l["productId"]["id"], l["description"]) for l in order_lines] == [
        (1, item["id"], "Bague or 18 carats"), (2, item["id"], "Écrin velours")]
    assert Decimal(str(order_lines[0]["total"])) == Decimal("2374.81")
    assert (order_lines[0]["quantity"], order_lines[0]["discount1"]) == (2, 5)
    assert Decimal(str(order_lines[1]["price"])) == Decimal("80.5")

    invoice_order = only(sim.records("salesorders"), extId="BIJOU:F:FA00077")
    assert invoice_order["statusId"]["id"] == sim.status_ids["Facture"]
    assert invoice_order["reference"] == "FA00077"            # no Sage reference: the piece number
    total = only(sim.records("sales"), extId="BIJOU:F:FA00077")
    assert (total["accountExtId"], total["salesRepExtId"]) == ("BIJOU:C001", "BIJOU:3")
    assert total["accountId"]["id"] == account["id"]
    assert Decimal(str(total["total"])) == invoice.total_ht and total["date"].startswith("2024-03-14")

    run = store.get_run("BIJOU", agent.run_id)
    assert run.state.value == "succeeded" and run.counts["created"] == 7 and run.counts["read"] == 8
    assert run.counts["ssm_calls.account"] >= 2 and run.counts["ssm_calls.order"] >= 3


def test_a_decimal_quantity_keeps_the_line_amount_exact_and_its_real_quantity_readable(sim, service, agent):
    gold = line("1", 1, quantity="24.6", unit_price="12.50", discount="10", description="Or fin au gramme")
    service.apply_batch(agent.run(client(), family(), product(), document(Entity.ORDER, "BC7", [gold])))

    [sent] = sim.records("salesordersLines")
    assert sent["quantity"] == 1                              # SSM quantities are whole numbers
    assert Decimal(str(sent["price"])) == Decimal("307.5")    # 24.6 × 12.50: the line's gross amount
    assert Decimal(str(sent["total"])) == gold.total_ht == Decimal("276.75")
    assert sent["description"] == "Or fin au gramme — 24,6 × 12,50 €"


def test_a_contact_with_one_name_syncs_with_the_other_marked_and_a_warning(sim, service, agent, store):
    service.apply_batch(agent.run(client(), contact("8", first=None, last="Dupont")))

    person = only(sim.records("contacts"), extId="BIJOU:8")
    assert (person["firstName"], person["lastName"]) == ("-", "Dupont")
    warning = store.get_incident("BIJOU", "contact", "8", "name-filled")
    assert warning.state is IncidentState.OPEN and "n'a pas de prénom" in warning.message

    service.apply_batch(agent.run(contact("8", first="Paul", last="Dupont")))
    assert only(sim.records("contacts"), extId="BIJOU:8")["firstName"] == "Paul"
    assert store.get_incident("BIJOU", "contact", "8", "name-filled").state is IncidentState.RESOLVED


def test_long_dossier_ids_and_keys_get_ext_ids_ssm_accepts_and_stay_distinct(sim, make_service, store):
    from tests.sync.conftest import AgentScript
    long_key = "BAGUE-OR-18-CARATS-X"                         # 20 characters: the product room is 30
    service = make_service(store)
    for dossier in ("ATELIER_PARIS_2024", "ATELIER_PARIS_2025"):
        script = AgentScript(dossier)
        outcome = service.apply_batch(script.run(family(), product(long_key), product("BAG-OR-18")))
        assert outcome.failed == 0 and not outcome.retry

    ext_ids = [p["extId"] for p in sim.records("products")]
    assert len(ext_ids) == 4 == len(set(ext_ids)) and all(len(e) <= 30 for e in ext_ids)
    again = make_service(store).apply_batch(AgentScript("ATELIER_PARIS_2024").run(product(long_key, price=1)))
    assert again.applied == 1 and len(sim.records("products")) == 4


def test_a_first_load_costs_one_call_per_record_created(sim, service, agent):
    accounts = [client(f"C{n:03d}", f"Client {n}") for n in range(40)]
    service.apply_batch(agent.run(*accounts, realignment=True))     # the agent's first run realigns

    posts = writes(sim, "accounts")
    assert len(posts) == 40 and all(c.method == "POST" for c in posts)
    reads = [c for c in sim.calls if c.method == "GET"]
    assert len(reads) <= 4        # users (the admin), branches, account types, the 40 extIds read ahead


def test_a_first_load_into_a_tenant_without_families_creates_them_without_looking_any_up(sim, service, agent):
    families = [family(f"F{n}", f"Famille {n}") for n in range(5)]

    service.apply_batch(agent.run(*families, realignment=True))

    assert sorted(f["descriptionFR"] for f in sim.records("productFamilies")) == [f"Famille {n}" for n in range(5)]
    reads = [c for c in sim.calls if c.method == "GET" and c.resource == "productFamilies"]
    assert len(reads) == 1 and "where" not in reads[0].query          # one probe: SSM held no family at all
    assert service.store.get_run("BIJOU", agent.run_id).ssm_held_none == {"productFamilies": True}


def test_a_first_load_of_documents_reads_no_line_nor_total_of_a_document_it_just_created(sim, service, agent):
    service.apply_batch(agent.run(client(), family(), product(), realignment=True))
    orders = [document(Entity.ORDER, f"BC{n}", [line(f"{n}1", 1), line(f"{n}2", 2)]) for n in range(10)]
    invoices = [document(Entity.INVOICE, f"FA{n}", [line(f"9{n}", 1)]) for n in range(5)]
    sim.reset_calls()

    service.apply_batch(agent.run(*orders, *invoices, realignment=True))

    assert len(writes(sim, "salesorders")) == 15 and len(writes(sim, "salesordersLines")) == 25
    assert len(writes(sim, "sales")) == 5
    assert sim.call_count("GET", "salesordersLines") == 0 and sim.call_count("GET", "sales") == 0


def test_a_second_delivery_of_the_same_batch_makes_no_call(sim, service, agent):
    invite(sim, user())
    batch = agent.run(user(), client(), contact(), family(), product(),
                      document(Entity.ORDER, "BC1", [line("1", 1)]),
                      document(Entity.INVOICE, "FA1", [line("2", 1)]))
    first = service.apply_batch(batch)
    assert first.applied == 7
    sim.reset_calls()

    again = service.apply_batch(batch, delivery_count=2)

    assert sim.call_count() == 0
    assert (again.applied, again.skipped_unchanged, again.failed, again.retry) == (0, 7, 0, [])


def test_records_an_earlier_release_created_are_found_by_their_old_ext_id_and_migrated(sim, make_service, store):
    from tests.sync.conftest import AgentScript
    dossier = "ATELIER_PARIS_2024"                            # its old extIds do not fit 30 characters
    old = sim.add_record("accounts", {"name": "Bijouterie Émeraude", "branchId": sim.branch_id,
                                      "salesRepId1": sim.admin_id, "extId": f"{dossier}:C001"})
    service = make_service(store)

    outcome = service.apply_batch(AgentScript(dossier).run(client(city="Nice"), realignment=True))

    assert outcome.failed == 0 and not outcome.retry
    [account] = sim.records("accounts")                       # found, not created twice
    assert account["id"] == old and account["city"] == "Nice"
    assert account["extId"] == external_id(dossier, "C001") != f"{dossier}:C001"
    assert store.get_link(dossier, "account", "C001").ssm_id == old
    sim.reset_calls()
    service.apply_batch(AgentScript(dossier).run(client(city="Nice", phone="04 00 00 00 00")))
    [put] = writes(sim, "accounts")
    assert put.body == {"phone": "04 00 00 00 00"}            # migrated once, not at every update
