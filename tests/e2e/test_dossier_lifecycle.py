"""A group of three dossiers through the whole local pipeline (Sage databases through pyodbc, the
agent and its command line, the bus, the cloud handlers, the SSM simulator over HTTP): one
deactivated mid-stream and reactivated, the agent installed again, a database restored to an older
copy, and a database presented under a known dossier's name that is another company."""
from __future__ import annotations

import io
import sqlite3
from pathlib import Path

import pytest

from agent.checkpoint import Checkpoint
from agent.demo_builder import build_demo_dossier, company_numbers, update_row
from agent.dossiers import AgentDossiers
from local.simulator.user import SsmUserSession
from shared.lifecycle import State
from shared.messages import text
from shared.sync.binder import external_id
from tests.e2e.conftest import assert_never_duplicated
from tests.e2e.test_dossier_activation import agent_command

COMPANIES = ("BIJOU", "ATELIER", "ORFEVRE")
BRANCHES = {"BIJOU": "Siège", "ATELIER": "Agence de Lyon", "ORFEVRE": "Agence de Nice"}
OFF = "ATELIER"
ON = ("BIJOU", "ORFEVRE")


def three_dossiers(make_pipeline):
    branch_ids: dict[str, int] = {}

    def add_branches(simulator):
        for name in ("Agence de Lyon", "Agence de Nice"):
            branch_ids[name] = simulator.add_record("branches", {"descriptionFR": name, "descriptionEN": name})
    p = make_pipeline(companies=COMPANIES, before_start=add_branches,
                      dossier_settings={d: {"ssm_branch": b} for d, b in BRANCHES.items()})
    p.branch_ids = branch_ids
    assert p.run().ok
    return p


def records_of(p, dossier: str, resource: str = "accounts") -> dict[str, dict]:
    return {k: v for k, v in p.live(resource).items() if k.startswith(f"{dossier}:")}


def rep_email(p, dossier: str) -> str:
    row = p.sage(dossier, "SELECT CO_EMail FROM F_COLLABORATEUR WHERE CO_EMail IS NOT NULL ORDER BY CO_No")[0]
    return row["CO_EMail"].strip()


def session(p, dossier: str) -> SsmUserSession:
    email = rep_email(p, dossier)
    return SsmUserSession(p.simulator.base_url, *p.simulator.user_credentials(email), email=email)


def first_client(p, dossier: str) -> tuple[str, str, int]:
    key, city = p.sage(dossier, "SELECT CT_Num, CT_Ville FROM F_COMPTET WHERE CT_Type = 0 AND CT_Prospect = 0"
                                " ORDER BY CT_Num")[0]
    return key, city, p.ssm_id(dossier, "account", key)


def first_prospect(p, dossier: str) -> tuple[str, int]:
    key = p.sage(dossier, "SELECT CT_Num FROM F_COMPTET WHERE CT_Type = 0 AND CT_Prospect = 1 AND CT_Sommeil = 0"
                          " ORDER BY CT_Num")[0][0]
    return key, p.ssm_id(dossier, "account", key)


def sage_value(p, dossier: str, column: str, key: str):
    return p.sage(dossier, f"SELECT {column} FROM F_COMPTET WHERE CT_Num = ?", (key,))[0][0]


def created_from_ssm(p, dossier: str) -> list[str]:
    return [row[0] for row in p.sage(dossier, "SELECT CT_Intitule FROM F_COMPTET WHERE CT_Num LIKE 'SSM%'"
                                              " ORDER BY CT_Num")]


