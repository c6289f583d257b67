"""`ssm-connector check-tenant` and `ssm-connector users`, run through `local.cli.main` with a TOML
configuration pointing at the SSM simulator and a SQLite state store; exit codes, the JSON output's
codes, the simulator's records and the state store are checked."""
from __future__ import annotations

import json
from pathlib import Path

import httpx

from local.cli import main
from shared.state.records import IncidentState
from shared.state.repository import StateStore
from shared.state.sqlite_store import SqliteTableStore
from shared.sync.binder import Binder


def write_config(folder: Path, sim, *, dossiers=("BIJOU",), **ssm) -> Path:
    values = {"base_url": sim.base_url, "public_key": sim.public_key, "private_key": sim.private_key,
              "admin_user_email": sim.admin_email, "rate_limit_per_s": 13, "max_retries": 1, **ssm}
    lines = ['group = "bijou"', "", "[ssm]"]
    lines += [f"{name} = {json.dumps(value)}" for name, value in values.items() if value is not None]
    lines += ["", "[state]", 'path = "state.db"']
    for dossier in dossiers:
        lines += ["", "[[dossiers]]", f'id = "{dossier}"', f'name = "Société {dossier}"',
                  f'odbc = "Driver=SQLite3;Database={dossier}.db"']
    path = folder / "config.toml"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def open_store(folder: Path) -> StateStore:
    store = StateStore(SqliteTableStore(folder / "state.db"))
    store.ensure_tables()
    return store


def run(capsys, *argv) -> tuple[int, str, str]:
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def codes(report: dict, severity: str | None = None) -> list[str]:
    return [f["code"] for f in report["findings"] if severity is None or f["severity"] == severity]


def pending(store, key: str, email: str | None, phone: str | None = "0102030405", dossier: str = "BIJOU") -> None:
    collaborator = {"first_name": key.title(), "last_name": "Sage", "email": email, "phone": phone, "mobile": None,
                    "job_title": None}
    Binder(store, dossier, "user").bind(key, None, base={"lastName": "Sage", "email": email,
                                                         "_collaborator": collaborator}, hash="h")
    store.record_incident(dossier, "user", key, "invite", "à inviter")


# --- check-tenant --------------------------------------------------------------------------------
def test_check_tenant_on_a_complete_tenant_exits_0_and_keeps_the_report(sim, tmp_path, capsys):
    config = write_config(tmp_path, sim)

    code, out, _ = run(capsys, "check-tenant", "--config", config)

    assert code == 0, out
    assert "BIJOU" in out and "[bloquant]" not in out
    store = open_store(tmp_path)
    saved = store.last_tenant_check()
    store.close()
    assert saved["blocking"] is False and "tenant.admin.found" in codes(saved)
    assert sim.call_count(writes_only=True) == 0


def test_check_tenant_without_the_admin_user_exits_1(sim, tmp_path, capsys):
    config = write_config(tmp_path, sim, admin_user_email="absent@bijou.example")

    code, out, _ = run(capsys, "check-tenant", "--config", config, "--json")

    report = json.loads(out)
    assert code == 1
    assert codes(report, "bloquant") == ["tenant.admin.missing"]
    store = open_store(tmp_path)
    assert codes(store.last_tenant_check(), "bloquant") == ["tenant.admin.missing"]
    store.close()


def test_check_tenant_fix_creates_the_missing_account_type_only(sim, tmp_path, capsys):
    with httpx.Client(base_url=sim.base_url + "/", timeout=5) as http:
        token = http.post("login", json={"username": sim.public_key, "password": sim.private_key}).json()["token"]
        gone = http.delete(f"list/accountTypes/{sim.account_type_ids['Client']}", headers={"X-Session-Key": token})
        assert gone.status_code == 200, gone.text
    config = write_config(tmp_path, sim)
    code, out, _ = run(capsys, "check-tenant", "--config", config, "--json")
    assert code == 1 and codes(json.loads(out), "bloquant") == ["tenant.account_type.missing"]
    sim.reset_calls()

    code, out, _ = run(capsys, "check-tenant", "--config", config, "--fix", "--json")

    report = json.loads(out)
    assert code == 0
    assert [a["code"] for a in report["actions"]] == ["tenant.account_type.created"]
    writes = [(c.method, c.resource) for c in sim.calls if c.method != "GET" and c.resource != "login"]
    assert writes == [("POST", "accountTypes")]
    live = sorted(t["descriptionFR"] for t in sim.records("accountTypes") if not t["deleted"])
    assert live == ["Client", "Prospect"]


