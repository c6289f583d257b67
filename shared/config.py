"""Settings: one TOML file, overridable by environment variables (as Azure app settings are).

`SSMCONN__SECTION__FIELD=value` overrides `[section] field` (double underscores, as Azure
Functions uses for nested settings), e.g. `SSMCONN__SSM__PRIVATE_KEY`. Secrets are `SecretStr`:
they print as `**********` and never reach a log line.
"""
from __future__ import annotations

import os
import tomllib
from pathlib import Path
from typing import Literal, Optional

from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError, model_validator

from shared.errors import ConfigurationError

ENV_PREFIX = "SSMCONN__"
ACCOUNT_ADDRESSES = "accountAddresses"     # the SSM resource delivery addresses are synced to

# The app settings a Function App needs, besides the host's own (AzureWebJobsStorage__*,
# the trigger connection, Application Insights). infra/main.bicep sets every one of them.
CLOUD_APP_SETTINGS = (
    "SSMCONN__STATE__KIND",
    "SSMCONN__STATE__ACCOUNT_URL",
    "SSMCONN__BUS__KIND",
    "SSMCONN__BUS__FULLY_QUALIFIED_NAMESPACE",
    "SSMCONN__BUS__CHANGES_QUEUE",
    "SSMCONN__BUS__COMMANDS_QUEUE",
    "SSMCONN__SSM__BASE_URL",
    "SSMCONN__SSM__PUBLIC_KEY",
    "SSMCONN__SSM__PRIVATE_KEY",
    "AZURE_CLIENT_ID",
)


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid")


class SsmSettings(_Section):
    base_url: str = "https://api.forcemanager.com/api/v4"
    public_key: str = ""
    private_key: SecretStr = SecretStr("")
    timeout_s: float = 30.0
    max_concurrency: int = Field(default=4, ge=1, le=64)
    # The tenant's documented plan: 4 or 13 requests/s, or 50 per minute on Starter
    # (shared.ssm.contract.RATE_PLANS). The client paces itself a little under it.
    rate_limit_per_s: float = Field(default=4.0, gt=0)
    max_retries: int = Field(default=6, ge=0)
    page_size: int = Field(default=50, ge=1, le=1000)
    admin_user_email: Optional[str] = None
    branch: Optional[str] = None
    # Users created in SSM by `ssm-connector users`: the API requires a language among the
    # documented codes (shared.ssm.contract.USER_LANGUAGES) and a phone.
    user_language: str = "EN"
    user_phone_default: Optional[str] = None


class StateSettings(_Section):
    kind: Literal["sqlite", "azure-tables"] = "sqlite"
    path: str = "var/state.db"
    connection_string: Optional[SecretStr] = None
    account_url: Optional[str] = None
    table_prefix: str = ""


class BusSettings(_Section):
    kind: Literal["local", "service-bus"] = "local"
    path: str = "var/bus.db"
    connection_string: Optional[SecretStr] = None
    fully_qualified_namespace: Optional[str] = None
    changes_queue: str = "sage-changes"
    commands_queue: str = "sage-commands"
    max_delivery_count: int = Field(default=10, ge=1)
    redelivery_backoff_s: float = Field(default=5.0, ge=0)   # base of shared.sync.redelivery's wait
    lock_duration_s: float = Field(default=60.0, gt=0)
    duplicate_window_s: float = Field(default=600.0, gt=0)
    # Service Bus over AMQP on WebSockets (port 443 only) instead of AMQP on TCP port 5671, for
    # networks whose firewall or proxy lets only HTTPS out.
    websockets: bool = False


