"""The typed state store over both backends: dossiers, links, cursors, runs, journal, incidents."""
from __future__ import annotations

import datetime as dt

import pytest

from shared.config import StateSettings
from shared.errors import (
    AlreadyExistsError,
    ConcurrencyError,
    ConfigurationError,
    EntityTooLargeError,
    NotFoundError,
)
from shared.state.factory import open_state_store
from shared.state.records import Cursor, Dossier, IncidentState, JournalEntry, Link, Run, RunState
from shared.state.repository import LINKS, StateStore
from tests.contract.conftest import azurite, backend, table_store  # noqa: F401  (fixtures: both backends)

UTC = dt.timezone.utc
T0 = dt.datetime(2025, 3, 1, 9, 0, tzinfo=UTC)


class Clock:
    def __init__(self, now: dt.datetime = T0):
        self.now = now

    def __call__(self) -> dt.datetime:
        return self.now

    def advance(self, **delta) -> dt.datetime:
        self.now += dt.timedelta(**delta)
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def state(table_store, clock) -> StateStore:
    store = StateStore(table_store, clock=clock)
    store.ensure_tables()
    return store


# --- dossiers -----------------------------------------------------------------------------
def test_a_dossier_is_created_once_read_back_and_listed(state):
    created = state.create_dossier(Dossier(id="BIJOU", name="Bijou SA", created_at=T0))
    assert created.etag
    with pytest.raises(AlreadyExistsError):
        state.create_dossier(Dossier(id="BIJOU"))
    state.create_dossier(Dossier(id="ALPHA", product="sage50", active=False))
    read = state.get_dossier("BIJOU")
    assert (read.name, read.created_at, read.needs_realignment, read.activated_at) == ("Bijou SA", T0, True, None)
    assert [d.id for d in state.list_dossiers()] == ["ALPHA", "BIJOU"]
    assert state.get_dossier("ALPHA").product == "sage50" and not state.get_dossier("ALPHA").active


def test_a_missing_dossier_raises_on_get_and_is_none_on_try_get(state):
    with pytest.raises(NotFoundError):
        state.get_dossier("NOPE")
    assert state.try_get_dossier("NOPE") is None


def test_upsert_dossier_is_guarded_by_the_etag_it_was_read_with(state):
    state.upsert_dossier(Dossier(id="BIJOU"))
    first, second = state.get_dossier("BIJOU"), state.get_dossier("BIJOU")
    saved = state.upsert_dossier(first.model_copy(update={"active": False, "deactivated_at": T0}))
    with pytest.raises(ConcurrencyError):
        state.upsert_dossier(second.model_copy(update={"first_load_done": True}))
    assert saved.etag != first.etag
    read = state.get_dossier("BIJOU")
    assert (read.active, read.deactivated_at, read.first_load_done) == (False, T0, False)
    state.upsert_dossier(Dossier(id="BIJOU", name="unconditional"))
    assert state.get_dossier("BIJOU").name == "unconditional"


# --- links --------------------------------------------------------------------------------
def link(**fields) -> Link:
    values = {"dossier": "BIJOU", "entity": "account", "sage_key": "C001", "ssm_id": 101,
              "base": {"name": "Dupont"}, "hash": "h1"}
    return Link(**{**values, **fields})


def test_a_saved_link_is_found_by_sage_key_and_by_ssm_id(state, clock):
    saved = state.save_link(link())
    assert saved.etag and saved.updated_at == T0
    by_key = state.get_link("BIJOU", "account", "C001")
    by_id = state.get_link_by_ssm_id("BIJOU", "account", 101)
    assert by_key == by_id
    assert (by_key.ssm_id, by_key.base, by_key.hash, by_key.etag) == (101, {"name": "Dupont"}, "h1", saved.etag)
    assert state.get_link_by_ssm_id("BIJOU", "contact", 101) is None
    assert state.get_link_by_ssm_id("OTHER", "account", 101) is None
    assert state.get_link("OTHER", "account", "C001") is None


def test_saving_a_new_link_twice_is_a_concurrency_error_so_the_caller_re_reads(state):
    state.save_link(link())
    with pytest.raises(ConcurrencyError):
        state.save_link(link(ssm_id=999))
    assert state.get_link("BIJOU", "account", "C001").ssm_id == 101
    assert state.get_link_by_ssm_id("BIJOU", "account", 999) is None


def test_two_writers_of_one_link_the_second_gets_a_concurrency_error(state):
    state.save_link(link())
    one, two = state.get_link("BIJOU", "account", "C001"), state.get_link("BIJOU", "account", "C001")
    first = state.save_link(one.model_copy(update={"base": {"name": "Durand"}, "hash": "h2"}))
    with pytest.raises(ConcurrencyError):
        state.save_link(two.model_copy(update={"base": {"name": "Martin"}, "hash": "h3"}))
    again = state.save_link(first.model_copy(update={"hash": "h4"}))
    assert again.etag != first.etag
    assert state.get_link("BIJOU", "account", "C001").base == {"name": "Durand"}


