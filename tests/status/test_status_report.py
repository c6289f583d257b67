"""The status report read from a real SQLite state store (and a real local bus)."""
from __future__ import annotations

import datetime as dt

import pytest

from shared.bus.local_bus import LocalBus
from shared.bus.protocol import OutgoingMessage
from shared.errors import NotFoundError
from shared.state.records import Dossier, IncidentState, Run, RunState
from shared.status.report import (
    GROUP_INCIDENTS_DOSSIER,
    Health,
    IncidentStateFilter,
    StatusQuery,
    StatusQueryError,
    StatusReader,
)
from tests.status.sample import MARKUP_NAME, NOW, ago, open_store


def incident_keys(dossier_status) -> list[str]:
    return [i.key for i in dossier_status.incidents]


def by_id(report) -> dict:
    return {d.id: d for d in report.dossiers}


def test_lists_every_dossier_active_first_with_its_state(reader):
    report = reader.report()
    assert report.group == "Bijoux & Co"
    assert report.generated_at == NOW
    assert [d.id for d in report.dossiers] == ["BIJOU", "NEUF", "ARCHIVE"]
    dossiers = by_id(report)
    assert dossiers["BIJOU"].name == MARKUP_NAME
    assert dossiers["BIJOU"].active and dossiers["NEUF"].active
    assert not dossiers["ARCHIVE"].active
    assert dossiers["ARCHIVE"].deactivated_at == ago(days=30)
    assert dossiers["ARCHIVE"].needs_realignment is True
    assert dossiers["BIJOU"].last_realigned_at == ago(hours=2)
    assert [c.id for c in report.dossier_choices] == ["BIJOU", "NEUF", "ARCHIVE"]


def test_health_says_inactive_never_synced_or_attention(reader):
    dossiers = by_id(reader.report())
    assert dossiers["ARCHIVE"].health is Health.INACTIVE
    assert dossiers["NEUF"].health is Health.NEVER_SYNCED
    assert dossiers["BIJOU"].health is Health.ATTENTION


def test_runs_newest_first_with_duration_state_realignment_and_counts(reader):
    runs = by_id(reader.report())["BIJOU"].runs
    assert [r.run_id for r in runs] == ["run-4", "run-3", "run-2", "run-1"]
    running, partial, _, first = runs
    assert running.state is RunState.RUNNING and running.ended_at is None and running.duration_seconds is None
    assert partial.state is RunState.PARTIAL and partial.duration_seconds == 60.0
    assert partial.counts == dict(read=12, created=0, updated=7, deleted=0, skipped_unchanged=2,
                                  conflicts=1, failed=2)
    assert list(partial.counts) == ["read", "created", "updated", "deleted", "skipped_unchanged",
                                    "conflicts", "failed"]
    assert first.realignment is True and first.duration_seconds == 330.0
    assert first.started_at == ago(hours=2)


def test_run_limit_keeps_the_newest(reader):
    runs = by_id(reader.report(StatusQuery(runs=2)))["BIJOU"].runs
    assert [r.run_id for r in runs] == ["run-4", "run-3"]


def test_lag_counts_from_the_end_of_the_last_completed_run(reader):
    lag = by_id(reader.report())["BIJOU"].lag
    # run-4 is still running: the last completed is run-3 (partial), ended 14 minutes ago
    assert lag.last_completed_at == ago(minutes=14)
    assert lag.seconds == 14 * 60
    assert lag.by_direction == {"sage_to_ssm": 14 * 60, "ssm_to_sage": 49 * 60}
    assert by_id(reader.report())["NEUF"].lag.seconds is None


def test_lag_follows_the_clock(store):
    later = StatusReader(store, clock=lambda: NOW + dt.timedelta(hours=1))
    assert by_id(later.report())["BIJOU"].lag.seconds == 74 * 60
    assert by_id(later.report())["ARCHIVE"].lag.seconds == (31 * 24 * 60 - 1 + 60) * 60


def test_a_failed_last_run_is_an_error_and_does_not_count_for_lag(tmp_path):
    store = open_store(tmp_path / "state.db")
    store.create_dossier(Dossier(id="D1"))
    store.save_run(Run(dossier="D1", run_id="a", side="agent", direction="sage_to_ssm", started_at=ago(hours=5),
                       ended_at=ago(hours=4), state=RunState.SUCCEEDED))
    store.save_run(Run(dossier="D1", run_id="b", side="agent", direction="sage_to_ssm", started_at=ago(hours=1),
                       ended_at=ago(minutes=59), state=RunState.FAILED, message="SQL Server unreachable"))
    status = StatusReader(store, clock=lambda: NOW).dossier("D1")
    assert status.health is Health.ERROR
    assert status.lag.last_completed_at == ago(hours=4)
    assert status.runs[0].message == "SQL Server unreachable"
    store.close()


