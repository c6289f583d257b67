"""The mass-deletion guard: a Sage table that suddenly reads (nearly) empty — a filter or view
misconfigured, a permission revoked, a botched purge — must not soft-delete the customer base in
SSM. Demo Sage 100 databases read through pyodbc (`Driver=SQLite3`), the real `LocalBus`; what
reached the bus and the agent's state are asserted."""
from __future__ import annotations

import argparse
import json
import sqlite3
from contextlib import contextmanager
from pathlib import Path

import pytest

from agent import demo_builder as sage
from agent.checkpoint import Checkpoint
from agent.dossiers import AgentDossiers
from agent.cli import register
from agent.detection import DeletionGuard
from agent.odbc import sqlite_connection_string
from agent.relay import DossierRunResult, open_sage100, sync_dossier
from shared.bus.local_bus import LocalBus
from shared.envelope import Op
from shared.messages import text
from shared.state.repository import StateStore
from shared.state.sqlite_store import SqliteTableStore
from shared.sync.runs import RunBook

from agent_support import QUEUE, T0, Harness, build_dossier, current_keys, drain, minutes

# The tiny demo dossier has 16 accounts and 22 contacts: the guard is scaled down to it.
GUARD = DeletionGuard(max_fraction=0.2, min_count=5)
KEPT_ACCOUNTS = ("ECRIN", "RUBIS")


def run(agent: Harness, guard: DeletionGuard = GUARD) -> DossierRunResult:
    """A run of the accounts and contacts these scenarios hide (delivery addresses, which vanish
    with their account, are left out: their own guard works the same way)."""
    with agent.checkpoint() as checkpoint:
        return sync_dossier("BIJOU", checkpoint=checkpoint, bus=agent.bus, queue=QUEUE,
                            open_source=open_sage100(sqlite_connection_string(agent.path("BIJOU")),
                                                     delivery_addresses=False),
                            deletion_guard=guard, **AgentDossiers(checkpoint).run_options("BIJOU"))


def hide_rows(path: Path, table: str, keep: dict[str, tuple] = None) -> None:
    """Sage's reads stop seeing the rows of `table` (all but `keep`); they are kept aside."""
    column, values = next(iter((keep or {"rowid": ()}).items()))
    marks = ",".join("?" * len(values))
    with _sqlite(path) as db:
        db.execute(f"CREATE TABLE HIDDEN_{table} AS SELECT * FROM {table} WHERE {column} NOT IN ({marks})", values)
        db.execute(f"DELETE FROM {table} WHERE {column} NOT IN ({marks})", values)


def restore_rows(path: Path, table: str, only: tuple = None, column: str = None) -> None:
    """The rows come back exactly as they were (the permission or the filter is fixed)."""
    where = f" WHERE {column} IN ({','.join('?' * len(only))})" if only else ""
    with _sqlite(path) as db:
        db.execute(f"INSERT INTO {table} SELECT * FROM HIDDEN_{table}{where}", only or ())
        if only:
            db.execute(f"DELETE FROM HIDDEN_{table}{where}", only)
        else:
            db.execute(f"DROP TABLE HIDDEN_{table}")


class _sqlite:
    def __init__(self, path: Path):
        self.db = sqlite3.connect(path)

    def __enter__(self) -> sqlite3.Connection:
        return self.db

    def __exit__(self, *exc_info) -> None:
        if exc_info[0] is None:
            self.db.commit()
        self.db.close()


def hide_accounts(path: Path, keep: tuple = None) -> None:
    """Accounts (all but `keep`) vanish from Sage's reads with their contacts and delivery
    addresses, as when Sage deletes an account. An account vanishing alone would leave them orphans
    in Sage: incidents, not deletions (`test_contacts_whose_account_vanished_alone_are_incidents_not_deletions`)."""
    for table in ("F_COMPTET", "F_CONTACTT", "F_LIVRAISON"):
        hide_rows(path, table, {"CT_Num": keep} if keep else None)


def restore_accounts(path: Path, only: tuple = None) -> None:
    """The hidden accounts (or `only` these) come back with their contacts and delivery addresses."""
    for table in ("F_COMPTET", "F_CONTACTT", "F_LIVRAISON"):
        restore_rows(path, table, only, "CT_Num" if only else None)


