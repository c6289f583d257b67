"""Agent change detection against the raw pyodbc fetch rate of the same tables, and peak memory.

Builds (or reuses, under `var/bench/`) a demo Sage 100 dossier, then measures, each in its own
process so neither the builder's memory nor the other measurement counts:
- the raw fetch rate: `SELECT *` of every table the reader reads, drained with `fetchmany`;
- the agent's initial load: detection (probes, key scan, every row read, hashed, compared with
  the shadow, packed and staged in the outbox), then sending the batches and applying the state;
  once in a single process, then shared with reading helpers (`agent.read_workers`);
- a no-change incremental run on the same state (key scan for deletions, rows since the
  watermark minus the overlap).
Rates are in source table rows per second (the same rows the raw fetch reads), so they compare
directly. Targets, checked on the agent's default setting: detection at least half the raw
fetch rate; peak RSS of all the agent's processes together under 200 MB for a dossier of a
million document lines (`--size large`).

    python bench/bench_agent.py                 # large dossier (about 1.1 M document lines)
    python bench/bench_agent.py --size medium   # quick run
"""
from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

QUICK_ARGS = ["--size", "medium"]
DETECTION_TARGET = 0.5          # detection rate / raw fetch rate
RSS_TARGET_MB = 200
RSS_TARGET_LINES = 1_000_000


def peak_rss_mb() -> float:
    """This process's peak resident memory (Linux's `VmHWM` first: `ru_maxrss` of a child also
    counts its parent's peak at fork time)."""
    from agent.sage100.parallel import peak_rss_mb as measured

    return measured() or 0.0


# --- building --------------------------------------------------------------------------------------
def dossier_path(var: Path, size: str, seed: int) -> Path:
    return var / f"agent-{size}-{seed}" / "BENCH.db"


def ensure_dossier(var: Path, size: str, seed: int, rebuild: bool) -> tuple[Path, float | None]:
    """The demo dossier, built (in a child process) unless a complete one is already there;
    returns (path, build seconds)."""
    path = dossier_path(var, size, seed)
    stamp = path.with_suffix(".built")
    if not rebuild and path.exists() and stamp.exists():
        return path, None
    stamp.unlink(missing_ok=True)
    started = time.perf_counter()
    in_child("build", str(path), size, str(seed))
    stamp.write_text(str(size), encoding="utf-8")
    return path, time.perf_counter() - started


def build(path: Path, size: str, seed: int) -> dict:
    from agent.demo_builder import build_demo_dossier

    return build_demo_dossier(path, size=size, seed=seed, company="BENCH").counts


# --- measurements (each in a child process) ----------------------------------------------------------
def measure_raw_fetch(path: Path) -> dict:
    sys.path.insert(0, str(ROOT / "bench"))
    from sage_fetch import raw_fetch_rate

    from agent.odbc import connect, sqlite_connection_string
    from agent.sage100.reader import Sage100Reader

    connection = connect(sqlite_connection_string(path))
    tables = [probe.table for probe in Sage100Reader(connection).probes()]
    result = raw_fetch_rate(connection, tables)
    connection.close()
    return {"tables": tables, "rows": result["total"]["rows"], "seconds": result["total"]["seconds"],
            "per_table": {t: result[t]["rows"] for t in tables}, "peak_rss_mb": peak_rss_mb()}


class CountingBus:
    """Accepts every message and only counts it: sending is not what this benchmark measures."""

    def __init__(self):
        self.messages = 0
        self.bytes = 0

    def send(self, queue, messages) -> None:
        self.messages += len(messages)
        self.bytes += sum(len(m.body) for m in messages)

    def close(self) -> None:
        pass


class TimedReader:
    """The Sage reader, timing what its iterators spend producing rows and keys."""

    def __init__(self, reader):
        self.reader = reader
        self.seconds = 0.0

    def __getattr__(self, name):
        return getattr(self.reader, name)

    def _timed(self, rows):
        rows = iter(rows)
        while True:
            started = time.perf_counter()
            try:
                row = next(rows)
            except StopIteration:
                self.seconds += time.perf_counter() - started
                return
            self.seconds += time.perf_counter() - started
            yield row

    def changed(self, entity, since):
        return self._timed(self.reader.changed(entity, since))

    def keys(self, entity):
        return self._timed(self.reader.keys(entity))


