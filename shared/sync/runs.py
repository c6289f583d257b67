"""Cloud-side runs: one record per agent run and dossier, built from the run markers.

The agent's run-start marker opens the run (with its realignment flag), each batch adds what it
did (read, created, updated, deleted, skipped unchanged, conflicts, failed) and the run-end
marker closes it: SUCCEEDED, or PARTIAL when records failed, with the agent's own counts in its
message. Several batches of a run may be applied by several workers: counts are merged under
the run's ETag, re-reading and trying again on a conflict.
"""
from __future__ import annotations

import datetime as dt
import threading
from collections import Counter
from typing import Callable, Mapping, Optional

from shared.errors import ConcurrencyError
from shared.messages import label, text
from shared.state.records import RUN_COUNTERS, Run, RunState, utcnow

SIDE = "cloud"
DIRECTION = "sage_to_ssm"
MAX_SAVE_ATTEMPTS = 20


def describe_agent_counts(counts: Optional[Mapping[str, int]]) -> str:
    if not counts:
        return text("sync.run.no_agent_counts")
    return text("sync.run.agent_counts", counts=", ".join(
        text("sync.count", label=label("sync.agent_count", name), value=value) for name, value in counts.items()))


class RunBook:
    """Reads and writes the cloud-side run records of every dossier."""

    def __init__(self, store, *, clock: Callable[[], dt.datetime] = utcnow):
        self.store = store
        self.clock = clock
        self._lock = threading.Lock()
        self._known: dict[tuple[str, str], Run] = {}

    def start(self, dossier: str, run_id: str, *, realignment: bool,
              started_at: Optional[dt.datetime] = None) -> Run:
        """Open the run; a run-start delivered again leaves the run as it is."""
        def change(run: Optional[Run]) -> Optional[Run]:
            if run is not None:
                return None
            return Run(dossier=dossier, run_id=run_id, side=SIDE, direction=DIRECTION,
                       started_at=started_at or self.clock(), realignment=realignment)
        run = self._save(dossier, run_id, change)
        with self._lock:
            self._known[(dossier, run_id)] = run
        return run

    def add(self, dossier: str, run_id: str, counts: Mapping[str, int]) -> Run:
        """Add one batch's counts (a run whose start was never seen is opened here).

        Failures added to a run already ended (a message of it dead-lettered after its run-end
        went through) make it PARTIAL.
        """
        def change(run: Optional[Run]) -> Run:
            run = run or Run(dossier=dossier, run_id=run_id, side=SIDE, direction=DIRECTION,
                             started_at=self.clock())
            merged = Counter(run.counts)
            for name, value in counts.items():
                merged[name] += value
            update: dict = {"counts": {**{c: 0 for c in RUN_COUNTERS}, **dict(merged)}}
            if run.ended_at is not None and run.state is RunState.SUCCEEDED and counts.get("failed", 0) > 0:
                update["state"] = RunState.PARTIAL
            return run.model_copy(update=update)
        return self._save(dossier, run_id, change)

    def end(self, dossier: str, run_id: str, *, agent_counts: Optional[Mapping[str, int]],
            ended_at: Optional[dt.datetime] = None) -> Run:
        def change(run: Optional[Run]) -> Run:
            run = run or Run(dossier=dossier, run_id=run_id, side=SIDE, direction=DIRECTION,
                             started_at=self.clock())
            failed = run.counts.get("failed", 0) > 0
            return run.model_copy(update={
                "ended_at": ended_at or self.clock(),
                "state": RunState.PARTIAL if failed else RunState.SUCCEEDED,
                "message": describe_agent_counts(agent_counts)})
        run = self._save(dossier, run_id, change)
        with self._lock:
            self._known.pop((dossier, run_id), None)
        return run

    def is_realignment(self, dossier: str, run_id: str) -> bool:
        run = self._run(dossier, run_id)
        return bool(run and run.realignment)

    def started_at(self, dossier: str, run_id: str) -> Optional[dt.datetime]:
        run = self._run(dossier, run_id)
        return run.started_at if run is not None else None

    def _run(self, dossier: str, run_id: str) -> Optional[Run]:
        """The run as first seen (its flag and start never change), read once per process."""
        with self._lock:
            known = self._known.get((dossier, run_id))
        if known is not None:
            return known
        run = self.store.get_run(dossier, run_id)
        if run is not None:
            with self._lock:
                self._known[(dossier, run_id)] = run
        return run

    def _save(self, dossier: str, run_id: str, change: Callable[[Optional[Run]], Optional[Run]]) -> Run:
        for _ in range(MAX_SAVE_ATTEMPTS):
            current = self.store.get_run(dossier, run_id)
            updated = change(current)
            if updated is None:
                return current
            try:
                return self.store.save_run(updated)
            except ConcurrencyError:
                continue
        raise ConcurrencyError(text("sync.busy.run"),
                               detail=f"{dossier} {run_id}")
