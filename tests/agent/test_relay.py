"""The relay, end to end: Sage databases read through pyodbc (`Driver=SQLite3`), runs staged in the
agent's SQLite outbox, sent to the real `LocalBus`; what reached the bus is what is asserted."""
from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from agent import demo_builder as sage
from agent.checkpoint import RunState
from agent.dossiers import AgentDossiers
from agent.relay import outbox_message_id, run_selected
from shared.config import AgentSettings, BusSettings, DossierSettings, Settings
from shared.envelope import Envelope, EnvelopeBatch, Op
from shared.rules import sync_order

from agent_support import QUEUE, T0, CrashingBus, Harness, build_dossier, copy_database, current_keys, minutes

ENTITIES = [e.value for e in sync_order()]
DOCUMENT_TYPES = {"quote": 0, "order": 1, "invoice": 6}


def later(path: Path, at) -> None:
    """Time passes on the Sage server."""
    sage.set_clock(path, at)


def insert_one_of_each(path: Path, at) -> dict[str, str]:
    """A Sage user creates one record of every entity; returns entity -> key."""
    sage.insert_row(path, "F_COLLABORATEUR", {"CO_No": 50, "CO_Nom": "NOUVEAU", "CO_Prenom": "Nina",
                                              "CO_Vendeur": 1, "CO_EMail": "nina.nouveau@bijou.fr"}, at=at)
    sage.insert_row(path, "F_COMPTET", {"CT_Num": "NOUVEAU", "CT_Intitule": "Nouvelle Bijouterie", "CT_Type": 0,
                                        "CO_No": 50, "N_CatTarif": 1}, at=at)
    sage.insert_row(path, "F_CONTACTT", {"CT_Num": "NOUVEAU", "CT_No": 5000, "CT_Nom": "DUPONT",
                                         "CT_Prenom": "Jeanne", "CT_EMail": "jeanne@nouvelle.fr"}, at=at)
    sage.insert_row(path, "F_FAMILLE", {"FA_CodeFamille": "HORLOGE", "FA_Type": 0, "FA_Intitule": "Montres"}, at=at)
    sage.insert_row(path, "F_ARTICLE", {"AR_Ref": "MONTRE01", "AR_Design": "Montre acier", "FA_CodeFamille": "HORLOGE",
                                        "AR_PrixVen": 120, "AR_UniteVen": 1}, at=at)
    sage.insert_row(path, "F_LIVRAISON", {"LI_No": 5000, "CT_Num": "NOUVEAU", "LI_Intitule": "Nouvelle Bijouterie",
                                          "LI_Ville": "Dole", "LI_Principal": 1}, at=at)
    keys = {"user": "50", "account": "NOUVEAU", "contact": "5000", "product_family": "HORLOGE", "product": "MONTRE01",
            "delivery_address": "5000"}
    for entity, doc_type in DOCUMENT_TYPES.items():
        piece = sage.insert_document(path, doc_type=doc_type, tiers="NOUVEAU", rep=50,
                                     lines=[{"AR_Ref": "MONTRE01", "DL_Qte": 2}], at=at)
        keys[entity] = f"{'F' if entity == 'invoice' else doc_type}:{piece}"
    return keys


def where_of(entity: str, key: str, doc_type: int | None = None) -> tuple[str, dict]:
    if entity in DOCUMENT_TYPES:
        piece = key.split(":", 1)[1]
        doc_type = DOCUMENT_TYPES[entity] if doc_type is None else doc_type
        return "F_DOCENTETE", {"DO_Domaine": 0, "DO_Type": doc_type, "DO_Piece": piece}
    table, column = {"user": ("F_COLLABORATEUR", "CO_No"), "account": ("F_COMPTET", "CT_Num"),
                     "contact": ("F_CONTACTT", "CT_No"), "product_family": ("F_FAMILLE", "FA_CodeFamille"),
                     "product": ("F_ARTICLE", "AR_Ref"), "delivery_address": ("F_LIVRAISON", "LI_No")}[entity]
    return table, {column: int(key) if column in ("CO_No", "CT_No", "LI_No") else key}


