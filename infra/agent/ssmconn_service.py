"""The connector's agent as a Windows service, its protected secrets, and the installation checks.

install-agent.ps1 copies this file beside the agent's Python environment
(`C:\\Program Files\\SsmConnector\\ssmconn_service.py`) and registers it with pywin32's service host
(`pythonservice.exe`) as the service `SsmConnectorAgent`: automatic (delayed) start, restarted by the
Service Control Manager after a failure (its failure actions), under its own account (the virtual
account `NT SERVICE\\SsmConnectorAgent` by default). The service runs the agent's cycle
(`agent.relay.run_selected`) every `[agent] interval_s` until it is stopped; a stop lets the dossier
in progress finish (`agent run` does the same on Ctrl+C). A failure to start (configuration, secret)
stops the service with an error, which its recovery actions answer with a restart after a delay; the
Windows event log keeps the reason. A failed cycle is logged and the next one runs at its time.

Secrets never stand in config.toml in plain text. The file names them `${secret:NAME}`
(`connection_string = "${secret:bus-connection-string}"`, `...;UID=ssm_connector_writer;
PWD={${secret:sql-writer}}`); each is a file `secrets\\NAME.dpapi` beside config.toml, encrypted with
DPAPI for this machine (it cannot be read on another computer, nor from a backup restored elsewhere)
in a folder only Administrators, SYSTEM and the service's account can read. `{${secret:NAME}}` is
replaced with the value in ODBC braces (a `}` in it doubled), `${secret:NAME}` with the bare value.
The surest way to keep a SQL password out of the server is Windows authentication
(`Trusted_Connection=yes`, infra/agent/sql-login.sql): the service's account is then the login.

Commands (`python ssmconn_service.py COMMAND ...`, from the agent's environment):
  check --config FILE         the ODBC driver and every configured SQL connection (the logins of the
                              file, secrets resolved); exit 1 with the reasons
  protect NAME --config FILE  store the secret read on standard input (DPAPI, machine scope)
  cli ARGS...                 `ssm-connector ARGS` with the secrets resolved (`cli agent state`,
                              `cli agent databases`, ...); `--config` defaults to the service's file
  install|update|remove|start|stop|restart|debug   pywin32's service commands (Windows only)

Only the Windows parts (DPAPI, the service class) need pywin32; the rest runs and is tested anywhere.
"""
from __future__ import annotations

import argparse
import os
import re
import sys
import threading
from pathlib import Path
from typing import Any, Callable, Iterator, Optional, Sequence

SERVICE_NAME = "SsmConnectorAgent"
SERVICE_DISPLAY_NAME = "Sage - Sales Management connector agent"
SERVICE_DESCRIPTION = ("Sends the changes of the Sage company databases to Sage Sales Management and applies "
                       "in Sage what SSM users create (ssm-connector).")
CONFIG_ENV = "SSMCONN_AGENT_CONFIG"
SECRETS_DIRNAME = "secrets"
SECRET_SUFFIX = ".dpapi"
# Tied to the blobs: a secret protected with other entropy cannot be read back.
DPAPI_ENTROPY = b"ssm-connector agent secret v1"
CRYPTPROTECT_UI_FORBIDDEN = 0x1
CRYPTPROTECT_LOCAL_MACHINE = 0x4
SUPPORTED_ODBC_DRIVERS = ("ODBC Driver 18 for SQL Server", "ODBC Driver 17 for SQL Server")
STOP_WAIT_HINT_MS = 120_000
LOGIN_TIMEOUT_S = 15

_SECRET_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")
_REFERENCE = re.compile(r"\$\{secret:([^}]*)\}")
_BRACED_REFERENCE = re.compile(r"\{\$\{secret:([^}]*)\}\}")
_PASSWORD = re.compile(r"(?i)\b(pwd|password)\s*=\s*(\{(?:[^}]|\}\})*\}|[^;]*)")
_KEYWORD = r"(?i)(?:^|;)\s*{name}\s*=\s*(\{{(?:[^}}]|\}}\}})*\}}|[^;]*)"
LOCAL_SERVERS = ("localhost", "(local)", ".", "127.0.0.1", "::1", "(localdb)")


def default_config_path() -> Path:
    """The service's configuration file: `SSMCONN_AGENT_CONFIG` (set in the service's environment by
    install-agent.ps1), else C:\\ProgramData\\SsmConnector\\config.toml."""
    if os.environ.get(CONFIG_ENV):
        return Path(os.environ[CONFIG_ENV])
    return Path(os.environ.get("ProgramData", r"C:\ProgramData")) / "SsmConnector" / "config.toml"