def test_check_tenant_prints_the_findings_in_french_per_scope(sim, tmp_path, capsys):
    config = write_config(tmp_path, sim, rate_limit_per_s=10, dossiers=("BIJOU", "ATELIER"))

    code, out, _ = run(capsys, "check-tenant", "--config", config)

    assert code == 0
    assert "[avertissement]" in out
    assert out.index("Groupe") < out.index("Dossier BIJOU") < out.index("Dossier ATELIER")


# --- users ---------------------------------------------------------------------------------------
def test_users_lists_then_creates_the_chosen_collaborator(sim, tmp_path, capsys):
    config = write_config(tmp_path, sim)
    store = open_store(tmp_path)
    pending(store, "MARIE", "marie@bijou.example")
    pending(store, "PAUL", "paul@bijou.example")
    store.close()

    code, out, _ = run(capsys, "users", "--config", config, "--json")
    assert code == 0
    assert {r["key"]: r["state"] for r in json.loads(out)["collaborators"]} == {"MARIE": "to-create",
                                                                                "PAUL": "to-create"}
    assert sim.call_count(writes_only=True) == 0

    code, out, _ = run(capsys, "users", "--config", config, "--create", "MARIE", "--json")

    data = json.loads(out)
    assert code == 0
    [result] = data["results"]
    assert (result["key"], result["outcome"], result["code"]) == ("MARIE", "created", "users.created")
    assert {r["key"]: r["state"] for r in data["collaborators"]} == {"MARIE": "linked", "PAUL": "to-create"}
    created = [u for u in sim.records("users") if u["email"] == "marie@bijou.example"]
    assert [u["id"] for u in created] == [result["ssm_id"]]
    store = open_store(tmp_path)
    assert store.get_link("BIJOU", "user", "MARIE").ssm_id == result["ssm_id"]
    assert store.get_incident("BIJOU", "user", "MARIE", "invite").state is IncidentState.RESOLVED
    assert store.get_link("BIJOU", "user", "PAUL").ssm_id is None
    store.close()


def test_users_create_all_refuses_a_collaborator_without_phone_and_exits_1(sim, tmp_path, capsys):
    config = write_config(tmp_path, sim)
    store = open_store(tmp_path)
    pending(store, "MARIE", "marie@bijou.example")
    pending(store, "MUET", "muet@bijou.example", phone=None)
    store.close()

    code, out, _ = run(capsys, "users", "--config", config, "--create-all")

    assert code == 1
    assert "user_phone_default" in out
    assert sorted(u["email"] for u in sim.records("users") if u["email"] != sim.admin_email) == ["marie@bijou.example"]


def test_users_create_needs_a_dossier_when_several_are_configured(sim, tmp_path, capsys):
    config = write_config(tmp_path, sim, dossiers=("BIJOU", "ATELIER"))

    code, out, _ = run(capsys, "users", "--config", config, "--create", "MARIE")

    assert code == 2 and "--dossier" in out
    assert sim.call_count() == 0


# --- -vv -----------------------------------------------------------------------------------------
def test_very_verbose_shows_every_ssm_call(sim, tmp_path, capsys):
    config = write_config(tmp_path, sim)

    quiet = run(capsys, "check-tenant", "--config", config)
    loud = run(capsys, "-vv", "check-tenant", "--config", config)

    assert "/users" not in quiet[2]
    assert "GET /users" in loud[2] and "GET /salesorderStatuses" in loud[2]
    assert sim.private_key not in loud[2]
