"""`ssm-connector local` honours `[agent] log_path` as the agent's commands do: JSON lines in a rotating file."""
from __future__ import annotations

import json
import logging

import pytest

from local import runtime
from local.cli import main
from shared.telemetry import LOGGER_NAME, get_logger


@pytest.fixture
def restore_logging():
    logger = logging.getLogger(LOGGER_NAME)
    handlers, level = list(logger.handlers), logger.level
    yield
    for handler in list(logger.handlers):
        logger.removeHandler(handler)
        if handler not in handlers:
            handler.close()
    for handler in handlers:
        logger.addHandler(handler)
    logger.setLevel(level)


class QuietRuntime:
    """Stands for `LocalRuntime`: one cycle that logs a line of a dossier's run."""

    def __init__(self, settings, **_):
        self.settings = settings

    def __enter__(self):
        return self

    def __exit__(self, *exc_info):
        return None

    def run_once(self):
        from shared.telemetry import log_context

        with log_context(dossier="BIJOU", run_id="run-7"):
            get_logger("local.runtime").info("cycle done")
        return type("Summary", (), {"ok": True, "render": lambda self: "1 dossier(s) synchronisé(s)"})()


def test_local_writes_its_log_to_the_agent_log_path(tmp_path, monkeypatch, restore_logging, capsys):
    config = tmp_path / "config.toml"
    config.write_text('[agent]\nlog_path = "logs/agent.log"\n', encoding="utf-8")
    monkeypatch.setattr(runtime, "LocalRuntime", QuietRuntime)

    assert main(["local", "--config", str(config), "--once"]) == 0

    for handler in logging.getLogger(LOGGER_NAME).handlers:
        handler.flush()
    lines = [json.loads(line) for line in (tmp_path / "logs" / "agent.log").read_text(encoding="utf-8").splitlines()]
    assert {"message": "cycle done", "dossier": "BIJOU", "run_id": "run-7"}.items() <= lines[-1].items()
    assert "1 dossier(s) synchronisé(s)" in capsys.readouterr().out


def test_without_a_log_path_nothing_is_written(tmp_path, restore_logging):
    from shared.config import Settings

    assert runtime.configure_log_file(Settings()) is False
    assert list(tmp_path.iterdir()) == []