# --- DPAPI -----------------------------------------------------------------------------------------
def dpapi_protect(data: bytes) -> bytes:
    """Encrypt for this machine (DPAPI, LocalMachine scope). Windows only."""
    import win32crypt
    return win32crypt.CryptProtectData(data, "ssm-connector", DPAPI_ENTROPY, None, None,
                                       CRYPTPROTECT_LOCAL_MACHINE | CRYPTPROTECT_UI_FORBIDDEN)


def dpapi_unprotect(blob: bytes) -> bytes:
    """Decrypt a blob of `dpapi_protect`, on the machine that made it. Windows only."""
    import win32crypt
    return win32crypt.CryptUnprotectData(blob, DPAPI_ENTROPY, None, None, CRYPTPROTECT_UI_FORBIDDEN)[1]


def _configuration_error(message: str, detail: Optional[str] = None) -> Exception:
    from shared.errors import ConfigurationError
    return ConfigurationError(message, detail=detail)


class SecretStore:
    """The protected secrets of the agent: one DPAPI blob per secret in `directory`.

    Args:
        directory: the folder (`secrets` beside config.toml).
        protect / unprotect: the encryption, DPAPI by default (a stand-in in tests).
    """

    def __init__(self, directory: Path | str, *, protect: Callable[[bytes], bytes] = dpapi_protect,
                 unprotect: Callable[[bytes], bytes] = dpapi_unprotect):
        self.directory = Path(directory)
        self._protect, self._unprotect = protect, unprotect

    @classmethod
    def beside(cls, config_path: Path | str, **kwargs: Any) -> "SecretStore":
        return cls(Path(config_path).parent / SECRETS_DIRNAME, **kwargs)

    def path(self, name: str) -> Path:
        if not _SECRET_NAME.fullmatch(name or ""):
            raise _configuration_error(f"'{name}' is not a secret name (letters, digits, '.', '_' or '-').")
        return self.directory / f"{name}{SECRET_SUFFIX}"

    def put(self, name: str, value: str) -> None:
        if not value:
            raise _configuration_error(f"The secret '{name}' is empty; nothing was stored.")
        path = self.path(name)
        path.parent.mkdir(parents=True, exist_ok=True)
        partial = path.with_suffix(".partial")
        partial.write_bytes(self._protect(value.encode("utf-8")))
        os.replace(partial, path)

    def get(self, name: str) -> str:
        try:
            blob = self.path(name).read_bytes()
        except FileNotFoundError:
            raise _configuration_error(
                f"The secret '{name}' named in the configuration is not stored on this server; store it with "
                f"install-agent.ps1 -SetSecret {name}.", detail=str(self.path(name))) from None
        try:
            return self._unprotect(blob).decode("utf-8")
        except Exception as exc:
            raise _configuration_error(
                f"The secret '{name}' cannot be decrypted here (stored on another computer, or damaged); store it "
                f"again with install-agent.ps1 -SetSecret {name}.", detail=f"{type(exc).__name__}: {exc}") from None

    def names(self) -> list[str]:
        if not self.directory.is_dir():
            return []
        return sorted(p.name[:-len(SECRET_SUFFIX)] for p in self.directory.glob(f"*{SECRET_SUFFIX}"))


def secret_references(text: str) -> list[str]:
    return _REFERENCE.findall(text or "")


def resolve_text(text: str, store: SecretStore) -> str:
    """`text` with its `${secret:NAME}` references replaced; `{${secret:NAME}}` stays an ODBC braced
    value (a `}` in the secret doubled, as ODBC connection strings require)."""
    text = _BRACED_REFERENCE.sub(lambda m: "{" + store.get(m.group(1)).replace("}", "}}") + "}", text)
    return _REFERENCE.sub(lambda m: store.get(m.group(1)), text)


def resolve_settings(settings, store: SecretStore):
    """The settings with every secret reference resolved, in whichever section and value it stands."""
    from pydantic import BaseModel, SecretStr

    def resolve(value: Any) -> Any:
        if isinstance(value, BaseModel):
            changes = {name: resolve(getattr(value, name)) for name in type(value).model_fields}
            changes = {k: v for k, v in changes.items() if v is not getattr(value, k)}
            return value.model_copy(update=changes) if changes else value
        if isinstance(value, list):
            resolved = [resolve(item) for item in value]
            return resolved if any(a is not b for a, b in zip(resolved, value)) else value
        if isinstance(value, SecretStr) and "${secret:" in value.get_secret_value():
            return SecretStr(resolve_text(value.get_secret_value(), store))
        if isinstance(value, str) and "${secret:" in value:
            return resolve_text(value, store)
        return value

    return resolve(settings)


