"""Collaborateurs: never created in SSM by a sync (each SSM user is a paid licence): linked by
e-mail to the SSM user an administrator invited or created with `ssm-connector users`; meanwhile
they wait "to invite" and their accounts belong to the admin user."""
from __future__ import annotations

from shared.state.records import IncidentState
from tests.sync.records import client, invite, only, user, writes


def test_the_first_load_links_the_users_ssm_has_and_creates_none(sim, service, agent, store):
    known = sim.seed_user("Claire", "Martin", "Claire.Martin@bijou.example")

    outcome = service.apply_batch(agent.run(user("1", "Amélie", "Durand", "amelie.durand@bijou.example",
                                                 phone="01 02 03 04 05"),
                                            user("2", "Claire", "Martin", "claire.martin@bijou.example")))

    assert writes(sim, "users") == [] and outcome.pending == 1
    assert store.get_link("BIJOU", "user", "2").ssm_id == known
    waiting = store.get_link("BIJOU", "user", "1")
    assert waiting.ssm_id is None
    assert waiting.base["_collaborator"] == {"first_name": "Amélie", "last_name": "Durand",
                                             "email": "amelie.durand@bijou.example", "phone": "01 02 03 04 05",
                                             "mobile": None, "job_title": None}
    assert store.get_incident("BIJOU", "user", "1", "invite").state is IncidentState.OPEN


def test_a_collaborateur_without_an_ssm_user_is_not_created_but_waits_for_an_invitation(sim, service, agent,
                                                                                          store):
    invite(sim, user("1"))
    service.apply_batch(agent.run(user("1")))
    sim.reset_calls()

    newcomer = user("5", "Jérôme", "Petit", "jerome.petit@bijou.example")
    outcome = service.apply_batch(agent.run(newcomer, client(rep_key="5")))

    assert writes(sim, "users") == []
    assert outcome.pending == 1 and outcome.applied == 1 and not outcome.needs_redelivery
    incident = store.get_incident("BIJOU", "user", "5", "invite")
    assert incident.state is IncidentState.OPEN
    assert incident.message == ("Jérôme Petit (jerome.petit@bijou.example) doit être invité dans Sage Sales "
                                "Management, ou créé avec `ssm-connector users`, avant que ses comptes puissent "
                                "lui être attribués")
    assert [e.key for e in store.list_journal("BIJOU", event="invite-needed")] == ["5"]
    assert only(sim.records("accounts"), extId="BIJOU:C001")["salesRepId1"]["id"] == sim.admin_id

    invited = sim.seed_user("Jérôme", "Petit", "JEROME.PETIT@bijou.example")
    assert service.retry_pending_invites("BIJOU") == 1

    assert store.get_link("BIJOU", "user", "5").ssm_id == invited
    assert store.get_incident("BIJOU", "user", "5", "invite").state is IncidentState.RESOLVED
    sim.reset_calls()
    assert service.retry_pending_invites("BIJOU") == 0 and sim.call_count() == 0

    service.apply_batch(agent.run(client(rep_key="5", city="Rouen")))
    assert only(sim.records("accounts"), extId="BIJOU:C001")["salesRepId1"]["id"] == invited


def test_invitations_are_matched_at_each_run_end(sim, service, agent, store):
    service.apply_batch(agent.run(user("1")))
    service.apply_batch(agent.run(user("6", "Luc", "Moreau", "luc.moreau@bijou.example")))
    sim.seed_user("Luc", "Moreau", "luc.moreau@bijou.example")

    service.apply_batch(agent.run())

    assert store.get_link("BIJOU", "user", "6").ssm_id is not None
    assert store.list_journal("BIJOU", event="invite-matched")


def test_a_redelivered_batch_leaves_the_invitation_open(sim, service, agent, store):
    service.apply_batch(agent.run(user("1")))
    batch = agent.run(user("5", "Jérôme", "Petit", "jerome.petit@bijou.example"))
    service.apply_batch(batch)
    sim.reset_calls()

    again = service.apply_batch(batch, delivery_count=2)

    assert again.pending == 1 and sim.call_count() == 0
    assert store.get_incident("BIJOU", "user", "5", "invite").state is IncidentState.OPEN
