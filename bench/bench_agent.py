"""Agent change detection against the raw pyodbc fetch of the same rows and columns, cycle costs
at two dossier sizes, the checkpoint's size and the agent's peak memory.

Builds (or reuses, under `var/bench/`) demo Sage 100 dossiers, then measures, each in its own
process so that neither the builder's memory nor another measurement counts:
- the raw fetch: the very rows and columns the reader selects (joins and filters included),
  drained with `fetchmany`, in 1 process and in the agent's default number of reading processes
  (the table's `cbMarq` span shared among them);
- the agent's first load with the same process count: detection (every row read, canonicalised,
  hashed, compared, packed and staged), then the send to a counting bus and the apply of the
  staged state: the whole cycle, send included;
- on a copy of each of two dossiers (`--size` and `--scale-size`): a cycle with nothing changed
  for longer than the overlap (the median of `QUIET_CYCLES`, Sage's clock moved on by
  `QUIET_FOR`), then a cycle after 100 rows were changed in Sage (document
  lines, accounts, products);
- the bytes of the checkpoint's change-tracking tables per tracked record, and peak RSS.
Every ratio compares figures of this one run, with the same number of processes on both sides.

    python bench/bench_agent.py --size small              # quick (make bench): small vs medium
    python bench/bench_agent.py --size large              # 1.1 M document lines; run at night
"""
from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import shutil
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
for folder in (ROOT, ROOT / "bench"):
    if str(folder) not in sys.path:
        sys.path.insert(0, str(folder))

from figures import Figure, cores, emit  # noqa: E402

QUICK_ARGS = ["--size", "small"]
ONE_PROCESS_TARGET = 0.6        # first load / raw fetch, one process each
WORKERS_TARGET = 0.9            # first load / raw fetch, the default number of processes each
NO_CHANGE_SCALE_TARGET = 1.2    # no-change cycle at the larger size / at the smaller one
CHANGES_TARGET_S = 1.0          # a cycle with 100 changed rows, at 1M lines
CHECKPOINT_TARGET_BYTES = 80    # per tracked record
RSS_TARGET_MB = 200
LARGE_LINES = 1_000_000
CHANGED_ROWS = {"F_DOCLIGNE": 60, "F_COMPTET": 20, "F_ARTICLE": 20}
QUIET_CYCLES = 9                # the no-change cycle's figure is the median of this many
QUIET_FOR = dt.timedelta(hours=2)   # ... after Sage's clock moved on by this much (twice the overlap)


def peak_rss_mb() -> float:
    from agent.sage100.parallel import peak_rss_mb as measured

    return measured() or 0.0


# --- building --------------------------------------------------------------------------------------
def ensure_dossier(var: Path, size: str, seed: int, rebuild: bool) -> Path:
    path = var / f"agent-{size}-{seed}" / "BENCH.db"
    stamp = path.with_suffix(".built")
    if rebuild or not (path.exists() and stamp.exists()):
        stamp.unlink(missing_ok=True)
        in_child("build", str(path), size, str(seed))
        stamp.write_text(size, encoding="utf-8")
    return path


def build(path: Path, size: str, seed: int) -> dict:
    from agent.demo_builder import build_demo_dossier

    return build_demo_dossier(path, size=size, seed=seed, company="BENCH").counts


# --- raw fetch -------------------------------------------------------------------------------------
def _raw_share(path: str, index: int, count: int, ready, go, least: bool = False) -> dict:
    from sage_fetch import raw_fetch, reader_queries

    from agent.odbc import connect, sqlite_connection_string
    from agent.sage100.reader import Sage100Reader

    connection = connect(sqlite_connection_string(path))
    queries = reader_queries(Sage100Reader(connection))
    ready.wait()
    go.wait()
    result = raw_fetch(connection, queries, share=(index, count), least=least)
    connection.close()
    return result


def measure_raw(path: Path, processes: int, least: bool = False) -> dict:
    """Wall time of `processes` processes together fetching the reader's rows and columns once
    (with `least`, each row also written as JSON and hashed: `sage_fetch.least_work`)."""
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    if processes == 1:
        import threading
        ready, go = threading.Barrier(1), threading.Barrier(1)
        result = _raw_share(str(path), 0, 1, ready, go, least)
        return {"rows": result["rows"], "seconds": result["seconds"], "peak_rss_mb": peak_rss_mb()}
    context = multiprocessing.get_context("spawn")
    manager = context.Manager()
    ready, go = manager.Barrier(processes + 1), manager.Barrier(processes + 1)
    with ProcessPoolExecutor(processes, mp_context=context) as pool:
        futures = [pool.submit(_raw_share, str(path), i, processes, ready, go, least) for i in range(processes)]
        ready.wait()                     # every process has started and connected
        go.wait()
        results = [f.result() for f in futures]
        seconds = max(r["seconds"] for r in results)   # they started together: the last one to finish
    manager.shutdown()
    return {"rows": sum(r["rows"] for r in results), "seconds": seconds, "peak_rss_mb": peak_rss_mb()}


