"""Changes after the first load: only changed fields are sent, SSM's own edits survive, both-side
edits are merged, deletions are soft, documents touch only their changed lines."""
from __future__ import annotations

from decimal import Decimal

from local.simulator.user import SsmUserSession
from shared.models import Entity
from tests.sync.records import (client, contact, document, family, line, only, product, prospect,
                                writes)


def test_an_update_sends_one_put_with_only_the_changed_fields(sim, service, agent):
    service.apply_batch(agent.run(client()))
    sim.reset_calls()

    outcome = service.apply_batch(agent.run(client(city="Boulogne-Billancourt", phone="01 46 00 00 00")))

    assert outcome.applied == 1
    calls = writes(sim)
    assert [(c.method, c.resource) for c in calls] == [("PUT", "accounts")]
    assert calls[0].body == {"city": "Boulogne-Billancourt", "phone": "01 46 00 00 00"}
    assert sim.call_count("GET") == 0


def test_a_field_sage_does_not_map_changing_costs_no_call(sim, service, agent, store):
    service.apply_batch(agent.run(client()))
    sim.reset_calls()

    outcome = service.apply_batch(agent.run(client(siret="40483304800022")))

    assert sim.call_count() == 0 and outcome.skipped_unchanged == 1
    assert store.get_link("BIJOU", "account", "C001").hash == agent.upsert(client(siret="40483304800022")).hash


def test_sage_deletions_are_soft_deletions_in_ssm(sim, service, agent, store):
    service.apply_batch(agent.run(client(), contact(), family(), product()))

    outcome = service.apply_batch(agent.run(agent.delete("contact", "7"), agent.delete("product", "BAG-OR-18"),
                                            agent.delete("product_family", "BAGUES"),
                                            agent.delete("account", "C001")))

    assert outcome.applied == 4
    deleted = {r["extId"]: r["deleted"] for res in ("accounts", "contacts", "products")
               for r in sim.records(res)}
    assert deleted == {"BIJOU:C001": True, "BIJOU:7": True, "BIJOU:BAG-OR-18": True}
    fam = only(sim.records("productFamilies"), descriptionFR="Bagues et alliances")
    assert fam["notAvailable"] is True                      # families are kept, flagged unavailable
    assert store.get_link("BIJOU", "account", "C001").deleted is True
    sim.reset_calls()
    assert service.apply_batch(agent.changes(agent.delete("account", "C001"))).skipped_unchanged == 1
    assert sim.call_count() == 0


def test_an_ssm_only_field_set_by_a_user_survives_a_sage_update(sim, service, agent):
    sim.add_custom_field("accounts", "Z_Segment", "string")
    service.apply_batch(agent.run(prospect()))
    lead = only(sim.records("accounts"), extId="BIJOU:P001")
    seller = sim.seed_user("Bruno", "Vendeur", "bruno@bijou.example")
    with SsmUserSession(sim.base_url, *sim.user_credentials("bruno@bijou.example")) as session:
        session.edit_account(lead["id"], comment="Rappeler en septembre", Z_Segment="Haut de gamme",
                             salesRepId1=seller)

    service.apply_batch(agent.run(prospect(city="Villeurbanne")))

    lead = sim.record("accounts", lead["id"])
    assert lead["city"] == "Villeurbanne"
    assert (lead["comment"], lead["Z_Segment"]) == ("Rappeler en septembre", "Haut de gamme")
    assert lead["salesRepId1"]["id"] == seller             # the owner changed in SSM stays


def test_a_client_field_edited_in_ssm_is_overwritten_only_when_sage_changes_it(sim, service, agent):
    service.apply_batch(agent.run(client()))
    account = only(sim.records("accounts"), extId="BIJOU:C001")
    sim.store.update("accounts", account["id"], {"city": "Marseille", "comment": "note interne"})

    service.apply_batch(agent.run(client(phone="01 99 99 99 99")))
    assert sim.record("accounts", account["id"])["city"] == "Marseille"   # no read: Sage did not change it

    service.apply_batch(agent.run(client(phone="01 99 99 99 99", city="Neuilly")))
    after = sim.record("accounts", account["id"])
    assert (after["city"], after["comment"]) == ("Neuilly", "note interne")


def test_a_prospect_edited_on_both_sides_keeps_sages_name_and_ssms_phone(sim, service, agent, store):
    service.apply_batch(agent.run(prospect(name="Atelier Saphir", phone="04 72 00 00 02")))
    lead = only(sim.records("accounts"), extId="BIJOU:P001")
    with SsmUserSession(sim.base_url, *sim.user_credentials(sim.admin_email)) as session:
        session.edit_account(lead["id"], name="Saphir & Fils (SSM)", phone="04 78 11 22 33")

    outcome = service.apply_batch(agent.run(prospect(name="Atelier Saphir & Fils", phone="04 72 00 00 02")))

    lead = sim.record("accounts", lead["id"])
    assert (lead["name"], lead["phone"]) == ("Atelier Saphir & Fils", "04 78 11 22 33")
    conflicts = store.list_journal("BIJOU", event="conflict")
    assert len(conflicts) == 1 and conflicts[0].detail["field"] == "name"
    assert (conflicts[0].detail["sage"], conflicts[0].detail["ssm"]) == ("Atelier Saphir & Fils", "Saphir & Fils (SSM)")
    assert store.get_run("BIJOU", agent.run_id).counts["conflicts"] == 1
    assert outcome.applied == 1
    # the phone changed in SSM is still SSM's own change: a later Sage change elsewhere leaves it
    service.apply_batch(agent.run(prospect(name="Atelier Saphir & Fils", phone="04 72 00 00 02", city="Bron")))
    assert sim.record("accounts", lead["id"])["phone"] == "04 78 11 22 33"


