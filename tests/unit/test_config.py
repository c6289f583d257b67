"""Settings: a TOML file, environment overrides, secrets that never print."""
from __future__ import annotations

import pytest

from shared.config import load_settings
from shared.errors import ConfigurationError

TOML = """
group = "bijouterie"
[ssm]
base_url = "http://127.0.0.1:9/api/v4"
public_key = "pub"
private_key = "very-secret-key"
[state]
path = "state/state.db"
[[dossiers]]
id = "BIJOU"
odbc = "Driver=SQLite3;Database=BIJOU.db;PWD=hunter2"
[[dossiers]]
id = "ATELIER"
odbc = "Driver=SQLite3;Database=ATELIER.db"
active = false
"""


def write(tmp_path, text=TOML):
    path = tmp_path / "connector.toml"
    path.write_text(text, encoding="utf-8")
    return path


def test_file_settings_with_paths_relative_to_the_file(tmp_path):
    settings = load_settings(write(tmp_path), environ={})
    assert settings.group == "bijouterie"
    assert settings.state.path == str(tmp_path / "state" / "state.db")
    assert [d.id for d in settings.dossiers] == ["BIJOU", "ATELIER"] and not settings.dossier("ATELIER").active


def test_environment_overrides_the_file(tmp_path):
    settings = load_settings(write(tmp_path), environ={
        "SSMCONN__SSM__PRIVATE_KEY": "from-key-vault", "SSMCONN__SSM__RATE_LIMIT_PER_S": "25",
        "SSMCONN__STATE__KIND": "azure-tables", "UNRELATED": "x"})
    assert settings.ssm.private_key.get_secret_value() == "from-key-vault"
    assert settings.ssm.rate_limit_per_s == 25.0 and settings.state.kind == "azure-tables"


def test_secrets_never_print(tmp_path):
    settings = load_settings(write(tmp_path), environ={})
    shown = repr(settings) + str(settings) + settings.model_dump_json()
    assert "very-secret-key" not in shown and "hunter2" not in shown
    assert settings.dossier("BIJOU").odbc.get_secret_value().endswith("PWD=hunter2")


@pytest.mark.parametrize("text, message", [
    (TOML.replace('id = "ATELIER"', 'id = "BIJOU"'), "dossier ids listed twice"),
    (TOML.replace('kind_unused', '') + "\n[bus]\nkind = 'kafka'\n", "bus.kind"),
    (TOML.replace('id = "BIJOU"', 'id = "BIJOU/2024"'), "dossiers.0.id"),
    ("[ssm\n", "not valid TOML"),
])
def test_bad_settings_are_refused_with_a_clear_message(tmp_path, text, message):
    with pytest.raises(ConfigurationError, match=message):
        load_settings(write(tmp_path, text), environ={})


def test_missing_file_and_unknown_dossier(tmp_path):
    with pytest.raises(ConfigurationError, match="not found"):
        load_settings(tmp_path / "nowhere.toml", environ={})
    with pytest.raises(ConfigurationError, match="'NOPE' is not in the configuration"):
        load_settings(write(tmp_path), environ={}).dossier("NOPE")


def test_cloud_configuration_must_be_complete(tmp_path):
    with pytest.raises(ConfigurationError, match="state.kind = azure-tables"):
        load_settings(write(tmp_path), environ={}).validate_for_cloud()
    complete = load_settings(write(tmp_path), environ={
        "SSMCONN__STATE__KIND": "azure-tables", "SSMCONN__STATE__ACCOUNT_URL": "https://x.table.core.windows.net/",
        "SSMCONN__BUS__KIND": "service-bus", "SSMCONN__BUS__FULLY_QUALIFIED_NAMESPACE": "x.servicebus.windows.net"})
    assert complete.validate_for_cloud() is complete
