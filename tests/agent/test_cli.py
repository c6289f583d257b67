"""`ssm-connector agent ...`: handlers run in-process with a temporary TOML configuration, a folder
of demo Sage databases standing for the server, and the local bus; output and state are checked."""
from __future__ import annotations

import argparse
import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from agent import demo_builder as sage
from agent.checkpoint import Checkpoint
from agent.cli import register
from shared.bus.local_bus import LocalBus
from shared.envelope import EnvelopeKind, Op
from shared.messages import text

from agent_support import T0, build_dossier, drain, minutes

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def site(tmp_path):
    """A Sage server (a folder of company databases) and an agent configuration."""
    server = tmp_path / "sage"
    server.mkdir()
    build_dossier(server, "BIJOU")
    build_dossier(server, "ORFEVRE", seed=2)
    sqlite3.connect(server / "notes.db").execute("CREATE TABLE notes (text TEXT)").connection.close()
    (server / "readme.txt").write_text("not a database")
    config = tmp_path / "agent.toml"
    config.write_text(f"""
[agent]
state_path = "state/agent.db"
server_odbc = "Driver=SQLite3;Database={server}"
interval_s = 3600

[bus]
path = "bus.db"

[[dossiers]]
id = "ARCHIVE"
name = "Archives 2019"
odbc = "Driver=SQLite3;Database={tmp_path / 'archive.db'}"
active = false
""", encoding="utf-8")
    return tmp_path, config


def agent(config: Path, *argv: str) -> int:
    parser = argparse.ArgumentParser(prog="ssm-connector")
    register(parser.add_subparsers(dest="command"))
    args = parser.parse_args(["agent", *argv[:1], "--config", str(config), *argv[1:]])
    return args.handler(args)


def delivered(folder: Path, dossier: str):
    bus = LocalBus(str(folder / "bus.db"))
    try:
        return drain(bus, dossier)
    finally:
        bus.close()


def test_databases_lists_the_company_databases_of_the_server_and_the_configuration(site, capsys):
    folder, config = site
    assert agent(config, "databases") == 0
    lines = capsys.readouterr().out.splitlines()

    assert lines[0].split() == ["CODE", "SOCIÉTÉ", "ORIGINE", "ÉTAT", "DERNIER", "CYCLE", "DANS", "LE", "GROUPE"]
    rows = {line.split()[0]: line for line in lines[1:]}
    assert set(rows) == {"ARCHIVE", "BIJOU", "ORFEVRE"}
    assert "BIJOU SA" in rows["BIJOU"] and " serveur " in rows["BIJOU"] and " non sélectionné " in rows["BIJOU"]
    assert " configuration " in rows["ARCHIVE"] and " non sélectionné " in rows["ARCHIVE"]


def test_select_run_once_and_state(site, capsys):
    folder, config = site
    assert agent(config, "select", "BIJOU") == 0
    assert "BIJOU sélectionné : son premier cycle lit tout le dossier." in capsys.readouterr().out
    assert agent(config, "databases") == 0
    assert " sélectionné, premier chargement à venir " in \
        [l for l in capsys.readouterr().out.splitlines() if l.startswith("BIJOU")][0]

    assert agent(config, "run-once") == 0
    out = capsys.readouterr().out
    assert "BIJOU : synchronisation " in out and " réalignement " in out and text("sync.agent_count.created") + " " in out
    assert "réalignement car première synchronisation de ce dossier" in out
    assert "1 dossier(s) synchronisé(s), 0 en échec." in out and "ORFEVRE" not in out
    sent = delivered(folder, "BIJOU")
    assert sent.envelopes[0].op is Op.RUN_START and sent.envelopes[-1].op is Op.RUN_END
    assert delivered(folder, "ORFEVRE").messages == []

    assert agent(config, "state") == 0
    out = capsys.readouterr().out
    assert "BIJOU (sélectionné)" in out and "dernier succès : 20" in out
    assert "account         relevé 2024-" in out and text("agent.cli.run_state.succeeded") in out

    assert agent(config, "state", "--json") == 0
    [bijou] = [d for d in json.loads(capsys.readouterr().out) if d["dossier"] == "BIJOU"]
    assert bijou["selected"] and bijou["pending"] is None and bijou["last_error"] is None
    assert bijou["shadow"]["account"]["records"] == len(sent.keys(Op.UPSERT, "account"))
    assert bijou["runs"][0]["counts"]["created"] == len(sent.changes(Op.UPSERT))
    assert (folder / "state" / "agent.db").exists()


