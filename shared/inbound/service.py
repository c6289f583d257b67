"""The SSM → Sage pass: SSM's changes to prospects and contacts become commands to the agent.

`InboundService.run_pass` reads what changed in SSM (`shared.inbound.reader`), finds each
record's dossier, decides, and sends the commands, one bus message per dossier on
`sage-commands` (session = dossier). A record belongs to the dossier it is linked in (it never
moves); a new account to the dossier whose `ssm_branch` it carries, or to the only active one;
a new contact to its account's dossier. What it decides, entity by entity (`shared.rules`):
- a prospect or contact created in SSM → created in Sage (an account created as a client is
  created as a prospect and set back to Prospect in SSM, with a journal line);
- a mapped field changed in SSM only (against the link's base) → changed in Sage, where the
  writer keeps Sage's value for a field Sage changed too;
- a client's Sage-owned field changed in SSM → put back to Sage's value, journal line;
- a prospect turned into a client in SSM → type put back (conversion happens in Sage only);
- a deletion in SSM → nothing in Sage, journal line (a realignment creates it again);
- the connector's own writes, read back, are equal to the base: nothing.
A record it cannot route is an incident saying which branch to use; nothing is written. Records
of a dossier whose lifecycle state does not let SSM → Sage through (`shared.lifecycle`: inactive,
realigning, restored, first load not done), and contacts whose account Sage has not created yet,
wait: no command is produced, and the next pass reads them again. A dossier's branch is its
`ssm_branch` setting, else the one its agent's last run gave.
"""
from __future__ import annotations

import datetime as dt
import logging
from dataclasses import dataclass, field
from typing import Callable, Optional

from shared.bus.protocol import OutgoingMessage
from shared.envelope import Envelope, EnvelopeBatch, EnvelopeKind, Op, content_hash, message_id
from shared.models import Entity
from shared.lifecycle import Direction, cloud_state, lets_through
from shared.rules import Side, rule_for
from shared.ssm.lookups import ACCOUNT_TYPE_CLIENT, ACCOUNT_TYPES, BRANCHES, SALES_ORDER_STATUSES
from shared.state.records import JournalEntry, Link, utcnow
from shared.messages import text
from shared.inbound.mapping import INBOUND, InboundMapping, changed_fields
from shared.inbound.quote_statuses import QUOTE_STATUSES
from shared.inbound.pending import note_sent
from shared.inbound.quotes import QuoteDecider
from shared.sync.mapping import ORDER_OF_LINE, SALES_ORDER_LINE
from shared.sync.merge import reference_id, ssm_values
from shared.inbound.reader import ChangeReader
from shared.sync.incidents import GROUP_DOSSIER, IncidentBook
from shared.sync.runs import RunBook

log = logging.getLogger("ssm_connector.inbound")

ROUTE = "route"
ACCOUNT, CONTACT, USER = Entity.ACCOUNT.value, Entity.CONTACT.value, Entity.USER.value
OVERLAP = dt.timedelta(minutes=2)


@dataclass
class PassOutcome:
    """What one pass did: records read, commands sent per dossier, SSM fixes, records waiting."""

    read: int = 0
    commands: dict[str, int] = field(default_factory=dict)
    fixed_in_ssm: int = 0
    waiting: int = 0
    unrouted: int = 0
    sent_by_kind: dict[str, dict[str, int]] = field(default_factory=dict)   # dossier → create/update/… → n

    @property
    def sent(self) -> int:
        return sum(self.commands.values())


def new_record_key(ssm_id: int) -> str:
    """The key a record created in SSM has until Sage gives it its own."""
    return f"ssm:{ssm_id}"


