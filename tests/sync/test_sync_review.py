"""Delivery edge cases of the cloud side: a create whose outcome was never known, a state lost before a
realignment, records that fail after a retry, dead-lettered batches, an owner changed in SSM. Each
ends with exactly one SSM record per Sage record, honest run counts and no incident left for
nothing."""
from __future__ import annotations

from decimal import Decimal

import pytest

from local.simulator.faults import TIMEOUT
from shared.models import Entity
from shared.ssm import SsmClient
from shared.state.records import IncidentState, RunState
from shared.sync import SyncService
from tests.sync.records import client, contact, document, family, invite, line, only, product, user, writes


@pytest.fixture
def shaky(sim):
    """A client that gives up quickly: a held answer is a timeout, a 503 is retried once."""
    sim.faults.timeout_hold_s = 0.3
    client_ = SsmClient(sim.base_url, sim.public_key, sim.private_key, timeout_s=0.2, rate_limit_per_s=10000.0,
                        backoff_base_s=0.01, backoff_max_s=0.02, max_retries=1)
    yield client_
    client_.close()


def lose_the_answer_and_the_check(sim, resource: str) -> None:
    """The next POST is carried out but its answer is lost, and the look-up by extId that follows fails."""
    sim.faults.fail_next(TIMEOUT, 1, method="POST", resource=resource)
    sim.faults.fail_next(503, 2, method="GET", resource=resource)


def test_a_create_whose_answer_and_check_were_lost_is_found_by_ext_id_on_redelivery(sim, store, agent, shaky):
    with SyncService(store, shaky, max_workers=1, admin_user_email=sim.admin_email) as service:
        service.apply_batch(agent.run(realignment=True))            # the dossier's first load
        batch = agent.run(client())
        lose_the_answer_and_the_check(sim, "accounts")
        first = service.apply_batch(batch)
        assert first.needs_redelivery and store.get_link("BIJOU", "account", "C001") is None
        assert len(sim.records("accounts")) == 1          # SSM did create it

        again = service.apply_batch(batch, delivery_count=2)

    assert not again.needs_redelivery and again.failed == 0
    account = only(sim.records("accounts"), extId="BIJOU:C001")
    assert len(sim.records("accounts")) == 1
    assert store.get_link("BIJOU", "account", "C001").ssm_id == account["id"]
    assert store.get_incident("BIJOU", "account", "C001", "create").state is IncidentState.RESOLVED
    assert store.get_run("BIJOU", agent.run_id).counts["created"] == 1


def test_a_document_line_whose_answer_was_lost_is_read_back_not_sent_twice(sim, store, agent, shaky):
    order = document(Entity.ORDER, "BC3", [line("1", 1), line("2", 2, quantity="1")])
    with SyncService(store, shaky, max_workers=1, admin_user_email=sim.admin_email) as service:
        service.apply_batch(agent.run(client(), family(), product()))
        batch = agent.run(order)
        sim.faults.fail_next(TIMEOUT, 1, method="POST", resource="salesordersLines")   # carried out, answer lost

        again = service.apply_batch(batch)      # lines have no extId: the order's lines are read back

    assert sim.call_count("POST", "salesordersLines") == 2
    assert not again.needs_redelivery
    header = only(sim.records("salesorders"), extId="BIJOU:1:BC3")
    lines = sorted(sim.records("salesordersLines", include_deleted=False), key=lambda l: l["order"])
    assert [l["order"] for l in lines] == [1, 2]               # the order's lines were read back first
    assert all(l["salesorderId"]["id"] == header["id"] for l in lines)
    for line_id, l in zip(("1", "2"), lines):
        assert store.get_link("BIJOU", "order_line", f"1:BC3/{line_id}").ssm_id == l["id"]
    assert store.get_link("BIJOU", "order", "1:BC3").hash == agent.upsert(order).hash