def test_runs_are_logged_as_json_lines_with_dossier_and_run_id(site):
    folder, config = site
    config.write_text(config.read_text(encoding="utf-8").replace(
        'interval_s = 3600', 'interval_s = 3600\nlog_path = "logs/agent.log"'), encoding="utf-8")
    agent(config, "select", "BIJOU")
    assert agent(config, "run-once") == 0
    sent = delivered(folder, "BIJOU")

    lines = [json.loads(line) for line in (folder / "logs" / "agent.log").read_text(encoding="utf-8").splitlines()]
    [run_line] = [line for line in lines if line.get("dossier") == "BIJOU" and line["message"].startswith("run ")]
    assert run_line["run_id"] == sent.envelopes[0].run_id and run_line["level"] == "INFO"
    assert f"created={len(sent.changes(Op.UPSERT))}" in run_line["message"]


def test_selecting_unknown_or_inactive_databases_is_refused(site, capsys):
    folder, config = site
    assert agent(config, "select", "INCONNU") == 2
    assert "« INCONNU » n'est pas une base de société que l'agent voit" in capsys.readouterr().err
    assert agent(config, "select", "notes") == 2
    assert agent(config, "select", "ARCHIVE") == 2
    assert "désactivé dans la configuration" in capsys.readouterr().err
    assert agent(config, "run-once", "--dossier", "ORFEVRE") == 2
    assert "n'est pas sélectionné" in capsys.readouterr().err
    assert agent(config, "run-once") == 0
    assert "Aucun dossier n'est sélectionné" in capsys.readouterr().out


def test_a_dossier_selected_again_realigns_and_a_deselected_one_is_left_alone(site, capsys):
    folder, config = site
    agent(config, "select", "BIJOU")
    agent(config, "run-once")
    delivered(folder, "BIJOU")
    assert agent(config, "deselect", "BIJOU") == 0
    assert "BIJOU désactivé : plus rien n'est synchronisé" in capsys.readouterr().out

    assert agent(config, "run-once") == 0
    assert [(e.kind, e.op) for e in delivered(folder, "BIJOU").envelopes] == [(EnvelopeKind.DOSSIER_STATE,
                                                                               Op.DEACTIVATE)]
    assert agent(config, "select", "BIJOU") == 0
    assert "BIJOU réactivé : le cloud en est averti au prochain cycle, qui réaligne" in capsys.readouterr().out
    assert agent(config, "state") == 0
    assert "BIJOU (sélectionné, prochaine synchronisation : réalignement)" in capsys.readouterr().out

    assert agent(config, "run-once", "--dossier", "BIJOU") == 0
    assert "réalignement car le dossier est de nouveau sélectionné après une pause" in capsys.readouterr().out
    notice, start, *_ = delivered(folder, "BIJOU").envelopes
    assert notice.op is Op.ACTIVATE and start.record["realignment"] is True and start.record["cause"] == "reactivated"
    assert start.record["identity"]["company_name"] == "BIJOU SA"


def test_a_dossier_that_cannot_be_read_fails_alone_and_its_error_shows_in_state(site, capsys):
    folder, config = site
    agent(config, "select", "BIJOU")
    agent(config, "select", "ORFEVRE")
    (folder / "sage" / "ORFEVRE.db").unlink()
    (folder / "sage" / "ORFEVRE.db").mkdir()
    capsys.readouterr()

    assert agent(config, "run-once") == 1
    out = capsys.readouterr().out
    assert "ORFEVRE : ÉCHEC : " in out and "BIJOU : synchronisation " in out and "1 dossier(s) synchronisé(s), 1 en échec." in out

    assert agent(config, "state") == 0
    out = capsys.readouterr().out
    orfevre = out.split("ORFEVRE (sélectionné)")[1]
    assert "dernière erreur :" in orfevre and "dernier succès : jamais" in orfevre
    assert delivered(folder, "BIJOU").messages