def test_a_contact_edited_in_ssm_keeps_that_edit_when_sage_changes_another_field(sim, service, agent):
    service.apply_batch(agent.run(client(), contact()))
    person = only(sim.records("contacts"), extId="BIJOU:7")
    sim.store.update("contacts", person["id"], {"phone1": "01 00 00 00 00"})
    sim.reset_calls()

    service.apply_batch(agent.run(contact(email="h.lefevre@emeraude.example")))

    person = sim.record("contacts", person["id"])
    assert (person["email"], person["phone1"]) == ("h.lefevre@emeraude.example", "01 00 00 00 00")
    assert [(c.method, c.body) for c in writes(sim)] == [("PUT", {"email": "h.lefevre@emeraude.example"})]


def test_a_prospect_converted_to_client_in_sage_becomes_a_read_only_client(sim, service, agent):
    service.apply_batch(agent.run(prospect()))
    sim.reset_calls()

    service.apply_batch(agent.run(prospect(kind="client")))

    account = only(sim.records("accounts"), extId="BIJOU:P001")
    assert account["typeId"]["id"] == sim.account_type_ids["Client"] and account["readOnly"] is True
    assert [c.body for c in writes(sim)] == [{"typeId": sim.account_type_ids["Client"], "readOnly": True}]


def test_a_conversion_attempted_in_ssm_is_undone_and_logged(sim, service, agent, store):
    service.apply_batch(agent.run(prospect()))
    lead = only(sim.records("accounts"), extId="BIJOU:P001")
    with SsmUserSession(sim.base_url, *sim.user_credentials(sim.admin_email)) as session:
        session.convert_prospect_to_client(lead["id"])

    service.apply_batch(agent.run(prospect(city="Bron")))

    assert sim.record("accounts", lead["id"])["typeId"]["id"] == sim.account_type_ids["Prospect"]
    assert [e.detail["field"] for e in store.list_journal("BIJOU", event="ssm-change-refused")] == ["typeId"]


def test_a_changed_order_touches_only_its_changed_lines_and_deletes_removed_ones(sim, service, agent, store):
    lines = [line("1", 1), line("2", 2, quantity="1"), line("3", 3, quantity="3")]
    service.apply_batch(agent.run(client(), family(), product(), document(Entity.ORDER, "BC7", lines)))
    order = only(sim.records("salesorders"), extId="BIJOU:1:BC7")
    before = {l["order"]: l["id"] for l in sim.records("salesordersLines") if l["salesorderId"]["id"] == order["id"]}
    sim.reset_calls()

    changed = [line("1", 1), line("2", 2, quantity="5")]
    service.apply_batch(agent.run(document(Entity.ORDER, "BC7", changed)))

    calls = [(c.method, c.resource, c.id) for c in writes(sim)]
    assert ("PUT", "salesordersLines", before[2]) in calls
    assert ("DELETE", "salesordersLines", before[3]) in calls
    assert ("PUT", "salesorders", order["id"]) in calls       # the total changed
    assert len(calls) == 3
    assert sim.record("salesordersLines", before[2])["quantity"] == 5
    assert sim.record("salesordersLines", before[3])["deleted"] is True
    assert store.get_link("BIJOU", "order_line", "1:BC7/3") is None


def test_an_invoice_posts_its_total_once_and_a_corrected_version_reverses_the_first(sim, service, agent):
    service.apply_batch(agent.run(client(), family(), product(),
                                  document(Entity.INVOICE, "FA9", [line("1", 1, quantity="1", discount="0")])))
    service.apply_batch(agent.run(document(Entity.INVOICE, "FA9", [line("1", 1, quantity="1", discount="0")],
                                           reference="relivrée")))
    assert [r["extId"] for r in sim.records("sales")] == ["BIJOU:F:FA9"]

    service.apply_batch(agent.run(document(Entity.INVOICE, "FA9", [line("1", 1, quantity="2", discount="0")])))

    totals = {r["extId"]: Decimal(str(r["total"])) for r in sim.records("sales")}
    assert totals == {"BIJOU:F:FA9": Decimal("1249.9"), "BIJOU:F:FA9~reversal": Decimal("-1249.9"),
                      "BIJOU:F:FA9~2": Decimal("2499.8")}
    assert sum(totals.values()) == Decimal("2499.8")

    service.apply_batch(agent.run(agent.delete("invoice", "F:FA9")))
    assert sum(Decimal(str(r["total"])) for r in sim.records("sales")) == 0
    assert only(sim.records("salesorders", include_deleted=True), extId="BIJOU:F:FA9", deleted=True)


def test_an_order_deleted_in_sage_is_soft_deleted_and_its_line_links_removed(sim, service, agent, store):
    service.apply_batch(agent.run(client(), family(), product(), document(Entity.ORDER, "BC8", [line("1", 1)])))

    outcome = service.apply_batch(agent.run(agent.delete("order", "1:BC8")))

    assert outcome.applied == 1
    assert only(sim.records("salesorders"), extId="BIJOU:1:BC8", deleted=True)
    assert store.get_link("BIJOU", "order_line", "1:BC8/1") is None


def test_a_dormant_product_becomes_not_available_and_a_dropped_tariff_is_cleared(sim, service, agent):
    service.apply_batch(agent.run(family(), product()))
    item = only(sim.records("products"), extId="BIJOU:BAG-OR-18")
    sim.reset_calls()

    service.apply_batch(agent.run(product(dormant=True, tariffs=product().tariffs[:1])))

    item = sim.record("products", item["id"])
    assert item["notAvailable"] is True and item["Z_tarif_2"] is None and item["Z_tarif_1"] == 1199
    assert [c.body for c in writes(sim)] == [{"notAvailable": True, "Z_tarif_2": None}]