def test_a_link_whose_ssm_id_changes_moves_its_reverse_index(state):
    saved = state.save_link(link(ssm_id=None))
    assert state.get_link_by_ssm_id("BIJOU", "account", 101) is None
    saved = state.save_link(saved.model_copy(update={"ssm_id": 101}))
    saved = state.save_link(saved.model_copy(update={"ssm_id": 202}))
    assert state.get_link_by_ssm_id("BIJOU", "account", 101) is None
    assert state.get_link_by_ssm_id("BIJOU", "account", 202).sage_key == "C001"
    index_rows = [e.row_key for e in state.tables.query(LINKS, "BIJOU", prefix="ssm|")]
    assert index_rows == ["ssm|account|202"]


def test_deleting_a_link_removes_it_and_its_reverse_index(state):
    saved = state.save_link(link())
    state.save_link(link(sage_key="C002", ssm_id=102))
    state.delete_link(saved)
    assert state.get_link("BIJOU", "account", "C001") is None
    assert state.get_link_by_ssm_id("BIJOU", "account", 101) is None
    assert state.get_link_by_ssm_id("BIJOU", "account", 102).sage_key == "C002"
    state.delete_link(link())
    with pytest.raises(ConcurrencyError):
        state.delete_link(saved)


def test_a_stale_link_cannot_be_deleted(state):
    saved = state.save_link(link())
    state.save_link(saved.model_copy(update={"hash": "newer"}))
    with pytest.raises(ConcurrencyError):
        state.delete_link(saved)
    assert state.get_link("BIJOU", "account", "C001").hash == "newer"


def test_list_links_gives_one_entity_or_all_and_keeps_awkward_keys(state):
    keys = ["C/1", "C#2", "C?3", "É\\4", "😀5", "C|6", "C%7"]
    for i, key in enumerate(keys):
        state.save_link(link(sage_key=key, ssm_id=i))
    state.save_link(link(entity="contact", sage_key="C/1", ssm_id=50))
    state.save_link(link(entity="accounts", sage_key="X", ssm_id=51))
    state.save_link(link(dossier="OTHER", sage_key="Z", ssm_id=52))
    assert sorted(lk.sage_key for lk in state.list_links("BIJOU", "account")) == sorted(keys)
    assert len(list(state.list_links("BIJOU"))) == len(keys) + 2
    assert [lk.sage_key for lk in state.list_links("BIJOU", "contact")] == ["C/1"]
    assert state.get_link_by_ssm_id("BIJOU", "account", 3).sage_key == "É\\4"


def test_a_big_base_snapshot_is_split_and_rejoined(state):
    base = {f"field{i}": ("Société 😀 " * 40) + str(i) for i in range(900)}
    saved = state.save_link(link(base=base))
    stored = state.tables.get(LINKS, "BIJOU", "link|account|C001")
    assert "base" not in stored.data and "base_0" in stored.data and "base_3" in stored.data
    assert state.get_link("BIJOU", "account", "C001").base == base
    smaller = state.save_link(saved.model_copy(update={"base": {"name": "short"}}))
    stored = state.tables.get(LINKS, "BIJOU", "link|account|C001")
    assert stored.data["base"] == '{"name":"short"}' and "base_0" not in stored.data
    assert state.get_link("BIJOU", "account", "C001").base == {"name": "short"} and smaller.etag == stored.etag


def test_a_base_over_one_mib_is_refused_and_nothing_is_written(state):
    with pytest.raises(EntityTooLargeError):
        state.save_link(link(base={"blob": "x" * 1_100_000}))
    assert state.get_link("BIJOU", "account", "C001") is None
    assert state.get_link_by_ssm_id("BIJOU", "account", 101) is None


# --- cursors ------------------------------------------------------------------------------
def test_a_cursor_is_created_then_moved_with_its_etag(state, clock):
    assert state.get_cursor("BIJOU", "F_COMPTET/cbModification") is None
    saved = state.save_cursor(Cursor(dossier="BIJOU", name="F_COMPTET/cbModification", value="2025-03-01"))
    with pytest.raises(ConcurrencyError):
        state.save_cursor(Cursor(dossier="BIJOU", name="F_COMPTET/cbModification", value="1999-01-01"))
    clock.advance(minutes=5)
    moved = state.save_cursor(saved.model_copy(update={"value": "2025-03-02"}))
    with pytest.raises(ConcurrencyError):
        state.save_cursor(saved.model_copy(update={"value": "2025-03-03"}))
    read = state.get_cursor("BIJOU", "F_COMPTET/cbModification")
    assert (read.value, read.updated_at, read.etag) == ("2025-03-02", T0 + dt.timedelta(minutes=5), moved.etag)
    assert state.get_cursor("OTHER", "F_COMPTET/cbModification") is None