class AgentSettings(_Section):
    state_path: str = "var/agent.db"
    interval_s: float = Field(default=900.0, gt=0)
    overlap_s: float = Field(default=3600.0, ge=0)
    batch_rows: int = Field(default=1000, ge=1)
    # Processes sharing the full read of a large table (first load, realignment), the agent's own
    # included: 2 is the agent and one helper; 1 reads in the agent alone. At most the server's cores.
    read_workers: int = Field(default=2, ge=1, le=16)
    # A run's deletions of one entity are held, not sent, when above both (agent.detection.DeletionGuard).
    max_delete_fraction: float = Field(default=0.2, ge=0, le=1)
    max_delete_min: int = Field(default=50, ge=0)
    # A run re-reads every record this often (seconds; 0: never), whatever cbModification says: the
    # guard against a change saved without touching cbModification or a key renamed in place.
    full_scan_s: float = Field(default=86400.0, ge=0)
    log_path: Optional[str] = None          # JSON lines, rotated (10 MB x 10); None: console only
    server_odbc: Optional[SecretStr] = None
    # The Function App's HTTP base (https://<app>.azurewebsites.net/api) and a function key: where
    # the agent reads the dossiers its group already knows (shared.group_directory).
    cloud_url: Optional[str] = None
    cloud_key: Optional[SecretStr] = None
    # The longest one cycle of `ssm-connector local` (`--once` included) runs, whatever the data:
    # past it no new message is taken and what is left waits for the next cycle, said in French.
    cycle_max_s: float = Field(default=900.0, gt=0)


class StatusSettings(_Section):
    host: str = "127.0.0.1"
    port: int = 7071
    function_key: Optional[SecretStr] = None


class DossierSettings(_Section):
    id: str = Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_\-]+$")
    name: Optional[str] = None
    product: Literal["sage100", "sage50"] = "sage100"
    odbc: Optional[SecretStr] = None          # Sage 100: required
    # The connection the Sage writer uses (SSM → Sage): a second login allowed to write only the
    # tables it writes (infra/agent/sql-login.sql); None: the reading connection.
    odbc_writer: Optional[SecretStr] = None
    active: bool = True
    # The SSM branch whose records belong to this dossier (records created in SSM are routed by it);
    # None: the tenant's branch of `[ssm] branch`, else its first.
    ssm_branch: Optional[str] = None
    # The code of a prospect created in Sage from SSM: this prefix and the next free number.
    prospect_prefix: str = Field(default="SSM", min_length=1, max_length=10, pattern=r"^[A-Z0-9_\-]+$")
    # Sage 50 FR (agent.sage50): the folder its parametrable exports are written to (import files
    # go to its `import` subfolder), a layouts file replacing the shipped one, the age past which
    # the status page says the export is late, and how long a write waits for the export to show it.
    exchange: Optional[str] = None
    layouts: Optional[str] = None
    export_late_after_s: float = Field(default=7200.0, gt=0)
    confirm_within_s: float = Field(default=86400.0, gt=0)
    # The clients' delivery addresses sent to SSM's account addresses; None: when the SSM
    # contract documents their writes (shared.ssm.contract.documents_writes).
    delivery_addresses: Optional[bool] = None
    # The stock a priced quote shows per line: "all" depots summed, or the dossier's "default"
    # depot (the one Sage marks as its main depot).
    stock_depot: Literal["all", "default"] = "all"
    # Documents sent to SSM on the first run: those of this many fiscal years (as the Sage dossier
    # sets them), the current one included; 0: all. Older ones on demand: `ssm-connector agent history`.
    history_years: int = Field(default=2, ge=0, le=50)

    @property
    def syncs_delivery_addresses(self) -> bool:
        """Whether this dossier's delivery addresses go to SSM: as set, and never when the SSM
        contract does not document their writes (the client sends nothing it does not document)."""
        from shared.ssm.contract import documents_writes
        documented = documents_writes(ACCOUNT_ADDRESSES)
        return documented if self.delivery_addresses is None else (self.delivery_addresses and documented)

    @model_validator(mode="after")
    def _source_of_product(self):
        if self.product == "sage100" and self.odbc is None:
            raise ValueError(f"dossier {self.id}: a Sage 100 dossier needs `odbc`")
        return self            # a Sage 50 dossier's `exchange` is the agent's to need (agent.sage50.source)


