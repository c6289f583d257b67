"""What a file-exchange source (Sage 50 FR) says of its exports at the start of each run, turned
into the dossier's incidents and status.

The agent's run-start marker carries the report (`agent.sage50.exchange.Exchange.report`): the
time of the newest export accepted, how old it may be, the export files never received, those
refused whole (file, line, column, reason code) and those ignored as older than the last read.
Each refused or missing file is an open incident of the dossier until a later report no longer
names it; an export older than allowed is one too (« Dernière exportation reçue il y a 3 h … »);
an ignored file is a journal line. The report is kept (cursor `source.exports`) for the status.
"""
from __future__ import annotations

import datetime as dt
import json
from typing import Optional

from shared.errors import ConcurrencyError
from shared.messages import CATALOGUE, text
from shared.state.records import Cursor, Dossier, IncidentState, JournalEntry

OPERATION = "source-export"
EXPORT_ENTITY = "export"
CURSOR = "source.exports"


def apply_source_report(store, incidents, dossier: Dossier, report: Optional[dict], *, now: dt.datetime,
                        run_id: Optional[str] = None) -> Dossier:
    """Record `report` for `dossier` (nothing when None); returns the dossier (its product set)."""
    if not report:
        return dossier
    product = report.get("product")
    if product and dossier.product != product:
        dossier = store.upsert_dossier(dossier.model_copy(update={"product": product}))
    _keep(store, dossier.id, json.dumps(report, ensure_ascii=False))
    wanted: dict[tuple[str, str], str] = {}
    for refused in report.get("refused") or ():
        code = f"sage50.file.{refused.get('code')}"
        try:
            reason = text(code, **(refused.get("values") or {})) if code in CATALOGUE else refused.get("message", "")
        except KeyError:
            reason = refused.get("message", "")
        wanted[(refused.get("entity") or EXPORT_ENTITY, f"export:{refused['file']}")] = text(
            "sage50.export.refused", file=refused["file"], reason=reason)
    for file in report.get("missing") or ():
        wanted[(EXPORT_ENTITY, f"export:{file}")] = text("sage50.export.missing", file=file)
    late = lateness(report, now)
    if late is not None:
        wanted[(EXPORT_ENTITY, "export:late")] = late
    for incident in store.list_incidents(dossier.id, state=IncidentState.OPEN):
        if incident.operation == OPERATION and (incident.entity, incident.key) not in wanted:
            incidents.resolve(dossier.id, incident.entity, incident.key, OPERATION)
    for (entity, key), message in wanted.items():
        incidents.record(dossier.id, entity, key, OPERATION, message)
    for file in report.get("ignored") or ():
        store.append_journal(JournalEntry(dossier=dossier.id, at=now, run_id=run_id, entity=EXPORT_ENTITY,
                                          key=f"export:{file}", event="export-ignored",
                                          message=text("sage50.export.ignored", file=file)))
    return dossier


def _keep(store, dossier: str, value: str) -> None:
    """The report in the dossier's cursor (a run-start marker is applied by one session at a time;
    a write that loses a race is tried again once on the newer cursor)."""
    for _ in range(2):
        current = store.get_cursor(dossier, CURSOR)
        try:
            store.save_cursor(Cursor(dossier=dossier, name=CURSOR, value=value,
                                     etag=current.etag if current is not None else None))
            return
        except ConcurrencyError:
            continue


def lateness(report: dict, now: dt.datetime) -> Optional[str]:
    """The sentence saying the exports are late (or never came), None when they are on time."""
    last = report.get("last_export_at")
    if last is None:
        return text("sage50.export.none")
    age = (now - dt.datetime.fromisoformat(last)).total_seconds()
    allowed = float(report.get("late_after_s") or 0)
    if allowed and age > allowed:
        return text("sage50.export.late", age=duration(age), expected=duration(allowed))
    return None


def last_export(store, dossier: str, now: dt.datetime) -> Optional[str]:
    """« Dernière exportation reçue il y a … » for a dossier whose source reports its exports."""
    cursor = store.get_cursor(dossier, CURSOR)
    if cursor is None:
        return None
    report = json.loads(cursor.value)
    if report.get("last_export_at") is None:
        return text("sage50.export.none")
    age = (now - dt.datetime.fromisoformat(report["last_export_at"])).total_seconds()
    return text("sage50.export.received", age=duration(age))


def duration(seconds: float) -> str:
    """A duration as the status page says it: minutes below an hour, hours below two days."""
    if seconds < 3600:
        return text("sage50.age.minutes", n=max(0, int(seconds // 60)))
    if seconds < 48 * 3600:
        return text("sage50.age.hours", n=int(seconds // 3600))
    return text("sage50.age.days", n=int(seconds // 86400))
