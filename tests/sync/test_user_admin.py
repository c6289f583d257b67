"""Users and licences: listing the Sage collaborators with their SSM match, creating the chosen ones.

Collaborators reach the state store as links of entity "user"; pending ones carry their Sage
details in `base["_collaborator"]` and an open "invite" incident, as the user synchronizer leaves
them. Every test checks both sides: the SSM simulator's records and calls, and the state store.
"""
from __future__ import annotations

import pytest

from shared.config import Settings
from shared.ssm import contract
from shared.state.records import IncidentState
from shared.ssm.tenant import users_by_email
from shared.sync.binder import Binder
from shared.sync.user_admin import (ALREADY_LINKED, CREATED, FAILED, LINKED, LINKED_EXISTING, NO_EMAIL, REFUSED,
                                    TO_CREATE, collaborator_rows, collaborators, create_users, pending_keys)

DOSSIER = "BIJOU"


def settings_for(sim, **ssm) -> Settings:
    return Settings.model_validate({
        "ssm": {"base_url": sim.base_url, "admin_user_email": sim.admin_email, **ssm},
        "dossiers": [{"id": DOSSIER, "odbc": "Driver=SQLite3;Database=x.db"}]})


def pending(store, key: str, first: str | None, last: str, email: str | None, *, phone: str | None = "0102030405",
            mobile: str | None = None, dossier: str = DOSSIER):
    """A collaborator the sync left waiting for an SSM user."""
    collaborator = {"first_name": first, "last_name": last, "email": email, "phone": phone, "mobile": mobile,
                    "job_title": "Commercial"}
    Binder(store, dossier, "user").bind(key, None, base={"lastName": last, "email": email,
                                                         "_collaborator": collaborator}, hash="h-" + key)
    store.record_incident(dossier, "user", key, "invite", f"{first} {last} doit être invité dans SSM.")


def user_posts(sim) -> list:
    return [c for c in sim.calls if c.method == "POST" and c.resource == "users"]


def invite_state(store, key: str):
    return store.get_incident(DOSSIER, "user", key, "invite").state


def test_collaborators_are_matched_to_live_ssm_users_by_email_whatever_the_case(sim, store, ssm):
    invited = sim.seed_user("Jean", "Dupont", "Jean.Dupont@Bijou.example")
    pending(store, "JDUPONT", "Jean", "Dupont", "jean.dupont@bijou.EXAMPLE")
    pending(store, "MMARTIN", "Marie", "Martin", "marie.martin@bijou.example")
    pending(store, "SANSMAIL", "Paul", "Sans", None)
    Binder(store, DOSSIER, "user").bind("ADMIN", sim.admin_id, base={"email": sim.admin_email}, hash="h")

    rows = {r.key: r for r in collaborators(store, ssm, [DOSSIER])}

    assert {k: (r.state, r.ssm_id, r.bound) for k, r in rows.items()} == {
        "ADMIN": (LINKED, sim.admin_id, True),
        "JDUPONT": (LINKED, invited, False),
        "MMARTIN": (TO_CREATE, None, False),
        "SANSMAIL": (NO_EMAIL, None, False),
    }
    assert rows["MMARTIN"].name == "Marie Martin" and rows["MMARTIN"].state_label == "à inviter/créer"
    assert sim.call_count(writes_only=True) == 0
    assert store.get_link(DOSSIER, "user", "JDUPONT").ssm_id is None       # listing binds nothing


def test_without_ssm_the_rows_come_from_the_links_alone(sim, store):
    sim.seed_user("Jean", "Dupont", "jean.dupont@bijou.example")
    pending(store, "JDUPONT", "Jean", "Dupont", "jean.dupont@bijou.example")
    Binder(store, DOSSIER, "user").bind("ADMIN", sim.admin_id, base={"name": "Admin", "lastName": "Impl",
                                                                     "email": sim.admin_email}, hash="h")
    Binder(store, DOSSIER, "user").bind("PARTI", None, base={"lastName": "Parti"}, hash="h", deleted=True)

    rows = collaborator_rows(store, DOSSIER)

    assert [(r.key, r.name, r.state, r.ssm_id) for r in rows] == [
        ("ADMIN", "Admin Impl", LINKED, sim.admin_id), ("JDUPONT", "Jean Dupont", TO_CREATE, None)]
    assert sim.call_count() == 0


