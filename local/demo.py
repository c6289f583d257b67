"""`ssm-connector demo` (what `make demo` runs): the whole product on one machine, in a minute.

It builds two Sage 100 demo companies (BIJOU, the jewellery wholesaler of Sage's own demo, and
a second company, ATELIER, to show several dossiers side by side), starts the SSM simulator on
127.0.0.1, writes a configuration for them, and runs the local runtime: a first full sync, then
an ordinary day — in Sage a user edits a client and a prospect and deletes a contact; in SSM a
sales rep fills an SSM-only field of that prospect — and a second, incremental sync. It prints,
per dossier and entity, the Sage rows against the SSM records, what each sync created, updated
and deleted, and the open incidents; then where everything is. With `--serve` it keeps the
simulator and the status page up until Ctrl-C.
"""
from __future__ import annotations

import argparse
import socket
import sqlite3
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional, TextIO

from agent.demo_builder import TARIFF_CATEGORIES
from shared.config import load_settings
from shared.messages import text as say_text
from shared.rules import Side, rule_for, sync_order
from shared.ssm.contract import RATE_PLANS
from shared.state.records import IncidentState

COMPANIES = (("BIJOU", "Bijouterie du Doubs (démo)", 0), ("ATELIER", "L'Atelier d'Orfèvrerie (démo)", 1))
SIZES = ("tiny", "small")
SSM_REP_EMAIL = "commercial.demo@demo.example"
DEMO_RATE_PLAN = "13"                 # the documented plan the demo tenant has: 13 requests/s
SSM_ONLY_FIELD = "Z_Segment"          # a custom field of the simulated tenant, not mapped
SSM_ONLY_VALUE = "Grands comptes – suivi mensuel"
DEMO_TARIFF_CATEGORIES = tuple(number for number, name, *_ in TARIFF_CATEGORIES if name)
TABLE_COLUMNS = ("dossier", "entity", "sage_rows", "ssm_records", "created", "updated", "deleted", "incidents")
DEMO_FILES = ("config.toml", "state.db", "bus.db", "agent.db", "bus.dead-letters.db")


@dataclass
class LinkView:
    """The cloud side's links of one dossier and entity: key → (SSM id, hash), live ones only."""

    live: dict[str, tuple[Optional[int], str]] = field(default_factory=dict)


@dataclass
class EntityLine:
    entity: str
    sage_rows: int
    invalid_rows: int
    ssm_records: int
    created: int
    updated: int
    deleted: int
    open_incidents: int


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _toml_text(value: str) -> str:
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def write_config(folder: Path, *, base_url: str, public_key: str, private_key: str, admin_email: str,
                 dossiers: list[tuple[str, str, Path]], status_port: int,
                 dossier_settings: Optional[dict[str, dict[str, str]]] = None) -> Path:
    """The demo's settings file (paths relative to it)."""
    lines = [
        "# Written by `ssm-connector demo`: the two demo companies, the SSM simulator, local state.",
        'group = "demo"',
        "",
        "[ssm]",
        f"base_url = {_toml_text(base_url)}",
        f"public_key = {_toml_text(public_key)}",
        f"private_key = {_toml_text(private_key)}",
        f"admin_user_email = {_toml_text(admin_email)}",
        f"rate_limit_per_s = {RATE_PLANS[DEMO_RATE_PLAN]:g}",
        "",
        "[state]",
        'path = "state.db"',
        "",
        "[bus]",
        'path = "bus.db"',
        "",
        "[agent]",
        'state_path = "agent.db"',
        "interval_s = 60",
        "",
        "[status]",
        'host = "127.0.0.1"',
        f"port = {status_port}",
    ]
    for dossier_id, name, path in dossiers:
        lines += ["", "[[dossiers]]", f"id = {_toml_text(dossier_id)}", f"name = {_toml_text(name)}",
                  f"odbc = {_toml_text(f'Driver=SQLite3;Database={path}')}",
                  "history_years = 0"]       # the demo's documents are dated 2023-2024: send them all
        lines += [f"{option} = {_toml_text(value)}" for option, value in (dossier_settings or {}).get(dossier_id, {}).items()]
    config = folder / "config.toml"
    config.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return config


