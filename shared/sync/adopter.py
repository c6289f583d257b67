"""Binding adopted SSM records, holding back ambiguous ones, and the administrator's decisions.

On the administrator's confirmation (`ssm-connector adopt`), a unique match
(`shared.sync.adoption`) is *bound*: the SSM record gets the `extId` our own records carry and the
state store the link, whose base is the SSM record's current mapped values, so the first load
updates it — Sage's values into the mapped fields, SSM-only fields untouched — instead of
creating a second one. An ambiguous match is *held*: the Sage record is not created in SSM
(the synchronizer parks its change here and an incident says how to decide) until the
administrator binds it to one of the candidates or chooses a new record; the parked change is
then applied at once. Binding twice has one effect; an SSM record already linked to another
Sage record is never bound again.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Optional

from shared.envelope import Envelope, EnvelopeBatch
from shared.errors import RecordError
from shared.messages import text
from shared.models import Entity
from shared.state.records import Adoption, AdoptionState, JournalEntry, Link, utcnow
from shared.sync import adoption
from shared.sync.binder import Binder
from shared.sync.incidents import IncidentBook
from shared.sync.merge import ssm_values

ADOPT = "adopt"
"""The operation of the incident that holds a Sage record back for the administrator."""


class AdoptionRefused(RecordError):
    """The administrator's choice cannot be applied (said in French)."""


def base_of(entity: str, ssm_record: dict) -> dict:
    """The link's base for an adopted record: SSM's current values of the entity's mapped fields."""
    from shared.sync.synchronizers import SYNCHRONIZERS

    mapper = SYNCHRONIZERS[entity].mapper
    names = [ssm for _, ssm in mapper.direct] + [ssm for ssm, _ in mapper.computed]
    return ssm_values(ssm_record, names)


def _capital(words: str) -> str:
    return words[:1].upper() + words[1:]


def references(record) -> list[tuple[str, str]]:
    """(entity, key) of the adoptable records a Sage record refers to: its account, its lines' products."""
    found = [(Entity.ACCOUNT.value, record.account_key)] if getattr(record, "account_key", None) else []
    found += [(Entity.PRODUCT.value, line.product_key) for line in getattr(record, "lines", ())
              if getattr(line, "product_key", None)]
    return found


def held_keys(store, dossier: str) -> frozenset[tuple[str, str]]:
    """(entity, Sage key) of the dossier's records held back for the administrator."""
    return frozenset((a.entity, a.sage_key) for a in store.list_adoptions(dossier) if a.state is AdoptionState.HELD)


@dataclass(frozen=True)
class _OneAccount:
    """`adoption.MatchContext` knowing one account's SSM id (custom fields do not matter to contacts)."""

    account_key: str
    account_ssm_id: int

    def custom_field(self, resource: str, hints: tuple[str, ...]) -> Optional[str]:
        return None

    def account_id(self, account_key: str) -> Optional[int]:
        return self.account_ssm_id if account_key == self.account_key else None


@dataclass
class Decided:
    """What a decision did: the link made (bind), and the held change applied now, if one was parked."""

    link: Optional[Link] = None
    replayed: bool = False


