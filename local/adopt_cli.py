"""`ssm-connector adopt` and `ssm-connector local --dry-run`: the realignment preview and adoption.

`local --config F --dry-run [--dossier ID]` reads each dossier's Sage records (read only), SSM's
records (every page) and the state store, and prints in French what a realignment — or a first
load — would create, update, leave alone or adopt, in SSM and in Sage, and the ambiguous matches
waiting for a choice. Nothing is written to Sage, to SSM, to the agent's state, to the bus or
to the dossier's sync state; the preview itself is kept as a report for the status page
(`/api/status/dossiers/<id>/preview`), as `check-tenant` keeps its own.

`adopt --config F [--dossier ID]` prints the same preview; `--confirm` binds every unique match
(our `extId` on the SSM record, the link in the state store) and holds every ambiguous one, so
the first load updates instead of duplicating and never creates a held record; `--bind
ENTITY:KEY=SSM_ID` binds a held (or any unlinked) Sage record to the SSM record chosen;
`--create ENTITY:KEY` says it is none of them: it is created. A held record whose change the sync
already set aside is applied at once.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
from contextlib import contextmanager
from typing import Iterator, Optional

from shared.config import Settings, load_settings
from shared.errors import ConnectorError
from shared.messages import text
from shared.sync import adoption
from shared.sync.adopter import Adopter, AdoptionRefused
from shared.sync.preview import Preview, PreviewBuilder

CONFIG_PATH_ENV = "SSMCONN_CONFIG"
USAGE_ERROR = 2


def register(subparsers) -> None:
    adopt = subparsers.add_parser(
        "adopt", help=text("cli.adopt"), description=text("cli.adopt.description"))
    adopt.add_argument("--config", metavar="FICHIER", default=os.environ.get(CONFIG_PATH_ENV),
                       help=text("cli.config"))
    adopt.add_argument("--dossier", metavar="ID", help=text("cli.adopt.dossier"))
    adopt.add_argument("--confirm", action="store_true",
                       help=text("cli.adopt.confirm"))
    adopt.add_argument("--bind", nargs="+", metavar="ENTITY:KEY=SSM_ID", default=[],
                       help=text("cli.adopt.bind"))
    adopt.add_argument("--create", nargs="+", metavar="ENTITY:KEY", default=[],
                       help=text("cli.adopt.create"))
    adopt.add_argument("--json", action="store_true", help=text("cli.json"))
    adopt.set_defaults(handler=cmd_adopt)


class Workspace:
    """The state store, SSM client and tenant defaults of one command, closed afterwards."""

    def __init__(self, settings: Settings):
        from shared.ssm.client import SsmClient
        from shared.state.factory import open_state_store
        from shared.sync.dependencies import TenantDefaults

        self.settings = settings
        self.store = open_state_store(settings.state)
        self.store.ensure_tables()
        self.ssm = SsmClient.from_settings(settings.ssm)
        branches = {d.id: d.ssm_branch for d in settings.dossiers}
        self.defaults = TenantDefaults(self.ssm, admin_user_email=settings.ssm.admin_user_email,
                                       branch=settings.ssm.branch, dossier_branches=branches)
        dossiers = [d.id for d in settings.dossiers] + [d.id for d in self.store.list_dossiers()]
        self.builder = PreviewBuilder(self.store, self.ssm, self.defaults, dossiers=dict.fromkeys(dossiers),
                                      dossier_branches=branches)
        self._service = None

    def picture(self, dossier: str):
        from agent.snapshot import read_dossier

        return read_dossier(self.settings, dossier)

    def preview(self, dossier: str, picture=None) -> Preview:
        """The dossier's preview, kept as its last one for the status page."""
        picture = picture or self.picture(dossier)
        self.builder.forget()
        preview = self.builder.build(dossier, picture.records)
        self.store.save_preview(dossier, preview.model_dump(mode="json"))
        return preview

    def adopter(self, dossier: str) -> Adopter:
        return Adopter(self.store, self.ssm, dossier, apply_batch=lambda batch: self.service().apply_batch(batch))

    def service(self):
        if self._service is None:
            from shared.sync.service import SyncService

            self._service = SyncService(self.store, self.ssm, admin_user_email=self.settings.ssm.admin_user_email,
                                        branch=self.settings.ssm.branch,
                                        dossier_branches={d.id: d.ssm_branch for d in self.settings.dossiers},
                                        max_workers=1)
        return self._service

    def close(self) -> None:
        if self._service is not None:
            self._service.close()
        self.ssm.close()
        self.store.close()