# --- runs ---------------------------------------------------------------------------------
def run(run_id: str, started_at: dt.datetime, **fields) -> Run:
    values = {"dossier": "BIJOU", "side": "agent", "direction": "sage_to_ssm", **fields}
    return Run(run_id=run_id, started_at=started_at, **values)


def test_runs_are_listed_newest_first_and_read_by_id(state):
    for i, rid in enumerate(["r-old", "r-mid", "r-new"]):
        state.save_run(run(rid, T0 + dt.timedelta(hours=i)))
    state.save_run(run("r-other", T0, dossier="OTHER"))
    assert [r.run_id for r in state.list_runs("BIJOU")] == ["r-new", "r-mid", "r-old"]
    assert [r.run_id for r in state.list_runs("BIJOU", limit=2)] == ["r-new", "r-mid"]
    assert state.get_run("BIJOU", "r-mid").started_at == T0 + dt.timedelta(hours=1)
    assert state.get_run("BIJOU", "r-other") is None


def test_a_run_is_finished_with_its_etag_and_keeps_one_row_in_the_list(state):
    state.save_run(run("r1", T0))
    current = state.get_run("BIJOU", "r1")
    counts = {**current.counts, "read": 120, "created": 3, "failed": 1}
    finished = state.save_run(current.model_copy(update={
        "state": RunState.PARTIAL, "ended_at": T0 + dt.timedelta(minutes=2), "counts": counts}))
    with pytest.raises(ConcurrencyError):
        state.save_run(current.model_copy(update={"state": RunState.FAILED}))
    read = state.get_run("BIJOU", "r1")
    assert (read.state, read.counts, read.etag) == (RunState.PARTIAL, counts, finished.etag)
    listed = state.list_runs("BIJOU")
    assert [(r.run_id, r.state, r.counts["read"]) for r in listed] == [("r1", RunState.PARTIAL, 120)]
    state.save_run(read.model_copy(update={"started_at": T0 + dt.timedelta(days=1)}))
    assert [r.started_at for r in state.list_runs("BIJOU")] == [T0 + dt.timedelta(days=1)]


# --- journal ------------------------------------------------------------------------------
def test_the_journal_lists_newest_first_and_filters(state):
    state.append_journal(JournalEntry(dossier="BIJOU", at=T0, entity="account", key="C1", event="conflict",
                                      message="Nom modifié des deux côtés", detail={"field": "name"}))
    state.append_journal(JournalEntry(dossier="BIJOU", at=T0 + dt.timedelta(seconds=1), entity="contact",
                                      event="ssm-deletion-ignored", message="m2"))
    state.append_journal(JournalEntry(dossier="BIJOU", at=T0 + dt.timedelta(seconds=2), entity="account",
                                      event="invite-needed", message="m3"))
    state.append_journal(JournalEntry(dossier="OTHER", at=T0, event="conflict", message="elsewhere"))
    assert [e.message for e in state.list_journal("BIJOU")] == ["m3", "m2", "Nom modifié des deux côtés"]
    assert [e.message for e in state.list_journal("BIJOU", limit=2)] == ["m3", "m2"]
    conflicts = state.list_journal("BIJOU", event="conflict")
    assert [(e.key, e.detail, e.at) for e in conflicts] == [("C1", {"field": "name"}, T0)]
    assert [e.message for e in state.list_journal("BIJOU", entity="account", limit=1)] == ["m3"]


def test_journal_entries_at_the_same_instant_are_all_kept_newest_appended_first(state):
    for i in range(5):
        state.append_journal(JournalEntry(dossier="BIJOU", at=T0, event="e", message=f"m{i}"))
    assert [e.message for e in state.list_journal("BIJOU")] == ["m4", "m3", "m2", "m1", "m0"]


