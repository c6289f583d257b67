"""The company databases the agent can see, and which of them it synchronises.

Two places list databases: the Sage 100 server named by `[agent] server_odbc` (on SQL Server, every
online database the login may open that has Sage 100's tiers table, `COMPANY_TABLE`; for the local
runtime and the demo, `Driver=SQLite3;Database=<folder>` names a folder whose SQLite files with
that table are the company databases), and the `[[dossiers]]` of the configuration, each with its
own connection string (or, Sage 50 FR, its exchange folder). Whether a dossier is synchronised is
its lifecycle state (`shared.lifecycle`, kept by `agent.dossiers`): chosen with `agent select`, or
listed in the configuration with `active = true` and not deselected since; `active = false`
deactivates it.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

from agent.checkpoint import Checkpoint
from agent.sage100.schema import COMPANY_INFO_TABLE, COMPANY_TABLE
from agent.dossiers import AgentDossiers
from shared.lifecycle import State, is_running
from shared.messages import text
from shared.config import Settings
from shared.errors import ConfigurationError

SQLITE_SUFFIXES = (".db", ".sqlite", ".sqlite3")
_DOSSIER_ID = re.compile(r"^[A-Za-z0-9_\-]{1,64}$")
_DATABASE_PART = re.compile(r"(?:^|;)\s*(?:Database|Initial Catalog)\s*=\s*(\{(?:[^}]|\}\})*\}|[^;]*)", re.IGNORECASE)


@dataclass(frozen=True)
class CompanyDatabase:
    """One Sage company database the agent can reach. `odbc` may hold a password: never print it."""

    id: str
    company_name: Optional[str]
    source: str                 # "server" or "config"
    odbc: str
    active: bool = True         # False for a configuration entry with `active = false`


def with_database(server_connection_string: str, database: str) -> str:
    """The server connection string pointed at one database (`Database=` replaced or added)."""
    value = "{" + database.replace("}", "}}") + "}" if re.search(r"[;{}=\s]", database) else database
    stripped = _DATABASE_PART.sub("", server_connection_string).strip().strip(";")
    return f"{stripped};Database={value}"


def _sqlite_folder(server_connection_string: str) -> Optional[Path]:
    from agent.odbc import connection_path

    path = connection_path(server_connection_string)
    return path if path is not None and path.is_dir() else None


def sqlite_company_databases(folder: Path) -> list[CompanyDatabase]:
    """The SQLite files of `folder` that hold a Sage 100 company (a `COMPANY_TABLE`)."""
    from agent.odbc import connect, sqlite_connection_string, table_exists

    found = []
    for path in sorted(folder.iterdir()):
        if path.suffix.lower() not in SQLITE_SUFFIXES or not path.is_file() or not _DOSSIER_ID.match(path.stem):
            continue
        odbc = sqlite_connection_string(path)
        connection = connect(odbc)
        try:
            if not table_exists(connection, COMPANY_TABLE):
                continue
            found.append(CompanyDatabase(path.stem, _company_name(connection, COMPANY_INFO_TABLE), "server", odbc))
        finally:
            connection.rollback()
            connection.close()
    return found


def sqlserver_company_databases(server_connection_string: str) -> list[CompanyDatabase]:
    """Online databases of the SQL Server this login may open that contain `dbo.<COMPANY_TABLE>`."""
    from agent.odbc import connect

    connection = connect(server_connection_string)
    try:
        cursor = connection.cursor()
        names = [row[0] for row in cursor.execute(
            "SELECT name FROM sys.databases WHERE database_id > 4 AND state_desc = 'ONLINE'"
            " AND HAS_DBACCESS(name) = 1 ORDER BY name").fetchall()]
        found = []
        for name in names:
            quoted = "[" + name.replace("]", "]]") + "]"
            present = cursor.execute("SELECT OBJECT_ID(?, 'U')", f"{quoted}.dbo.{COMPANY_TABLE}").fetchone()[0]
            if present is None or not _DOSSIER_ID.match(name):
                continue
            found.append(CompanyDatabase(name, _company_name(connection, f"{quoted}.dbo.{COMPANY_INFO_TABLE}"), "server",
                                         with_database(server_connection_string, name)))
        cursor.close()
        return found
    finally:
        connection.rollback()
        connection.close()


def _company_name(connection, table: str) -> Optional[str]:
    import pyodbc

    from agent.normalize import text

    cursor = connection.cursor()
    try:
        row = cursor.execute(f"SELECT D_RaisonSoc FROM {table} ORDER BY cbMarq").fetchone()
        return text(row[0]) if row else None
    except pyodbc.Error:
        return None
    finally:
        cursor.close()


def server_databases(settings: Settings) -> list[CompanyDatabase]:
    """The company databases of `[agent] server_odbc` (none when it is not set)."""
    if settings.agent.server_odbc is None or not settings.agent.server_odbc.get_secret_value():
        return []
    server = settings.agent.server_odbc.get_secret_value()
    folder = _sqlite_folder(server)
    if folder is not None:
        return sqlite_company_databases(folder)
    return sqlserver_company_databases(server)


def list_databases(settings: Settings) -> tuple[list[CompanyDatabase], Optional[str]]:
    """Configured dossiers plus the server's company databases, and the server's error if any.

    A database both configured and on the server is listed once, with the configured connection.
    """
    listed = {d.id: CompanyDatabase(d.id, d.name, "config", d.odbc.get_secret_value() if d.odbc else "", d.active)
              for d in settings.dossiers}
    error = None
    try:
        for database in server_databases(settings):
            listed.setdefault(database.id, database)
    except Exception as exc:  # the server may be down: configured dossiers are still listed
        error = str(exc)
    return sorted(listed.values(), key=lambda d: d.id.lower()), error


def writer_connection_string_for(settings: Settings, dossier: str) -> str:
    """The ODBC connection string the Sage writer uses: the dossier's `odbc_writer`, else its reading one."""
    for configured in settings.dossiers:
        if configured.id == dossier and configured.odbc_writer is not None:
            return configured.odbc_writer.get_secret_value()
    return connection_string_for(settings, dossier)