def test_open_incidents_by_default_newest_first(reader):
    bijou = by_id(reader.report())["BIJOU"]
    assert incident_keys(bijou) == ["CLT001|2", "ART/01", "CL-42", "JDUPONT"]
    assert all(i.state is IncidentState.OPEN for i in bijou.incidents)
    assert bijou.open_incidents == 4 and bijou.incidents_total == 4
    recurring = bijou.incidents[0]
    assert (recurring.first_seen, recurring.last_seen, recurring.attempts) == (ago(hours=3), ago(minutes=14), 2)
    dead = bijou.incidents[1]
    assert dead.entity == "product" and dead.dead_lettered is True and dead.operation == "create"
    assert dead.replay_at == ago(minutes=45)
    assert all(i.replay_at is None for i in bijou.incidents if i is not dead)


def test_incidents_filter_by_entity_and_state(reader):
    contacts = by_id(reader.report(StatusQuery(entity="contact")))["BIJOU"]
    assert incident_keys(contacts) == ["CLT001|2"]
    assert contacts.open_incidents == 4
    resolved = by_id(reader.report(StatusQuery(state=IncidentStateFilter.RESOLVED)))["BIJOU"]
    assert incident_keys(resolved) == ["CLT002|1"]
    assert resolved.incidents[0].resolved_at == ago(hours=1)
    everything = by_id(reader.report(StatusQuery(state=IncidentStateFilter.ALL, entity="contact")))["BIJOU"]
    assert incident_keys(everything) == ["CLT001|2", "CLT002|1"]
    assert incident_keys(by_id(reader.report(StatusQuery(entity="invoice")))["BIJOU"]) == []


def test_dossier_filter_shows_one_dossier_and_leaves_group_incidents_out(reader):
    report = reader.report(StatusQuery(dossier="ARCHIVE"))
    assert [d.id for d in report.dossiers] == ["ARCHIVE"]
    assert incident_keys(report.dossiers[0]) == ["ARC1"]
    assert report.group_incidents == [] and report.group_incidents_total == 0
    assert [c.id for c in report.dossier_choices] == ["BIJOU", "NEUF", "ARCHIVE"]
    assert reader.report(StatusQuery(dossier="NOPE")).dossiers == []


def test_group_incidents_come_apart(reader):
    report = reader.report()
    assert [(i.dossier, i.key, i.operation) for i in report.group_incidents] == [
        (GROUP_INCIDENTS_DOSSIER, "INCONNU:CL9", "decode")]
    only_group = reader.report(StatusQuery(dossier=GROUP_INCIDENTS_DOSSIER))
    assert only_group.dossiers == [] and only_group.group_incidents_total == 1
    assert reader.report(StatusQuery(entity="contact")).group_incidents == []


def test_users_awaiting_an_invite_whatever_the_filter(reader):
    for query in (StatusQuery(), StatusQuery(entity="contact"), StatusQuery(state=IncidentStateFilter.RESOLVED)):
        invites = by_id(reader.report(query))["BIJOU"].invites
        assert [(i.entity, i.key) for i in invites] == [("user", "JDUPONT")]
    assert by_id(reader.report())["ARCHIVE"].invites == []


def test_resolved_invite_leaves_the_list(reader, store):
    store.resolve_incident("BIJOU", "user", "JDUPONT", "invite")
    assert by_id(reader.report())["BIJOU"].invites == []


def test_journal_newest_first_and_filtered_by_entity(reader):
    journal = by_id(reader.report())["BIJOU"].journal
    assert [(e.event, e.key) for e in journal] == [("conflict", "CL-7"), ("ssm-deletion-ignored", "CLT009|1")]
    assert journal[0].at == ago(minutes=14) and journal[0].run_id == "run-3"
    contacts = by_id(reader.report(StatusQuery(entity="contact")))["BIJOU"].journal
    assert [e.key for e in contacts] == ["CLT009|1"]
    assert by_id(reader.report(StatusQuery(journal=0)))["BIJOU"].journal == []


def test_incident_limit_keeps_the_total(reader):
    bijou = by_id(reader.report(StatusQuery(incidents=2)))["BIJOU"]
    assert incident_keys(bijou) == ["CLT001|2", "ART/01"]
    assert bijou.incidents_total == 4