def change_both_sides(p, dossier: str, tag: str) -> dict:
    """In Sage a client's city and a prospect's name; in SSM (the dossier's rep) the same prospect's
    name, phone and comment, a new contact of that prospect, and a new prospect in the dossier's branch."""
    client, city, client_id = first_client(p, dossier)
    prospect, prospect_id = first_prospect(p, dossier)
    update_row(p.databases[dossier], "F_COMPTET", {"CT_Num": client}, {"CT_Ville": f"Ville {tag}"})
    update_row(p.databases[dossier], "F_COMPTET", {"CT_Num": prospect}, {"CT_Intitule": f"Nom Sage {tag}"})
    branch = p.branch_ids.get(BRANCHES[dossier])
    with session(p, dossier) as rep:
        rep.edit_account(prospect_id, name=f"Nom SSM {tag}", phone="04 78 00 00 00", comment=f"Rappeler {tag}")
        new_id = rep.create_account(f"Nouveau {tag}", **({"branchId": branch} if branch else {}))
        contact_id = rep.create_contact(prospect_id, first_name="Inès", last_name=f"Garnier {tag}",
                                        email=f"ines.{tag}@exemple.fr")
    return {"contact_id": contact_id, "email": f"ines.{tag}@exemple.fr","client": client, "city": city, "client_id": client_id, "prospect": prospect,
            "prospect_id": prospect_id, "new_id": new_id, "tag": tag}


def status_of(p, dossier: str) -> dict:
    import json
    import urllib.request

    server = p.runtime.status_server or p.runtime.start_status_server(out=io.StringIO())
    with urllib.request.urlopen(server.url("status", with_key=True), timeout=10) as answer:
        report = json.loads(answer.read().decode("utf-8"))
    return next(d for d in report["dossiers"] if d["id"] == dossier)


def applied_to_both(p, dossier: str, change: dict) -> None:
    """The change of `change_both_sides` reached both sides as the two-way rules say."""
    tag = change["tag"]
    assert p.simulator.record("accounts", change["client_id"])["city"] == f"Ville {tag}"
    prospect = p.simulator.record("accounts", change["prospect_id"])
    assert (prospect["name"], prospect["phone"], prospect["comment"]) == (f"Nom Sage {tag}", "04 78 00 00 00",
                                                                          f"Rappeler {tag}")
    assert sage_value(p, dossier, "CT_Intitule", change["prospect"]) == f"Nom Sage {tag}"      # Sage wins
    assert sage_value(p, dossier, "CT_Telephone", change["prospect"]) == "04 78 00 00 00"      # SSM's own change
    assert f"Nouveau {tag}" in created_from_ssm(p, dossier)
    [new] = p.sage(dossier, "SELECT CT_Num FROM F_COMPTET WHERE CT_Intitule = ?", (f"Nouveau {tag}",))
    assert p.simulator.record("accounts", change["new_id"])["extId"] == external_id(dossier, new[0])
    [contact] = p.sage(dossier, "SELECT CT_Num, CT_No FROM F_CONTACTT WHERE CT_EMail = ?", (change["email"],))
    assert contact["CT_Num"] == change["prospect"]
    assert p.simulator.record("contacts", change["contact_id"])["extId"] == external_id(dossier, str(contact["CT_No"]))


def deactivated_mid_stream(p) -> tuple[dict, dict]:
    """ATELIER deselected after its first sync (the next cycle tells the cloud), then changes on both
    sides of all three and two cycles; returns ATELIER's SSM accounts before, and every dossier's change."""
    before = records_of(p, OFF)
    assert agent_command(p.config_path, "deselect", OFF) == 0
    told = p.run()
    assert told.ok and OFF not in {r.dossier for r in told.agent_results}
    changes = {d: change_both_sides(p, d, d.lower()) for d in COMPANIES}
    first, second = p.run(), p.run()
    assert first.ok and second.ok, first.render() + second.render()
    assert OFF not in {r.dossier for r in first.agent_results + second.agent_results}
    return before, changes