def connection_string_for(settings: Settings, dossier: str) -> str:
    """The ODBC connection string of one dossier.

    Raises:
        ConfigurationError: the dossier is neither configured nor on the configured server.
    """
    for configured in settings.dossiers:
        if configured.id == dossier and configured.odbc is not None:
            return configured.odbc.get_secret_value()
    if settings.agent.server_odbc is not None and settings.agent.server_odbc.get_secret_value():
        server = settings.agent.server_odbc.get_secret_value()
        folder = _sqlite_folder(server)
        if folder is None:
            return with_database(server, dossier)
        for suffix in SQLITE_SUFFIXES:
            if (folder / f"{dossier}{suffix}").is_file():
                from agent.odbc import sqlite_connection_string
                return sqlite_connection_string(folder / f"{dossier}{suffix}")
    raise ConfigurationError(text("agent.database_unknown", dossier=dossier))


def dossier_state(settings: Settings, checkpoint: Checkpoint, dossier: str) -> State:
    """The dossier's lifecycle state on this agent."""
    return AgentDossiers(checkpoint, settings).state(dossier)


def is_selected(settings: Settings, checkpoint: Checkpoint, dossier: str) -> bool:
    """Whether the agent runs the dossier (its state lets Sage → SSM through)."""
    return is_running(dossier_state(settings, checkpoint, dossier))


def selected_dossiers(settings: Settings, checkpoint: Checkpoint) -> list[str]:
    """Dossiers to synchronise, in a stable order."""
    return AgentDossiers(checkpoint, settings).running()


def database_identity(settings: Settings, dossier: str) -> dict:
    """What identifies the company database of `dossier` (its company name and SIRET, the
    database's creation date, as its source adapter reads them), read without running it.

    Raises:
        ConfigurationError: the dossier is neither configured nor on the configured server.
    """
    from agent.detection import identity_dict
    from agent.sources import adapter_for

    with adapter_for(settings, dossier).open_source(settings, dossier)() as (_, reader):
        return identity_dict(reader.identity())
