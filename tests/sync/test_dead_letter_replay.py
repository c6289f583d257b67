"""Changes of a dead-lettered message are tried again on a schedule until they reach SSM; a newer
change of the same record supersedes them; nothing is applied twice or out of order."""
from __future__ import annotations

import datetime as dt

from shared.state.records import IncidentState, utcnow
from shared.sync import replay
from shared.sync.replay import REPLAY_DELAYS, replay_parked
from shared.models import Entity
from tests.sync.records import client, contact, document, family, line, only, product, user

LATER = REPLAY_DELAYS[0] + dt.timedelta(minutes=1)


def ssm_down(sim) -> None:
    sim.faults.error_statuses = (503,)
    sim.faults.error_rate = 1.0


def dead_letter(service, sim, batch, *, deliveries: int = 3) -> None:
    """SSM does not answer any delivery of `batch`, which then dead-letters; SSM answers again."""
    ssm_down(sim)
    for delivery in range(1, deliveries + 1):
        assert service.apply_batch(batch, delivery_count=delivery).needs_redelivery
    service.record_dead_letter(batch.to_bytes(), reason="MaxDeliveryCountExceeded")
    sim.faults.clear()


def open_incidents(store) -> dict[tuple[str, str], object]:
    return {(i.entity, i.key): i for i in store.list_incidents("BIJOU", state=IncidentState.OPEN)}


def parked(store) -> dict[tuple[str, str], object]:
    return {record: i for record, i in open_incidents(store).items() if i.parked}


def accounts(sim) -> list[dict]:
    return [a for a in sim.records("accounts") if (a.get("extId") or "").startswith("BIJOU:")]


def test_changes_set_aside_during_a_long_outage_reach_ssm_when_their_replay_is_due(sim, service, agent, store):
    dead_letter(service, sim, agent.run(client(), contact()))
    assert set(parked(store)) == {("account", "C001"), ("contact", "7")}
    assert parked(store)[("account", "C001")].message.startswith(
        "Impossible d'envoyer le tiers « C001 » à Sage Sales Management. Modification mise de côté après plusieurs "
        "tentatives")
    assert accounts(sim) == []

    assert replay_parked(service, now=utcnow()).replayed == 0        # not due yet
    assert accounts(sim) == []

    done = replay_parked(service, now=utcnow() + LATER)

    assert (done.replayed, done.resolved, done.parked_again) == (2, 2, 0)
    account = only(accounts(sim), extId="BIJOU:C001")
    assert only(sim.records("contacts"), extId="BIJOU:7")["accountId"]["id"] == account["id"]
    assert open_incidents(store) == {}                                 # the outage's incident too
    sim.reset_calls()
    assert replay_parked(service, now=utcnow() + 10 * LATER).replayed == 0
    assert sim.call_count() == 0


def test_a_replay_while_ssm_is_still_down_parks_the_change_again_for_later(sim, service, agent, store):
    dead_letter(service, sim, agent.run(client()))
    first = utcnow() + LATER
    ssm_down(sim)

    done = replay_parked(service, now=first)

    assert (done.replayed, done.parked_again) == (1, 1) and accounts(sim) == []
    incident = parked(store)[("account", "C001")]
    assert incident.replays == 1 and incident.replay_at == first + REPLAY_DELAYS[1]
    assert f"la première fois le {incident.replay_at:%d/%m/%Y %H:%M} (UTC)" in incident.message
    sim.faults.clear()
    assert replay_parked(service, now=first + REPLAY_DELAYS[1] / 2).replayed == 0
    assert replay_parked(service, now=incident.replay_at).resolved == 1
    assert len(accounts(sim)) == 1 and open_incidents(store) == {}


def test_a_newer_change_of_the_record_supersedes_its_parked_change(sim, service, agent, store):
    dead_letter(service, sim, agent.run(client(city="Lyon")))
    service.apply_batch(agent.run(client(city="Nice")))
    assert parked(store) == {}

    assert replay_parked(service, now=utcnow() + LATER).replayed == 0
    assert only(accounts(sim), extId="BIJOU:C001")["city"] == "Nice"


def test_a_record_back_to_what_ssm_has_drops_its_parked_change(sim, service, agent, store):
    service.apply_batch(agent.run(client(city="Lyon")))
    dead_letter(service, sim, agent.run(client(city="Nice")))
    service.apply_batch(agent.run(client(city="Lyon")))              # changed back in Sage: nothing to send

    assert parked(store) == {} and open_incidents(store) == {}
    assert replay_parked(service, now=utcnow() + LATER).replayed == 0
    assert only(accounts(sim), extId="BIJOU:C001")["city"] == "Lyon"


