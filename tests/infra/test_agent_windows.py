"""The agent on the Sage server: a real Windows service, installed only with an ODBC driver and working
SQL connections, its secrets encrypted rather than in config.toml.

PowerShell and Windows are not here: install-agent.ps1 is read as text (what it checks, in which order,
what it registers), and the service module (infra/agent/ssmconn_service.py) runs its Windows-free parts:
the secrets with a stand-in for DPAPI, the SQL checks with stand-in drivers and connections, the
service's loop, and the `cli` passthrough."""
from __future__ import annotations

import importlib.util
import io
import re
import sys
import threading
import tomllib
from pathlib import Path
from types import SimpleNamespace

import pytest

from shared.config import load_settings
from shared.errors import ConfigurationError

ROOT = Path(__file__).resolve().parents[2]
AGENT_DIR = ROOT / "infra" / "agent"
SCRIPT = (AGENT_DIR / "install-agent.ps1").read_text(encoding="utf-8")
EXAMPLE = AGENT_DIR / "config.example.toml"


def _load_service_module():
    spec = importlib.util.spec_from_file_location("ssmconn_service", AGENT_DIR / "ssmconn_service.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules["ssmconn_service"] = module
    spec.loader.exec_module(module)
    return module


svc = _load_service_module()


def code_of(script: str) -> str:
    """The script without its comments (the help block and `#` lines)."""
    script = re.sub(r"<#.*?#>", "", script, flags=re.S)
    return "\n".join(line for line in script.splitlines() if not line.lstrip().startswith("#"))


CODE = code_of(SCRIPT)


def position(pattern: str) -> int:
    found = re.search(pattern, CODE)
    assert found, f"install-agent.ps1 does not contain {pattern!r}"
    return found.start()


# --- install-agent.ps1 ----------------------------------------------------------------------------------
FIRST_INSTALL_STEPS = [r"New-Item\s", r"-m venv", r"pip install", r"Copy-Item", r"Set-Acl",
                       r"Protect-SsmSecret \$BusSecret", r"ssmconn_service\.py'?\)? \$ServiceScript",
                       r"\$ServiceScript --startup", r"sc\.exe failure", r"Start-Service"]


def test_the_script_refuses_to_install_anything_without_an_odbc_driver():
    check = position(r"Get-OdbcDriver")
    assert "'ODBC Driver 18 for SQL Server'" in CODE and "'ODBC Driver 17 for SQL Server'" in CODE
    driver_block = CODE[check:position(r"Write-Host \"ODBC driver found")]
    assert "-Platform '64-bit'" in driver_block
    stop = re.search(r"if \(\$odbcDrivers\.Count -eq 0\) \{\s*Stop-WithError (.*?)\}\n", driver_block, re.S)
    assert stop, driver_block
    message, code = stop.group(1).rsplit(" ", 1)
    assert int(code) != 0
    assert "ODBC Driver 18 for SQL Server" in message and "Nothing was installed" in message
    assert re.search(r"function Stop-WithError.*?exit \$Code", CODE, re.S)
    for step in FIRST_INSTALL_STEPS:
        assert check < position(step), f"{step} comes before the ODBC driver check"


def test_the_script_checks_the_sql_connections_with_the_configured_logins_before_registering_the_service():
    check = position(r"& \$VenvPython \$ServiceScript check --config \$ConfigPath")
    failed = CODE[check:check + 400]
    assert re.search(r"if \(\$LASTEXITCODE -ne 0\) \{\s*Stop-WithError .*service was not registered.*\s[1-9]\d*\s*\}",
                     failed)
    assert check < position(r"\$ServiceScript --startup delayed install")
    assert check < position(r"Start-Service")
    # the first run stops before it, for config.toml to be edited: nothing is registered then
    first_run_exit = position(r"if \(\$firstRun")
    assert first_run_exit < check


def test_the_agent_is_a_windows_service_with_automatic_start_and_restart_on_failure():
    assert re.search(r"\$ServiceScript --startup delayed install", CODE)           # automatic (delayed) start
    failure = re.search(r"sc\.exe failure \$ServiceName reset= (\d+) actions= ((?:restart/\d+/?)+)", CODE)
    assert failure and int(failure.group(1)) > 0
    assert all(delay.isdigit() and int(delay) >= 60_000 for delay in re.findall(r"restart/(\d+)", failure.group(2)))
    assert re.search(r"sc\.exe failureflag \$ServiceName 1", CODE)
    assert "Register-ScheduledTask" not in CODE
    assert position(r"Unregister-ScheduledTask") < position(r"\$ServiceScript --startup delayed install")
    assert re.search(r"Set-ItemProperty .*Services\\\$ServiceName\" -Name Environment", CODE)
    assert "SSMCONN_AGENT_CONFIG=$ConfigPath" in CODE


def test_the_service_account_is_a_virtual_account_by_default_and_no_password_reaches_a_command_line():
    assert re.search(r"\$ServiceAccount = 'NT SERVICE\\SsmConnectorAgent'", CODE)
    assert "Invoke-CimMethod -InputObject $service -MethodName Change" in CODE
    assert "StartPassword = $password" in CODE                       # through CIM, not a command line
    assert "--password" not in CODE and "password=" not in CODE.lower()


def test_secrets_are_read_as_secure_strings_and_stored_with_dpapi_never_in_config():
    protect = CODE[position(r"function Protect-SsmSecret"):position(r"# ---|if \(\$PSCmdlet")]
    assert "Read-Host -AsSecureString" in protect
    assert "ZeroFreeBSTR" in protect
    assert re.search(r"\$plain \| & \$VenvPython \$ServiceScript protect \$Name --config \$ConfigPath", protect)
    assert "UTF8Encoding" in protect
    assert not re.search(r"(Set-Content|Add-Content|Out-File)[^\n]*\$ConfigPath", CODE), "config.toml is never written"
    assert re.search(r"SetSecret", CODE) and "Restart-Service" in CODE
    assert re.search(r"Set-FolderAccess \$SecretsDir 'Read'", CODE)


def test_the_example_configuration_holds_no_secret_in_clear():
    text = EXAMPLE.read_text(encoding="utf-8")
    values = tomllib.loads(text)
    assert values["bus"]["connection_string"] == "${secret:bus-connection-string}"
    assert values["bus"]["websockets"] is False
    everything = [values["bus"]["connection_string"], values["agent"]["server_odbc"],
                  *(d[k] for d in values["dossiers"] for k in ("odbc", "odbc_writer") if k in d)]
    for value in everything:
        password = re.search(r"(?i)\b(?:pwd|password)=(\{.*?\}\}?|[^;]*)", value)
        assert password is None or "${secret:" in password.group(1), value
        assert "SharedAccessKey=" not in value


def test_the_example_configuration_explains_trust_server_certificate():
    text = re.sub(r"\s*\n#\s*", " ", EXAMPLE.read_text(encoding="utf-8"))      # comment lines joined
    for words in ("TrustServerCertificate=no", "TrustServerCertificate=yes", "self-signed", "Trusted Root",
                  "HostNameInCertificate", "certificate chain was issued by an authority that is not trusted"):
        assert words in text, words


# --- the secrets ---------------------------------------------------------------------------------------
def fake_dpapi():
    """Stand-in for DPAPI: reversible, and visibly not the clear text."""
    protect = lambda data: b"DPAPI:" + bytes(b ^ 0x5A for b in data)          # noqa: E731
    unprotect = lambda blob: bytes(b ^ 0x5A for b in blob[len(b"DPAPI:"):])   # noqa: E731
    return dict(protect=protect, unprotect=unprotect)


@pytest.fixture
def store(tmp_path):
    return svc.SecretStore(tmp_path / "secrets", **fake_dpapi())


def test_a_secret_is_stored_encrypted_and_read_back(store):
    store.put("bus-connection-string", "Endpoint=sb://x/;SharedAccessKey=clé}secrète")
    blob = (store.directory / "bus-connection-string.dpapi").read_bytes()
    assert b"SharedAccessKey" not in blob and blob.startswith(b"DPAPI:")
    assert store.get("bus-connection-string") == "Endpoint=sb://x/;SharedAccessKey=clé}secrète"
    assert store.names() == ["bus-connection-string"]


@pytest.mark.parametrize("name", ["", "../x", "a b", "x" * 65])
def test_a_secret_name_is_checked(store, name):
    with pytest.raises(ConfigurationError):
        store.put(name, "value")


def test_a_missing_or_foreign_secret_says_how_to_store_it(store):
    with pytest.raises(ConfigurationError) as missing:
        store.get("sql-writer")
    assert "-SetSecret sql-writer" in missing.value.user_message
    store.directory.mkdir(parents=True, exist_ok=True)
    (store.directory / "sql-reader.dpapi").write_bytes(b"made elsewhere")
    broken = svc.SecretStore(store.directory, protect=store._protect, unprotect=lambda blob: 1 / 0)
    with pytest.raises(ConfigurationError) as foreign:
        broken.get("sql-reader")
    assert "cannot be decrypted" in foreign.value.user_message


def test_the_example_configuration_loads_with_its_secrets_resolved(tmp_path):
    config = tmp_path / "config.toml"
    config.write_text(EXAMPLE.read_text(encoding="utf-8"), encoding="utf-8")
    store = svc.SecretStore.beside(config, **fake_dpapi())
    store.put("bus-connection-string", "Endpoint=sb://ns.servicebus.windows.net/;SharedAccessKeyName=agent-send;"
                                       "SharedAccessKey=abc=;EntityPath=sage-changes")
    store.put("sql-writer", "p;a}ss")
    store.put("cloud-key", "function-key")

    settings = svc.load_agent_settings(config, store, environ={})
    assert settings.agent.cloud_key.get_secret_value() == "function-key"

    assert settings.bus.connection_string.get_secret_value().endswith("SharedAccessKey=abc=;EntityPath=sage-changes")
    writer = settings.dossiers[0].odbc_writer.get_secret_value()
    assert "PWD={p;a}}ss};" in writer                                  # ODBC braces, `}` doubled
    assert svc.redact(writer).count("***") == 1 and "p;a" not in svc.redact(writer)
    assert "Trusted_Connection=yes" in settings.dossiers[0].odbc.get_secret_value()
    resolved = [settings.bus.connection_string, settings.agent.server_odbc,
                *(d.odbc for d in settings.dossiers), *(d.odbc_writer for d in settings.dossiers)]
    assert all("${secret:" not in value.get_secret_value() for value in resolved)
    plain = load_settings(config, environ={})                           # the file alone keeps its references
    assert plain.bus.connection_string.get_secret_value() == "${secret:bus-connection-string}"


def test_protect_reads_the_secret_on_standard_input_in_utf8(tmp_path, monkeypatch, capsys):
    config = tmp_path / "config.toml"
    stored = {}
    monkeypatch.setattr(svc.SecretStore, "put", lambda self, name, value: stored.update({name: value}))
    monkeypatch.setattr(sys, "stdin", SimpleNamespace(buffer=io.BytesIO("\ufeffmot-de-passe-é\r\n".encode("utf-8"))))
    assert svc.main(["protect", "sql-reader", "--config", str(config)]) == 0
    assert stored == {"sql-reader": "mot-de-passe-é"}
    assert "mot-de-passe" not in capsys.readouterr().out


# --- the SQL checks ------------------------------------------------------------------------------------
class StandInConnection:
    def __init__(self, log):
        self.log = log

    def cursor(self):
        return self

    def execute(self, sql):
        self.log.append(sql)
        return self

    def fetchone(self):
        return (1,)

    def close(self):
        self.log.append("close")


DRIVER = "ODBC Driver 18 for SQL Server"
WINDOWS_AUTH = "Driver={ODBC Driver 18 for SQL Server};Server=S;Database=BIJOU;Trusted_Connection=yes"


def settings_with(**dossier_strings):
    return load_settings(environ={
        "SSMCONN__AGENT__SERVER_ODBC": "Driver={ODBC Driver 18 for SQL Server};Server=SAGESRV\\SAGE100;"
                                       "Database=master;Trusted_Connection=yes",
    }).model_copy(update={"dossiers": [
        load_settings(environ={}).model_validate({"dossiers": [dict(id="BIJOU", **dossier_strings)]}).dossiers[0]]})


def test_every_configured_connection_is_opened_with_its_login():
    opened, log = [], []
    settings = settings_with(odbc=WINDOWS_AUTH,
                             odbc_writer="Driver={ODBC Driver 18 for SQL Server};Server=S;Database=BIJOU;"
                                         "UID=ssm_connector_writer;PWD={pw}")

    problems, warnings = svc.check_installation(
        settings, drivers=lambda: ["SQL Server", "ODBC Driver 18 for SQL Server"],
        connect=lambda conn, timeout: opened.append((conn, timeout)) or StandInConnection(log))

    assert problems == [] and warnings == []
    assert [c for c, _ in opened] == [settings.agent.server_odbc.get_secret_value(),
                                      settings.dossiers[0].odbc.get_secret_value(),
                                      settings.dossiers[0].odbc_writer.get_secret_value()]
    assert all(timeout == svc.LOGIN_TIMEOUT_S for _, timeout in opened)
    assert log.count("SELECT 1") == 3 and log.count("close") == 3


def test_no_odbc_driver_is_a_problem_before_any_connection():
    opened = []
    settings = settings_with(odbc=WINDOWS_AUTH)
    problems, _ = svc.check_installation(settings, drivers=lambda: ["SQL Server"],
                                         connect=lambda *a: opened.append(a))
    assert opened == []
    assert any("ODBC Driver 18 for SQL Server" in p and "install" in p for p in problems)


def test_a_failed_connection_says_why_without_the_password_and_hints_at_the_certificate():
    def refuse(conn, timeout):
        raise RuntimeError("08001", "[Microsoft][ODBC Driver 18 for SQL Server]SSL Provider: The certificate chain "
                                    "was issued by an authority that is not trusted. PWD=hunter2")

    settings = settings_with(odbc="Driver={ODBC Driver 18 for SQL Server};Server=S;Database=BIJOU;UID=ssm_connector;"
                                  "PWD={hunter2}")
    problems, _ = svc.check_installation(settings, drivers=lambda: ["ODBC Driver 18 for SQL Server"], connect=refuse)
    assert len(problems) == 2
    assert all("hunter2" not in p for p in problems)
    assert "dossier BIJOU: odbc (reading login)" in problems[1] and "TrustServerCertificate" in problems[1]


def test_trusting_any_certificate_of_a_remote_server_is_a_warning_not_for_a_local_one():
    remote = "Driver={ODBC Driver 18 for SQL Server};Server=SAGESRV\\SAGE100;Database=B;TrustServerCertificate=yes"
    local = "Driver={ODBC Driver 18 for SQL Server};Server=localhost\\SAGE100;Database=B;TrustServerCertificate=yes"
    for conn, expected in ((remote, 1), (local, 0)):
        _, warnings = svc.check_installation(settings_with(odbc=conn), drivers=lambda: [DRIVER],
                                             connect=lambda *a: StandInConnection([]), computer="AGENTSRV")
        assert len([w for w in warnings if "BIJOU" in w]) == expected


def test_check_command_exits_one_with_the_problems(tmp_path):
    config = tmp_path / "config.toml"
    config.write_text(EXAMPLE.read_text(encoding="utf-8"), encoding="utf-8")
    out = io.StringIO()
    code = svc.cmd_check(config, store=svc.SecretStore.beside(config, **fake_dpapi()), drivers=lambda: [],
                         connect=lambda *a: StandInConnection([]), out=out)
    assert code == 1 and "PROBLEM" in out.getvalue() and "-SetSecret" in out.getvalue()


# --- the service's loop --------------------------------------------------------------------------------
def test_the_service_runs_a_cycle_per_interval_until_stopped_and_survives_a_failed_cycle(tmp_path):
    config = tmp_path / "config.toml"
    config.write_text('[agent]\ninterval_s = 0.01\n', encoding="utf-8")
    stop = threading.Event()
    cycles = []

    def cycle(settings, stop_event):
        cycles.append(stop_event)
        if len(cycles) == 1:
            raise RuntimeError("SQL Server went away")
        if len(cycles) == 3:
            stop.set()
        return [SimpleNamespace(ok=True)]

    waits = []

    def between(settings, interval, stop_event):           # agent.cli.between_cycles by default
        waits.append(interval)
        stop_event.wait(interval)

    svc.run_agent(config, stop, store=svc.SecretStore.beside(config, **fake_dpapi()), cycle=cycle,
                  configure_logs=lambda settings, path: None, between=between)
    assert len(cycles) == 3 and all(s is stop for s in cycles)
    assert waits == [0.01, 0.01, 0.01]


def test_the_service_fails_to_start_on_a_missing_secret(tmp_path):
    config = tmp_path / "config.toml"
    config.write_text('[bus]\nkind = "service-bus"\nconnection_string = "${secret:bus-connection-string}"\n',
                      encoding="utf-8")
    with pytest.raises(ConfigurationError):
        svc.run_agent(config, threading.Event(), store=svc.SecretStore.beside(config, **fake_dpapi()),
                      cycle=lambda *a: pytest.fail("no cycle without its settings"), configure_logs=lambda *a: None)


@pytest.mark.skipif(sys.platform == "win32", reason="pywin32 is there on Windows")
def test_without_pywin32_the_module_imports_and_the_service_commands_say_they_need_windows(capsys):
    assert svc.win32serviceutil is None and not hasattr(svc, "SsmConnectorAgentService")
    assert svc.main(["install"]) == 2
    assert "Windows and pywin32" in capsys.readouterr().err
    assert f"$ServiceName = '{svc.SERVICE_NAME}'" in CODE


def test_pywin32_is_a_windows_only_dependency_of_the_agent():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    agent = project["optional-dependencies"]["agent"]
    assert any(re.fullmatch(r'pywin32(>=\d+)?; sys_platform == "win32"', d) for d in agent)


# --- `cli`: ssm-connector with the secrets --------------------------------------------------------------
def test_cli_resolves_the_secrets_for_the_agent_commands_and_adds_the_service_config(tmp_path, monkeypatch):
    import agent.cli
    import local.cli

    config = tmp_path / "config.toml"
    config.write_text('[agent]\nserver_odbc = "Driver={%s};UID=u;PWD={${secret:sql-reader}}"\n' % DRIVER,
                      encoding="utf-8")
    store = svc.SecretStore.beside(config, **fake_dpapi())
    store.put("sql-reader", "s3cret")
    seen = {}

    def fake_main(argv):
        seen["argv"] = argv
        seen["server_odbc"] = agent.cli.load_settings(argv[argv.index("--config") + 1]).agent.server_odbc
        return 0

    original = agent.cli.load_settings
    monkeypatch.setattr(local.cli, "main", fake_main)
    assert svc.run_cli(["agent", "state"], config, store_for=lambda path: store) == 0
    assert seen["argv"] == ["agent", "state", "--config", str(config)]
    assert seen["server_odbc"].get_secret_value().endswith("PWD={s3cret}")
    assert agent.cli.load_settings is original
