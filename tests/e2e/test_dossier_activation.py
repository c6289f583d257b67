"""A dossier deselected on the Sage server and selected again, through the whole pipeline: the agent's
command line, the local runtime's cycles, the cloud handlers, the status endpoint and SSM."""
from __future__ import annotations

import argparse
import datetime as dt
import io
import json
import urllib.request

from agent.cli import register
from agent.demo_builder import update_row

D = "BIJOU"


def agent_command(config, *argv: str) -> int:
    parser = argparse.ArgumentParser(prog="ssm-connector")
    register(parser.add_subparsers(dest="command"))
    args = parser.parse_args(["agent", argv[0], "--config", str(config), *argv[1:]])
    return args.handler(args)


def agent_state(pipeline, capsys) -> dict:
    capsys.readouterr()
    assert agent_command(pipeline.config_path, "state", "--json", "--dossier", D) == 0
    [state] = json.loads(capsys.readouterr().out)
    return state


def status_of(pipeline) -> dict:
    server = pipeline.runtime.status_server or pipeline.runtime.start_status_server(out=io.StringIO())
    with urllib.request.urlopen(server.url("status", with_key=True), timeout=10) as answer:
        report = json.loads(answer.read().decode("utf-8"))
    [dossier] = [d for d in report["dossiers"] if d["id"] == D]
    return dossier


def test_a_deselected_dossier_shows_inactive_keeps_its_records_and_realigns_when_selected_again(make_pipeline,
                                                                                                 capsys):
    p = make_pipeline()
    assert p.run().ok
    client = p.sage(D, "SELECT CT_Num FROM F_COMPTET WHERE CT_Type = 0 AND CT_Prospect = 0 ORDER BY CT_Num")[0][0]
    account_id = p.ssm_id(D, "account", client)
    accounts_before = p.live("accounts")
    city_before = accounts_before[f"{D}:{client}"]["city"]

    assert agent_command(p.config_path, "deselect", D) == 0
    assert agent_state(p, capsys)["activity"]["announced_at"] is None
    update_row(p.databases[D], "F_COMPTET", {"CT_Num": client}, {"CT_Ville": "Ornans"})
    p.simulator.reset_calls()
    summary = p.run()

    assert summary.ok and summary.agent_results == []
    activity = agent_state(p, capsys)["activity"]
    assert activity["active"] is False and activity["announced_at"] is not None
    assert [(d.id, d.active) for d in summary.dossiers] == [(D, False)]
    status = status_of(p)
    assert (status["active"], status["health"]) == (False, "inactive") and status["deactivated_at"]
    assert "dossier-deactivated" in [entry["event"] for entry in status["journal"]]
    assert p.simulator.call_count(writes_only=True) == 0
    assert p.live("accounts") == accounts_before
    assert p.simulator.record("accounts", account_id)["city"] == city_before != "Ornans"

    assert p.run().ok
    assert p.simulator.record("accounts", account_id)["city"] == city_before

    capsys.readouterr()
    assert agent_command(p.config_path, "select", D) == 0
    assert "sélectionné de nouveau" in capsys.readouterr().out
    summary = p.run()

    assert summary.ok
    [result] = summary.agent_results
    assert result.realignment
    assert p.simulator.record("accounts", account_id)["city"] == "Ornans"
    assert p.live("accounts").keys() == accounts_before.keys()
    status = status_of(p)
    assert (status["active"], status["health"]) == (True, "ok")
    assert not status["needs_realignment"]
    assert dt.datetime.fromisoformat(status["last_realigned_at"]) >= dt.datetime.fromisoformat(status["activated_at"])
    assert status["runs"][0]["realignment"] and status["runs"][0]["state"] == "succeeded"
    assert "dossier-activated" in [entry["event"] for entry in status["journal"]]
