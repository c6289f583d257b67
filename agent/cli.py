"""`ssm-connector agent ...`: the agent's command line on the Sage server.

`databases` lists the company databases the agent can see, their lifecycle state, and beside them
the dossiers the group already knows (read from the cloud, `shared.group_directory`); `select`
chooses one — a new dossier, one deactivated before, or one the group knows (after a reinstall),
refused when its database is another company — and `deselect` deactivates it (the cloud learns
of either at the agent's next run); an agent whose state is new runs nothing while the group knows
dossiers it has not chosen among; `run-once` runs every selected dossier once; `run` repeats that every
`--interval` seconds until SIGINT/SIGTERM, finishing the dossier in progress; `state` shows the
agent's local state (selection, last runs, watermarks, shadow sizes, pending batches, errors,
held deletions); `confirm-deletions` lets the next run send a mass deletion the agent held.
Settings come from `--config FILE` (TOML) and `SSMCONN__*` environment variables.
"""
from __future__ import annotations

import argparse
import datetime as dt
import json
import signal
import sys
import threading
import time
from contextlib import contextmanager
from typing import Iterator, Optional

from agent.catalog import database_identity, dossier_state, is_selected, list_databases, selected_dossiers
from agent.checkpoint import AgentBusyError, Checkpoint, DeletionHold, plural
from agent.dossiers import AgentDossiers
from agent.relay import (ActivityNotice, ChoiceRequired, DossierRunResult, activity_text, apply_dossier_commands,
                         run_selected)
from shared.config import Settings, load_settings
from shared.errors import ConnectorError
from shared.group_directory import company_mismatch, directory_for, restored_copy
from shared.lifecycle import State
from shared.messages import text
from shared.telemetry import configure_logging
from shared.rules import sync_order

COUNT_ORDER = ("read", "created", "changed", "resent", "deleted", "skipped_unchanged", "invalid", "deletions_held")
SHOWN_WHEN_NOT_ZERO = {"deletions_held"}
COMMAND_WAIT_S = 5.0
"""Between cycles, how often the agent applies the cloud's commands (SSM → Sage), in seconds."""


def register(subparsers) -> None:
    config = argparse.ArgumentParser(add_help=False)
    config.add_argument("--config", metavar="FICHIER", default=argparse.SUPPRESS, help=text("cli.config"))
    agent = subparsers.add_parser("agent", parents=[config], help=text("cli.agent"),
                                  description=text("cli.agent.description"))
    commands = agent.add_subparsers(dest="agent_command", metavar="ACTION", title=text("cli.positionals"))
    agent.set_defaults(handler=lambda args: _usage(agent))

    databases = commands.add_parser("databases", parents=[config],
                                    help=text("cli.agent.databases"))
    databases.set_defaults(handler=cmd_databases)

    select = commands.add_parser("select", parents=[config], help=text("cli.agent.select"))
    select.add_argument("dossier", metavar="ID")
    select.set_defaults(handler=cmd_select)

    deselect = commands.add_parser("deselect", parents=[config], help=text("cli.agent.deselect"))
    deselect.add_argument("dossier", metavar="ID")
    deselect.set_defaults(handler=cmd_deselect)

    run_once = commands.add_parser("run-once", parents=[config], help=text("cli.agent.run_once"))
    run_once.add_argument("--dossier", metavar="ID", help=text("cli.dossier_only"))
    run_once.add_argument("--dry-run", action="store_true",
                          help=text("cli.agent.dry_run"))
    run_once.set_defaults(handler=cmd_run_once)

    run = commands.add_parser("run", parents=[config], help=text("cli.agent.run"))
    run.add_argument("--interval", metavar="S", type=float, help=text("cli.agent.interval"))
    run.add_argument("--cycles", type=int, default=None, help=argparse.SUPPRESS)
    run.set_defaults(handler=cmd_run)

    confirm = commands.add_parser("confirm-deletions", parents=[config],
                                  help=text("cli.agent.confirm"))
    confirm.add_argument("dossier", metavar="ID")
    confirm.add_argument("entity", metavar="ENTITE",
                         help=text("cli.agent.entity", entities=", ".join(entity.value for entity in sync_order())))
    confirm.set_defaults(handler=cmd_confirm_deletions)

    history = commands.add_parser("history", parents=[config],
                                  help=text("cli.agent.history"))
    history.add_argument("dossier", metavar="ID")
    since = history.add_mutually_exclusive_group()
    since.add_argument("--from", dest="start", metavar="AAAA-MM-JJ",
                       help=text("cli.agent.history_from"))
    since.add_argument("--all", action="store_true", help=text("cli.agent.history_all"))
    history.set_defaults(handler=cmd_history)

    state = commands.add_parser("state", parents=[config], help=text("cli.agent.state"))
    state.add_argument("--dossier", metavar="ID", help=text("cli.dossier_only"))
    state.add_argument("--json", action="store_true", help=text("cli.agent.state_json"))
    state.set_defaults(handler=cmd_state)


