"""The journal of a run: one line when it starts (why it realigns), one when it ends (its counts and
the conflicts Sage won), per-record lines only for what someone must act on; the dossier's display
name comes with the run."""
from __future__ import annotations

from shared.envelope import Envelope
from shared.status.report import StatusQuery, StatusReader
from tests.sync.records import client


def start_with(agent, **record) -> Envelope:
    marker = agent.start(realignment=bool(record.get("realignment")))
    return marker.model_copy(update={"record": {**marker.record, **record}})


def test_a_run_writes_its_start_and_its_end_with_the_counts(service, agent, store):
    service.apply_batch(agent.run(client(), realignment=True))            # the first run realigns
    service.apply_batch(agent.run(client(phone="01 02 03 04 05"), client(key="C002", name="Orfèvrerie")))

    lines = store.list_journal("BIJOU")
    run_lines = [(e.event, e.message) for e in lines if e.run_id == agent.run_id]
    assert [event for event, _ in run_lines] == ["run-end", "run-start"]
    assert run_lines[1][1] == "Début de la synchronisation Sage → SSM."
    assert run_lines[0][1] == ("Fin de la synchronisation Sage → SSM : lus 2, créés 1, modifiés 1, supprimés 0, "
                               "inchangés 0, conflits 0, échecs 0.")
    assert [e.message for e in lines if e.event == "run-start"][-1] == \
        "Début de la synchronisation Sage → SSM : réalignement, Sage fait foi."
    assert {e.event for e in lines} == {"run-start", "run-end", "dossier-registered"}, "no line per record synced"

    report = StatusReader(store).report(StatusQuery(run=agent.run_id))
    assert [j.code for j in report.dossiers[0].journal] == ["journal.run.end", "journal.run.start"]


def test_a_realignment_says_why_and_a_redelivered_start_writes_no_second_line(service, agent, store):
    service.apply_batch(agent.run(client(), realignment=True))
    reasons = ["la base Sage n'est plus celle synchronisée auparavant (restaurée ou remplacée)"]
    start = start_with(agent, realignment=True, reasons=reasons)
    batch = agent.batch(start, agent.upsert(client()), agent.end(read=1))
    service.apply_batch(batch)
    service.apply_batch(batch, delivery_count=2)

    starts = [e.message for e in store.list_journal("BIJOU", event="run-start") if e.run_id == agent.run_id]
    assert starts == ["Début de la synchronisation Sage → SSM : réalignement, Sage fait foi (la base Sage n'est plus "
                      "celle synchronisée auparavant (restaurée ou remplacée))."]
    assert len([e for e in store.list_journal("BIJOU", event="run-end") if e.run_id == agent.run_id]) == 1


def test_the_dossier_takes_the_name_its_run_carries(service, agent, store):
    service.apply_batch(agent.run(client(), realignment=True))
    assert store.get_dossier("BIJOU").name is None

    service.apply_batch(agent.batch(start_with(agent, name="Bijouterie Dupont SA"), agent.end(read=0)))
    assert store.get_dossier("BIJOU").name == "Bijouterie Dupont SA"
    [listed] = StatusReader(store).report().dossier_choices
    assert listed.name == "Bijouterie Dupont SA"
