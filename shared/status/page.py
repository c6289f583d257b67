"""The status page: one self-contained HTML document for a Sage administrator, in French.

Inline CSS, no script, no external asset. Dates are shown in Europe/Paris time; every value that
comes from data (dossier and tiers names, keys, messages) goes through `html.escape`, so a name
holding markup shows as text. The filters are a plain GET form and every other move (another
dossier, a run's journal) a plain link, so they work without JavaScript; when the function key
came in the query string it rides along as a hidden field and in the links. Every word comes
from the catalogue (`shared.messages`).

The page is two lists of `Section`s: `PAGE_SECTIONS` (switcher, filters, tenant check, the
dossiers, the group's incidents) and `DOSSIER_SECTIONS`, the parts of each dossier's card. A new
view is one more `Section` in the list where it belongs.
"""
from __future__ import annotations

import datetime as dt
import html
from dataclasses import dataclass
from typing import Callable, Optional
from urllib.parse import urlencode
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from shared.messages import label, text
from shared.models import Entity
from shared.state.records import RUN_COUNTERS, IncidentState
from shared.status.set_aside import set_aside_section
from shared.status.report import (
    GROUP_INCIDENTS_DOSSIER,
    DossierStatus,
    Health,
    IncidentStateFilter,
    IncidentStatus,
    PendingStatus,
    StatusReport,
    TenantCheckStatus,
)

try:
    PARIS: dt.tzinfo = ZoneInfo("Europe/Paris")
    TIME_ZONE_CODE = "status.zone.paris"
except ZoneInfoNotFoundError:  # a system without the time-zone database
    PARIS = dt.timezone.utc
    TIME_ZONE_CODE = "status.zone.utc"

MISSING = "—"
COUNT_LABELS = {name: f"status.count.{name}" for name in RUN_COUNTERS}


