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
from shared.cli_text import make_parser
from shared.messages import text
from shared.ssm.contract import DEFAULT_RATE_PLAN, RATE_PLANS


def register(subparsers) -> None:
    parser = subparsers.add_parser("simulator", help=text("cli.simulator"),
                                   description=text("cli.simulator.description"))
    parser.add_argument("--host", default="127.0.0.1", help=text("cli.simulator.host"))
    parser.add_argument("--port", type=int, default=8765, help=text("cli.simulator.port"))
    parser.add_argument("--latency-ms", type=float, default=0.0, help=text("cli.simulator.latency"))
    parser.add_argument("--plan", choices=[*RATE_PLANS, "none"], default=DEFAULT_RATE_PLAN,
                        help=text("cli.simulator.plan", default=DEFAULT_RATE_PLAN))
    parser.add_argument("--rate-limit", type=float, default=None, help=text("cli.simulator.rate_limit"))
    parser.add_argument("--error-rate", type=float, default=0.0, help=text("cli.simulator.error_rate"))
    parser.add_argument("--seed", type=int, default=0, help=text("cli.simulator.seed"))
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace, *, ready: threading.Event | None = None,
        stop: threading.Event | None = None) -> int:
    faults = FaultPlan(latency_s=args.latency_ms / 1000.0, error_rate=args.error_rate, seed=args.seed)
    plan = getattr(args, "plan", DEFAULT_RATE_PLAN)
    if args.rate_limit is not None:
        faults.rate_limit_per_s = args.rate_limit
        plan = None
    simulator = SsmSimulator(faults=faults, seed=args.seed, rate_plan=plan).start(args.host, args.port)
    print(text("cli.simulator.listening", url=simulator.base_url))
    limit = text("cli.simulator.limit_rate", rate=f"{args.rate_limit:g}") if plan is None else \
        text("cli.simulator.limit_none") if plan == "none" else text("cli.simulator.limit_plan", plan=plan)
    print(text("cli.simulator.limit", limit=limit))
    print(text("cli.simulator.public_key", key=simulator.public_key))
    print(text("cli.simulator.private_key", key=simulator.private_key))
    print(text("cli.simulator.admin_user", email=simulator.admin_email))
    print(text("cli.simulator.stop"), flush=True)
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
    parser = make_parser(prog="python -m local.simulator.cli")
    register(parser.add_subparsers(dest="command", required=True, title=text("cli.positionals")))
    args = parser.parse_args(argv if argv is not None else ["simulator", *sys.argv[1:]])
    return args.handler(args)


if __name__ == "__main__":
    sys.exit(main())