def delete_record(path: Path, entity: str, key: str, at) -> None:
    table, where = where_of(entity, key)
    if table == "F_DOCENTETE":
        sage.delete_row(path, "F_DOCLIGNE", where, at=at)
    assert sage.delete_row(path, table, where, at=at) == 1


# --- a scenario per change kind ----------------------------------------------------------------------
def test_first_run_realigns_and_sends_every_record_of_every_entity_between_run_markers(agent, bijou):
    result = agent.run("BIJOU")
    delivered = agent.drain("BIJOU")

    assert result.ok and result.realignment and result.reasons == ("première synchronisation de ce dossier",)
    envelopes = delivered.envelopes
    assert envelopes[0].op is Op.RUN_START and envelopes[0].record["realignment"] is True
    assert envelopes[0].record["identity"]["company_name"] == "BIJOU SA" and "cause" not in envelopes[0].record
    assert envelopes[0].record["name"] == "BIJOU SA"
    assert envelopes[0].record["reasons"] == ["première synchronisation de ce dossier"]
    assert envelopes[-1].op is Op.RUN_END and envelopes[-1].run_id == result.run_id
    keys = current_keys(bijou)
    for entity in ENTITIES:
        assert delivered.keys(Op.UPSERT, entity) == keys[entity], entity
    assert [e.entity for e in delivered.changes(Op.UPSERT)] == sorted(
        (e.entity for e in delivered.changes(Op.UPSERT)), key=ENTITIES.index)
    counts = envelopes[-1].counts
    assert counts == result.counts
    assert counts["created"] == len(delivered.changes(Op.UPSERT)) == sum(len(k) for k in keys.values())
    assert counts["read"] == counts["created"] and counts["deleted"] == counts["invalid"] == 0
    assert {e.session_id for e in delivered.messages} == {"BIJOU"}
    for message in delivered.messages:
        batch = EnvelopeBatch.from_bytes(message.body)
        assert batch.to_bytes() == message.body
        assert message.message_id == outbox_message_id(result.run_id, batch)
        assert [e.id for e in batch.envelopes] == [Envelope.model_validate(e.model_dump()).id for e in batch.envelopes]


def test_inserted_records_of_every_entity_are_sent_once_and_nothing_else(agent, bijou):
    agent.run("BIJOU")
    agent.drain("BIJOU")
    keys = insert_one_of_each(bijou, T0 + minutes(5))
    later(bijou, T0 + minutes(10))

    result = agent.run("BIJOU")
    delivered = agent.drain("BIJOU")

    assert not result.realignment
    assert {(e.entity, e.key) for e in delivered.changes()} == set(keys.items())
    assert all(e.op is Op.UPSERT for e in delivered.changes())
    assert result.counts["created"] == len(keys) and result.counts["changed"] == 0
    order = delivered.changes(Op.UPSERT, "order")[0]
    assert [line["product_key"] for line in order.record["lines"]] == ["MONTRE01"]
    assert agent.run("BIJOU").counts["created"] == 0
    assert agent.drain("BIJOU").changes() == []