def contacts_of(path: Path, accounts: set[str]) -> set[str]:
    with _sqlite(path) as db:
        marks = ",".join("?" * len(accounts))
        return {str(no) for (no,) in db.execute(f"SELECT CT_No FROM F_CONTACTT WHERE CT_Num IN ({marks})",
                                                 tuple(accounts))}


@pytest.fixture
def synced(agent, bijou):
    """BIJOU synchronised once; returns every key of every entity."""
    assert run(agent).ok
    agent.drain("BIJOU")
    return current_keys(bijou)


def hidden_accounts(bijou: Path, keys: dict[str, set[str]]) -> tuple[set[str], set[str]]:
    """Every account but two vanishes from Sage's reads with its contacts; returns (accounts, contacts) gone."""
    accounts = keys["account"] - set(KEPT_ACCOUNTS)
    contacts = contacts_of(bijou, accounts)
    hide_accounts(bijou, KEPT_ACCOUNTS)
    assert current_keys(bijou)["account"] == set(KEPT_ACCOUNTS)
    return accounts, contacts


def held(agent: Harness) -> dict[str, tuple[int, int, bool]]:
    """entity -> (held, records, confirmed) in the agent's state."""
    with agent.checkpoint() as checkpoint:
        return {entity: (hold.held, hold.records, hold.confirmed_at is not None)
                for entity, hold in checkpoint.deletion_holds("BIJOU").items()}


def shadow_size(agent: Harness, entity: str) -> int:
    with agent.checkpoint() as checkpoint:
        return checkpoint.shadow_counts("BIJOU")[entity]["records"]


# --- the guard -----------------------------------------------------------------------------------
@pytest.mark.parametrize("deletions, records, holds", [
    (51, 100, True), (50, 100, False), (51, 254, True), (51, 255, False), (4812, 5000, True),
    (1000, 1_000_000, False), (49, 49, False), (0, 0, False)])
def test_a_deletion_set_is_held_only_above_both_the_fraction_and_the_minimum(deletions, records, holds):
    assert DeletionGuard(max_fraction=0.2, min_count=50).holds(deletions, records) is holds


def test_a_table_read_nearly_empty_sends_no_deletion_but_everything_else(agent, bijou, synced):
    accounts, contacts = hidden_accounts(bijou, synced)
    sage.update_row(bijou, "F_ARTICLE", {"AR_Ref": "BAAR01"}, {"AR_Design": "Bague argent ciselée"},
                    at=T0 + minutes(5))
    sage.set_clock(bijou, T0 + minutes(10))

    result = run(agent)
    delivered = agent.drain("BIJOU")

    assert result.ok and not result.realignment
    assert delivered.changes(Op.DELETE) == []
    assert [(e.op, e.entity, e.key) for e in delivered.changes()] == [(Op.UPSERT, "product", "BAAR01")]
    [(start, end)] = delivered.runs()
    assert end.counts["deletions_held"] == result.counts["deletions_held"] == len(accounts) + len(contacts)
    assert end.counts["deleted"] == 0
    assert held(agent) == {"account": (len(accounts), len(synced["account"]), False),
                           "contact": (len(contacts), len(synced["contact"]), False)}
    assert [hold.message for hold in result.holds] == [
        f"BIJOU : {len(contacts)} fiches « Contact » sur {len(synced['contact'])} seraient supprimées dans SSM ; "
        "suppression retenue. Si elle est voulue, lancez `ssm-connector agent confirm-deletions BIJOU contact`",
        f"BIJOU : {len(accounts)} fiches « Tiers » sur {len(synced['account'])} seraient supprimées dans SSM ; "
        "suppression retenue. Si elle est voulue, lancez `ssm-connector agent confirm-deletions BIJOU account`"]
    assert shadow_size(agent, "account") == len(synced["account"])
    assert shadow_size(agent, "contact") == len(synced["contact"])

    again = run(agent)
    assert agent.drain("BIJOU").changes() == [] and again.counts["deletions_held"] == len(accounts) + len(contacts)