def _one_run(path: Path, checkpoint, bus, dossier: str, read_workers: int) -> dict:
    from agent.detection import ChangeDetector, new_run_id, server_now
    from agent.odbc import sqlite_connection_string
    from agent.relay import Relay, open_sage100

    relay = Relay(checkpoint, bus, "sage-changes")
    started = time.perf_counter()
    with open_sage100(sqlite_connection_string(path), read_workers=read_workers)() as (connection, sage_reader):
        reader = TimedReader(sage_reader)
        detector = ChangeDetector(checkpoint, dossier, reader, sent_at=dt.datetime.now(dt.timezone.utc))
        plan = detector.plan(new_run_id(), server_now(connection))
        checkpoint.start_run(dossier, plan.run_id, realignment=plan.realignment, reasons=list(plan.reasons))
        batches = relay.stage(detector, plan)
    detected = time.perf_counter()
    relay.send_pending(dossier)
    applied = time.perf_counter()
    return {"detect_seconds": detected - started, "reader_seconds": reader.seconds,
            "send_apply_seconds": applied - detected,
            "batches": batches, "counts": detector.counts.as_dict(), "peak_rss_mb": peak_rss_mb(),
            "helper_peak_rss_mb": sorted(sage_reader.helper_peak_rss_mb.values()),
            "slices": [sage_reader.slices_read_here, sage_reader.slices_read_by_helpers]}


def measure_agent(path: Path, work: Path, bus_kind: str, read_workers: int) -> dict:
    from agent.checkpoint import Checkpoint

    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    if bus_kind == "local":
        from shared.bus.local_bus import LocalBus
        bus = LocalBus(str(work / "bus.db"))
    else:
        bus = CountingBus()
    with Checkpoint(work / "agent.db") as checkpoint:
        initial = _one_run(path, checkpoint, bus, "BENCH", read_workers)
        incremental = _one_run(path, checkpoint, bus, "BENCH", read_workers)
    bus.close()
    state_mb = sum(f.stat().st_size for f in work.iterdir()) / 2 ** 20
    return {"initial": initial, "incremental": incremental, "work_mb": state_mb}


def in_child(function: str, *args: str) -> dict:
    """Run `function(*args)` of this script in a fresh interpreter; returns its JSON result."""
    command = [sys.executable, str(Path(__file__).resolve()), "--child", function, *args]
    completed = subprocess.run(command, cwd=ROOT, capture_output=True, text=True,
                               env={**os.environ, "PYTHONPATH": str(ROOT)})
    if completed.returncode != 0:
        raise RuntimeError(f"{function} failed:\n{completed.stderr}")
    return json.loads(completed.stdout.strip().splitlines()[-1])


# --- report ------------------------------------------------------------------------------------------
def _memory(run: dict) -> str:
    """Peak RSS of the agent process, plus each helper's when there were some."""
    helpers = run.get("helper_peak_rss_mb") or []
    if not helpers:
        return f"{run['peak_rss_mb']:.0f}"
    return f"{run['peak_rss_mb']:.0f} + " + " + ".join(f"{peak:.0f}" for peak in helpers)


def _total_memory(run: dict) -> float:
    return run["peak_rss_mb"] + sum(run.get("helper_peak_rss_mb") or [])


