"""Fixtures of the sync-core tests: the SSM simulator over HTTP, a SQLite state store, the service,
and an `AgentScript` that writes change envelopes the way the relay does."""
from __future__ import annotations

import itertools

import pytest

from local.simulator import SsmSimulator
from local.simulator.store import NUMBER
from shared.envelope import Envelope, EnvelopeBatch
from shared.models import Entity
from shared.ssm import SsmClient
from shared.state.repository import StateStore
from shared.state.sqlite_store import SqliteTableStore
from shared.sync import SyncService

PRODUCT_CUSTOM_FIELDS = ("Z_stock_disponible", "Z_tarif_1", "Z_tarif_2")


@pytest.fixture
def sim():
    with SsmSimulator(seed=11, tenant="bijou") as simulator:
        for name in PRODUCT_CUSTOM_FIELDS:
            simulator.add_custom_field("products", name, NUMBER)
        yield simulator


@pytest.fixture
def make_store(tmp_path):
    stores = []

    def build(name: str = "state.db") -> StateStore:
        store = StateStore(SqliteTableStore(tmp_path / name))
        store.ensure_tables()
        stores.append(store)
        return store

    yield build
    for store in stores:
        store.close()


@pytest.fixture
def store(make_store) -> StateStore:
    return make_store()


@pytest.fixture
def ssm(sim):
    client = SsmClient(sim.base_url, sim.public_key, sim.private_key, timeout_s=5.0, rate_limit_per_s=10000.0,
                       backoff_base_s=0.01, backoff_max_s=0.05, max_retries=3)
    yield client
    client.close()


@pytest.fixture
def make_service(sim, ssm):
    services = []

    def build(store: StateStore, **options) -> SyncService:
        service = SyncService(store, ssm, **{"max_workers": 4, "admin_user_email": sim.admin_email, **options})
        services.append(service)
        return service

    yield build
    for service in services:
        service.close()


@pytest.fixture
def service(make_service, store) -> SyncService:
    return make_service(store)


class AgentScript:
    """Writes a dossier's envelopes as the agent's relay does: run-start, changes, run-end."""

    _runs = itertools.count(1)

    def __init__(self, dossier: str):
        self.dossier = dossier
        self.run_id = None

    def start(self, *, realignment: bool = False) -> Envelope:
        self.run_id = f"run-{next(self._runs)}"
        return Envelope.run_marker(dossier=self.dossier, run_id=self.run_id, start=True, realignment=realignment)

    def end(self, **counts) -> Envelope:
        return Envelope.run_marker(dossier=self.dossier, run_id=self.run_id, start=False,
                                   counts=counts or {"read": 0})

    def upsert(self, record) -> Envelope:
        return Envelope.change(dossier=self.dossier, run_id=self.run_id or "run-0", entity=record.entity.value,
                               key=record.key, record=record.model_dump(mode="json", exclude={"entity", "key"}))

    def delete(self, entity: Entity | str, key: str) -> Envelope:
        return Envelope.change(dossier=self.dossier, run_id=self.run_id or "run-0", entity=Entity(entity).value,
                               key=key, record=None)

    def invalid(self, entity: Entity | str, key: str, error: str) -> Envelope:
        return Envelope.invalid(dossier=self.dossier, run_id=self.run_id or "run-0", entity=Entity(entity).value,
                                key=key, error=error, raw_hash=f"raw-{key}")

    def batch(self, *envelopes: Envelope) -> EnvelopeBatch:
        return EnvelopeBatch(dossier=self.dossier, envelopes=tuple(envelopes))

    def run(self, *records_or_envelopes, realignment: bool = False) -> EnvelopeBatch:
        """One whole run in one message: start, the changes (models become upserts), end."""
        start = self.start(realignment=realignment)
        changes = [item if isinstance(item, Envelope) else self.upsert(item) for item in records_or_envelopes]
        return self.batch(start, *changes, self.end(read=len(changes)))

    def changes(self, *records_or_envelopes) -> EnvelopeBatch:
        """Changes of the current run, without markers (a later message of the run)."""
        return self.batch(*(item if isinstance(item, Envelope) else self.upsert(item)
                            for item in records_or_envelopes))


@pytest.fixture
def agent() -> AgentScript:
    return AgentScript("BIJOU")