_CSS = """
:root { --ink:#1d2733; --muted:#5b6673; --line:#d5dbe1; --bg:#f4f6f8; --card:#fff;
  --ok:#1e7b34; --ok-bg:#e3f4e7; --warn:#8a5a00; --warn-bg:#fff2d6; --err:#a3221b; --err-bg:#fde6e4;
  --off:#4b5563; --off-bg:#e5e7eb; --accent:#00704a; }
* { box-sizing: border-box; }
body { margin:0; font:15px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,Arial,sans-serif;
  color:var(--ink); background:var(--bg); }
header.page { background:var(--accent); color:#fff; padding:18px 28px; }
header.page h1 { margin:0; font-size:22px; font-weight:600; }
header.page p { margin:4px 0 0; opacity:.92; }
main { padding:20px 28px 40px; max-width:1400px; }
h2 { font-size:19px; margin:26px 0 12px; }
a { color:#0b5cad; }
form.filters { display:flex; flex-wrap:wrap; gap:12px 18px; align-items:flex-end; background:var(--card);
  border:1px solid var(--line); border-radius:8px; padding:12px 16px; }
form.filters label { display:block; font-size:13px; color:var(--muted); margin-bottom:3px; }
form.filters select { font:inherit; padding:5px 8px; min-width:11em; max-width:22em; border:1px solid #9aa5b1;
  border-radius:5px; background:#fff; }
form.filters button { font:inherit; padding:6px 16px; border:0; border-radius:5px; background:var(--accent);
  color:#fff; cursor:pointer; }
.table-wrap { overflow-x:auto; }
table { border-collapse:collapse; width:100%; background:var(--card); font-size:14px; }
caption { text-align:left; font-weight:600; font-size:15px; padding:14px 0 6px; }
th, td { border-bottom:1px solid var(--line); padding:6px 8px; text-align:left; vertical-align:top; }
thead th { background:#eef1f4; font-weight:600; white-space:nowrap; }
td.num, th.num { text-align:right; font-variant-numeric:tabular-nums; white-space:nowrap; }
td.date, td.nowrap { white-space:nowrap; }
table.runs { font-size:13px; }
table.runs th, table.runs td { padding:5px 6px; }
table.runs small { color:var(--muted); }
div.overview { margin-bottom:22px; }
article.dossier { background:var(--card); border:1px solid var(--line); border-radius:10px;
  padding:14px 20px 18px; margin:0 0 22px; }
article.dossier.inactive { background:#fafafa; border-style:dashed; }
article.dossier > header { display:flex; flex-wrap:wrap; align-items:center; gap:8px 12px; }
article.dossier h3 { margin:0; font-size:18px; }
.code { color:var(--muted); font-weight:400; font-size:14px; }
.badge { display:inline-block; padding:1px 9px; border-radius:999px; font-size:13px; font-weight:600; }
.badge.ok { color:var(--ok); background:var(--ok-bg); }
.badge.attention { color:var(--warn); background:var(--warn-bg); }
.badge.error { color:var(--err); background:var(--err-bg); }
.badge.off, .badge.never-synced { color:var(--off); background:var(--off-bg); }
dl.facts { display:grid; grid-template-columns:repeat(auto-fit,minmax(210px,1fr)); gap:10px 18px;
  margin:14px 0 4px; }
dl.facts div { border-left:3px solid var(--line); padding-left:10px; }
dl.facts dt { font-size:12px; color:var(--muted); text-transform:uppercase; letter-spacing:.03em; }
dl.facts dd { margin:2px 0 0; font-weight:500; }
p.empty { color:var(--muted); font-style:italic; margin:6px 0; }
p.note { color:var(--muted); font-size:13px; margin:4px 0; }
h4.subtitle { font-size:15px; margin:14px 0 4px; }
section.invites { background:var(--warn-bg); border-radius:8px; padding:8px 14px; margin-top:12px; }
section.invites h4 { margin:4px 0; color:var(--warn); }
section.invites ul { margin:4px 0 6px; padding-left:20px; }
tr.resolved td { color:var(--muted); }
section.tenant { background:var(--card); border:1px solid var(--line); border-radius:10px; padding:6px 20px 14px;
  margin:22px 0 0; }
nav.switcher ul { list-style:none; display:flex; flex-wrap:wrap; gap:6px; margin:0 0 14px; padding:0; }
nav.switcher a { display:inline-block; padding:4px 12px; border:1px solid var(--line); border-radius:999px;
  background:var(--card); text-decoration:none; }
nav.switcher a[aria-current="page"] { background:var(--accent); color:#fff; border-color:var(--accent); }
tr.current td { background:#eef6f1; }
footer { color:var(--muted); font-size:13px; padding:0 28px 24px; }
"""


# --- formatting -------------------------------------------------------------------------------
def _e(value: object) -> str:
    """Escaped text of a value from data; a missing value shows as a dash."""
    if value is None or value == "":
        return MISSING
    return html.escape(str(value), quote=True)


def _t(code: str, **values: object) -> str:
    """A catalogue sentence, escaped (its values may come from data); apostrophes stay as they are,
    every attribute of the page being in double quotes."""
    return html.escape(text(code, **values), quote=False).replace('"', "&quot;")


def _l(prefix: str, value: object) -> str:
    return _e(label(prefix, value)) if value is not None and value != "" else MISSING


def _number(value: Optional[int]) -> str:
    if value is None:
        return MISSING
    return f"{value:,}".replace(",", "\u202f")


def format_datetime(value: Optional[dt.datetime]) -> str:
    """`23/11/2025 11:43:02` in Paris time (a naive value is taken as UTC)."""
    if value is None:
        return MISSING
    if value.tzinfo is None:
        value = value.replace(tzinfo=dt.timezone.utc)
    return value.astimezone(PARIS).strftime("%d/%m/%Y %H:%M:%S")


