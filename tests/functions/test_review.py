"""The Function App on the local bus, as the host drives it: a message that keeps needing redelivery
is set aside alone; the messages queued behind it in its dossier's session are applied."""
from __future__ import annotations

import pytest

from function_app import app
from functions import context
from local.dispatcher import LocalDispatcher
from local.runtime import app_settings_of
from shared.bus.local_bus import LocalBus
from shared.bus.protocol import OutgoingMessage
from shared.config import Settings
from shared.envelope import Envelope, EnvelopeBatch
from shared.models import Account, AccountKind, Contact
from shared.state.factory import open_state_store
from shared.state.records import IncidentState, RunState
from tests.functions.conftest import function_settings

DOSSIER = "BIJOU"
RUN = "run-1"


@pytest.fixture
def settings(simulator, tmp_path) -> Settings:
    return function_settings(simulator, tmp_path, ssm={"max_retries": 0}, bus={"max_delivery_count": 3})


@pytest.fixture
def runtime(settings):
    store = open_state_store(settings.state)
    store.ensure_tables()
    context.configure(settings)
    with LocalBus(settings.bus.path, max_delivery_count=settings.bus.max_delivery_count) as bus:
        dispatcher = LocalDispatcher(bus, app, app_settings=app_settings_of(settings))
        yield bus, dispatcher, store
        dispatcher.close()
    context.reset()
    store.close()


def change(record) -> Envelope:
    return Envelope.change(dossier=DOSSIER, run_id=RUN, entity=record.entity.value, key=record.key,
                           record=record.model_dump(mode="json", exclude={"entity", "key"}))


def send(bus, settings: Settings, *batches: EnvelopeBatch) -> None:
    bus.send(settings.bus.changes_queue, [OutgoingMessage(body=b.to_bytes(), message_id=f"m{n}", session_id=DOSSIER)
                                          for n, b in enumerate(batches)])


def test_a_contact_of_an_account_missing_from_sage_is_set_aside_alone_at_once(runtime, settings, simulator):
    bus, dispatcher, store = runtime
    orphan = Contact(key="9", account_key="C404", first_name="Léa", last_name="Roux")
    client = Account(key="C2", kind=AccountKind.CLIENT, name="Orfèvrerie Dupont", city="Lyon")
    send(bus, settings,
         EnvelopeBatch(dossier=DOSSIER, envelopes=(Envelope.run_marker(dossier=DOSSIER, run_id=RUN, start=True),
                                                   change(orphan))),
         EnvelopeBatch(dossier=DOSSIER, envelopes=(change(client),)),
         EnvelopeBatch(dossier=DOSSIER, envelopes=(Envelope.run_marker(dossier=DOSSIER, run_id=RUN, start=False,
                                                                       counts={"read": 2}),)))

    stats = dispatcher.drain()

    assert bus.dead_letters(settings.bus.changes_queue) == [] and stats.abandoned == 0
    assert [a["extId"] for a in simulator.records("accounts") if a.get("extId")] == ["BIJOU:C2"]
    open_incidents = store.list_incidents(DOSSIER, state=IncidentState.OPEN)
    assert [(i.entity, i.key, i.dead_lettered) for i in open_incidents] == [("contact", "9", True)]
    run = store.get_run(DOSSIER, RUN)
    assert run.ended_at is not None and run.state is RunState.PARTIAL
    assert (run.counts["created"], run.counts["failed"]) == (1, 1)


def test_a_message_still_failing_at_its_last_delivery_is_split_and_its_record_replayed_from_the_status_page(
        runtime, settings, simulator):
    import json
    import urllib.error
    import urllib.request

    from local.status_server import FunctionHttpServer

    bus, dispatcher, store = runtime
    simulator.faults.fail_next(503, count=1000, method="POST", resource="contacts")   # SSM fails this one record
    account = Account(key="C2", kind=AccountKind.CLIENT, name="Orfèvrerie Dupont", city="Lyon")
    contact = Contact(key="9", account_key="C2", first_name="Léa", last_name="Roux")
    later = Account(key="C3", kind=AccountKind.CLIENT, name="Bijoux Martin", city="Nice")
    send(bus, settings,
         EnvelopeBatch(dossier=DOSSIER, envelopes=(Envelope.run_marker(dossier=DOSSIER, run_id=RUN, start=True),
                                                   change(account), change(contact))),
         EnvelopeBatch(dossier=DOSSIER, envelopes=(change(later), Envelope.run_marker(
             dossier=DOSSIER, run_id=RUN, start=False, counts={"read": 3}))))

    stats = dispatcher.drain()

    assert stats.abandoned == settings.bus.max_delivery_count - 1       # redelivered, then split at the last
    assert bus.dead_letters(settings.bus.changes_queue) == []           # no whole batch set aside
    assert sorted(a["extId"] for a in simulator.records("accounts") if a.get("extId")) == ["BIJOU:C2", "BIJOU:C3"]
    [incident] = store.list_incidents(DOSSIER, state=IncidentState.OPEN)
    assert (incident.entity, incident.key, incident.dead_lettered) == ("contact", "9", True)
    assert incident.parked["key"] == "9" and incident.replay_at is not None
    assert store.get_run(DOSSIER, RUN).state is RunState.PARTIAL

    simulator.faults.clear()
    with FunctionHttpServer(app, function_key="cle-de-test") as server:
        page = urllib.request.urlopen(server.url(f"status/page?dossier={DOSSIER}", with_key=True)).read().decode()
        assert "Enregistrements mis de côté" in page and "1 enregistrement(s)" in page
        assert 'action="dossiers/BIJOU/replay?code=' in page
        with pytest.raises(urllib.error.HTTPError) as refused:     # the route needs the key, as the others
            urllib.request.urlopen(urllib.request.Request(server.url(f"status/dossiers/{DOSSIER}/replay"),
                                                          data=b"", method="POST"))
        assert refused.value.code == 401
        assert simulator.records("contacts") == []

        answer = urllib.request.urlopen(urllib.request.Request(
            server.url(f"status/dossiers/{DOSSIER}/replay", with_key=True), data=b"", method="POST",
            headers={"Content-Type": "application/x-www-form-urlencoded", "Accept": "text/html"})).read().decode()

        assert "1 enregistrement(s) mis de côté renvoyé(s) ; 1 sont maintenant dans SSM, 0 restent" in answer
        [sent] = simulator.records("contacts")
        assert sent["extId"] == "BIJOU:9"
        assert store.list_incidents(DOSSIER, state=IncidentState.OPEN) == []
        again = json.loads(urllib.request.urlopen(urllib.request.Request(
            server.url(f"status/dossiers/{DOSSIER}/replay", with_key=True), data=b"", method="POST")).read())
        assert (again["replayed"], again["set_aside"]) == (0, 0)
