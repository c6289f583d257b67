"""Synchronizers: one per entity, each applying one Sage change envelope to SSM.

`Synchronizer.run` is the common path (after OCA's importers): an envelope whose content hash is
the link's is done already (no call); otherwise `_validate_data` builds the canonical record,
`_must_skip` may set it aside, the record is created (and bound at once) or updated with only
the mapped fields that changed, and `_after_import` finishes what hangs off it (document lines,
sales totals). Records edited on both sides (prospects, contacts) are read from SSM first and
3-way merged, as is a Sage-owned record whose owner Sage changed (an owner changed in SSM stays);
on a realignment run every record is compared with SSM's and Sage's values win.
A record without a link is looked up by its `extId` before it is created only when an earlier
attempt may have created it without saving the link (a realignment, a dossier whose state the
cloud lost, a redelivered message, a record with an open incident), so a first load costs one
call per record created.
"""
from __future__ import annotations

import datetime as dt
import logging
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, Callable, Optional

from shared.envelope import Envelope, Op, content_hash
from shared.errors import SsmMissingError
from shared.models import AccountKind, CanonicalRecord, Document, Entity, parse_record
from shared.messages import record_name, sentence, text
from shared.rules import DeletePolicy, rule_for
from shared.ssm import contract
from shared.state.records import JournalEntry, Link
from shared.sync import mapping
from shared.sync.binder import Binder, BindingRaceError
from shared.sync.dependencies import BatchDependencies
from shared.sync.incidents import CREATE, DELETE, INVITE, NAME_FILLED, READ, UPDATE, IncidentBook
from shared.sync.mapping import ORDER_OF_LINE, Mapper, to_ssm
from shared.sync.merge import MergeResult, diff, merge, realign, reference_id, same, ssm_values

CREATED, UPDATED, DELETED, LINKED, UNCHANGED, PENDING, IGNORED = (
    "created", "updated", "deleted", "linked", "unchanged", "pending", "ignored")

LINE_ENTITY = "order_line"

SALES_VERSIONS_PER_READ = 10
"""Versions of an invoice's total asked for per `/sales` read when the link does not know them."""

log = logging.getLogger("ssm_connector.sync")


@dataclass
class Outcome:
    """What applying one envelope did."""

    action: str
    conflicts: int = 0


class Attempt:
    """The operation under way on one record, named in the incident if it fails."""

    def __init__(self) -> None:
        self.operation = READ


class SyncContext:
    """Everything the synchronizers of one batch of one dossier share."""

    def __init__(self, *, store, ssm, dossier, deps: BatchDependencies, incidents: IncidentBook,
                 realignment: Callable[[str], bool], run_started_at: Callable[[str], Optional[dt.datetime]],
                 clock: Callable[[], dt.datetime], redelivered: bool = False,
                 open_records: frozenset[tuple[str, str]] = frozenset(), links_lost: bool = False,
                 replayed_since: Optional[dict[tuple[str, str], dt.datetime]] = None,
                 held_none: Callable[[str, str], bool] = lambda run_id, resource: False):
        self.store = store
        self.ssm = ssm
        self.dossier = dossier
        self.deps = deps
        self.incidents = incidents
        self.realignment = realignment
        self.held_none = held_none
        """(run, SSM resource) → whether SSM held no record of the dossier when the run first asked."""
        self.run_started_at = run_started_at
        self.clock = clock
        self.redelivered = redelivered
        self.open_records = open_records
        self.links_lost = links_lost
        """The cloud lost the dossier's state and no realignment rebuilt it yet."""
        self.replayed_since = replayed_since or {}
        self.transformed_quotes: dict[str, tuple[str, str]] = {}
        """Devis pieces the batch's orders and invoices came from (`DL_PieceDE`): piece → (entity, piece)."""
        """For a replay of dead-lettered changes: (entity, key) → when that change was last tried."""
        self.held_for_adoption: frozenset[tuple[str, str]] = frozenset()
        """(entity, key) of records held back until the administrator decides their adoption."""

    @property
    def dossier_id(self) -> str:
        return self.dossier.id

    def may_hold_earlier(self, run_id: str, resource: str) -> bool:
        """Whether SSM may hold, in `resource`, a record an earlier install or attempt created for
        this realigning run's records: not when it held none of the dossier when the run first
        asked (a first load into an empty tenant then costs one call per record created)."""
        return self.realignment(run_id) and not self.held_none(run_id, resource)

    @property
    def first_load(self) -> bool:
        return not self.dossier.first_load_done

    def journal(self, event: str, message: str, *, entity: Optional[str] = None, key: Optional[str] = None,
                run_id: Optional[str] = None, detail: Optional[dict] = None) -> None:
        self.store.append_journal(JournalEntry(dossier=self.dossier_id, at=self.clock(), run_id=run_id,
                                               entity=entity, key=key, event=event, message=message,
                                               detail=detail or {}))


