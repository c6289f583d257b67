"""Adoptions and previews in the typed state store, over both backends."""
from __future__ import annotations

import datetime as dt

import pytest

from shared.errors import ConcurrencyError
from shared.state.records import Adoption, AdoptionState
from shared.state.repository import StateStore
from tests.contract.conftest import azurite, backend, table_store  # noqa: F401  (fixtures: both backends)

T0 = dt.datetime(2025, 3, 1, 9, 0, tzinfo=dt.timezone.utc)


@pytest.fixture
def state(table_store) -> StateStore:
    store = StateStore(table_store, clock=lambda: T0)
    store.ensure_tables()
    return store


def test_a_held_adoption_is_saved_once_changed_under_its_etag_listed_per_dossier_and_deleted(state):
    held = state.save_adoption(Adoption(dossier="BIJOU", entity="account", sage_key="DU/PRÉ#1", candidates=[12, 13],
                                        rule="name_postcode", held_at=T0))
    with pytest.raises(ConcurrencyError):
        state.save_adoption(Adoption(dossier="BIJOU", entity="account", sage_key="DU/PRÉ#1"))
    state.save_adoption(Adoption(dossier="AUTRE", entity="account", sage_key="DU/PRÉ#1"))
    parked = state.save_adoption(held.model_copy(update={"parked": {"key": "DU/PRÉ#1", "op": "upsert"}}))
    with pytest.raises(ConcurrencyError):
        state.save_adoption(held.model_copy(update={"state": AdoptionState.CREATE}))
    read = state.get_adoption("BIJOU", "account", "DU/PRÉ#1")
    assert (read.state, read.candidates, read.parked["op"], read.held_at) == (AdoptionState.HELD, [12, 13], "upsert", T0)
    assert [a.sage_key for a in state.list_adoptions("BIJOU")] == ["DU/PRÉ#1"]
    state.delete_adoption(parked)
    assert state.get_adoption("BIJOU", "account", "DU/PRÉ#1") is None and state.list_adoptions("BIJOU") == []
    assert len(state.list_adoptions("AUTRE")) == 1


def test_the_last_preview_of_each_dossier_is_kept_apart_from_the_tenant_check(state):
    assert state.last_preview("BIJOU") is None
    state.save_tenant_check({"group": "g"})
    state.save_preview("BIJOU", {"dossier": "BIJOU", "entities": [{"entity": "account", "create": 3}]})
    state.save_preview("BIJOU", {"dossier": "BIJOU", "entities": [{"entity": "account", "create": 1}]})
    assert state.last_preview("BIJOU")["entities"] == [{"entity": "account", "create": 1}]
    assert state.last_preview("AUTRE") is None and state.last_tenant_check() == {"group": "g"}
