"""The status page: one self-contained HTML document for a Sage administrator, in French.

Inline CSS, no script, no external asset. Dates are shown in Europe/Paris time; every value that
comes from data (dossier and tiers names, keys, messages) goes through `html.escape`, so a name
holding markup shows as text. The filters are a plain GET form, so they work without JavaScript;
when the function key came in the query string it rides along as a hidden field.
"""
from __future__ import annotations

import datetime as dt
import html
from typing import Iterable, Optional
from urllib.parse import urlencode
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from shared.messages import text
from shared.models import Entity
from shared.state.records import RUN_COUNTERS, IncidentState, RunState
from shared.status.set_aside import set_aside_section
from shared.status.report import (
    GROUP_INCIDENTS_DOSSIER,
    DossierStatus,
    Health,
    IncidentStateFilter,
    IncidentStatus,
    JournalStatus,
    PendingStatus,
    StatusReport,
    TenantCheckStatus,
)

try:
    PARIS: dt.tzinfo = ZoneInfo("Europe/Paris")
    TIME_ZONE_LABEL = "heure de Paris"
except ZoneInfoNotFoundError:  # a system without the time-zone database
    PARIS = dt.timezone.utc
    TIME_ZONE_LABEL = "UTC"

MISSING = "—"

PRODUCT_LABELS = {"sage100": "Sage 100", "sage50": "Sage 50"}
ENTITY_LABELS = {
    Entity.USER.value: "Utilisateur",
    Entity.ACCOUNT.value: "Tiers",
    Entity.CONTACT.value: "Contact",
    Entity.PRODUCT_FAMILY.value: "Famille d'articles",
    Entity.PRODUCT.value: "Article",
    Entity.QUOTE.value: "Devis",
    Entity.ORDER.value: "Commande",
    Entity.INVOICE.value: "Facture",
}
OPERATION_LABELS = {
    "create": "Création",
    "update": "Modification",
    "upsert": "Mise à jour",
    "delete": "Suppression",
    "invite": "Invitation",
    "invalid": "Donnée invalide",
    "decode": "Lecture du message",
    "command": "Commande SSM",
}
EVENT_LABELS = {
    "conflict": "Conflit",
    "ssm-deletion-ignored": "Suppression SSM ignorée",
    "invite-needed": "Invitation requise",
}
DIRECTION_LABELS = {"sage_to_ssm": "Sage → SSM", "ssm_to_sage": "SSM → Sage"}
RUN_STATE_LABELS = {
    RunState.RUNNING: "En cours",
    RunState.SUCCEEDED: "Réussie",
    RunState.PARTIAL: "Partielle",
    RunState.FAILED: "Échouée",
}
INCIDENT_STATE_LABELS = {IncidentState.OPEN: "Ouvert", IncidentState.RESOLVED: "Résolu"}
STATE_FILTER_LABELS = {
    IncidentStateFilter.OPEN: "Ouverts",
    IncidentStateFilter.RESOLVED: "Résolus",
    IncidentStateFilter.ALL: "Tous",
}
NO_INCIDENT_TEXT = {
    IncidentStateFilter.OPEN: "Aucun incident ouvert",
    IncidentStateFilter.RESOLVED: "Aucun incident résolu",
    IncidentStateFilter.ALL: "Aucun incident",
}
HEALTH_LABELS = {
    Health.NEVER_SYNCED: "Jamais synchronisé",
    Health.OK: "À jour",
    Health.ATTENTION: "À surveiller",
    Health.ERROR: "En erreur",
}
COUNT_LABELS = {
    "read": "Lus",
    "created": "Créés",
    "updated": "Modifiés",
    "deleted": "Supprimés",
    "skipped_unchanged": "Inchangés",
    "conflicts": "Conflits",
    "failed": "Échecs",
}

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
footer { color:var(--muted); font-size:13px; padding:0 28px 24px; }
"""


# --- formatting -------------------------------------------------------------------------------
def _e(value: object) -> str:
    """Escaped text of a value from data; a missing value shows as a dash."""
    if value is None or value == "":
        return MISSING
    return html.escape(str(value), quote=True)


def _label(labels: dict, value: object) -> str:
    return _e(labels.get(value, value))


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


def _plural(count: int, singular: str, plural: str) -> str:
    return f"{_number(count)} {singular if count <= 1 else plural}"


def _query_string(params: dict[str, Optional[str]]) -> str:
    kept = {k: v for k, v in params.items() if v}
    return "?" + urlencode(kept) if kept else ""


# --- page parts -------------------------------------------------------------------------------
def _filters(report: StatusReport, key: Optional[str], entities: Iterable[str]) -> str:
    query = report.query

    def option(value: str, label: str, selected: bool) -> str:
        return (f'<option value="{_e(value) if value else ""}"{" selected" if selected else ""}>'
                f"{_e(label)}</option>")

    dossiers = [option("", "Tous les dossiers", query.dossier is None)]
    for choice in report.dossier_choices:
        text = choice.name or choice.id
        if choice.name and choice.name != choice.id:
            text = f"{choice.name} ({choice.id})"
        if not choice.active:
            text += " — désactivé"
        dossiers.append(option(choice.id, text, query.dossier == choice.id))
    dossiers.append(option(GROUP_INCIDENTS_DOSSIER, "Groupe (dossier inconnu)",
                           query.dossier == GROUP_INCIDENTS_DOSSIER))
    entity_options = [option("", "Toutes les entités", query.entity is None)]
    entity_options += [option(e, ENTITY_LABELS.get(e, e), query.entity == e) for e in entities]
    states = [option(s.value, STATE_FILTER_LABELS[s], query.state is s) for s in IncidentStateFilter]
    hidden = f'<input type="hidden" name="code" value="{_e(key)}">' if key else ""
    reset = _query_string({"code": key}) or "?"
    return f"""