class Synchronizer:
    """Applies one change envelope of one entity (see the module docstring); one instance per envelope."""

    mapper: Mapper
    completes_after_import = False
    posted_new = False      # set when this attempt created the record in SSM by a POST

    def __init__(self, ctx: SyncContext, entity: str):
        self.ctx = ctx
        self.entity = entity
        self.rule = rule_for(entity)
        self.binder = Binder(ctx.store, ctx.dossier_id, entity, clock=ctx.clock)

    @property
    def resource(self) -> str:
        return self.mapper.resource

    @property
    def deps(self) -> BatchDependencies:
        return self.ctx.deps

    # --- the common path ------------------------------------------------------------------------
    def run(self, envelope: Envelope, attempt: Attempt) -> Outcome:
        link = self.binder.to_external(envelope.key)
        if self._superseded(envelope, link):
            return self._unchanged(link)
        realignment = self.ctx.realignment(envelope.run_id)
        if self._is_up_to_date(envelope, link, realignment):
            return self._unchanged(link)
        if envelope.op is Op.DELETE:
            attempt.operation = DELETE
            return self._delete(envelope, link)
        record = self._validate_data(envelope)
        skipped = self._must_skip(record, link, envelope) or self._held_for_adoption(record, link, envelope)
        if skipped is not None:
            return skipped
        outcome, link = self._import(record, link, envelope, attempt, realignment)
        return self._after_import(record, link, envelope, outcome, realignment)

    def _superseded(self, envelope: Envelope, link: Optional[Link]) -> bool:
        """A replayed change whose record another change reached since it was last tried: the
        newer one stands (an older change is never applied over it)."""
        tried = self.ctx.replayed_since.get((self.entity, envelope.key))
        return tried is not None and link is not None and link.updated_at > tried

    def _is_up_to_date(self, envelope: Envelope, link: Optional[Link], realignment: bool) -> bool:
        """The link already holds this exact content (a redelivery, a re-send, an echo)."""
        if link is None or link.hash != envelope.hash or link.deleted != (envelope.op is Op.DELETE):
            return False
        if not realignment:
            return True
        started = self.ctx.run_started_at(envelope.run_id)
        return started is not None and link.updated_at >= started

    def _unchanged(self, link: Link) -> Outcome:
        return Outcome(UNCHANGED)

    def _validate_data(self, envelope: Envelope) -> CanonicalRecord:
        """The canonical record of the envelope (pydantic's ValidationError when it is not one)."""
        return parse_record(self.entity, {**(envelope.record or {}), "key": envelope.key})

    def _must_skip(self, record, link: Optional[Link], envelope: Envelope) -> Optional[Outcome]:
        return None

    def _after_import(self, record, link: Link, envelope: Envelope, outcome: Outcome,
                      realignment: bool) -> Outcome:
        return outcome

    def _held_for_adoption(self, record, link: Optional[Link], envelope: Envelope) -> Optional[Outcome]:
        """A record SSM may already hold (an ambiguous adoption) is not created until the
        administrator says which SSM record it is, or that it is new (`shared.sync.adopter`); nor
        is a record that refers to one (its contacts, its documents), which waits with it."""
        held = self.ctx.held_for_adoption
        if not held or self._has_live_target(link):
            return None
        from shared.sync.adopter import Adopter, references

        waits_for = None
        if (self.entity, record.key) not in held:
            waits_for = next((ref for ref in references(record) if ref in held), None)
            if waits_for is None:
                return None
        Adopter(self.ctx.store, self.ctx.ssm, self.ctx.dossier_id, clock=self.ctx.clock).park(
            self.entity, record.key, envelope, waits_for=waits_for)
        return Outcome(PENDING)

    def _is_bidirectional(self, record) -> bool:
        return self.rule.three_way_merge

    # --- create or update -----------------------------------------------------------------------
    def _import(self, record, link: Optional[Link], envelope: Envelope, attempt: Attempt,
                realignment: bool) -> tuple[Outcome, Link]:
        attempt.operation = UPDATE if self._has_live_target(link) else CREATE
        values = self.mapper.values(record, self.deps)
        ext_id = self.binder.ext_id(record.key)
        if attempt.operation == CREATE:
            return self._create(record, values, link, envelope, attempt)
        values = self._keep_left_out(values, link, envelope)
        current = None
        if realignment or self._is_bidirectional(record) or self._changes_a_kept_field(values, link.base):
            current = self._fetch(link.ssm_id, ext_id)
            if current is None or current.get("deleted"):
                return self._deleted_in_ssm(record, values, link, envelope, realignment)
        return self._update(record, values, link, envelope, current=current, realignment=realignment)

    def _keep_left_out(self, values: dict, link: Link, envelope: Envelope) -> dict:
        """The values Sage holds but could not send (the envelope's warnings: an invalid e-mail, a
        binary phone) stay as SSM has them: the record syncs without them, it does not clear them."""
        if not envelope.warnings:
            return values
        fields = {warning.get("field") for warning in envelope.warnings}
        kept = {ssm: link.base[ssm] for canonical, ssm in self.mapper.direct
                if canonical in fields and ssm in link.base}
        return {**values, **kept}

    def _changes_a_kept_field(self, values: dict, base: dict) -> bool:
        """Sage changed a field whose change made in SSM survives (the owner): SSM's value decides."""
        return any(name in values and not same(values[name], base.get(name)) for name in self.mapper.ssm_keeps)

    def _has_live_target(self, link: Optional[Link]) -> bool:
        if link is None or link.ssm_id is None:
            return False
        return not link.deleted or self.rule.sage_delete is DeletePolicy.NOT_AVAILABLE_IN_SSM

    def _bind_hash(self, envelope: Envelope) -> str:
        return "" if self.completes_after_import else envelope.hash

    def _may_exist_in_ssm(self, key: str, realignment: bool) -> bool:
        """Whether an earlier attempt may have created the record in SSM without saving its link:
        a realignment or a dossier whose state was lost (links may be gone), a redelivered message
        (its answer or the link save may have been lost), or a record whose last attempt failed."""
        return realignment or self.ctx.links_lost or self.ctx.redelivered or \
            (self.entity, key) in self.ctx.open_records

    def _create(self, record, values: dict, link: Optional[Link], envelope: Envelope,
                attempt: Optional[Attempt] = None) -> tuple[Outcome, Link]:
        """Create the record in SSM, unless an earlier attempt did: then link that one and update it."""
        ext_id = self.binder.ext_id(record.key)
        realignment = self.ctx.realignment(envelope.run_id)
        if self._may_exist_in_ssm(record.key, self.ctx.may_hold_earlier(envelope.run_id, self.resource)):
            existing = self._find_existing(record, ext_id)
            if existing is not None:
                if attempt is not None:
                    attempt.operation = UPDATE
                outcome, link = self._rebind(record, values, link, envelope, existing)
                created_by_us = not (realignment or self.ctx.links_lost)
                return (Outcome(CREATED, outcome.conflicts) if created_by_us else outcome), link
        body = self.mapper.create_body(record, self.deps, values, ext_id)
        ssm_id = self.ctx.ssm.create(self.resource, body)
        self.posted_new = True
        base = {**_bookkeeping_of(link), **values, **self._ext_id_note(record.key)}
        link = self._bind_created(record.key, ssm_id, base=base, hash=self._bind_hash(envelope), link=link)
        return Outcome(CREATED), link

    def _rebind(self, record, values: dict, link: Optional[Link], envelope: Envelope,
                existing: dict) -> tuple[Outcome, Link]:
        link = self.binder.bind(record.key, int(existing["id"]), base=link.base if link else {},
                                hash="", link=link)
        log.info("%s %s '%s' found in SSM by its external id (%s) and linked again instead of being "
                 "created twice", self.ctx.dossier_id, self.entity, record.key, link.ssm_id)
        return self._update(record, values, link, envelope, current=existing, realignment=True,
                            base_known=False)

    def _bind_created(self, sage_key: str, ssm_id: int, *, base: dict, hash: str, link: Optional[Link],
                      binder: Optional[Binder] = None, resource: Optional[str] = None) -> Link:
        """Bind right after a create; a lost race removes the record we created for nothing."""
        binder = binder or self.binder
        try:
            return binder.bind(sage_key, ssm_id, base=base, hash=hash, link=link)
        except BindingRaceError as race:
            if race.orphan_id is not None:
                self.ctx.ssm.delete(resource or self.resource, race.orphan_id)
            raise

    def _update(self, record, values: dict, link: Link, envelope: Envelope, *, current: Optional[dict],
                realignment: bool, base_known: bool = True) -> tuple[Outcome, Link]:
        result = self._reconcile(values, link.base, current, realignment=realignment, base_known=base_known,
                                 both_ways=self._is_bidirectional(record))
        if self._ext_id_note(record.key) and link.base.get(EXT_ID_NOTE) != self.binder.ext_id(record.key):
            result.to_ssm["extId"] = self.binder.ext_id(record.key)     # migrate an earlier scheme's
            result.base.update(self._ext_id_note(record.key))
        if result.to_ssm:
            try:
                self.ctx.ssm.update(self.resource, link.ssm_id, result.to_ssm)
            except SsmMissingError:
                return self._deleted_in_ssm(record, values, link, envelope, realignment)
        self._journal_merge(record.key, envelope, result)
        link = self.binder.bind(record.key, link.ssm_id, base=result.base, hash=self._bind_hash(envelope),
                                link=link)
        action = UPDATED if result.to_ssm else UNCHANGED
        return Outcome(action, conflicts=len(result.conflicts)), link

    def _ext_id_note(self, key: str) -> dict:
        """The bookkeeping that says a record carries today's `extId` (only where an earlier
        release wrote another one, which the next update replaces)."""
        if not self.mapper.has_ext_id or not self.binder.legacy_ext_id(key):
            return {}
        return {EXT_ID_NOTE: self.binder.ext_id(key)}

    def _reconcile(self, values: dict, base: dict, current: Optional[dict], *, realignment: bool,
                   base_known: bool = True, both_ways: bool = False) -> MergeResult:
        """A realignment overwrites SSM with Sage's values, except on a record edited on both sides
        whose base is known: there SSM's own changes stand (and go to Sage), Sage wins conflicts."""
        names = self.mapper.fields(values, base)
        if current is None:
            return diff(values, base, names)
        now = ssm_values(current, names)
        if realignment and not (both_ways and base_known and base):
            return realign(values, now, base if base_known else None, names=names,
                           ssm_keeps=self.mapper.ssm_keeps)
        return merge(values, now, base, names=names, ssm_keeps=self.mapper.ssm_keeps,
                     sage_only=self.mapper.sage_only)

    def _journal_merge(self, key: str, envelope: Envelope, result: MergeResult) -> None:
        for conflict in result.conflicts:
            self.ctx.journal(
                "conflict", text("journal.conflict" if conflict.winner == "sage" else "journal.conflict_ssm",
                                 record=sentence(record_name(self.entity, key)), field=conflict.field),
                entity=self.entity, key=key, run_id=envelope.run_id,
                detail={"field": conflict.field, "base": conflict.base, "sage": conflict.sage,
                        "ssm": conflict.ssm, "winner": conflict.winner})
        for refused in result.refused:
            self.ctx.journal(
                "ssm-change-refused", text("journal.ssm_change_refused", record=sentence(record_name(self.entity, key)),
                                           field=refused.field, value=refused.ssm),
                entity=self.entity, key=key, run_id=envelope.run_id,
                detail={"field": refused.field, "sage": refused.sage, "ssm": refused.ssm})

    def _deleted_in_ssm(self, record, values: dict, link: Link, envelope: Envelope,
                        realignment: bool) -> tuple[Outcome, Link]:
        """The linked SSM record is gone: Sage-owned records and realignments create it again."""
        if realignment or not self._is_bidirectional(record):
            self.ctx.journal("recreated", text("journal.recreated", record=sentence(record_name(self.entity, record.key))),
                             entity=self.entity, key=record.key,
                             run_id=envelope.run_id, detail={"previous_ssm_id": link.ssm_id})
            return self._create(record, values, link, envelope)
        self.ctx.journal("ssm-deletion-ignored",
                         text("journal.ssm_deletion_ignored", record=sentence(record_name(self.entity, record.key))),
                         entity=self.entity, key=record.key, run_id=envelope.run_id,
                         detail={"ssm_id": link.ssm_id})
        link = self.binder.bind(record.key, link.ssm_id, base=link.base, hash=envelope.hash, link=link)
        return Outcome(IGNORED), link

    # --- reading SSM --------------------------------------------------------------------------
    def _find_live(self, ext_id: str, resource: Optional[str] = None) -> Optional[dict]:
        """The live SSM record carrying `ext_id` or, for a Sage record, the `extId` an earlier
        release gave it."""
        resource = resource or self.resource
        asked, record = self.deps.prefetched(resource, ext_id)
        if not asked:
            record = self.ctx.ssm.find_by_ext_id(resource, ext_id)
        if (record is None or record.get("deleted")) and resource == self.resource:
            legacy = self._legacy_of(ext_id)
            record = self.ctx.ssm.find_by_ext_id(resource, legacy) if legacy else None
        return None if record is None or record.get("deleted") else record

    def _find_existing(self, record, ext_id: str) -> Optional[dict]:
        """The live SSM record an earlier attempt may have created for `record`."""
        return self._find_live(ext_id)

    def _legacy_of(self, ext_id: str) -> Optional[str]:
        prefix = self.binder.ext_id("")
        key = ext_id[len(prefix):] if ext_id.startswith(prefix) else None
        return self.binder.legacy_ext_id(key) if key and self.binder.ext_id(key) == ext_id else None

    def _fetch(self, ssm_id: int, ext_id: str) -> Optional[dict]:
        asked, record = self.deps.prefetched(self.resource, ext_id)
        if asked and record is not None and int(record["id"]) == int(ssm_id):
            return record
        try:
            return self.ctx.ssm.get(self.resource, ssm_id)
        except SsmMissingError:
            return None

    # --- deletion -------------------------------------------------------------------------------
    def _delete(self, envelope: Envelope, link: Optional[Link]) -> Outcome:
        key = envelope.key
        ssm_id = link.ssm_id if link is not None and not link.deleted else None
        if ssm_id is None and (link is None or not link.deleted):
            found = self._find_live(self.binder.ext_id(key))
            ssm_id = int(found["id"]) if found else None
        link = self._before_unbind(key, link, envelope)
        base = dict(link.base) if link is not None else {}
        action = UNCHANGED
        if ssm_id is not None:
            action = self._delete_in_ssm(key, ssm_id, base, envelope)
        kept_id = ssm_id if ssm_id is not None else (link.ssm_id if link else None)
        self.binder.bind(key, kept_id, base=base, hash=envelope.hash, link=link, deleted=True)
        return Outcome(action)

    def _delete_in_ssm(self, key: str, ssm_id: int, base: dict, envelope: Envelope) -> str:
        policy = self.rule.sage_delete
        if policy is DeletePolicy.SOFT_DELETE_IN_SSM:
            self.ctx.ssm.delete(self.resource, ssm_id)
            return DELETED
        if policy is DeletePolicy.NOT_AVAILABLE_IN_SSM:
            self.ctx.ssm.update(self.resource, ssm_id, {"notAvailable": True})
            base["notAvailable"] = True
            return DELETED
        self.ctx.journal("deletion-not-propagated",
                         text("journal.deletion_not_propagated", record=sentence(record_name(self.entity, key))),
                         entity=self.entity, key=key,
                         run_id=envelope.run_id, detail={"ssm_id": ssm_id})
        return IGNORED

    def _before_unbind(self, key: str, link: Optional[Link], envelope: Envelope) -> Optional[Link]:
        """Clean up what hangs off a record deleted in Sage (document lines, sales totals)."""
        return link


