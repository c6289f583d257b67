"""The registered Service Bus functions called in-process with real `azure.functions` messages,
against the SQLite state store and the SSM simulator over HTTP."""
from __future__ import annotations

import datetime as dt
import uuid

import pytest
from azure.functions.servicebus import ServiceBusMessage
from azure.functions.timer import TimerRequest

from function_app import app
from functions import context
from functions.sage_changes import RedeliveryRequested
from local.dispatcher import registered_functions
from shared.config import Settings
from shared.envelope import Envelope, EnvelopeBatch
from shared.models import Account, AccountKind, User
from shared.ssm.client import SsmClient
from shared.state.factory import open_state_store
from shared.state.records import IncidentState, utcnow
from shared.sync.incidents import GROUP_DOSSIER
from shared.sync.service import SyncService
from tests.functions.conftest import function_settings

DOSSIER = "BIJOU"


def function(name: str):
    return next(f for f in registered_functions(app) if f.get_function_name() == name).get_user_function()


def message(body: bytes, *, session_id: str = DOSSIER, delivery_count: int = 1, dead_letter_reason=None,
            dead_letter_description=None) -> ServiceBusMessage:
    return ServiceBusMessage(
        body=body, message_id=uuid.uuid4().hex, session_id=session_id, delivery_count=delivery_count,
        enqueued_time_utc=dt.datetime.now(dt.timezone.utc), sequence_number=1, content_type="application/json",
        application_properties={}, user_properties={}, lock_token=uuid.uuid4().hex,
        dead_letter_reason=dead_letter_reason, dead_letter_error_description=dead_letter_description)


def batch(run_id: str = "run-1") -> EnvelopeBatch:
    rep = User(key="1", first_name="Élodie", last_name="Lefèvre", email="elodie.lefevre@bijou.fr")
    client = Account(key="ETOILE", kind=AccountKind.CLIENT, name="Bijouterie «L'Étoile» – Besançon",
                     city="Besançon", phone="03 81 00 00 01", rep_key="1")
    return EnvelopeBatch(dossier=DOSSIER, envelopes=(
        Envelope.run_marker(dossier=DOSSIER, run_id=run_id, start=True, realignment=True),
        Envelope.change(dossier=DOSSIER, run_id=run_id, entity="user", key="1", record=rep.model_dump(mode="json")),
        Envelope.change(dossier=DOSSIER, run_id=run_id, entity="account", key="ETOILE",
                        record=client.model_dump(mode="json")),
        Envelope.run_marker(dossier=DOSSIER, run_id=run_id, start=False, counts={"read": 2, "created": 2}),
    ))


@pytest.fixture
def settings(simulator, tmp_path) -> Settings:
    return function_settings(simulator, tmp_path)


@pytest.fixture
def store(settings):
    context.configure(settings)
    state = open_state_store(settings.state)
    state.ensure_tables()
    yield state
    context.reset()
    state.close()


def test_a_batch_of_changes_reaches_ssm(simulator, store):
    function("sage_changes")(message=message(batch().to_bytes()))

    accounts = [a for a in simulator.records("accounts") if a["extId"] == f"{DOSSIER}:ETOILE"]
    assert len(accounts) == 1
    assert accounts[0]["name"] == "Bijouterie «L'Étoile» – Besançon"
    assert accounts[0]["salesRepId1"]["id"] == store.get_link(DOSSIER, "user", "1").ssm_id
    run = store.get_run(DOSSIER, "run-1")
    assert run is not None and run.counts["created"] == 1 and run.counts["updated"] == 1   # the rep is linked

    simulator.reset_calls()
    function("sage_changes")(message=message(batch().to_bytes(), delivery_count=2))
    assert simulator.call_count(writes_only=True) == 0


def test_an_undecodable_body_is_an_incident_and_the_other_messages_are_applied(simulator, store):
    function("sage_changes")(message=message(b"\x00 not a batch"))
    function("sage_changes")(message=message(batch().to_bytes()))

    incidents = store.list_incidents(GROUP_DOSSIER, state=IncidentState.OPEN)
    assert len(incidents) == 1 and incidents[0].dead_lettered
    assert any(a["extId"] == f"{DOSSIER}:ETOILE" for a in simulator.records("accounts"))