# --- the agent -------------------------------------------------------------------------------------
class CountingBus:
    """Accepts every message and counts it (the Service Bus's network time is not the agent's)."""

    def __init__(self):
        self.messages = 0
        self.bytes = 0

    def send(self, queue, messages) -> None:
        self.messages += len(messages)
        self.bytes += sum(len(m.body) for m in messages)

    def close(self) -> None:
        pass


def warm_up() -> None:
    """What a running agent has done once for its whole life, not per cycle: import its modules
    and generate the canonical forms' code (raw fetch's side likewise imports pyodbc first)."""
    import importlib

    from agent.canonical import CanonicalForm
    from shared.models import Entity

    importlib.import_module("agent.relay")
    for entity in Entity:
        CanonicalForm(entity)


def one_cycle(path: Path, checkpoint, bus, read_workers: int) -> dict:
    """One whole cycle of the dossier: detect and stage, send, apply."""
    from agent.detection import ChangeDetector, new_run_id, server_now
    from agent.odbc import sqlite_connection_string
    from agent.relay import Relay, open_sage100

    relay = Relay(checkpoint, bus, "sage-changes")
    started = time.perf_counter()
    with open_sage100(sqlite_connection_string(path), read_workers=read_workers)() as (connection, reader):
        detector = ChangeDetector(checkpoint, "BENCH", reader, sent_at=dt.datetime.now(dt.timezone.utc))
        plan = detector.plan(new_run_id(), server_now(connection))
        checkpoint.start_run("BENCH", plan.run_id, realignment=plan.realignment, reasons=list(plan.reasons))
        relay.stage(detector, plan)
        helpers = sorted(getattr(reader, "helper_peak_rss_mb", {}).values())
    detected = time.perf_counter()
    relay.send_pending("BENCH")
    return {"seconds": time.perf_counter() - started, "detect_seconds": detected - started,
            "counts": detector.counts.as_dict(), "helper_peak_rss_mb": helpers}


def tracking_bytes(state: Path) -> int:
    """Bytes of the checkpoint's change-tracking tables (and their indexes)."""
    from agent.checkpoint import TRACKING_TABLES

    with sqlite3.connect(state) as db:
        names = ",".join("?" * len(TRACKING_TABLES))
        return db.execute("SELECT COALESCE(SUM(d.pgsize), 0) FROM dbstat d JOIN sqlite_schema s ON s.name = d.name"
                          f" WHERE s.tbl_name IN ({names})", TRACKING_TABLES).fetchone()[0]


def measure_first_load(path: Path, work: Path, read_workers: int) -> dict:
    from agent.checkpoint import Checkpoint

    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    warm_up()
    with Checkpoint(work / "agent.db") as checkpoint:
        first = one_cycle(path, checkpoint, CountingBus(), read_workers)
        tracked = sum(c["records"] for c in checkpoint.shadow_counts("BENCH").values())
    first["tracked"] = tracked
    first["tracking_bytes"] = tracking_bytes(work / "agent.db")
    first["peak_rss_mb"] = peak_rss_mb()
    return first