def test_a_dossier_deactivated_mid_stream_moves_nothing_either_way_and_the_others_go_on(make_pipeline):
    p = three_dossiers(make_pipeline)

    before, changes = deactivated_mid_stream(p)

    change = changes[OFF]
    after = records_of(p, OFF)
    assert after.keys() == before.keys()                                      # its records stay in SSM
    assert p.simulator.record("accounts", change["client_id"])["city"] == change["city"]     # Sage → SSM: nothing
    assert sage_value(p, OFF, "CT_Telephone", change["prospect"]) != "04 78 00 00 00"     # SSM → Sage: nothing
    assert created_from_ssm(p, OFF) == [] and p.simulator.record("accounts", change["new_id"])["extId"] is None
    assert p.sage(OFF, "SELECT COUNT(*) FROM F_CONTACTT WHERE CT_EMail = ?", (change["email"],))[0][0] == 0
    assert p.runtime.bus.pending_count(p.settings.bus.commands_queue, OFF) == 0   # no command produced for it
    for dossier in ON:
        applied_to_both(p, dossier, changes[dossier])
    status = status_of(p, OFF)
    assert (status["state"], status["active"], status["health"]) == ("inactive", False, "inactive")
    assert [status_of(p, d)["state"] for d in ON] == ["active", "active"]
    assert_never_duplicated(p)


def test_reactivated_after_changes_on_both_sides_sage_wins_mapped_fields_and_ssm_keeps_its_own(make_pipeline):
    p = three_dossiers(make_pipeline)
    _, changes = deactivated_mid_stream(p)
    others_before = {d: records_of(p, d) for d in ON}

    assert agent_command(p.config_path, "select", OFF) == 0
    realigning = p.run()
    assert realigning.ok, realigning.render()
    [result] = [r for r in realigning.agent_results if r.dossier == OFF]
    assert result.realignment and result.reasons[0] == text("agent.reason.reselected")
    assert status_of(p, OFF)["state"] == "active" and status_of(p, OFF)["last_realigned_at"]
    assert p.run().ok                                          # what waited in SSM goes to Sage now

    applied_to_both(p, OFF, changes[OFF])
    assert {d: records_of(p, d).keys() for d in ON} == {d: others_before[d].keys() for d in ON}
    assert_never_duplicated(p)


def reinstall_agent(p) -> None:
    """The agent's state file deleted, as a new installation of the agent on the Sage server leaves it."""
    p.runtime.checkpoint.close()
    state = Path(p.settings.agent.state_path)
    for suffix in ("", "-wal", "-shm", ".lock"):
        Path(f"{state}{suffix}").unlink(missing_ok=True)
    p.runtime.checkpoint = Checkpoint(state)


@pytest.fixture
def cloud_over_http(monkeypatch):
    """The agent's command line asks the cloud over HTTP (the local runtime serves the Function App's routes)."""
    def use(p) -> None:
        server = p.runtime.status_server or p.runtime.start_status_server(out=io.StringIO())
        monkeypatch.setenv("SSMCONN__AGENT__CLOUD_URL", server.url("").rstrip("/"))
        monkeypatch.setenv("SSMCONN__AGENT__CLOUD_KEY", server.function_key)
    return use