def test_run_repeats_on_the_interval(site, capsys):
    folder, config = site
    agent(config, "select", "BIJOU")
    path = folder / "sage" / "BIJOU.db"
    assert agent(config, "run", "--interval", "0.01", "--cycles", "1") == 0
    sage.update_row(path, "F_COMPTET", {"CT_Num": "RUBIS"}, {"CT_Ville": "Ornans"}, at=T0 + minutes(5))
    sage.set_clock(path, T0 + minutes(10))

    assert agent(config, "run", "--interval", "0.01", "--cycles", "2") == 0

    out = capsys.readouterr().out
    assert out.count("cycle 1 : 1 dossier(s) synchronisé(s), 0 en échec") == 2 and "cycle 2 :" in out
    assert "agent arrêté" in out
    sent = delivered(folder, "BIJOU")
    assert len(sent.runs()) == 3
    assert [(e.entity, e.key) for e in sent.changes() if e.run_id == sent.runs()[1][0].run_id] == [("account", "RUBIS")]


def test_run_stops_cleanly_on_sigterm(site):
    folder, config = site
    assert agent(config, "select", "BIJOU") == 0
    script = ("import argparse, sys\n"
              "from agent.cli import register\n"
              "parser = argparse.ArgumentParser()\n"
              "register(parser.add_subparsers())\n"
              f"args = parser.parse_args(['agent', 'run', '--config', {str(config)!r}, '--interval', '600'])\n"
              "sys.exit(args.handler(args))\n")
    process = subprocess.Popen([sys.executable, "-u", "-c", script], cwd=ROOT, stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True, env={**os.environ, "PYTHONPATH": str(ROOT)})
    try:
        lines = []
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            line = process.stdout.readline()
            lines.append(line)
            if line.startswith("cycle 1 :") or not line:
                break
        assert lines[-1].startswith("cycle 1 : 1 dossier(s) synchronisé(s)"), "".join(lines) + process.stderr.read()
        process.send_signal(signal.SIGTERM)
        out, err = process.communicate(timeout=30)
    finally:
        if process.poll() is None:
            process.kill()
    assert process.returncode == 0, err
    assert "arrêt après le dossier en cours (SIGTERM)" in out and "agent arrêté" in out
    with Checkpoint(folder / "state" / "agent.db") as checkpoint:
        assert checkpoint.pending("BIJOU") is None
        assert [run.state for run in checkpoint.runs("BIJOU")] == ["succeeded"]


def test_only_one_agent_process_runs_at_a_time(site, capsys):
    folder, config = site
    agent(config, "select", "BIJOU")
    with Checkpoint(folder / "state" / "agent.db") as other_process:
        with other_process.exclusive():
            assert agent(config, "run-once") == 1
            assert "Un autre processus de l'agent synchronise déjà" in capsys.readouterr().err
    assert delivered(folder, "BIJOU").messages == []
    assert agent(config, "run-once") == 0
    assert delivered(folder, "BIJOU").messages


def test_a_configured_dossier_runs_without_select_and_realigns_when_reactivated(tmp_path, capsys):
    path = build_dossier(tmp_path, "BIJOU")
    config = tmp_path / "agent.toml"

    def configure(active: bool) -> None:
        config.write_text(f'[agent]\nstate_path = "agent.db"\n[bus]\npath = "bus.db"\n'
                          f'[[dossiers]]\nid = "BIJOU"\nodbc = "Driver=SQLite3;Database={path}"\n'
                          f'active = {str(active).lower()}\n', encoding="utf-8")

    configure(True)
    assert agent(config, "run-once") == 0
    assert delivered(tmp_path, "BIJOU").runs()[0][0].record["realignment"] is True
    configure(False)
    assert agent(config, "run-once") == 0
    assert "Aucun dossier n'est sélectionné" in capsys.readouterr().out
    assert agent(config, "run-once", "--dossier", "BIJOU") == 2
    configure(True)
    capsys.readouterr()

    assert agent(config, "run-once") == 0
    [(start, end)] = delivered(tmp_path, "BIJOU").runs()
    assert start.record["realignment"] is True and start.record["cause"] == "reactivated" and end.counts["resent"] > 0


