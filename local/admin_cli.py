"""`ssm-connector check-tenant` and `ssm-connector users`: an administrator's commands on the SSM tenant.

`check-tenant --config F [--fix] [--json]` reads the tenant and prints in French what the group and
each dossier lack, exit code 1 when something blocks; `--fix` first creates what the API allows.
The report is kept in the state store for the status page. `users --config F [--dossier ID]
[--create KEY …] [--create-all] [--json]` lists each dossier's Sage collaborators with their SSM
match and, only when asked, creates the chosen ones in SSM (each one a paid licence).
"""
from __future__ import annotations

import argparse
import json
import os
from contextlib import contextmanager
from typing import Iterator

from shared.config import Settings, load_settings
from shared.messages import text
from shared.ssm.client import SsmClient
from shared.ssm.tenant import Severity, TenantReport, check_tenant, fix
from shared.state.factory import open_state_store
from shared.status.page import format_datetime
from shared.sync.user_admin import (CREATED, LINKED_EXISTING, TO_CREATE, CollaboratorRow, collaborators,
                                    create_users, pending_keys)

CONFIG_PATH_ENV = "SSMCONN_CONFIG"
USAGE_ERROR = 2


def register(subparsers) -> None:
    check = subparsers.add_parser("check-tenant", help=text("cli.check_tenant"),
                                  description=text("cli.check_tenant.description"))
    _config_argument(check)
    check.add_argument("--fix", action="store_true",
                       help=text("cli.check_tenant.fix"))
    check.add_argument("--json", action="store_true", help=text("cli.json"))
    check.set_defaults(handler=cmd_check_tenant)

    users = subparsers.add_parser("users", help=text("cli.users"),
                                  description=text("cli.users.description"))
    _config_argument(users)
    users.add_argument("--dossier", metavar="ID", help=text("cli.dossier_only"))
    users.add_argument("--create", nargs="+", metavar="CLE", default=[], help=text("cli.users.create"))
    users.add_argument("--create-all", action="store_true", help=text("cli.users.create_all"))
    users.add_argument("--json", action="store_true", help=text("cli.json"))
    users.set_defaults(handler=cmd_users)


def _config_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", metavar="FICHIER", default=os.environ.get(CONFIG_PATH_ENV),
                        help=text("cli.config"))


@contextmanager
def _opened(settings: Settings) -> Iterator[tuple]:
    """The SSM client and the state store the settings name, closed afterwards."""
    store = open_state_store(settings.state)
    try:
        store.ensure_tables()
        with SsmClient.from_settings(settings.ssm) as client:
            yield client, store
    finally:
        store.close()


# --- check-tenant --------------------------------------------------------------------------------
def cmd_check_tenant(args: argparse.Namespace) -> int:
    settings = load_settings(args.config)
    with _opened(settings) as (client, store):
        report = check_tenant(client, settings)
        if args.fix:
            report = fix(client, report)
        store.save_tenant_check(report.to_dict())
    if args.json:
        print(json.dumps(report.to_dict(), ensure_ascii=False, indent=2))
    else:
        print(render_report(report, settings))
    return 1 if report.blocking else 0


def render_report(report: TenantReport, settings: Settings) -> str:
    """The report as French text: the group's findings, each dossier's, what --fix did, the verdict."""
    lines = [text("tenant.title", group=report.group, at=format_datetime(report.checked_at)), "",
             text("tenant.scope.group", group=report.group)]
    lines += _finding_lines(report, None)
    for dossier in settings.dossiers:
        name = dossier.name if dossier.name and dossier.name != dossier.id else None
        lines += ["", text("tenant.scope.dossier_named", dossier=dossier.id, name=name) if name
                  else text("tenant.scope.dossier", dossier=dossier.id)]
        lines += _finding_lines(report, dossier.id)
    if report.actions:
        lines += ["", text("tenant.fix.title")] + [f"  - {action.text}" for action in report.actions]
    warnings = report.count(Severity.WARNING)
    lines += ["", text("tenant.summary.blocking", blocking=report.count(Severity.BLOCKING), warnings=warnings)
              if report.blocking else text("tenant.summary.ok", warnings=warnings)]
    return "\n".join(lines)


def _finding_lines(report: TenantReport, dossier: str | None) -> list[str]:
    return [f"  [{text(f'severity.{f.severity.value}')}] {f.text}" for f in report.about(dossier)]


# --- users ---------------------------------------------------------------------------------------
def cmd_users(args: argparse.Namespace) -> int:
    settings = load_settings(args.config)
    known = [d.id for d in settings.dossiers]
    if args.dossier is not None and args.dossier not in known:
        print(text("users.unknown_dossier", dossier=args.dossier))
        return USAGE_ERROR
    if args.create and args.dossier is None and len(known) != 1:
        print(text("users.choose_dossier"))
        return USAGE_ERROR
    dossiers = [args.dossier] if args.dossier else known
    results = []
    with _opened(settings) as (client, store):
        if args.create:
            results += create_users(store, client, settings, dossiers[0], args.create)
        elif args.create_all:
            for dossier in dossiers:
                results += create_users(store, client, settings, dossier, pending_keys(store, dossier))
        rows = collaborators(store, client, dossiers)
    if args.json:
        print(json.dumps({"collaborators": [r.to_dict() for r in rows], "results": [r.to_dict() for r in results]},
                         ensure_ascii=False, indent=2))
    else:
        print(render_users(dossiers, rows, results, asked=bool(args.create or args.create_all)))
    return 0 if all(r.ok for r in results) else 1


def render_users(dossiers: list[str], rows: list[CollaboratorRow], results: list, *, asked: bool) -> str:
    """The collaborators of each dossier as a French table, then what was created and the tally."""
    lines = [f"- {result.message.text}" for result in results]
    if asked and results:
        lines += [text("users.summary", created=sum(1 for r in results if r.outcome == CREATED),
                       linked=sum(1 for r in results if r.outcome == LINKED_EXISTING),
                       refused=sum(1 for r in results if not r.ok)), ""]
    elif asked:
        lines += [text("users.nothing_to_create", dossier=", ".join(dossiers)), ""]
    for dossier in dossiers:
        lines.append(text("users.title", dossier=dossier))
        mine = [r for r in rows if r.dossier == dossier]
        lines += [f"  {line}" for line in _table(mine)] if mine else [f"  {text('users.none')}"]
        lines.append("")
    if not asked and any(r.state == TO_CREATE for r in rows):
        lines.append(text("users.licence_note"))
    return "\n".join(lines).rstrip()


def _table(rows: list[CollaboratorRow]) -> list[str]:
    header = [text(f"users.column.{c}") for c in ("key", "name", "email", "state", "ssm_id")]
    body = [[r.key, r.name, r.email or "—", r.state_label, str(r.ssm_id) if r.ssm_id is not None else "—"]
            for r in rows]
    widths = [max(len(line[i]) for line in [header, *body]) for i in range(len(header))]
    return ["  ".join(cell.ljust(width) for cell, width in zip(line, widths)).rstrip() for line in [header, *body]]