# --- incidents ----------------------------------------------------------------------------
def test_an_incident_counts_attempts_resolves_and_reopens(state, clock):
    first = state.record_incident("BIJOU", "contact", "C/1#2", "upsert", "Le client C001 n'est pas encore lié",
                                  detail="DependencyMissingError")
    assert (first.attempts, first.state, first.first_seen, first.last_seen) == (1, IncidentState.OPEN, T0, T0)
    retry_at = clock.advance(minutes=10) + dt.timedelta(minutes=5)
    second = state.record_incident("BIJOU", "contact", "C/1#2", "upsert", "Toujours pas lié",
                                   next_attempt_at=retry_at)
    assert (second.attempts, second.first_seen, second.last_seen) == (2, T0, T0 + dt.timedelta(minutes=10))
    read = state.get_incident("BIJOU", "contact", "C/1#2", "upsert")
    assert (read.message, read.detail, read.next_attempt_at, read.attempts) == ("Toujours pas lié", None, retry_at, 2)

    clock.advance(minutes=20)
    assert state.resolve_incident("BIJOU", "contact", "C/1#2", "upsert") is True
    assert state.resolve_incident("BIJOU", "contact", "C/1#2", "upsert") is False
    resolved = state.get_incident("BIJOU", "contact", "C/1#2", "upsert")
    assert (resolved.state, resolved.resolved_at) == (IncidentState.RESOLVED, T0 + dt.timedelta(minutes=30))

    clock.advance(hours=1)
    again = state.record_incident("BIJOU", "contact", "C/1#2", "upsert", "Échec", dead_lettered=True)
    assert (again.state, again.resolved_at, again.attempts, again.dead_lettered) == (IncidentState.OPEN, None, 1, True)
    assert again.first_seen == T0 + dt.timedelta(minutes=90)


def test_incidents_are_listed_by_entity_and_state_and_resolved_per_record(state):
    state.record_incident("BIJOU", "contact", "K1", "upsert", "m")
    state.record_incident("BIJOU", "contact", "K1", "delete", "m")
    state.record_incident("BIJOU", "contact", "K10", "upsert", "m")
    state.record_incident("BIJOU", "account", "K1", "upsert", "m")
    state.record_incident("OTHER", "contact", "K1", "upsert", "m")
    assert state.resolve_incident("BIJOU", "nothing", "K", "upsert") is False
    assert state.resolve_incidents_for("BIJOU", "contact", "K1") == 2
    assert state.resolve_incidents_for("BIJOU", "contact", "K1") == 0
    assert len(state.list_incidents("BIJOU")) == 4
    assert [(i.key, i.operation) for i in state.list_incidents("BIJOU", "contact", IncidentState.OPEN)] == [("K10", "upsert")]
    assert {(i.key, i.operation) for i in state.list_incidents("BIJOU", "contact", IncidentState.RESOLVED)} == {
        ("K1", "upsert"), ("K1", "delete")}
    assert [i.entity for i in state.list_incidents("BIJOU", state=IncidentState.OPEN)] == ["account", "contact"]
    assert state.get_incident("OTHER", "contact", "K1", "upsert").state is IncidentState.OPEN


def test_an_incident_with_a_huge_detail_is_still_recorded(state):
    incident = state.record_incident("BIJOU", "product", "AR1", "upsert", "m" * 50_000, detail="trace " * 40_000)
    read = state.get_incident("BIJOU", "product", "AR1", "upsert")
    assert read.detail == incident.detail and read.detail.startswith("trace ") and read.detail.endswith("…")
    assert len(read.message) <= 16_000 and len(read.detail) <= 16_000


def test_an_incident_recorded_by_two_writers_counts_both_attempts(backend, clock):
    one, two = StateStore(backend.open(), clock=clock), StateStore(backend.open(), clock=clock)
    one.ensure_tables()
    one.record_incident("BIJOU", "contact", "K1", "upsert", "m")
    stale = two.get_incident("BIJOU", "contact", "K1", "upsert")
    one.record_incident("BIJOU", "contact", "K1", "upsert", "m")
    assert two.record_incident("BIJOU", "contact", "K1", "upsert", "m").attempts == 3
    assert stale.attempts == 1


# --- factory ------------------------------------------------------------------------------
def test_the_factory_opens_sqlite(tmp_path):
    store = open_state_store(StateSettings(kind="sqlite", path=str(tmp_path / "var" / "state.db")))
    store.ensure_tables()
    store.create_dossier(Dossier(id="BIJOU"))
    store.close()
    reopened = open_state_store(StateSettings(kind="sqlite", path=str(tmp_path / "var" / "state.db")))
    assert reopened.get_dossier("BIJOU").id == "BIJOU"
    reopened.close()


@pytest.mark.azurite
def test_the_factory_opens_azure_tables_from_a_connection_string(azurite):  # noqa: F811
    settings = StateSettings(kind="azure-tables", connection_string=azurite.connection_string, table_prefix="factory")
    store = open_state_store(settings)
    store.ensure_tables()
    store.upsert_dossier(Dossier(id="BIJOU"))
    assert [d.id for d in store.list_dossiers()] == ["BIJOU"]
    store.close()


def test_the_factory_refuses_azure_tables_without_a_connection(tmp_path):
    with pytest.raises(ConfigurationError):
        open_state_store(StateSettings(kind="azure-tables"))
