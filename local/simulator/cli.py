"""`ssm-connector simulator`: serve the SSM simulator on 127.0.0.1 until Ctrl-C.

It prints the base URL and the integration keys to put in the connector's `[ssm]` settings.
The tenant's rate limit is a documented plan (`--plan`, default `contract.DEFAULT_RATE_PLAN`:
"starter" 50 per minute, "4" or "13" per second, "none"); `--rate-limit` overrides it.
"""
from __future__ import annotations

import argparse
import sys
import threading

from local.simulator.faults import FaultPlan
from local.simulator.server import SsmSimulator
from shared.ssm.contract import DEFAULT_RATE_PLAN, RATE_PLANS


def register(subparsers) -> None:
    parser = subparsers.add_parser("simulator", help="serve a simulated Sage Sales Management API",
                                   description=__doc__)
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=8765, help="port (default 8765, 0 = any free port)")
    parser.add_argument("--latency-ms", type=float, default=0.0, help="delay added to every request")
    parser.add_argument("--plan", choices=[*RATE_PLANS, "none"], default=DEFAULT_RATE_PLAN,
                        help=f"the credentials' rate plan: starter (50/min), 4 or 13 requests/s, or none "
                             f"(default {DEFAULT_RATE_PLAN})")
    parser.add_argument("--rate-limit", type=float, default=None,
                        help="requests per second before SSM answers 429 (overrides --plan)")
    parser.add_argument("--error-rate", type=float, default=0.0,
                        help="share of requests answered 500/502/503 (0 to 1)")
    parser.add_argument("--seed", type=int, default=0, help="seed of ids, keys and faults")
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace, *, ready: threading.Event | None = None,
        stop: threading.Event | None = None) -> int:
    faults = FaultPlan(latency_s=args.latency_ms / 1000.0, error_rate=args.error_rate, seed=args.seed)
    plan = getattr(args, "plan", DEFAULT_RATE_PLAN)
    if args.rate_limit is not None:
        faults.rate_limit_per_s = args.rate_limit
        plan = None
    simulator = SsmSimulator(faults=faults, seed=args.seed, rate_plan=plan).start(args.host, args.port)
    print(f"SSM simulator listening on {simulator.base_url}")
    limit = f"{args.rate_limit:g} requests/s" if plan is None else \
        "none" if plan == "none" else f"plan {plan}"
    print(f"  rate limit : {limit}")
    print(f"  public key : {simulator.public_key}")
    print(f"  private key: {simulator.private_key}")
    print(f"  admin user : {simulator.admin_email}")
    print("Press Ctrl-C to stop.", flush=True)
    stop = stop or threading.Event()
    if ready is not None:
        ready.set()
    try:
        while not stop.wait(0.5):
            pass
    except KeyboardInterrupt:
        pass
    finally:
        simulator.stop()
    return 0


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m local.simulator.cli")
    register(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(argv if argv is not None else ["simulator", *sys.argv[1:]])
    return args.handler(args)


if __name__ == "__main__":
    sys.exit(main())
