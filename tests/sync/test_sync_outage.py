"""The cloud side when Sales Management or its own state lets it down: an SSM outage stops a batch
after the first record instead of running every record through the client's retries, with one
incident on the dossier's connection; a state store lost under a running agent duplicates nothing;
a first load whose collaborateurs were set aside or refused still creates them when they come again.
Each ends on SSM's and the store's final state."""
from __future__ import annotations

from decimal import Decimal

from shared.models import Entity
from shared.state.records import IncidentState, RunState
from shared.sync import SyncService
from tests.sync.records import client, contact, document, family, line, only, product, user

SSM_RESOURCES = ("users", "accounts", "contacts", "productFamilies", "products", "salesorders",
                 "salesordersLines", "sales")

CONNECTION = ("connection", "ssm")


def open_incidents(store, dossier="BIJOU"):
    return [(i.entity, i.key, i.operation) for i in store.list_incidents(dossier, state=IncidentState.OPEN)]


def ssm_down(sim, *, methods=None) -> None:
    """Every request (or every request of `methods`) is answered 503 from now on."""
    sim.faults.error_statuses = (503,)
    sim.faults.error_rate = 1.0
    sim.faults.methods = frozenset(methods) if methods else None


# --- SSM not answering -----------------------------------------------------------------------------
def test_an_ssm_outage_stops_the_batch_after_the_first_record_and_leaves_one_dossier_incident(sim, service,
                                                                                            agent, store):
    service.apply_batch(agent.run(client("C000")))
    accounts = [client(f"C{n:03d}", f"Client {n}") for n in range(1, 31)]
    contacts = [contact(str(n), account_key=f"C{n:03d}") for n in range(1, 11)]
    batch = agent.run(*accounts, *contacts)
    ssm_down(sim)
    sim.reset_calls()

    outcome = service.apply_batch(batch)

    assert outcome.needs_redelivery and len(outcome.retry) == 40
    assert outcome.applied == outcome.failed == 0
    # At most 4 records in flight, each a POST and a look-up by extId of 4 attempts (max_retries=3)
    # before the client gives up, then one probe of 4 attempts; every record through its retries
    # would have cost 200 calls.
    assert sim.call_count() <= 4 * 5 + 4
    assert open_incidents(store) == [(*CONNECTION, "read")]
    [incident] = store.list_incidents("BIJOU", state=IncidentState.OPEN)
    assert incident.message.startswith("Sage Sales Management ne répond pas")
    assert store.get_run("BIJOU", agent.run_id).ended_at is None
    assert [a["extId"] for a in sim.records("accounts")] == ["BIJOU:C000"]

    sim.faults.clear()
    again = service.apply_batch(batch, delivery_count=2)

    assert not again.needs_redelivery and (again.applied, again.failed) == (40, 0)
    live = sorted(a["extId"] for a in sim.records("accounts"))
    assert live == sorted({f"BIJOU:C{n:03d}" for n in range(31)})
    assert len(sim.records("contacts")) == 10
    assert open_incidents(store) == []
    assert store.get_incident("BIJOU", *CONNECTION, "read").state is IncidentState.RESOLVED
    run = store.get_run("BIJOU", agent.run_id)
    assert run.state is RunState.SUCCEEDED and (run.counts["created"], run.counts["read"]) == (40, 40)


def test_ssm_refusing_a_record_shows_it_answers_again_and_ends_the_outage_incident(sim, service, agent, store):
    ssm_down(sim)
    assert service.apply_batch(agent.run(client("C001"))).needs_redelivery
    assert open_incidents(store) == [(*CONNECTION, "read")]
    sim.faults.clear()
    sim.reject_field("accounts", "name", lambda value: True, "Nom refusé")

    outcome = service.apply_batch(agent.run(client("C002", "Refusé SA")))

    assert (outcome.applied, outcome.failed) == (0, 1)
    assert open_incidents(store) == [("account", "C002", "create")]
    assert store.get_incident("BIJOU", *CONNECTION, "read").state is IncidentState.RESOLVED


def test_a_record_ssm_keeps_failing_with_5xx_does_not_stop_the_records_after_it(sim, store, ssm, agent):
    with SyncService(store, ssm, max_workers=1, admin_user_email=sim.admin_email) as service:
        service.apply_batch(agent.run(client("C000")))
        sim.faults.fail_next(503, 4, method="POST", resource="accounts")   # every attempt of the next create

        outcome = service.apply_batch(agent.run(client("C001"), client("C002"), client("C003")))

    assert outcome.applied == 2 and [key for _, key, _ in outcome.retry] == ["C001"]
    assert open_incidents(store) == [("account", "C001", "create")]
    assert {a["extId"] for a in sim.records("accounts")} == {"BIJOU:C000", "BIJOU:C002", "BIJOU:C003"}


