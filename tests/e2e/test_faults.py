"""An unreliable SSM (429s, 5xx, timeouts whose writes still happen) and a refused record:
the dossier still converges to exactly the state a reliable SSM reaches, without duplicates,
and the one bad record is an incident on the status endpoint while everything else syncs."""
from __future__ import annotations

import datetime as dt
import json
import urllib.request

import pytest

from local.simulator.faults import FaultPlan
from tests.e2e.conftest import SSM_RESOURCES, assert_never_duplicated, comparable

D = "BIJOU"
UNRELIABLE_CLIENT = dict(timeout_s=0.5, max_retries=12, backoff_base_s=0.02, backoff_max_s=0.25,
                         rate_limit_per_s=1000.0, max_concurrency=4)


def ssm_state(pipeline) -> dict[str, dict[str, dict]]:
    return {resource: {ext: comparable(record) for ext, record in pipeline.live(resource).items()}
            for resource in SSM_RESOURCES}


@pytest.mark.slow
def test_a_large_dossier_converges_exactly_through_429s_5xx_and_timeouts(make_pipeline):
    reference = make_pipeline(size="small", documents_one_in=2)
    assert reference.run().ok
    expected = ssm_state(reference)
    assert sum(len(records) for records in expected.values()) > 2500

    # One request in five fails: 5xx, timeouts after which SSM has carried the write out anyway,
    # and 429s on creates of every resource (each holds the whole client for SSM's Retry-After).
    faults = FaultPlan(error_rate=0.15, error_statuses=(500, 502, 503), timeout_rate=0.05, timeout_hold_s=0.8,
                       seed=5)
    for resource in SSM_RESOURCES:
        faults.fail_next(429, 2, method="POST", resource=resource)
    unreliable = make_pipeline(size="small", documents_one_in=2, faults=faults, client_options=UNRELIABLE_CLIENT)
    summary = unreliable.run()

    calls = unreliable.simulator.calls
    faulted = [c for c in calls if c.fault]
    assert len(faulted) / len(calls) > 0.15, "the faults really happened"
    assert {c.fault for c in faulted} >= {"http-500", "timeout", "rate-limit"}
    assert any(c.fault == "timeout" and c.method == "POST" for c in faulted), "lost answers to creates"
    assert summary.ok, summary.render()
    assert summary.open_incidents == 0, summary.render()
    assert_never_duplicated(unreliable)
    assert ssm_state(unreliable) == expected


def test_a_record_ssm_refuses_is_an_incident_on_the_status_endpoint_and_the_rest_syncs(make_pipeline):
    p = make_pipeline()
    tiers = p.sage(D, "SELECT CT_Num, CT_Ville FROM F_COMPTET WHERE CT_Type = 0 ORDER BY CT_Num")
    refused_key, refused_city = tiers[0]
    p.simulator.reject_field("accounts", "city", lambda value: value == refused_city,
                             "La ville n'existe pas dans le référentiel")
    others = [(key, city) for key, city in tiers if city != refused_city]

    summary = p.run()

    accounts = p.live("accounts")
    assert f"{D}:{refused_key}" not in accounts
    assert all(f"{D}:{key}" in accounts for key, _ in others)
    assert len(p.live("contacts")) > 0 and len(p.live("products")) > 0
    server = p.runtime.start_status_server(port=0)
    with urllib.request.urlopen(server.url(f"status?dossier={D}&entity=account", with_key=True), timeout=10) as answer:
        status = json.loads(answer.read().decode("utf-8"))
    dossier = status["dossiers"][0]
    refused = [i for i in dossier["incidents"] if i["key"] == refused_key]
    assert refused and refused[0]["state"] == "open" and refused[0]["entity"] == "account"
    assert "référentiel" in refused[0]["message"] or "référentiel" in (refused[0]["detail"] or "")
    assert dossier["open_incidents"] >= 1
    assert summary.dispatch.pending == {p.settings.bus.changes_queue: 0}


def test_an_outage_longer_than_every_delivery_ends_with_each_record_in_ssm_once(make_pipeline, monkeypatch):
    from shared.state.records import IncidentState
    from shared.sync import replay

    monkeypatch.setattr(replay, "REPLAY_DELAYS", (dt.timedelta(0),) * 3)   # replays due at once
    reference = make_pipeline()
    assert reference.run().ok
    expected = ssm_state(reference)

    p = make_pipeline(environ={"SSMCONN__BUS__MAX_DELIVERY_COUNT": "2"},
                      client_options=dict(max_retries=0, backoff_base_s=0.01, rate_limit_per_s=1000.0))
    p.simulator.faults.error_statuses = (503,)
    p.simulator.faults.error_rate = 1.0
    p.run()       # every message dead-letters; the cycle's replay finds SSM still down

    incidents = p.runtime.store.list_incidents(D, state=IncidentState.OPEN)
    parked = [i for i in incidents if i.parked]
    parked_keys = {f"{i.entity}:{i.key}" for i in parked}
    assert len(parked) > 20 and all(i.dead_lettered for i in parked)
    # each parked change was replayed once already, or waits for a parent parked itself
    assert all(i.replays >= 1 or i.waiting_for in parked_keys for i in parked)
    assert all(not p.simulator.records(resource) for resource in SSM_RESOURCES if resource != "users")
    assert p.runtime.bus.pending_count(p.settings.bus.changes_queue) == 0

    p.simulator.faults.clear()
    p.runtime.drain()   # nothing on the bus: the replay of the parked changes does it all

    assert_never_duplicated(p)
    assert ssm_state(p) == expected
    assert p.runtime.store.list_incidents(D, state=IncidentState.OPEN) == []