def test_an_agent_installed_again_offers_the_groups_dossiers_runs_nothing_before_the_choice_then_realigns(
        make_pipeline, cloud_over_http, capsys):
    p = three_dossiers(make_pipeline)
    cloud_over_http(p)
    assert agent_command(p.config_path, "deselect", "ORFEVRE") == 0
    assert p.run().ok
    accounts_before = p.live("accounts")
    client, _, client_id = first_client(p, "BIJOU")
    update_row(p.databases["BIJOU"], "F_COMPTET", {"CT_Num": client}, {"CT_Ville": "Pontarlier"})

    reinstall_agent(p)
    p.simulator.reset_calls()
    refused = p.run()

    assert not refused.ok and refused.agent_results == []
    assert "aucun état local" in refused.refusal and "ATELIER, BIJOU, ORFEVRE" in refused.refusal
    assert p.simulator.call_count(writes_only=True) == 0
    capsys.readouterr()
    assert agent_command(p.config_path, "run-once") == 1
    assert "Rien n'est synchronisé avant votre choix" in capsys.readouterr().err

    assert agent_command(p.config_path, "databases") == 0
    listing = capsys.readouterr().out
    rows = {line.split()[0]: line for line in listing.splitlines()[1:] if line.split()[0] in COMPANIES}
    assert set(rows) == set(COMPANIES)
    linked = sum(1 for link in p.runtime.store.list_links("BIJOU") if not link.deleted and link.ssm_id)
    assert "à choisir" in rows["BIJOU"] and f"actif, {linked} fiche(s), dernier cycle 20" in rows["BIJOU"]
    assert "désactivé, " in rows["ORFEVRE"]
    assert "réactivez-les ou ajoutez-en" in listing

    assert agent_command(p.config_path, "select", "BIJOU") == 0
    assert "BIJOU repris" in capsys.readouterr().out
    assert agent_command(p.config_path, "select", "ORFEVRE") == 0
    chosen = p.run()

    results = {r.dossier: r for r in chosen.agent_results}
    assert results["BIJOU"].ok and results["BIJOU"].realignment and results["ORFEVRE"].realignment
    assert not results[OFF].ok and "pas été choisi sur cet agent" in results[OFF].error   # not chosen: not run
    assert p.simulator.record("accounts", client_id)["city"] == "Pontarlier"
    assert status_of(p, "ORFEVRE")["state"] == "active"

    assert agent_command(p.config_path, "select", OFF) == 0
    assert p.run().ok
    assert p.live("accounts").keys() == accounts_before.keys()
    assert_never_duplicated(p)
    with Checkpoint(p.settings.agent.state_path) as checkpoint:
        assert {d: AgentDossiers(checkpoint, p.settings).state(d) for d in COMPANIES} == dict.fromkeys(COMPANIES, State.ACTIVE)


def copy_database(source: Path, target: Path) -> None:
    with sqlite3.connect(source) as src, sqlite3.connect(target) as dst:
        src.backup(dst)


def test_a_database_restored_to_an_older_copy_is_detected_and_realigned_without_duplicates(make_pipeline, tmp_path):
    p = three_dossiers(make_pipeline)
    backup = tmp_path / "ORFEVRE-backup.db"
    copy_database(p.databases["ORFEVRE"], backup)
    client, city, client_id = first_client(p, "ORFEVRE")
    update_row(p.databases["ORFEVRE"], "F_COMPTET", {"CT_Num": client}, {"CT_Ville": "Ornans"})
    assert p.run().ok
    assert p.simulator.record("accounts", client_id)["city"] == "Ornans"
    accounts_before = p.live("accounts")

    copy_database(backup, p.databases["ORFEVRE"])              # restored on the server: a new creation date
    with sqlite3.connect(p.databases["ORFEVRE"]) as restored:
        restored.execute("UPDATE EMU_SERVER SET ES_CreateDate = '2026-06-01 08:00:00.000'")
    summary = p.run()

    assert summary.ok, summary.render()
    results = {r.dossier: r for r in summary.agent_results}
    assert results["ORFEVRE"].realignment and any("restaurée" in reason for reason in results["ORFEVRE"].reasons)
    assert not results["BIJOU"].realignment and not results["ATELIER"].realignment
    assert p.simulator.record("accounts", client_id)["city"] == city                 # Sage's restored value
    assert p.live("accounts").keys() == accounts_before.keys()
    assert_never_duplicated(p)
    cloud = p.runtime.store.get_dossier("ORFEVRE")
    assert cloud.last_realigned_at is not None and not cloud.needs_realignment
    assert cloud.identity["created_at"].startswith("2026-06-01")
    with Checkpoint(p.settings.agent.state_path) as checkpoint:
        assert AgentDossiers(checkpoint, p.settings).state("ORFEVRE") is State.ACTIVE
    assert p.run().ok and not any(r.realignment for r in p.run().agent_results)


