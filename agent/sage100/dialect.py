"""The SQL the Sage writer sends, per database engine: SQL Server (a real Sage 100) and SQLite
(the stand-in of tests and the demo). Every statement is parameterized; names come from code.

SQL Server: a write transaction is pyodbc's (autocommit off); counters are read under
`WITH (UPDLOCK, HOLDLOCK)` so two writers never take the same number, and an insert returns
its `cbMarq` through `OUTPUT inserted.cbMarq INTO` a table variable (an OUTPUT without INTO is
refused on tables with triggers, and Sage's triggers stay on). SQLite: `BEGIN IMMEDIATE` takes
the database's write lock first, and the new row's `cbMarq` is `last_insert_rowid()`.

The connector keeps one table of its own in the company database, `SSM_CONNECTOR_COMMANDS`: the
commands already applied, written in the same transaction as the Sage rows they created, so a
command applied twice (a redelivery, a crash before its result was sent) has one effect.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

COMMANDS_TABLE = "SSM_CONNECTOR_COMMANDS"
COMMANDS_COLUMNS = ("CMD_Id", "CMD_Op", "CMD_Entity", "CMD_Key", "CMD_Result", "CMD_AppliedAt")


@dataclass(frozen=True)
class Dialect:
    name: str
    begin: str | None          # the statement opening a write transaction, when the engine needs one
    lock: str                  # the hint that locks the rows a counter is read from
    now: str                   # the server's clock

    def select(self, table: str, columns: Sequence[str], where: Sequence[str], *, for_update: bool = False,
               extra: str = "") -> str:
        hint = self.lock if for_update else ""
        conditions = " AND ".join(f"{column} = ?" for column in where)
        return (f"SELECT {', '.join(columns)} FROM {table}{hint}"
                + (f" WHERE {conditions}" if conditions else "") + (f" {extra}" if extra else ""))

    def max_of(self, table: str, column: str, *, where: str = "") -> str:
        return f"SELECT MAX({column}) FROM {table}{self.lock}" + (f" WHERE {where}" if where else "")

    def keys_like(self, table: str, column: str) -> str:
        return f"SELECT {column} FROM {table}{self.lock} WHERE {column} LIKE ?"

    def insert(self, table: str, columns: Sequence[str]) -> str:
        names, marks = ", ".join(columns), ", ".join("?" for _ in columns)
        if self.name == MSSQL_NAME:
            return (f"SET NOCOUNT ON; DECLARE @marq TABLE (cbMarq int); INSERT INTO {table} ({names}) "
                    f"OUTPUT inserted.cbMarq INTO @marq VALUES ({marks}); SELECT cbMarq FROM @marq")
        return f"INSERT INTO {table} ({names}) VALUES ({marks})"

    @property
    def inserted_marq(self) -> str | None:
        """The query giving the last insert's `cbMarq` (None: the insert returned it)."""
        return None if self.name == MSSQL_NAME else "SELECT last_insert_rowid()"

    def update(self, table: str, columns: Sequence[str], where: Sequence[str]) -> str:
        assignments = ", ".join(f"{column} = ?" for column in columns)
        return f"UPDATE {table} SET {assignments} WHERE " + " AND ".join(f"{column} = ?" for column in where)

    def commands_table(self) -> str:
        text = "nvarchar(4000)" if self.name == MSSQL_NAME else "text"
        return (f"CREATE TABLE {COMMANDS_TABLE} (CMD_Id varchar(64) NOT NULL PRIMARY KEY, CMD_Op varchar(32) NOT NULL,"
                f" CMD_Entity varchar(32) NOT NULL, CMD_Key varchar(64), CMD_Result {text}, CMD_AppliedAt datetime)")


MSSQL_NAME, SQLITE_NAME = "mssql", "sqlite"
MSSQL = Dialect(MSSQL_NAME, begin=None, lock=" WITH (UPDLOCK, HOLDLOCK)", now="GETDATE()")
SQLITE = Dialect(SQLITE_NAME, begin="BEGIN IMMEDIATE", lock="", now="strftime('%Y-%m-%d %H:%M:%f','now')")


def dialect_of(connection) -> Dialect:
    from agent.odbc import is_sqlite
    return SQLITE if is_sqlite(connection) else MSSQL