def report(size: str, path: Path, build_seconds: float | None, raw: dict, runs: dict[int, dict]) -> bool:
    """Prints the figures of every measured worker count; the targets are checked on the last one."""
    rows = raw["rows"]
    raw_rate = rows / raw["seconds"]
    lines = raw["per_table"].get("F_DOCLIGNE", 0)
    print(f"dossier: {path} ({size}; {rows:,} rows in {len(raw['tables'])} tables, {lines:,} document lines;"
          + (f" built in {build_seconds:.1f} s)" if build_seconds is not None else " reused)"))
    table = [("measure", "seconds", "rows/s", "vs raw", "peak RSS MB"),
             ("raw pyodbc fetch (SELECT *, one process)", f"{raw['seconds']:.2f}", f"{raw_rate:,.0f}", "1.00",
              f"{raw['peak_rss_mb']:.0f}"),
             ("target: detection at half the raw rate", f"{raw['seconds'] / DETECTION_TARGET:.2f}",
              f"{raw_rate * DETECTION_TARGET:,.0f}", f"{DETECTION_TARGET:.2f}", "")]
    for workers, agent in runs.items():
        initial, incremental = agent["initial"], agent["incremental"]
        initial_rate = rows / initial["detect_seconds"]
        incremental_rate = rows / incremental["detect_seconds"]
        label = "in-process" if workers == 1 else f"agent + {workers - 1} reading helper(s)"
        table += [(f"detection, initial load ({label})", f"{initial['detect_seconds']:.2f}", f"{initial_rate:,.0f}",
                   f"{initial_rate / raw_rate:.2f}", _memory(initial)),
                  ("  of which waiting for the Sage reader", f"{initial['reader_seconds']:.2f}", "", "", ""),
                  *([("  slices of cbMarq read by the agent / by helpers",
                      f"{initial['slices'][0]} / {initial['slices'][1]}", "", "", "")] if workers > 1 else []),
                  ("  of which agent", f"{initial['detect_seconds'] - initial['reader_seconds']:.2f}", "", "", ""),
                  ("  then send + apply", f"{initial['send_apply_seconds']:.2f}", "", "", ""),
                  (f"detection, no-change run ({label})", f"{incremental['detect_seconds']:.2f}",
                   f"{incremental_rate:,.0f}", f"{incremental_rate / raw_rate:.2f}", _memory(incremental))]
    widths = [max(len(row[i]) for row in table) for i in range(len(table[0]))]
    for row in table:
        print("  ".join(cell.ljust(widths[0]) if i == 0 else cell.rjust(widths[i]) for i, cell in enumerate(row)))
    print("(rows/s: rows of the dossier's tables per second of detection; the no-change run reads every key"
          " and the rows changed since watermark - overlap; peak RSS: the agent process + each helper)")
    workers, agent = list(runs.items())[-1]
    initial, incremental = agent["initial"], agent["incremental"]
    counts = initial["counts"]
    print(f"initial load: {counts['read'] / initial['detect_seconds']:,.0f} records/s and"
          f" {lines / initial['detect_seconds']:,.0f} document lines/s detected")
    print(f"initial load: {counts['read']:,} records ({counts['created']:,} sent, {counts['invalid']:,} invalid)"
          f" in {initial['batches']:,} messages; no-change run: {incremental['counts']['read']:,} records re-read,"
          f" {incremental['counts']['created'] + incremental['counts']['changed']:,} sent;"
          f" agent state {agent['work_mb']:.0f} MB")
    initial_ratio = raw["seconds"] / initial["detect_seconds"]
    incremental_ratio = raw["seconds"] / incremental["detect_seconds"]
    peak = max(_total_memory(initial), _total_memory(incremental))
    checks = [
        (f"initial detection >= {DETECTION_TARGET:.0%} of the raw fetch rate ({workers} reading process(es))",
         initial_ratio >= DETECTION_TARGET),
        (f"no-change detection >= {DETECTION_TARGET:.0%} of the raw fetch rate", incremental_ratio >= DETECTION_TARGET),
    ]
    if lines >= RSS_TARGET_LINES:
        checks.append((f"peak RSS of all the agent's processes under {RSS_TARGET_MB} MB at {lines:,} lines"
                       f" ({peak:.0f} MB)", peak < RSS_TARGET_MB))
    else:
        checks.append((f"peak RSS {peak:.0f} MB, all processes (the {RSS_TARGET_MB} MB target is for 1M lines:"
                       f" --size large)", True))
    for label, met in checks:
        print(f"[{'met' if met else 'NOT MET'}] {label}")
    if lines < RSS_TARGET_LINES:
        print(f"(the targets are set for a dossier of {RSS_TARGET_LINES:,} lines, --size large; on a smaller one"
              f" the helper's start-up weighs on the rate)")
    return all(met for _, met in checks)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", default="large", choices=("tiny", "small", "medium", "large"))
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--var", default=str(ROOT / "var" / "bench"), help="where dossiers are built and reused")
    parser.add_argument("--rebuild", action="store_true", help="build the dossier even if one is there")
    parser.add_argument("--bus", choices=("counting", "local"), default="counting",
                        help="send to a counting bus (default) or to a LocalBus file")
    parser.add_argument("--read-workers", type=int, default=None,
                        help="processes reading, the agent's included (default: the agent's setting,"
                             " measured after an in-process run)")
    parser.add_argument("--child", nargs="+", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        function, *rest = args.child
        result = {"build": lambda: build(Path(rest[0]), rest[1], int(rest[2])),
                  "raw": lambda: measure_raw_fetch(Path(rest[0])),
                  "agent": lambda: measure_agent(Path(rest[0]), Path(rest[1]), rest[2], int(rest[3]))}[function]()
        print(json.dumps(result))
        return 0
    from shared.config import AgentSettings

    var = Path(args.var)
    path, build_seconds = ensure_dossier(var, args.size, args.seed, args.rebuild)
    raw = in_child("raw", str(path))
    counts = [args.read_workers] if args.read_workers else sorted({1, AgentSettings().read_workers})
    runs = {workers: in_child("agent", str(path), str(path.parent / "agent-run"), args.bus, str(workers))
            for workers in counts}
    report(args.size, path, build_seconds, raw, runs)
    return 0


if __name__ == "__main__":
    sys.exit(main())
