"""The cloud's side of a dossier's lifecycle: what a run-start marker tells it (name, SSM branch,
database identity, why it realigns), the states it moves the dossier through, and the branch the
Azure side learns without any `[[dossiers]]` in its settings."""
from __future__ import annotations

from shared.envelope import Envelope
from shared.lifecycle import State, cloud_state
from shared.ssm.lookups import BRANCHES
from tests.sync.records import client, only

IDENTITY = {"company_name": "BIJOU SA", "siret": "09304825400010", "created_at": "2024-01-01T00:00:00",
            "database_name": "BIJOU"}


def start(agent, *, realignment: bool, **facts) -> Envelope:
    agent.run_id = f"run-{agent.dossier}-{len(facts)}-{realignment}-{facts.get('cause')}"
    return Envelope.run_marker(dossier=agent.dossier, run_id=agent.run_id, start=True, realignment=realignment,
                               facts=facts)


def test_the_cloud_keeps_what_the_run_start_says_and_creates_records_in_the_dossiers_branch(sim, service, agent,
                                                                                                store):
    lyon = sim.add_record("branches", {"descriptionFR": "Agence de Lyon", "descriptionEN": "Lyon office"})

    service.apply_batch(agent.batch(start(agent, realignment=True, name="Bijouterie du Centre",
                                          ssm_branch="Agence de Lyon", identity=IDENTITY),
                                    agent.upsert(client()), agent.end(read=1)))

    dossier = store.get_dossier("BIJOU")
    assert (dossier.name, dossier.ssm_branch, dossier.identity) == ("Bijouterie du Centre", "Agence de Lyon", IDENTITY)
    assert only(sim.records("accounts"), extId="BIJOU:C001")["branchId"]["id"] == lyon
    assert cloud_state(dossier) is State.ACTIVE and dossier.first_load_done
    assert service.ssm.lookup_id(BRANCHES, "Agence de Lyon") == lyon


def test_a_restored_database_realigns_the_dossier_then_it_is_active_again(sim, service, agent, store):
    service.apply_batch(agent.run(client(), realignment=True))                 # its first load
    assert cloud_state(store.get_dossier("BIJOU")) is State.ACTIVE

    service.apply_batch(agent.batch(start(agent, realignment=True, cause="restored", identity=IDENTITY)))

    dossier = store.get_dossier("BIJOU")
    assert cloud_state(dossier) is State.RESTORED and dossier.realignment_cause == "restored"
    [entry] = store.list_journal("BIJOU", event="dossier-realigning")
    assert "La base Sage du dossier BIJOU a été restaurée ou remplacée" in entry.message

    service.apply_batch(agent.batch(agent.upsert(client(city="Nice")), agent.end(read=1)))

    dossier = store.get_dossier("BIJOU")
    assert cloud_state(dossier) is State.ACTIVE and dossier.last_realigned_at is not None
    assert only(sim.records("accounts"), extId="BIJOU:C001")["city"] == "Nice"


def test_a_dossier_chosen_again_after_a_reinstall_realigns_under_that_cause(service, agent, store):
    service.apply_batch(agent.run(client(), realignment=True))                 # its first load

    service.apply_batch(agent.batch(start(agent, realignment=True, cause="reinstalled")))

    dossier = store.get_dossier("BIJOU")
    assert cloud_state(dossier) is State.REALIGNING and dossier.realignment_cause == "reinstalled"
    assert "L'agent a été réinstallé" in store.list_journal("BIJOU", event="dossier-realigning")[0].message
    service.apply_batch(agent.batch(agent.end(read=0)))
    assert cloud_state(store.get_dossier("BIJOU")) is State.ACTIVE