def test_a_parked_change_ssm_refuses_stays_an_incident_and_is_not_replayed_again(sim, service, agent, store):
    dead_letter(service, sim, agent.run(client(name="Refusé SA")))
    sim.reject_field("accounts", "name", lambda value: value == "Refusé SA", "Le nom 'Refusé SA' est interdit")

    done = replay_parked(service, now=utcnow() + LATER)

    assert (done.replayed, done.resolved, done.parked_again) == (1, 0, 0)
    incident = open_incidents(store)[("account", "C001")]
    assert "Refusé SA" in incident.message and incident.parked == {} and accounts(sim) == []
    assert replay_parked(service, now=utcnow() + 100 * LATER).replayed == 0


def test_a_change_that_never_gets_through_is_given_up_after_its_last_replay(sim, service, agent, store):
    dead_letter(service, sim, agent.run(client()))
    ssm_down(sim)
    now = utcnow()
    for delay in REPLAY_DELAYS:
        now += delay
        assert replay_parked(service, now=now).replayed == 1

    [incident] = [i for i in open_incidents(store).values() if i.entity == "account"]
    assert incident.parked == {} and incident.replays == len(REPLAY_DELAYS)
    assert f"réessayée {len(REPLAY_DELAYS)} fois" in incident.message
    sim.faults.clear()
    assert replay_parked(service, now=now + 100 * LATER).replayed == 0


def test_a_deactivated_dossier_has_nothing_replayed(sim, service, agent, store):
    dead_letter(service, sim, agent.run(client()))
    store.upsert_dossier(store.get_dossier("BIJOU").model_copy(update={"active": False}))

    assert replay_parked(service, now=utcnow() + LATER).replayed == 0
    assert accounts(sim) == [] and set(parked(store)) == {("account", "C001")}


def test_the_replay_takes_a_bounded_number_of_changes_per_call(sim, service, agent, store, monkeypatch):
    monkeypatch.setattr(replay, "MAX_REPLAYS_PER_DOSSIER", 2)
    monkeypatch.setattr(replay, "REPLAYS_PER_BATCH", 1)
    dead_letter(service, sim, agent.run(client("C001"), client("C002"), client("C003")))

    assert replay_parked(service, now=utcnow() + LATER).resolved == 2
    assert replay_parked(service, now=utcnow() + LATER).resolved == 1
    assert sorted(a["extId"] for a in accounts(sim)) == ["BIJOU:C001", "BIJOU:C002", "BIJOU:C003"]


def test_a_change_too_large_to_keep_is_an_incident_that_says_so(sim, service, agent, store, monkeypatch):
    from shared.state import limits

    invoice = document(Entity.INVOICE, "FA0001", [line(str(n), n) for n in range(1, 41)])
    monkeypatch.setattr(limits, "MAX_ENTITY_BYTES", 8000)   # the invoice's 40 lines do not fit, the rest does
    dead_letter(service, sim, agent.run(invoice))

    incident = open_incidents(store)[("invoice", "F:FA0001")]
    assert incident.dead_lettered and incident.parked == {} and incident.replay_at is None
    assert "trop volumineuse pour être gardée" in incident.message


def test_a_newer_change_applied_while_a_replay_runs_is_not_overwritten(sim, service, agent, store, monkeypatch):
    service.apply_batch(agent.run(client(city="Lyon")))
    dead_letter(service, sim, agent.run(client(city="Nice")))
    listed = replay.due(store, "BIJOU", utcnow() + LATER)       # the replay has read what is due...
    service.apply_batch(agent.run(client(city="Paris")))       # ...when the dossier's next message applies
    monkeypatch.setattr(replay, "due", lambda *_: listed)

    assert replay_parked(service, now=utcnow() + LATER).replayed == 1

    assert only(accounts(sim), extId="BIJOU:C001")["city"] == "Paris"
    assert store.get_link("BIJOU", "account", "C001").base["city"] == "Paris"
    assert open_incidents(store) == {}


