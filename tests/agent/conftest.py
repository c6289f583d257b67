"""Fixtures of the agent tests: demo Sage 100 databases in SQLite, opened through pyodbc with the
SQLite ODBC driver (`Driver=SQLite3`), exactly as the agent opens SQL Server."""
from __future__ import annotations

import shutil
from pathlib import Path
from typing import Callable

import pyodbc
import pytest

from agent.demo_builder import build_demo_dossier
from agent.odbc import connect, sqlite_connection_string
from agent.sage100.reader import Sage100Reader
from agent_support import Harness, build_dossier


@pytest.fixture(scope="session")
def tiny_template(tmp_path_factory) -> Path:
    """A tiny BIJOU dossier with the deliberately bad rows; copy it before changing it."""
    path = tmp_path_factory.mktemp("sage-template") / "BIJOU.db"
    build_demo_dossier(path, size="tiny", bad_rows=True)
    return path


@pytest.fixture
def dossier(tiny_template, tmp_path) -> Path:
    """A private copy of the tiny dossier, free to change."""
    path = tmp_path / "BIJOU.db"
    shutil.copyfile(tiny_template, path)
    return path


@pytest.fixture
def open_sage() -> Callable[[Path], pyodbc.Connection]:
    """Opens pyodbc connections to SQLite dossiers; all are closed after the test."""
    connections: list[pyodbc.Connection] = []

    def opener(path: Path) -> pyodbc.Connection:
        connection = connect(sqlite_connection_string(path))
        connections.append(connection)
        return connection

    yield opener
    for connection in connections:
        connection.close()


@pytest.fixture
def reader(dossier, open_sage) -> Sage100Reader:
    return Sage100Reader(open_sage(dossier))


@pytest.fixture
def agent(tmp_path) -> Harness:
    """An agent (checkpoint + local bus) in a temporary folder, closed after the test."""
    harness = Harness(tmp_path)
    yield harness
    harness.close()


@pytest.fixture
def bijou(agent) -> Path:
    """The BIJOU demo dossier in the agent's folder."""
    return build_dossier(agent.folder, "BIJOU")
