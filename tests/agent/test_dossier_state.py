"""The agent tells the cloud when a dossier is deactivated or activated again: one notice per change
of state, in the dossier's session, kept in the agent's state until the bus accepted it, sent
again after a crash under the same message id, and always before the dossier's next run."""
from __future__ import annotations

import datetime as dt
from pathlib import Path

from agent.checkpoint import Checkpoint
from agent.relay import announce_activity, run_selected
from shared.config import AgentSettings, BusSettings, DossierSettings, Settings
from shared.envelope import EnvelopeKind, Op

from agent_support import QUEUE, CrashingBus, Harness

NOTICE_OPS = (Op.ACTIVATE, Op.DEACTIVATE)


def server_settings(agent: Harness, *dossiers: DossierSettings) -> Settings:
    """The agent's settings: its folder stands for the Sage server."""
    return Settings(agent=AgentSettings(state_path=str(agent.state_path),
                                        server_odbc=f"Driver=SQLite3;Database={agent.folder}"),
                    bus=BusSettings(path=str(agent.folder / "bus.db")), dossiers=list(dossiers))


def cycle(agent: Harness, settings: Settings, *, bus=None, notices: list = None):
    with agent.checkpoint() as checkpoint:
        return run_selected(settings, checkpoint=checkpoint, bus=bus or agent.bus,
                            on_notice=None if notices is None else notices.append)


def synced_once(agent: Harness, settings: Settings) -> None:
    """BIJOU selected, synced once, and what that sent drained from the bus."""
    with agent.checkpoint() as checkpoint:
        checkpoint.select("BIJOU")
    cycle(agent, settings)
    agent.drain("BIJOU")


def deselected_after_a_sync(agent: Harness, settings: Settings) -> None:
    """BIJOU synced once (`synced_once`), then deselected; nothing announced yet."""
    synced_once(agent, settings)
    with agent.checkpoint() as checkpoint:
        checkpoint.deselect("BIJOU")


def synced_then_deselected(agent: Harness, settings: Settings) -> None:
    """BIJOU synced once, then deselected and its deactivation delivered."""
    deselected_after_a_sync(agent, settings)
    cycle(agent, settings)
    agent.drain("BIJOU")


def kinds(delivered) -> list[tuple[str, str]]:
    """What the session carried, in order: notices by operation, runs by their markers."""
    return [(e.kind.value, e.op.value) for e in delivered.envelopes
            if e.kind is EnvelopeKind.DOSSIER_STATE or e.op in (Op.RUN_START, Op.RUN_END)]


def test_a_deselected_dossier_is_announced_once_with_its_name_then_nothing_is_sent(agent, bijou):
    settings = server_settings(agent)
    deselected_after_a_sync(agent, settings)

    notices = []
    results = cycle(agent, settings, notices=notices)

    assert results == [] and [(n.dossier, n.active, n.ok) for n in notices] == [("BIJOU", False, True)]
    delivered = agent.drain("BIJOU")
    [message], [notice] = delivered.messages, delivered.envelopes
    assert (notice.kind, notice.op, notice.record["active"]) == (EnvelopeKind.DOSSIER_STATE, Op.DEACTIVATE, False)
    assert message.session_id == "BIJOU" and notice.v == 2
    with agent.checkpoint() as checkpoint:
        change = checkpoint.activity("BIJOU")
        assert not change.active and change.announced and checkpoint.unannounced() == []

    assert cycle(agent, settings) == []
    assert agent.drain("BIJOU").messages == []


def test_the_notice_carries_the_configured_name_and_the_time_of_the_change(agent, bijou):
    settings = server_settings(agent, DossierSettings(id="BIJOU", name="Bijouterie du Centre",
                                                      odbc=f"Driver=SQLite3;Database={bijou}"))
    cycle(agent, settings)
    agent.drain("BIJOU")
    with agent.checkpoint() as checkpoint:
        checkpoint.deselect("BIJOU")
        changed_at = checkpoint.activity("BIJOU").changed_at

    cycle(agent, settings)

    [notice] = agent.drain("BIJOU").envelopes
    assert (notice.record["active"], notice.record["name"]) == (False, "Bijouterie du Centre")
    assert dt.datetime.fromisoformat(notice.record["changed_at"]) == dt.datetime.fromisoformat(changed_at)