def test_contacts_whose_account_vanished_alone_are_incidents_not_deletions(agent, bijou, synced):
    """Contacts still in F_CONTACTT whose account is gone are orphans in Sage: each is an incident
    naming its missing account, never a deletion; the accounts' deletion is held as ever."""
    accounts = synced["account"] - set(KEPT_ACCOUNTS)
    contacts = contacts_of(bijou, accounts)
    with _sqlite(bijou) as db:                # suppliers vanish too: their contacts, never synced, are orphans
        suppliers = {number for (number,) in db.execute("SELECT CT_Num FROM F_COMPTET WHERE CT_Type <> 0")}
    orphans = contacts | contacts_of(bijou, suppliers)
    hide_rows(bijou, "F_COMPTET", {"CT_Num": KEPT_ACCOUNTS})
    sage.set_clock(bijou, T0 + minutes(10))

    result = run(agent)
    delivered = agent.drain("BIJOU")

    assert result.ok and delivered.changes(Op.DELETE) == [] and orphans > contacts
    assert delivered.keys(Op.INVALID, "contact") == orphans and len(delivered.changes()) == len(orphans)
    assert all("n'existe pas dans Sage (F_COMPTET)" in e.error for e in delivered.changes(Op.INVALID))
    assert held(agent) == {"account": (len(accounts), len(synced["account"]), False)}
    assert result.counts["deletions_held"] == len(accounts)

    assert agent.drain("BIJOU").changes() == [] and run(agent).ok and agent.drain("BIJOU").changes() == []
    restore_rows(bijou, "F_COMPTET")           # the accounts come back: their contacts sync again
    sage.set_clock(bijou, T0 + minutes(20))
    back = run(agent)
    assert back.ok and held(agent) == {}
    assert agent.drain("BIJOU").keys(Op.UPSERT, "contact") == contacts


def test_rows_coming_back_clear_the_hold_and_no_deletion_was_ever_sent(agent, bijou, synced):
    hidden_accounts(bijou, synced)
    sage.set_clock(bijou, T0 + minutes(10))
    run(agent)
    run(agent)
    restore_accounts(bijou)
    sage.set_clock(bijou, T0 + minutes(20))

    result = run(agent)
    delivered = agent.drain("BIJOU")

    assert result.ok and not result.realignment and result.holds == ()
    assert delivered.changes() == [] and len(delivered.runs()) == 3
    assert all(end.counts["deleted"] == 0 for _, end in delivered.runs())
    assert held(agent) == {}
    assert shadow_size(agent, "account") == len(synced["account"])
    assert current_keys(bijou) == synced


def test_a_confirmation_sends_exactly_the_held_deletions_once_and_a_later_mass_deletion_is_held_again(
        agent, bijou, synced):
    accounts, contacts = hidden_accounts(bijou, synced)
    sage.set_clock(bijou, T0 + minutes(10))
    run(agent)
    agent.drain("BIJOU")
    with agent.checkpoint() as checkpoint:
        confirmed = checkpoint.confirm_deletions("BIJOU", "account")
    assert confirmed.held == len(accounts) and confirmed.confirmed_at

    result = run(agent)
    delivered = agent.drain("BIJOU")

    assert result.ok
    assert delivered.keys(Op.DELETE, "account") == accounts and delivered.changes(Op.DELETE, "contact") == []
    assert len(delivered.changes()) == len(accounts)
    assert result.counts["deleted"] == len(accounts) and result.counts["deletions_held"] == len(contacts)
    assert held(agent) == {"contact": (len(contacts), len(synced["contact"]), False)}
    assert shadow_size(agent, "account") == len(KEPT_ACCOUNTS)

    assert run(agent).counts["deleted"] == 0 and agent.drain("BIJOU").changes() == []

    restore_accounts(bijou)                 # the purge was a mistake after all: the accounts come back
    sage.set_clock(bijou, T0 + minutes(20))
    back = run(agent)
    assert agent.drain("BIJOU").keys(Op.UPSERT, "account") == accounts and back.counts["created"] == len(accounts)
    assert held(agent) == {}

    hide_accounts(bijou, KEPT_ACCOUNTS)
    sage.set_clock(bijou, T0 + minutes(30))
    again = run(agent)
    assert agent.drain("BIJOU").changes(Op.DELETE) == []
    assert held(agent)["account"] == (len(accounts), len(synced["account"]), False)
    assert again.counts["deletions_held"] == len(accounts) + len(contacts)


def test_a_confirmed_deletion_whose_row_came_back_is_not_sent(agent, bijou, synced):
    accounts, _ = hidden_accounts(bijou, synced)
    sage.set_clock(bijou, T0 + minutes(10))
    run(agent)
    agent.drain("BIJOU")
    returning = tuple(sorted(accounts)[:3])
    with agent.checkpoint() as checkpoint:
        checkpoint.confirm_deletions("BIJOU", "account")
    restore_accounts(bijou, returning)

    result = run(agent)
    delivered = agent.drain("BIJOU")

    assert delivered.keys(Op.DELETE, "account") == accounts - set(returning)
    assert delivered.changes(Op.UPSERT) == [] and result.counts["deleted"] == len(accounts) - 3
    assert "account" not in held(agent)