def format_duration(seconds: Optional[float]) -> str:
    """A French duration with its two largest units: `45 s`, `2 min 05 s`, `3 h 12 min`, `2 j 4 h`."""
    if seconds is None:
        return MISSING
    total = max(0, int(round(seconds)))
    days, rest = divmod(total, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    if days:
        return f"{days} j {hours} h" if hours else f"{days} j"
    if hours:
        return f"{hours} h {minutes:02d} min"
    if minutes:
        return f"{minutes} min {secs:02d} s"
    return f"{secs} s"


def _time(value: Optional[dt.datetime]) -> str:
    if value is None:
        return MISSING
    return f'<time datetime="{_e(value.isoformat())}">{_e(format_datetime(value))}</time>'


def _query_string(params: dict[str, Optional[str]]) -> str:
    kept = {k: v for k, v in params.items() if v}
    return "?" + urlencode(kept) if kept else ""


def _table(caption: str, head: list[tuple[str, str]], rows: list[str], *, css: str = "", after: str = "") -> str:
    """A captioned table; `head` holds (escaped header, class) pairs, `rows` whole `<tr>` elements."""
    heads = "".join(f'<th scope="col"{f" class={chr(34)}{c}{chr(34)}" if c else ""}>{h}</th>' for h, c in head)
    table_css = f' class="{css}"' if css else ""
    return (f'<div class="table-wrap"><table{table_css}><caption>{caption}</caption>'
            f'<thead><tr>{heads}</tr></thead><tbody>{"".join(rows)}</tbody></table></div>{after}')


def _empty(title: str, sentence: str) -> str:
    return f'<h4 class="subtitle">{title}</h4><p class="empty">{sentence}</p>'


# --- the page as a list of sections ------------------------------------------------------------
@dataclass(frozen=True)
class PageContext:
    """What every section sees: the report, and the function key to carry in links and forms."""

    report: StatusReport
    key: Optional[str] = None

    def link(self, **params: Optional[str]) -> str:
        """A link to this page with the current filters, changed by `params` (None drops one)."""
        query = self.report.query
        current: dict[str, Optional[str]] = {
            "dossier": query.dossier, "entity": query.entity,
            "state": query.state.value if query.state is not IncidentStateFilter.OPEN else None,
            "run": query.run}
        current.update(params)
        current["code"] = self.key
        return _query_string(current) or "?"


@dataclass(frozen=True)
class Section:
    """One part of the page: `render` gives its HTML ("" shows nothing).

    Page sections take the `PageContext`; dossier sections take the `DossierStatus` and the
    `PageContext`. The page shows `PAGE_SECTIONS` in order, and in each dossier's card
    `DOSSIER_SECTIONS` in order: a new view is one more `Section` in the right list.
    """

    name: str
    render: Callable[..., str]


# --- page parts -------------------------------------------------------------------------------
def _choice_label(choice) -> str:
    shown = choice.name or choice.id
    if choice.name and choice.name != choice.id:
        shown = text("status.choice.named", name=choice.name, id=choice.id)
    return shown if choice.active else text("status.choice.inactive", label=shown)


def _switcher(ctx: PageContext) -> str:
    """Links to each dossier of the group (and to all): switching keeps the other filters."""
    report, query = ctx.report, ctx.report.query
    links = [(None, text("status.switch.all"), query.dossier is None)]
    links += [(c.id, _choice_label(c), query.dossier == c.id) for c in report.dossier_choices]
    items = "".join(
        f'<li><a href="{_e(ctx.link(dossier=dossier, run=None))}" data-dossier="{_e(dossier or "")}"'
        f'{" aria-current=" + chr(34) + "page" + chr(34) if current else ""}>{_e(shown)}</a></li>'
        for dossier, shown, current in links)
    return f'<nav class="switcher" aria-label="{_t("status.switch.label")}"><ul>{items}</ul></nav>'


def _filters(ctx: PageContext) -> str:
    report, key = ctx.report, ctx.key
    query = report.query

    def option(value: str, shown: str, selected: bool) -> str:
        return (f'<option value="{_e(value) if value else ""}"{" selected" if selected else ""}>'
                f"{_e(shown)}</option>")

    dossiers = [option("", text("status.filter.all_dossiers"), query.dossier is None)]
    dossiers += [option(c.id, _choice_label(c), query.dossier == c.id) for c in report.dossier_choices]
    dossiers.append(option(GROUP_INCIDENTS_DOSSIER, text("status.filter.group"),
                           query.dossier == GROUP_INCIDENTS_DOSSIER))
    entity_options = [option("", text("status.filter.all_entities"), query.entity is None)]
    entity_options += [option(e, label("status.entity", e), query.entity == e) for e in _entities(report)]
    states = [option(s.value, label("status.state_filter", s), query.state is s) for s in IncidentStateFilter]
    hidden = f'<input type="hidden" name="code" value="{_e(key)}">' if key else ""
    reset = _query_string({"code": key}) or "?"
    return f"""
<form class="filters" method="get" action="" role="search" aria-label="{_t("status.filter.label")}">
  {hidden}
  <div><label for="filter-dossier">{_t("status.filter.dossier")}</label>
    <select id="filter-dossier" name="dossier">{"".join(dossiers)}</select></div>
  <div><label for="filter-entity">{_t("status.filter.entity")}</label>
    <select id="filter-entity" name="entity">{"".join(entity_options)}</select></div>
  <div><label for="filter-state">{_t("status.filter.state")}</label>
    <select id="filter-state" name="state">{"".join(states)}</select></div>
  <div><button type="submit">{_t("status.filter.submit")}</button>
    <a href="{_e(reset)}">{_t("status.filter.reset")}</a></div>
</form>"""


def _pending_text(pending: Optional[PendingStatus]) -> str:
    if pending is None:
        return _t("status.pending.not_read")
    if not pending.available:
        return _t("status.pending.unavailable", reason=pending.error or MISSING)
    if pending.changes is None and pending.commands is None:
        return _t("status.unknown_because", reason=pending.error) if pending.error else _t("status.unknown")

    def figure(count: Optional[int], what: str) -> str:
        if count is None:
            return text(f"status.pending.{what}_unknown")
        return text(f"status.pending.{what}_{'one' if count <= 1 else 'many'}", count=_number(count))
    return _t("status.pending.both", changes=figure(pending.changes, "changes"),
              commands=figure(pending.commands, "commands"))


def _facts(d: DossierStatus, ctx: PageContext) -> str:
    facts: list[tuple[str, str]] = []
    if d.lag.last_completed_at is not None:
        facts.append(("status.fact.last_completed", _time(d.lag.last_completed_at)))
        if d.active:
            facts.append(("status.fact.lag", _e(format_duration(d.lag.seconds))))
    else:
        facts.append(("status.fact.last_completed", _t("status.fact.none")))
    facts.append(("status.fact.pending", _pending_text(d.pending)))
    if d.lag.oldest_pending_at is not None:
        facts.append(("status.fact.oldest_pending",
                      _t("status.fact.oldest_pending_since", duration=format_duration(d.lag.oldest_pending_seconds))))
    if d.pending is not None and d.pending.available and d.pending.dead_lettered:
        facts.append(("status.fact.dead_lettered", _number(d.pending.dead_lettered)))
    facts.append(("status.fact.open_incidents", _number(d.open_incidents)))
    if d.last_export:
        facts.append(("status.fact.last_export", _e(d.last_export)))
    if d.needs_realignment:
        facts.append(("status.fact.realignment", _t("status.fact.realignment_due")))
    else:
        facts.append(("status.fact.last_realigned", _time(d.last_realigned_at)))
    if not d.active:
        facts.append(("status.fact.deactivated_at", _time(d.deactivated_at)))
    rows = "".join(f"<div><dt>{_t(code)}</dt><dd>{value}</dd></div>" for code, value in facts)
    return f'<dl class="facts">{rows}</dl>'


def _runs_table(d: DossierStatus, ctx: PageContext) -> str:
    title = _t("status.runs.title")
    if not d.runs:
        return _empty(title, _t("status.runs.none"))
    head = [(_t(f"status.runs.{c}"), "num" if c == "duration" else "")
            for c in ("start", "end", "duration", "direction", "state", "realignment")]
    head += [(_t(COUNT_LABELS[c]), "num") for c in RUN_COUNTERS] + [(_t("status.runs.journal"), "")]
    rows = []
    for run in d.runs:
        counts = "".join(f'<td class="num">{_number(run.counts.get(c, 0))}</td>' for c in RUN_COUNTERS)
        state = _l("status.run_state", run.state)
        if run.message:
            state += f"<br><small>{_e(run.message)}</small>"
        current = ' class="current"' if ctx.report.query.run == run.run_id else ""
        journal = (f'<a class="run-journal" data-run="{_e(run.run_id)}" '
                   f'href="{_e(ctx.link(dossier=d.id, run=run.run_id))}#journal-{_e(d.id)}">'
                   f'{_t("status.runs.open_journal")}</a>')
        rows.append(
            f'<tr{current} data-run="{_e(run.run_id)}"><td class="date">{_time(run.started_at)}</td>'
            f'<td class="date">{_time(run.ended_at)}</td>'
            f'<td class="num">{_e(format_duration(run.duration_seconds))}</td>'
            f'<td class="nowrap">{_l("status.direction", run.direction)}</td><td>{state}</td>'
            f"<td>{_t('status.yes' if run.realignment else 'status.no')}</td>{counts}<td>{journal}</td></tr>")
    return _table(title, head, rows, css="runs")


def _commands_table(d: DossierStatus, ctx: PageContext) -> str:
    title = _t("status.commands.title")
    if not d.commands:
        return "" if not d.active else _empty(title, _t("status.commands.none"))
    head = [(_t(f"status.commands.{c}"), "") for c in ("sent_at", "entity", "key", "operation")]
    rows = [f'<tr><td class="date">{_time(c.sent_at)}</td><td>{_l("status.entity", c.entity)}</td>'
            f'<td>{_e(c.key)}</td><td>{_l("status.commands.op", c.operation)}</td></tr>' for c in d.commands]
    return _table(f"{title} ({_number(len(d.commands))})", head, rows, css="commands",
                  after=f'<p class="note">{_t("status.commands.note")}</p>')


def _set_aside(incident: IncidentStatus) -> str:
    if not incident.dead_lettered:
        return _t("status.no")
    if incident.replay_at is not None and incident.state is IncidentState.OPEN:
        return _t("status.incidents.retry_at", at="\x00").replace("\x00", _time(incident.replay_at))
    return _t("status.yes")


def _incidents_table(incidents: list[IncidentStatus], total: int, report: StatusReport, title: str) -> str:
    query = report.query
    if not incidents:
        none = text(f"status.incidents.none.{query.state.value}")
        sentence = (_t("status.incidents.none_for_entity", none=none, entity=label("status.entity", query.entity))
                    if query.entity else _t("status.incidents.none_plain", none=none))
        return _empty(title, sentence)
    head = [(_t(f"status.incidents.{c}"), "num" if c == "attempts" else "")
            for c in ("entity", "key", "operation", "message", "first_seen", "last_seen", "attempts", "state",
                      "set_aside")]
    rows = []
    for incident in incidents:
        css = ' class="resolved"' if incident.state is IncidentState.RESOLVED else ""
        rows.append(
            f'<tr{css} data-code="{_e(incident.code or "")}"><td>{_l("status.entity", incident.entity)}</td>'
            f"<td>{_e(incident.key)}</td>"
            f"<td>{_l('status.operation', incident.operation)}</td><td>{_e(incident.message)}</td>"
            f'<td class="date">{_time(incident.first_seen)}</td><td class="date">{_time(incident.last_seen)}</td>'
            f'<td class="num">{_number(incident.attempts)}</td>'
            f"<td>{_l('status.incident_state', incident.state)}</td>"
            f"<td>{_set_aside(incident)}</td></tr>")
    note = ""
    if total > len(incidents):
        note = f'<p class="note">{_t("status.incidents.shown", shown=_number(len(incidents)), total=_number(total))}</p>'
    return _table(f"{title} ({_number(total)})", head, rows, css="incidents", after=note)


def _dossier_incidents(d: DossierStatus, ctx: PageContext) -> str:
    state = label("status.state_filter", ctx.report.query.state).lower()
    return _incidents_table(d.incidents, d.incidents_total, ctx.report, _t("status.incidents.title", state=state))


def _invites(d: DossierStatus, ctx: PageContext) -> str:
    if not d.invites:
        return ""
    items = "".join(
        f"<li><strong>{_e(i.key)}</strong> — {_e(i.message)} "
        f"({_t('status.invites.since', at=chr(0)).replace(chr(0), _time(i.first_seen))})</li>"
        for i in d.invites)
    title = _t("status.invites.title")
    return (f'<section class="invites" aria-label="{title}"><h4>{title}</h4>'
            f'<p class="note">{_t("status.invites.note")}</p><ul>{items}</ul></section>')


def _collaborators_table(d: DossierStatus, ctx: PageContext) -> str:
    title = _t("status.collaborators.title")
    if not d.collaborators:
        return _empty(title, _t("status.collaborators.none"))
    head = [(_t(f"users.column.{c}"), "") for c in ("key", "name", "email", "state", "ssm_id")]
    rows = [f"<tr><td>{_e(c.key)}</td><td>{_e(c.name)}</td><td>{_e(c.email)}</td><td>{_e(c.state_label)}</td>"
            f'<td class="num">{_e(c.ssm_id)}</td></tr>' for c in d.collaborators]
    note = ""
    if any(c.state == "to-create" for c in d.collaborators):
        note = f'<p class="note">{_t("status.collaborators.note")}</p>'
    return _table(f"{title} ({_number(len(d.collaborators))})", head, rows, css="collaborators", after=note)


_SEVERITY_BADGES = {"bloquant": "error", "avertissement": "attention", "info": "off"}


def _tenant_section(ctx: PageContext) -> str:
    check: Optional[TenantCheckStatus] = ctx.report.tenant_check
    title = _t("status.tenant.title")
    if check is None:
        body = f'<p class="empty">{_t("status.tenant.none")}</p>'
    else:
        names = {c.id: c.name or c.id for c in ctx.report.dossier_choices}
        head = [(_t(f"status.tenant.column.{c}"), "") for c in ("severity", "scope", "text")]
        rows = [f'<tr><td><span class="badge {_SEVERITY_BADGES.get(f.severity, "off")}">{_e(f.severity)}</span></td>'
                f"<td>{_e(names.get(f.dossier, f.dossier) if f.dossier else text('status.tenant.group'))}</td>"
                f"<td>{_e(f.text)}</td></tr>" for f in check.findings]
        body = (f'<p class="note">{_t("status.tenant.checked_at", at=format_datetime(check.checked_at))}</p>'
                + _table(title, head, rows, css="tenant"))
    return (f'<section class="tenant" aria-labelledby="tenant-title"><h2 id="tenant-title">{title}</h2>'
            f"{body}</section>")


def _journal_table(d: DossierStatus, ctx: PageContext) -> str:
    anchor = f' id="journal-{_e(d.id)}"'
    run = next((r for r in d.runs if r.run_id == ctx.report.query.run), None) if ctx.report.query.run else None
    if run is not None:
        title = _t("status.journal.run_title", direction=label("status.direction", run.direction),
                   at=format_datetime(run.started_at))
        back = f'<p class="note"><a href="{_e(ctx.link(run=None))}">{_t("status.journal.all_runs")}</a></p>'
    else:
        title, back = _t("status.journal.title"), ""
    if not d.journal:
        return f'<section class="journal"{anchor}>{_empty(title, _t("status.journal.none"))}{back}</section>'
    head = [(_t(f"status.journal.{c}"), "") for c in ("at", "entity", "key", "event", "message")]
    rows = [f'<tr data-code="{_e(e.code or "")}"><td class="date">{_time(e.at)}</td>'
            f'<td>{_l("status.entity", e.entity)}</td><td>{_e(e.key)}</td>'
            f"<td>{_l('status.event', e.event)}</td><td>{_e(e.message)}</td></tr>" for e in d.journal]
    return f'<section class="journal"{anchor}>{_table(title, head, rows, css="journal", after=back)}</section>'


DOSSIER_SECTIONS: list[Section] = [
    Section("facts", _facts),
    Section("set_aside", lambda d, ctx: set_aside_section(d, ctx.key)),
    Section("invites", _invites),
    Section("collaborators", _collaborators_table),
    Section("runs", _runs_table),
    Section("commands", _commands_table),
    Section("incidents", _dossier_incidents),
    Section("journal", _journal_table),
]


def _dossier_card(d: DossierStatus, index: int, ctx: PageContext) -> str:
    anchor = f"dossier-{index}"
    name = _e(d.name or d.id)
    state_badge = (f'<span class="badge ok">{_t("status.active")}</span>' if d.active
                   else f'<span class="badge off">{_t("status.inactive")}</span>')
    health = "" if d.health is Health.INACTIVE else \
        f'<span class="badge {d.health.value}">{_l("status.health", d.health)}</span>'
    parts = "\n  ".join(part for part in (section.render(d, ctx) for section in DOSSIER_SECTIONS) if part)
    return f"""
<article class="dossier{'' if d.active else ' inactive'}" id="{anchor}" data-dossier="{_e(d.id)}"
  aria-labelledby="{anchor}-title">
  <header>
    <h3 id="{anchor}-title">{name} <span class="code">({_e(d.id)} · {_l("product", d.product)})</span></h3>
    {state_badge} {health}
  </header>
  {parts}
</article>"""


def _overview(ctx: PageContext) -> str:
    rows = []
    for index, d in enumerate(ctx.report.dossiers):
        lag = format_duration(d.lag.seconds) if d.lag.seconds is not None else text("status.overview.never")
        if not d.active:
            lag = MISSING
        pending = MISSING
        if d.pending is not None and d.pending.available:
            known = d.pending.changes is not None and d.pending.commands is not None   # else never shown as 0
            pending = _number(d.pending.changes + d.pending.commands) if known else _t("status.unknown")
        rows.append(
            f'<tr><th scope="row"><a href="#dossier-{index}">{_e(d.name or d.id)}</a></th>'
            f'<td>{_t("status.active" if d.active else "status.inactive")}</td>'
            f"<td>{_l('status.health', d.health) if d.active else MISSING}</td><td>{_e(lag)}</td>"
            f'<td class="num">{pending}</td>'
            f'<td class="num">{_number(d.open_incidents)}</td><td class="num">{_number(len(d.invites))}</td></tr>')
    head = [(_t(f"status.overview.{c}"), "num" if c in ("pending", "incidents", "invites") else "")
            for c in ("dossier", "state", "health", "lag", "pending", "incidents", "invites")]
    return _table(_t("status.overview.title"), head, rows).replace('class="table-wrap"',
                                                                   'class="table-wrap overview"', 1)


def _dossiers_section(ctx: PageContext) -> str:
    report, query = ctx.report, ctx.report.query
    if report.dossiers:
        cards = _overview(ctx) + "".join(_dossier_card(d, i, ctx) for i, d in enumerate(report.dossiers))
    elif query.dossier == GROUP_INCIDENTS_DOSSIER:
        cards = ""
    elif query.dossier is not None:
        cards = f'<p class="empty">{_t("status.dossiers.unknown", dossier=query.dossier)}</p>'
    else:
        cards = f'<p class="empty">{_t("status.dossiers.none")}</p>'
    return (f'<section aria-labelledby="dossiers-title"><h2 id="dossiers-title">{_t("status.dossiers.title")}</h2>'
            f"{cards}</section>")


def _group_section(ctx: PageContext) -> str:
    report, query = ctx.report, ctx.report.query
    if not (report.group_incidents_total or query.dossier == GROUP_INCIDENTS_DOSSIER):
        return ""
    state = label("status.state_filter", query.state).lower()
    return ('<section aria-labelledby="group-title">'
            f'<h2 id="group-title">{_t("status.incidents.group_heading")}</h2>'
            f'<p class="note">{_t("status.incidents.group_note")}</p>'
            + _incidents_table(report.group_incidents, report.group_incidents_total, report,
                               _t("status.incidents.group_title", state=state))
            + "</section>")


PAGE_SECTIONS: list[Section] = [
    Section("switcher", _switcher),
    Section("filters", _filters),
    Section("tenant", _tenant_section),
    Section("dossiers", _dossiers_section),
    Section("group", _group_section),
]


def _entities(report: StatusReport) -> list[str]:
    seen = {e.value for e in Entity}
    for d in report.dossiers:
        seen.update(i.entity for i in d.incidents)
    seen.update(i.entity for i in report.group_incidents)
    if report.query.entity:
        seen.add(report.query.entity)
    order = [e.value for e in Entity]
    return order + sorted(seen - set(order))


def render_status_page(report: StatusReport, *, key: Optional[str] = None) -> str:
    """The whole HTML page for `report`.

    Args:
        report: what to show.
        key: the function key to carry in the filter form and links (only when the caller
            authenticated with the `code` query parameter, as a browser does).
    """
    ctx = PageContext(report, key)
    query = report.query
    body = "\n".join(part for part in (section.render(ctx) for section in PAGE_SECTIONS) if part)
    json_link = "../status" + _query_string({
        "dossier": query.dossier, "entity": query.entity,
        "state": query.state.value if query.state is not IncidentStateFilter.OPEN else None,
        "run": query.run, "code": key})
    api_link = "../status/openapi.json" + _query_string({"code": key})
    group_line = _t("status.group_line", group="\x00", at="\x01", zone=text(TIME_ZONE_CODE)) \
        .replace("\x00", f"<strong>{_e(report.group)}</strong>").replace("\x01", _time(report.generated_at))
    return f"""<!DOCTYPE html>
<html lang="fr">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="referrer" content="no-referrer">
<title>{_t("status.page_title", group=report.group)}</title>
<style>{_CSS}</style>
</head>
<body>
<header class="page">
  <h1>{_t("status.title")}</h1>
  <p>{group_line}</p>
</header>
<main>
{body}
</main>
<footer><a href="{_e(json_link)}">{_t("status.json_link")}</a> ·
  <a href="{_e(api_link)}">{_t("status.api_link")}</a></footer>
</body>
</html>
"""


def render_error_page(message: str, *, status: int, key: Optional[str] = None) -> str:
    """A minimal page for a request the status page cannot answer (a bad filter value)."""
    back = _query_string({"code": key}) or "?"
    return f"""<!DOCTYPE html>
<html lang="fr"><head><meta charset="utf-8"><title>{_t("status.error.title", status=status)}</title>
<style>{_CSS}</style></head>
<body><header class="page"><h1>{_t("status.title")}</h1></header>
<main><h2>{_t("status.error.title", status=status)}</h2><p>{_e(message)}</p>
<p><a href="{_e(back)}">{_t("status.error.back")}</a></p></main>
</body></html>
"""