EXT_ID_NOTE = "_ext"


def _bookkeeping_of(link: Optional[Link]) -> dict:
    if link is None:
        return {}
    return {k: v for k, v in link.base.items() if k.startswith(mapping.BOOKKEEPING_PREFIX)}


# --- one synchronizer per entity ----------------------------------------------------------------
class UserSynchronizer(Synchronizer):
    """Users: linked to the SSM user with the same e-mail; never created by the sync.

    Each active SSM user is a paid licence, so a collaborateur without an SSM user waits "to
    invite": the administrator creates the chosen ones (`ssm-connector users`, which reads what
    it needs from the link's `_collaborator` note) or invites them in SSM, and the next change of
    the collaborateur links them by e-mail.
    """

    mapper = mapping.USER

    def _import(self, record, link, envelope, attempt, realignment):
        linked = link is not None and link.ssm_id is not None and not link.deleted
        attempt.operation = UPDATE if linked else CREATE
        values = self.mapper.values(record, self.deps)
        if linked:
            link = self.binder.bind(record.key, link.ssm_id, base={**_bookkeeping_of(link), **values},
                                    hash=envelope.hash, link=link)
            return Outcome(UNCHANGED), link
        found = self.deps.ssm_user_by_email(record.email)
        if found is not None:
            link = self.binder.bind(record.key, int(found["id"]),
                                    base={**values, "_ext_id": found.get("extId")},
                                    hash=envelope.hash, link=link)
            self.ctx.incidents.resolve(self.ctx.dossier_id, self.entity, record.key, INVITE)
            return Outcome(LINKED), link
        attempt.operation = INVITE
        link = self.binder.bind(record.key, None, base={**values, COLLABORATOR_NOTE: collaborator(record)},
                                hash=envelope.hash, link=link)
        name = " ".join(p for p in (record.first_name, record.last_name) if p)
        message = invite_message(name, record.email)
        self.ctx.incidents.record(self.ctx.dossier_id, self.entity, record.key, INVITE, message)
        self.ctx.journal("invite-needed", message, entity=self.entity, key=record.key,
                         run_id=envelope.run_id, detail={"email": record.email})
        return Outcome(PENDING), link

    def _unchanged(self, link):
        waiting = link.ssm_id is None and not link.deleted
        return Outcome(PENDING if waiting else UNCHANGED)

    def _delete_in_ssm(self, key, ssm_id, base, envelope):
        self.ctx.journal("deletion-not-propagated",
                         text("journal.user_deletion_not_propagated", record=sentence(record_name(self.entity, key))),
                         entity=self.entity,
                         key=key, run_id=envelope.run_id, detail={"ssm_id": ssm_id})
        return IGNORED

    def _before_unbind(self, key, link, envelope):
        self.ctx.incidents.resolve(self.ctx.dossier_id, self.entity, key, INVITE)
        return link

    def _find_live(self, ext_id, resource=None):
        return None


