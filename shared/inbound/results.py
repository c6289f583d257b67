"""The agent's answers to commands, bound in the cloud (`command-result` envelopes).

A prospect or contact Sage created is linked at once to its SSM record (the base being the SSM
values the command carried, so the Sage record read back later is an echo) and SSM is given its
`extId`; an account SSM created as a client is set back to Prospect there, with a journal line.
A change Sage applied moves the link's base to the values written, so the same SSM change is not
sent again. A command Sage refused is an incident naming the record and the field; nothing was
written to Sage. Warnings (an SSM owner with no Sage collaborator, a last name Sage needed) are
warning incidents on the record.
"""
from __future__ import annotations

import logging
from typing import Callable

from shared.envelope import Envelope, Op
from shared.models import Entity
from shared.ssm.lookups import ACCOUNT_TYPE_PROSPECT, ACCOUNT_TYPES
from shared.state.records import JournalEntry
from shared.sync.binder import Binder
from shared.inbound.mapping import INBOUND
from shared.inbound.quote_results import QuoteResults
from shared.inbound.pending import note_answered
from shared.inbound.refusals import refusal_text
from shared.messages import text
from shared.inbound.service import new_record_key

CREATES = (Op.CREATE_PROSPECT, Op.CREATE_CONTACT)
SAGE_WRITE = "sage-write"
SAGE_WARNING = "sage-warning"

log = logging.getLogger("ssm_connector.inbound")



class ResultBinder:
    """Applies one dossier's command results (see the module docstring)."""

    def __init__(self, store, ssm, incidents, *, clock: Callable, owner_without_rep: Callable[[], int]):
        self.store = store
        self.ssm = ssm
        self.incidents = incidents
        self.clock = clock
        self.owner_without_rep = owner_without_rep

    def apply(self, dossier: str, envelope: Envelope) -> str:
        note_answered(self.store, dossier, envelope.correlation_id)
        if envelope.entity == Entity.QUOTE.value:
            return QuoteResults(self.store, self.ssm, self.incidents, clock=self.clock).apply(dossier, envelope)
        result = envelope.record or {}
        command = result.get("command") or {}
        entity = envelope.entity or ""
        ssm_id = int(command.get("ssm_id"))
        key = envelope.key or new_record_key(ssm_id)
        if not result.get("ok"):
            self.incidents.record(dossier, entity, key, SAGE_WRITE, text(
                "inbound.refused", what=text(f"inbound.what.{entity}"), key=key, reason=refusal_text(result)))
            return "failed"
        outcome = result.get("outcome") or {}
        sage_key = outcome.get("key") or key
        self.incidents.resolve(dossier, entity, key, SAGE_WRITE)
        if envelope.op in CREATES:
            self._created(dossier, entity, ssm_id, sage_key, command, envelope)
        else:
            self._changed(dossier, entity, sage_key, command, outcome)
        warnings = list(outcome.get("warnings") or ())
        if command.get("owner_unmatched") and "rep-unknown" not in warnings:
            warnings.append("rep-unknown")
        for warning in warnings:
            self.incidents.record(dossier, entity, sage_key, SAGE_WARNING,
                                  text(f"inbound.warning.{warning.replace('-', '_')}", key=sage_key))
        return "applied"

    def _created(self, dossier: str, entity: str, ssm_id: int, sage_key: str, command: dict, envelope: Envelope) -> None:
        inbound = INBOUND[entity]
        binder = Binder(self.store, dossier, entity, clock=self.clock)
        base = dict(command.get("ssm") or {})
        fix = {"extId": binder.ext_id(sage_key)}
        if entity == Entity.ACCOUNT.value:
            prospect = self.ssm.lookup_id(ACCOUNT_TYPES, ACCOUNT_TYPE_PROSPECT)
            if command.get("was_client"):
                fix["typeId"] = prospect
                self._journal(dossier, "created-as-prospect", text("inbound.created_as_prospect", key=sage_key),
                              entity, sage_key)
            base.update(typeId=prospect, readOnly=False)
            if not command.get("rep_key"):      # what Sage's tiers without CO_No maps to: the SSM owner stays
                base["salesRepId1"] = self.owner_without_rep()
        link = binder.to_external(sage_key)
        if link is None or link.ssm_id != ssm_id:
            binder.bind(sage_key, ssm_id, base=base, hash="", link=link)
        self.ssm.update(inbound.resource, ssm_id, fix)
        self.incidents.resolve(dossier, entity, new_record_key(ssm_id), SAGE_WRITE)
        # no journal line: nothing to act on; the SSM → Sage run counts it and SSM shows Sage's code
        log.info("%s: %s", dossier, text("inbound.created_in_sage", ssm_id=ssm_id, key=sage_key))

    def _changed(self, dossier: str, entity: str, sage_key: str, command: dict, outcome: dict) -> None:
        binder = Binder(self.store, dossier, entity, clock=self.clock)
        link = binder.to_external(sage_key)
        if link is None:
            return
        written = set(outcome.get("written") or ())
        to_sage = INBOUND[entity].to_sage
        moved = {ssm: value for ssm, value in (command.get("ssm") or {}).items() if to_sage.get(ssm) in written}
        if moved:
            binder.bind(sage_key, link.ssm_id, base={**link.base, **moved}, hash=link.hash, link=link)

    def _journal(self, dossier: str, event: str, message: str, entity: str, key: str) -> None:
        self.store.append_journal(JournalEntry(dossier=dossier, at=self.clock(), entity=entity, key=key,
                                               event=event, message=message, detail={}))