def test_one_dossier_detail_and_unknown_dossier(reader):
    assert reader.dossier("ARCHIVE").id == "ARCHIVE"
    with pytest.raises(NotFoundError) as caught:
        reader.dossier("NOPE")
    assert "NOPE" in caught.value.user_message


def test_pending_work_counted_per_dossier_session(store, tmp_path):
    bus = LocalBus(str(tmp_path / "bus.db"))
    bus.send("sage-changes", [OutgoingMessage(body=b"{}", message_id=f"m{i}", session_id="BIJOU") for i in range(3)])
    bus.send("sage-changes", [OutgoingMessage(body=b"{}", message_id="n1", session_id="NEUF")])
    bus.send("sage-commands", [OutgoingMessage(body=b"{}", message_id="c1", session_id="BIJOU")])
    receiver = bus.accept_session("sage-changes", "BIJOU")
    receiver.dead_letter(receiver.receive(1)[0], reason="test", description="poison")
    receiver.close()
    dossiers = by_id(StatusReader(store, bus=bus, clock=lambda: NOW).report())
    bijou = dossiers["BIJOU"].pending
    assert (bijou.available, bijou.changes, bijou.commands, bijou.dead_lettered) == (True, 2, 1, 1)
    neuf = dossiers["NEUF"].pending
    assert (neuf.changes, neuf.commands, neuf.dead_lettered) == (1, 0, 0)
    assert dossiers["ARCHIVE"].pending.changes == 0
    bus.close()


def test_lag_includes_the_age_of_the_oldest_pending_message(store, tmp_path):
    sent_at = {"t": ago(minutes=5)}
    bus = LocalBus(str(tmp_path / "bus.db"), clock=lambda: sent_at["t"].timestamp())
    bus.send("sage-commands", [OutgoingMessage(body=b"{}", message_id="c1", session_id="BIJOU")])
    sent_at["t"] = ago(minutes=2)
    bus.send("sage-changes", [OutgoingMessage(body=b"{}", message_id="m1", session_id="BIJOU")])
    bus.send("sage-changes", [OutgoingMessage(body=b"{}", message_id="m2", session_id="NEUF")])
    dossiers = by_id(StatusReader(store, bus=bus, clock=lambda: NOW).report())
    assert dossiers["BIJOU"].lag.oldest_pending_at == ago(minutes=5)
    assert dossiers["BIJOU"].lag.oldest_pending_seconds == 300
    assert dossiers["NEUF"].lag.oldest_pending_seconds == 120
    assert dossiers["ARCHIVE"].lag.oldest_pending_at is None
    bus.close()


def test_without_a_bus_pending_is_not_reported(reader):
    assert all(d.pending is None for d in reader.report().dossiers)


def test_a_bus_that_cannot_answer_leaves_the_rest_of_the_report(store, tmp_path):
    bus = LocalBus(str(tmp_path / "bus.db"))
    bus.close()
    report = StatusReader(store, bus=bus, clock=lambda: NOW).report()
    bijou = by_id(report)["BIJOU"]
    assert bijou.pending.available is False and bijou.pending.error
    assert bijou.lag.seconds == 14 * 60 and bijou.open_incidents == 4


def test_the_report_is_json(reader):
    import json

    data = json.loads(reader.report().model_dump_json())
    bijou = next(d for d in data["dossiers"] if d["id"] == "BIJOU")
    assert bijou["lag"]["seconds"] == 840.0
    assert bijou["incidents"][0]["first_seen"] == "2025-11-23T07:00:00Z"
    assert data["query"] == {"dossier": None, "entity": None, "state": "open", "run": None, "runs": 10, "journal": 20,
                             "incidents": 200}


@pytest.mark.parametrize("params, expected", [
    ({}, StatusQuery()),
    ({"dossier": "BIJOU", "entity": "contact", "state": "all", "code": "secret"},
     StatusQuery(dossier="BIJOU", entity="contact", state=IncidentStateFilter.ALL)),
    ({"dossier": " ", "entity": "", "state": ""}, StatusQuery()),
    ({"state": "resolved", "runs": "3"}, StatusQuery(state=IncidentStateFilter.RESOLVED, runs=3)),
])
def test_query_from_parameters(params, expected):
    assert StatusQuery.from_params(params) == expected


@pytest.mark.parametrize("params, word", [
    ({"state": "closed"}, "state"),
    ({"runs": "0"}, "runs"),
    ({"incidents": "many"}, "incidents"),
])
def test_bad_query_parameters_say_which(params, word):
    with pytest.raises(StatusQueryError) as caught:
        StatusQuery.from_params(params)
    assert word in str(caught.value)
