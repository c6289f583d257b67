"""The SSM → Sage commands waiting for the agent: noted when sent, gone once answered, sent again
waiting again; each shown on its dossier with what it asks."""
from __future__ import annotations

import datetime as dt

from shared.envelope import Envelope, EnvelopeKind, Op
from shared.inbound.pending import note_answered, note_sent, waiting_commands
from shared.status.report import StatusQuery, StatusReader
from tests.status.sample import NOW, fill_sample_state

T0 = dt.datetime(2025, 11, 23, 9, 0, tzinfo=dt.timezone.utc)


def command(command_id: str, op: Op, entity: str = "account", key: str = "ssm:12") -> Envelope:
    return Envelope(kind=EnvelopeKind.COMMAND, dossier="BIJOU", run_id=command_id, correlation_id=command_id,
                    entity=entity, op=op, key=key, hash="h")


def test_a_command_waits_until_its_answer_and_again_when_sent_again(store):
    note_sent(store, [command("c1", Op.CREATE_PROSPECT), command("c2", Op.PRICE_QUOTE, "quote", "ssm:88")], at=T0)
    assert [(c["command_id"], c["operation"], c["entity"], c["key"]) for c in waiting_commands(store, "BIJOU")] == [
        ("c1", "create", "account", "ssm:12"), ("c2", "price", "quote", "ssm:88")]

    note_answered(store, "BIJOU", "c1")
    note_answered(store, "BIJOU", "unknown")
    assert [c["command_id"] for c in waiting_commands(store, "BIJOU")] == ["c2"]
    assert waiting_commands(store, "ARCHIVE") == []

    note_sent(store, [command("c1", Op.CREATE_PROSPECT)], at=T0 + dt.timedelta(minutes=5))
    assert [c["command_id"] for c in waiting_commands(store, "BIJOU")] == ["c2", "c1"]


def test_the_report_and_the_page_show_them(tmp_path):
    from shared.status.page import render_status_page
    from tests.status.sample import open_store

    store = open_store(tmp_path / "state.db")
    fill_sample_state(store)
    note_sent(store, [command("c9", Op.UPDATE_CONTACT, "contact", "CLT001|2")], at=T0)
    report = StatusReader(store, clock=lambda: NOW).report(StatusQuery(dossier="BIJOU"))
    [bijou] = report.dossiers
    assert [(c.entity, c.key, c.operation, c.sent_at) for c in bijou.commands] == [("contact", "CLT001|2", "update", T0)]
    page = render_status_page(report)
    assert "Commandes SSM → Sage en attente de l'agent (1)" in page
    assert "<td>Contact</td><td>CLT001|2</td><td>Modification dans Sage</td>" in page
    store.close()