def test_updated_records_of_every_entity_are_sent_with_their_new_values(agent, bijou):
    first = agent.run("BIJOU")
    before = {e.entity: e for e in reversed(agent.drain("BIJOU").changes(Op.UPSERT))}
    field_of = {"user": ("CO_Nom", "RENOMMÉ", "last_name"), "account": ("CT_Intitule", "Bijoux Renommés", "name"),
                "contact": ("CT_Nom", "RENOMMÉ", "last_name"),
                "product_family": ("FA_Intitule", "Famille renommée", "name"),
                "product": ("AR_Design", "Bague renommée", "name"),
                "delivery_address": ("LI_Ville", "Dole", "city")}
    for entity, record in before.items():
        table, where = where_of(entity, record.key, record.record.get("doc_type"))
        column, value, canonical = field_of.get(entity, ("DO_Ref", "REF-2025", "reference"))
        assert sage.update_row(bijou, table, where, {column: value}, at=T0 + minutes(5)) == 1
    later(bijou, T0 + minutes(10))

    result = agent.run("BIJOU")
    delivered = agent.drain("BIJOU")

    assert first.ok and result.ok and not result.realignment
    changed = {e.entity: e for e in delivered.changes()}
    assert set(changed) == set(ENTITIES) and len(delivered.changes()) == len(ENTITIES)
    for entity, envelope in changed.items():
        column, value, canonical = field_of.get(entity, ("DO_Ref", "REF-2025", "reference"))
        assert envelope.op is Op.UPSERT and envelope.key == before[entity].key
        assert envelope.record[canonical] == value
        assert envelope.hash != before[entity].hash
    assert result.counts["changed"] == len(ENTITIES) and result.counts["created"] == 0


def test_a_save_without_change_sends_nothing(agent, bijou):
    agent.run("BIJOU")
    agent.drain("BIJOU")
    for table in ("F_COLLABORATEUR", "F_COMPTET", "F_CONTACTT", "F_FAMILLE", "F_ARTICLE", "F_ARTSTOCK",
                  "F_DOCENTETE", "F_DOCLIGNE", "F_LIVRAISON"):
        assert sage.touch_rows(bijou, table, at=T0 + minutes(5)) > 0
    later(bijou, T0 + minutes(10))

    result = agent.run("BIJOU")
    delivered = agent.drain("BIJOU")

    assert delivered.changes() == []
    assert [e.op for e in delivered.envelopes] == [Op.RUN_START, Op.RUN_END]
    total = sum(len(k) for k in current_keys(bijou).values())
    assert result.counts["read"] == result.counts["skipped_unchanged"] == total


def test_deleted_records_of_every_entity_are_sent_as_deletions_dependents_first(agent, bijou):
    keys = insert_one_of_each(bijou, T0 - minutes(30))
    agent.run("BIJOU")
    agent.drain("BIJOU")
    for entity in reversed(ENTITIES):
        delete_record(bijou, entity, keys[entity], T0 + minutes(5))
    later(bijou, T0 + minutes(10))

    result = agent.run("BIJOU")
    delivered = agent.drain("BIJOU")

    deletions = delivered.changes(Op.DELETE)
    assert [(e.entity, e.key) for e in deletions] == [(entity, keys[entity]) for entity in reversed(ENTITIES)]
    assert all(e.record is None for e in deletions)
    assert delivered.changes(Op.UPSERT) == [] and result.counts["deleted"] == len(ENTITIES)
    assert agent.run("BIJOU").counts["deleted"] == 0
    with agent.checkpoint() as checkpoint:
        assert checkpoint.shadow_lookup("BIJOU", "account", ["NOUVEAU"]) == {}


# --- restores ------------------------------------------------------------------------------------------
def test_restoring_an_older_copy_realigns_the_dossier_from_sage(agent, bijou, tmp_path):
    agent.run("BIJOU")
    first = agent.drain("BIJOU")
    backup = tmp_path / "backup.db"
    copy_database(bijou, backup)
    account = first.changes(Op.UPSERT, "account")[0]
    sage.update_row(bijou, "F_COMPTET", {"CT_Num": account.key}, {"CT_Intitule": "Nom d'après la sauvegarde"},
                    at=T0 + minutes(5))
    sage.insert_row(bijou, "F_CONTACTT", {"CT_Num": account.key, "CT_No": 7000, "CT_Nom": "RECENT"},
                    at=T0 + minutes(5))
    later(bijou, T0 + minutes(10))
    assert agent.run("BIJOU").counts["created"] == 1
    agent.drain("BIJOU")

    copy_database(backup, bijou)
    later(bijou, T0 + minutes(90))
    result = agent.run("BIJOU")
    delivered = agent.drain("BIJOU")

    assert result.realignment and any("version plus ancienne" in reason for reason in result.reasons)
    start = delivered.envelopes[0]
    assert start.op is Op.RUN_START and start.record["realignment"] is True and start.record["cause"] == "restored"
    keys = current_keys(bijou)
    for entity in ENTITIES:
        assert delivered.keys(Op.UPSERT, entity) == keys[entity], entity
    restored = [e for e in delivered.changes(Op.UPSERT, "account") if e.key == account.key][0]
    assert restored.record == account.record
    assert delivered.keys(Op.DELETE, "contact") == {"7000"}
    assert result.counts["resent"] == sum(len(k) for k in keys.values()) - 1 and result.counts["changed"] == 1


