"""The realignment preview as HTML: one self-contained section, and a small page around it.

The section shows a dossier's last preview (`shared.sync.preview`, kept by `local --dry-run` and
`ssm-connector adopt`): per entity what a realignment would do in SSM and in Sage, then the SSM
records recognised for adoption and the ambiguous ones waiting for the administrator, with how
to decide. Every word comes from the catalogue; every value from data is escaped. Its styles are
its own (class `preview`), so it can sit in any page.
"""
from __future__ import annotations

import datetime as dt
import html
from typing import Any, Optional

from shared.messages import text
from shared.sync.preview import COLUMNS

STYLE = """
section.preview { font-family: system-ui, sans-serif; margin: 18px 0; }
section.preview table { border-collapse: collapse; margin: 8px 0 14px; font-size: 14px; }
section.preview th, section.preview td { border-bottom: 1px solid #d8dde3; padding: 4px 10px; text-align: right; }
section.preview th:first-child, section.preview td:first-child { text-align: left; }
section.preview table.adoptions td, section.preview table.adoptions th { text-align: left; }
section.preview tr.ambiguous td { background: #fff4e0; }
section.preview p.note { color: #5b6570; font-size: 13px; }
"""


def _e(value: Any) -> str:
    return "—" if value is None or value == "" else html.escape(str(value), quote=True)


def _when(value: Any) -> str:
    """A preview's time as plain text (escaped with the sentence it goes in)."""
    if isinstance(value, str):
        try:
            value = dt.datetime.fromisoformat(value)
        except ValueError:
            return value
    return value.strftime("%d/%m/%Y %H:%M UTC") if isinstance(value, dt.datetime) else str(value)


def render_preview_section(preview: Optional[dict], dossier: str) -> str:
    """The section for `preview` (its JSON form); a note saying how to compute one when None."""
    title = f'<h3 id="preview-{_e(dossier)}">{_e(text("preview.page.title"))} — {_e(dossier)}</h3>'
    if not preview:
        return f'<section class="preview">{title}<p class="note">{_e(text("preview.none", dossier=dossier))}</p></section>'
    heading = text("preview.title.first_load" if preview.get("first_load") else "preview.title.realignment",
                   dossier=dossier, at=_when(preview.get("at")))
    header = "".join(f'<th scope="col">{_e(text(f"preview.column.{c}"))}</th>' for c in COLUMNS)
    rows = "".join("<tr>" + f'<th scope="row">{_e(e.get("label"))}</th>'
                   + "".join(f"<td>{_e(e.get(c))}</td>" for c in COLUMNS[1:]) + "</tr>"
                   for e in preview.get("entities", []))
    return (f'<section class="preview" aria-labelledby="preview-{_e(dossier)}">{title}'
            f'<p>{_e(heading)}</p><p class="note">{_e(text("preview.nothing_written"))}</p>'
            f"<table><thead><tr>{header}</tr></thead><tbody>{rows}</tbody></table>"
            f"{_adoptions(preview.get('adoptions') or [], dossier)}</section>")


def _adoptions(items: list[dict], dossier: str) -> str:
    title = f'<h4>{_e(text("preview.page.adoptions"))}</h4>'
    if not items:
        return f'{title}<p class="note">{_e(text("preview.page.no_adoption"))}</p>'
    header = "".join(f'<th scope="col">{_e(text(f"preview.page.column.{c}"))}</th>'
                     for c in ("what", "rule", "status", "candidates"))
    rows = []
    for item in items:
        state = text(f"adoption.decision.{item['decision']}") if item.get("decision") \
            else text(f"adoption.status.{item['status']}")
        candidates = "<br>".join(_e(text("preview.candidate", ssm_id=c["ssm_id"], label=c["label"]))
                                 for c in item.get("candidates", []))
        entity = item["entity"]
        what = f"{text(f'adoption.what.{entity}')} « {item['sage_key']} » ({item.get('label') or ''})"
        rows.append(f'<tr class="{_e(item["status"])}"><td>{_e(what)}</td><td>{_e(item.get("rule_label"))}</td>'
                    f"<td>{_e(state)}</td><td>{candidates}</td></tr>")
    how = [text("preview.adopt.how", dossier=dossier)]
    if any(i["status"] == "ambiguous" for i in items):
        how.append(text("preview.ambiguous.how", dossier=dossier))
    notes = "".join(f'<p class="note">{_e(line)}</p>' for line in how)
    return f'{title}<table class="adoptions"><thead><tr>{header}</tr></thead><tbody>{"".join(rows)}</tbody></table>{notes}'


def render_preview_page(preview: Optional[dict], dossier: str) -> str:
    """A small page holding the section alone."""
    return f"""<!DOCTYPE html>
<html lang="fr">
<head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="referrer" content="no-referrer"><title>{_e(text("preview.page.title"))} — {_e(dossier)}</title>
<style>{STYLE}</style></head>
<body><main>{render_preview_section(preview, dossier)}</main></body>
</html>
"""