class InboundService:
    """One SSM tenant's changes to its group's dossiers (see the module docstring)."""

    def __init__(self, store, ssm, bus, *, commands_queue: str = "sage-commands",
                 dossier_branches: Optional[dict[str, str]] = None, overlap: dt.timedelta = OVERLAP,
                 clock: Callable[[], dt.datetime] = utcnow):
        self.store = store
        self.ssm = ssm
        self.bus = bus
        self.commands_queue = commands_queue
        self.dossier_branches = {k: v for k, v in (dossier_branches or {}).items() if v}
        self.overlap = overlap
        self.clock = clock
        self.incidents = IncidentBook(store, clock=clock)

    @classmethod
    def from_settings(cls, settings, store, ssm, bus) -> "InboundService":
        return cls(store, ssm, bus, commands_queue=settings.bus.commands_queue,
                   dossier_branches={d.id: d.ssm_branch for d in settings.dossiers})

    # --- one pass ---------------------------------------------------------------------------------
    def run_pass(self) -> PassOutcome:
        outcome = PassOutcome()
        started_at = self.clock()
        dossiers = {d.id: d for d in self.store.list_dossiers()}
        commands: dict[str, list[Envelope]] = {}
        for entity in (ACCOUNT, CONTACT):
            inbound = INBOUND[entity]
            reader = ChangeReader(self.store, self.ssm, inbound.resource, overlap=self.overlap, clock=self.clock,
                                  keep_horizon=True)
            waiting: list[int] = []
            for record in reader.records():
                outcome.read += 1
                decision = self._decide(inbound, record, dossiers, outcome, predates=reader.predates(record))
                if decision is WAIT:
                    waiting.append(int(record["id"]))
                elif decision is not None:
                    commands.setdefault(decision.dossier, []).append(decision)
            self._send(commands, outcome)
            commands = {}
            outcome.waiting += len(waiting)
            reader.finish(waiting)
        self._pass_quotes(dossiers, outcome)
        self._record_runs(outcome, started_at)
        return outcome

    def _record_runs(self, outcome: PassOutcome, started_at: dt.datetime) -> None:
        """One SSM → Sage run per dossier the pass sent commands to (a pass with nothing for a
        dossier is no run of it: the page would fill with empty passes every five minutes)."""
        runs = RunBook(self.store, clock=self.clock)
        run_id = f"ssm-{started_at:%Y%m%dT%H%M%S%f}"
        for dossier, kinds in sorted(outcome.sent_by_kind.items()):
            counts = {"read": sum(kinds.values()), "created": kinds.get("create", 0),
                      "updated": sum(v for k, v in kinds.items() if k != "create")}
            runs.record_pass(dossier, run_id, started_at=started_at, counts=counts)

    def _pass_quotes(self, dossiers: dict, outcome: PassOutcome) -> None:
        """SSM's quotes in the making (`shared.inbound.quotes`): their headers, and the orders of
        the lines that changed (a line's edit need not touch its order)."""
        decider = QuoteDecider(self.store, self.ssm, self.incidents, clock=self.clock, command=_command)
        orders = ChangeReader(self.store, self.ssm, "salesorders", overlap=self.overlap, clock=self.clock)
        lines = ChangeReader(self.store, self.ssm, SALES_ORDER_LINE.resource, overlap=self.overlap, clock=self.clock)
        records = {int(r["id"]): r for r in orders.records()}
        for line in lines.records():
            order = reference_id(line.get(ORDER_OF_LINE))
            if order is not None and int(order) not in records:
                found = self.ssm.exists("salesorders", int(order))
                if found is not None:
                    records[int(order)] = found
        commands: dict[str, list[Envelope]] = {}
        waiting = []
        for ssm_id in sorted(records):
            record = records[ssm_id]
            outcome.read += 1
            if record.get("extId"):
                continue                        # a Sage document (order, invoice, devis)
            dossier, _ = self._linked(ACCOUNT, reference_id(record.get("accountId")) or -1, dossiers)
            if dossier is None or not _open_to_sage(dossiers[dossier]):
                if self._in_a_quote_status(record):
                    waiting.append(ssm_id)      # its account is not in Sage yet, or its dossier is off
                continue
            command = decider.decide(record, dossier, dossiers[dossier].product)
            if command is not None:
                commands.setdefault(dossier, []).append(command)
        self._send(commands, outcome)
        outcome.waiting += len(waiting)
        orders.finish(waiting)
        lines.finish([])

    def _in_a_quote_status(self, record: dict) -> bool:
        status = reference_id(record.get("statusId"))
        return status is not None and any(status == self.ssm.find_id(SALES_ORDER_STATUSES, label)
                                          for statuses in QUOTE_STATUSES.values() for label in statuses.labels)

    def _decide(self, inbound: InboundMapping, record: dict, dossiers: dict, outcome: PassOutcome, *,
                predates: bool = False):
        ssm_id = int(record["id"])
        dossier, link = self._linked(inbound.entity, ssm_id, dossiers)
        if link is None:
            if record.get("deleted") or record.get("extId") or predates:
                return None                     # gone, born elsewhere (Sage, another tool), or before the connector
            dossier = self._route_new(inbound, record, dossiers, outcome)
            if dossier in (None, WAIT):
                return dossier
            return self._create(inbound, record, dossier)
        if not _open_to_sage(dossiers[dossier]):
            return WAIT
        if record.get("deleted"):
            self._deleted_in_ssm(inbound, record, dossier, link)
            return None
        return self._changed(inbound, record, dossier, link, outcome)

    # --- routing ----------------------------------------------------------------------------------
    def _linked(self, entity: str, ssm_id: int, dossiers: dict) -> tuple[Optional[str], Optional[Link]]:
        for dossier in dossiers:
            link = self.store.get_link_by_ssm_id(dossier, entity, ssm_id)
            if link is not None and not link.deleted:
                return dossier, link
        return None, None

    def _route_new(self, inbound: InboundMapping, record: dict, dossiers: dict, outcome: PassOutcome):
        if inbound.entity == CONTACT:
            account_id = reference_id(record.get("accountId"))
            dossier, account = self._linked(ACCOUNT, account_id, dossiers) if account_id else (None, None)
            if account is None:
                return WAIT                     # its account is not in Sage (yet)
            return dossier if _open_to_sage(dossiers[dossier]) else WAIT
        branch = reference_id(record.get("branchId"))
        branches = {**{d.id: d.ssm_branch for d in dossiers.values() if d.ssm_branch}, **self.dossier_branches}
        by_branch = {d: self.ssm.lookup_id(BRANCHES, name) for d, name in branches.items() if d in dossiers}
        matching = [d for d, branch_id in by_branch.items() if branch_id == branch]
        active = [d for d in dossiers.values() if d.active]
        if len(matching) == 1:
            chosen = matching[0]
        elif not by_branch and len(dossiers) == 1:
            chosen = next(iter(dossiers))
        elif not by_branch and len(active) == 1:
            chosen = active[0].id
        else:
            outcome.unrouted += 1
            label = (record.get("branchId") or {}).get("value") if isinstance(record.get("branchId"), dict) else None
            self.incidents.record(GROUP_DOSSIER, inbound.entity, new_record_key(int(record["id"])), ROUTE,
                                  text("inbound.unrouted", name=record.get("name") or record.get("lastName"),
                                       branch=label or branch))
            return None
        self.incidents.resolve(GROUP_DOSSIER, inbound.entity, new_record_key(int(record["id"])), ROUTE)
        return chosen if _open_to_sage(dossiers[chosen]) else WAIT

    # --- decisions --------------------------------------------------------------------------------
    def _create(self, inbound: InboundMapping, record: dict, dossier: str) -> Optional[Envelope]:
        if not rule_for(inbound.entity).may_create(Side.SSM):
            return None
        ssm_id = int(record["id"])
        body: dict = {"ssm_id": ssm_id, "fields": _without_none(inbound.canonical(record)),
                      "ssm": _ssm_values(inbound, record)}
        if inbound.entity == ACCOUNT:
            op = Op.CREATE_PROSPECT
            owner = reference_id(record.get("salesRepId1"))
            body["rep_key"] = self._rep_key(dossier, owner)
            body["owner_unmatched"] = owner is not None and body["rep_key"] is None
            body["was_client"] = reference_id(record.get("typeId")) == self.ssm.lookup_id(ACCOUNT_TYPES, ACCOUNT_TYPE_CLIENT)
        else:
            op = Op.CREATE_CONTACT
            account = self.store.get_link_by_ssm_id(dossier, ACCOUNT, reference_id(record.get("accountId")))
            body["account_key"] = account.sage_key
        return _command(dossier, inbound.entity, op, new_record_key(ssm_id), body,
                        command_id=message_id(dossier, "create", inbound.entity, str(ssm_id)))

    def _changed(self, inbound: InboundMapping, record: dict, dossier: str, link: Link,
                 outcome: PassOutcome) -> Optional[Envelope]:
        changed = changed_fields(inbound, record, link.base)
        if not changed:
            return None                         # our own write read back, or nothing mapped changed
        client = inbound.entity == ACCOUNT and reference_id(link.base.get("typeId")) == \
            self.ssm.lookup_id(ACCOUNT_TYPES, ACCOUNT_TYPE_CLIENT)
        undo = [name for name in changed if name in inbound.sage_only or (client and name not in inbound.kept)]
        if undo:
            self.ssm.update(inbound.resource, int(record["id"]), {name: link.base.get(name) for name in undo})
            outcome.fixed_in_ssm += 1
            why = text("inbound.undone.client" if client else "inbound.undone.conversion")
            self._journal(dossier, "ssm-change-undone", text("inbound.undone", key=link.sage_key, fields=", ".join(undo),
                                                             why=why), inbound.entity, link.sage_key, {"fields": undo})
        to_sage = [name for name in changed if name in inbound.to_sage and name not in undo]
        if not to_sage or not rule_for(inbound.entity).may_update(Side.SSM):
            return None
        body = {"ssm_id": int(record["id"]), "key": link.sage_key,
                "fields": inbound.canonical(record, to_sage),
                "base": inbound.canonical(link.base, to_sage),
                "ssm": ssm_values(record, to_sage)}
        op = Op.UPDATE_PROSPECT if inbound.entity == ACCOUNT else Op.UPDATE_CONTACT
        return _command(dossier, inbound.entity, op, link.sage_key, body)

    def _deleted_in_ssm(self, inbound: InboundMapping, record: dict, dossier: str, link: Link) -> None:
        if link.base.get("_ssm_deleted"):
            return
        self._journal(dossier, "ssm-deletion-ignored", text("inbound.ssm_deleted", key=link.sage_key),
                      inbound.entity, link.sage_key, {"ssm_id": int(record["id"])})
        self.store.save_link(link.model_copy(update={"base": {**link.base, "_ssm_deleted": True}}))

    def _rep_key(self, dossier: str, user_id: Optional[int]) -> Optional[str]:
        if user_id is None:
            return None
        link = self.store.get_link_by_ssm_id(dossier, USER, user_id)
        return link.sage_key if link is not None else None

    def _journal(self, dossier: str, event: str, message: str, entity: str, key: str, detail: dict) -> None:
        self.store.append_journal(JournalEntry(dossier=dossier, at=self.clock(), entity=entity, key=key,
                                               event=event, message=message, detail=detail))

    def _send(self, commands: dict[str, list[Envelope]], outcome: PassOutcome) -> None:
        """One bus message per dossier on `sage-commands`, counted in the pass's outcome."""
        for dossier, envelopes in commands.items():
            batch = EnvelopeBatch(dossier=dossier, envelopes=tuple(envelopes))
            self.bus.send(self.commands_queue, [OutgoingMessage(body=batch.to_bytes(), message_id=batch.message_id,
                                                                session_id=dossier,
                                                                application_properties={"commands": len(envelopes)})])
            note_sent(self.store, envelopes, at=self.clock())
            kinds = outcome.sent_by_kind.setdefault(dossier, {})
            for envelope in envelopes:
                kind = "create" if envelope.op.value.startswith("create") else envelope.op.value
                kinds[kind] = kinds.get(kind, 0) + 1
            outcome.commands[dossier] = outcome.commands.get(dossier, 0) + len(envelopes)
            log.info("%d command(s) sent to the agent of %s", len(envelopes), dossier)


WAIT = "wait"


def _open_to_sage(dossier) -> bool:
    """Whether the dossier's lifecycle state lets SSM's changes reach its Sage now."""
    return lets_through(cloud_state(dossier), Direction.SSM_TO_SAGE)


def _command(dossier: str, entity: str, op: Op, key: str, body: dict, *, command_id: Optional[str] = None) -> Envelope:
    command_id = command_id or message_id(dossier, op.value, entity, key, content_hash(body))
    return Envelope(kind=EnvelopeKind.COMMAND, dossier=dossier, run_id=command_id, entity=entity, op=op, key=key,
                    hash=content_hash(body), record=body, correlation_id=command_id)


def _ssm_values(inbound: InboundMapping, record: dict) -> dict:
    """The SSM values of the fields a link's base keeps for this entity (every mapped one)."""
    names = [ssm for _, ssm in inbound.mapper.direct] + [ssm for ssm, _ in inbound.mapper.computed]
    return ssm_values(record, dict.fromkeys(names))


def _without_none(values: dict) -> dict:
    return {k: v for k, v in values.items() if v is not None}