def _change_rows(path: Path) -> int:
    """Change CHANGED_ROWS rows of the dossier (spread over its tables), stamped by Sage's triggers."""
    from agent.demo_builder import set_clock

    set_clock(path, dt.datetime.now() + dt.timedelta(days=1))
    changed = 0
    with sqlite3.connect(path) as db:
        for table, count in CHANGED_ROWS.items():
            total = db.execute(f"SELECT COUNT(*) FROM {table}").fetchone()[0]
            step = max(total // count, 1)
            marqs = [row[0] for row in db.execute(f"SELECT cbMarq FROM {table} ORDER BY cbMarq")][::step][:count]
            column = {"F_DOCLIGNE": "DL_Design", "F_COMPTET": "CT_Intitule", "F_ARTICLE": "AR_Design"}[table]
            marks = ",".join("?" * len(marqs))
            changed += db.execute(f"UPDATE {table} SET {column} = substr({column}, 1, 20) || ' (b)'"
                                  f" WHERE cbMarq IN ({marks})", marqs).rowcount
    return changed


def _clock_forward(path: Path, by: dt.timedelta) -> None:
    """Sage's (emulated) clock moves on by `by` from where it is."""
    from agent.demo_builder import set_clock
    from agent.detection import server_now
    from agent.odbc import connect, sqlite_connection_string

    connection = connect(sqlite_connection_string(path))
    try:
        now = server_now(connection)
    finally:
        connection.close()
    set_clock(path, now + by)


def probing_seconds(path: Path) -> float:
    """The part of a no-change cycle that reads in proportion to the dossier: its probes
    (`Sage100Reader.probes`: highest `cbMarq` and latest `cbModification` of every table read,
    each an index seek, and the row count of the tables whose deletions matter, each reading a
    whole index since SQLite keeps no row count). The median of `QUIET_CYCLES`, each on a new
    connection that has asked Sage's clock first, as a cycle does."""
    from agent.detection import server_now
    from agent.odbc import connect, sqlite_connection_string
    from agent.sage100.reader import Sage100Reader

    times = []
    for _ in range(QUIET_CYCLES):
        connection = connect(sqlite_connection_string(path))
        try:
            server_now(connection)
            reader = Sage100Reader(connection)
            started = time.perf_counter()
            reader.probes()
            times.append(time.perf_counter() - started)
            connection.rollback()
        finally:
            connection.close()
    return sorted(times)[QUIET_CYCLES // 2]


def measure_cycles(path: Path, work: Path, read_workers: int) -> dict:
    """On a copy of the dossier: first load, a no-change cycle, then a cycle after 100 changes."""
    from agent.checkpoint import Checkpoint

    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    copy = work / "BENCH.db"
    shutil.copyfile(path, copy)
    with Checkpoint(work / "agent.db") as checkpoint:
        one_cycle(copy, checkpoint, CountingBus(), read_workers)
        _clock_forward(copy, QUIET_FOR)          # nothing changes for longer than the overlap
        quiet = sorted((one_cycle(copy, checkpoint, CountingBus(), read_workers) for _ in range(QUIET_CYCLES)),
                       key=lambda cycle: cycle["seconds"])[QUIET_CYCLES // 2]
        changed = _change_rows(copy)
        busy = one_cycle(copy, checkpoint, CountingBus(), read_workers)
    lines = sqlite3.connect(copy).execute("SELECT COUNT(*) FROM F_DOCLIGNE").fetchone()[0]
    return {"lines": lines, "no_change": quiet, "changed_rows": changed, "changes": busy,
            "probing_seconds": probing_seconds(copy), "peak_rss_mb": peak_rss_mb()}


def in_child(function: str, *args: str) -> dict:
    """Run `function(*args)` of this script in a fresh interpreter; returns its JSON result."""
    command = [sys.executable, str(Path(__file__).resolve()), "--child", function, *args]
    completed = subprocess.run(command, cwd=ROOT, capture_output=True, text=True,
                               env={**os.environ, "PYTHONPATH": str(ROOT)})
    if completed.returncode != 0:
        raise RuntimeError(f"{function} failed:\n{completed.stderr}")
    return json.loads(completed.stdout.strip().splitlines()[-1])


# --- report ------------------------------------------------------------------------------------------
def report(size: str, scale_size: str, raw: dict, loads: dict, cycles: dict, workers: int,
           least: dict) -> list[Figure]:
    figures = []
    for processes in sorted(loads):
        load, fetch = loads[processes], raw[processes]
        ratio = fetch["seconds"] / load["seconds"]
        target = ONE_PROCESS_TARGET if processes == 1 else WORKERS_TARGET
        figures.append(Figure(
            f"first load ({size}), detection + send + apply vs raw fetch, {processes} process(es) each",
            f"{ratio:.2f}x ({load['seconds']:.2f} s vs {fetch['seconds']:.2f} s, {fetch['rows']:,} rows)",
            f">= {target}x", ratio >= target))
    first = loads[min(loads)]
    figures.append(Figure(
        f"the ceiling in Python ({size}): raw fetch + each row as JSON and hashed (least_work), 1 process",
        f"{raw[1]['seconds'] / least['seconds']:.2f}x the raw fetch ({least['seconds']:.2f} s);"
        f" the first load runs at {least['seconds'] / first['seconds']:.2f}x its rate",
        note="no relay writing each row as a JSON object in Python does better than this ratio"))
    per_row = first["tracking_bytes"] / max(first["tracked"], 1)
    figures.append(Figure(f"checkpoint change tracking per tracked record ({size})",
                          f"{per_row:.0f} B ({first['tracked']:,} records)", f"<= {CHECKPOINT_TARGET_BYTES} B",
                          per_row <= CHECKPOINT_TARGET_BYTES))
    small, large = sorted(cycles.values(), key=lambda c: c["lines"])
    scale = large["no_change"]["seconds"] / small["no_change"]["seconds"]
    figures.append(Figure(f"no-change cycle, {large['lines']:,} vs {small['lines']:,} document lines",
                          f"{scale:.2f}x ({large['no_change']['seconds']:.3f} s vs {small['no_change']['seconds']:.3f} s)",
                          f"<= {NO_CHANGE_SCALE_TARGET}x", scale <= NO_CHANGE_SCALE_TARGET,
                          note="the target compares 50k and 1M lines (--size large --scale-size medium)"))
    rest = [cycle["no_change"]["seconds"] - cycle["probing_seconds"] for cycle in (large, small)]
    figures.append(Figure("of which the probes (highest cbMarq, latest cbModification, row counts for deletions)",
                          f"{large['probing_seconds'] * 1000:.1f} ms vs {small['probing_seconds'] * 1000:.1f} ms;"
                          f" the rest of the cycle {rest[0] / rest[1]:.2f}x ({rest[0] * 1000:.1f} ms vs"
                          f" {rest[1] * 1000:.1f} ms)",
                          note="the row counts are the only reads in proportion to the dossier"))
    for cycle in (small, large):
        counts = cycle["changes"]["counts"]
        sent = counts["created"] + counts["changed"] + counts["deleted"]
        met = cycle["changes"]["seconds"] <= CHANGES_TARGET_S if cycle["lines"] >= LARGE_LINES else None
        figures.append(Figure(f"cycle after {cycle['changed_rows']} changed rows, {cycle['lines']:,} lines",
                              f"{cycle['changes']['seconds']:.3f} s ({sent} records sent;"
                              f" {cycle['changes']['seconds'] / cycle['no_change']['seconds']:.1f}x the no-change cycle)",
                              f"<= {CHANGES_TARGET_S:.0f} s at 1M lines", met))
    peak = max(load["peak_rss_mb"] + sum(load["helper_peak_rss_mb"]) for load in loads.values())
    lines = max(c["lines"] for c in cycles.values()) if size == scale_size else None
    figures.append(Figure(f"agent peak RSS, first load ({size}), all processes",
                          f"{peak:.0f} MB", f"< {RSS_TARGET_MB} MB at 1M lines",
                          peak < RSS_TARGET_MB if (lines or 0) >= LARGE_LINES or size == "large" else None))
    figures.append(Figure("reading processes by default (agent.read_workers)", f"{workers} on {cores()} core(s)"))
    return figures


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", default="small", choices=("tiny", "small", "medium", "large"),
                        help="the dossier of the first-load ratios (large: 1.1M document lines, an hour or more)")
    parser.add_argument("--scale-size", default=None, choices=("tiny", "small", "medium", "large"),
                        help="the second dossier of the cycle-cost ratio (default: medium, or small for medium)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--var", default=str(ROOT / "var" / "bench"), help="where dossiers are built and reused")
    parser.add_argument("--rebuild", action="store_true", help="build the dossiers even if they are there")
    parser.add_argument("--read-workers", type=int, default=None,
                        help="processes reading by default (default: the agent's setting, at most the cores)")
    parser.add_argument("--child", nargs="+", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        function, *rest = args.child
        result = {"build": lambda: build(Path(rest[0]), rest[1], int(rest[2])),
                  "raw": lambda: measure_raw(Path(rest[0]), int(rest[1])),
                  "least": lambda: measure_raw(Path(rest[0]), int(rest[1]), least=True),
                  "load": lambda: measure_first_load(Path(rest[0]), Path(rest[1]), int(rest[2])),
                  "cycles": lambda: measure_cycles(Path(rest[0]), Path(rest[1]), int(rest[2]))}[function]()
        print(json.dumps(result))
        return 0
    from shared.config import AgentSettings

    workers = args.read_workers or min(AgentSettings().read_workers, cores())
    scale_size = args.scale_size or ("small" if args.size == "medium" else "medium")
    var = Path(args.var)
    path = ensure_dossier(var, args.size, args.seed, args.rebuild)
    raw, loads = {}, {}
    for processes in sorted({1, workers}):
        raw[processes] = in_child("raw", str(path), str(processes))
        loads[processes] = in_child("load", str(path), str(path.parent / "agent-run"), str(processes))
    least = in_child("least", str(path), "1")
    cycles = {}
    for size in dict.fromkeys([args.size, scale_size]):
        dossier = ensure_dossier(var, size, args.seed, args.rebuild)
        cycles[size] = in_child("cycles", str(dossier), str(dossier.parent / "agent-cycles"), str(workers))
    figures = report(args.size, scale_size, raw, loads, cycles, workers, least)
    emit("agent", figures)
    return 0


if __name__ == "__main__":
    sys.exit(main())