def another_company_as(p, dossier: str, tmp_path: Path) -> str:
    """The database of `dossier` replaced by another company's, under the same database name."""
    other = tmp_path / "ECRIN.db"
    build_demo_dossier(other, seed=9, company="ECRIN", database_name=dossier)
    copy_database(other, p.databases[dossier])
    return company_numbers("ECRIN")[0]


def test_a_database_of_another_company_under_a_known_dossiers_name_is_refused_in_french(make_pipeline, tmp_path,
                                                                                         capsys):
    p = three_dossiers(make_pipeline)
    atelier_before = records_of(p, OFF)
    atelier_siret = company_numbers(OFF)[0]
    other_siret = another_company_as(p, OFF, tmp_path)

    summary = p.run()

    results = {r.dossier: r for r in summary.agent_results}
    assert results["BIJOU"].ok and results["ORFEVRE"].ok and not results[OFF].ok
    assert (f"La base du dossier {OFF} est celle de ECRIN SA (SIRET {other_siret}), alors que le dossier "
            f"synchronise {OFF} SA (SIRET {atelier_siret}) : ce n'est pas la même société") in results[OFF].error
    assert records_of(p, OFF) == atelier_before                             # nothing of ECRIN reached SSM

    reinstall_agent(p)
    capsys.readouterr()
    assert agent_command(p.config_path, "select", OFF) == 1
    refusal = capsys.readouterr().err
    assert f"La base « {OFF} » est celle de ECRIN SA (SIRET {other_siret})" in refusal
    assert f"le dossier {OFF} que le groupe connaît est celui de {OFF} SA (SIRET {atelier_siret})" in refusal
    assert "n'est pas la même société" in refusal
    assert agent_command(p.config_path, "select", "BIJOU") == 0
    assert agent_command(p.config_path, "select", "ORFEVRE") == 0

    after = p.run()

    assert {r.dossier: r.ok for r in after.agent_results} == {"BIJOU": True, "ORFEVRE": True, OFF: False}
    assert records_of(p, OFF) == atelier_before
    with Checkpoint(p.settings.agent.state_path) as checkpoint:
        assert AgentDossiers(checkpoint, p.settings).state(OFF) is State.SELECTED and not AgentDossiers(checkpoint, p.settings).chosen(OFF)
    assert_never_duplicated(p)


def test_while_a_dossier_realigns_ssm_changes_wait_then_reach_sage_once_it_is_active(make_pipeline):
    from shared.lifecycle import Event, cloud_changes
    from shared.state.records import utcnow

    p = three_dossiers(make_pipeline)
    prospect, prospect_id = first_prospect(p, "ORFEVRE")
    cloud = p.runtime.store.get_dossier("ORFEVRE")           # the cloud got a restored database's run-start
    p.runtime.store.upsert_dossier(cloud.model_copy(update=cloud_changes(cloud, Event.RESTORE, at=utcnow())))
    with Checkpoint(p.settings.agent.state_path) as checkpoint:
        AgentDossiers(checkpoint, p.settings).restored("ORFEVRE")        # as the agent's detection found it
    with session(p, "ORFEVRE") as rep:
        rep.edit_account(prospect_id, phone="04 93 00 00 00")

    held = p.runtime.pass_ssm_changes()

    assert "ORFEVRE" not in held.commands and held.waiting >= 1
    assert p.runtime.bus.pending_count(p.settings.bus.commands_queue, "ORFEVRE") == 0
    realigned = p.run()
    assert realigned.ok and [r.dossier for r in realigned.agent_results if r.realignment] == ["ORFEVRE"]
    assert sage_value(p, "ORFEVRE", "CT_Telephone", prospect) != "04 93 00 00 00"
    assert status_of(p, "ORFEVRE")["state"] == "active"

    assert p.run().ok
    assert sage_value(p, "ORFEVRE", "CT_Telephone", prospect) == "04 93 00 00 00"
    assert p.simulator.record("accounts", prospect_id)["phone"] == "04 93 00 00 00"
    assert_never_duplicated(p)