def load_agent_settings(config_path: Path | str, store: Optional[SecretStore] = None, *,
                        environ: Optional[dict[str, str]] = None):
    """`shared.config.load_settings` of the file, secrets resolved from the store beside it."""
    from shared.config import load_settings
    settings = load_settings(config_path, environ=environ)
    return resolve_settings(settings, store if store is not None else SecretStore.beside(config_path))


# --- installation checks -----------------------------------------------------------------------------
def _keyword(connection_string: str, name: str) -> Optional[str]:
    found = re.search(_KEYWORD.format(name=name), connection_string)
    if not found:
        return None
    value = found.group(1).strip()
    return value[1:-1].replace("}}", "}") if value.startswith("{") else value


def odbc_driver(connection_string: str) -> Optional[str]:
    return _keyword(connection_string, "driver")


def redact(text: str) -> str:
    return _PASSWORD.sub(lambda m: f"{m.group(1)}=***", text)


def connection_strings(settings) -> Iterator[tuple[str, str]]:
    """(what, connection string) of every SQL connection the agent makes."""
    if settings.agent.server_odbc is not None and settings.agent.server_odbc.get_secret_value():
        yield "agent.server_odbc (list of the company databases)", settings.agent.server_odbc.get_secret_value()
    for dossier in settings.dossiers:
        yield f"dossier {dossier.id}: odbc (reading login)", dossier.odbc.get_secret_value()
        if dossier.odbc_writer is not None and dossier.odbc_writer.get_secret_value():
            yield f"dossier {dossier.id}: odbc_writer (writing login)", dossier.odbc_writer.get_secret_value()


def _certificate_hint(message: str) -> str:
    lowered = message.lower()
    if "certificate" in lowered or "ssl provider" in lowered:
        return (" — SQL Server's certificate is not trusted by this computer: trust it, or see "
                "TrustServerCertificate in config.example.toml and docs/troubleshooting.md")
    if "login failed" in lowered:
        return " — check the login and its password (infra/agent/sql-login.sql)"
    return ""


def _trusts_any_certificate_remotely(connection_string: str, computer: str) -> bool:
    trust = (_keyword(connection_string, "trustservercertificate") or "").lower() in ("yes", "true", "1")
    server = (_keyword(connection_string, "server") or "").lower()
    host = re.sub(r"^(tcp:|np:|lpc:)", "", server).split("\\")[0].split(",")[0].strip()
    return trust and host not in LOCAL_SERVERS + (computer.lower(),)


def check_installation(settings, *, drivers: Callable[[], Sequence[str]],
                       connect: Callable[[str, int], Any], computer: str = "") -> tuple[list[str], list[str]]:
    """(problems, warnings) of the agent's SQL side: a supported ODBC driver installed, the driver of
    every connection string installed, every connection opened with its configured login and a
    `SELECT 1` answered. Messages never hold a password."""
    problems: list[str] = []
    warnings: list[str] = []
    installed = set(drivers())
    if not installed.intersection(SUPPORTED_ODBC_DRIVERS):
        problems.append("No Microsoft ODBC driver for SQL Server is installed (ODBC Driver 18 for SQL Server, "
                        "or 17): install ODBC Driver 18 for SQL Server (x64) first.")
    connections = list(connection_strings(settings))
    if not connections:
        problems.append("No SQL connection is configured: set [agent] server_odbc and one [[dossiers]] block "
                        "per company database in config.toml.")
    for what, connection_string in connections:
        driver = odbc_driver(connection_string)
        if driver and driver not in installed:
            problems.append(f"{what}: the ODBC driver '{driver}' is not installed on this computer "
                            f"(installed: {', '.join(sorted(installed)) or 'none'}).")
            continue
        if _trusts_any_certificate_remotely(connection_string, computer):
            warnings.append(f"{what}: TrustServerCertificate=yes accepts any certificate from a remote SQL Server; "
                            "trust its certificate instead (docs/troubleshooting.md).")
        try:
            connection = connect(connection_string, LOGIN_TIMEOUT_S)
            try:
                connection.cursor().execute("SELECT 1").fetchone()
            finally:
                connection.close()
        except Exception as exc:  # any driver error: said in words, the run stops before the service is set up
            message = redact(" ".join(str(a) for a in getattr(exc, "args", ())) or str(exc))
            problems.append(f"{what}: the connection failed: {message}{_certificate_hint(message)}")
    return problems, warnings


