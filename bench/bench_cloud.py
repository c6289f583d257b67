"""The cloud side: its own cost per record at two dossier sizes, SSM calls per record, and a
rate-limited first load next to its floor.

Builds demo Sage 100 dossiers and runs one cycle of the local runtime on each: the agent's full
load, then every batch through the Function App's handlers into the SSM simulator.
- Cost per record: SSM answers at once (no latency, no rate limit), so the time of the handlers
  (the bus drained) divided by the records created is the connector's own cost; measured at two
  sizes (`--sizes`), their ratio shows whether it grows with the dossier.
- Calls per created record, from the larger of those runs: writes and look-ups (what a record
  costs), the other calls beside them (polling of the connector's own writes, probes, reference
  lists, the login; `call_kind`).
- A first load against a rate-limited SSM (`--rate`, 20 ms latency, 429 beyond the limit), its
  time printed next to its floor (its calls / the rate limit) and the share of the limit used.

    python bench/bench_cloud.py --sizes tiny,small --size small  # quick (make bench): limited load of small
    python bench/bench_cloud.py --sizes small,large --size small # 10k and 1M records (hours)
    python bench/bench_cloud.py --rate 4                         # the smallest SSM plan
    python bench/bench_cloud.py --size small --hostile 1 --rate 1000 --latency-ms 0
                                                                 # first load, clean then with 1 % hostile rows

With `--hostile PERCENT` it also loads the `--size` dossier with that share of hostile rows
(`agent.demo_builder.add_hostile_share`: unreadable text, duplicate keys, impossible dates,
prices typed as text, binary values, malformed optional values), and prints both first loads
(the rate-limited clean one and the hostile one): the agent's time, the cloud's, the open incidents.
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
for folder in (ROOT, ROOT / "bench"):
    if str(folder) not in sys.path:
        sys.path.insert(0, str(folder))

QUICK_ARGS = ["--sizes", "tiny,small", "--size", "small"]   # the rate-limited load: 5,600 calls, 2 min
CALLS_PER_RECORD_TARGET = 1.0
PER_RECORD_SCALE_TARGET = 1.3
PLAN_RATE = 4.0                 # requests/s of SSM's smaller API plan
DOCUMENT_RESOURCES = ("salesorders", "salesordersLines", "sales")
UNLIMITED = 100_000.0           # requests/s: SSM answers at once, the connector's own cost shows
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
        from shared.state.sqlite_store import COMMITS_MADE
        before = dict(COMMITS_MADE)
        with LocalRuntime(settings) as runtime:
            started = time.perf_counter()
            runtime.pass_ssm_changes()
            agent_started, agent_cpu = time.perf_counter(), time.process_time()
            results = runtime.run_agent()
            agent_seconds, agent_cpu = time.perf_counter() - agent_started, time.process_time() - agent_cpu
            drained = time.perf_counter()
            summary = runtime.drain()
            seconds = time.perf_counter() - started
            drain_seconds = time.perf_counter() - drained
            incidents = sum(d.open_incidents for d in runtime.status())
            store_writes = (COMMITS_MADE["writes"] - before["writes"], COMMITS_MADE["commits"] - before["commits"])
        calls = list(simulator.calls)
    created = sum(1 for c in calls if c.method == "POST" and c.resource != "login" and c.status in (200, 201))
    span = (calls[-1].at - calls[0].at).total_seconds() if len(calls) > 1 else 0.0
    documents = [i for i, c in enumerate(calls) if c.method == "POST" and c.resource in DOCUMENT_RESOURCES]
    first_hour = Counter(c.resource for c in calls[:int(PLAN_RATE * 3600)]
                         if c.method == "POST" and c.resource != "login" and c.status in (200, 201))
    return {
        "size": size, "ok": all(r.ok for r in results) and not any(summary.pending.values()),
        "store_writes": store_writes, "before_documents": documents[0] if documents else len(calls),
        "first_hour": dict(first_hour),
        "seconds": seconds, "drain_seconds": drain_seconds, "agent_seconds": agent_seconds, "agent_cpu": agent_cpu,
        "hostile": hostile, "rows": sum(stats.counts[table] for table in DAMAGED_TABLES),
        "span": span, "calls": len(calls), "created": created,
        "by_kind": Counter(call_kind(c) for c in calls),
        "rate_limited": sum(1 for c in calls if c.status == 429),
        "incidents": incidents, "rate": rate, "client_rate": client_rate,
    }


def call_kind(call) -> str:
    """What an SSM call is for: `write` (a create, update or delete), `look-up` (a record read by
    its id, `extId` or name: what a record costs beyond its write), `polling` (the SSM → Sage
    pass reading what changed, the connector's own writes included), `probe` (whether SSM holds
    any record of the dossier), `reference` (users, branches, value lists), `login`."""
    if call.resource == "login":
        return "login"
    if call.method in WRITE_METHODS:
        return "write"
    where = str(call.query.get("where", ""))
    if "dateCreated>" in where:
        return "polling"
    if " LIKE " in where:
        return "probe"
    if call.id is not None or "extId=" in where or "extID=" in where or "descriptionFR=" in where:
        return "look-up"
    return "reference"


def describe(figures: dict) -> None:
    created, calls, span = figures["created"], figures["calls"], figures["span"]
    print(f"{figures['size']}: {created} SSM records created, {figures['incidents']} open incident(s), cycle"
          f" {'ok' if figures['ok'] else 'NOT ok'}; {figures['seconds']:.1f} s, of which the cloud side"
          f" {figures['drain_seconds']:.1f} s; SSM calls {calls} over {span:.1f} s"
          f" ({', '.join(f'{k} {v}' for k, v in sorted(figures['by_kind'].items()))}),"
          f" {figures['rate_limited']} answered 429; limit {figures['rate']:g} req/s"
          f" (connector {figures['client_rate']:g})")


def report(cost: dict[str, dict], limited: dict) -> list:
    """The figures: the cloud side's cost per record at two sizes (SSM answering at once, no rate
    limit: what the connector itself costs), calls per record, and a rate-limited first load next
    to its floor (calls / rate limit)."""
    from figures import Figure

    small, large = sorted(cost.values(), key=lambda f: f["created"])
    per = {f["size"]: f["drain_seconds"] / max(f["created"], 1) for f in (small, large)}
    scale = per[large["size"]] / per[small["size"]]
    kinds = large["by_kind"]
    per_record = (kinds["write"] + kinds["look-up"]) / max(large["created"], 1)
    beside = ", ".join(f"{kinds[kind]:,} {kind}" for kind in ("polling", "probe", "reference", "login") if kinds[kind])
    floor = limited["calls"] / limited["rate"]
    used = (limited["calls"] / limited["span"]) / limited["rate"] if limited["span"] > 0 else 0.0
    return [
        Figure(f"cloud cost per record, {large['created']:,} vs {small['created']:,} records (no SSM latency)",
               f"{scale:.2f}x ({per[large['size']] * 1000:.2f} ms vs {per[small['size']] * 1000:.2f} ms)",
               f"<= {PER_RECORD_SCALE_TARGET}x", scale <= PER_RECORD_SCALE_TARGET,
               note="the target compares 10k and 1M records"),
        Figure(f"SSM calls per created record, writes and look-ups ({large['size']}, {large['created']:,} records)",
               f"{per_record:.4f} ({kinds['write']:,} writes, {kinds['look-up']:,} look-ups)",
               f"<= {CALLS_PER_RECORD_TARGET}", per_record <= CALLS_PER_RECORD_TARGET,
               note=f"besides: {beside}; all calls {large['calls'] / max(large['created'], 1):.3f} per record"),
        Figure(f"reference data in SSM before the first document ({large['size']})",
               f"after {large['before_documents']:,} of {large['calls']:,} calls"
               f" ({large['before_documents'] / PLAN_RATE / 60:.1f} min at {PLAN_RATE:g} req/s)",
               note="users, clients, prospects, contacts, products go first, then documents; clients, prospects, documents newest first"),
        Figure(f"created in SSM within the first hour at {PLAN_RATE:g} req/s ({large['size']})",
               ", ".join(f"{count:,} {resource}" for resource, count in
                         sorted(large["first_hour"].items(), key=lambda item: -item[1])) or "nothing",
               note=f"the first {int(PLAN_RATE * 3600):,} calls, in the order of the run without a rate limit"),
        Figure(f"state-store writes per commit ({large['size']}, SQLite, group commit)",
               f"{large['store_writes'][0] / max(large['store_writes'][1], 1):.2f}"
               f" ({large['store_writes'][0]:,} writes, {large['store_writes'][1]:,} commits)",
               note="each commit is one fsync (synchronous = FULL); at most 100 operations per commit"),
        Figure(f"first load at {limited['rate']:g} req/s ({limited['size']}), time vs floor (calls / limit)",
               f"{limited['seconds']:.1f} s vs {floor:.1f} s ({limited['seconds'] / floor:.2f}x)",
               note="the floor of a first load is its SSM calls at the tenant's rate limit"),
        Figure(f"rate limit used ({limited['size']}, {limited['rate']:g} req/s)", f"{used:.1%}",
               f">= {RATE_USED_TARGET:.0%}", used >= RATE_USED_TARGET),
    ]


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
    parser.add_argument("--sizes", default="tiny,small",
                        help="the two dossier sizes of the cost per record (the second: calls per record)")
    parser.add_argument("--size", default="tiny", choices=("tiny", "small", "medium", "large"),
                        help="the dossier of the rate-limited first load")
    parser.add_argument("--rate", type=float, default=50.0, help="SSM's rate limit, requests/s")
    parser.add_argument("--client-rate", type=float, default=None,
                        help="the connector's own limit, requests/s (default: the same as --rate)")
    parser.add_argument("--latency-ms", type=float, default=20.0, help="simulated SSM latency per request")
    parser.add_argument("--concurrency", type=int, default=4, help="SSM calls in flight at once")
    parser.add_argument("--keep", metavar="DIR", help="build in DIR and keep it (default: a temporary folder)")
    parser.add_argument("--hostile", type=float, metavar="PERCENT", default=0.0,
                        help="also load the dossier with this share of hostile rows, and compare")
    args = parser.parse_args(argv)
    from figures import emit

    root = Path(args.keep) if args.keep else Path(tempfile.mkdtemp(prefix="bench-cloud-"))
    try:
        cost = {}
        for size in args.sizes.split(","):
            folder = root / f"cost-{size}"
            folder.mkdir(parents=True, exist_ok=True)
            cost[size] = run(size, UNLIMITED, UNLIMITED, 0.0, args.concurrency, folder)
            describe(cost[size])
        options = (args.size, args.rate, args.client_rate or args.rate, args.latency_ms, args.concurrency)
        limited = run(*options, root / f"limited-{args.size}")
        describe(limited)
        emit("cloud", report(cost, limited))
        if args.hostile > 0:
            hostile = run(*options, root / f"hostile-{args.size}", hostile_one_in=max(1, round(100 / args.hostile)))
            describe(hostile)
            compare(limited, hostile)
    finally:
        if not args.keep:
            shutil.rmtree(root, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