@contextmanager
def workspace(settings: Settings) -> Iterator[Workspace]:
    opened = Workspace(settings)
    try:
        yield opened
    finally:
        opened.close()


def _dossiers(settings: Settings, asked: Optional[str], *, one: bool) -> Optional[list[str]]:
    known = [d.id for d in settings.dossiers]
    if asked is not None:
        if asked not in known:
            print(text("adoption.unknown_dossier", dossier=asked), file=sys.stderr)
            return None
        return [asked]
    if one and len(known) != 1:
        print(text("adoption.choose_dossier"), file=sys.stderr)
        return None
    return known


# --- local --dry-run ---------------------------------------------------------------------------
def dry_run(settings: Settings, dossier: Optional[str] = None, *, as_json: bool = False, out=None) -> int:
    """Print the preview of every configured dossier (or of `dossier`); writes nothing but the report."""
    out = out or sys.stdout
    dossiers = _dossiers(settings, dossier, one=False)
    if dossiers is None:
        return USAGE_ERROR
    with workspace(settings) as space:
        previews = [space.preview(d) for d in dossiers]
    if as_json:
        print(json.dumps([p.model_dump(mode="json") for p in previews], ensure_ascii=False, indent=2), file=out)
    else:
        print("\n\n".join(p.render() for p in previews), file=out)
    return 0


# --- adopt ------------------------------------------------------------------------------------
def _target(value: str, *, with_id: bool) -> tuple[str, str, Optional[int]]:
    head, _, ssm_id = value.partition("=") if with_id else (value, "", "")
    entity, _, key = head.partition(":")
    if entity not in adoption.ADOPTABLE:
        raise AdoptionRefused(text("adoption.refused.unknown_entity", value=value))
    if not key or (with_id and not ssm_id.strip().isdigit()):
        raise AdoptionRefused(text("adoption.refused.bad_choice", value=value))
    return entity, key, int(ssm_id) if with_id else None


def cmd_adopt(args: argparse.Namespace) -> int:
    settings = load_settings(args.config)
    dossiers = _dossiers(settings, args.dossier, one=True)
    if dossiers is None:
        return USAGE_ERROR
    dossier = dossiers[0]
    try:
        binds = [_target(v, with_id=True) for v in args.bind]
        creates = [_target(v, with_id=False) for v in args.create]
    except AdoptionRefused as exc:
        print(exc.user_message, file=sys.stderr)
        return USAGE_ERROR
    failed = False
    with workspace(settings) as space:
        adopter = space.adopter(dossier)
        for entity, key, _ in creates:
            decided = adopter.decide_create(entity, key)
            print(text("adoption.decided.create", what=text(f"adoption.what.{entity}"), key=key)
                  + (" " + text("adoption.decided.applied") if decided.replayed else ""))
        for entity, key, ssm_id in binds:
            try:
                decided = adopter.decide_bind(entity, key, ssm_id)
            except ConnectorError as exc:
                print(exc.user_message, file=sys.stderr)
                failed = True
                continue
            print(text("adoption.decided.bind", what=text(f"adoption.what.{entity}"), key=key, ssm_id=ssm_id)
                  + (" " + text("adoption.decided.applied") if decided.replayed else ""))
        picture = space.picture(dossier)
        if args.confirm:
            bound, held, refused = adopter.confirm(space.builder.matches(dossier, picture.records))
            for message in refused:
                print(message, file=sys.stderr)
            print(text("adoption.done", bound=bound, held=held))
            failed = failed or bool(refused)
        preview = space.preview(dossier, picture)
    if args.json:
        print(json.dumps(preview.model_dump(mode="json"), ensure_ascii=False, indent=2))
    else:
        print(preview.render())
    return 1 if failed else 0