COLLABORATOR_NOTE = "_collaborator"
"""What a pending user's link keeps of the collaborateur, to create the SSM user on demand."""


def collaborator(record) -> dict:
    return {"first_name": record.first_name, "last_name": record.last_name, "email": record.email,
            "phone": record.phone, "mobile": record.mobile, "job_title": record.job_title}


def invite_message(name: str, email: Optional[str]) -> str:
    return text("user.invite_needed", name=name, email=email or text("user.no_email"))


class AccountSynchronizer(Synchronizer):
    """Clients (read-only in SSM, Sage-owned) and prospects (edited on both sides)."""

    mapper = mapping.ACCOUNT

    def _is_bidirectional(self, record) -> bool:
        return AccountKind(record.kind) is AccountKind.PROSPECT


class ContactSynchronizer(Synchronizer):
    """Contacts; SSM requires both names, so a missing one is filled and a warning says so."""

    mapper = mapping.CONTACT

    def _after_import(self, record, link, envelope, outcome, realignment):
        missing = [name for name, value in (("first_name", record.first_name), ("last_name", record.last_name))
                   if not value]
        if missing:
            self.ctx.incidents.record(
                self.ctx.dossier_id, self.entity, record.key, NAME_FILLED,
                text("contact.name_filled", key=record.key, mark=mapping.MISSING_NAME,
                     missing=text(f"contact.missing.{missing[0] if len(missing) == 1 else 'both'}")))
        else:
            self.ctx.incidents.resolve(self.ctx.dossier_id, self.entity, record.key, NAME_FILLED)
        return outcome


