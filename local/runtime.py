"""The embedded local runtime: the agent, the bus, the cloud handlers and the status page in one process.

`LocalRuntime(settings)` wires what production splits over a Sage server and Azure: the agent's
relay (`agent.relay.run_selected`, its checkpoint file) sends the selected dossiers' changes to
the bus named by `[bus]` (the SQLite `LocalBus` by default); the local dispatcher hands them to
the Function App's own registered functions, which reach the state store of `[state]` and the
SSM endpoint of `[ssm]` through `functions.context`, configured with the same settings. A cycle
(`run_once`) is one agent run of every selected dossier, then the bus drained until quiet.

`ssm-connector local --config FILE --once` runs one cycle and prints its summary (`--dry-run`:
what a realignment would do, nothing written, `local.adopt_cli`); without
`--once` it serves the status page and repeats every `[agent] interval_s` until Ctrl-C. With
`[agent] log_path` set, the log also goes to that file, JSON lines rotated as `agent run` writes them.
"""
from __future__ import annotations

import argparse
import datetime as dt
import importlib.util
import os
import sys
import threading
import time
from dataclasses import dataclass, field
from typing import Optional, TextIO

from pydantic import BaseModel, SecretStr

from functions import context
from local.dispatcher import DispatchStats, LocalDispatcher
from shared.config import Settings, load_settings
from shared.state.records import utcnow
from shared.status.report import DossierStatus, StatusQuery, StatusReader
from shared.telemetry import configure_logging, get_logger

log = get_logger(__name__)

AGENT_COUNTS = ("read", "created", "changed", "deleted", "skipped_unchanged", "invalid")
CLOUD_COUNTS = ("created", "updated", "deleted", "skipped_unchanged", "conflicts", "failed")


def app_settings_of(settings: Settings, environ: Optional[dict[str, str]] = None) -> dict[str, str]:
    """The Function App's application settings for these settings: the process environment plus
    every plain (non-secret) value as `SSMCONN__SECTION__FIELD`, which binding expressions use."""
    values = dict(os.environ if environ is None else environ)
    for section, model in settings:
        if not isinstance(model, BaseModel):
            if isinstance(model, (str, int, float, bool)):
                values[f"SSMCONN__{section.upper()}"] = str(model)
            continue
        for name, value in model:
            if value is None or isinstance(value, (SecretStr, BaseModel, list, dict)):
                continue
            values[f"SSMCONN__{section.upper()}__{name.upper()}"] = str(value).lower() if isinstance(value, bool) \
                else str(value)
    return values


@dataclass
class CycleSummary:
    """What one cycle did: the agent's run per dossier, the dispatcher's totals, the status after."""

    started_at: dt.datetime
    ended_at: dt.datetime
    agent_results: list            # agent.relay.DossierRunResult
    dispatch: DispatchStats
    dossiers: list[DossierStatus]
    names: dict[str, str] = field(default_factory=dict)     # dossier id → name from the settings
    refusal: Optional[str] = None  # why the agent ran nothing (agent.relay.ChoiceRequired), in French
    notices: list[str] = field(default_factory=list)         # French lines for the administrator

    @property
    def ok(self) -> bool:
        """The agent reached every dossier and nothing is left on the bus (record incidents aside)."""
        return self.refusal is None and all(r.ok for r in self.agent_results) \
            and not any(self.dispatch.pending.values())

    @property
    def open_incidents(self) -> int:
        return sum(d.open_incidents for d in self.dossiers)

    def render(self) -> str:
        """The cycle for the administrator, in French (catalogue codes `local.cycle.*`)."""
        from shared.messages import text

        seconds = (self.ended_at - self.started_at).total_seconds()
        lines = [text("local.cycle.title", started=f"{self.started_at:%Y-%m-%d %H:%M:%S}",
                      seconds=f"{seconds:.1f}".replace(".", ","))]
        if self.refusal:
            lines.append(f"  {self.refusal}")
        lines += [f"  ! {notice}" for notice in self.notices]
        results = {r.dossier: r for r in self.agent_results}
        for status in self.dossiers:
            name = status.name or self.names.get(status.id) or text("local.cycle.no_name")
            lines.append("  " + text("local.cycle.dossier", dossier=status.id, name=name,
                                     health=text(f"status.health.{status.health.value}"),
                                     incidents=status.open_incidents))
            result = results.pop(status.id, None)
            if result is not None:
                lines.append("    " + text("local.cycle.agent", line=_agent_line(result)))
            cloud = next((r for r in status.runs if r.side == "cloud"), None)
            if cloud is not None:
                lines.append("    " + text("local.cycle.cloud", run=cloud.run_id,
                                           state=text(f"status.run_state.{cloud.state.value}").lower(),
                                           counts=cloud_counts_text(cloud.counts)))
        for result in results.values():   # reached by the agent, not (yet) known to the cloud side
            lines.append("  " + text("local.cycle.agent_alone", dossier=result.dossier, line=_agent_line(result)))
        d = self.dispatch
        lines.append("  " + text("local.cycle.bus", completed=d.completed, invocations=d.invocations,
                                 abandoned=d.abandoned, dead_letters=d.dead_letters_handled,
                                 pending=sum(d.pending.values())))
        return "\n".join(lines)