class Adopter:
    """Adoption of one dossier's SSM records (see the module docstring)."""

    def __init__(self, store, ssm, dossier: str, *, clock: Callable = utcnow,
                 apply_batch: Optional[Callable[[EnvelopeBatch], object]] = None):
        self.store = store
        self.ssm = ssm
        self.dossier = dossier
        self.clock = clock
        self.apply_batch = apply_batch
        self.incidents = IncidentBook(store, clock=clock)

    # --- confirmation ---------------------------------------------------------------------------
    def bind(self, entity: str, sage_key: str, ssm_id: int, *, journal: bool = True) -> Link:
        """Make SSM record `ssm_id` the one of Sage record `sage_key`: our `extId`, then the link.

        Raises:
            AdoptionRefused: the SSM record is gone or belongs to another Sage record, or the Sage
                record is linked to another SSM record already.
        """
        resource = adoption.RESOURCE_OF[entity]
        binder = Binder(self.store, self.dossier, entity, clock=self.clock)
        link = binder.to_external(sage_key)
        if link is not None and link.ssm_id is not None and not link.deleted:
            if link.ssm_id == int(ssm_id):
                return link
            raise AdoptionRefused(text("adoption.refused.linked", what=text(f"adoption.what.{entity}"), key=sage_key,
                                       ssm_id=link.ssm_id))
        owner = binder.to_internal(int(ssm_id))
        if owner is not None and owner.sage_key != sage_key:
            raise AdoptionRefused(text("adoption.refused.taken", ssm_id=ssm_id, key=owner.sage_key))
        record = self.ssm.exists(resource, int(ssm_id))
        if record is None or record.get("deleted"):
            raise AdoptionRefused(text("adoption.refused.gone", ssm_id=ssm_id))
        ext_id = binder.ext_id(sage_key)
        if adoption.is_ours(record.get("extId"), self._group()) and record.get("extId") != ext_id:
            raise AdoptionRefused(text("adoption.refused.taken", ssm_id=ssm_id, key=record.get("extId")))
        if record.get("extId") != ext_id:
            self.ssm.update(resource, int(ssm_id), {"extId": ext_id})
        link = binder.bind(sage_key, int(ssm_id), base=base_of(entity, record), hash="", link=link)
        if journal:
            self._journal("adopted", text("adoption.bound", what=text(f"adoption.what.{entity}"), key=sage_key,
                                          ssm_id=ssm_id), entity, sage_key, {"ssm_id": int(ssm_id)})
        return link

    def hold(self, match: adoption.Match) -> Adoption:
        """Keep an ambiguous match's Sage record from being created until the administrator decides."""
        current = self.store.get_adoption(self.dossier, match.entity, match.sage_key)
        if current is not None:
            return current
        return self.store.save_adoption(Adoption(dossier=self.dossier, entity=match.entity, sage_key=match.sage_key,
                                                 rule=match.rule, candidates=list(match.candidates),
                                                 held_at=self.clock()))

    def confirm(self, matches: dict[str, list[adoption.Match]]) -> tuple[int, int, list[str]]:
        """Bind every unique match and hold every ambiguous one, except the Sage records the
        administrator already said are new; (bound, held, why each refused binding was refused)."""
        bound, held, refused = 0, 0, []
        decided = {(a.entity, a.sage_key): a for a in self.store.list_adoptions(self.dossier)}
        for entity in adoption.ADOPTABLE:
            for found in matches.get(entity, ()):
                decision = decided.get((entity, found.sage_key))
                if decision is not None and decision.state is AdoptionState.CREATE:
                    continue
                if found.status != adoption.UNIQUE:
                    self.hold(found)
                    held += 1
                    continue
                try:
                    self.bind(entity, found.sage_key, found.ssm_id, journal=False)
                except AdoptionRefused as exc:
                    refused.append(exc.user_message)
                    continue
                if decision is not None:
                    self.store.delete_adoption(decision)
                bound += 1
        if bound or held:
            self._journal("adoption-confirmed", text("adoption.done", bound=bound, held=held), None, None,
                          {"bound": bound, "held": held})
        return bound, held, refused

    # --- the administrator's decision on a held record ---------------------------------------
    def decide_bind(self, entity: str, sage_key: str, ssm_id: int) -> Decided:
        """Bind a held Sage record to the SSM record the administrator chose, then apply its change."""
        held = self.store.get_adoption(self.dossier, entity, sage_key)
        link = self.bind(entity, sage_key, ssm_id)
        if entity == Entity.ACCOUNT.value:
            self._adopt_waiting_contacts(sage_key, int(ssm_id))
        return Decided(link=link, replayed=self._release(held, entity, sage_key, delete=True))

    def _adopt_waiting_contacts(self, account_key: str, account_id: int) -> None:
        """The contacts that waited for this account are matched (by e-mail) with the SSM contacts
        of the account chosen, and bound when unique, before their changes are applied."""
        waiting = [a for a in self.store.list_adoptions(self.dossier)
                   if a.entity == Entity.CONTACT.value and a.waits_for == f"{Entity.ACCOUNT.value}:{account_key}"
                   and a.parked]
        if not waiting:
            return
        records = [{**(a.parked.get("record") or {}), "key": a.sage_key} for a in waiting]
        linked = {link.ssm_id for link in self.store.list_links(self.dossier, Entity.CONTACT.value) if link.ssm_id}
        candidates = adoption.adoptable(self.ssm.list(adoption.RESOURCE_OF[Entity.CONTACT.value]),
                                        linked_ids=linked, dossiers=self._group())
        for found in adoption.match(Entity.CONTACT.value, records, candidates, _OneAccount(account_key, account_id)):
            if found.status == adoption.UNIQUE:
                self.bind(Entity.CONTACT.value, found.sage_key, found.ssm_id)

    def decide_create(self, entity: str, sage_key: str) -> Decided:
        """The administrator says the held Sage record is none of SSM's: it is created (now, when its
        change was parked; else at its next sync)."""
        held = self.store.get_adoption(self.dossier, entity, sage_key)
        if held is None:
            held = self.store.save_adoption(Adoption(dossier=self.dossier, entity=entity, sage_key=sage_key,
                                                     state=AdoptionState.CREATE, held_at=self.clock(),
                                                     decided_at=self.clock()))
        elif held.state is not AdoptionState.CREATE:
            held = self.store.save_adoption(held.model_copy(update={"state": AdoptionState.CREATE,
                                                                    "decided_at": self.clock()}))
        self._journal("adoption-create", text("adoption.create_chosen", what=text(f"adoption.what.{entity}"),
                                              key=sage_key), entity, sage_key, {})
        return Decided(replayed=self._release(held, entity, sage_key, delete=False))

    def park(self, entity: str, sage_key: str, envelope: Envelope, *,
             waits_for: Optional[tuple[str, str]] = None) -> None:
        """Keep a held record's change (applied when the administrator decides) and say so; a
        record that refers to a held one (`waits_for`) is held with it."""
        change = envelope.model_dump(mode="json")
        held = self.store.get_adoption(self.dossier, entity, sage_key)
        if held is None and waits_for is None:
            return
        if held is None:
            held = self.store.save_adoption(Adoption(dossier=self.dossier, entity=entity, sage_key=sage_key,
                                                     waits_for=":".join(waits_for), parked=change,
                                                     held_at=self.clock()))
        elif held.parked != change:
            held = self.store.save_adoption(held.model_copy(update={"parked": change}))
        what = text(f"adoption.what.{entity}") if entity in adoption.RESOURCE_OF else entity
        if held.waits_for:
            other, _, other_key = held.waits_for.partition(":")
            message = text("adoption.waits", what=_capital(what), key=sage_key, other=text(f"adoption.to.{other}"),
                           other_key=other_key)
        else:
            message = text("adoption.held", what=_capital(what), key=sage_key, dossier=self.dossier, entity=entity,
                           candidates=", ".join(str(i) for i in held.candidates),
                           first=held.candidates[0] if held.candidates else 0)
        self.incidents.record(self.dossier, entity, sage_key, ADOPT, message)

    def _release(self, held: Optional[Adoption], entity: str, sage_key: str, *, delete: bool) -> bool:
        """Resolve a decided record and the records waiting for it; apply their held changes now."""
        changes = [held.parked] if held is not None and held.parked else []
        if held is not None:
            if delete:
                self.store.delete_adoption(held)
            elif held.parked:
                current = self.store.get_adoption(self.dossier, entity, sage_key)
                self.store.save_adoption(current.model_copy(update={"parked": {}}))
        self.incidents.resolve(self.dossier, entity, sage_key, ADOPT)
        for waiting in self.store.list_adoptions(self.dossier):
            if waiting.waits_for == f"{entity}:{sage_key}":
                self.store.delete_adoption(waiting)
                self.incidents.resolve(self.dossier, waiting.entity, waiting.sage_key, ADOPT)
                if waiting.parked:
                    changes.append(waiting.parked)
        if not changes or self.apply_batch is None:
            return False
        self.apply_batch(EnvelopeBatch(dossier=self.dossier,
                                       envelopes=[Envelope.model_validate(change) for change in changes]))
        return True

    def _group(self) -> list[str]:
        """The group's dossiers (their `extId`s are never adopted)."""
        return [self.dossier] + [d.id for d in self.store.list_dossiers() if d.id != self.dossier]

    def _journal(self, event: str, message: str, entity: Optional[str], key: Optional[str], detail: dict) -> None:
        self.store.append_journal(JournalEntry(dossier=self.dossier, at=self.clock(), entity=entity, key=key,
                                               event=event, message=message, detail=detail))