def test_between_cycles_the_commands_of_selected_dossiers_are_applied_at_once(site):
    from agent.cli import apply_waiting_commands
    from shared.bus.protocol import OutgoingMessage
    from shared.config import load_settings
    from shared.envelope import Envelope, EnvelopeBatch

    folder, config = site
    agent(config, "select", "BIJOU")
    settings = load_settings(config)
    assert apply_waiting_commands(settings) == {}
    assert agent(config, "run-once") == 0                 # its first load done: SSM → Sage goes through

    bus = LocalBus(folder / "bus.db")
    for dossier in ("ORFEVRE", "BIJOU"):                  # ORFEVRE is not selected on this server
        command = Envelope(kind=EnvelopeKind.COMMAND, dossier=dossier, run_id="cmd-1", entity="account",
                           op=Op.CREATE_PROSPECT, key="ssm:1", record={"ssm_id": 1, "fields": {"name": "Léa"}})
        batch = EnvelopeBatch(dossier=dossier, envelopes=(command,))
        bus.send(settings.bus.commands_queue, [OutgoingMessage(body=batch.to_bytes(), message_id=batch.message_id,
                                                               session_id=dossier)])
    bus.close()

    assert apply_waiting_commands(settings) == {"BIJOU": 1}
    for dossier, created in (("BIJOU", [("Léa",)]), ("ORFEVRE", [])):
        assert sqlite3.connect(folder / "sage" / f"{dossier}.db").execute(
            "SELECT CT_Intitule FROM F_COMPTET WHERE CT_Num LIKE 'SSM%'").fetchall() == created
    bus = LocalBus(folder / "bus.db")
    assert bus.pending_count(settings.bus.commands_queue, "ORFEVRE") == 1       # waits for its dossier
    assert bus.pending_count(settings.bus.changes_queue, "BIJOU") >= 1           # the result went to the cloud
    bus.close()


def test_selecting_while_the_groups_dossiers_cannot_be_read_is_refused_in_french(site, capsys, monkeypatch):
    from local.demo import free_port

    folder, config = site
    monkeypatch.setenv("SSMCONN__AGENT__CLOUD_URL", f"http://127.0.0.1:{free_port()}/api")   # nothing listens

    assert agent(config, "select", "BIJOU") == 1
    assert "Les dossiers déjà connus du groupe n'ont pas pu être lus" in capsys.readouterr().err
    config.write_text(config.read_text(encoding="utf-8") + f"""
[[dossiers]]
id = "BIJOU"
odbc = "Driver=SQLite3;Database={folder / 'sage' / 'BIJOU.db'}"
""", encoding="utf-8")
    assert agent(config, "run-once") == 1                  # a new agent runs nothing it could not check
    assert "rien n'est synchronisé avant que l'agent puisse les consulter" in capsys.readouterr().err
    assert delivered(folder, "BIJOU").messages == []


def test_history_moves_the_window_of_documents_back_and_the_next_run_sends_the_older_ones(site, capsys):
    folder, config = site
    assert agent(config, "select", "BIJOU") == 0
    assert agent(config, "history", "BIJOU") == 0
    assert "la fenêtre d'historique sera fixée au premier cycle" in capsys.readouterr().out
    assert agent(config, "run-once") == 0
    first = delivered(folder, "BIJOU")
    assert agent(config, "history", "BIJOU") == 0
    assert "documents envoyés à SSM depuis le 2024-01-01" in capsys.readouterr().out   # P_DOSSIER, T0 in 2025
    dates = {(e.entity, e.key): e.record["date"] for e in first.changes(Op.UPSERT)
             if e.entity in ("quote", "order", "invoice")}
    assert dates and all(day is None or day >= "2024-01-01" for day in dates.values())

    assert agent(config, "history", "BIJOU", "--from", "2024-06-01") == 1      # the window only moves back
    assert "ne recule que vers des dates plus anciennes" in capsys.readouterr().err
    assert agent(config, "history", "BIJOU", "--from", "hier") == 2
    assert agent(config, "history", "BIJOU", "--from", "2020-01-01") == 0
    assert "datés du 2020-01-01 ou après sont désormais envoyés" in capsys.readouterr().out
    sage.set_clock(folder / "sage" / "BIJOU.db", T0 + minutes(10))
    assert agent(config, "run-once") == 0
    older = delivered(folder, "BIJOU").changes(Op.UPSERT)

    assert older and all(e.entity in ("quote", "order", "invoice") and e.record["date"] < "2024-01-01"
                         and (e.entity, e.key) not in dates for e in older)