def test_a_realignment_after_lost_state_sends_no_document_line_or_invoice_total_twice(sim, service, agent,
                                                                                     make_store, make_service):
    records = (client(), family(), product(), document(Entity.ORDER, "BC1", [line("1", 1)]),
               document(Entity.INVOICE, "FA1", [line("2", 1, quantity="1", discount="0")]))
    service.apply_batch(agent.run(*records))
    lines_before = sorted(l["id"] for l in sim.records("salesordersLines"))
    restored = make_store("restored.db")
    fresh = make_service(restored)

    outcome = fresh.apply_batch(agent.run(*records, realignment=True))

    assert not outcome.retry and outcome.failed == 0
    assert sorted(l["id"] for l in sim.records("salesordersLines")) == lines_before
    assert restored.get_link("BIJOU", "order_line", "1:BC1/1").ssm_id in lines_before
    assert [r["extId"] for r in sim.records("sales")] == ["BIJOU:F:FA1"]
    assert restored.get_link("BIJOU", "invoice", "F:FA1").base["_sales"]["version"] == 1

    fresh.apply_batch(agent.run(document(Entity.INVOICE, "FA1", [line("2", 1, quantity="2", discount="0")])))
    totals = {r["extId"]: Decimal(str(r["total"])) for r in sim.records("sales")}
    assert sum(totals.values()) == Decimal("2499.8") and len(totals) == 3


def test_a_realignment_after_lost_state_continues_an_invoices_total_versions(sim, service, agent, make_store,
                                                                             make_service):
    def invoice(quantity: str):
        return document(Entity.INVOICE, "FA2", [line("3", 1, quantity=quantity, discount="0")])
    service.apply_batch(agent.run(client(), family(), product(), invoice("1")))
    service.apply_batch(agent.run(invoice("2")))
    fresh = make_service(make_store("restored.db"))

    fresh.apply_batch(agent.run(client(), family(), product(), invoice("2"), realignment=True))
    assert len(sim.records("sales")) == 3

    fresh.apply_batch(agent.run(invoice("3")))
    totals = {r["extId"]: Decimal(str(r["total"])) for r in sim.records("sales")}
    assert totals["BIJOU:F:FA2~2~reversal"] == Decimal("-2499.8") and totals["BIJOU:F:FA2~3"] == Decimal("3749.7")
    assert sum(totals.values()) == Decimal("3749.7") and len(totals) == 5


def test_a_record_refused_after_a_retry_is_counted_failed_and_the_run_is_partial(sim, service, agent, store):
    batch = agent.run(client())
    sim.faults.fail_next(503, 20, method="POST", resource="accounts")
    assert service.apply_batch(batch).needs_redelivery
    sim.faults.clear()
    sim.reject_field("accounts", "name", lambda value: True, "Nom refusé")

    again = service.apply_batch(batch, delivery_count=2)

    assert again.failed == 1 and not again.needs_redelivery
    assert store.get_incident("BIJOU", "account", "C001", "create").state is IncidentState.OPEN
    run = store.get_run("BIJOU", agent.run_id)
    assert run.counts["failed"] == 1 and run.state is RunState.PARTIAL


def test_a_batch_dead_lettered_after_its_run_ended_leaves_the_run_partial(sim, service, agent, store):
    service.apply_batch(agent.batch(agent.start()))
    sim.faults.fail_next(503, count=1000, method="POST", resource="contacts")
    stuck = agent.changes(client(), contact("8"))
    assert service.apply_batch(stuck).needs_redelivery
    service.apply_batch(agent.batch(agent.end(read=2)))          # the next message, once `stuck` is set aside
    assert store.get_run("BIJOU", agent.run_id).state is RunState.SUCCEEDED

    service.record_dead_letter(stuck.to_bytes(), reason="MaxDeliveryCountExceeded")

    run = store.get_run("BIJOU", agent.run_id)
    assert run.counts["failed"] == 1 and run.state is RunState.PARTIAL
    assert store.get_incident("BIJOU", "contact", "8", "create").dead_lettered


def test_a_dead_lettered_batch_counts_each_record_once(sim, service, agent, store):
    sim.reject_field("accounts", "name", lambda value: value == "Refusé SA", "Nom refusé")
    sim.faults.fail_next(503, count=1000, method="POST", resource="contacts")
    batch = agent.run(client(), client("C2", "Refusé SA"), contact("8"))
    for delivery in (1, 2, 3):
        assert service.apply_batch(batch, delivery_count=delivery).needs_redelivery

    service.record_dead_letter(batch.to_bytes(), reason="MaxDeliveryCountExceeded")

    run = store.get_run("BIJOU", agent.run_id)
    assert (run.counts["read"], run.counts["created"], run.counts["failed"]) == (3, 1, 2)
    assert run.state is RunState.PARTIAL


