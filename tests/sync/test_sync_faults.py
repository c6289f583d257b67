"""SSM failing under the sync: transient errors become retries that end in exactly one SSM record
per Sage record; wrong settings stop the batch with one incident saying what to fix."""
from __future__ import annotations

import pytest

from shared.models import Entity
from shared.ssm import SsmClient
from shared.state.records import IncidentState
from shared.sync import SyncService
from tests.sync.records import client, document, family, line, only, product


def test_ssm_failing_for_a_while_means_a_retry_then_success(sim, service, agent, store):
    sim.faults.fail_next(503, count=20, method="POST", resource="accounts")

    outcome = service.apply_batch(agent.run(client()))

    assert outcome.needs_redelivery
    incident = store.get_incident("BIJOU", "account", "C001", "create")
    assert incident.state is IncidentState.OPEN and incident.next_attempt_at is not None
    sim.faults.clear()
    again = service.apply_batch(agent.run(client()), delivery_count=2)
    assert again.applied == 1 and not again.needs_redelivery
    assert store.get_incident("BIJOU", "account", "C001", "create").state is IncidentState.RESOLVED
    assert len(sim.records("accounts")) == 1


@pytest.mark.slow
def test_lost_answers_and_server_errors_never_duplicate_a_record(sim, store, agent):
    sim.faults.timeout_hold_s = 0.3
    sim.faults.error_rate, sim.faults.timeout_rate = 0.15, 0.1
    sim.faults.methods = frozenset({"POST", "PUT"})
    shaky = SsmClient(sim.base_url, sim.public_key, sim.private_key, timeout_s=0.2, rate_limit_per_s=10000.0,
                      backoff_base_s=0.01, backoff_max_s=0.02, max_retries=1)
    records = [family(), *(product(f"P{n}") for n in range(8)), *(client(f"C{n}") for n in range(12)),
               *(document(Entity.INVOICE, f"F{n}", [line(f"{n}1", 1, product_key=f"P{n % 8}"),
                                                    line(f"{n}2", 2, product_key="P0")], account_key=f"C{n}")
                 for n in range(6))]
    batch = agent.run(*records)
    with SyncService(store, shaky, max_workers=4, admin_user_email=sim.admin_email) as service:
        for delivery in range(1, 30):
            if not service.apply_batch(batch, delivery_count=delivery).needs_redelivery:
                break
        else:
            pytest.fail("the batch never got through")
    shaky.close()
    faults = {c.fault for c in sim.calls if c.fault}
    assert delivery > 1 and "timeout" in faults and any(f.startswith("http-5") for f in faults)

    for resource, expected in (("accounts", 12), ("products", 8), ("salesorders", 6), ("sales", 6)):
        live = [r["extId"] for r in sim.records(resource, include_deleted=False)]
        assert len(live) == expected == len(set(live)), resource
    lines = [(r["salesorderId"]["id"], r["order"]) for r in sim.records("salesordersLines", include_deleted=False)]
    assert len(lines) == 12 == len(set(lines))          # lines have no extId: one per order and position
    assert store.get_run("BIJOU", agent.run_id).state.value == "succeeded"


def test_an_admin_user_ssm_does_not_have_stops_the_batch_with_one_incident(sim, store, ssm, agent):
    with SyncService(store, ssm, admin_user_email="nobody@bijou.example") as service:
        outcome = service.apply_batch(agent.run(client("C1"), client("C2")))

    assert outcome.needs_redelivery and len(outcome.retry) == 2
    [incident] = store.list_incidents("BIJOU", state=IncidentState.OPEN)
    assert (incident.entity, incident.key) == ("connection", "ssm")
    assert "nobody@bijou.example" in incident.message
    assert sim.records("accounts") == []


def test_the_configured_admin_and_branch_are_used(sim, store, ssm, agent):
    boss = sim.seed_user("Patron", "Bijou", "patron@bijou.example")
    with SyncService(store, ssm, admin_user_email="PATRON@bijou.example", branch="Siège") as service:
        service.apply_batch(agent.run(client()))
    account = only(sim.records("accounts"), extId="BIJOU:C001")
    assert account["salesRepId1"]["id"] == boss and account["branchId"]["id"] == sim.branch_id