def _usage(parser: argparse.ArgumentParser) -> int:
    parser.print_help()
    return 2


def _settings(args) -> Settings:
    settings = load_settings(getattr(args, "config", None))
    if settings.agent.log_path:
        configure_logging(filename=settings.agent.log_path, stream=sys.stderr,
                          level="DEBUG" if getattr(args, "verbose", 0) > 1 else "INFO")
    return settings


@contextmanager
def _checkpoint(settings: Settings) -> Iterator[Checkpoint]:
    checkpoint = Checkpoint(settings.agent.state_path)
    try:
        yield checkpoint
    finally:
        checkpoint.close()


def _table(rows: list[list[str]], out=None) -> None:
    out = out or sys.stdout
    widths = [max(len(str(row[i])) for row in rows) for i in range(len(rows[0]))]
    for row in rows:
        print("  ".join(str(cell).ljust(width) for cell, width in zip(row, widths)).rstrip(), file=out)


# --- databases, select, deselect -----------------------------------------------------------------
def _known_to_group(settings: Settings) -> tuple[dict, Optional[str]]:
    """The dossiers the group already knows, by id, and why they could not be read (if so)."""
    directory = directory_for(settings)
    if directory is None:
        return {}, None
    try:
        return {k.id: k for k in directory.known()}, None
    except ConnectorError as exc:
        return {}, exc.user_message


def _group_cell(known) -> str:
    if known is None:
        return text("lifecycle.databases.group.unknown")
    last = f"{known.last_run_at:%Y-%m-%d %H:%M}" if known.last_run_at else "-"
    return text("lifecycle.databases.group.known", state=text(f"lifecycle.state.{known.state}"),
                records=sum(known.records.values()), last_run=last)


def cmd_databases(args) -> int:
    settings = _settings(args)
    databases, error = list_databases(settings)
    group, group_error = _known_to_group(settings)
    with _checkpoint(settings) as checkpoint:
        dossiers = AgentDossiers(checkpoint, settings)
        fresh = dossiers.is_fresh()
        rows = [[text(f"lifecycle.databases.column.{c}") for c in ("id", "company", "source", "state", "last_run",
                                                                    "group")]]
        for database in databases:
            runs = checkpoint.runs(database.id, limit=1)
            last = f"{runs[0].started_at} {runs[0].state}" if runs else "-"
            state = text(f"lifecycle.state.{dossier_state(settings, checkpoint, database.id).value}")
            if database.id in group and not dossiers.chosen(database.id) and checkpoint.snapshot(database.id) is None:
                state = text("lifecycle.databases.to_choose")
            rows.append([database.id, database.company_name or "-", text(f"lifecycle.databases.source.{database.source}"),
                         state, last, _group_cell(group.get(database.id))])
        seen = {database.id for database in databases}
        for known in group.values():
            if known.id not in seen:
                rows.append([known.id, known.identity.get("company_name") or known.name or "-",
                             text("lifecycle.databases.source.group"), "-", "-", _group_cell(known)])
    if len(rows) > 1:
        _table(rows)
    else:
        print(text("lifecycle.databases.none"))
    if fresh and group:
        print(text("lifecycle.databases.choose"))
    if group_error:
        print(text("lifecycle.databases.group_error", error=group_error), file=sys.stderr)
    if error:
        print(text("lifecycle.databases.server_error", error=error), file=sys.stderr)
        return 1
    return 0


