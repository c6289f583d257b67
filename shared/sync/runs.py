"""Cloud-side runs: one record per agent run and dossier, built from the run markers, and one per
SSM → Sage pass that sent a dossier commands.

The agent's run-start marker opens the run (with its realignment flag), each batch adds what it
did (read, created, updated, deleted, skipped unchanged, conflicts, failed) and the run-end
marker closes it: SUCCEEDED, or PARTIAL when records failed, with the agent's own counts in its
message. Several batches of a run may be applied by several workers: counts are merged under
the run's ETag, re-reading and trying again on a conflict. Each run writes two journal lines, in
French: its start and its end with its counts (and how many conflicts Sage won).
"""
from __future__ import annotations

import datetime as dt
import threading
from collections import Counter
from typing import Callable, Mapping, Optional

from shared.errors import ConcurrencyError
from shared.messages import label, text
from shared.state.records import RUN_COUNTERS, JournalEntry, Run, RunState, utcnow

SIDE = "cloud"
DIRECTION = "sage_to_ssm"
INBOUND_DIRECTION = "ssm_to_sage"
RUN_START_EVENT, RUN_END_EVENT = "run-start", "run-end"
MAX_SAVE_ATTEMPTS = 20


def describe_agent_counts(counts: Optional[Mapping[str, int]]) -> str:
    if not counts:
        return text("sync.run.no_agent_counts")
    return text("sync.run.agent_counts", counts=", ".join(
        text("sync.count", label=label("sync.agent_count", name), value=value) for name, value in counts.items()))


def _counts_text(counts: Mapping[str, int], *, without: tuple[str, ...] = ()) -> str:
    return ", ".join(text("sync.count", label=label("status.count", name).lower(), value=int(counts.get(name, 0)))
                     for name in RUN_COUNTERS if name not in without)


def start_line(run: Run, reasons: tuple[str, ...] = ()) -> JournalEntry:
    """The journal line opening `run` (with why it realigns, when the agent said)."""
    direction = label("status.direction", run.direction)
    if run.realignment and reasons:
        message = text("journal.run.start_reasons", direction=direction, reasons="; ".join(reasons))
    else:
        message = text("journal.run.start_realignment" if run.realignment else "journal.run.start",
                       direction=direction)
    return JournalEntry(dossier=run.dossier, at=run.started_at, run_id=run.run_id, event=RUN_START_EVENT,
                        message=message,
                        detail={"direction": run.direction, "realignment": run.realignment})


def end_line(run: Run) -> JournalEntry:
    """The journal line closing `run`: its counts, and its conflicts when Sage won some."""
    direction = label("status.direction", run.direction)
    conflicts = int(run.counts.get("conflicts", 0))
    message = text("journal.run.end_conflicts", direction=direction, conflicts=conflicts,
                   counts=_counts_text(run.counts, without=("conflicts",))) if conflicts \
        else text("journal.run.end", direction=direction, counts=_counts_text(run.counts))
    return JournalEntry(dossier=run.dossier, at=run.ended_at or utcnow(), run_id=run.run_id, event=RUN_END_EVENT,
                        message=message, detail={"direction": run.direction, "counts": dict(run.counts),
                                                 "state": run.state.value})


class RunBook:
    """Reads and writes the cloud-side run records of every dossier."""

    def __init__(self, store, *, clock: Callable[[], dt.datetime] = utcnow):
        self.store = store
        self.clock = clock
        self._lock = threading.Lock()
        self._probing = threading.Lock()
        self._known: dict[tuple[str, str], Run] = {}

    def start(self, dossier: str, run_id: str, *, realignment: bool,
              started_at: Optional[dt.datetime] = None, reasons: tuple[str, ...] = ()) -> Run:
        """Open the run (and its journal line); a run-start delivered again leaves the run as it is."""
        opened = [False]

        def change(run: Optional[Run]) -> Optional[Run]:
            opened[0] = run is None
            if run is not None:
                return None
            return Run(dossier=dossier, run_id=run_id, side=SIDE, direction=DIRECTION,
                       started_at=started_at or self.clock(), realignment=realignment)
        run = self._save(dossier, run_id, change)
        if opened[0]:
            self.store.append_journal(start_line(run, reasons))
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
        self.store.append_journal(end_line(run))
        with self._lock:
            self._known.pop((dossier, run_id), None)
        return run

    def record_pass(self, dossier: str, run_id: str, *, started_at: dt.datetime, counts: Mapping[str, int],
                    direction: str = INBOUND_DIRECTION) -> Run:
        """A whole run at once (an SSM → Sage pass for one dossier), with its two journal lines."""
        run = Run(dossier=dossier, run_id=run_id, side=SIDE, direction=direction, started_at=started_at,
                  ended_at=self.clock(), state=RunState.SUCCEEDED,
                  counts={**{c: 0 for c in RUN_COUNTERS}, **{k: int(v) for k, v in counts.items()}})
        run = self.store.save_run(run)
        self.store.append_journal(start_line(run))
        self.store.append_journal(end_line(run))
        return run

    def is_realignment(self, dossier: str, run_id: str) -> bool:
        run = self._run(dossier, run_id)
        return bool(run and run.realignment)

    def held_none(self, dossier: str, run_id: str, resource: str, probe: Callable[[], Optional[bool]]) -> bool:
        """Whether SSM held no record of the dossier in `resource` when this run first asked
        (`Run.ssm_held_none`): `probe` is asked once per run and resource, its answer kept on the
        run; a probe that could not tell (None) is asked again next time. A later answer cannot
        be trusted the same way (this run's own records are there by then), so the first stays."""
        run = self._run(dossier, run_id)
        if run is None or not run.realignment:
            return False
        if resource in run.ssm_held_none:
            return run.ssm_held_none[resource]
        with self._probing:         # the workers of one wave ask at once: one of them probes
            return self._probe(dossier, run_id, resource, probe)

    def _probe(self, dossier: str, run_id: str, resource: str, probe: Callable[[], Optional[bool]]) -> bool:
        run = self._run(dossier, run_id)
        if resource in run.ssm_held_none:
            return run.ssm_held_none[resource]
        answer = probe()
        if answer is None:
            return False

        def change(current: Optional[Run]) -> Optional[Run]:
            if current is None or resource in current.ssm_held_none:
                return None
            return current.model_copy(update={"ssm_held_none": {**current.ssm_held_none, resource: answer}})
        saved = self._save(dossier, run_id, change)
        with self._lock:
            self._known[(dossier, run_id)] = saved
        return saved.ssm_held_none.get(resource, False)

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