def cloud_counts_text(counts: dict) -> str:
    """The cloud run's counters as `créés 3, modifiés 0, …` (labels of the status page, lower case)."""
    from shared.messages import text

    return ", ".join(text("sync.count", label=text(f"status.count.{k}").lower(), value=counts.get(k, 0))
                     for k in CLOUD_COUNTS)


def agent_counts_text(counts: dict) -> str:
    """The agent run's counters as `lus 12, nouveaux 3, …` (the journal's labels)."""
    from shared.messages import text

    return ", ".join(text("sync.count", label=text(f"sync.agent_count.{k}"), value=counts[k])
                     for k in AGENT_COUNTS if k in counts)


def _agent_line(result) -> str:
    from shared.messages import text

    if not result.ok:
        return text("local.agent.failed", error=result.error)
    kind = text("agent.cli.kind.realignment" if result.realignment else "agent.cli.kind.incremental")
    return text("local.agent.run", run=result.run_id, kind=kind, counts=agent_counts_text(result.counts),
                batches=result.batches_sent)


class LocalRuntime:
    """One process running the whole pipeline (see the module docstring).

    Args:
        settings: the configuration (paths already resolved by `load_settings`).
        app: the Function App (defaults to `function_app.app`).
        sync_service: the `SyncService` the functions use (default: built from `settings` on
            first use); one handed in is closed with the runtime, its own clients are not.
    """

    def __init__(self, settings: Settings, *, app=None, sync_service=None):
        from agent.checkpoint import Checkpoint
        from shared.bus.factory import open_bus
        from shared.state.factory import open_state_store

        self.settings = settings
        self.bus = open_bus(settings.bus)
        self.store = open_state_store(settings.state)
        self.store.ensure_tables()
        self.checkpoint = Checkpoint(settings.agent.state_path)
        context.configure(settings, service=sync_service)
        self.dispatcher = LocalDispatcher(self.bus, app, app_settings=app_settings_of(settings))
        self.status_server = None

    def run_agent(self, dossier: Optional[str] = None, *, stop: Optional[threading.Event] = None) -> list:
        """One agent run of every selected dossier (or of `dossier`); returns their results.
        Once `stop` is set, the dossier under way finishes and the others wait for the next cycle."""
        from agent.relay import run_selected
        from shared.group_directory import StoreDirectory

        return run_selected(self.settings, checkpoint=self.checkpoint, bus=self.bus, dossier=dossier, stop=stop,
                            directory=StoreDirectory(self.store))

    def drain(self, deadline: Optional[float] = None) -> DispatchStats:
        """Hand everything on the bus to the functions until it is quiet (or `deadline`, a
        `time.monotonic()` value, is past), then run the timer functions once (the replay of
        dead-lettered changes that are due) unless the deadline is past."""
        stats = self.dispatcher.drain(deadline=deadline)
        if deadline is not None and time.monotonic() >= deadline:
            stats.stopped_at_deadline = True
            return stats
        timers = self.dispatcher.run_timers()
        stats.failed_invocations += timers.failed_invocations
        stats.errors.extend(timers.errors)
        return stats

    def status(self) -> list[DossierStatus]:
        reader = StatusReader.from_settings(self.settings, self.store, self.bus)
        return reader.report(StatusQuery(runs=5, journal=0)).dossiers

    def run_once(self) -> CycleSummary:
        """One cycle: the agent for every selected dossier, then the bus drained until quiet;
        never much longer than `[agent] cycle_max_s` (what is left then waits for the next cycle)."""
        from agent.relay import ChoiceRequired
        from shared.messages import text

        started = utcnow()
        ceiling = self.settings.agent.cycle_max_s
        deadline = time.monotonic() + ceiling
        stop = threading.Event()
        timer = threading.Timer(ceiling, stop.set)
        timer.daemon = True
        timer.start()
        context.set_deadline(deadline)
        refusal = None
        try:
            self.pass_ssm_changes()
            try:
                results = self.run_agent(stop=stop)
            except ChoiceRequired as exc:
                results, refusal = [], exc.user_message
            dispatch = self.drain(deadline)
        finally:
            timer.cancel()
            context.set_deadline(None)
        names = {d.id: d.name for d in self.settings.dossiers if d.name}
        notices = self.lock_notices()
        if stop.is_set() or dispatch.stopped_at_deadline:
            pending = sum(dispatch.pending.values())
            log.warning("cycle stopped at its ceiling of %g s ([agent] cycle_max_s): %d message(s) left on the bus,"
                        " %d dossier(s) run by the agent", ceiling, pending, len(results))
            notices.append(text("crash.cycle_ceiling", seconds=f"{ceiling:g}", pending=pending))
        return CycleSummary(started, utcnow(), results, dispatch, self.status(), names, refusal, notices)

    def lock_notices(self) -> list[str]:
        """French lines for the locks of killed processes this cycle took over (agent run lock, bus sessions)."""
        from shared.messages import text

        notices = []
        owner = self.checkpoint.lock_taken_over
        if owner is not None:
            notices.append(text("crash.run_lock_taken_over", path=f"{self.checkpoint.path}.lock", pid=owner.pid))
            self.checkpoint.lock_taken_over = None
        taken_over = getattr(self.bus, "taken_over", None)
        for session in (taken_over() if taken_over is not None else ()):
            code = "crash.bus_lock_taken_over" if session.reason == "gone" else "crash.bus_lock_expired"
            notices.append(text(code, queue=session.queue, dossier=session.session_id, pid=session.owner.pid,
                                messages=session.messages))
        return notices

    def pass_ssm_changes(self):
        """SSM's changes read and turned into commands for the agents (as the `ssm_changes`
        timer function does in Azure); None when SSM cannot be read now (the next cycle reads)."""
        try:
            return context.inbound_service().run_pass()
        except Exception as exc:               # noqa: BLE001 - the Sage → SSM half of the cycle goes on
            log.warning("SSM changes not read this cycle: %s", exc)
            return None

    def start_status_server(self, *, port: Optional[int] = None, out: Optional[TextIO] = None):
        """Serve the status endpoints and page on 127.0.0.1 (None when that module is absent)."""
        if importlib.util.find_spec("local.status_server") is None:
            return None
        from local.status_server import start_status_server

        self.status_server = start_status_server(self.settings.status, port=port, out=out)
        return self.status_server

    def serve(self, stop: threading.Event, *, out: Optional[TextIO] = None, cycles: Optional[int] = None,
              status: bool = True) -> None:
        """Serve status (unless `status` is False) and run a cycle every `[agent] interval_s`
        until `stop` is set (or `cycles` cycles are done)."""
        out = out or sys.stdout
        if status and self.status_server is None:
            self.start_status_server(out=out)
        done = 0
        while not stop.is_set():
            print(self.run_once().render(), file=out, flush=True)
            done += 1
            if cycles is not None and done >= cycles:
                break
            stop.wait(self.settings.agent.interval_s)

    def close(self) -> None:
        if self.status_server is not None:
            self.status_server.stop()
            self.status_server = None
        self.dispatcher.close()
        context.reset()
        self.checkpoint.close()
        self.store.close()
        self.bus.close()

    def __enter__(self) -> "LocalRuntime":
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()