def test_a_dead_lettered_batch_leaves_no_incident_for_an_envelope_a_newer_one_replaced(sim, service, agent, store):
    sim.faults.fail_next(503, count=1000, method="POST", resource="contacts")
    batch = agent.run(client(), client(city="Nice"), contact("8"))
    assert service.apply_batch(batch).needs_redelivery
    assert only(sim.records("accounts"), extId="BIJOU:C001")["city"] == "Nice"

    service.record_dead_letter(batch.to_bytes(), reason="MaxDeliveryCountExceeded")

    assert [(i.entity, i.key) for i in store.list_incidents("BIJOU", state=IncidentState.OPEN)] == [("contact", "8")]


def test_a_client_owner_changed_in_ssm_survives_a_rep_change_in_sage(sim, service, agent, store):
    invite(sim, user("1"), user("2", "Bruno", "Vendeur", "bruno@bijou.example"))
    service.apply_batch(agent.run(user("1"), user("2", "Bruno", "Vendeur", "bruno@bijou.example"),
                                  client(rep_key="1")))
    account = only(sim.records("accounts"), extId="BIJOU:C001")
    boss = sim.seed_user("Patron", "Bijou", "patron@bijou.example")
    sim.store.update("accounts", account["id"], {"salesRepId1": boss, "comment": "suivi par le patron"})

    service.apply_batch(agent.run(client(rep_key="2", city="Nice")))

    account = sim.record("accounts", account["id"])
    assert (account["salesRepId1"]["id"], account["city"], account["comment"]) == (boss, "Nice",
                                                                                  "suivi par le patron")
    [conflict] = store.list_journal("BIJOU", event="conflict")
    assert (conflict.detail["field"], conflict.detail["winner"]) == ("salesRepId1", "ssm")

    service.apply_batch(agent.run(client(rep_key="2", city="Nice", phone="01 00 00 00 09")))
    assert sim.record("accounts", account["id"])["salesRepId1"]["id"] == boss


def test_a_first_load_into_an_empty_tenant_looks_nothing_up_yet_a_lost_answer_is_never_created_twice(
        sim, store, agent, shaky):
    accounts = [client(f"C{n:03d}", f"Client {n}") for n in range(60)]
    people = [contact(str(n), account_key=f"C{n:03d}", email=f"p{n}@emeraude.example") for n in range(30)]
    with SyncService(store, shaky, max_workers=1, admin_user_email=sim.admin_email) as service:
        service.apply_batch(agent.batch(agent.start(realignment=True)))
        service.apply_batch(agent.changes(*accounts[:30]))
        lose_the_answer_and_the_check(sim, "accounts")          # C030: carried out, its answer lost
        second = agent.changes(*accounts[30:])
        lost = service.apply_batch(second)
        assert lost.needs_redelivery and len(sim.records("accounts")) == 60     # C030 too, unlinked
        again = service.apply_batch(second, delivery_count=2)
        assert not again.needs_redelivery
        sim.reset_calls()
        service.apply_batch(agent.changes(*people))
        service.apply_batch(agent.batch(agent.end(read=90)))

    assert len(sim.records("accounts")) == 60 == len({a["extId"] for a in sim.records("accounts")})
    assert len(sim.records("contacts")) == 30 and store.get_link("BIJOU", "account", "C030") is not None
    # the contacts' wave: one probe (the tenant held none of the dossier's contacts), then one POST each
    lookups = [c for c in sim.calls if c.method == "GET" and c.resource == "contacts"]
    assert len(lookups) == 1 and "LIKE" in lookups[0].query["where"]
    assert len(writes(sim, "contacts")) == 30 and all(c.method == "POST" for c in writes(sim, "contacts"))
    run = store.get_run("BIJOU", agent.run_id)
    assert run.ssm_held_none == {"accounts": True, "contacts": True}
