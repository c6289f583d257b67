"""Fixtures of the Function App tests: the SSM simulator and settings pointing at it."""
from __future__ import annotations

import pytest

from local.simulator.server import SsmSimulator
from shared.config import BusSettings, Settings, SsmSettings, StateSettings


@pytest.fixture
def simulator():
    with SsmSimulator(seed=3) as sim:
        sim.seed_user("Élodie", "Lefèvre", "elodie.lefevre@bijou.fr")     # the dossier's rep, invited in SSM
        yield sim


def function_settings(simulator, tmp_path, *, ssm: dict | None = None, bus: dict | None = None) -> Settings:
    """Settings of the handlers: the simulator as SSM, a SQLite store and bus under `tmp_path`."""
    return Settings(
        ssm=SsmSettings(base_url=simulator.base_url, public_key=simulator.public_key,
                        private_key=simulator.private_key, admin_user_email=simulator.admin_email,
                        **{"rate_limit_per_s": 500, **(ssm or {})}),
        state=StateSettings(path=str(tmp_path / "state.db")),
        bus=BusSettings(path=str(tmp_path / "bus.db"), **{"redelivery_backoff_s": 0.01, **(bus or {})}))
