"""A dossier's lifecycle: the moves its table allows and to whom, what each state lets through, the
cloud's copy in the Dossier record, and whether a database is the company a dossier synchronised."""
from __future__ import annotations

import datetime as dt

import pytest

from shared.group_directory import company_mismatch, known_dossiers, restored_copy
from shared.lifecycle import (TRAFFIC, Actor, Cause, Direction, Event, LifecycleError, State, cloud_changes,
                              cloud_state, lets_through, move)
from shared.state.records import Dossier, Link, Run, RunState
from shared.state.repository import StateStore
from shared.state.sqlite_store import SqliteTableStore

UTC = dt.timezone.utc
T0 = dt.datetime(2025, 3, 1, 9, 0, tzinfo=UTC)


def test_a_dossier_goes_from_selected_to_active_to_inactive_and_back_through_a_realignment():
    state = move(State.UNSELECTED, Event.SELECT, Actor.ADMINISTRATOR)
    assert state is State.SELECTED
    state = move(state, Event.SYNCED, Actor.DETECTION)
    assert state is State.ACTIVE
    state = move(state, Event.DEACTIVATE, Actor.ADMINISTRATOR)
    assert state is State.INACTIVE
    state = move(state, Event.REACTIVATE, Actor.ADMINISTRATOR)
    assert state is State.REALIGNING
    assert move(state, Event.SYNCED, Actor.DETECTION) is State.ACTIVE
    assert move(State.UNSELECTED, Event.ADOPT, Actor.ADMINISTRATOR) is State.REALIGNING
    assert move(State.ACTIVE, Event.RESTORE, Actor.DETECTION) is State.RESTORED


@pytest.mark.parametrize("state, event, actor", [
    (State.UNSELECTED, Event.SELECT, Actor.CLOUD),          # only the administrator chooses a database
    (State.ACTIVE, Event.RESTORE, Actor.ADMINISTRATOR),      # a restore is detected, not declared
    (State.INACTIVE, Event.RESTORE, Actor.DETECTION),        # nothing of an inactive dossier is read
    (State.INACTIVE, Event.SYNCED, Actor.DETECTION),         # nor run
    (State.ACTIVE, Event.REACTIVATE, Actor.ADMINISTRATOR),
    (State.UNSELECTED, Event.DEACTIVATE, Actor.ADMINISTRATOR),
])
def test_a_move_the_table_does_not_allow_is_refused(state, event, actor):
    with pytest.raises(LifecycleError):
        move(state, event, actor)


def test_an_inactive_dossier_lets_nothing_through_and_ssm_waits_while_a_dossier_realigns():
    assert not any(TRAFFIC[State.INACTIVE].values()) and not any(TRAFFIC[State.UNSELECTED].values())
    for state in (State.SELECTED, State.REALIGNING, State.RESTORED):
        assert lets_through(state, Direction.SAGE_TO_SSM) and not lets_through(state, Direction.SSM_TO_SAGE)
    assert all(TRAFFIC[State.ACTIVE].values())


def dossier(**fields) -> Dossier:
    return Dossier(id="BIJOU", created_at=T0, **fields)


def test_the_cloud_reads_the_state_from_the_dossier_record():
    assert cloud_state(dossier()) is State.SELECTED                         # first load not done
    assert cloud_state(dossier(first_load_done=True, needs_realignment=False)) is State.ACTIVE
    assert cloud_state(dossier(first_load_done=True, active=False)) is State.INACTIVE
    assert cloud_state(dossier(first_load_done=True, needs_realignment=True)) is State.REALIGNING
    assert cloud_state(dossier(first_load_done=True, needs_realignment=True,
                               realignment_cause="restored")) is State.RESTORED