class ConfirmingDuringTheKeyScan:
    """The real reader; the user confirms the held accounts while the run scans the keys."""

    def __init__(self, reader, state_path: Path):
        self.reader, self.state_path = reader, state_path

    def __getattr__(self, name):
        return getattr(self.reader, name)

    def keys(self, entity, spans=None):
        yield from self.reader.keys(entity, spans)
        if entity.value == "account":
            with Checkpoint(self.state_path) as other_process:
                assert other_process.confirm_deletions("BIJOU", "account") is not None


def test_a_confirmation_given_during_a_run_is_left_for_the_next_run_as_the_user_saw_it(agent, bijou, synced):
    accounts, contacts = hidden_accounts(bijou, synced)
    sage.set_clock(bijou, T0 + minutes(10))
    run(agent)
    agent.drain("BIJOU")
    restore_accounts(bijou, tuple(sorted(accounts)[:2]))
    still_gone = accounts - set(sorted(accounts)[:2])
    real = open_sage100(sqlite_connection_string(bijou), delivery_addresses=False)

    @contextmanager
    def source():
        with real() as (connection, reader):
            yield connection, ConfirmingDuringTheKeyScan(reader, agent.state_path)

    with agent.checkpoint() as checkpoint:
        during = sync_dossier("BIJOU", checkpoint=checkpoint, bus=agent.bus, queue=QUEUE, open_source=source,
                              deletion_guard=GUARD)
    assert during.ok and agent.drain("BIJOU").changes() == []
    assert [(hold.entity, hold.held) for hold in during.holds if hold.entity == "account"] == [
        ("account", len(still_gone))]
    assert held(agent)["account"] == (len(accounts), len(synced["account"]), True)

    after = run(agent)

    assert agent.drain("BIJOU").keys(Op.DELETE, "account") == still_gone
    assert after.counts["deleted"] == len(still_gone) and "account" not in held(agent)


def test_deletions_under_the_threshold_go_through_as_before(agent, bijou, synced):
    gone = sorted(synced["contact"])[:4]
    for contact in gone:
        assert sage.delete_row(bijou, "F_CONTACTT", {"CT_No": int(contact)}, at=T0 + minutes(5)) == 1
    sage.set_clock(bijou, T0 + minutes(10))

    result = run(agent)

    assert agent.drain("BIJOU").keys(Op.DELETE, "contact") == set(gone)
    assert result.counts["deleted"] == 4 and result.counts["deletions_held"] == 0 and result.holds == ()
    assert held(agent) == {}


def test_a_whole_small_table_emptied_is_deleted_under_the_default_minimum_of_fifty(agent, bijou, synced):
    hide_accounts(bijou)
    sage.set_clock(bijou, T0 + minutes(10))

    result = run(agent, DeletionGuard())

    delivered = agent.drain("BIJOU")
    assert delivered.keys(Op.DELETE, "account") == synced["account"]
    assert delivered.keys(Op.DELETE, "contact") == synced["contact"] and result.holds == ()


def test_a_realignment_holds_a_mass_deletion_too(agent, bijou, synced):
    accounts, contacts = hidden_accounts(bijou, synced)
    with agent.checkpoint() as checkpoint:
        AgentDossiers(checkpoint).deselect("BIJOU")
        AgentDossiers(checkpoint).select("BIJOU")             # selected again: a realignment
    sage.set_clock(bijou, T0 + minutes(10))

    result = run(agent)
    delivered = agent.drain("BIJOU")

    assert result.realignment and delivered.changes(Op.DELETE) == []
    assert delivered.keys(Op.UPSERT, "account") == set(KEPT_ACCOUNTS)
    assert result.counts["deletions_held"] == len(accounts) + len(contacts)
    assert set(held(agent)) == {"account", "contact"}