def _find(settings: Settings, dossier: str):
    databases, error = list_databases(settings)
    return next((d for d in databases if d.id == dossier), None), error


def cmd_select(args) -> int:
    settings = _settings(args)
    database, error = _find(settings, args.dossier)
    if database is None:
        print(text("lifecycle.select.unknown", dossier=args.dossier)
              + (" " + text("lifecycle.databases.server_error", error=error) if error else ""), file=sys.stderr)
        return 2
    if not database.active:
        print(text("lifecycle.select.config_inactive", dossier=args.dossier), file=sys.stderr)
        return 2
    group, group_error = _known_to_group(settings)
    if group_error:                 # whether it is a dossier the group knows, and which company, is unknown
        print(text("lifecycle.group_unreachable", reason=group_error), file=sys.stderr)
        return 1
    known = group.get(args.dossier)
    extra = []
    if known is not None:
        try:
            found = database_identity(settings, args.dossier)
        except Exception as exc:                 # noqa: BLE001 - unreadable: never guessed to be the same
            print(text("lifecycle.unreadable", dossier=args.dossier, reason=str(exc)), file=sys.stderr)
            return 1
        other = company_mismatch(known.identity, found)
        if other is not None:
            print(text("lifecycle.other_company_select", dossier=args.dossier, **other), file=sys.stderr)
            return 1
        if restored_copy(known.identity, found):
            extra.append(text("lifecycle.select.restored_copy", created=found.get("created_at")))
    with _checkpoint(settings) as checkpoint:
        dossiers = AgentDossiers(checkpoint, settings)
        before, after = dossiers.select(args.dossier, known_to_group=known is not None)
    if before is after:
        message = text("lifecycle.select.already", dossier=args.dossier)
    elif before is State.INACTIVE:
        message = text("lifecycle.select.again", dossier=args.dossier)
    elif after is State.REALIGNING:
        message = text("lifecycle.select.adopted", dossier=args.dossier)
    else:
        message = text("lifecycle.select.first", dossier=args.dossier)
    print(" ".join([message, *extra]))
    return 0


def cmd_deselect(args) -> int:
    settings = _settings(args)
    database, _ = _find(settings, args.dossier)
    with _checkpoint(settings) as checkpoint:
        dossiers = AgentDossiers(checkpoint, settings)
        if database is None and dossiers.entry(args.dossier) is None:
            print(text("lifecycle.deselect.unknown", dossier=args.dossier), file=sys.stderr)
            return 2
        dossiers.deselect(args.dossier)
    print(text("lifecycle.deselect.done", dossier=args.dossier))
    return 0


# --- runs ---------------------------------------------------------------------------------------
def _counts_text(counts: dict[str, int]) -> str:
    return ", ".join(text("sync.count", label=text(f"sync.agent_count.{name}"), value=counts[name]) for name in COUNT_ORDER
                    if name in counts and (counts[name] or name not in SHOWN_WHEN_NOT_ZERO))


def _print_result(result: DossierRunResult) -> None:
    if result.recovered_run_id:
        print(text("agent.cli.recovered", dossier=result.dossier, run=result.recovered_run_id))
    if not result.ok:
        print(text("agent.cli.failed", dossier=result.dossier, error=result.error))
        return
    kind = text("agent.cli.kind.realignment" if result.realignment else "agent.cli.kind.incremental")
    print(text("agent.cli.run", dossier=result.dossier, run=result.run_id, kind=kind,
               counts=_counts_text(result.counts), batches=result.batches_sent))
    for reason in result.reasons:
        print(text("agent.cli.reason", reason=reason))
    for hold in result.holds:
        print(hold.message)


def _print_notice(notice: ActivityNotice) -> None:
    if notice.ok:
        print(text("lifecycle.run.told", dossier=notice.dossier, state=activity_text(notice.active)))
    else:
        print(text("lifecycle.run.refused", dossier=notice.dossier, error=notice.error))


def _open_bus(settings: Settings):
    from shared.bus.factory import open_bus
    return open_bus(settings.bus)


