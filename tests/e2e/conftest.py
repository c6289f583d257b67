"""The whole pipeline on one machine: demo Sage companies (SQLite through the ODBC driver), the
agent, the local bus, the Function App's registered handlers driven by the local dispatcher, the
SQLite state store, and the SSM simulator over real HTTP."""
from __future__ import annotations

import sqlite3
from collections import Counter
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Optional

import pytest

from agent.demo_builder import build_demo_dossier
from local.demo import free_port, write_config
from local.runtime import CycleSummary, LocalRuntime
from local.simulator.faults import FaultPlan
from local.simulator.server import SsmSimulator
from shared.config import Settings, load_settings

SSM_RESOURCES = ("users", "accounts", "contacts", "productFamilies", "products", "salesorders",
                 "salesordersLines", "sales")
VOLATILE_FIELDS = frozenset({"id", "dateCreated", "dateUpdated", "dateDeleted", "salesRepIdCreated",
                             "salesRepIdUpdated", "salesRepIdDeleted"})
FAST_CLIENT = {"SSMCONN__SSM__RATE_LIMIT_PER_S": "1000", "SSMCONN__SSM__MAX_CONCURRENCY": "4"}
FAST_REDELIVERY = {"SSMCONN__BUS__REDELIVERY_BACKOFF_S": "0.01"}


def decimal(value) -> Optional[Decimal]:
    return None if value is None else Decimal(str(value))


def comparable(record: dict) -> dict:
    """A record without its ids and dates, references by label: equal across two SSM tenants."""
    out = {}
    for name, value in record.items():
        if name in VOLATILE_FIELDS:
            continue
        if isinstance(value, dict):
            value = value.get("value", value.get("description"))
        out[name] = value
    return out


def assert_never_duplicated(pipeline) -> None:
    """No SSM record was ever created twice (deleted ones count): one per extId, and for lines,
    which have none, one per order and position."""
    for resource in SSM_RESOURCES:
        records = pipeline.simulator.records(resource)
        if resource == "salesordersLines":
            every = [(r["salesorderId"]["id"], r["order"]) for r in records if not r.get("deleted")]
        elif resource == "productFamilies":           # no extId: one per name
            every = [r["descriptionFR"] for r in records]
        else:
            every = [r.get("extId") for r in records]
        assert len(every) == len(set(every)), f"{resource}: a duplicate was created"


def keep_documents(database: Path, one_in: int) -> None:
    """Keep one sales document in `one_in` (with its lines), before anything is synchronised."""
    connection = sqlite3.connect(database)
    try:
        with connection:
            connection.execute(
                "DELETE FROM F_DOCLIGNE WHERE EXISTS (SELECT 1 FROM F_DOCENTETE e WHERE e.DO_Domaine = F_DOCLIGNE.DO_Domaine"
                " AND e.DO_Type = F_DOCLIGNE.DO_Type AND e.DO_Piece = F_DOCLIGNE.DO_Piece AND e.cbMarq % ? <> 0)",
                (one_in,))
            connection.execute("DELETE FROM F_DOCENTETE WHERE cbMarq % ? <> 0", (one_in,))
    finally:
        connection.close()