def test_a_notice_the_bus_refused_stays_and_goes_with_the_next_cycle(agent, bijou):
    settings = server_settings(agent)
    deselected_after_a_sync(agent, settings)

    notices = []
    cycle(agent, settings, bus=CrashingBus(agent.bus, 0, when="before-send"), notices=notices)

    [refused] = notices
    assert not refused.ok and "network" in refused.error
    assert agent.bus.pending_count(QUEUE, "BIJOU") == 0
    with agent.checkpoint() as checkpoint:
        assert [c.dossier for c in checkpoint.unannounced()] == ["BIJOU"]
        assert checkpoint.dossier_state("BIJOU").last_error == refused.error

    cycle(agent, settings)

    assert kinds(agent.drain("BIJOU")) == [("dossier-state", "deactivate")]


def test_a_crash_after_the_bus_accepted_the_notice_sends_it_again_under_the_same_id(agent, bijou):
    settings = server_settings(agent)
    deselected_after_a_sync(agent, settings)
    crashing = CrashingBus(agent.bus, 0, when="after-send")

    notices = []
    cycle(agent, settings, bus=crashing, notices=notices)
    assert not notices[0].ok and agent.bus.pending_count(QUEUE, "BIJOU") == 1
    first = agent.drain("BIJOU").message_ids

    again = []
    recording = RecordingBus(agent.bus)
    cycle(agent, settings, bus=recording, notices=again)

    assert again[0].ok and again[0].change_id == notices[0].change_id
    assert recording.sent_ids == first, "the same message id, dropped by duplicate detection"
    assert agent.drain("BIJOU").messages == []


class RecordingBus:
    """A bus that remembers the ids it was asked to send."""

    def __init__(self, bus):
        self.bus = bus
        self.sent_ids: list[str] = []

    def send(self, queue, messages):
        self.sent_ids += [m.message_id for m in messages]
        self.bus.send(queue, messages)


def test_selected_again_the_activation_goes_before_a_realignment_run(agent, bijou):
    settings = server_settings(agent)
    synced_then_deselected(agent, settings)
    with agent.checkpoint() as checkpoint:
        assert checkpoint.select("BIJOU") is True

    [result] = cycle(agent, settings)

    delivered = agent.drain("BIJOU")
    assert result.ok and result.realignment
    assert kinds(delivered) == [("dossier-state", "activate"), ("run-marker", "run-start"), ("run-marker", "run-end")]
    assert delivered.envelopes[0].record["active"] is True


def test_no_run_goes_before_the_cloud_knows_the_dossier_is_active_again(agent, bijou):
    settings = server_settings(agent)
    synced_then_deselected(agent, settings)
    with agent.checkpoint() as checkpoint:
        checkpoint.select("BIJOU")

    [refused] = cycle(agent, settings, bus=CrashingBus(agent.bus, 0, when="before-send"))

    assert not refused.ok and "n'a pas pu être prévenu que le dossier est de nouveau actif" in refused.error
    assert agent.bus.pending_count(QUEUE, "BIJOU") == 0
    with agent.checkpoint() as checkpoint:
        assert checkpoint.pending("BIJOU") is None and checkpoint.dossier_state("BIJOU").needs_realignment

    [result] = cycle(agent, settings)

    assert result.ok and result.realignment
    assert kinds(agent.drain("BIJOU"))[:2] == [("dossier-state", "activate"), ("run-marker", "run-start")]


def test_a_configured_dossier_seen_inactive_then_active_again(agent, bijou):
    def configured(active: bool) -> Settings:
        return server_settings(agent, DossierSettings(id="BIJOU", odbc=f"Driver=SQLite3;Database={bijou}",
                                                      active=active))

    cycle(agent, configured(True))
    agent.drain("BIJOU")

    assert cycle(agent, configured(False)) == []
    assert kinds(agent.drain("BIJOU")) == [("dossier-state", "deactivate")]
    assert cycle(agent, configured(False)) == []
    assert agent.drain("BIJOU").messages == []

    [result] = cycle(agent, configured(True))

    assert result.realignment
    assert kinds(agent.drain("BIJOU")) == [("dossier-state", "activate"), ("run-marker", "run-start"),
                                           ("run-marker", "run-end")]


