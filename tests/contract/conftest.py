"""Table-store backends for the conformance suites: SQLite in a temporary file, and Azurite.

Azurite (the Azure Table Storage emulator, installed by `make test` into node_modules) is started
once per test session on a free loopback port, in memory, and stopped at the end. Each test gets
its own table prefix, so tests never see each other's rows. A missing Azurite fails the tests
instead of skipping them: a green run must mean both backends were exercised.

Other test folders reuse these fixtures with `from tests.contract.conftest import ...`.
"""
from __future__ import annotations

import queue
import re
import socket
import subprocess
import threading
import time
import uuid
from pathlib import Path
from typing import Callable, Iterator

import pytest

from shared.state.protocol import TableStore
from shared.state.sqlite_store import SqliteTableStore

ROOT = Path(__file__).resolve().parents[2]
AZURITE_BIN = ROOT / "node_modules" / ".bin" / "azurite-table"
AZURITE_ACCOUNT = "devstoreaccount1"
AZURITE_KEY = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="
STARTUP_TIMEOUT_S = 30.0
_PLUGIN_NAME = "ssmconn-azurite-tables"
_LISTENING = re.compile(r"successfully (?:started on|listening at) (?:https?://)?[\d.]+:(\d+)")


class AzuriteTables:
    """A running Azurite table service on 127.0.0.1."""

    def __init__(self, process: subprocess.Popen, port: int):
        self.process = process
        self.port = port

    @property
    def connection_string(self) -> str:
        return (f"DefaultEndpointsProtocol=http;AccountName={AZURITE_ACCOUNT};AccountKey={AZURITE_KEY};"
                f"TableEndpoint=http://127.0.0.1:{self.port}/{AZURITE_ACCOUNT};")

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _drain(stream, lines: "queue.Queue[str | None]") -> None:
    for line in stream:
        lines.put(line)
    lines.put(None)


def _launch(port: int) -> tuple[AzuriteTables | None, str]:
    """Start Azurite on `port`; the server once it listens, else None and what it printed."""
    process = subprocess.Popen(
        [str(AZURITE_BIN), "--inMemoryPersistence", "--tableHost", "127.0.0.1", "--tablePort", str(port),
         "--skipApiVersionCheck", "--disableTelemetry"],
        cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    lines: "queue.Queue[str | None]" = queue.Queue()
    threading.Thread(target=_drain, args=(process.stdout, lines), daemon=True).start()
    output: list[str] = []
    deadline = time.monotonic() + STARTUP_TIMEOUT_S
    while time.monotonic() < deadline:
        try:
            line = lines.get(timeout=0.2)
        except queue.Empty:
            continue
        if line is None:
            break
        output.append(line)
        match = _LISTENING.search(line)
        if match:
            reported = int(match.group(1))
            return AzuriteTables(process, reported or port), "".join(output)
    AzuriteTables(process, port).stop()
    return None, "".join(output)


def start_azurite() -> AzuriteTables:
    if not AZURITE_BIN.exists():
        pytest.fail(f"Azurite is not installed ({AZURITE_BIN} is missing): run `npm install` in {ROOT} "
                    "(`make test` does it). The Azure Table Storage tests cannot run without it.",
                    pytrace=False)
    output = ""
    for _ in range(3):
        server, output = _launch(_free_port())
        if server is not None:
            return server
    pytest.fail(f"Azurite did not start:\n{output}", pytrace=False)


@pytest.fixture(scope="session")
def azurite(request: pytest.FixtureRequest) -> AzuriteTables:
    """The session's Azurite, started on first use (one process even when several test folders
    import this fixture) and stopped when the session ends."""
    manager = request.config.pluginmanager
    server = manager.get_plugin(_PLUGIN_NAME)
    if server is None:
        server = start_azurite()
        manager.register(server, _PLUGIN_NAME)
        request.config.add_cleanup(server.stop)
    return server


class Backend:
    """One backend for one test: `open()` gives stores that all see the same tables (as two
    processes would), each closed at the end of the test."""

    def __init__(self, name: str, opener: Callable[[], TableStore]):
        self.name = name
        self._opener = opener
        self._opened: list[TableStore] = []

    def open(self) -> TableStore:
        store = self._opener()
        self._opened.append(store)
        return store

    def close(self) -> None:
        for store in self._opened:
            store.close()


BACKENDS = [pytest.param("sqlite", id="sqlite"),
            pytest.param("azurite", id="azurite", marks=pytest.mark.azurite)]


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Backend]:
    if request.param == "sqlite":
        path = tmp_path / "state.db"
        chosen = Backend("sqlite", lambda: SqliteTableStore(path))
    else:
        from shared.adapters.azure_tables import AzureTableStore

        server = request.getfixturevalue("azurite")
        prefix = "t" + uuid.uuid4().hex[:12]
        chosen = Backend("azurite", lambda: AzureTableStore.from_connection_string(
            server.connection_string, table_prefix=prefix))
    yield chosen
    chosen.close()


@pytest.fixture
def table_store(backend: Backend) -> TableStore:
    return backend.open()