<form class="filters" method="get" action="" role="search" aria-label="Filtrer les incidents">
  {hidden}
  <div><label for="filter-dossier">Dossier</label>
    <select id="filter-dossier" name="dossier">{"".join(dossiers)}</select></div>
  <div><label for="filter-entity">Entité</label>
    <select id="filter-entity" name="entity">{"".join(entity_options)}</select></div>
  <div><label for="filter-state">État des incidents</label>
    <select id="filter-state" name="state">{"".join(states)}</select></div>
  <div><button type="submit">Filtrer</button> <a href="{_e(reset)}">Réinitialiser</a></div>
</form>"""


def _pending_text(pending: Optional[PendingStatus]) -> str:
    if pending is None:
        return "non consulté"
    if not pending.available:
        return f"indisponible ({_e(pending.error)})"
    if pending.changes is None and pending.commands is None:
        return f"inconnu ({_e(pending.error)})" if pending.error else "inconnu"
    changes = ("messages Sage : inconnu" if pending.changes is None
               else _plural(pending.changes, 'message Sage', 'messages Sage'))
    commands = ("commandes SSM : inconnu" if pending.commands is None
                else _plural(pending.commands, 'commande SSM', 'commandes SSM'))
    return f"{changes}, {commands}"


def _facts(d: DossierStatus) -> str:
    facts: list[tuple[str, str]] = []
    if d.lag.last_completed_at is not None:
        facts.append(("Dernière synchronisation réussie", _time(d.lag.last_completed_at)))
        if d.active:
            facts.append(("Retard", _e(format_duration(d.lag.seconds))))
    else:
        facts.append(("Dernière synchronisation réussie", "aucune"))
    facts.append(("En attente", _pending_text(d.pending)))
    if d.lag.oldest_pending_at is not None:
        facts.append(("Plus ancien message en attente",
                      f"depuis {_e(format_duration(d.lag.oldest_pending_seconds))}"))
    if d.pending is not None and d.pending.available and d.pending.dead_lettered:
        facts.append(("Messages mis de côté", _number(d.pending.dead_lettered)))
    facts.append(("Incidents ouverts", _number(d.open_incidents)))
    if d.needs_realignment:
        facts.append(("Réalignement", "prévu à la prochaine synchronisation"))
    else:
        facts.append(("Dernier réalignement", _time(d.last_realigned_at)))
    if not d.active:
        facts.append(("Désactivé le", _time(d.deactivated_at)))
    rows = "".join(f"<div><dt>{label}</dt><dd>{value}</dd></div>" for label, value in facts)
    return f'<dl class="facts">{rows}</dl>'


def _runs_table(d: DossierStatus, title: str) -> str:
    if not d.runs:
        return f'<h4 class="subtitle">{title}</h4><p class="empty">Aucune synchronisation pour l\'instant.</p>'
    head = ("<th scope=\"col\">Début</th><th scope=\"col\">Fin</th><th scope=\"col\" class=\"num\">Durée</th>"
            "<th scope=\"col\">Sens</th><th scope=\"col\">État</th><th scope=\"col\">Réalignement</th>"
            + "".join(f'<th scope="col" class="num">{COUNT_LABELS[c]}</th>' for c in RUN_COUNTERS))
    rows = []
    for run in d.runs:
        counts = "".join(f'<td class="num">{_number(run.counts.get(c, 0))}</td>' for c in RUN_COUNTERS)
        state = _label(RUN_STATE_LABELS, run.state)
        if run.message:
            state += f"<br><small>{_e(run.message)}</small>"
        rows.append(
            f'<tr><td class="date">{_time(run.started_at)}</td><td class="date">{_time(run.ended_at)}</td>'
            f'<td class="num">{_e(format_duration(run.duration_seconds))}</td>'
            f'<td class="nowrap">{_label(DIRECTION_LABELS, run.direction)}</td><td>{state}</td>'
            f"<td>{'oui' if run.realignment else 'non'}</td>{counts}</tr>")
    return (f'<div class="table-wrap"><table class="runs"><caption>{title}</caption>'
            f'<thead><tr>{head}</tr></thead><tbody>{"".join(rows)}</tbody></table></div>')


def _set_aside(incident: IncidentStatus) -> str:
    if not incident.dead_lettered:
        return "non"
    if incident.replay_at is not None and incident.state is IncidentState.OPEN:
        return f"oui, nouvel essai le {_time(incident.replay_at)}"
    return "oui"


def _incidents_table(incidents: list[IncidentStatus], total: int, report: StatusReport, title: str) -> str:
    query = report.query
    if not incidents:
        empty = NO_INCIDENT_TEXT[query.state]
        if query.entity:
            empty += f" pour l'entité {_label(ENTITY_LABELS, query.entity)}"
        return f'<h4 class="subtitle">{title}</h4><p class="empty">{empty}.</p>'
    head = "".join(f'<th scope="col"{cls}>{name}</th>' for name, cls in (
        ("Entité", ""), ("Clé", ""), ("Opération", ""), ("Message", ""), ("Première occurrence", ""),
        ("Dernière occurrence", ""), ("Tentatives", ' class="num"'), ("État", ""), ("Mis de côté", "")))
    rows = []
    for incident in incidents:
        css = ' class="resolved"' if incident.state is IncidentState.RESOLVED else ""
        rows.append(
            f"<tr{css}><td>{_label(ENTITY_LABELS, incident.entity)}</td><td>{_e(incident.key)}</td>"
            f"<td>{_label(OPERATION_LABELS, incident.operation)}</td><td>{_e(incident.message)}</td>"
            f'<td class="date">{_time(incident.first_seen)}</td><td class="date">{_time(incident.last_seen)}</td>'
            f'<td class="num">{_number(incident.attempts)}</td>'
            f"<td>{_label(INCIDENT_STATE_LABELS, incident.state)}</td>"
            f"<td>{_set_aside(incident)}</td></tr>")
    note = ""
    if total > len(incidents):
        note = f'<p class="note">{_number(len(incidents))} incidents affichés sur {_number(total)}.</p>'
    return (f'<div class="table-wrap"><table><caption>{title} ({_number(total)})</caption>'
            f'<thead><tr>{head}</tr></thead><tbody>{"".join(rows)}</tbody></table></div>{note}')


def _invites(d: DossierStatus) -> str:
    if not d.invites:
        return ""
    items = "".join(
        f"<li><strong>{_e(i.key)}</strong> — {_e(i.message)} (depuis le {_time(i.first_seen)})</li>"
        for i in d.invites)
    return (f'<section class="invites" aria-label="Invitation requise"><h4>Invitation requise</h4>'
            f"<p class=\"note\">Ces collaborateurs Sage doivent être invités dans Sage Sales Management ; "
            f"ils seront reliés par leur adresse e-mail.</p><ul>{items}</ul></section>")


def _collaborators_table(d: DossierStatus) -> str:
    title = _e(text("status.collaborators.title"))
    if not d.collaborators:
        return f'<h4 class="subtitle">{title}</h4><p class="empty">{_e(text("status.collaborators.none"))}</p>'
    head = "".join(f'<th scope="col">{_e(text(f"users.column.{c}"))}</th>'
                   for c in ("key", "name", "email", "state", "ssm_id"))
    rows = "".join(
        f"<tr><td>{_e(c.key)}</td><td>{_e(c.name)}</td><td>{_e(c.email)}</td><td>{_e(c.state_label)}</td>"
        f'<td class="num">{_e(c.ssm_id)}</td></tr>' for c in d.collaborators)
    note = ""
    if any(c.state == "to-create" for c in d.collaborators):
        note = f'<p class="note">{_e(text("status.collaborators.note"))}</p>'
    return (f'<div class="table-wrap"><table class="collaborators"><caption>{title} '
            f'({_number(len(d.collaborators))})</caption><thead><tr>{head}</tr></thead><tbody>{rows}</tbody>'
            f"</table></div>{note}")


_SEVERITY_BADGES = {"bloquant": "error", "avertissement": "attention", "info": "off"}


def _tenant_section(check: Optional[TenantCheckStatus], report: StatusReport) -> str:
    title = _e(text("status.tenant.title"))
    if check is None:
        body = f'<p class="empty">{_e(text("status.tenant.none"))}</p>'
    else:
        names = {c.id: c.name or c.id for c in report.dossier_choices}
        head = "".join(f'<th scope="col">{_e(text(f"status.tenant.column.{c}"))}</th>'
                       for c in ("severity", "scope", "text"))
        rows = "".join(
            f'<tr><td><span class="badge {_SEVERITY_BADGES.get(f.severity, "off")}">{_e(f.severity)}</span></td>'
            f"<td>{_e(names.get(f.dossier, f.dossier) if f.dossier else text('status.tenant.group'))}</td>"
            f"<td>{_e(f.text)}</td></tr>" for f in check.findings)
        checked = text("status.tenant.checked_at", at=format_datetime(check.checked_at))
        body = (f'<p class="note">{_e(checked)}</p><div class="table-wrap"><table class="tenant">'
                f"<caption>{title}</caption><thead><tr>{head}</tr></thead><tbody>{rows}</tbody></table></div>")
    return (f'<section class="tenant" aria-labelledby="tenant-title"><h2 id="tenant-title">{title}</h2>'
            f"{body}</section>")


def _journal_table(entries: list[JournalStatus], title: str) -> str:
    if not entries:
        return f'<h4 class="subtitle">{title}</h4><p class="empty">Aucune entrée au journal.</p>'
    rows = "".join(
        f'<tr><td class="date">{_time(e.at)}</td><td>{_label(ENTITY_LABELS, e.entity)}</td><td>{_e(e.key)}</td>'
        f"<td>{_label(EVENT_LABELS, e.event)}</td><td>{_e(e.message)}</td></tr>" for e in entries)
    head = "".join(f'<th scope="col">{h}</th>' for h in ("Date", "Entité", "Clé", "Événement", "Message"))
    return (f'<div class="table-wrap"><table><caption>{title}</caption>'
            f"<thead><tr>{head}</tr></thead><tbody>{rows}</tbody></table></div>")


def _dossier_card(d: DossierStatus, index: int, report: StatusReport, key: Optional[str] = None) -> str:
    anchor = f"dossier-{index}"
    name = _e(d.name or d.id)
    state_badge = ('<span class="badge ok">Actif</span>' if d.active
                   else '<span class="badge off">Désactivé</span>')
    health = "" if d.health is Health.INACTIVE else \
        f'<span class="badge {d.health.value}">{HEALTH_LABELS[d.health]}</span>'
    return f"""
