"""The cloud side's initial load against a rate-limited SSM: throughput, calls per record, limit used.

Builds a demo Sage 100 dossier, starts the SSM simulator with a per-request latency (20 ms) and
a tenant rate limit (50 requests/s, answering 429 beyond it), sets the connector's own limiter
to the same rate, and runs one cycle of the local runtime: the agent's full load, then every
batch through the Function App's handlers. It prints the records created per second, the SSM
calls per created record (logins, look-ups and reads included), how much of the rate limit the
calls used while they were being made, and whether the targets are met: at most 1.05 calls per
created record and at least 90 % of the rate limit used. `--client-rate` sets the connector's
limit apart from SSM's.

    python bench/bench_cloud.py                       # small dossier (about 5,000 SSM records)
    python bench/bench_cloud.py --size tiny           # quick run
    python bench/bench_cloud.py --rate 100 --latency-ms 50
    python bench/bench_cloud.py --size small --hostile 1 --rate 1000 --latency-ms 0
                                                      # first load, clean then with 1 % hostile rows

With `--hostile PERCENT` it loads the dossier twice, clean and with that share of hostile rows
(`agent.demo_builder.add_hostile_share`: unreadable text, duplicate keys, impossible dates,
prices typed as text, binary values, malformed optional values), and prints both first loads:
the agent's time, the cloud's, the open incidents.
"""
from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

QUICK_ARGS = ["--size", "tiny"]
CALLS_PER_RECORD_TARGET = 1.05
RATE_USED_TARGET = 0.90
TARGET_SIZE = "small"
WRITE_METHODS = ("POST", "PUT", "DELETE")
DAMAGED_TABLES = ("F_COMPTET", "F_CONTACTT", "F_ARTICLE", "F_DOCENTETE")   # where --hostile damages rows


def run(size: str, rate: float, client_rate: float, latency_ms: float, concurrency: int, folder: Path,
        hostile_one_in: int = 0) -> dict:
    from agent.demo_builder import add_hostile_share, build_demo_dossier
    from local.demo import free_port, write_config
    from local.runtime import LocalRuntime
    from local.simulator.faults import FaultPlan
    from local.simulator.server import SsmSimulator
    from shared.config import load_settings

    folder.mkdir(parents=True, exist_ok=True)
    stats = build_demo_dossier(folder / "BIJOU.db", size=size)
    hostile = add_hostile_share(stats.path, hostile_one_in) if hostile_one_in else 0
    faults = FaultPlan(latency_s=latency_ms / 1000.0, rate_limit_per_s=rate)
    with SsmSimulator(faults=faults, seed=1) as simulator:
        config = write_config(folder, base_url=simulator.base_url, public_key=simulator.public_key,
                              private_key=simulator.private_key, admin_email=simulator.admin_email,
                              dossiers=[("BIJOU", "Bijouterie (banc d'essai)", stats.path)], status_port=free_port())
        settings = load_settings(config, environ={"SSMCONN__SSM__RATE_LIMIT_PER_S": str(client_rate),
                                                  "SSMCONN__SSM__MAX_CONCURRENCY": str(concurrency)})
        with LocalRuntime(settings) as runtime:
            started = time.perf_counter()
            runtime.pass_ssm_changes()
            agent_started, agent_cpu = time.perf_counter(), time.process_time()
            results = runtime.run_agent()
            agent_seconds, agent_cpu = time.perf_counter() - agent_started, time.process_time() - agent_cpu
            summary = runtime.drain()
            seconds = time.perf_counter() - started
            dossiers = runtime.status()
        calls = list(simulator.calls)
    created = sum(1 for c in calls if c.method == "POST" and c.resource != "login" and c.status in (200, 201))
    span = (calls[-1].at - calls[0].at).total_seconds() if len(calls) > 1 else 0.0
    return {
        "size": size, "ok": all(r.ok for r in results) and not any(summary.pending.values()), "seconds": seconds,
        "agent_seconds": agent_seconds, "agent_cpu": agent_cpu, "hostile": hostile, "rows": sum(stats.counts[table] for table in DAMAGED_TABLES),
        "span": span, "calls": len(calls), "created": created,
        "by_kind": Counter("write" if c.method in WRITE_METHODS and c.resource != "login" else
                           "login" if c.resource == "login" else "read" for c in calls),
        "rate_limited": sum(1 for c in calls if c.status == 429),
        "incidents": sum(d.open_incidents for d in dossiers), "rate": rate, "client_rate": client_rate,
    }