@dataclass
class Pipeline:
    folder: Path
    simulator: SsmSimulator
    settings: Settings
    runtime: LocalRuntime
    databases: dict[str, Path]
    owned: list = field(default_factory=list)

    def run(self) -> CycleSummary:
        return self.runtime.run_once()

    @property
    def config_path(self) -> Path:
        return self.folder / "config.toml"

    def sage(self, dossier: str, sql: str, params: tuple = ()) -> list[sqlite3.Row]:
        connection = sqlite3.connect(self.databases[dossier])
        connection.row_factory = sqlite3.Row
        try:
            return connection.execute(sql, params).fetchall()
        finally:
            connection.close()

    def live(self, resource: str) -> dict[str, dict]:
        """SSM records not deleted, by extId (asserting there is one per extId). Lines have no
        extId: they are keyed `<their order's extId>/<order>` (Sage's DL_Ligne)."""
        records = [r for r in self.simulator.records(resource) if not r.get("deleted")]
        if resource == "salesordersLines":
            orders = {r["id"]: r.get("extId") for r in self.simulator.records("salesorders")}
            keys = [f"{orders.get(r['salesorderId']['id'])}/{r['order']}" for r in records]
        elif resource == "productFamilies":           # no extId either: by name
            keys = [r.get("descriptionFR") for r in records]
        else:
            keys = [r.get("extId") for r in records]
        duplicates = [key for key, n in Counter(keys).items() if key and n > 1]
        assert not duplicates, f"{resource}: several live records for {duplicates[:5]}"
        return {key: r for key, r in zip(keys, records) if key}

    def seed_reps(self) -> None:
        """The sales reps of every dossier made SSM users, as `ssm-connector users` creates them."""
        from shared.sync.binder import external_id

        for dossier in self.databases:
            for rep in self.sage(dossier, "SELECT CO_No, CO_Prenom, CO_Nom, CO_EMail FROM F_COLLABORATEUR"
                                          " WHERE CO_EMail IS NOT NULL AND TRIM(CO_EMail) <> ''"):
                self.simulator.seed_user(rep["CO_Prenom"] or rep["CO_Nom"], rep["CO_Nom"], rep["CO_EMail"].strip(),
                                         ext_id=external_id(dossier, str(rep["CO_No"])))

    def ssm(self, resource: str, ext_id: str) -> dict:
        return self.live(resource)[ext_id]

    def ssm_id(self, dossier: str, entity: str, key: str) -> int:
        link = self.runtime.store.get_link(dossier, entity, key)
        assert link is not None and link.ssm_id is not None, f"{dossier} {entity} {key} is not linked"
        return link.ssm_id

    def close(self) -> None:
        self.runtime.close()
        for closable in self.owned:
            closable.close()
        self.simulator.stop()


@pytest.fixture
def make_pipeline(tmp_path):
    """Build a pipeline: `make_pipeline(companies=("BIJOU",), size="tiny", ...)`."""
    made: list[Pipeline] = []

    def make(*, companies: tuple[str, ...] = ("BIJOU",), size: str = "tiny", bad_rows: bool = False,
             faults: Optional[FaultPlan] = None, environ: Optional[dict] = None, client_options: Optional[dict] = None,
             documents_one_in: int = 1, folder: Optional[Path] = None, reps_in_ssm: bool = True,
             dossier_settings: Optional[dict] = None, before_start=None) -> Pipeline:
        folder = folder or tmp_path / f"pipeline{len(made)}"
        folder.mkdir(parents=True)
        databases = {company: build_demo_dossier(folder / f"{company}.db", size=size, seed=seed, company=company,
                                                 bad_rows=bad_rows).path
                     for seed, company in enumerate(companies)}
        if documents_one_in > 1:
            for database in databases.values():
                keep_documents(database, documents_one_in)
        simulator = SsmSimulator(seed=11, faults=faults).start("127.0.0.1", 0)
        if before_start is not None:
            before_start(simulator)
        config = write_config(folder, base_url=simulator.base_url, public_key=simulator.public_key,
                              private_key=simulator.private_key, admin_email=simulator.admin_email,
                              dossiers=[(c, f"Société {c}", p) for c, p in databases.items()], status_port=free_port(),
                              dossier_settings=dossier_settings)
        settings = load_settings(config, environ={**FAST_CLIENT, **FAST_REDELIVERY, **(environ or {})})
        owned = []
        service = None
        if client_options is not None:
            from shared.ssm.client import SsmClient
            from shared.state.factory import open_state_store
            from shared.sync.service import SyncService

            store = open_state_store(settings.state)
            store.ensure_tables()
            client = SsmClient(settings.ssm.base_url, settings.ssm.public_key, settings.ssm.private_key,
                               **client_options)
            owned = [client, store]
            service = SyncService(store, client, admin_user_email=settings.ssm.admin_user_email,
                                  max_workers=settings.ssm.max_concurrency)
        pipeline = Pipeline(folder, simulator, settings, LocalRuntime(settings, sync_service=service), databases, owned)
        if reps_in_ssm:
            pipeline.seed_reps()
        made.append(pipeline)
        return pipeline

    yield make
    for pipeline in made:
        pipeline.close()
