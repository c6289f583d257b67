"""`ssm-connector simulator`: serve the SSM simulator on 127.0.0.1 until Ctrl-C.

It prints the base URL and the integration keys to put in the connector's `[ssm]` settings.
"""
from __future__ import annotations

import argparse
import sys
import threading

from local.simulator.faults import FaultPlan
from local.simulator.server import SsmSimulator


def register(subparsers) -> None:
    parser = subparsers.add_parser("simulator", help="serve a simulated Sage Sales Management API",
                                   description=__doc__)
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=8765, help="port (default 8765, 0 = any free port)")
    parser.add_argument("--latency-ms", type=float, default=0.0, help="delay added to every request")
    parser.add_argument("--rate-limit", type=float, default=None,
                        help="requests per second before SSM answers 429 (default: no limit)")
    parser.add_argument("--error-rate", type=float, default=0.0,
                        help="share of requests answered 500/502/503 (0 to 1)")
    parser.add_argument("--seed", type=int, default=0, help="seed of ids, keys and faults")
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace, *, ready: threading.Event | None = None,
        stop: threading.Event | None = None) -> int:
    faults = FaultPlan(latency_s=args.latency_ms / 1000.0, rate_limit_per_s=args.rate_limit,
                       error_rate=args.error_rate, seed=args.seed)
    simulator = SsmSimulator(faults=faults, seed=args.seed).start(args.host, args.port)
    print(f"SSM simulator listening on {simulator.base_url}")
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
