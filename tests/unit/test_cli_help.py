"""Every help screen of `ssm-connector` is French: argparse's own headings and the `-h, --help`
line from the catalogue, every subcommand's and option's help too (no English sentence)."""
from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from local import cli
from local.simulator import cli as simulator_cli
from shared.messages import text
from tests.status.test_french_only import english_words

ROOT = Path(__file__).resolve().parents[2]
ARGPARSE_ENGLISH = ("usage:", "positional arguments", "optional arguments", "show this help message")


def command_paths(parser: argparse.ArgumentParser, path: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    """Every command of the parser tree, as the words typed before `--help`."""
    found = [path]
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                found += command_paths(sub, (*path, name))
    return found


COMMANDS = command_paths(cli.build_parser())
COMMAND_NAME = re.compile(r"(?<![\w-])(?:%s)(?![\w-])" % "|".join(
    re.escape(name) for name in sorted({word for path in COMMANDS for word in path}, key=len, reverse=True)))


def assert_french_help(shown: str) -> None:
    assert shown.startswith(text("cli.usage")), shown
    assert text("cli.options") in shown and text("cli.help") in shown, shown
    for english in ARGPARSE_ENGLISH:
        assert english not in shown.lower(), shown
    assert english_words(COMMAND_NAME.sub(" ", shown)) == [], shown     # `check-tenant` is a name


def test_every_command_of_the_tree_is_walked():
    names = {path[0] for path in COMMANDS if path}
    assert {"agent", "simulator", "local", "check-tenant", "users", "adopt", "package"} <= names
    assert {("agent", action) for action in ("databases", "select", "deselect", "run", "run-once", "state",
                                              "confirm-deletions", "history")} <= set(COMMANDS)


def test_the_top_level_help_is_french_from_the_command_line():
    environ = {k: v for k, v in os.environ.items() if not k.startswith("SSMCONN")}
    environ["PYTHONPATH"] = os.pathsep.join([str(ROOT), *filter(None, [environ.get("PYTHONPATH")])])
    done = subprocess.run([sys.executable, "-m", "local.cli", "--help"], cwd=ROOT, env=environ,
                          capture_output=True, text=True, encoding="utf-8", timeout=120)
    assert done.returncode == 0, done.stderr
    assert_french_help(done.stdout)
    assert text("cli.positionals") in done.stdout and text("cli.main") in done.stdout.replace("\n", " ")


@pytest.mark.parametrize("path", COMMANDS, ids=lambda path: " ".join(path) or "ssm-connector")
def test_every_subcommand_help_is_french(path, capsys):
    with pytest.raises(SystemExit) as exited:
        cli.main([*path, "--help"])
    assert exited.value.code == 0
    assert_french_help(capsys.readouterr().out)


def test_the_simulator_own_command_line_is_french(capsys, monkeypatch):
    monkeypatch.setattr(sys, "argv", ["local.simulator.cli", "--help"])
    with pytest.raises(SystemExit) as exited:
        simulator_cli.main()
    assert exited.value.code == 0
    shown = capsys.readouterr().out
    assert_french_help(shown)
    assert text("cli.simulator.host") in shown


def test_the_detector_would_see_argparse_english():
    parser = argparse.ArgumentParser(prog="ssm-connector")
    parser.add_argument("--config", help="settings file")
    with pytest.raises(AssertionError):
        assert_french_help(parser.format_help())