class ProductFamilySynchronizer(Synchronizer):
    """Product families carry no `extId` in SSM: one an earlier attempt may have created is found
    by its exact description, when a single live family has it and no other family of this
    dossier is linked to it."""

    mapper = mapping.PRODUCT_FAMILY

    def _find_existing(self, record, ext_id):
        values = self.mapper.values(record, self.deps)
        name = values["descriptionFR"]
        try:
            where = f"descriptionFR={contract.where_literal(name)}"
        except ValueError:
            return None
        found = [row for row in self.ctx.ssm.list(self.resource, where=where)
                 if row.get("descriptionFR") == name and not row.get("deleted")]
        if len(found) != 1:
            return None
        owner = self.binder.to_internal(int(found[0]["id"]))
        return found[0] if owner is None or owner.sage_key == record.key else None

    def _find_live(self, ext_id, resource=None):
        return None


class ProductSynchronizer(Synchronizer):
    mapper = mapping.PRODUCT


class DeliveryAddressSynchronizer(Synchronizer):
    """Delivery addresses (Sage → `/accountAddresses`), Sage-owned: created, changed and
    deleted from Sage only. SSM's account addresses carry no `extId` and no source shows a filter
    on them: one is found again through its link, and one an earlier attempt may have created
    without its link being saved (an answer lost, a state lost) by its content: the single live
    address of the same account with the same values that no other address of the dossier is
    linked to. The addresses are read once per batch, and only when such an attempt may exist
    (a redelivery, an open incident of the address, a dossier whose links were lost)."""

    mapper = mapping.DELIVERY_ADDRESS
    _ssm_addresses: Optional[list[dict]] = None

    def _find_live(self, ext_id, resource=None):
        return None

    def _find_existing(self, record, ext_id):
        # A realignment alone is not a reason: its addresses are found by their links, and a create
        # whose answer was lost left an open incident or a redelivery. Reading every address of the
        # tenant for each batch of a first load would cost more calls than the load itself.
        if not (self.ctx.redelivered or self.ctx.links_lost or (self.entity, record.key) in self.ctx.open_records):
            return None
        values = self.mapper.values(record, self.deps)
        account = values.get("accountId")
        if account is None:
            return None
        if self._ssm_addresses is None:
            self._ssm_addresses = [row for row in self.ctx.ssm.list(self.resource) if not row.get("deleted")]
        names = [name for name in values if name != "accountId"]
        found = [row for row in self._ssm_addresses
                 if reference_id(row.get("accountId")) == account
                 and all((row.get(name) or None) == (values[name] or None) for name in names)]
        if len(found) != 1:
            return None
        owner = self.binder.to_internal(int(found[0]["id"]))
        return found[0] if owner is None or owner.sage_key == record.key else None