def _pyodbc_connect(connection_string: str, timeout_s: int):
    import pyodbc
    return pyodbc.connect(connection_string, timeout=timeout_s, autocommit=True)


def _pyodbc_drivers() -> list[str]:
    import pyodbc
    return list(pyodbc.drivers())


def cmd_check(config_path: Path, *, store: Optional[SecretStore] = None,
              drivers: Callable[[], Sequence[str]] = _pyodbc_drivers,
              connect: Callable[[str, int], Any] = _pyodbc_connect, out=None) -> int:
    out = out or sys.stdout
    from shared.errors import ConnectorError
    try:
        settings = load_agent_settings(config_path, store)
    except ConnectorError as exc:
        print(f"PROBLEM: {exc.user_message}", file=out)
        return 1
    try:
        problems, warnings = check_installation(settings, drivers=drivers, connect=connect,
                                                computer=os.environ.get("COMPUTERNAME", ""))
    except ImportError as exc:
        print(f"PROBLEM: pyodbc is not installed in the agent's environment ({exc}).", file=out)
        return 1
    for warning in warnings:
        print(f"WARNING: {warning}", file=out)
    for problem in problems:
        print(f"PROBLEM: {problem}", file=out)
    if problems:
        return 1
    print(f"OK: {len(list(connection_strings(settings)))} SQL connection(s) opened with their configured logins.",
          file=out)
    return 0


# --- the service's work ------------------------------------------------------------------------------
def run_cycle(settings, stop: threading.Event) -> list:
    """One run of every selected dossier, as `ssm-connector agent run` does at each interval."""
    from agent.checkpoint import Checkpoint
    from agent.relay import run_selected
    from shared.bus.factory import open_bus
    from shared.group_directory import directory_for

    bus = open_bus(settings.bus)
    try:
        checkpoint = Checkpoint(settings.agent.state_path)
        try:
            return run_selected(settings, checkpoint=checkpoint, bus=bus, stop=stop,
                                directory=directory_for(settings))
        finally:
            checkpoint.close()
    finally:
        bus.close()


def configure_service_logging(settings, config_path: Path) -> None:
    """The agent's JSON-lines log file (`[agent] log_path`, else logs\\agent.log beside config.toml)."""
    from shared.telemetry import configure_logging
    configure_logging(filename=settings.agent.log_path or str(Path(config_path).parent / "logs" / "agent.log"))


def run_agent(config_path: Path | str, stop: threading.Event, *, store: Optional[SecretStore] = None,
              cycle: Callable[[Any, threading.Event], list] = run_cycle,
              configure_logs: Callable[[Any, Path], None] = configure_service_logging,
              between: Optional[Callable[[Any, float, threading.Event], None]] = None) -> None:
    """Run the agent's cycle every `[agent] interval_s` until `stop` is set; in between, the cloud's
    commands (SSM → Sage) are applied as they come (`agent.cli.between_cycles`).

    Raises:
        ConnectorError: the configuration or a secret cannot be read (the service then fails, and the
            Service Control Manager restarts it after its delay).
    """
    from shared.telemetry import get_logger

    log = get_logger("agent.service")
    settings = load_agent_settings(config_path, store)
    configure_logs(settings, Path(config_path))
    log.info("service %s started: a cycle every %g s", SERVICE_NAME, settings.agent.interval_s)
    cycles = 0
    while not stop.is_set():
        cycles += 1
        try:
            results = cycle(settings, stop)
        except Exception as exc:  # a failed cycle is logged; the next one runs at its time
            if type(exc).__name__ in ("AgentBusyError", "ChoiceRequired"):   # waits for another process, or a choice
                log.warning("cycle %d: %s", cycles, getattr(exc, "user_message", exc))
            else:
                log.error("cycle %d failed: %s", cycles, getattr(exc, "user_message", exc), exc_info=True)
        else:
            failed = sum(1 for r in results if not getattr(r, "ok", True))
            log.info("cycle %d: %d dossier(s) synchronised, %d failed", cycles, len(results) - failed, failed)
        if between is None:
            from agent.cli import between_cycles as between
        between(settings, settings.agent.interval_s, stop)
    log.info("service %s stopped", SERVICE_NAME)