def test_deleted_ssm_users_match_no_one():
    users = [{"id": 3, "email": "a@x.fr", "deleted": True}, {"id": 5, "email": "A@x.fr"}, {"id": 4, "email": "a@X.fr"},
             {"id": 6, "email": "b@x.fr", "deleted": True}]
    assert {email: user["id"] for email, user in users_by_email(users).items()} == {"a@x.fr": 4}


def test_creating_sends_every_required_field_binds_the_link_and_resolves_the_invitation(sim, store, ssm):
    pending(store, "MMARTIN", "Marie", "Martin", "marie.martin@bijou.example", phone="04 72 00 00 00")
    ext_id = Binder(store, DOSSIER, "user").ext_id("MMARTIN")

    [result] = create_users(store, ssm, settings_for(sim), DOSSIER, ["MMARTIN"])

    assert (result.outcome, result.message.code) == (CREATED, "users.created")
    [post] = user_posts(sim)
    assert contract.request_violations(post.request) == []
    assert set(contract.RESOURCES["users"].required()) <= set(post.body)
    assert post.body == {"name": "Marie", "lastName": "Martin", "email": "marie.martin@bijou.example",
                         "nic": "marie.martin", "phone": "04 72 00 00 00", "idPrefix": sim.country_ids["FR"],
                         "dbLanguage": "EN", "uiLanguage": "EN", "branches": [sim.branch_id], "isActive": True,
                         "extId": ext_id}
    created = sim.record("users", result.ssm_id)
    assert (created["email"], created["extId"], created["deleted"]) == ("marie.martin@bijou.example", ext_id, False)
    link = store.get_link(DOSSIER, "user", "MMARTIN")
    assert link.ssm_id == result.ssm_id and link.base["_ext_id"] == ext_id and link.hash == "h-MMARTIN"
    assert link.base["_collaborator"]["email"] == "marie.martin@bijou.example"
    assert invite_state(store, "MMARTIN") is IncidentState.RESOLVED
    assert [(r.key, r.state, r.bound) for r in collaborator_rows(store, DOSSIER)] == [("MMARTIN", LINKED, True)]


def test_a_second_run_creates_nothing(sim, store, ssm):
    pending(store, "MMARTIN", "Marie", "Martin", "marie.martin@bijou.example")
    settings = settings_for(sim)
    [first] = create_users(store, ssm, settings, DOSSIER, ["MMARTIN"])

    [again] = create_users(store, ssm, settings, DOSSIER, ["MMARTIN"])

    assert (again.outcome, again.ssm_id) == (ALREADY_LINKED, first.ssm_id) and again.ok
    assert len(user_posts(sim)) == 1
    assert len([u for u in sim.records("users") if u["email"] == "marie.martin@bijou.example"]) == 1
    assert pending_keys(store, DOSSIER) == []


def test_without_any_phone_and_no_default_nothing_is_created(sim, store, ssm):
    pending(store, "NOPHONE", "Luc", "Muet", "luc.muet@bijou.example", phone=None, mobile=None)

    [result] = create_users(store, ssm, settings_for(sim), DOSSIER, ["NOPHONE"])

    assert (result.outcome, result.message.code, result.ok) == (REFUSED, "users.refused.no_phone", False)
    assert "user_phone_default" in result.message.text
    assert user_posts(sim) == []
    assert store.get_link(DOSSIER, "user", "NOPHONE").ssm_id is None
    assert invite_state(store, "NOPHONE") is IncidentState.OPEN


def test_the_phone_is_sages_then_the_mobile_then_the_configured_default(sim, store, ssm):
    pending(store, "MOBILE", "Ana", "Mobile", "ana.mobile@bijou.example", phone=None, mobile="06 11 22 33 44")
    pending(store, "DEFAUT", "Léo", "Défaut", "leo.defaut@bijou.example", phone=None, mobile=None)

    results = create_users(store, ssm, settings_for(sim, user_phone_default="01 00 00 00 00"), DOSSIER,
                           ["MOBILE", "DEFAUT"])

    assert [r.outcome for r in results] == [CREATED, CREATED]
    assert [c.body["phone"] for c in user_posts(sim)] == ["06 11 22 33 44", "01 00 00 00 00"]