def test_restoring_a_copy_taken_before_a_deletion_brings_the_record_back(agent, bijou, tmp_path):
    agent.run("BIJOU")
    agent.drain("BIJOU")
    backup = tmp_path / "backup.db"
    copy_database(bijou, backup)
    delete_record(bijou, "contact", "3", T0 + minutes(5))
    later(bijou, T0 + minutes(10))
    assert agent.run("BIJOU").counts["deleted"] == 1
    assert agent.drain("BIJOU").keys(Op.DELETE, "contact") == {"3"}

    copy_database(backup, bijou)
    later(bijou, T0 + minutes(20))
    result = agent.run("BIJOU")
    delivered = agent.drain("BIJOU")

    assert delivered.keys(Op.UPSERT, "contact") == {"3"} and len(delivered.changes()) == 1
    assert result.counts["created"] == 1
    with agent.checkpoint() as checkpoint:
        notes = checkpoint.runs("BIJOU", limit=1)[0].reasons
    assert any("« Contact »" in note and "relue en entier" in note for note in notes)


def test_a_replaced_database_is_realigned(agent, bijou):
    agent.run("BIJOU")
    agent.drain("BIJOU")
    build_dossier(agent.folder, "BIJOU", clock=T0 + minutes(10), seed=1)

    result = agent.run("BIJOU")
    delivered = agent.drain("BIJOU")

    assert result.realignment and any("n'est plus celle synchronisée auparavant" in r for r in result.reasons)
    keys = current_keys(bijou)
    assert delivered.keys(Op.UPSERT, "account") == keys["account"]


# --- crashes: nothing lost, nothing duplicated -----------------------------------------------------------
def _outbox_ids(agent) -> list[str]:
    with agent.checkpoint() as checkpoint:
        return [row[0] for row in checkpoint._db.execute(
            "SELECT message_id FROM outbox WHERE dossier = 'BIJOU' ORDER BY seq")]


def _assert_each_record_once(delivered, run_id: str, bijou: Path) -> None:
    run = [e for e in delivered.envelopes if e.run_id == run_id]
    ids = [e.id for e in run]
    assert len(ids) == len(set(ids)), "an envelope reached the bus twice"
    keys = current_keys(bijou)
    for entity in ENTITIES:
        assert {e.key for e in run if e.entity == entity and e.op is Op.UPSERT} == keys[entity], entity
    assert run[0].op is Op.RUN_START and run[-1].op is Op.RUN_END