def test_a_replayed_document_waiting_for_its_product_is_sent_as_soon_as_the_product_is(sim, service, agent, store):
    invoice = document(Entity.INVOICE, "FA0002", [line("1", 1, product_key="BAG-OR-18")])
    dead_letter(service, sim, agent.run(client(), invoice))
    first = utcnow() + LATER

    done = replay_parked(service, now=first)                    # the product is not in SSM yet

    assert (done.resolved, done.parked_again) == (1, 0)
    assert sim.records("salesordersLines") == []
    assert parked(store)[("invoice", "F:FA0002")].waiting_for == "product:BAG-OR-18"
    applied = service.apply_batch(agent.run(family(), product()))      # the product's own change...

    assert [i.key for i in applied.released] == ["F:FA0002"]         # ...sends the document at once
    [sent] = sim.records("salesordersLines")
    assert sent["productId"]["id"] == store.get_link("BIJOU", "product", "BAG-OR-18").ssm_id
    assert open_incidents(store) == {}


def test_a_collaborateur_replayed_after_the_first_load_waits_for_its_invitation_and_is_not_replayed_again(
        sim, service, agent, store):
    service.apply_batch(agent.run(user("1")))                    # the first load is done
    dead_letter(service, sim, agent.run(user("5", "Jérôme", "Petit", "jerome.petit@bijou.example")))

    done = replay_parked(service, now=utcnow() + LATER)

    assert (done.replayed, done.resolved) == (1, 1)
    assert store.get_incident("BIJOU", "user", "5", "invite").state is IncidentState.OPEN
    assert parked(store) == {}
    sim.reset_calls()
    assert replay_parked(service, now=utcnow() + 2 * LATER).replayed == 0 and sim.call_count() == 0


def test_a_record_keeps_one_change_for_replay_the_newest(sim, service, agent, store):
    service.apply_batch(agent.run(client(city="Lyon")))
    older = agent.run(client(city="Nice"))
    store.record_incident("BIJOU", "account", "C001", "create", "The account 'C001' was refused")
    store.record_incident("BIJOU", "account", "C001", "update", "The account 'C001' could not be sent",
                          dead_lettered=True, parked=older.envelopes[1].model_dump(mode="json"),
                          replay_at=utcnow())
    dead_letter(service, sim, agent.run(client(city="Paris")))

    kept = [i for i in store.list_incidents("BIJOU", state=IncidentState.OPEN) if i.parked]
    assert [(i.operation, i.parked["record"]["city"]) for i in kept] == [("create", "Paris")]
    dropped = store.get_incident("BIJOU", "account", "C001", "update")
    assert dropped.parked == {} and "une modification plus récente de la même fiche a été mise de côté" in dropped.message
    replay_parked(service, now=utcnow() + LATER)
    assert only(accounts(sim), extId="BIJOU:C001")["city"] == "Paris" and open_incidents(store) == {}


def test_a_parked_change_that_cannot_be_read_back_is_said_and_the_others_are_replayed(sim, service, agent, store):
    dead_letter(service, sim, agent.run(client("C001"), client("C002")))
    store.record_incident("BIJOU", "account", "C002", "create", "The account 'C002' could not be sent",
                          dead_lettered=True, parked={"not": "an envelope"}, replay_at=utcnow())

    done = replay_parked(service, now=utcnow() + LATER)

    assert (done.replayed, done.resolved) == (1, 1)
    assert [a["extId"] for a in accounts(sim)] == ["BIJOU:C001"]
    unreadable = open_incidents(store)[("account", "C002")]
    assert unreadable.parked == {} and "illisible pour un nouvel essai" in unreadable.message


def test_a_dossier_whose_replay_fails_does_not_stop_the_others(sim, service, store, monkeypatch):
    from tests.sync.conftest import AgentScript

    for dossier in ("ATELIER", "BIJOU"):
        dead_letter(service, sim, AgentScript(dossier).run(client()))
    apply_batch = service.apply_batch

    def failing_for_atelier(batch, **options):
        if batch.dossier == "ATELIER":
            raise RuntimeError("the state store is out of reach")
        return apply_batch(batch, **options)

    monkeypatch.setattr(service, "apply_batch", failing_for_atelier)
    done = replay_parked(service, now=utcnow() + LATER)

    assert done.resolved == 1
    assert sorted(a["extId"] for a in sim.records("accounts") if a.get("extId")) == ["BIJOU:C001"]
    assert len(parked(store)) == 0
    assert [i.key for i in store.list_incidents("ATELIER", state=IncidentState.OPEN) if i.parked] == ["C001"]
