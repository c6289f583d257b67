"""The cloud side when Sales Management lets it down: an SSM outage stops a batch after the first
record instead of running every record through the client's retries, with one incident on the
dossier's connection. Each ends on SSM's and the store's final state."""
from __future__ import annotations

from shared.state.records import IncidentState, RunState
from shared.sync import SyncService
from tests.sync.records import client, contact

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
    assert incident.message.startswith("Sales Management is not answering")
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


def test_a_record_ssm_keeps_failing_with_5xx_does_not_stop_the_records_after_it(sim, store, ssm, agent):
    with SyncService(store, ssm, max_workers=1) as service:
        service.apply_batch(agent.run(client("C000")))
        sim.faults.fail_next(503, 4, method="POST", resource="accounts")   # every attempt of the next create

        outcome = service.apply_batch(agent.run(client("C001"), client("C002"), client("C003")))

    assert outcome.applied == 2 and [key for _, key, _ in outcome.retry] == ["C001"]
    assert open_incidents(store) == [("account", "C001", "create")]
    assert {a["extId"] for a in sim.records("accounts")} == {"BIJOU:C000", "BIJOU:C002", "BIJOU:C003"}


def test_ssm_refusing_every_write_while_it_still_reads_stops_the_batch_after_a_few_records(sim, store, ssm,
                                                                                          agent):
    with SyncService(store, ssm, max_workers=1) as service:
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
