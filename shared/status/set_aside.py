"""The status page's part for records set aside (dead letters): how many, and a button to send them again.

Each record the connector could not apply is set aside alone, in its own open incident holding its
change (`shared.sync.replay`, `shared.sync.waiting`). The section shows their count per dossier
and a form that POSTs to `status/dossiers/{dossier}/replay` (the `status_replay` function, behind
the function key like every status route), which tries every one of them again at once.
"""
from __future__ import annotations

import html
from typing import Optional
from urllib.parse import quote, urlencode

from shared.messages import text


def replay_action(dossier: str, key: Optional[str]) -> str:
    """The form's target, relative to the page (`status/page`): `status/dossiers/{dossier}/replay`."""
    action = f"dossiers/{quote(dossier, safe='')}/replay"
    return action + ("?" + urlencode({"code": key}) if key else "")


def set_aside_section(dossier, key: Optional[str] = None) -> str:
    """The section of one dossier (`DossierStatus`); nothing when no record is set aside."""
    count = getattr(dossier, "set_aside", 0)
    if not count:
        return ""
    action = html.escape(replay_action(dossier.id, key), quote=True)
    return (f'<section class="set-aside" aria-label="{html.escape(text("crash.set_aside.title"))}">'
            f'<p><strong>{html.escape(text("crash.set_aside.title"))}</strong> : '
            f'{html.escape(text("crash.set_aside.count", count=count))}</p>'
            f'<form method="post" action="{action}">'
            f'<button type="submit">{html.escape(text("crash.set_aside.button"))}</button></form></section>')


def replay_done_page(dossier: str, replayed: int, resolved: int, still: int, back: str) -> str:
    """The page answering the form: what the replay did, and the way back."""
    done = text("crash.replay.done", dossier=dossier, replayed=replayed, resolved=resolved, still=still)
    return ('<!DOCTYPE html>\n<html lang="fr"><head><meta charset="utf-8"><title>'
            f'{html.escape(text("crash.set_aside.title"))}</title></head><body><main>'
            f'<p>{html.escape(done)}</p><p><a href="{html.escape(back, quote=True)}">'
            f'{html.escape(text("crash.replay.back"))}</a></p></main></body></html>\n')