@pytest.mark.parametrize("crash_after", [0, 3, "last"])
def test_agent_dying_between_send_and_checkpoint_resends_the_same_ids_on_restart(agent, bijou, crash_after):
    agent.run("BIJOU", bus=CrashingBus(agent.bus, 10 ** 6), batch_envelopes=10)  # only to count batches
    total = len(agent.drain("BIJOU").messages)
    for suffix in ("", "-wal", "-shm"):
        Path(f"{agent.state_path}{suffix}").unlink(missing_ok=True)
    crash_after = total - 1 if crash_after == "last" else crash_after

    crashed = agent.run("BIJOU", bus=CrashingBus(agent.bus, crash_after), batch_envelopes=10)
    staged_ids = _outbox_ids(agent)
    with agent.checkpoint() as checkpoint:
        pending = checkpoint.pending("BIJOU")
        assert checkpoint.runs("BIJOU", limit=1)[0].state == RunState.SENDING
    assert not crashed.ok and "died" in crashed.error
    assert pending.sealed and pending.batches == total and pending.unsent == total - crash_after
    assert agent.bus.pending_count(QUEUE, "BIJOU") == crash_after + 1

    restarted = agent.run("BIJOU", batch_envelopes=10)
    delivered = agent.drain("BIJOU")

    assert restarted.ok and restarted.recovered_run_id == crashed.run_id
    assert not restarted.realignment and restarted.counts["created"] == restarted.counts["changed"] == 0
    crashed_ids = [m.message_id for m in delivered.messages if m.application_properties["run_id"] == crashed.run_id]
    assert crashed_ids == staged_ids and len(set(crashed_ids)) == total
    _assert_each_record_once(delivered, crashed.run_id, bijou)
    with agent.checkpoint() as checkpoint:
        assert checkpoint.pending("BIJOU") is None
        assert [r.state for r in checkpoint.runs("BIJOU")][:2] == [RunState.SUCCEEDED, RunState.SUCCEEDED]


def test_a_bus_outage_keeps_the_run_in_the_outbox_until_the_bus_is_back(agent, bijou):
    failed = agent.run("BIJOU", bus=CrashingBus(agent.bus, 1, when="before-send"), batch_envelopes=10)
    assert not failed.ok and "network" in failed.error
    with agent.checkpoint() as checkpoint:
        assert checkpoint.dossier_state("BIJOU").last_error == failed.error
        assert checkpoint.watermarks("BIJOU") == {}

    sage.update_row(bijou, "F_COMPTET", {"CT_Num": "RUBIS"}, {"CT_Ville": "Saint-Étienne-du-Rouvray"}, at=T0 + minutes(5))
    later(bijou, T0 + minutes(10))
    resumed = agent.run("BIJOU", batch_envelopes=10)
    delivered = agent.drain("BIJOU")

    assert resumed.recovered_run_id == failed.run_id and resumed.ok
    _assert_each_record_once(delivered, failed.run_id, bijou)
    assert [(e.entity, e.key) for e in delivered.changes() if e.run_id == resumed.run_id] == [("account", "RUBIS")]
    with agent.checkpoint() as checkpoint:
        assert checkpoint.dossier_state("BIJOU").last_error is None


def test_agent_process_killed_after_a_send_loses_and_duplicates_nothing(agent, bijou):
    support = Path(__file__).resolve().parent
    script = textwrap.dedent(f"""
        import os, sys
        sys.path.insert(0, {str(support)!r})
        from agent_support import Harness
        harness = Harness(__import__("pathlib").Path({str(agent.folder)!r}))
        class DyingBus:
            sent = 0
            def send(self, queue, messages):
                harness.bus.send(queue, messages)
                DyingBus.sent += 1
                if DyingBus.sent == 3:
                    os._exit(9)
        harness.run("BIJOU", bus=DyingBus(), batch_envelopes=10)
        os._exit(0)
    """)
    root = Path(__file__).resolve().parents[2]
    child = subprocess.run([sys.executable, "-c", script], cwd=root, capture_output=True, text=True, timeout=120,
                           env={**os.environ, "PYTHONPATH": str(root)})
    assert child.returncode == 9, child.stderr
    staged_ids = _outbox_ids(agent)
    assert agent.bus.pending_count(QUEUE, "BIJOU") == 3

    restarted = agent.run("BIJOU", batch_envelopes=10)
    delivered = agent.drain("BIJOU")

    assert restarted.ok and restarted.recovered_run_id is not None
    crashed_ids = [m.message_id for m in delivered.messages
                   if m.application_properties["run_id"] == restarted.recovered_run_id]
    assert crashed_ids == staged_ids
    _assert_each_record_once(delivered, restarted.recovered_run_id, bijou)


class FailingReader:
    """The real reader, failing after `rows` rows (the Sage server went away mid-run)."""

    def __init__(self, reader, rows: int):
        self.reader, self.rows = reader, rows

    def __getattr__(self, name):
        return getattr(self.reader, name)

    def changed(self, entity, since):
        for row in self.reader.changed(entity, since):
            if self.rows == 0:
                raise ConnectionError("the Sage server stopped answering")
            self.rows -= 1
            yield row