class Settings(_Section):
    group: str = "default"
    ssm: SsmSettings = SsmSettings()
    state: StateSettings = StateSettings()
    bus: BusSettings = BusSettings()
    agent: AgentSettings = AgentSettings()
    status: StatusSettings = StatusSettings()
    dossiers: list[DossierSettings] = []

    @model_validator(mode="after")
    def _unique_dossiers(self):
        ids = [d.id for d in self.dossiers]
        dupes = {i for i in ids if ids.count(i) > 1}
        if dupes:
            raise ValueError(f"dossier ids listed twice: {sorted(dupes)}")
        return self

    def dossier(self, dossier_id: str) -> DossierSettings:
        for d in self.dossiers:
            if d.id == dossier_id:
                return d
        raise ConfigurationError(f"dossier '{dossier_id}' is not in the configuration")

    def validate_for_cloud(self) -> "Settings":
        """Raise ConfigurationError unless this is a complete cloud (Function App) configuration."""
        missing = []
        if self.state.kind != "azure-tables":
            missing.append("state.kind = azure-tables")
        elif not (self.state.account_url or self.state.connection_string):
            missing.append("state.account_url")
        if self.bus.kind != "service-bus":
            missing.append("bus.kind = service-bus")
        elif not (self.bus.fully_qualified_namespace or self.bus.connection_string):
            missing.append("bus.fully_qualified_namespace")
        if not self.ssm.public_key:
            missing.append("ssm.public_key")
        if not self.ssm.private_key.get_secret_value():
            missing.append("ssm.private_key")
        if missing:
            raise ConfigurationError("the cloud configuration lacks: " + ", ".join(missing)
                                     + " (app settings SSMCONN__SECTION__FIELD)")
        return self

    def resolve_paths(self, base: Path) -> "Settings":
        """Relative file paths are relative to the configuration file's folder."""
        def rel(p: str) -> str:
            return p if Path(p).is_absolute() else str((base / p).resolve())
        return self.model_copy(update={
            "state": self.state.model_copy(update={"path": rel(self.state.path)}),
            "bus": self.bus.model_copy(update={"path": rel(self.bus.path)}),
            "agent": self.agent.model_copy(update={
                "state_path": rel(self.agent.state_path),
                "log_path": rel(self.agent.log_path) if self.agent.log_path else None}),
            "dossiers": [d.model_copy(update={"exchange": rel(d.exchange) if d.exchange else None,
                                              "layouts": rel(d.layouts) if d.layouts else None})
                         for d in self.dossiers],
        })


def _apply_env(data: dict, environ: dict[str, str]) -> dict:
    for name, value in environ.items():
        if not name.startswith(ENV_PREFIX):
            continue
        path = [p.lower() for p in name[len(ENV_PREFIX):].split("__") if p]
        if not path:
            continue
        node = data
        for part in path[:-1]:
            node = node.setdefault(part, {})
            if not isinstance(node, dict):
                raise ConfigurationError(f"environment variable {name} does not name a setting")
        node[path[-1]] = value
    return data


def load_settings(path: str | Path | None = None, *, environ: Optional[dict[str, str]] = None) -> Settings:
    """Read the TOML file (if any), apply `SSMCONN__*` environment overrides, validate."""
    environ = dict(os.environ if environ is None else environ)
    data: dict = {}
    base = Path.cwd()
    if path is not None:
        path = Path(path)
        try:
            data = tomllib.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise ConfigurationError(f"configuration file {path} not found") from None
        except tomllib.TOMLDecodeError as exc:
            raise ConfigurationError(f"configuration file {path} is not valid TOML: {exc}") from None
        base = path.parent
    data = _apply_env(data, environ)
    try:
        settings = Settings.model_validate(data)
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())
        raise ConfigurationError(f"invalid configuration: {problems}") from None
    return settings.resolve_paths(base)