def test_a_batch_in_another_dossiers_session_is_set_aside_not_applied(simulator, store):
    function("sage_changes")(message=message(batch().to_bytes(), session_id="ATELIER"))

    assert not [a for a in simulator.records("accounts") if a.get("extId")]
    open_incidents = store.list_incidents(DOSSIER, state=IncidentState.OPEN)
    assert {(i.entity, i.key) for i in open_incidents} == {("user", "1"), ("account", "ETOILE")}
    assert store.list_incidents("ATELIER") == []


def test_a_batch_ssm_cannot_take_now_is_raised_for_redelivery(simulator, settings, store):
    client = SsmClient(simulator.base_url, simulator.public_key, simulator.private_key, max_retries=0,
                       rate_limit_per_s=500)
    context.configure(settings, service=SyncService(store, client, admin_user_email=simulator.admin_email))
    simulator.faults.error_rate = 1.0
    simulator.faults.resources = frozenset({"accounts"})
    try:
        with pytest.raises(RedeliveryRequested):
            function("sage_changes")(message=message(batch().to_bytes()))
        assert store.get_link(DOSSIER, "account", "ETOILE") is None or \
            store.get_link(DOSSIER, "account", "ETOILE").ssm_id is None

        simulator.faults.error_rate = 0.0
        function("sage_changes")(message=message(batch().to_bytes(), delivery_count=2))
        assert store.get_link(DOSSIER, "account", "ETOILE").ssm_id is not None
        assert len([a for a in simulator.records("accounts") if a["extId"] == f"{DOSSIER}:ETOILE"]) == 1
    finally:
        context.reset()
        client.close()


def test_a_dead_lettered_batch_becomes_incidents_of_its_records(simulator, store):
    function("sage_changes_dead_letters")(message=message(
        batch("run-2").to_bytes(), dead_letter_reason="MaxDeliveryCountExceeded",
        dead_letter_description="Message could not be consumed after 10 delivery attempts."))

    incidents = {(i.entity, i.key): i for i in store.list_incidents(DOSSIER, state=IncidentState.OPEN)}
    assert set(incidents) == {("user", "1"), ("account", "ETOILE")}
    assert all(i.dead_lettered for i in incidents.values())
    assert "MaxDeliveryCountExceeded" in (incidents[("account", "ETOILE")].detail or "")
    assert simulator.call_count(writes_only=True) == 0


def test_the_replay_timer_sends_the_dead_lettered_changes_once_they_are_due(simulator, store):
    function("sage_changes_dead_letters")(message=message(batch("run-2").to_bytes(),
                                                          dead_letter_reason="MaxDeliveryCountExceeded"))
    replay = function("replay_parked_changes")

    replay(timer=TimerRequest())
    assert not [a for a in simulator.records("accounts") if a.get("extId") == f"{DOSSIER}:ETOILE"]

    for incident in store.list_incidents(DOSSIER, state=IncidentState.OPEN):
        store.repark_incident(incident, replay_at=utcnow() - dt.timedelta(seconds=1))
    replay(timer=TimerRequest(past_due=True))

    [account] = [a for a in simulator.records("accounts") if a.get("extId") == f"{DOSSIER}:ETOILE"]
    assert account["salesRepId1"]["id"] == store.get_link(DOSSIER, "user", "1").ssm_id
    assert store.list_incidents(DOSSIER, state=IncidentState.OPEN) == []


def test_a_webhook_call_sends_the_agent_a_command_for_a_prospect_created_in_ssm(simulator, settings, store):
    import azure.functions as func

    from shared.bus.factory import open_bus
    from shared.envelope import EnvelopeKind, Op

    function("sage_changes")(message=message(batch().to_bytes()))     # the dossier is connected
    call = lambda: function("ssm_hooks")(req=func.HttpRequest("POST", "/api/ssm/hooks", body=b"[]"))  # noqa: E731
    assert call().status_code == 200                                     # the first pass starts the cursor
    simulator.add_record("accounts", {"name": "Prospect du web", "branchId": simulator.branch_id,
                                      "salesRepId1": simulator.admin_id,
                                      "typeId": simulator.account_type_ids["Prospect"]})
    answer = call()

    assert answer.status_code == 200 and b'"commands": 1' in answer.get_body()
    bus = open_bus(settings.bus)
    try:
        receiver = bus.accept_session(settings.bus.commands_queue, DOSSIER)
        [received] = receiver.receive(5)
        [command] = EnvelopeBatch.from_bytes(received.body).envelopes
        receiver.close()
    finally:
        bus.close()
    assert (command.kind, command.op, command.record["fields"]["name"]) == (EnvelopeKind.COMMAND, Op.CREATE_PROSPECT,
                                                                           "Prospect du web")
