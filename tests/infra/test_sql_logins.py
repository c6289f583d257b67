"""The least-privilege SQL script (infra/agent/sql-login.sql) grants the Sage writer's login what
the writer does, table by table, and the reading login SELECT only."""
from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = (ROOT / "infra" / "agent" / "sql-login.sql").read_text(encoding="utf-8")
WRITER_CODE = "".join((ROOT / "agent" / "sage100" / name).read_text(encoding="utf-8")
                      for name in ("writer.py", "pricing.py", "quote_pricing.py"))


def grants(login: str) -> dict[str, set[str]]:
    found: dict[str, set[str]] = {}
    for rights, table in re.findall(rf"^GRANT ([A-Z, ]+?)\s+ON dbo\.(\w+)\s+TO \[{login}\];", SCRIPT, re.M):
        found.setdefault(table, set()).update(r.strip() for r in rights.split(","))
    return found


def test_the_writer_login_may_do_what_the_writer_does_and_never_delete():
    writer = grants("ssm_connector_writer")
    inserted = set(re.findall(r'_insert\(cursor, "(\w+)"', WRITER_CODE))
    updated = set(re.findall(r'dialect\.update\("(\w+)"', WRITER_CODE))
    read = set(re.findall(r'\bFROM (F_\w+|P_\w+)', WRITER_CODE)) | set(re.findall(r'_row\(cursor, "(\w+)"',
                                                                                   WRITER_CODE))
    assert inserted and updated and read
    assert {t for t in inserted if "INSERT" not in writer.get(t, set())} == set()
    assert {t for t in updated if "UPDATE" not in writer.get(t, set())} == set()
    assert {t for t in read if "SELECT" not in writer.get(t, set())} == set()
    assert not any("DELETE" in rights for rights in writer.values())


def test_the_reading_login_only_reads():
    reader = grants("ssm_connector")
    assert reader and all(rights == {"SELECT"} for rights in reader.values())
