"""The commands a user types: `ssm-connector local --config FILE --once` and `ssm-connector demo`."""
from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

from shared.messages import CATALOGUE, text

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
    for dossier in ("BIJOU", "ATELIER"):
        assert text("local.cycle.dossier", dossier=dossier, name=f"Société {dossier}",
                    health=text("status.health.ok"), incidents=0) in done.stdout
    assert "    " + CATALOGUE["local.cycle.cloud"].split("{")[0] in done.stdout       # "cloud : synchronisation "
    assert ", " + text("local.cycle.bus", completed=0, invocations=0, abandoned=0, dead_letters=0,
                      pending=0).rsplit(", ", 1)[1] in done.stdout
    tiers = p.sage("BIJOU", "SELECT CT_Num FROM F_COMPTET WHERE CT_Type = 0")
    accounts = p.live("accounts")
    assert all(f"BIJOU:{num}" in accounts for (num,) in tiers)
    assert (p.folder / "state.db").exists() and (p.folder / "bus.db").exists()

    again = ssm_connector("local", "--config", str(p.config_path), "--once", cwd=tmp_path)
    assert again.returncode == 0, again.stdout + again.stderr
    assert ", ".join(text("sync.count", label=text(f"status.count.{k}").lower(), value=0)
                     for k in ("created", "updated", "deleted")) in again.stdout


def test_local_without_a_valid_config_says_why(tmp_path):
    done = ssm_connector("local", "--config", str(tmp_path / "missing.toml"), "--once", cwd=tmp_path)
    assert done.returncode == 1
    assert "missing.toml not found" in done.stderr


def test_demo_runs_end_to_end_and_exits_cleanly(tmp_path):
    folder = tmp_path / "demo"

    done = ssm_connector("demo", "--dir", str(folder), cwd=ROOT)

    assert done.returncode == 0, done.stdout + done.stderr
    out = done.stdout
    assert text("demo.after_first") in out and text("demo.after_second") in out
    second = out.split(text("demo.after_second"))[1]
    entities = {text(f"status.entity.{e}"): e for e in ("user", "account", "contact", "product", "order", "invoice",
                                                          "product_family", "delivery_address")}
    rows = [(dossier, entities.get(label, label), *counts) for dossier, label, *counts in re.findall(
        r"^  (BIJOU|ATELIER)\s+(\S.*?)\s+(\d+)\s+(\d+)\s+(\d+)\s+(\d+)\s+(\d+)\s+(\d+)\s*$", second, re.M)]
    assert {(dossier, entity) for dossier, entity, *_ in rows} >= {
        (d, e) for d in ("BIJOU", "ATELIER") for e in ("user", "account", "contact", "product", "order", "invoice")}
    for dossier, entity, sage_rows, ssm_records, created, updated, deleted, incidents in rows:
        assert sage_rows == ssm_records, (dossier, entity)
        assert incidents == "0"
    changed = {(d, e): (int(c), int(u), int(x)) for d, e, _, _, c, u, x, _ in rows if (c, u, x) != ("0", "0", "0")}
    assert changed == {("BIJOU", "account"): (0, 2, 0), ("BIJOU", "contact"): (0, 0, 1),
                       ("BIJOU", "user"): (5, 0, 0), ("ATELIER", "user"): (5, 0, 0)}   # the reps the admin created
    assert text("demo.reps") in out
    assert "Z_Segment = « Grands comptes – suivi mensuel »" in out
    calls = re.escape(text("demo.table.title", title="", calls="§")).replace("§", r"(\d+)")
    assert re.search(calls, second).group(1) == "3"     # two updates and one deletion
    where = out.split(text("demo.where"))[1]
    config = folder.resolve() / "config.toml"
    assert config.exists() and re.search(rf"^  {text('demo.where.config')}\s+: {re.escape(str(config))}$", where, re.M)
    page = re.search(rf"^  {text('demo.where.status_page')}\s+: (http://127\.0\.0\.1:\d+/\S*status/page\S*)$",
                     where, re.M)
    assert page is not None, where
    assert text("demo.next.again", config=config) in where and text("demo.next.page") in where