def test_the_cloud_records_the_held_deletions_of_a_run(agent, bijou, synced, tmp_path):
    accounts, contacts = hidden_accounts(bijou, synced)
    sage.set_clock(bijou, T0 + minutes(10))
    run(agent)
    [(start, end)] = agent.drain("BIJOU").runs()
    store = StateStore(SqliteTableStore(tmp_path / "cloud.db"))
    store.ensure_tables()
    try:
        book = RunBook(store)
        book.start("BIJOU", start.run_id, realignment=False)
        book.end("BIJOU", end.run_id, agent_counts=end.counts)
        message = store.get_run("BIJOU", end.run_id).message
    finally:
        store.close()
    assert f"suppressions retenues {len(accounts) + len(contacts)}" in message and "supprimés 0" in message


# --- the command line --------------------------------------------------------------------------------
def agent_cli(config: Path, *argv: str) -> int:
    parser = argparse.ArgumentParser(prog="ssm-connector")
    register(parser.add_subparsers(dest="command"))
    args = parser.parse_args(["agent", *argv[:1], "--config", str(config), *argv[1:]])
    return args.handler(args)


def test_the_command_line_reports_held_deletions_and_confirms_them(tmp_path, capsys):
    server = tmp_path / "sage"
    server.mkdir()
    bijou = build_dossier(server, "BIJOU")
    config = tmp_path / "agent.toml"
    config.write_text(f'[agent]\nstate_path = "agent.db"\nserver_odbc = "Driver=SQLite3;Database={server}"\n'
                      'max_delete_fraction = 0.2\nmax_delete_min = 5\n[bus]\npath = "bus.db"\n', encoding="utf-8")
    assert agent_cli(config, "select", "BIJOU") == 0
    assert agent_cli(config, "run-once") == 0
    keys = current_keys(bijou)
    accounts, contacts = hidden_accounts(bijou, keys)
    addresses = keys["delivery_address"] - current_keys(bijou)["delivery_address"]    # gone with their account
    sage.set_clock(bijou, T0 + minutes(10))
    capsys.readouterr()

    assert agent_cli(config, "run-once") == 0
    out = capsys.readouterr().out
    message = (f"BIJOU : {len(accounts)} fiches « Tiers » sur {len(keys['account'])} seraient supprimées dans SSM ; "
               "suppression retenue. Si elle est voulue, lancez `ssm-connector agent confirm-deletions BIJOU account`")
    held = text("sync.count", label=text("sync.agent_count.deletions_held"),
                value=len(accounts) + len(contacts) + len(addresses))
    assert message in out.splitlines() and held in out

    assert agent_cli(config, "state") == 0
    out = capsys.readouterr().out
    assert f"  {message}" in out.splitlines()
    assert agent_cli(config, "state", "--json") == 0
    [state] = json.loads(capsys.readouterr().out)
    assert {h["entity"]: (h["held"], h["records"], h["confirmed_at"]) for h in state["held_deletions"]} == {
        "account": (len(accounts), len(keys["account"]), None),
        "contact": (len(contacts), len(keys["contact"]), None),
        "delivery_address": (len(addresses), len(keys["delivery_address"]), None)}
    assert [h["message"] for h in state["held_deletions"] if h["entity"] == "account"] == [message]
    assert state["runs"][0]["counts"]["deletions_held"] == len(accounts) + len(contacts) + len(addresses)

    assert agent_cli(config, "confirm-deletions", "BIJOU", "product") == 1
    assert "BIJOU n'a aucune suppression retenue de « product »" in capsys.readouterr().err
    assert agent_cli(config, "confirm-deletions", "BIJOU", "tiers") == 2
    assert "« tiers » n'est pas une entité" in capsys.readouterr().err
    assert agent_cli(config, "confirm-deletions", "BIJOU", "account") == 0
    assert (f"BIJOU : la prochaine synchronisation envoie à SSM les {len(accounts)} suppressions retenues de « account »."
            in capsys.readouterr().out)
    assert agent_cli(config, "state") == 0
    assert "confirmé le " in capsys.readouterr().out

    assert agent_cli(config, "run-once") == 0
    bus = LocalBus(str(tmp_path / "bus.db"))
    try:
        sent = drain(bus, "BIJOU")
    finally:
        bus.close()
    [last_start, last_end] = sent.runs()[-1]
    assert {e.key for e in sent.changes(Op.DELETE) if e.run_id == last_end.run_id} == accounts
    assert [e for e in sent.changes(Op.DELETE) if e.run_id != last_end.run_id] == []
    capsys.readouterr()
    assert agent_cli(config, "state", "--json") == 0
    [state] = json.loads(capsys.readouterr().out)
    assert [h["entity"] for h in state["held_deletions"]] == ["contact", "delivery_address"]
