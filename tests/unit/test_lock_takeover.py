"""Locks left by a killed process: the agent's run lock and the owner it names."""
from __future__ import annotations

import multiprocessing
import os
import subprocess
import sys

import pytest

from agent.checkpoint import AgentBusyError, Checkpoint
from shared.process_owner import OwnerFile, ProcessOwner


def _hold_run_lock_and_die(path: str) -> None:
    checkpoint = Checkpoint(path)
    with checkpoint.exclusive():
        os._exit(3)


def test_the_run_lock_of_a_killed_agent_is_taken_over_by_the_next_run_and_named(tmp_path):
    path = str(tmp_path / "agent.db")
    child = multiprocessing.get_context("spawn").Process(target=_hold_run_lock_and_die, args=(path,))
    child.start()
    child.join(timeout=60)
    assert child.exitcode == 3

    checkpoint = Checkpoint(path)
    try:
        with checkpoint.exclusive():
            assert checkpoint.lock_taken_over is not None and checkpoint.lock_taken_over.pid == child.pid
            assert OwnerFile(f"{path}.lock.owner").read() == ProcessOwner.current()
        assert not os.path.exists(f"{path}.lock.owner")          # released cleanly: nothing left behind
        with checkpoint.exclusive():
            assert checkpoint.lock_taken_over is None
    finally:
        checkpoint.close()


def test_a_run_lock_held_by_a_live_process_is_not_taken_and_its_holder_is_named(tmp_path):
    path = str(tmp_path / "agent.db")
    holder = Checkpoint(path)
    try:
        with holder.exclusive():
            other = Checkpoint(path)
            try:
                with pytest.raises(AgentBusyError) as refused:
                    with other.exclusive():
                        pass
            finally:
                other.close()
        assert f"pid {os.getpid()}" in refused.value.detail
    finally:
        holder.close()


def test_a_process_is_gone_when_its_pid_no_longer_runs_or_was_reused():
    me = ProcessOwner.current()
    assert not me.is_gone()
    finished = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    dead = ProcessOwner(me.host, int(finished.stdout), "1")
    assert dead.is_gone()
    assert ProcessOwner(me.host, me.pid, "not-its-start-time").is_gone() is False     # itself, never
    assert ProcessOwner(me.host, os.getppid(), "0").is_gone()        # a live PID started at another time: reused
    assert not ProcessOwner(me.host + "-elsewhere", int(finished.stdout)).is_gone()


def test_agent_run_once_after_a_killed_run_says_in_french_that_it_took_the_lock_over(tmp_path, monkeypatch, capsys):
    from agent import cli

    path = str(tmp_path / "agent.db")
    child = multiprocessing.get_context("spawn").Process(target=_hold_run_lock_and_die, args=(path,))
    child.start()
    child.join(timeout=60)
    monkeypatch.setattr(cli, "_open_bus", lambda settings: type("NoBus", (), {"close": lambda self: None})())

    def run_selected(settings, *, checkpoint, **options):     # the relay's run, without dossiers
        with checkpoint.exclusive():
            return []
    monkeypatch.setattr(cli, "run_selected", run_selected)
    monkeypatch.setattr(cli, "directory_for", lambda settings: None)      # no group directory to read
    settings = type("S", (), {"agent": type("A", (), {"state_path": path})()})()

    assert cli._run_cycle(settings, None, None) == []

    out = capsys.readouterr().out
    assert f"laissé par un processus arrêté brutalement (PID {child.pid})" in out