<article class="dossier{'' if d.active else ' inactive'}" id="{anchor}" aria-labelledby="{anchor}-title">
  <header>
    <h3 id="{anchor}-title">{name} <span class="code">({_e(d.id)} · {_label(PRODUCT_LABELS, d.product)})</span></h3>
    {state_badge} {health}
  </header>
  {_facts(d)}
  {set_aside_section(d, key)}
  {_invites(d)}
  {_collaborators_table(d)}
  {_runs_table(d, "Dernières synchronisations")}
  {_incidents_table(d.incidents, d.incidents_total, report,
                    f"Incidents — {STATE_FILTER_LABELS[report.query.state].lower()}")}
  {_journal_table(d.journal, "Journal")}
</article>"""


def _overview(report: StatusReport) -> str:
    rows = []
    for index, d in enumerate(report.dossiers):
        state = "Actif" if d.active else "Désactivé"
        health = HEALTH_LABELS.get(d.health, MISSING)
        lag = format_duration(d.lag.seconds) if d.lag.seconds is not None else "aucune synchronisation"
        if not d.active:
            lag = MISSING
        pending = MISSING
        if d.pending is not None and d.pending.available:
            known = d.pending.changes is not None and d.pending.commands is not None   # else never shown as 0
            pending = _number(d.pending.changes + d.pending.commands) if known else "inconnu"
        rows.append(
            f'<tr><th scope="row"><a href="#dossier-{index}">{_e(d.name or d.id)}</a></th><td>{state}</td>'
            f"<td>{_e(health)}</td><td>{_e(lag)}</td><td class=\"num\">{pending}</td>"
            f'<td class="num">{_number(d.open_incidents)}</td><td class="num">{_number(len(d.invites))}</td></tr>')
    head = "".join(f'<th scope="col"{cls}>{h}</th>' for h, cls in (
        ("Dossier", ""), ("État", ""), ("Santé", ""), ("Retard", ""), ("En attente", ' class="num"'),
        ("Incidents ouverts", ' class="num"'), ("Invitations requises", ' class="num"')))
    return (f'<div class="table-wrap overview"><table><caption>Vue d\'ensemble</caption>'
            f'<thead><tr>{head}</tr></thead><tbody>{"".join(rows)}</tbody></table></div>')


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
    query = report.query
    if report.dossiers:
        cards = _overview(report) + "".join(_dossier_card(d, i, report, key)
                                           for i, d in enumerate(report.dossiers))
    elif query.dossier == GROUP_INCIDENTS_DOSSIER:
        cards = ""
    elif query.dossier is not None:
        cards = f'<p class="empty">Aucun dossier « {_e(query.dossier)} » dans ce groupe.</p>'
    else:
        cards = ('<p class="empty">Aucun dossier n\'est encore connu de ce groupe : un dossier apparaît ici '
                 "dès que l'agent installé sur le serveur Sage l'a enregistré.</p>")
    group = ""
    if report.group_incidents_total or query.dossier == GROUP_INCIDENTS_DOSSIER:
        group = (
            '<section aria-labelledby="group-title"><h2 id="group-title">Incidents du groupe</h2>'
            '<p class="note">Messages reçus pour un dossier que le groupe ne connaît pas.</p>'
            + _incidents_table(report.group_incidents, report.group_incidents_total, report,
                               f"Incidents du groupe — {STATE_FILTER_LABELS[query.state].lower()}")
            + "</section>")
    json_link = "../status" + _query_string({
        "dossier": query.dossier, "entity": query.entity,
        "state": query.state.value if query.state is not IncidentStateFilter.OPEN else None, "code": key})
    return f"""<!DOCTYPE html>
