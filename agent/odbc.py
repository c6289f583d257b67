"""ODBC access to Sage databases: connecting, schema introspection, text decoding, redaction.

Everything the agent reads from Sage goes through pyodbc: SQL Server with Microsoft's driver in
production, the SQLite ODBC driver (`Driver=SQLite3`) in tests and the demo. Connections are
opened with autocommit off so a read runs in one transaction the caller ends; introspection uses
the ODBC catalog (`cursor.columns()`), which both drivers implement, instead of vendor views.
Connection strings are shown only through `redact()`, which hides passwords and keys.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import pyodbc

from shared.messages import text as message_text
from shared.errors import ConfigurationError, RetryableError

DEFAULT_LOGIN_TIMEOUT = 15
DEFAULT_QUERY_TIMEOUT = 300
SQLITE_DRIVER = "SQLite3"

_TEXT_TYPES = frozenset({pyodbc.SQL_CHAR, pyodbc.SQL_VARCHAR, pyodbc.SQL_LONGVARCHAR,
                         pyodbc.SQL_WCHAR, pyodbc.SQL_WVARCHAR, pyodbc.SQL_WLONGVARCHAR})
_SECRET_KEYS = ("pwd", "password", "accountkey", "sharedaccesskey", "secret", "token")
_SECRET_PAIR = re.compile(
    r"(?P<key>(?<![^;\s])(?:" + "|".join(_SECRET_KEYS) + r")\s*=\s*)(?P<value>\{(?:[^}]|\}\})*\}|[^;]*)",
    re.IGNORECASE,
)


def redact(connection_string: str) -> str:
    """The connection string with every password, key or token replaced by `***`."""
    return _SECRET_PAIR.sub(lambda m: m.group("key") + "***", connection_string or "")


def sqlite_connection_string(path: str | Path) -> str:
    """The ODBC connection string of a SQLite file through the SQLite3 ODBC driver."""
    return f"Driver={SQLITE_DRIVER};Database={Path(path)}"


def connection_path(connection_string: str) -> Path | None:
    """The file of a SQLite ODBC connection string (`Database=`), None for any other driver."""
    if SQLITE_DRIVER.lower() not in connection_string.lower().replace("{", "").replace("}", ""):
        return None
    match = re.search(r"(?:^|;)\s*Database\s*=\s*(\{[^}]*\}|[^;]*)", connection_string, re.IGNORECASE)
    if not match:
        return None
    return Path(match.group(1).strip().strip("{}"))


@dataclass(frozen=True)
class TextDecoding:
    """How the bytes of `varchar` columns become text.

    `encoding=None` keeps what the driver returns (the SQLite driver and Microsoft's driver on
    Linux already hand out UTF-8); `"cp1252"` is for drivers that pass a French SQL Server's
    varchar bytes through unconverted.
    """

    encoding: str | None = None

    def apply(self, connection: pyodbc.Connection) -> None:
        if self.encoding:
            connection.setdecoding(pyodbc.SQL_CHAR, encoding=self.encoding)


def connect(odbc_connection_string: str, *, login_timeout: int = DEFAULT_LOGIN_TIMEOUT,
            query_timeout: int = DEFAULT_QUERY_TIMEOUT, text_encoding: str | None = None) -> pyodbc.Connection:
    """Open an ODBC connection with autocommit off, a login timeout and a query timeout.

    Raises:
        ConfigurationError: the driver is not installed or the connection string is malformed.
        RetryableError: the database did not answer (server down, network, locked file).
    """
    try:
        connection = pyodbc.connect(odbc_connection_string, autocommit=False, timeout=login_timeout)
    except pyodbc.InterfaceError as error:
        raise ConfigurationError(
            message_text("agent.odbc.driver"),
            detail=f"{redact(odbc_connection_string)}: {_first_line(error)}",
        ) from None
    except pyodbc.Error as error:
        raise RetryableError(
            message_text("agent.odbc.unreachable"),
            detail=f"{redact(odbc_connection_string)}: {_first_line(error)}",
        ) from None
    connection.timeout = query_timeout
    TextDecoding(text_encoding).apply(connection)
    return connection


def _first_line(error: Exception) -> str:
    text = " ".join(str(arg) for arg in error.args) if error.args else str(error)
    return redact(text.splitlines()[0] if text else type(error).__name__)


def dbms_name(connection: pyodbc.Connection) -> str:
    """The server product as the driver names it: "Microsoft SQL Server", "SQLite", ..."""
    return connection.getinfo(pyodbc.SQL_DBMS_NAME) or ""


def is_sqlite(connection: pyodbc.Connection) -> bool:
    return dbms_name(connection).lower().startswith("sqlite")


def _columns(connection: pyodbc.Connection, table: str) -> list:
    cursor = connection.cursor()
    try:
        return [row for row in cursor.columns(table=table) if row.table_name.lower() == table.lower()]
    finally:
        cursor.close()


def table_exists(connection: pyodbc.Connection, table: str) -> bool:
    cursor = connection.cursor()
    try:
        return any(row.table_name.lower() == table.lower() for row in cursor.tables(table=table))
    finally:
        cursor.close()


def column_exists(connection: pyodbc.Connection, table: str, column: str) -> bool:
    return any(row.column_name.lower() == column.lower() for row in _columns(connection, table))


def column_widths(connection: pyodbc.Connection, table: str) -> dict[str, int]:
    """The declared width of every text column of `table`, as the database reports it.

    Widths differ between Sage versions (`CT_Intitule` is 35 or 69), so writers check values
    against these rather than against constants.
    """
    return {row.column_name: int(row.column_size) for row in _columns(connection, table)
            if row.data_type in _TEXT_TYPES and row.column_size}