def report(figures: dict) -> bool:
    created, calls, span = figures["created"], figures["calls"], figures["span"]
    per_record = calls / created if created else float("inf")
    used = (calls / span) / figures["rate"] if span > 0 else 0.0
    print(f"dossier size          : {figures['size']} ({created} SSM records created, "
          f"{figures['incidents']} open incident(s), cycle {'ok' if figures['ok'] else 'NOT ok'})")
    print(f"cycle time            : {figures['seconds']:.1f} s (SSM calls over {span:.1f} s)")
    print(f"records created / s   : {created / figures['seconds']:.1f}")
    print(f"SSM calls             : {calls} ({', '.join(f'{k} {v}' for k, v in sorted(figures['by_kind'].items()))}),"
          f" {figures['rate_limited']} answered 429")
    print(f"calls per created rec.: {per_record:.3f} (target <= {CALLS_PER_RECORD_TARGET}) "
          f"{'met' if per_record <= CALLS_PER_RECORD_TARGET else 'NOT met'}")
    print(f"connector's limit     : {figures['client_rate']:g} req/s")
    print(f"rate limit used       : {used:.1%} of {figures['rate']:g} req/s (target >= {RATE_USED_TARGET:.0%}) "
          f"{'met' if used >= RATE_USED_TARGET else 'NOT met'}")
    if figures["rate_limited"]:
        print(f"note                  : each 429 holds every call for SSM's Retry-After (1 s at least); a "
              f"connector limit a little under SSM's (--client-rate) avoids them")
    if figures["size"] == "tiny":
        print(f"note                  : the targets are set for the {TARGET_SIZE} dossier (the default); at this size"
              f" the fixed calls (login, look-ups) weigh on the calls per record")
    return per_record <= CALLS_PER_RECORD_TARGET and used >= RATE_USED_TARGET


def compare(clean: dict, hostile: dict) -> None:
    """The two first loads side by side."""
    share = hostile["hostile"] / hostile["rows"] if hostile["rows"] else 0.0
    print()
    print(f"first load, clean     : agent {clean['agent_seconds']:.2f} s ({clean['agent_cpu']:.2f} s CPU),"
          f" whole cycle {clean['seconds']:.1f} s,"
          f" {clean['incidents']} open incident(s), cycle {'ok' if clean['ok'] else 'NOT ok'}")
    print(f"first load, hostile   : agent {hostile['agent_seconds']:.2f} s ({hostile['agent_cpu']:.2f} s CPU),"
          f" whole cycle {hostile['seconds']:.1f} s,"
          f" {hostile['incidents']} open incident(s), cycle {'ok' if hostile['ok'] else 'NOT ok'}"
          f" ({hostile['hostile']} hostile rows: {share:.2%} of the {hostile['rows']} rows of {', '.join(DAMAGED_TABLES)})")
    if clean["agent_seconds"]:
        print(f"hostile / clean       : agent x{hostile['agent_seconds'] / clean['agent_seconds']:.2f}"
              f" (CPU x{hostile['agent_cpu'] / clean['agent_cpu']:.2f}),"
              f" whole cycle x{hostile['seconds'] / clean['seconds']:.2f}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", default=TARGET_SIZE, choices=("tiny", "small", "medium", "large"))
    parser.add_argument("--rate", type=float, default=50.0, help="SSM's rate limit, requests/s")
    parser.add_argument("--client-rate", type=float, default=None,
                        help="the connector's own limit, requests/s (default: the same as --rate)")
    parser.add_argument("--latency-ms", type=float, default=20.0, help="simulated SSM latency per request")
    parser.add_argument("--concurrency", type=int, default=4, help="SSM calls in flight at once")
    parser.add_argument("--keep", metavar="DIR", help="build in DIR and keep it (default: a temporary folder)")
    parser.add_argument("--hostile", type=float, metavar="PERCENT", default=0.0,
                        help="also load the dossier with this share of hostile rows, and compare")
    args = parser.parse_args(argv)
    folder = Path(args.keep) if args.keep else Path(tempfile.mkdtemp(prefix="bench-cloud-"))
    folder.mkdir(parents=True, exist_ok=True)
    try:
        options = (args.size, args.rate, args.client_rate or args.rate, args.latency_ms, args.concurrency)
        clean = run(*options, folder / "clean")
        report(clean)
        if args.hostile > 0:
            print()
            hostile = run(*options, folder / "hostile", hostile_one_in=max(1, round(100 / args.hostile)))
            report(hostile)
            compare(clean, hostile)
    finally:
        if not args.keep:
            shutil.rmtree(folder, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