def test_ssm_refusing_every_write_while_it_still_reads_stops_the_batch_after_a_few_records(sim, store, ssm,
                                                                                          agent):
    with SyncService(store, ssm, max_workers=1, admin_user_email=sim.admin_email) as service:
        service.apply_batch(agent.run(client("C000")))
        batch = agent.run(*(client(f"C{n:03d}") for n in range(1, 21)))
        ssm_down(sim, methods=("POST", "PUT", "DELETE"))
        sim.reset_calls()

        outcome = service.apply_batch(batch)

        assert len(outcome.retry) == 20 and sim.call_count("POST", "accounts") == 3 * 4
        assert (*CONNECTION, "read") in open_incidents(store)
        sim.faults.clear()
        again = service.apply_batch(batch, delivery_count=2)

    assert again.applied == 20 and open_incidents(store) == []
    assert len(sim.records("accounts")) == 21


# --- the cloud's state lost -------------------------------------------------------------------------
def ext_ids(sim) -> dict[str, list[str]]:
    """Every record SSM holds per resource (deleted ones included), by extId."""
    return {resource: sorted(r.get("extId") or "" for r in sim.records(resource)) for resource in SSM_RESOURCES}


def first_load(service, agent):
    records = (user(), client(), contact(), family(), product(),
               document(Entity.ORDER, "BC1", [line("1", 1)]),
               document(Entity.INVOICE, "FA1", [line("2", 1, quantity="1", discount="0")]))
    service.apply_batch(agent.run(*records, realignment=True))


def test_ordinary_runs_after_the_cloud_lost_its_state_duplicate_nothing(sim, service, agent, make_store,
                                                                       make_service):
    first_load(service, agent)
    before = ext_ids(sim)
    account_id = {a["extId"]: a["id"] for a in sim.records("accounts")}["BIJOU:C001"]
    lost = make_store("lost.db")
    cloud = make_service(lost)

    first = cloud.apply_batch(agent.run(client(city="Nice"), contact(phone="01 99 99 99 99"),
                                        document(Entity.ORDER, "BC1", [line("1", 1, quantity="3")])))
    first_run = lost.get_run("BIJOU", agent.run_id)
    cloud.apply_batch(agent.run(product(price=Decimal("1299.00")),
                                document(Entity.INVOICE, "FA1", [line("2", 1, quantity="2", discount="0")])))

    assert not first.retry and (first.applied, first.failed) == (3, 0)
    assert (first_run.counts["created"], first_run.counts["updated"]) == (0, 3)
    after = ext_ids(sim)
    assert {r: after[r] for r in SSM_RESOURCES if r != "sales"} == {r: before[r] for r in SSM_RESOURCES if r != "sales"}
    assert after["sales"] == ["BIJOU:F:FA1", "BIJOU:F:FA1~2", "BIJOU:F:FA1~reversal"]
    assert sum(Decimal(str(r["total"])) for r in sim.records("sales")) == Decimal("2499.8")
    account = sim.record("accounts", account_id)
    assert account["city"] == "Nice" and lost.get_link("BIJOU", "account", "C001").ssm_id == account_id
    order_id = only(sim.records("salesorders"), extId="BIJOU:1:BC1")["id"]
    assert [l["quantity"] for l in sim.records("salesordersLines") if l["salesorderId"]["id"] == order_id] == [3]
    dossier = lost.get_dossier("BIJOU")
    assert dossier.active and dossier.needs_realignment
    [entry] = lost.list_journal("BIJOU", event="state-lost")
    assert "a été perdu" in entry.message and "réalignement" in entry.message


def test_a_later_message_of_a_run_reaching_a_cloud_that_lost_its_state_is_applied_without_duplicate(
        sim, service, agent, make_store, make_service):
    first_load(service, agent)
    lost = make_store("lost.db")
    cloud = make_service(lost)
    agent.start()

    outcome = cloud.apply_batch(agent.changes(client(city="Nice"), client("C002", "Orfèvrerie Dupont")))

    assert (outcome.applied, outcome.failed, outcome.retry) == (2, 0, [])
    assert sorted(a["extId"] for a in sim.records("accounts")) == ["BIJOU:C001", "BIJOU:C002"]
    assert lost.list_incidents("_group") == []
    assert [e.event for e in lost.list_journal("BIJOU", event="state-lost")] == ["state-lost"]


def test_a_realignment_after_a_lost_state_ends_the_look_ups_before_create(sim, service, agent, make_store,
                                                                         make_service):
    first_load(service, agent)
    cloud = make_service(make_store("lost.db"))
    cloud.apply_batch(agent.run(client(city="Nice")))
    cloud.apply_batch(agent.run(user(), client(city="Nice"), contact(), realignment=True))
    sim.reset_calls()

    cloud.apply_batch(agent.run(client("C002", "Orfèvrerie Dupont")))

    assert sim.call_count("GET", "accounts") == 0 and sim.call_count("POST", "accounts") == 1
    assert not cloud.store.get_dossier("BIJOU").needs_realignment