def test_the_cloud_moves_the_record_as_the_agent_says_and_a_repeated_notice_changes_nothing():
    active = dossier(first_load_done=True, needs_realignment=False)
    off = active.model_copy(update=cloud_changes(active, Event.DEACTIVATE, at=T0))
    assert cloud_state(off) is State.INACTIVE and off.deactivated_at == T0
    assert cloud_changes(off, Event.DEACTIVATE, at=T0) == {}
    back = off.model_copy(update=cloud_changes(off, Event.REACTIVATE, at=T0, cause=Cause.REINSTALLED))
    assert cloud_state(back) is State.REALIGNING and back.realignment_cause == "reinstalled" and back.active
    restored = active.model_copy(update=cloud_changes(active, Event.RESTORE, at=T0))
    assert cloud_state(restored) is State.RESTORED
    done = restored.model_copy(update=cloud_changes(restored, Event.SYNCED, at=T0))
    assert cloud_state(done) is State.ACTIVE and done.last_realigned_at == T0 and done.realignment_cause is None
    assert cloud_changes(dossier(), Event.RESTORE, at=T0) == {}          # a first load reads everything anyway
    with pytest.raises(LifecycleError):
        cloud_changes(off, Event.SYNCED, at=T0)


BIJOU = {"company_name": "BIJOU SA", "siret": "093 048 254 00010", "created_at": "2024-01-01T00:00:00"}


def test_the_same_siret_is_the_same_company_even_renamed_and_another_is_refused():
    assert company_mismatch(BIJOU, {**BIJOU, "company_name": "Bijouterie Nouvelle SA"}) is None
    assert company_mismatch(BIJOU, {**BIJOU, "siret": "09304825400010"}) is None
    other = company_mismatch(BIJOU, {"company_name": "ATELIER SA", "siret": "16606143200018"})
    assert other == {"known": "BIJOU SA (SIRET 093 048 254 00010)", "found": "ATELIER SA (SIRET 16606143200018)"}


def test_without_siret_the_names_decide_and_with_neither_it_cannot_tell():
    assert company_mismatch({"company_name": "Bijou  sa"}, {"company_name": "BIJOU SA"}) is None
    assert company_mismatch({"company_name": "Bijou SA"}, {"company_name": "Atelier SA"}) is not None
    assert company_mismatch({}, {"company_name": "Atelier SA"}) is None


def test_a_new_creation_date_of_the_same_company_is_a_restored_copy():
    assert restored_copy(BIJOU, {**BIJOU, "created_at": "2025-06-01T10:00:00"})
    assert not restored_copy(BIJOU, BIJOU) and not restored_copy({}, BIJOU)


def test_the_group_directory_lists_every_dossier_with_its_state_last_run_and_linked_records(tmp_path):
    store = StateStore(SqliteTableStore(str(tmp_path / "state.db")))
    store.ensure_tables()
    store.create_dossier(Dossier(id="BIJOU", name="Bijou", first_load_done=True, needs_realignment=False,
                                 ssm_branch="Siège", identity=BIJOU, created_at=T0))
    store.create_dossier(Dossier(id="ATELIER", active=False, first_load_done=True, created_at=T0))
    store.save_run(Run(dossier="BIJOU", run_id="r1", side="cloud", direction="sage_to_ssm", started_at=T0,
                      state=RunState.SUCCEEDED))
    store.save_run(Run(dossier="BIJOU", run_id="r2", side="cloud", direction="sage_to_ssm",
                      started_at=T0 + dt.timedelta(hours=1), state=RunState.PARTIAL))
    for key, ssm_id, deleted in (("C1", 1, False), ("C2", 2, False), ("C3", 3, True)):
        store.save_link(Link(dossier="BIJOU", entity="account", sage_key=key, ssm_id=ssm_id, deleted=deleted))
    store.save_link(Link(dossier="BIJOU", entity="contact", sage_key="7", ssm_id=9))

    known = {k.id: k for k in known_dossiers(store)}

    assert list(known) == ["ATELIER", "BIJOU"]
    bijou = known["BIJOU"]
    assert (bijou.state, bijou.active, bijou.ssm_branch, bijou.identity["siret"]) == (
        "active", True, "Siège", BIJOU["siret"])
    assert bijou.last_run_state == "partial" and bijou.last_run_at == T0 + dt.timedelta(hours=1)
    assert bijou.records == {"account": 2, "contact": 1}
    assert (known["ATELIER"].state, known["ATELIER"].records, known["ATELIER"].last_run_at) == ("inactive", {}, None)
    store.close()
