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


def test_a_message_stuck_on_a_missing_account_is_set_aside_alone(runtime, settings, simulator):
    bus, dispatcher, store = runtime
    orphan = Contact(key="9", account_key="C404", first_name="Léa", last_name="Roux")
    client = Account(key="C2", kind=AccountKind.CLIENT, name="Orfèvrerie Dupont", city="Lyon")
    send(bus, settings,
         EnvelopeBatch(dossier=DOSSIER, envelopes=(Envelope.run_marker(dossier=DOSSIER, run_id=RUN, start=True),
                                                   change(orphan))),
         EnvelopeBatch(dossier=DOSSIER, envelopes=(change(client),)),
         EnvelopeBatch(dossier=DOSSIER, envelopes=(Envelope.run_marker(dossier=DOSSIER, run_id=RUN, start=False,
                                                                       counts={"read": 2}),)))

    dispatcher.drain()

    assert [m.message_id for m in bus.dead_letters(settings.bus.changes_queue)] == ["m0"]
    assert [a["extId"] for a in simulator.records("accounts") if a.get("extId")] == ["BIJOU:C2"]
    open_incidents = store.list_incidents(DOSSIER, state=IncidentState.OPEN)
    assert [(i.entity, i.key, i.dead_lettered) for i in open_incidents] == [("contact", "9", True)]
    run = store.get_run(DOSSIER, RUN)
    assert run.ended_at is not None and run.state is RunState.PARTIAL
    assert (run.counts["created"], run.counts["failed"]) == (1, 1)