def _run_cycle(settings: Settings, dossier: Optional[str], stop: Optional[threading.Event],
               notices: Optional[list[ActivityNotice]] = None) -> list[DossierRunResult]:
    def on_notice(notice: ActivityNotice) -> None:
        _print_notice(notice)
        if notices is not None:
            notices.append(notice)

    bus = _open_bus(settings)
    try:
        with _checkpoint(settings) as checkpoint:
            try:
                return run_selected(settings, checkpoint=checkpoint, bus=bus, dossier=dossier, stop=stop,
                                    on_result=_print_result, on_notice=on_notice, directory=directory_for(settings))
            finally:
                if checkpoint.lock_taken_over is not None:     # a killed run's lock: said to the administrator
                    print(text("crash.run_lock_taken_over", path=f"{checkpoint.path}.lock",
                               pid=checkpoint.lock_taken_over.pid), flush=True)
    finally:
        bus.close()


def cmd_run_once(args) -> int:
    settings = _settings(args)
    if getattr(args, "dry_run", False):
        return dry_run(settings, args.dossier)
    with _checkpoint(settings) as checkpoint:
        dossiers = AgentDossiers(checkpoint, settings)
        dossiers.reconcile()
        if args.dossier and not is_selected(settings, checkpoint, args.dossier):
            print(text("lifecycle.run.not_selected", dossier=args.dossier), file=sys.stderr)
            return 2
        nothing_selected = not args.dossier and not selected_dossiers(settings, checkpoint)
        if nothing_selected and not dossiers.unannounced():
            print(text("lifecycle.run.nothing_selected"))
            return 0
    notices: list[ActivityNotice] = []
    try:
        results = _run_cycle(settings, args.dossier, None, notices)
    except (AgentBusyError, ChoiceRequired) as exc:
        print(exc.user_message, file=sys.stderr)
        return 1
    failed = [r for r in results if not r.ok]
    if nothing_selected:
        print(text("lifecycle.run.nothing_selected"))
    else:
        print(text("agent.cli.summary", done=len(results) - len(failed), failed=len(failed)))
    return 1 if failed or not all(notice.ok for notice in notices) else 0


def dry_run(settings: Settings, dossier: Optional[str]) -> int:
    """The agent's side of a preview, per selected dossier: what its next run would send."""
    from agent.snapshot import compare_with_shadow, read_dossier, render_sends

    with _checkpoint(settings) as checkpoint:
        targets = [dossier] if dossier else selected_dossiers(settings, checkpoint)
        if not targets:
            print(text("lifecycle.run.nothing_selected"))
            return 0
        for target in targets:
            realignment = (checkpoint.snapshot(target) is None
                           or AgentDossiers(checkpoint, settings).realignment_cause(target) is not None)
            sends = compare_with_shadow(read_dossier(settings, target), checkpoint, target)
            print(render_sends(target, sends, realignment=realignment))
    return 0


def cmd_run(args) -> int:
    settings = _settings(args)
    interval = args.interval if args.interval is not None else settings.agent.interval_s
    stop = threading.Event()

    def request_stop(signum, frame):
        print(text("agent.cli.stopping", signal=signal.Signals(signum).name), flush=True)
        stop.set()

    previous = {sig: signal.signal(sig, request_stop) for sig in (signal.SIGINT, signal.SIGTERM)}
    cycles = 0
    try:
        print(text("agent.cli.running", interval=f"{interval:g}"), flush=True)
        while not stop.is_set():
            cycles += 1
            try:
                results = _run_cycle(settings, None, stop)
            except (AgentBusyError, ChoiceRequired) as exc:
                print(text("agent.cli.cycle_busy", cycle=cycles, reason=exc.user_message), flush=True)
            else:
                failed = sum(1 for r in results if not r.ok)
                print(text("agent.cli.cycle", cycle=cycles, done=len(results) - failed, failed=failed), flush=True)
            if args.cycles is not None and cycles >= args.cycles:
                break
            between_cycles(settings, interval, stop)
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    print(text("agent.cli.stopped"), flush=True)
    return 0