class QuoteSynchronizer(Synchronizer):
    """Quotes are born in SSM. A devis created from an SSM quote is Sage's from then on: its
    edits in Sage update that quote (total, lines); transformed into an order or invoice (its lines
    now carry it in `DL_PieceDE`), the quote says what it became instead of being deleted; deleted
    in Sage, it is deleted in SSM. A devis made in Sage is linked when SSM has it, else left alone."""

    mapper = mapping.SALES_ORDER

    def _import(self, record, link, envelope, attempt, realignment):
        if link is not None and link.ssm_id is not None and not link.deleted:
            changed = self._follow_devis(record, link) if link.base.get("_created") else False
            link = self.binder.bind(record.key, link.ssm_id, base=self._followed(record, link), hash=envelope.hash,
                                    link=link)
            return Outcome(UPDATED if changed else UNCHANGED), link
        # a realignment into a tenant that held none of the dossier's sales orders: SSM has no quote of it
        known_absent = realignment and self.ctx.held_none(envelope.run_id, self.resource)
        existing = None if known_absent else self._find_live(self.binder.ext_id(record.key))
        if existing is None:
            link = self.binder.bind(record.key, None, base={"_ignored": True}, hash=envelope.hash, link=link)
            return Outcome(IGNORED), link
        link = self.binder.bind(record.key, int(existing["id"]), base=link.base if link else {},
                                hash=envelope.hash, link=link)
        return Outcome(LINKED), link

    def _follow_devis(self, record: Document, link: Link) -> bool:
        """Sage's changes to the devis, onto the SSM quote it came from: total and lines."""
        sent = link.base.get("_sent") or {}
        header = {"total": to_ssm(record.total_ht)}
        changes = {k: v for k, v in header.items() if sent.get(k) != v}
        if changes:
            self.ctx.ssm.update("salesorders", link.ssm_id, changes)
        by_number = {str(dl_no): int(ssm_line) for ssm_line, dl_no in (link.base.get("_ssm_lines") or {}).items()}
        touched = bool(changes)
        for line in record.lines:
            ssm_line = by_number.get(line.line_id)
            if ssm_line is None:
                continue
            values = {"quantity": mapping.line_quantity(line, None), "price": to_ssm(mapping.line_price(line, None)),
                      "discount1": to_ssm(line.discount_rate), "total": to_ssm(line.total_ht)}
            before = (sent.get("lines") or {}).get(line.line_id)
            if before != values:
                self.ctx.ssm.update("salesordersLines", ssm_line, values)
                touched = True
        return touched

    def _followed(self, record: Document, link: Link) -> dict:
        if not link.base.get("_created"):
            return link.base
        lines = {line.line_id: {"quantity": mapping.line_quantity(line, None),
                                "price": to_ssm(mapping.line_price(line, None)),
                                "discount1": to_ssm(line.discount_rate), "total": to_ssm(line.total_ht)}
                 for line in record.lines}
        return {**link.base, "_sent": {"total": to_ssm(record.total_ht), "lines": lines}}

    def _delete_in_ssm(self, key, ssm_id, base, envelope):
        became = self.ctx.transformed_quotes.get(key.split(":", 1)[-1])
        if became is None:
            return super()._delete_in_ssm(key, ssm_id, base, envelope)
        kind, piece = became
        what = text(f"quote.became.{kind}")
        self.ctx.ssm.update("salesorders", ssm_id, {"internalComment": text("quote.comment.became", what=what,
                                                                             piece=piece)})
        base["_became"] = f"{kind}:{piece}"
        self.ctx.journal("quote-transformed", text("quote.transformed", key=key, what=what, piece=piece, ssm_id=ssm_id),
                         entity=self.entity, key=key, run_id=envelope.run_id,
                         detail={"ssm_id": ssm_id, "became": base["_became"]})
        return UPDATED


class LineContext:
    """The mapping context of the lines of one sales order."""

    def __init__(self, deps: BatchDependencies, order_id: int):
        self._deps = deps
        self.order_id = order_id
        self.dossier = deps.dossier

    def __getattr__(self, name: str) -> Any:
        return getattr(self._deps, name)


