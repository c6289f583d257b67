"""The French command line: an `argparse` parser whose own words come from the catalogue.

argparse writes "usage:", "positional arguments", "options" and the `-h, --help` line in English.
`FrenchArgumentParser` takes them from `shared.messages` instead; the subparsers of one inherit its
class (`add_subparsers` builds them with the parent's class), so every subcommand's help is French
too. `make_parser(...)` builds a top-level parser.
"""
from __future__ import annotations

import argparse

from shared.messages import text


class FrenchHelpFormatter(argparse.HelpFormatter):
    """The usage line opens with the catalogue's word instead of argparse's "usage: "."""

    def add_usage(self, usage, actions, groups, prefix=None):
        super().add_usage(usage, actions, groups, text("cli.usage") if prefix is None else prefix)


class FrenchArgumentParser(argparse.ArgumentParser):
    """An `ArgumentParser` whose headings and `-h, --help` line are French."""

    def __init__(self, *args, add_help: bool = True, parents=(), **kwargs):
        kwargs.setdefault("formatter_class", FrenchHelpFormatter)
        super().__init__(*args, add_help=False, **kwargs)
        self._positionals.title = text("cli.positionals")
        self._optionals.title = text("cli.options")
        if add_help:
            self.add_argument("-h", "--help", action="help", default=argparse.SUPPRESS, help=text("cli.help"))
        for parent in parents:                       # as argparse does, after the help line
            self._add_container_actions(parent)
            self._defaults.update(parent._defaults)


def make_parser(prog: str | None = None, **kwargs) -> FrenchArgumentParser:
    """A top-level parser of the product's command line."""
    return FrenchArgumentParser(prog=prog, **kwargs)