def between_cycles(settings: Settings, interval: float, stop: threading.Event) -> None:
    """Wait for the next cycle, applying at once the commands the cloud sends meanwhile (what SSM
    users created or changed), every `COMMAND_WAIT_S`; Sage's new rows go at the next cycle."""
    deadline = time.monotonic() + interval
    while not stop.is_set():
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            return
        apply_waiting_commands(settings)
        stop.wait(min(COMMAND_WAIT_S, max(0.0, deadline - time.monotonic())))


def apply_waiting_commands(settings: Settings) -> dict[str, int]:
    """Apply the commands waiting for each selected dossier; returns how many each applied."""
    bus = _open_bus(settings)
    try:
        applied = {}
        with _checkpoint(settings) as checkpoint:
            for dossier in selected_dossiers(settings, checkpoint):
                stats = apply_dossier_commands(settings, bus, dossier, checkpoint=checkpoint)
                if stats is not None and (stats.applied or stats.refused):
                    applied[dossier] = stats.applied + stats.refused
                    print(text("agent.cli.commands_applied", dossier=dossier, count=applied[dossier]), flush=True)
        return applied
    finally:
        bus.close()


# --- held deletions -----------------------------------------------------------------------------
def cmd_confirm_deletions(args) -> int:
    entities = [entity.value for entity in sync_order()]
    if args.entity not in entities:
        print(text("agent.cli.unknown_entity", entity=args.entity, entities=", ".join(entities)), file=sys.stderr)
        return 2
    settings = _settings(args)
    with _checkpoint(settings) as checkpoint:
        hold = checkpoint.confirm_deletions(args.dossier, args.entity)
    if hold is None:
        print(text("agent.cli.no_hold", dossier=args.dossier, entity=args.entity), file=sys.stderr)
        return 1
    print(text("agent.cli.hold_confirmed", dossier=args.dossier, held=f"{hold.held:,}".replace(",", "\u202f"),
               entity=args.entity))
    return 0


# --- history window ----------------------------------------------------------------------------
def cmd_history(args) -> int:
    """Older documents on demand: the window only moves back, so documents once sent stay followed."""
    settings = _settings(args)
    start = None
    if args.start:
        try:
            start = dt.date.fromisoformat(args.start)
        except ValueError:
            print(text("history.bad_date", value=args.start), file=sys.stderr)
            return 2
    with _checkpoint(settings) as checkpoint:
        known = checkpoint.has_history_window(args.dossier)
        current = checkpoint.history_from(args.dossier)
        everything = known and (current is None or current.year == 1)
        if not args.all and start is None:
            if not known:
                print(text("history.unset", dossier=args.dossier))
            elif everything:
                print(text("history.current_all", dossier=args.dossier))
            else:
                print(text("history.current", dossier=args.dossier, start=current.isoformat()))
            return 0
        if start is not None and everything:
            print(text("history.current_all", dossier=args.dossier), file=sys.stderr)
            return 1
        if start is not None and current is not None and start >= current:
            print(text("history.not_earlier", dossier=args.dossier, start=start.isoformat(),
                       current=current.isoformat()), file=sys.stderr)
            return 1
        checkpoint.set_history_from(args.dossier, start, all_history=args.all)
    print(text("history.all", dossier=args.dossier) if args.all
          else text("history.moved", dossier=args.dossier, start=start.isoformat()))
    return 0


def _hold_state(hold: DeletionHold) -> dict:
    return {"entity": hold.entity, "held": hold.held, "records": hold.records, "run_id": hold.run_id,
            "held_at": hold.held_at, "confirmed_at": hold.confirmed_at, "message": hold.message}