class DocumentSynchronizer(Synchronizer):
    """Orders and invoices: a read-only sales order, its lines (each linked), invoice totals.

    Lines without an article (text lines) have nothing to show in SSM and are not sent. A line
    links as `<document key>/<line id>`, so a changed document touches only its changed lines
    and deletes the removed ones. Each invoice version posts its total once to `/sales`; a
    later version first posts the reversal of the previous one, so the sum stays right.
    """

    mapper = mapping.SALES_ORDER
    line_mapper = mapping.SALES_ORDER_LINE
    completes_after_import = True

    def _import(self, record: Document, link, envelope, attempt, realignment):
        attempt.operation = UPDATE if self._has_live_target(link) else CREATE
        self._realignment = realignment
        self._run_id = envelope.run_id
        self._ssm_lines: Optional[dict[str, dict]] = None
        self._lines_before = list(link.base.get("_lines", [])) if link is not None else []
        self._pending_lines = [line for line in record.lines if line.product_key]
        for line in self._pending_lines:     # a missing article stops us before any write
            mapping.line_product(line, self.deps)
        return super()._import(record, link, envelope, attempt, realignment)

    def _after_import(self, record: Document, link: Link, envelope: Envelope, outcome: Outcome,
                      realignment: bool) -> Outcome:
        line_binder = Binder(self.ctx.store, self.ctx.dossier_id, LINE_ENTITY, clock=self.ctx.clock)
        context = LineContext(self.deps, link.ssm_id)
        kept: list[str] = []
        changed = False
        try:
            for line in self._pending_lines:
                changed |= self._sync_line(record, line, line_binder, context)
                kept.append(line.line_id)
            for line_id in self._lines_before:
                if line_id not in kept:
                    changed |= self._remove_line(record.key, line_id, line_binder)
        finally:
            done = kept + [i for i in self._lines_before if i not in kept and
                           line_binder.to_external(line_key(record.key, i)) is not None]
            link = self.binder.bind(record.key, link.ssm_id, base={**link.base, "_lines": done},
                                    hash=link.hash, link=link)
        if self.entity == Entity.INVOICE.value:
            link, posted = self._post_sales(record, link)
            changed |= posted
        self.binder.bind(record.key, link.ssm_id, base=link.base, hash=envelope.hash, link=link)
        if outcome.action == UNCHANGED and changed:
            outcome = Outcome(UPDATED, outcome.conflicts)
        return outcome

    def _sync_line(self, record: Document, line, binder: Binder, context: LineContext) -> bool:
        key = line_key(record.key, line.line_id)
        line_link = binder.to_external(key)
        line_hash = content_hash(line.model_dump(mode="json"))
        same_order = line_link is not None and line_link.base.get("_order") == context.order_id
        live = same_order and line_link.ssm_id is not None and not line_link.deleted
        if live and line_link.hash == line_hash:
            return False
        values = self.line_mapper.values(line, context)
        if not live:
            existing = self._line_in_ssm(record.key, line, values, context.order_id)
            if existing is not None:
                names = self.line_mapper.fields(values, {})
                result = realign(values, ssm_values(existing, names), None, names=names)
                self.ctx.ssm.update(self.line_mapper.resource, int(existing["id"]), result.to_ssm)
                binder.bind(key, int(existing["id"]), base={**result.base, "_order": context.order_id},
                            hash=line_hash, link=line_link)
                return True
            body = self.line_mapper.create_body(line, context, values, None)
            ssm_id = self.ctx.ssm.create(self.line_mapper.resource, body,
                                         find_existing=lambda: self._line_created_anyway(context.order_id, values))
            self._bind_created(key, ssm_id, base={**values, "_order": context.order_id}, hash=line_hash,
                               link=line_link, binder=binder, resource=self.line_mapper.resource)
            return True
        result = diff(values, line_link.base, self.line_mapper.fields(values, line_link.base))
        if result.to_ssm:
            self.ctx.ssm.update(self.line_mapper.resource, line_link.ssm_id, result.to_ssm)
        binder.bind(key, line_link.ssm_id, base=result.base, hash=line_hash, link=line_link)
        return bool(result.to_ssm)

    def _parts_may_exist_in_ssm(self, document_key: str, resource: Optional[str] = None) -> bool:
        """Whether lines or /sales totals (`resource`) of this document may be in SSM without a
        link: never for an order this very attempt created, else as for the document itself."""
        if self.posted_new:
            return False
        earlier = self._realignment if resource is None else self.ctx.may_hold_earlier(self._run_id, resource)
        return self._may_exist_in_ssm(document_key, earlier)

    def _line_in_ssm(self, document_key: str, line, values: dict, order_id: int) -> Optional[dict]:
        """The live line of this order in the line's position, when an earlier attempt may have
        sent it without saving its link. Lines have no `extId` in SSM: the order's lines are read
        back once per document and told apart by their position (`order`), which Sage's line
        number makes unique in a document; a line in that position for another product is not it."""
        if not self._parts_may_exist_in_ssm(document_key):
            return None
        if self._ssm_lines is None:
            self._ssm_lines = {}
            where = f"{ORDER_OF_LINE}={int(order_id)}"
            for row in self.ctx.ssm.list(self.line_mapper.resource, where=where):
                position = row.get("order")
                known = self._ssm_lines.get(position)
                if position is not None and not row.get("deleted") and (known is None or row["id"] < known["id"]):
                    self._ssm_lines[position] = row
        found = self._ssm_lines.get(values.get("order"))
        if found is None or reference_id(found.get("productId")) != values.get("productId"):
            return None
        self._ssm_lines.pop(values.get("order"), None)
        return found

    def _line_created_anyway(self, order_id: int, values: dict) -> Optional[int]:
        """After a POST of a line whose answer was lost: the live line SSM holds in that position
        of the order for that product that no other line of the dossier is linked to."""
        where = f"{ORDER_OF_LINE}={int(order_id)}"
        found = [row for row in self.ctx.ssm.list(self.line_mapper.resource, where=where)
                 if not row.get("deleted") and row.get("order") == values.get("order")
                 and reference_id(row.get("productId")) == values.get("productId")
                 and self._line_binder_free(int(row["id"]))]
        return min((int(row["id"]) for row in found), default=None)

    def _line_binder_free(self, ssm_id: int) -> bool:
        return Binder(self.ctx.store, self.ctx.dossier_id, LINE_ENTITY).to_internal(ssm_id) is None

    def _remove_line(self, document_key: str, line_id: str, binder: Binder) -> bool:
        line_link = binder.to_external(line_key(document_key, line_id))
        if line_link is None:
            return False
        if line_link.ssm_id is not None and not line_link.deleted:
            self.ctx.ssm.delete(self.line_mapper.resource, line_link.ssm_id)
        binder.unbind(line_link)
        return True

    def _before_unbind(self, key: str, link: Optional[Link], envelope: Envelope) -> Optional[Link]:
        if link is None:
            return link
        binder = Binder(self.ctx.store, self.ctx.dossier_id, LINE_ENTITY, clock=self.ctx.clock)
        for line_id in link.base.get("_lines", []):
            line_link = binder.to_external(line_key(key, line_id))
            if line_link is not None:
                binder.unbind(line_link)
        if self.entity == Entity.INVOICE.value:
            link = self._recover_pending_sales(key, link)
            posted = link.base.get("_sales")
            if posted and not posted.get("reversed"):
                link = self._reverse_sales(key, link, posted)
        return link

    # --- invoice totals -------------------------------------------------------------------------
    def _sales_values(self, record: Document) -> dict:
        day = record.date or self.ctx.clock().date()
        values = {"accountExtId": self.deps.ext_id(record.account_key),
                  "accountId": mapping.linked_account(record, self.deps),
                  "salesRepExtId": self.deps.owner_ext_id(record.rep_key),
                  "date": f"{day.isoformat()} 00:00:00",
                  "total": to_ssm(getattr(record, mapping.SALES_TOTAL_FIELD) or 0)}
        return {k: v for k, v in values.items() if v is not None}

    def _sales_ext_id(self, key: str, version: int, *, reversal: bool = False) -> str:
        ext_id = self.deps.ext_id(key) + ("" if version == 1 else f"~{version}")
        return ext_id + ("~reversal" if reversal else "")

    def _post_sales(self, record: Document, link: Link) -> tuple[Link, bool]:
        """Post this invoice version's total once (after reversing the previous version's)."""
        link = self._recover_pending_sales(record.key, link)
        values = self._sales_values(record)
        posted = link.base.get("_sales")
        if posted is None and self._parts_may_exist_in_ssm(record.key, mapping.SALES_RESOURCE):
            posted = self._posted_in_ssm(record.key, values)
            if posted is not None:
                link = self._settle_sales(record.key, link, posted)
        if posted and not posted.get("reversed") and posted.get("values") == values:
            return link, False
        if posted and not posted.get("reversed"):
            link = self._reverse_sales(record.key, link, posted)
        version = posted["version"] + 1 if posted else 1
        link = self._post_once(record.key, link, self._sales_ext_id(record.key, version), values,
                               then={"version": version, "values": values})
        return link, True

    def _posted_in_ssm(self, key: str, values: dict) -> Optional[dict]:
        """What SSM holds of this invoice's totals when the link has no note of it (a lost state):
        the last version posted, whether it was reversed, and its values (`values` when SSM's are
        the same), so the next version reverses exactly what SSM counts."""
        found: dict[str, dict] = {}
        last = 0
        while True:
            versions = range(last + 1, last + 1 + SALES_VERSIONS_PER_READ)
            wanted = {self._sales_ext_id(key, v, reversal=r) for v in versions for r in (False, True)}
            found.update({ext: row for ext, row in self.ctx.ssm.find_by_ext_ids(mapping.SALES_RESOURCE, wanted).items()
                          if not row.get("deleted")})
            last = versions[-1]
            if self._sales_ext_id(key, last) not in found:
                break
        posted = [v for v in range(1, last + 1) if self._sales_ext_id(key, v) in found]
        if not posted:
            return None
        version = max(posted)
        row = found[self._sales_ext_id(key, version)]
        held = {name: reference_id(row[name]) for name in ("accountExtId", "accountId", "salesRepExtId",
                                                             "date", "total") if row.get(name) is not None}
        alike = held.keys() == values.keys() and all(
            str(held[n])[:10] == str(values[n])[:10] if n == "date" else same(held[n], values[n]) for n in values)
        return {"version": version, "values": values if alike else held,
                "reversed": self._sales_ext_id(key, version, reversal=True) in found}

    def _reverse_sales(self, key: str, link: Link, posted: dict) -> Link:
        values = dict(posted["values"])
        values["total"] = to_ssm(-Decimal(str(values.get("total", 0))))
        return self._post_once(key, link, self._sales_ext_id(key, posted["version"], reversal=True), values,
                               then={**posted, "reversed": True})

    def _post_once(self, key: str, link: Link, ext_id: str, values: dict, *, then: dict) -> Link:
        """POST a sales total, noting the intent first so a crash in between never posts it twice."""
        link = self.binder.bind(key, link.ssm_id, base={**link.base, "_sales_pending": {"extId": ext_id, "then": then}},
                                hash=link.hash, link=link, deleted=link.deleted)
        self.ctx.ssm.create(mapping.SALES_RESOURCE, {**values, "extId": ext_id})
        return self._settle_sales(key, link, then)

    def _recover_pending_sales(self, key: str, link: Link) -> Link:
        """After a crash between noting and confirming a POST: SSM's records say whether it happened."""
        pending = link.base.get("_sales_pending")
        if not pending:
            return link
        if self._find_live(pending["extId"], resource=mapping.SALES_RESOURCE) is not None:
            return self._settle_sales(key, link, pending["then"])
        base = {k: v for k, v in link.base.items() if k != "_sales_pending"}
        return self.binder.bind(key, link.ssm_id, base=base, hash=link.hash, link=link, deleted=link.deleted)

    def _settle_sales(self, key: str, link: Link, posted: dict) -> Link:
        base = {k: v for k, v in link.base.items() if k != "_sales_pending"}
        base["_sales"] = posted
        return self.binder.bind(key, link.ssm_id, base=base, hash=link.hash, link=link, deleted=link.deleted)


def line_key(document_key: str, line_id: str) -> str:
    return f"{document_key}/{line_id}"


SYNCHRONIZERS: dict[str, type[Synchronizer]] = {
    Entity.USER.value: UserSynchronizer,
    Entity.ACCOUNT.value: AccountSynchronizer,
    Entity.CONTACT.value: ContactSynchronizer,
    Entity.PRODUCT_FAMILY.value: ProductFamilySynchronizer,
    Entity.PRODUCT.value: ProductSynchronizer,
    Entity.QUOTE.value: QuoteSynchronizer,
    Entity.ORDER.value: DocumentSynchronizer,
    Entity.INVOICE.value: DocumentSynchronizer,
    Entity.DELIVERY_ADDRESS.value: DeliveryAddressSynchronizer,
}
