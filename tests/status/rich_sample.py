"""A group of three dossiers holding every sentence the connector can write as an incident or a
journal line, for the French-only tests and the browser test.

Runs go through the real `RunBook` (their journal lines), SSM → Sage commands through the real
`note_sent`, failures through the real `IncidentBook` and the SSM client's resolution table; then
every catalogue sentence of the incident and journal areas is recorded once, spread over the three
dossiers and the entities, with plausible values, so that no code the connector can raise is left
out of the walk.
"""
from __future__ import annotations

import datetime as dt
import string
from pathlib import Path

from shared.envelope import Envelope, EnvelopeKind, Op
from shared.errors import SsmRecordError
from shared.inbound.pending import note_sent
from shared.messages import CATALOGUE, text
from shared.ssm.resolution import RESOLUTIONS, entity_label
from shared.state.records import Dossier, JournalEntry, Link
from shared.sync.incidents import IncidentBook
from shared.sync.runs import RunBook
from tests.status.sample import SteppingClock, counts, open_store

NOW = dt.datetime(2025, 11, 23, 10, 0, tzinfo=dt.timezone.utc)
DOSSIERS = {"BIJOU": "Bijouterie Dupont", "ORFEVRE": "Orfèvrerie Martin", "MONTRES": "Montres & Cie"}
ENTITIES = ("account", "contact", "product", "product_family", "user", "quote", "order", "invoice")
INCIDENT_PREFIXES = ("sync.", "inbound.", "quote.", "sage.refused.", "user.", "contact.", "agent.")
JOURNAL_PREFIXES = ("journal.",)
# the event each journal sentence is written under (by the module that writes it)
JOURNAL_EVENTS = {
    "run": "run-end", "inactive_changes": "dossier-inactive", "run_inactive": "dossier-inactive",
    "registered": "dossier-registered", "state_lost": "state-lost", "state_rebuilt": "state-rebuilt",
    "state_outdated": "dossier-state-outdated", "activated": "dossier-activated",
    "reactivated_by_realignment": "dossier-activated", "deactivated": "dossier-deactivated",
    "not_handled": "envelope-not-handled", "conflict": "conflict", "conflict_ssm": "conflict",
    "ssm_change_refused": "ssm-change-refused", "recreated": "recreated", "ssm_deletion_ignored": "ssm-deletion-ignored",
    "deletion_not_propagated": "deletion-not-propagated", "user_deletion_not_propagated": "deletion-not-propagated",
    "invite_matched": "invite-matched",
}
FIELD_VALUES = {
    "key": "C001", "name": "Marie Curie", "email": "marie.curie@bijou.example", "field": "CT_Telephone",
    "fields": "CT_Telephone, CT_EMail", "dossier": "BIJOU", "entity": "le tiers", "id": "4521",
    "ssm_id": "4521", "piece": "DE00042", "what": "la commande", "branch": "Lyon", "article": "BAGUE-OR",
    "tiers": "C001", "product": "Sage 100", "stock": "12", "mark": "(à compléter)", "missing": "prénom",
    "count": "3", "value": "06 12 34 56 78", "values": "06 12 34 56 78", "width": "35", "length": "41",
    "column": "CT_Intitule", "char": "€", "op": "update-prospect", "kind": "change", "code_value": "SSM1000000",
    "at": "23/11/2025 11:15", "status": "400", "attempts": "4", "timeout": "30", "public_key": "fm-pub…",
    "resource": "accounts", "target": "le compte 4521", "message": "Le champ branchId est obligatoire",
    "path": "extrafields/accounts/schema", "description": "Fournisseur", "known": "« Client », « Prospect »",
    "replays": "10", "direction": "Sage → SSM", "conflicts": "1", "number": "999", "size": "393", "limit": "247",
    "more": "3", "head": "Impossible de synchroniser la facture « FA001 » : lines.0.description : obligatoire "
                         "mais vide dans Sage", "records": "le tiers « C002 »", "clock": "23/11/2025 09:00",
    "latest": "23/11/2025 10:00", "changes": "base « BIJOU » → « BIJOU_2025 »", "marq": "1042",
    "needed_by": "Le contact « 7 »", "record": "le tiers « C001 »", "problem": "obligatoire mais vide dans Sage",
    "problems": "name : obligatoire mais vide dans Sage", "max": "69", "reasons": "première synchronisation de ce "
                "dossier", "why": "après plusieurs tentatives", "label": "lus", "cause":
    "Impossible d'envoyer le tiers « C001 » à Sage Sales Management", "reason": "la quantité de l'article "
    "« BAGUE-OR » doit être positive", "counts": "lus 12, créés 1, modifiés 7",
}


def fields_of(code: str) -> set[str]:
    return {name for _, name, _, _ in string.Formatter().parse(CATALOGUE[code]) if name}


