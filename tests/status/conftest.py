from __future__ import annotations

import pytest

from functions import status_http
from shared.status.report import StatusReader
from tests.status.sample import NOW, fill_sample_state, open_store


@pytest.fixture
def store(tmp_path):
    store = open_store(tmp_path / "state.db")
    fill_sample_state(store)
    yield store
    store.close()


@pytest.fixture
def reader(store) -> StatusReader:
    return StatusReader(store, group="Bijoux & Co", clock=lambda: NOW)


@pytest.fixture
def served_reader(reader):
    """The HTTP functions read from `reader` for the test's duration."""
    status_http.use_reader(reader)
    yield reader
    status_http.use_reader(None)
