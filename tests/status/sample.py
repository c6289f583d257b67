"""A group of dossiers in a real SQLite state store, as the status tests and the browser test read it.

- BIJOU: active, a name holding markup, four runs (the newest still running), open and resolved
  incidents of several entities, a user to invite, a dead-lettered product, journal entries.
- ARCHIVE: deactivated, one old run, one open incident.
- NEUF: active, never synced.
- the group partition `_group`: one payload for a dossier nobody knows.
"""
from __future__ import annotations

import datetime as dt
from pathlib import Path

from shared.state.records import Dossier, JournalEntry, Run, RunState
from shared.state.repository import StateStore
from shared.state.sqlite_store import SqliteTableStore
from shared.status.report import GROUP_INCIDENTS_DOSSIER

NOW = dt.datetime(2025, 11, 23, 10, 0, tzinfo=dt.timezone.utc)
MARKUP_NAME = "Bijouterie <img src=x onerror=document.title='pwned'> & <script>document.title='pwned'</script>"
MARKUP_MESSAGE = "Le nom <b>Dupont & Fils</b> dépasse 60 caractères"


def ago(**delta: float) -> dt.datetime:
    return NOW - dt.timedelta(**delta)


class SteppingClock:
    """A clock the test moves by hand."""

    def __init__(self, now: dt.datetime):
        self.now = now

    def __call__(self) -> dt.datetime:
        return self.now


def open_store(path: Path) -> StateStore:
    store = StateStore(SqliteTableStore(str(path)))
    store.ensure_tables()
    return store


def counts(**values: int) -> dict[str, int]:
    base = dict(read=0, created=0, updated=0, deleted=0, skipped_unchanged=0, conflicts=0, failed=0)
    base.update(values)
    return base


def fill_sample_state(store: StateStore) -> None:
    """Write the sample group into `store` (its clock is replaced by a stepping one)."""
    clock = SteppingClock(NOW)
    store.clock = clock

    store.create_dossier(Dossier(id="BIJOU", name=MARKUP_NAME, created_at=ago(days=60),
                                 activated_at=ago(days=60), needs_realignment=False,
                                 last_realigned_at=ago(hours=2), first_load_done=True))
    store.create_dossier(Dossier(id="ARCHIVE", name="Archives 2019", active=False, created_at=ago(days=400),
                                 deactivated_at=ago(days=30), needs_realignment=True, first_load_done=True))
    store.create_dossier(Dossier(id="NEUF", name="Nouvelle société", created_at=ago(minutes=5)))

    store.save_run(Run(dossier="BIJOU", run_id="run-1", side="agent", direction="sage_to_ssm",
                       started_at=ago(hours=2), ended_at=ago(hours=2) + dt.timedelta(minutes=5, seconds=30),
                       state=RunState.SUCCEEDED, realignment=True,
                       counts=counts(read=1250, created=1200, updated=40, skipped_unchanged=10)))
    store.save_run(Run(dossier="BIJOU", run_id="run-2", side="cloud", direction="ssm_to_sage",
                       started_at=ago(minutes=50), ended_at=ago(minutes=49), state=RunState.SUCCEEDED,
                       counts=counts(read=3, created=1, updated=2)))
    store.save_run(Run(dossier="BIJOU", run_id="run-3", side="agent", direction="sage_to_ssm",
                       started_at=ago(minutes=15), ended_at=ago(minutes=14), state=RunState.PARTIAL,
                       counts=counts(read=12, updated=7, skipped_unchanged=2, conflicts=1, failed=2),
                       message="2 records could not be synced"))
    store.save_run(Run(dossier="BIJOU", run_id="run-4", side="agent", direction="sage_to_ssm",
                       started_at=ago(minutes=1)))
    store.save_run(Run(dossier="ARCHIVE", run_id="old-1", side="agent", direction="sage_to_ssm",
                       started_at=ago(days=31), ended_at=ago(days=31) + dt.timedelta(minutes=1),
                       state=RunState.SUCCEEDED, counts=counts(read=10)))

    clock.now = ago(hours=3)
    store.record_incident("BIJOU", "contact", "CLT001|2", "create",
                          "Le contact Marie Curie n'a pas d'adresse e-mail valide.")
    store.record_incident("BIJOU", "contact", "CLT002|1", "update", "Le contact a été supprimé dans SSM.")
    store.record_incident("BIJOU", "user", "JDUPONT", "invite",
                          "Jean Dupont (jean.dupont@bijou.example) doit être invité dans Sage Sales Management.")
    clock.now = ago(hours=1)
    store.resolve_incident("BIJOU", "contact", "CLT002|1", "update")
    store.record_incident("BIJOU", "account", "CL-42", "update", MARKUP_MESSAGE)
    store.record_incident("BIJOU", "product", "ART/01", "create", "La famille de l'article n'existe pas dans SSM.",
                          dead_lettered=True, parked={"entity": "product", "key": "ART/01"},
                          replay_at=ago(minutes=45))
    clock.now = ago(minutes=14)
    store.record_incident("BIJOU", "contact", "CLT001|2", "create",
                          "Le contact Marie Curie n'a pas d'adresse e-mail valide.")
    store.record_incident("ARCHIVE", "account", "ARC1", "update", "Le tiers ARC1 n'a pas de commercial.")
    store.record_incident(GROUP_INCIDENTS_DOSSIER, "account", "INCONNU:CL9", "decode",
                          "Un message est arrivé pour le dossier INCONNU, que le groupe ne connaît pas.")

    store.append_journal(JournalEntry(dossier="BIJOU", at=ago(minutes=14), run_id="run-3", entity="account",
                                      key="CL-7", event="conflict",
                                      message="Téléphone modifié des deux côtés : la valeur de Sage est gardée."))
    store.append_journal(JournalEntry(dossier="BIJOU", at=ago(minutes=49), run_id="run-2", entity="contact",
                                      key="CLT009|1", event="ssm-deletion-ignored",
                                      message="Contact supprimé dans SSM : il sera recréé au réalignement."))
    store.clock = lambda: NOW
