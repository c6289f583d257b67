"""The agent tells the cloud that a dossier is deactivated or activated again: the dossier record,
the journal, the status and what SSM receives follow; redeliveries and stale notices change nothing."""
from __future__ import annotations

import datetime as dt

from shared.envelope import Envelope
from shared.status.report import Health, StatusQuery, StatusReader
from tests.sync.records import client, only, writes

UTC = dt.timezone.utc
T1 = dt.datetime(2025, 3, 3, 9, 0, tzinfo=UTC)
T2 = dt.datetime(2025, 3, 4, 9, 0, tzinfo=UTC)
T3 = dt.datetime(2025, 3, 5, 9, 0, tzinfo=UTC)


def state(agent, *, active: bool, at: dt.datetime, change_id: str = None, name: str = None) -> Envelope:
    return Envelope.dossier_state(dossier=agent.dossier, change_id=change_id or f"change-{at:%d%H}-{active}",
                                  active=active, changed_at=at, name=name)


def events(store, event: str) -> list:
    return store.list_journal("BIJOU", event=event)


def test_a_deactivated_dossier_keeps_its_records_shows_inactive_and_applies_no_change(sim, service, agent, store):
    service.apply_batch(agent.run(client()))
    account = only(sim.records("accounts"), extId="BIJOU:C001")

    service.apply_batch(agent.batch(state(agent, active=False, at=T1)))

    dossier = store.get_dossier("BIJOU")
    assert not dossier.active and dossier.deactivated_at == T1
    [entry] = events(store, "dossier-deactivated")
    assert "plus rien n'est synchronisé jusqu'à sa réactivation" in entry.message
    status = StatusReader(store).report(StatusQuery())
    [listed] = status.dossiers
    assert (listed.id, listed.active, listed.health) == ("BIJOU", False, Health.INACTIVE)
    assert [(c.id, c.active) for c in status.dossier_choices] == [("BIJOU", False)]

    sim.reset_calls()
    outcome = service.apply_batch(agent.run(client(city="Nice")))

    assert writes(sim) == [] and outcome.applied == 0
    assert sim.record("accounts", account["id"])["city"] == "Paris"
    assert not sim.record("accounts", account["id"]).get("deleted")
    assert events(store, "dossier-inactive")


def test_activated_again_the_dossier_waits_for_a_realignment_that_brings_what_changed(sim, service, agent, store):
    service.apply_batch(agent.run(client()))
    service.apply_batch(agent.batch(state(agent, active=False, at=T1)))
    service.apply_batch(agent.run(client(city="Nice")))

    service.apply_batch(agent.batch(state(agent, active=True, at=T2, name="Bijouterie du Centre")))

    dossier = store.get_dossier("BIJOU")
    assert dossier.active and dossier.activated_at == T2 and dossier.needs_realignment
    assert dossier.deactivated_at == T1 and dossier.name == "Bijouterie du Centre"
    assert "sa prochaine synchronisation est un réalignement" in events(store, "dossier-activated")[0].message
    assert StatusReader(store).report(StatusQuery()).dossiers[0].health is not Health.INACTIVE

    service.apply_batch(agent.run(client(city="Nice"), realignment=True))

    assert only(sim.records("accounts"), extId="BIJOU:C001")["city"] == "Nice"
    dossier = store.get_dossier("BIJOU")
    assert not dossier.needs_realignment and dossier.last_realigned_at is not None


def test_a_notice_delivered_again_changes_nothing_and_journals_once(service, agent, store):
    service.apply_batch(agent.run(client()))
    notice = agent.batch(state(agent, active=False, at=T1))

    service.apply_batch(notice)
    saved = store.get_dossier("BIJOU")
    service.apply_batch(notice, delivery_count=2)

    assert store.get_dossier("BIJOU").etag == saved.etag
    assert len(events(store, "dossier-deactivated")) == 1


def test_changes_before_a_deactivation_in_the_same_message_are_applied_those_after_are_not(sim, service, agent,
                                                                                             store):
    service.apply_batch(agent.run(client()))
    start = agent.start()
    before = agent.upsert(client(city="Lyon"))
    service.apply_batch(agent.batch(start, before, state(agent, active=False, at=T1),
                                    agent.upsert(client(city="Nice")), agent.end(read=2)))

    assert only(sim.records("accounts"), extId="BIJOU:C001")["city"] == "Lyon"
    assert not store.get_dossier("BIJOU").active


def test_a_notice_for_a_dossier_the_group_does_not_know(service, agent, store):
    outcome = service.apply_batch(agent.batch(state(agent, active=False, at=T1)))
    assert store.try_get_dossier("BIJOU") is None and outcome.ignored == 1

    service.apply_batch(agent.batch(state(agent, active=True, at=T2, name="Bijouterie du Centre")))
    dossier = store.get_dossier("BIJOU")
    assert dossier.active and dossier.name == "Bijouterie du Centre"
    assert events(store, "dossier-registered")


def test_a_realignment_run_activates_the_dossier_again_an_incremental_one_does_not(sim, service, agent, store):
    service.apply_batch(agent.run(client()))
    service.apply_batch(agent.batch(state(agent, active=False, at=T1)))

    service.apply_batch(agent.run(client(city="Nice")))
    assert not store.get_dossier("BIJOU").active

    service.apply_batch(agent.run(client(city="Dole"), realignment=True))

    dossier = store.get_dossier("BIJOU")
    assert dossier.active and not dossier.needs_realignment
    assert only(sim.records("accounts"), extId="BIJOU:C001")["city"] == "Dole"
    assert "synchronisation de réalignement" in events(store, "dossier-activated")[0].message


def test_a_dead_lettered_notice_applies_only_when_no_later_change_was_applied(service, agent, store):
    service.apply_batch(agent.run(client()))
    service.apply_batch(agent.batch(state(agent, active=False, at=T1)))
    service.apply_batch(agent.batch(state(agent, active=True, at=T2)))

    service.record_dead_letter(agent.batch(state(agent, active=False, at=T1, change_id="older")).to_bytes(),
                               reason="MaxDeliveryCountExceeded")

    assert store.get_dossier("BIJOU").active
    assert events(store, "dossier-state-outdated")

    service.record_dead_letter(agent.batch(state(agent, active=False, at=T3)).to_bytes(),
                               reason="MaxDeliveryCountExceeded")

    dossier = store.get_dossier("BIJOU")
    assert not dossier.active and dossier.deactivated_at == T3


def test_a_dead_lettered_realignment_run_does_not_activate_the_dossier(service, agent, store):
    service.apply_batch(agent.run(client()))
    service.apply_batch(agent.batch(state(agent, active=False, at=T1)))

    service.record_dead_letter(agent.run(client(city="Nice"), realignment=True).to_bytes(),
                               reason="MaxDeliveryCountExceeded")

    assert not store.get_dossier("BIJOU").active