# --- `cli`: ssm-connector with the secrets resolved ----------------------------------------------------
def with_config(args: list[str], config_path: Path) -> list[str]:
    if args[:1] == ["agent"] and "--config" not in args:
        return [*args, "--config", str(config_path)]
    return args


def run_cli(args: list[str], config_path: Path, *,
            store_for: Callable[[Path], SecretStore] = SecretStore.beside) -> int:
    """`ssm-connector ARGS` whose agent commands read the configuration with its secrets resolved."""
    import agent.cli
    from local.cli import main as ssm_connector

    original = agent.cli.load_settings

    def load_with_secrets(path=None, **kwargs):
        settings = original(path, **kwargs)
        return resolve_settings(settings, store_for(Path(path) if path else config_path))

    agent.cli.load_settings = load_with_secrets
    try:
        return ssm_connector(with_config(list(args), config_path))
    finally:
        agent.cli.load_settings = original


# --- the Windows service -----------------------------------------------------------------------------
try:  # pywin32, on Windows only (`pywin32; sys_platform == "win32"` in the agent extra)
    import servicemanager
    import win32service
    import win32serviceutil
except ImportError:
    win32serviceutil = None

if win32serviceutil is not None:
    class SsmConnectorAgentService(win32serviceutil.ServiceFramework):
        _svc_name_ = SERVICE_NAME
        _svc_display_name_ = SERVICE_DISPLAY_NAME
        _svc_description_ = SERVICE_DESCRIPTION

        def __init__(self, args):
            super().__init__(args)
            self.stop_requested = threading.Event()

        def SvcStop(self):
            # the dossier in progress finishes; nothing is lost if the system cuts it (outbox, watermarks)
            self.ReportServiceStatus(win32service.SERVICE_STOP_PENDING, waitHint=STOP_WAIT_HINT_MS)
            self.stop_requested.set()

        SvcShutdown = SvcStop

        def SvcDoRun(self):
            servicemanager.LogMsg(servicemanager.EVENTLOG_INFORMATION_TYPE, servicemanager.PYS_SERVICE_STARTED,
                                  (self._svc_name_, ""))
            try:
                run_agent(default_config_path(), self.stop_requested)
            except Exception as exc:
                servicemanager.LogErrorMsg(f"{SERVICE_NAME} stopped on an error: "
                                           f"{getattr(exc, 'user_message', None) or repr(exc)}")
                # pythonservice then reports SERVICE_STOPPED with an error code: a failure, which the
                # service's recovery actions (sc.exe failure, failureflag 1) answer with a restart
                raise
            servicemanager.LogMsg(servicemanager.EVENTLOG_INFORMATION_TYPE, servicemanager.PYS_SERVICE_STOPPED,
                                  (self._svc_name_, ""))


# --- command line --------------------------------------------------------------------------------------
def main(argv: Optional[Sequence[str]] = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    command = argv[0] if argv else ""
    if command == "cli":
        return run_cli(argv[1:], default_config_path())
    if command in ("check", "protect"):
        parser = argparse.ArgumentParser(prog=f"ssmconn_service.py {command}")
        if command == "protect":
            parser.add_argument("name", help="secret name, as in ${secret:NAME}")
        parser.add_argument("--config", type=Path, default=default_config_path())
        args = parser.parse_args(argv[1:])
        if command == "check":
            return cmd_check(args.config)
        from shared.errors import ConnectorError
        # UTF-8 whatever the console's code page (install-agent.ps1 pipes it so), without BOM or end of line
        value = sys.stdin.buffer.read().decode("utf-8").lstrip("\ufeff").rstrip("\r\n")
        try:
            SecretStore.beside(args.config).put(args.name, value)
        except ConnectorError as exc:
            print(f"PROBLEM: {exc.user_message}", file=sys.stderr)
            return 1
        print(f"secret '{args.name}' stored, encrypted for this computer")
        return 0
    if win32serviceutil is None:
        print("The service commands (install, start, stop, remove, debug) need Windows and pywin32.", file=sys.stderr)
        return 2
    return win32serviceutil.HandleCommandLine(SsmConnectorAgentService, argv=[sys.argv[0], *argv]) or 0


if __name__ == "__main__":
    sys.exit(main())