def sample_text(code: str) -> str:
    return text(code, **{name: FIELD_VALUES.get(name, "X1") for name in fields_of(code)})


def walked_codes(prefixes: tuple[str, ...]) -> list[str]:
    """The catalogue's codes under `prefixes`, but the command line's (never an incident)."""
    return sorted(code for code in CATALOGUE if code.startswith(prefixes) and not code.startswith("agent.cli."))


def fill_rich_state(store) -> None:
    clock = SteppingClock(NOW - dt.timedelta(hours=3))
    store.clock = clock
    for index, (dossier, name) in enumerate(DOSSIERS.items()):
        store.create_dossier(Dossier(id=dossier, name=name, created_at=NOW - dt.timedelta(days=30 + index),
                                     activated_at=NOW - dt.timedelta(days=30), needs_realignment=False,
                                     first_load_done=True, last_realigned_at=NOW - dt.timedelta(days=2)))
    runs = RunBook(store, clock=clock)
    incidents = IncidentBook(store, clock=clock)
    for index, dossier in enumerate(DOSSIERS):
        started = NOW - dt.timedelta(hours=2, minutes=index)
        clock.now = started
        runs.start(dossier, f"{dossier}-run-1", realignment=True, reasons=(text("agent.reason.first"),))
        clock.now = started + dt.timedelta(minutes=4)
        runs.add(dossier, f"{dossier}-run-1", counts(read=120, created=100, updated=15, conflicts=index,
                                                     failed=1))
        runs.end(dossier, f"{dossier}-run-1", agent_counts={"read": 120, "created": 100, "changed": 15,
                                                            "skipped_unchanged": 5})
        clock.now = NOW - dt.timedelta(minutes=30 + index)
        runs.record_pass(dossier, f"ssm-{dossier}-1", started_at=clock.now - dt.timedelta(seconds=20),
                         counts={"read": 2, "created": 1, "updated": 1})
        note_sent(store, [Envelope(kind=EnvelopeKind.COMMAND, dossier=dossier, run_id=f"cmd-{dossier}-{n}",
                                   correlation_id=f"cmd-{dossier}-{n}", entity=entity, op=op, key=key, hash="h")
                          for n, (entity, op, key) in enumerate((("account", Op.CREATE_PROSPECT, "ssm:4521"),
                                                                  ("quote", Op.PRICE_QUOTE, "ssm:88")))],
                  at=clock.now)
        store.save_link(Link(dossier=dossier, entity="user", sage_key=f"{index + 1}", base={"_collaborator": {
            "first_name": "Jean", "last_name": f"Dupont{index}", "email": f"jean.dupont{index}@bijou.example"}}))
    # failures through the real books and the SSM client's own sentences
    clock.now = NOW - dt.timedelta(minutes=20)
    for n, row in enumerate(RESOLUTIONS):
        said = row.render(entity=entity_label("accounts"), target=f"{entity_label('accounts')} 4521",
                          resource="accounts", message="Le champ branchId est obligatoire", status=400,
                          attempts=4, timeout="30", public_key="fm-pub…")
        dossier = list(DOSSIERS)[n % len(DOSSIERS)]
        incidents.record_failure(dossier, "account", f"R{n:03d}", "update", SsmRecordError(said, status=400))
    incidents.record_failure("ORFEVRE", "contact", "CT9|1", "create", RuntimeError("boom"))
    # every sentence of the incident and journal areas, once
    for n, code in enumerate(walked_codes(INCIDENT_PREFIXES)):
        dossier, entity = list(DOSSIERS)[n % len(DOSSIERS)], ENTITIES[n % len(ENTITIES)]
        clock.now = NOW - dt.timedelta(minutes=15, seconds=n)
        incidents.record(dossier, entity, f"K{n:03d}", "update", sample_text(code))
    for n, code in enumerate(walked_codes(JOURNAL_PREFIXES)):
        dossier, entity = list(DOSSIERS)[n % len(DOSSIERS)], ENTITIES[n % len(ENTITIES)]
        store.append_journal(JournalEntry(dossier=dossier, at=NOW - dt.timedelta(hours=2, minutes=-2, seconds=-n),
                                          run_id=f"{dossier}-run-1", entity=entity, key=f"J{n:03d}",
                                          event=JOURNAL_EVENTS[code.split(".")[1]], message=sample_text(code)))
    incidents.record_on_group("account", "INCONNU:C9", "read", text("sync.unknown_dossier", dossier="INCONNU"))
    incidents.record("MONTRES", "user", "3", "invite", text("user.invite_needed", name="Jean Dupont2",
                                                            email="jean.dupont2@bijou.example"))
    store.clock = lambda: NOW


def open_rich_store(path: Path):
    store = open_store(path)
    fill_rich_state(store)
    return store