def test_a_run_interrupted_before_it_is_complete_sends_nothing_and_is_redone(agent, bijou):
    from contextlib import contextmanager

    from agent.checkpoint import Checkpoint
    from agent.odbc import sqlite_connection_string
    from agent.relay import open_sage100, sync_dossier

    real = open_sage100(sqlite_connection_string(bijou))

    @contextmanager
    def failing_source():
        with real() as (connection, reader):
            yield connection, FailingReader(reader, rows=30)

    with Checkpoint(agent.state_path) as checkpoint:
        failed = sync_dossier("BIJOU", checkpoint=checkpoint, bus=agent.bus, queue=QUEUE, open_source=failing_source,
                              batch_envelopes=10)
        assert checkpoint.pending("BIJOU") is None
        assert checkpoint.runs("BIJOU")[0].state == RunState.FAILED
    assert not failed.ok and "stopped answering" in failed.error
    assert agent.bus.pending_count(QUEUE, "BIJOU") == 0

    redone = agent.run("BIJOU", batch_envelopes=10)
    delivered = agent.drain("BIJOU")
    assert redone.ok and redone.realignment
    assert {e.run_id for e in delivered.envelopes} == {redone.run_id}
    _assert_each_record_once(delivered, redone.run_id, bijou)


# --- bad rows, several dossiers ----------------------------------------------------------------------------
def test_bad_rows_become_readable_invalid_envelopes_and_the_rest_syncs(agent):
    path = build_dossier(agent.folder, "BIJOU", bad_rows=True)

    result = agent.run("BIJOU")
    delivered = agent.drain("BIJOU")

    invalid = {(e.entity, e.key): e.error for e in delivered.changes(Op.INVALID)}
    assert set(invalid) == {("account", sage.BAD_ACCOUNT_NO_NAME), ("account", sage.BAD_ACCOUNT_UNKNOWN_REP)}
    assert "name" in invalid[("account", sage.BAD_ACCOUNT_NO_NAME)]
    assert "le commercial 999 n'existe pas" in invalid[("account", sage.BAD_ACCOUNT_UNKNOWN_REP)]
    assert all(e.record is None and e.hash for e in delivered.changes(Op.INVALID))
    # the contacts whose e-mail SSM cannot take sync without it, their warnings with them
    warned = {e.key: e for e in delivered.changes(Op.UPSERT, "contact") if e.warnings}
    assert set(warned) == {str(sage.BAD_CONTACT_LONG_EMAIL), str(sage.BAD_CONTACT_INVALID_EMAIL)}
    assert all(e.record["email"] is None and e.warnings[0]["column"] == "CT_EMail" and e.v == 3
               for e in warned.values())
    keys = current_keys(path)
    for entity in ENTITIES:
        bad = {key for (kind, key) in invalid if kind == entity}
        assert delivered.keys(Op.UPSERT, entity) == keys[entity] - bad
    assert result.ok and result.counts["invalid"] == 2

    again = agent.run("BIJOU")
    assert agent.drain("BIJOU").changes() == [] and again.counts["skipped_unchanged"] == again.counts["read"]

    sage.update_row(path, "F_COMPTET", {"CT_Num": sage.BAD_ACCOUNT_NO_NAME}, {"CT_Intitule": "Enfin nommé"},
                    at=T0 + minutes(5))
    later(path, T0 + minutes(10))
    fixed = agent.run("BIJOU")
    upserts = agent.drain("BIJOU").changes()
    assert [(e.op, e.key, e.record["name"]) for e in upserts] == [(Op.UPSERT, sage.BAD_ACCOUNT_NO_NAME, "Enfin nommé")]
    assert fixed.counts["created"] == 1