# --- command line ---------------------------------------------------------------------------
def register(subparsers) -> None:
    from shared.messages import text
    parser = subparsers.add_parser(
        "local", help=text("cli.local"), description=text("cli.local.description"))
    parser.add_argument("--config", metavar="FICHIER", default=os.environ.get(context.CONFIG_PATH_ENV),
                        help=text("cli.config"))
    parser.add_argument("--once", action="store_true", help=text("cli.local.once"))
    parser.add_argument("--no-status", action="store_true", help=text("cli.local.no_status"))
    parser.add_argument("--dry-run", action="store_true", help=text("cli.local.dry_run"))
    parser.add_argument("--dossier", metavar="ID", help=text("cli.local.dossier"))
    parser.add_argument("--json", action="store_true", help=text("cli.local.json"))
    parser.set_defaults(handler=cmd_local)


def configure_log_file(settings: Settings, *, verbose: int = 0) -> bool:
    """Honour `[agent] log_path`: JSON lines with the dossier and run ids, rotated (10 MB x 10),
    plus the console, as the agent's own commands do. False when no file is configured."""
    if not settings.agent.log_path:
        return False
    configure_logging(filename=settings.agent.log_path, stream=sys.stderr,
                      level="DEBUG" if verbose > 1 else "INFO")
    return True


def cmd_local(args: argparse.Namespace) -> int:
    from shared.messages import text

    settings = load_settings(args.config)
    configure_log_file(settings, verbose=getattr(args, "verbose", 0))
    if getattr(args, "dry_run", False):
        from local.adopt_cli import dry_run

        return dry_run(settings, args.dossier, as_json=args.json)
    with LocalRuntime(settings) as runtime:
        if args.once:
            summary = runtime.run_once()
            print(summary.render(), flush=True)
            return 0 if summary.ok else 1
        stop = threading.Event()
        print(text("local.running", interval=f"{settings.agent.interval_s:g}"), flush=True)
        try:
            runtime.serve(stop, status=not args.no_status)
        except KeyboardInterrupt:
            stop.set()
        return 0
