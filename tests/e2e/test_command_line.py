"""The commands a user types: `ssm-connector local --config FILE --once` and `ssm-connector demo`."""
from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def ssm_connector(*args: str, cwd: Path, timeout: float = 300) -> subprocess.CompletedProcess:
    environ = {k: v for k, v in os.environ.items() if not k.startswith("SSMCONN")}
    environ["PYTHONPATH"] = os.pathsep.join([str(ROOT), *filter(None, [environ.get("PYTHONPATH")])])  # this checkout
    return subprocess.run([sys.executable, "-m", "local.cli", *args], cwd=cwd, env=environ, capture_output=True,
                          text=True, encoding="utf-8", timeout=timeout)


def test_local_once_runs_one_cycle_from_a_config_file_and_exits(make_pipeline, tmp_path):
    p = make_pipeline(companies=("BIJOU", "ATELIER"))
    p.runtime.close()          # the command opens its own runtime; only the simulator stays up

    done = ssm_connector("local", "--config", str(p.config_path), "--once", cwd=tmp_path)

    assert done.returncode == 0, done.stdout + done.stderr
    assert "BIJOU (Société BIJOU): ok" in done.stdout and "ATELIER (Société ATELIER): ok" in done.stdout
    assert "cloud: run" in done.stdout and "0 pending" in done.stdout
    tiers = p.sage("BIJOU", "SELECT CT_Num FROM F_COMPTET WHERE CT_Type = 0")
    accounts = p.live("accounts")
    assert all(f"BIJOU:{num}" in accounts for (num,) in tiers)
    assert (p.folder / "state.db").exists() and (p.folder / "bus.db").exists()

    again = ssm_connector("local", "--config", str(p.config_path), "--once", cwd=tmp_path)
    assert again.returncode == 0, again.stdout + again.stderr
    assert "created=0 updated=0 deleted=0" in again.stdout


def test_local_without_a_valid_config_says_why(tmp_path):
    done = ssm_connector("local", "--config", str(tmp_path / "missing.toml"), "--once", cwd=tmp_path)
    assert done.returncode == 1
    assert "missing.toml not found" in done.stderr


def test_demo_runs_end_to_end_and_exits_cleanly(tmp_path):
    folder = tmp_path / "demo"

    done = ssm_connector("demo", "--dir", str(folder), cwd=ROOT)

    assert done.returncode == 0, done.stdout + done.stderr
    out = done.stdout
    assert "After the first synchronisation" in out and "After the second synchronisation" in out
    second = out.split("After the second synchronisation")[1]
    rows = re.findall(r"^  (BIJOU|ATELIER)\s+(\w+)\s+(\d+)\s+(\d+)\s+(\d+)\s+(\d+)\s+(\d+)\s+(\d+)\s*$", second, re.M)
    assert {(dossier, entity) for dossier, entity, *_ in rows} >= {
        (d, e) for d in ("BIJOU", "ATELIER") for e in ("user", "account", "contact", "product", "order", "invoice")}
    for dossier, entity, sage_rows, ssm_records, created, updated, deleted, incidents in rows:
        assert sage_rows == ssm_records, (dossier, entity)
        assert incidents == "0"
    changed = {(d, e): (int(c), int(u), int(x)) for d, e, _, _, c, u, x, _ in rows if (c, u, x) != ("0", "0", "0")}
    assert changed == {("BIJOU", "account"): (0, 2, 0), ("BIJOU", "contact"): (0, 0, 1),
                       ("BIJOU", "user"): (5, 0, 0), ("ATELIER", "user"): (5, 0, 0)}   # the reps the admin created
    assert "The administrator creates the sales reps in SSM" in out
    assert "Z_Segment = 'Grands comptes – suivi mensuel'" in out
    assert "status page" in out and (folder / "config.toml").exists()
    assert second.split(" SSM call")[0].strip(" —") == "3"     # two updates and one deletion