# --- state --------------------------------------------------------------------------------------
def _state(settings: Settings, checkpoint: Checkpoint, only: Optional[str]) -> list[dict]:
    configured = {d.id for d in settings.dossiers}
    lifecycle = AgentDossiers(checkpoint, settings)
    dossiers = sorted(set(checkpoint.known_dossiers()) | set(lifecycle.entries()) | configured, key=str.lower)
    report = []
    for dossier in dossiers:
        if only and dossier != only:
            continue
        state = checkpoint.dossier_state(dossier)
        pending = checkpoint.pending(dossier)
        activity = lifecycle.activity(dossier)
        lifecycle_state = lifecycle.state(dossier)
        report.append({
            "dossier": dossier,
            "selected": is_selected(settings, checkpoint, dossier),
            "state": lifecycle_state.value,
            "activity": None if activity is None else {
                "active": activity.active, "changed_at": activity.changed_at, "announced_at": activity.announced_at},
            "needs_realignment": lifecycle.realignment_cause(dossier) is not None,
            "last_success_at": state.last_success_at if state else None,
            "last_error": state.last_error if state else None,
            "last_error_at": state.last_error_at if state else None,
            "pending": None if pending is None else {
                "run_id": pending.run_id, "sealed": pending.sealed, "batches": pending.batches,
                "unsent": pending.unsent},
            "watermarks": {entity: {"modified": w.modified.isoformat() if w.modified else None, "marq": w.marq}
                           for entity, w in sorted(checkpoint.watermarks(dossier).items())},
            "shadow": checkpoint.shadow_counts(dossier),
            "held_deletions": [_hold_state(hold) for hold in checkpoint.deletion_holds(dossier).values()],
            "runs": [{"run_id": r.run_id, "state": r.state, "started_at": r.started_at, "ended_at": r.ended_at,
                      "realignment": r.realignment, "reasons": r.reasons, "counts": r.counts,
                      "batches": r.batches, "error": r.error} for r in checkpoint.runs(dossier, limit=5)],
        })
    return report


def _in_sync_order(entities: set[str]) -> list[str]:
    order = [entity.value for entity in sync_order()]
    return sorted(entities, key=lambda e: (order.index(e) if e in order else len(order), e))


def cmd_state(args) -> int:
    settings = _settings(args)
    with _checkpoint(settings) as checkpoint:
        report = _state(settings, checkpoint, args.dossier)
    if args.json:
        print(json.dumps(report, indent=2, ensure_ascii=False))
        return 0
    if not report:
        print(text("agent.cli.state_empty", path=settings.agent.state_path))
        return 0
    print(text("agent.cli.state_title", path=settings.agent.state_path))
    for item in report:
        flags = [text("agent.cli.flag.selected" if item["selected"] else "agent.cli.flag.not_selected")]
        if item["needs_realignment"]:
            flags.append(text("agent.cli.flag.realigns"))
        print(f"\n{item['dossier']} ({', '.join(flags)})")
        if item["activity"]:
            a = item["activity"]
            told = text("agent.cli.told_at", at=a["announced_at"]) if a["announced_at"] else text("agent.cli.to_tell")
            print("  " + text("agent.cli.activity_again" if a["active"] else "agent.cli.activity_off",
                              at=a["changed_at"], told=told))
        print("  " + text("agent.cli.last_success", at=item["last_success_at"] or text("agent.cli.never")))
        if item["last_error"]:
            print("  " + text("agent.cli.last_error", error=item["last_error"], at=item["last_error_at"]))
        if item["pending"]:
            p = item["pending"]
            status = text("agent.cli.pending_sent" if p["sealed"] else "agent.cli.pending_dropped")
            print("  " + text("agent.cli.pending", run=p["run_id"], status=status, unsent=p["unsent"],
                              batches=p["batches"]))
        for hold in item["held_deletions"]:
            print(f"  {hold['message']}")
            if hold["confirmed_at"]:
                print("    " + text("agent.cli.hold_confirmed_at", at=hold["confirmed_at"]))
        for entity in _in_sync_order(set(item["watermarks"]) | set(item["shadow"])):
            mark = item["watermarks"].get(entity, {}).get("modified") or "-"
            shadow = item["shadow"].get(entity, {"records": 0, "invalid": 0})
            print("  " + text("agent.cli.watermark", entity=f"{entity:<15}", mark=f"{mark:<27}",
                              records=shadow["records"], invalid=shadow["invalid"]))
        for run in item["runs"]:
            kind = text("agent.cli.kind.realignment") if run["realignment"] else \
                text("agent.cli.kind.incremental") if run["counts"] else "-"
            state = text(f"agent.cli.run_state.{run['state']}")
            print("  " + text("agent.cli.state_run", run=run["run_id"], state=f"{state:<11}",
                              kind=f"{kind:<11}", counts=_counts_text(run["counts"]))
                  + (" " + text("agent.cli.state_run_error", error=run["error"]) if run["error"] else ""))
    return 0