def test_dossiers_run_in_their_own_sessions_and_one_failing_does_not_stop_the_others(agent):
    bijou = build_dossier(agent.folder, "BIJOU")
    build_dossier(agent.folder, "ORFEVRE", seed=3)
    settings = Settings(
        agent=AgentSettings(state_path=str(agent.state_path),
                            server_odbc=f"Driver=SQLite3;Database={agent.folder}"),
        bus=BusSettings(path=str(agent.folder / "bus.db")),
        dossiers=[DossierSettings(id="CASSE", odbc="Driver={No Such Driver};Database=CASSE")])
    with agent.checkpoint() as checkpoint:
        AgentDossiers(checkpoint).select("BIJOU")
        AgentDossiers(checkpoint).select("ORFEVRE")
        results = {r.dossier: r for r in run_selected(settings, checkpoint=checkpoint, bus=agent.bus)}

    assert set(results) == {"BIJOU", "CASSE", "ORFEVRE"}
    assert results["BIJOU"].ok and results["ORFEVRE"].ok and not results["CASSE"].ok
    assert "injoignable" in results["CASSE"].error and "No Such Driver" in results["CASSE"].error
    bijou_sent, orfevre_sent = agent.drain("BIJOU"), agent.drain("ORFEVRE")
    assert {e.dossier for e in bijou_sent.envelopes} == {"BIJOU"}
    assert {e.dossier for e in orfevre_sent.envelopes} == {"ORFEVRE"}
    assert agent.bus.pending_count(QUEUE) == 0

    delete_record(bijou, "contact", "3", T0 + minutes(5))
    later(bijou, T0 + minutes(10))
    with agent.checkpoint() as checkpoint:
        results = {r.dossier: r for r in run_selected(settings, checkpoint=checkpoint, bus=agent.bus)}
        assert checkpoint.dossier_state("CASSE").last_error == results["CASSE"].error
        assert checkpoint.dossier_state("BIJOU").last_error is None
    assert results["BIJOU"].counts["deleted"] == 1 and results["ORFEVRE"].counts["deleted"] == 0
    assert agent.drain("ORFEVRE").changes() == []
    assert agent.drain("BIJOU").keys(Op.DELETE, "contact") == {"3"}


def test_a_row_repeating_a_key_is_an_incident_of_its_own_and_the_key_once_the_older_row_is_deleted(agent):
    path = build_dossier(agent.folder, "BIJOU")
    import sqlite3
    ref, original = sqlite3.connect(path).execute("SELECT AR_Ref, AR_Design FROM F_ARTICLE WHERE cbMarq = 1").fetchone()
    with sage._session(path, None) as connection:        # an import that left a second row of the same AR_Ref
        marq = sage._copy_row(connection, "F_ARTICLE", 1, {"AR_Ref": ref + " ", "AR_Design": "Copie importée"})

    first = agent.run("BIJOU")
    delivered = agent.drain("BIJOU")

    copy_key = f"{ref} (cbMarq {marq})"
    invalid = {e.key: e.error for e in delivered.changes(Op.INVALID, "product")}
    assert set(invalid) == {copy_key} and f"F_ARTICLE contient 2 fiches de clé « {ref} »" in invalid[copy_key]
    assert [e.record["name"] for e in delivered.changes(Op.UPSERT, "product") if e.key == ref] == [original]
    assert first.ok and first.counts["invalid"] == 1

    again = agent.run("BIJOU")                          # nothing changed: nothing sent, the incident stays
    assert agent.drain("BIJOU").changes() == [] and again.counts["invalid"] == 0

    sage.delete_row(path, "F_ARTICLE", {"cbMarq": 1}, at=T0 + minutes(5))
    later(path, T0 + minutes(10))
    agent.run("BIJOU")
    changes = agent.drain("BIJOU").changes(entity="product")

    assert [(e.op, e.key, e.record["name"]) for e in changes if e.op is Op.UPSERT] == \
        [(Op.UPSERT, ref, "Copie importée")]          # the remaining row is the article now
    assert [e.key for e in changes if e.op is Op.DELETE] == [copy_key]   # and its incident closes
