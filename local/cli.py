"""`ssm-connector`: the one command line of the product.

This module owns the top-level parser only. Each area adds its own subcommands through a
`register(subparsers)` function (`set_defaults(handler=fn)`, `fn(args) -> exit code`): the agent,
the SSM simulator, the local runtime, the demo, the Function App packaging, the administrator's
tenant and user commands. A module that is not part of this installation is left out; a module that
is present but fails to import is an error. `-vv` also shows every SSM call (method, path, status, duration).
Every help screen is French: the parser is `shared.cli_text.make_parser`'s, and its subparsers inherit it.
"""
from __future__ import annotations

import argparse
import importlib
import importlib.util
import sys
from typing import Optional, Sequence

from shared.cli_text import make_parser
from shared.errors import ConnectorError
from shared.messages import text
from shared.telemetry import configure_logging

COMMAND_MODULES = (
    "agent.cli",
    "local.simulator.cli",
    "local.runtime",
    "local.demo",
    "local.packaging",
    "local.admin_cli",
    "local.adopt_cli",
)


def _present(module: str) -> bool:
    try:
        return importlib.util.find_spec(module) is not None
    except ModuleNotFoundError:       # the parent package itself is absent
        return False


def build_parser() -> argparse.ArgumentParser:
    parser = make_parser(prog="ssm-connector", description=text("cli.main"))
    parser.add_argument("-v", "--verbose", action="count", default=0, help=text("cli.verbose"))
    subparsers = parser.add_subparsers(dest="command", metavar="COMMANDE", title=text("cli.positionals"),
                                       help=text("cli.commands"))
    for module in COMMAND_MODULES:
        if _present(module):
            importlib.import_module(module).register(subparsers)
    return parser


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    level = ("WARNING", "INFO", "DEBUG")[min(args.verbose, 2)]
    configure_logging(level=level, json_lines=False, stream=sys.stderr)
    handler = getattr(args, "handler", None)
    if handler is None:
        parser.print_help()
        return 2
    try:
        return int(handler(args) or 0)
    except ConnectorError as exc:
        print(text("cli.error", message=exc.user_message), file=sys.stderr)
        if exc.detail and args.verbose:
            print(text("cli.detail", detail=exc.detail), file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
