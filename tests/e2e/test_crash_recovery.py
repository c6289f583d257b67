"""`ssm-connector local` killed hard (SIGKILL) again and again during a first load, then run to
the end: the next run takes over what the killed ones held (the agent's run lock, the bus
session they had locked) at once, resumes, and SSM ends exactly as after one clean run — every
Sage record once, nothing missing, nothing dead-lettered without its incident."""
from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from shared.bus.local_bus import LocalBus
from shared.messages import text
from shared.state.factory import open_state_store
from shared.state.records import IncidentState
from tests.e2e.conftest import FAST_CLIENT, FAST_REDELIVERY, SSM_RESOURCES, assert_never_duplicated
from tests.e2e.test_faults import ssm_state

ROOT = Path(__file__).resolve().parents[2]
D = "BIJOU"
KILLS = 6
KILL_SEED = int(os.environ.get("SSMCONN_TEST_KILL_SEED", "20261206"))


def local_once(config: Path, cwd: Path) -> subprocess.Popen:
    environ = {k: v for k, v in os.environ.items() if not k.startswith("SSMCONN")}
    environ.update({**FAST_CLIENT, **FAST_REDELIVERY, "PYTHONPATH": str(ROOT)})
    return subprocess.Popen([sys.executable, "-m", "local.cli", "local", "--config", str(config), "--once",
                             "--no-status"], cwd=cwd, env=environ, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, encoding="utf-8")


def pending(pipeline) -> int:
    bus = LocalBus(pipeline.settings.bus.path)
    try:
        return bus.pending_count(pipeline.settings.bus.changes_queue)
    finally:
        bus.close()


def ssm_count(pipeline) -> int:
    return sum(len(pipeline.simulator.records(resource)) for resource in SSM_RESOURCES)


def total(state: dict) -> int:
    return sum(len(records) for records in state.values())


def test_a_first_load_killed_six_times_converges_exactly_on_the_next_run(make_pipeline, tmp_path):
    reference = make_pipeline(size="small", documents_one_in=2)
    assert reference.run().ok
    expected = ssm_state(reference)
    assert total(expected) > 2500

    crashed = make_pipeline(size="small", documents_one_in=2)
    crashed.runtime.close()            # the commands open their own runtime; only the simulator stays up
    rng = random.Random(KILL_SEED)
    kills, outputs, progress = 0, [], []
    while kills < KILLS:
        # kill at a random point after the run got going: in the agent's sending (a message more on
        # the bus) or in the cloud handlers' applying (a record more in SSM), whatever the machine's speed
        in_agent = kills % 2 == 0
        start_bus, start_ssm = pending(crashed), ssm_count(crashed)
        process = local_once(crashed.config_path, tmp_path)
        deadline = time.monotonic() + 30
        while process.poll() is None and time.monotonic() < deadline and (
                pending(crashed) <= start_bus if in_agent else ssm_count(crashed) <= start_ssm):
            time.sleep(0.02)
        time.sleep(rng.uniform(0.0, 0.3) if in_agent else rng.uniform(0.0, 1.2))
        if process.poll() is None:
            process.send_signal(signal.SIGKILL)
            kills += 1
        outputs.append(process.communicate(timeout=60)[0])
        assert process.returncode in (-signal.SIGKILL, 0, 1), outputs[-1]
        progress.append(ssm_count(crashed))
    before = ssm_state(crashed)
    assert 0 < total(before) < total(expected), "the kills happened during the first load"

    started = time.monotonic()
    recovery = local_once(crashed.config_path, tmp_path)
    out = recovery.communicate(timeout=120)[0]
    seconds = time.monotonic() - started
    print(f"\nrecovery run after {kills} SIGKILLs (seed {KILL_SEED}; SSM records after each kill: {progress}; "
          f"{total(expected)} expected): {seconds:.1f} s")

    assert recovery.returncode == 0, out
    nothing_pending = text("local.cycle.bus", completed=0, invocations=0, abandoned=0, dead_letters=0, pending=0)
    assert ", " + nothing_pending.rsplit(", ", 1)[1] in out, out     # ", 0 en attente"
    assert_never_duplicated(crashed)
    assert ssm_state(crashed) == expected
    # the last killed run held the agent's run lock or its dossier's bus session: taken over, and said
    assert "par un processus arrêté brutalement" in out or "laissé par un processus arrêté brutalement" in out, out
    assert "taken over" in out, out                 # the engineer's log line

    # nothing set aside without its incident: every change of a dead-lettered message is open on the dossier
    store = open_state_store(crashed.settings.state)
    bus = LocalBus(crashed.settings.bus.path)
    try:
        incidents = {(i.entity, i.key) for i in store.list_incidents(D, state=IncidentState.OPEN)}
        from shared.envelope import EnvelopeBatch, EnvelopeKind
        for message in bus.dead_letters(crashed.settings.bus.changes_queue):
            batch = EnvelopeBatch.from_bytes(message.body)
            for envelope in batch.envelopes:
                if envelope.kind is EnvelopeKind.CHANGE and store.get_link(D, envelope.entity, envelope.key) is None:
                    assert (envelope.entity, envelope.key) in incidents
    finally:
        bus.close()
        store.close()
