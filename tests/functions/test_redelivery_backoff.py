"""A redelivered Sage changes message waits before it is applied again, longer at each delivery: a few
minutes of SSM outage no longer use up the queue's deliveries and dead-letter whole batches. The
Function App runs on the local bus as the host drives it, against the SSM simulator over HTTP and
the SQLite state store."""
from __future__ import annotations

import datetime as dt
import json
import re
import threading
import time
import uuid

import pytest
from azure.functions.servicebus import ServiceBusMessage

from function_app import app
from functions import context
from local.dispatcher import HOST_JSON, LocalDispatcher, registered_functions
from local.runtime import app_settings_of
from shared.bus.local_bus import LocalBus
from shared.bus.protocol import OutgoingMessage
from shared.config import BusSettings, Settings
from shared.envelope import Envelope, EnvelopeBatch
from shared.models import Account, AccountKind
from shared.state.factory import open_state_store
from shared.state.records import IncidentState, RunState
from shared.sync.redelivery import RedeliveryBackoff
from tests.functions.conftest import function_settings

DOSSIER = "BIJOU"
BASE_S = 0.05
OUTAGE_S = 1.0


def a_run(run_id: str, *keys: str) -> EnvelopeBatch:
    accounts = [Account(key=key, kind=AccountKind.CLIENT, name=f"Bijouterie {key}", city="Lyon") for key in keys]
    return EnvelopeBatch(dossier=DOSSIER, envelopes=(
        Envelope.run_marker(dossier=DOSSIER, run_id=run_id, start=True, realignment=True),
        *(Envelope.change(dossier=DOSSIER, run_id=run_id, entity="account", key=a.key,
                          record=a.model_dump(mode="json", exclude={"entity", "key"})) for a in accounts),
        Envelope.run_marker(dossier=DOSSIER, run_id=run_id, start=False, counts={"read": len(accounts)})))


@pytest.fixture
def settings(simulator, tmp_path) -> Settings:
    return function_settings(simulator, tmp_path, ssm={"max_retries": 0},
                             bus={"max_delivery_count": 10, "redelivery_backoff_s": BASE_S})


@pytest.fixture
def store(settings):
    state = open_state_store(settings.state)
    state.ensure_tables()
    context.configure(settings)
    yield state
    context.reset()
    state.close()


def ssm_accounts(simulator) -> list[str]:
    return sorted(a["extId"] for a in simulator.records("accounts") if a.get("extId"))


def test_the_wait_doubles_from_its_base_to_a_cap_and_ten_deliveries_span_over_a_quarter_of_an_hour():
    backoff = RedeliveryBackoff(BusSettings().redelivery_backoff_s)

    assert [backoff.delay_s(n) for n in range(1, 11)] == [0, 5, 10, 20, 40, 80, 160, 240, 240, 240]
    assert backoff.span_s(BusSettings().max_delivery_count) >= 15 * 60
    assert RedeliveryBackoff(0.0).span_s(10) == 0


def timespan_s(text: str) -> float:
    hours, minutes, seconds = re.fullmatch(r"(\d+):(\d+):(\d+(?:\.\d+)?)", text).groups()
    return int(hours) * 3600 + int(minutes) * 60 + float(seconds)


def test_the_host_keeps_the_session_locked_and_the_function_alive_through_the_longest_wait():
    host = json.loads(HOST_JSON.read_text(encoding="utf-8"))
    longest = RedeliveryBackoff(BusSettings().redelivery_backoff_s).cap_s
    processing_budget_s = 10 * 60
    assert longest + processing_budget_s <= timespan_s(host["extensions"]["serviceBus"]["maxAutoLockRenewalDuration"])
    assert longest + processing_budget_s <= timespan_s(host["functionTimeout"])


def test_a_redelivered_message_waits_its_backoff_before_it_is_applied(simulator, store):
    handler = next(f for f in registered_functions(app) if f.get_function_name() == "sage_changes")
    redelivered = ServiceBusMessage(
        body=a_run("run-1", "C1").to_bytes(), message_id=uuid.uuid4().hex, session_id=DOSSIER, delivery_count=4,
        enqueued_time_utc=dt.datetime.now(dt.timezone.utc), sequence_number=1, content_type="application/json",
        application_properties={}, user_properties={}, lock_token=uuid.uuid4().hex)

    started = time.monotonic()
    handler.get_user_function()(message=redelivered)

    assert time.monotonic() - started >= RedeliveryBackoff(BASE_S).delay_s(4) == 4 * BASE_S
    assert ssm_accounts(simulator) == ["BIJOU:C1"]
    assert store.get_run(DOSSIER, "run-1").state is RunState.SUCCEEDED


def test_a_batch_outlives_an_ssm_outage_longer_than_its_deliveries_without_being_dead_lettered(
        simulator, settings, store):
    simulator.faults.error_statuses = (503,)
    simulator.faults.error_rate = 1.0
    ssm_back = threading.Timer(OUTAGE_S, simulator.faults.clear)
    with LocalBus(settings.bus.path, max_delivery_count=settings.bus.max_delivery_count) as bus:
        dispatcher = LocalDispatcher(bus, app, app_settings=app_settings_of(settings))
        bus.send(settings.bus.changes_queue, [OutgoingMessage(body=a_run("run-1", "C1", "C2", "C3").to_bytes(),
                                                              message_id="m0", session_id=DOSSIER)])
        ssm_back.start()
        try:
            stats = dispatcher.drain()
        finally:
            ssm_back.cancel()
            dispatcher.close()
        dead_letters = bus.dead_letters(settings.bus.changes_queue)

    assert dead_letters == [] and stats.abandoned >= 1 and stats.pending == {settings.bus.changes_queue: 0}
    assert any(c.fault for c in simulator.calls), "SSM really was out"
    assert ssm_accounts(simulator) == ["BIJOU:C1", "BIJOU:C2", "BIJOU:C3"]
    assert store.list_incidents(DOSSIER, state=IncidentState.OPEN) == []
    assert store.get_incident(DOSSIER, "connection", "ssm", "read").state is IncidentState.RESOLVED
    run = store.get_run(DOSSIER, "run-1")
    assert run.state is RunState.SUCCEEDED and run.counts["created"] == 3