def test_a_run_left_half_sent_is_finished_before_the_deactivation(agent, bijou):
    settings = server_settings(agent)
    with agent.checkpoint() as checkpoint:
        checkpoint.select("BIJOU")
    crashed = agent.run("BIJOU", bus=CrashingBus(agent.bus, 2, when="before-send"), batch_envelopes=10)
    assert not crashed.ok
    with agent.checkpoint() as checkpoint:
        checkpoint.deselect("BIJOU")

    cycle(agent, settings)

    delivered = agent.drain("BIJOU")
    assert kinds(delivered) == [("run-marker", "run-start"), ("run-marker", "run-end"),
                                ("dossier-state", "deactivate")]
    with agent.checkpoint() as checkpoint:
        assert checkpoint.pending("BIJOU") is None
        assert checkpoint.runs("BIJOU", limit=1)[0].state == "succeeded"


def test_changes_of_mind_before_a_cycle_make_one_notice_and_a_realignment(agent, bijou):
    settings = server_settings(agent)
    synced_once(agent, settings)
    with agent.checkpoint() as checkpoint:
        checkpoint.deselect("BIJOU")
        checkpoint.select("BIJOU")
        [change] = checkpoint.unannounced()
        assert change.active

    [result] = cycle(agent, settings)

    assert result.realignment
    assert kinds(agent.drain("BIJOU"))[0] == ("dossier-state", "activate")


def test_a_run_recovered_after_the_reselection_does_not_answer_the_realignment(agent, bijou):
    settings = server_settings(agent)
    with agent.checkpoint() as checkpoint:
        checkpoint.select("BIJOU")
    cycle(agent, settings)
    agent.drain("BIJOU")
    stuck = agent.run("BIJOU", bus=CrashingBus(agent.bus, 0, when="before-send"))
    assert not stuck.ok and not stuck.realignment
    with agent.checkpoint() as checkpoint:
        checkpoint.deselect("BIJOU")
        checkpoint.select("BIJOU")

    [result] = cycle(agent, settings)

    assert result.recovered_run_id == stuck.run_id and result.realignment
    assert kinds(agent.drain("BIJOU")) == [("dossier-state", "activate"),
                                           ("run-marker", "run-start"), ("run-marker", "run-end"),
                                           ("run-marker", "run-start"), ("run-marker", "run-end")]


def test_a_dossier_active_from_its_first_run_needs_no_notice(agent, bijou):
    settings = server_settings(agent)
    with agent.checkpoint() as checkpoint:
        assert checkpoint.select("BIJOU") is False

    cycle(agent, settings)

    assert all(e.kind is not EnvelopeKind.DOSSIER_STATE for e in agent.drain("BIJOU").envelopes)
    with agent.checkpoint() as checkpoint:
        assert checkpoint.activity("BIJOU") is None


def test_a_newer_change_is_not_marked_sent_by_the_notice_of_an_older_one(tmp_path: Path):
    with Checkpoint(tmp_path / "agent.db") as checkpoint:
        checkpoint.deselect("BIJOU")
        older = checkpoint.activity("BIJOU")
        checkpoint.select("BIJOU")

        assert checkpoint.mark_announced("BIJOU", older.change_id) is False
        newer = checkpoint.activity("BIJOU")
        assert newer.active and not newer.announced and newer.change_id != older.change_id
        assert checkpoint.mark_announced("BIJOU", newer.change_id) is True
        assert checkpoint.unannounced() == []


def test_only_the_dossiers_asked_for_are_announced(agent, bijou):
    settings = server_settings(agent)
    with agent.checkpoint() as checkpoint:
        checkpoint.deselect("BIJOU")
        checkpoint.deselect("ORFEVRE")
        notices = announce_activity(settings, checkpoint=checkpoint, bus=agent.bus, only="ORFEVRE")
        assert [n.dossier for n in notices] == ["ORFEVRE"]
        assert [c.dossier for c in checkpoint.unannounced()] == ["BIJOU"]
    assert agent.drain("BIJOU").messages == [] and len(agent.drain("ORFEVRE").messages) == 1