class Demo:
    """One demo session in `folder` (see the module docstring)."""

    def __init__(self, folder: Path, *, size: str = "tiny", out: Optional[TextIO] = None):
        import sys

        self.folder = folder.resolve()
        self.size = size
        self.out = out or sys.stdout
        self.simulator = None
        self.runtime = None
        self.settings = None
        self.config_path: Optional[Path] = None
        self.databases: dict[str, Path] = {}

    def say(self, text: str = "") -> None:
        print(text, file=self.out, flush=True)

    # --- set-up ---------------------------------------------------------------------------------
    def prepare(self) -> None:
        from agent.demo_builder import build_demo_dossier
        from local.simulator.server import SsmSimulator

        self.folder.mkdir(parents=True, exist_ok=True)
        for name in DEMO_FILES:
            for suffix in ("", "-wal", "-shm", "-journal"):
                (self.folder / f"{name}{suffix}").unlink(missing_ok=True)
        dossiers = []
        for company, name, seed in COMPANIES:
            stats = build_demo_dossier(self.folder / f"{company}.db", size=self.size, seed=seed, company=company)
            self.databases[company] = stats.path
            dossiers.append((company, name, stats.path))
            self.say(say_text("demo.company", company=company, path=stats.path,
                              tiers=stats.counts.get("F_COMPTET", 0), articles=stats.counts.get("F_ARTICLE", 0),
                              documents=stats.counts.get("F_DOCENTETE", 0)))
        self.simulator = SsmSimulator(seed=7, tenant="demo", rate_plan=DEMO_RATE_PLAN).start("127.0.0.1", 0)
        declare_connector_fields(self.simulator)
        self.say(say_text("demo.simulator", url=self.simulator.base_url))
        self.config_path = write_config(
            self.folder, base_url=self.simulator.base_url, public_key=self.simulator.public_key,
            private_key=self.simulator.private_key, admin_email=self.simulator.admin_email,
            dossiers=dossiers, status_port=free_port())
        self.settings = load_settings(self.config_path)

    def start_runtime(self):
        from local.runtime import LocalRuntime

        self.runtime = LocalRuntime(self.settings)
        return self.runtime

    # --- what the tables show -------------------------------------------------------------------
    def links(self, dossier: str) -> dict[str, LinkView]:
        views = {}
        for entity in sync_order():
            view = LinkView()
            for link in self.runtime.store.list_links(dossier, entity.value):
                if not link.deleted and link.ssm_id is not None:
                    view.live[link.sage_key] = (link.ssm_id, link.hash)
            views[entity.value] = view
        return views

    def entity_lines(self, dossier: str, before: dict[str, LinkView], after: dict[str, LinkView]) -> list[EntityLine]:
        shadow = self.runtime.checkpoint.shadow_counts(dossier)
        lines = []
        for entity in sync_order():
            if not rule_for(entity).may_create(Side.SAGE):
                continue
            name = entity.value
            was, now = before.get(name, LinkView()).live, after[name].live
            if not now and not was and name not in shadow:
                continue
            resource = rule_for(entity).ssm_resource
            alive = sum(1 for ssm_id, _ in now.values() if self._alive(resource, ssm_id))
            lines.append(EntityLine(
                entity=name,
                sage_rows=shadow.get(name, {}).get("records", 0) - shadow.get(name, {}).get("invalid", 0),
                invalid_rows=shadow.get(name, {}).get("invalid", 0),
                ssm_records=alive,
                created=sum(1 for key in now if key not in was),
                updated=sum(1 for key, (_, digest) in now.items() if key in was and was[key][1] != digest),
                deleted=sum(1 for key in was if key not in now),
                open_incidents=len(self.runtime.store.list_incidents(dossier, name, state=IncidentState.OPEN)),
            ))
        return lines

    def _alive(self, resource: str, ssm_id: int) -> bool:
        try:
            return not self.simulator.record(resource, ssm_id).get("deleted")
        except LookupError:
            return False

    def print_table(self, title: str, before: dict[str, dict[str, LinkView]], after: dict[str, dict[str, LinkView]],
                    calls: int) -> None:
        self.say()
        self.say(say_text("demo.table.title", title=title, calls=calls))
        header = tuple(say_text(f"demo.column.{column}") for column in TABLE_COLUMNS)
        rows = []
        for dossier, _, _ in COMPANIES:
            for line in self.entity_lines(dossier, before.get(dossier, {}), after[dossier]):
                sage = f"{line.sage_rows}" + (" " + say_text("demo.invalid_rows", count=line.invalid_rows)
                                              if line.invalid_rows else "")
                rows.append((dossier, say_text(f"status.entity.{line.entity}"), sage, str(line.ssm_records), str(line.created),
                             str(line.updated), str(line.deleted), str(line.open_incidents)))
        widths = [max(len(header[i]), *(len(r[i]) for r in rows)) if rows else len(header[i]) for i in range(len(header))]
        self.say("  " + "  ".join(h.ljust(w) for h, w in zip(header, widths)))
        self.say("  " + "  ".join("-" * w for w in widths))
        for row in rows:
            self.say("  " + "  ".join(v.ljust(w) if i < 2 else v.rjust(w) for i, (v, w) in enumerate(zip(row, widths))))
        self.say("  " + say_text("demo.quotes"))

    def snapshot(self) -> dict[str, dict[str, LinkView]]:
        return {dossier: self.links(dossier) for dossier, _, _ in COMPANIES}

    # --- the day's changes ----------------------------------------------------------------------
    def day_of_work(self) -> list[str]:
        """Changes on both sides, as users make them; returns what was done, in words."""
        from agent.demo_builder import delete_row, update_row
        from local.simulator.user import SsmUserSession

        database = self.databases["BIJOU"]
        store = self.runtime.store
        client = self._linked_key("BIJOU", "account", database,
                                  "SELECT CT_Num FROM F_COMPTET WHERE CT_Type = 0 AND CT_Prospect = 0"
                                  " AND CT_Sommeil = 0 ORDER BY CT_Num")
        prospect = self._linked_key("BIJOU", "account", database,
                                    "SELECT CT_Num FROM F_COMPTET WHERE CT_Type = 0 AND CT_Prospect = 1"
                                    " AND CT_Sommeil = 0 ORDER BY CT_Num")
        contact = self._linked_key("BIJOU", "contact", database,
                                   "SELECT CAST(CT_No AS TEXT) FROM F_CONTACTT ORDER BY CT_No")
        done = []
        update_row(database, "F_COMPTET", {"CT_Num": client},
                   {"CT_Telephone": "03 81 25 19 40", "CT_Ville": "Besançon Cedex"})
        done.append(say_text("demo.day.client", key=client))
        update_row(database, "F_COMPTET", {"CT_Num": prospect}, {"CT_Telephone": "01 42 60 30 70"})
        done.append(say_text("demo.day.prospect", key=prospect))
        delete_row(database, "F_CONTACTT", {"CT_No": int(contact)})
        done.append(say_text("demo.day.contact", key=contact))
        prospect_id = store.get_link("BIJOU", "account", prospect).ssm_id
        public, private = self.simulator.user_credentials(SSM_REP_EMAIL)
        with SsmUserSession(self.simulator.base_url, public, private, email=SSM_REP_EMAIL) as rep:
            rep.edit_account(prospect_id, **{SSM_ONLY_FIELD: SSM_ONLY_VALUE})
        done.append(say_text("demo.day.ssm", field=SSM_ONLY_FIELD, key=prospect, ssm_id=prospect_id))
        self.prospect = (prospect, prospect_id)
        return done

    def create_sales_reps(self) -> None:
        """The administrator's choice (`ssm-connector users --create-all`): every sales rep waiting
        "to invite" becomes an SSM user (a licence each); their accounts follow at the next sync."""
        from shared.ssm.client import SsmClient
        from shared.sync.user_admin import create_users, pending_keys

        self.say("\n" + say_text("demo.reps"))
        with SsmClient.from_settings(self.settings.ssm) as client:
            for dossier, _, _ in COMPANIES:
                for result in create_users(self.runtime.store, client, self.settings, dossier,
                                           pending_keys(self.runtime.store, dossier)):
                    self.say(f"  - {dossier} : {result.message.text}")

    def _linked_key(self, dossier: str, entity: str, database: Path, sql: str) -> str:
        connection = sqlite3.connect(database)
        try:
            for (key,) in connection.execute(sql):
                link = self.runtime.store.get_link(dossier, entity, str(key).strip())
                if link is not None and link.ssm_id is not None and not link.deleted:
                    return str(key).strip()
        finally:
            connection.close()
        raise LookupError(f"no synchronised {entity} found in {dossier} for the demo's changes")

    # --- the whole story --------------------------------------------------------------------------
    def run(self, *, serve: bool = False, stop: Optional[threading.Event] = None) -> int:
        self.prepare()
        runtime = self.start_runtime()
        status_server = runtime.start_status_server(out=self.out)
        try:
            self.say("\n" + say_text("demo.first"))
            first = runtime.run_once()
            self.say(first.render())
            after_first = self.snapshot()
            self.print_table(say_text("demo.after_first"), {}, after_first,
                             self.simulator.call_count(writes_only=True))
            self.create_sales_reps()

            self.say("\n" + say_text("demo.day"))
            for line in self.day_of_work():
                self.say(f"  - {line}")
            self.simulator.reset_calls()
            self.say("\n" + say_text("demo.second"))
            second = runtime.run_once()
            self.say(second.render())
            self.print_table(say_text("demo.after_second"), after_first, self.snapshot(),
                             self.simulator.call_count(writes_only=True))
            prospect, prospect_id = self.prospect
            kept = self.simulator.record("accounts", prospect_id).get(SSM_ONLY_FIELD)
            self.say("\n" + say_text("demo.kept", key=prospect, field=SSM_ONLY_FIELD, value=kept))
            self.where(status_server)
            ok = first.ok and second.ok
            if serve:
                self.say("\n" + say_text("demo.serving"))
                try:
                    (stop or threading.Event()).wait()
                except KeyboardInterrupt:
                    pass
            return 0 if ok else 1
        finally:
            self.close()

    def where(self, status_server) -> None:
        """Where everything is, and what to do next, in French (`demo.where.*`, `demo.next.*`)."""
        places = [("config", self.config_path),
                  ("companies", ", ".join(str(p) for p in self.databases.values())),
                  ("state", self.settings.state.path),
                  ("bus", self.settings.bus.path),
                  ("agent_state", self.settings.agent.state_path),
                  ("simulator", self.simulator.base_url)]
        if status_server is not None:
            places += [("status_json", status_server.url("status", with_key=True)),
                       ("status_page", status_server.url("status/page", with_key=True))]
        places.append(("again", say_text("demo.next.again", config=self.config_path)))
        labels = {place: say_text(f"demo.where.{place}") for place, _ in places}
        width = max(len(label) for label in labels.values())
        self.say("\n" + say_text("demo.where"))
        for place, value in places:
            self.say(f"  {labels[place].ljust(width)} : {value}")
        if status_server is not None:
            self.say("\n" + say_text("demo.next.page"))

    def close(self) -> None:
        if self.runtime is not None:
            self.runtime.close()
            self.runtime = None
        if self.simulator is not None:
            self.simulator.stop()
            self.simulator = None


def register(subparsers) -> None:
    parser = subparsers.add_parser("demo", help=say_text("cli.demo"),
                                   description=say_text("cli.demo.description"))
    parser.add_argument("--size", choices=SIZES, default="tiny", help=say_text("cli.demo.size"))
    parser.add_argument("--dir", default="var/demo", help=say_text("cli.demo.dir"))
    parser.add_argument("--serve", action="store_true", help=say_text("cli.demo.serve"))
    parser.set_defaults(handler=cmd_demo)


def cmd_demo(args: argparse.Namespace) -> int:
    return Demo(Path(args.dir), size=args.size).run(serve=args.serve)


def declare_connector_fields(simulator) -> None:
    """The product custom fields an integrator declares in the tenant for stock and tariff prices."""
    from local.simulator.store import NUMBER
    from shared.sync.mapping import PRODUCT_CUSTOM_FIELDS, Z_TARIFF_PREFIX

    for _, name in PRODUCT_CUSTOM_FIELDS:
        simulator.add_custom_field("products", name, NUMBER)
    for category in DEMO_TARIFF_CATEGORIES:
        simulator.add_custom_field("products", f"{Z_TARIFF_PREFIX}{category}", NUMBER)