def test_a_collaborator_without_email_cannot_be_created(sim, store, ssm):
    pending(store, "SANSMAIL", "Paul", "Sans", None)

    [result] = create_users(store, ssm, settings_for(sim), DOSSIER, ["SANSMAIL"])

    assert (result.outcome, result.message.code) == (REFUSED, "users.refused.no_email")
    assert user_posts(sim) == [] and store.get_link(DOSSIER, "user", "SANSMAIL").ssm_id is None
    assert pending_keys(store, DOSSIER) == []          # --create-all leaves it out


def test_an_existing_ssm_user_with_the_email_is_bound_not_created_again(sim, store, ssm):
    invited = sim.seed_user("Jean", "Dupont", "JEAN.DUPONT@bijou.example")
    pending(store, "JDUPONT", "Jean", "Dupont", "jean.dupont@bijou.example")

    [result] = create_users(store, ssm, settings_for(sim), DOSSIER, ["JDUPONT"])

    assert (result.outcome, result.ssm_id) == (LINKED_EXISTING, invited)
    assert user_posts(sim) == []
    assert store.get_link(DOSSIER, "user", "JDUPONT").ssm_id == invited
    assert invite_state(store, "JDUPONT") is IncidentState.RESOLVED


def test_two_collaborators_sharing_an_email_take_one_licence(sim, store, ssm):
    pending(store, "DUP1", "Zoé", "Double", "zoe.double@bijou.example")
    pending(store, "DUP2", "Zoé", "Double", "Zoe.Double@bijou.example")

    results = create_users(store, ssm, settings_for(sim), DOSSIER, pending_keys(store, DOSSIER))

    assert [r.outcome for r in results] == [CREATED, LINKED_EXISTING]
    assert len(user_posts(sim)) == 1
    assert {store.get_link(DOSSIER, "user", k).ssm_id for k in ("DUP1", "DUP2")} == {results[0].ssm_id}


def test_a_language_the_api_refuses_stops_creation_before_any_call(sim, store, ssm):
    pending(store, "MMARTIN", "Marie", "Martin", "marie.martin@bijou.example")

    [result] = create_users(store, ssm, settings_for(sim, user_language="FR"), DOSSIER, ["MMARTIN"])

    assert (result.outcome, result.message.code) == (REFUSED, "users.refused.language")
    assert user_posts(sim) == []


def test_an_unknown_key_is_refused(sim, store, ssm):
    [result] = create_users(store, ssm, settings_for(sim), DOSSIER, ["PERSONNE"])
    assert (result.outcome, result.message.code) == (REFUSED, "users.unknown")


def test_an_ssm_refusal_is_reported_and_leaves_the_collaborator_pending(sim, store, ssm):
    pending(store, "MMARTIN", "Marie", "Martin", "marie.martin@bijou.example")
    sim.reject_field("users", "email", lambda value: True, "This e-mail is not allowed")

    [result] = create_users(store, ssm, settings_for(sim), DOSSIER, ["MMARTIN"])

    assert (result.outcome, result.message.code) == (FAILED, "users.failed")
    assert store.get_link(DOSSIER, "user", "MMARTIN").ssm_id is None
    assert invite_state(store, "MMARTIN") is IncidentState.OPEN
    assert [u for u in sim.records("users") if u["email"] == "marie.martin@bijou.example"] == []


@pytest.mark.parametrize("first, last, expected", [(None, "Martin", ("Martin", "Martin")),
                                                   ("Marie", "Martin", ("Marie", "Martin"))])
def test_the_first_name_falls_back_to_the_last_name(sim, store, ssm, first, last, expected):
    pending(store, "K", first, last, "k@bijou.example")
    create_users(store, ssm, settings_for(sim), DOSSIER, ["K"])
    [post] = user_posts(sim)
    assert (post.body["name"], post.body["lastName"]) == expected
