"""The source registry: a dossier's adapter chosen by its product; no Sage 100 table named
outside the Sage 100 adapter."""
from __future__ import annotations

import re
from pathlib import Path

import pytest

from agent.sources import ADAPTER_MODULES, adapter, adapter_for, product_of
from shared.config import Settings
from shared.errors import ConfigurationError

ROOT = Path(__file__).resolve().parents[2]
# Sage 100's tables (F_COMPTET, F_ARTICLE, F_DOCENTETE, P_DOSSIER…) and its emulation of them.
SAGE100_TABLE = re.compile(r"\b[FP]_[A-Z][A-Z0-9]{2,}\b")
CODE = ("agent", "shared", "functions", "local", "function_app.py")
# Outside the adapter, these may name Sage 100 tables, each for a reason of its own:
ALLOWED = {
    "agent/sage100": "the Sage 100 adapter itself",
    "agent/demo_builder.py": "builds Sage 100 demo company databases (the demo and the tests)",
    "local/demo.py": "the demo edits its Sage 100 demo companies",
    "shared/messages.py": "the catalogue words Sage 100's refusals for its administrator",
}


def _code_files():
    for top in CODE:
        path = ROOT / top
        for file in ([path] if path.is_file() else sorted(path.rglob("*.py"))):
            relative = file.relative_to(ROOT).as_posix()
            if not any(relative == allowed or relative.startswith(allowed + "/") for allowed in ALLOWED):
                yield relative, file


def test_no_sage100_table_is_named_outside_its_adapter():
    found = [f"{relative}:{number}: {match}"
             for relative, file in _code_files()
             for number, line in enumerate(file.read_text(encoding="utf-8").splitlines(), start=1)
             for match in SAGE100_TABLE.findall(line)]
    assert found == []


def test_the_scan_sees_a_table_name():
    """The pattern catches what it is meant to catch (so the test above can fail)."""
    assert SAGE100_TABLE.findall('cursor.execute("SELECT CT_Num FROM F_COMPTET JOIN P_DOSSIER")') == \
        ["F_COMPTET", "P_DOSSIER"]
    assert len(list(_code_files())) > 50


def test_rules_name_no_sage_table():
    import shared.rules as rules

    assert not SAGE100_TABLE.search(Path(rules.__file__).read_text(encoding="utf-8"))


def _settings(*dossiers):
    return Settings.model_validate({"dossiers": list(dossiers)})


def test_a_dossier_gets_the_adapter_of_its_product(tmp_path):
    settings = _settings({"id": "BIJOU", "odbc": "Driver=SQLite3;Database=x.db"},
                         {"id": "CIEL", "product": "sage50", "exchange": str(tmp_path)})
    assert list(ADAPTER_MODULES)[0] == "sage100"
    assert product_of(settings, "BIJOU") == "sage100"
    assert product_of(settings, "CIEL") == "sage50"
    assert product_of(settings, "FOUND_ON_SERVER") == "sage100"
    assert adapter_for(settings, "BIJOU").product == "sage100"
    assert adapter_for(settings, "FOUND_ON_SERVER").open_source.__module__ == "agent.sage100.source"
    assert adapter_for(settings, "CIEL").product == "sage50"
    assert adapter_for(settings, "CIEL").open_source.__module__ == "agent.sage50.source"


def test_an_unknown_product_is_a_configuration_error():
    with pytest.raises(ConfigurationError, match="no source adapter"):
        adapter("sage1000")


def test_each_product_needs_its_own_connection(tmp_path):
    with pytest.raises(Exception, match="needs `odbc`"):
        _settings({"id": "BIJOU"})
    settings = _settings({"id": "CIEL", "product": "sage50"})          # the cloud's settings need no folder
    with pytest.raises(ConfigurationError, match="no `exchange` folder"):
        adapter_for(settings, "CIEL").open_source(settings, "CIEL")().__enter__()
