"""Fixtures of the SSM tests: a simulator served over HTTP and fast clients talking to it."""
from __future__ import annotations

import time

import pytest

from local.simulator import ManualClock, SsmSimulator
from shared.ssm import SsmClient


class RecordingSleep:
    """The client's `sleep`: remembers every delay; really sleeps only when `real` is set."""

    def __init__(self, real: bool = False):
        self.real = real
        self.delays: list[float] = []

    def __call__(self, seconds: float) -> None:
        self.delays.append(seconds)
        if self.real:
            time.sleep(seconds)


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock()


@pytest.fixture
def sim(clock):
    with SsmSimulator(seed=7, clock=clock) as simulator:
        yield simulator
        assert not simulator.internal_errors


@pytest.fixture
def make_client(sim):
    """Build clients on the simulator with fast defaults; every one is closed after the test."""
    clients: list[SsmClient] = []

    def build(**options) -> SsmClient:
        settings = dict(timeout_s=2.0, rate_limit_per_s=10000.0, backoff_base_s=0.01,
                        backoff_max_s=0.05, max_retries=4, page_size=100)
        settings.update(options)
        public_key = settings.pop("public_key", sim.public_key)
        private_key = settings.pop("private_key", sim.private_key)
        client = SsmClient(sim.base_url, public_key, private_key, **settings)
        clients.append(client)
        return client

    yield build
    for client in clients:
        client.close()


@pytest.fixture
def client(make_client) -> SsmClient:
    return make_client()


@pytest.fixture
def account_body(sim):
    """`account_body(name, **fields)`: a valid account body for this tenant."""
    def build(name: str, **fields) -> dict:
        return {"name": name, "branchId": sim.branch_id, "salesRepId1": sim.admin_id, **fields}
    return build


@pytest.fixture
def recording_sleep() -> RecordingSleep:
    return RecordingSleep()