<html lang="fr">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="referrer" content="no-referrer">
<title>État de la synchronisation — {_e(report.group)}</title>
<style>{_CSS}</style>
</head>
<body>
<header class="page">
  <h1>Synchronisation Sage ⇄ Sage Sales Management</h1>
  <p>Groupe de dossiers <strong>{_e(report.group)}</strong>
     · état au {_time(report.generated_at)} ({TIME_ZONE_LABEL})</p>
</header>
<main>
{_filters(report, key, _entities(report))}
{_tenant_section(report.tenant_check, report)}
<section aria-labelledby="dossiers-title">
<h2 id="dossiers-title">Dossiers</h2>
{cards}
</section>
{group}
</main>
<footer><a href="{_e(json_link)}">Version JSON de cet état</a></footer>
</body>
</html>
"""


def render_error_page(message: str, *, status: int, key: Optional[str] = None) -> str:
    """A minimal page for a request the status page cannot answer (a bad filter value)."""
    back = _query_string({"code": key}) or "?"
    return f"""<!DOCTYPE html>
<html lang="fr"><head><meta charset="utf-8"><title>Erreur {status}</title><style>{_CSS}</style></head>
<body><header class="page"><h1>État de la synchronisation</h1></header>
<main><h2>Erreur {status}</h2><p>{_e(message)}</p><p><a href="{_e(back)}">Revenir à l'état complet</a></p></main>
</body></html>
"""
