"""The realignment preview: what the next full run of a dossier would do, before it runs.

From a picture of the dossier's Sage records (read by the agent, `SageRecord`), the state store's
links and SSM's own records (read through the client's paging, nothing written), it counts per
entity what a realignment — or a first load — would do:

- in SSM: records created, updated (Sage's values differ from SSM's in a mapped field),
  unchanged, deleted (linked, gone from Sage), adopted (an SSM record made before the connector
  recognised by `shared.sync.adoption`, bound instead of duplicated), held (an ambiguous match
  waiting for the administrator: not created), and the SSM records no dossier holds, left alone;
- in Sage, through the SSM → Sage path: prospects and contacts created in SSM that Sage does not
  have yet (routed to this dossier, created after the connector's first SSM read: what SSM held
  before is only adopted, never copied into Sage), records whose SSM change goes to Sage
  (edited on both sides), and those left alone.

For accounts, contacts and products every SSM record is read, so update/unchanged is exact; the
other entities are compared by content hash with the link (what was last applied). Users are
left out: they are created only on the administrator's choice (`ssm-connector users`).
Computing a preview writes nothing anywhere.
"""
from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any, Iterable, Optional

from pydantic import BaseModel, Field, ValidationError

from shared.errors import ConnectorError
from shared.messages import text
from shared.inbound.reader import CURSOR, HORIZON
from shared.models import AccountKind, Entity, parse_record
from shared.rules import DeletePolicy, Direction, Side, rule_for, sync_order
from shared.ssm.contract import parse_datetime
from shared.ssm.lookups import BRANCHES
from shared.state.records import AdoptionState, Link
from shared.sync import adoption
from shared.sync.dependencies import BatchDependencies, TenantDefaults
from shared.sync.incidents import GROUP_DOSSIER
from shared.sync.merge import merge, realign, reference_id, ssm_values

LEFT_OUT = frozenset({Entity.USER.value, Entity.QUOTE.value})
INBOUND_HORIZONS = (HORIZON, CURSOR)
"""The SSM → Sage path's horizon, else its cursor: what SSM created before it is not copied into Sage."""


@dataclass(frozen=True)
class SageRecord:
    """One valid Sage record as the agent reads it: key, canonical record (JSON form), content hash."""

    key: str
    record: dict
    hash: str


class EntityPreview(BaseModel):
    entity: str
    label: str
    sage_records: int = 0
    create: int = 0
    update: int = 0
    unchanged: int = 0
    delete: int = 0
    adopt: int = 0
    held: int = 0
    ssm_only: Optional[int] = None          # None: SSM's own records of this entity were not read
    sage_create: int = 0
    sage_update: int = 0
    sage_unchanged: int = 0


class Candidate(BaseModel):
    ssm_id: int
    label: str


class AdoptionItem(BaseModel):
    entity: str
    sage_key: str
    label: str
    rule: str
    rule_label: str
    status: str                               # "unique" (bound on confirmation) or "ambiguous"
    decision: Optional[str] = None            # "held" or "create" once recorded
    candidates: list[Candidate] = Field(default_factory=list)


class Preview(BaseModel):
    """What a realignment of the dossier would do (see the module docstring)."""

    dossier: str
    at: dt.datetime
    first_load: bool
    entities: list[EntityPreview]
    adoptions: list[AdoptionItem] = Field(default_factory=list)

    def entity(self, name: str) -> EntityPreview:
        return next(e for e in self.entities if e.entity == name)

    def render(self) -> str:
        """The preview in French, for the administrator's terminal."""
        title = "preview.title.first_load" if self.first_load else "preview.title.realignment"
        lines = [text(title, dossier=self.dossier, at=f"{self.at:%d/%m/%Y %H:%M} UTC"), text("preview.nothing_written")]
        header = [text(f"preview.column.{c}") for c in COLUMNS]
        rows = [header] + [[e.label] + [_cell(getattr(e, c)) for c in COLUMNS[1:]] for e in self.entities]
        widths = [max(len(str(r[i])) for r in rows) for i in range(len(header))]
        lines += ["  ".join(str(cell).ljust(w) for cell, w in zip(row, widths)).rstrip() for row in rows]
        unique = [a for a in self.adoptions if a.status == adoption.UNIQUE]
        ambiguous = [a for a in self.adoptions if a.status == adoption.AMBIGUOUS]
        if unique:
            lines += ["", text("preview.adopt.title", count=len(unique))]
            lines += [text("preview.adopt.line", what=_what(a), key=a.sage_key, label=a.label, rule=a.rule_label,
                           ssm_id=a.candidates[0].ssm_id, ssm_label=a.candidates[0].label) for a in unique]
            lines.append(text("preview.adopt.how", dossier=self.dossier))
        if ambiguous:
            lines += ["", text("preview.ambiguous.title", count=len(ambiguous))]
            for a in ambiguous:
                choices = ", ".join(text("preview.candidate", ssm_id=c.ssm_id, label=c.label) for c in a.candidates)
                lines.append(text("preview.ambiguous.line", what=_what(a), key=a.sage_key, label=a.label,
                                  rule=a.rule_label, candidates=choices))
            lines.append(text("preview.ambiguous.how", dossier=self.dossier))
        return "\n".join(lines)


COLUMNS = ("entity", "sage_records", "create", "update", "unchanged", "delete", "adopt", "held", "ssm_only",
           "sage_create", "sage_update", "sage_unchanged")


def _cell(value: Any) -> str:
    return "—" if value is None else str(value)


def _what(item: AdoptionItem) -> str:
    return text(f"adoption.what.{item.entity}")


def ssm_label(entity: str, record: dict) -> str:
    """How an SSM record is named to the administrator."""
    if entity == Entity.CONTACT.value:
        name = " ".join(p for p in (record.get("firstName"), record.get("lastName")) if p)
        return f"{name} <{record['email']}>" if record.get("email") else name
    if entity == Entity.PRODUCT.value:
        return " — ".join(p for p in (record.get("model"), record.get("description")) if p)
    parts = [record.get("name"), record.get("postcode"), record.get("city")]
    return " ".join(str(p) for p in parts if p)


def sage_label(entity: str, record: dict) -> str:
    if entity == Entity.CONTACT.value:
        name = " ".join(p for p in (record.get("first_name"), record.get("last_name")) if p)
        return f"{name} <{record['email']}>" if record.get("email") else name
    if entity == Entity.ACCOUNT.value:
        return " ".join(str(p) for p in (record.get("name"), record.get("postcode"), record.get("city")) if p)
    return record.get("name") or ""


class TenantMatchContext:
    """`adoption.MatchContext` over the tenant's custom fields and the dossier's account matches."""

    def __init__(self, defaults: TenantDefaults, account_ids: dict[str, int]):
        self.defaults = defaults
        self.account_ids = account_ids

    def custom_field(self, resource: str, hints: tuple[str, ...]) -> Optional[str]:
        names = sorted(self.defaults.custom_fields(resource))
        return next((n for n in names if any(h in n.casefold() for h in hints)), None)

    def account_id(self, account_key: str) -> Optional[int]:
        return self.account_ids.get(account_key)


def _live(link: Optional[Link], entity: str) -> bool:
    if link is None or link.ssm_id is None:
        return False
    return not link.deleted or rule_for(entity).sage_delete is DeletePolicy.NOT_AVAILABLE_IN_SSM


def _is_bidirectional(entity: str, record: dict) -> bool:
    if entity == Entity.ACCOUNT.value:
        return record.get("kind") == AccountKind.PROSPECT.value
    return rule_for(entity).three_way_merge


class PreviewBuilder:
    """Builds the preview of one dossier (reads the store and SSM, writes nothing).

    Args:
        store: the state store.
        ssm: the SSM client.
        defaults: the tenant's defaults (admin user, branches, custom fields).
        dossiers: the group's dossier ids (their `extId`s are never adopted).
        dossier_branches: each dossier's `ssm_branch` (routing of records created in SSM).
    """

    def __init__(self, store, ssm, defaults: TenantDefaults, *, dossiers: Iterable[str],
                 dossier_branches: Optional[dict[str, str]] = None, clock=None):
        self.store = store
        self.ssm = ssm
        self.defaults = defaults
        self.dossiers = tuple(dossiers)
        self.dossier_branches = {k: v for k, v in (dossier_branches or {}).items() if v}
        self.clock = clock or (lambda: dt.datetime.now(dt.timezone.utc))
        self._ssm_records: dict[str, list[dict]] = {}
        self._waiting: set[tuple[str, str]] = set()

    def ssm_records(self, resource: str) -> list[dict]:
        """Every record of `resource`, all pages, read once per builder."""
        if resource not in self._ssm_records:
            self._ssm_records[resource] = list(self.ssm.list(resource))
        return self._ssm_records[resource]

    def forget(self) -> None:
        """Read SSM's records again at the next question (after writes of our own)."""
        self._ssm_records = {}

    # --- matching ------------------------------------------------------------------------------
    def matches(self, dossier: str, sage: dict[str, list[SageRecord]]) -> dict[str, list[adoption.Match]]:
        """The adoption matches of the dossier's unlinked Sage records, entity by entity."""
        found: dict[str, list[adoption.Match]] = {}
        account_ids = {link.sage_key: link.ssm_id for link in self.store.list_links(dossier, Entity.ACCOUNT.value)
                       if _live(link, Entity.ACCOUNT.value)}
        ctx = TenantMatchContext(self.defaults, account_ids)
        for entity in adoption.ADOPTABLE:
            links = {link.sage_key: link for link in self.store.list_links(dossier, entity)}
            linked_ids = {link.ssm_id for link in links.values() if link.ssm_id is not None}
            unlinked = [{**r.record, "key": r.key} for r in sage.get(entity, ()) if not _live(links.get(r.key), entity)]
            candidates = adoption.adoptable(self.ssm_records(adoption.RESOURCE_OF[entity]), linked_ids=linked_ids,
                                            dossiers=self.dossiers)
            found[entity] = adoption.match(entity, unlinked, candidates, ctx)
            if entity == Entity.ACCOUNT.value:
                account_ids.update({m.sage_key: m.ssm_id for m in found[entity] if m.ssm_id is not None})
        return found

    # --- the preview ---------------------------------------------------------------------------
    def build(self, dossier: str, sage: dict[str, list[SageRecord]]) -> Preview:
        stored = self.store.try_get_dossier(dossier)
        first_load = stored is None or not stored.first_load_done
        matches = self.matches(dossier, sage)
        decisions = {(a.entity, a.sage_key): a for a in self.store.list_adoptions(dossier)}
        deps = BatchDependencies(self.store, self.ssm, dossier, self.defaults)
        previews: list[EntityPreview] = []
        items: list[AdoptionItem] = []
        self._waiting = {(a.entity, a.sage_key) for a in decisions.values() if a.state is AdoptionState.HELD}
        self._waiting |= {(m.entity, m.sage_key) for found in matches.values() for m in found
                          if m.status == adoption.AMBIGUOUS
                          and getattr(decisions.get((m.entity, m.sage_key)), "state", None) is not AdoptionState.CREATE}
        for entity in (e.value for e in sync_order()):
            if entity in LEFT_OUT or rule_for(entity).direction is Direction.SSM_TO_SAGE:
                continue
            records = sage.get(entity, [])
            preview = EntityPreview(entity=entity, label=text(f"preview.entity.{entity}"), sage_records=len(records))
            links = {link.sage_key: link for link in self.store.list_links(dossier, entity)}
            if entity in adoption.ADOPTABLE:
                items += self._adoptable(dossier, entity, records, links, matches[entity], decisions, deps, preview)
            else:
                self._by_hash(entity, records, links, preview)
            keys = {r.key for r in records}
            preview.delete = sum(1 for key, link in links.items() if key not in keys and _live(link, entity)
                                 and not link.deleted)
            previews.append(preview)
        return Preview(dossier=dossier, at=self.clock(), first_load=first_load, entities=previews, adoptions=items)

    def _waits(self, record: SageRecord) -> bool:
        """Whether the record refers to one held for the administrator (it is held with it)."""
        refers = [(Entity.ACCOUNT.value, record.record.get("account_key"))]
        refers += [(Entity.PRODUCT.value, (line or {}).get("product_key")) for line in record.record.get("lines") or ()]
        return any(ref in self._waiting for ref in refers)

    def _by_hash(self, entity: str, records: list[SageRecord], links: dict[str, Link], preview: EntityPreview) -> None:
        for record in records:
            link = links.get(record.key)
            if not _live(link, entity) and self._waits(record):
                preview.held += 1
            elif not _live(link, entity):
                preview.create += 1
            elif link.hash == record.hash and link.hash:
                preview.unchanged += 1
            else:
                preview.update += 1
        preview.sage_unchanged = len(records)

    def _adoptable(self, dossier: str, entity: str, records: list[SageRecord], links: dict[str, Link],
                   matches: list[adoption.Match], decisions: dict, deps: BatchDependencies,
                   preview: EntityPreview) -> list[AdoptionItem]:
        resource = adoption.RESOURCE_OF[entity]
        everything = self.ssm_records(resource)
        by_id = {int(r["id"]): r for r in everything}
        by_key = {m.sage_key: m for m in matches}
        items: list[AdoptionItem] = []
        adopted: set[int] = set()
        for record in records:
            link = links.get(record.key)
            if _live(link, entity):
                current = by_id.get(link.ssm_id)
                if current is None or current.get("deleted"):
                    preview.create += 1
                    continue
                to_ssm, to_sage = self._compare(entity, record, link, current, deps)
                preview.update += bool(to_ssm)
                preview.unchanged += not to_ssm
                preview.sage_update += bool(to_sage)
                continue
            decision = decisions.get((entity, record.key))
            found = by_key.get(record.key)
            if decision is not None and decision.state is AdoptionState.CREATE:
                preview.create += 1
            elif found is None and decision is None and self._waits(record):
                preview.held += 1
            elif found is None and decision is None:
                preview.create += 1
            elif found is not None and found.status == adoption.UNIQUE and decision is None:
                preview.adopt += 1
                adopted.add(found.ssm_id)
            else:
                preview.held += 1
            if found is not None or (decision is not None and not decision.waits_for):
                items.append(self._item(entity, record, found, decision, by_id))
        linked_ids = {link.ssm_id for link in links.values() if link.ssm_id is not None}
        own = adoption.adoptable(everything, linked_ids=linked_ids, dossiers=self.dossiers)
        preview.ssm_only = len(own) - len(adopted)
        if rule_for(entity).may_create(Side.SSM):
            preview.sage_create = self._created_in_ssm(dossier, entity, [r for r in own if int(r["id"]) not in adopted])
        preview.sage_unchanged = len(records) - preview.sage_update
        return items

    def _item(self, entity: str, record: SageRecord, found: Optional[adoption.Match], decision,
              by_id: dict[int, dict]) -> AdoptionItem:
        ids = list(found.candidates) if found is not None else list(decision.candidates)
        rule = found.rule if found is not None else decision.rule
        status = found.status if found is not None and decision is None else adoption.AMBIGUOUS
        return AdoptionItem(entity=entity, sage_key=record.key, label=sage_label(entity, record.record), rule=rule,
                            rule_label=text(f"adoption.rule.{rule}") if rule else "",
                            status=status, decision=decision.state.value if decision is not None else None,
                            candidates=[Candidate(ssm_id=i, label=ssm_label(entity, by_id.get(i, {}))) for i in ids])

    def _compare(self, entity: str, record: SageRecord, link: Link, current: dict,
                 deps: BatchDependencies) -> tuple[bool, bool]:
        """(Sage's values would change SSM, SSM's change would go to Sage), as the synchronizer reconciles."""
        from shared.sync.synchronizers import SYNCHRONIZERS

        mapper = SYNCHRONIZERS[entity].mapper
        try:
            values = mapper.values(parse_record(entity, {**record.record, "key": record.key}), deps)
        except (ConnectorError, ValidationError):
            return True, False
        names = mapper.fields(values, link.base)
        now = ssm_values(current, names)
        both_ways = _is_bidirectional(entity, record.record)
        if both_ways and link.base:
            result = merge(values, now, link.base, names=names, ssm_keeps=mapper.ssm_keeps, sage_only=mapper.sage_only)
        else:
            result = realign(values, now, link.base or None, names=names, ssm_keeps=mapper.ssm_keeps)
        to_sage = both_ways and any(name not in mapper.ssm_keeps for name in result.changed_in_ssm)
        return bool(result.to_ssm), to_sage

    def _created_in_ssm(self, dossier: str, entity: str, own: list[dict]) -> int:
        """SSM's own records the SSM → Sage path will create in this dossier's Sage."""
        resource = adoption.RESOURCE_OF[entity]
        cursors = [self.store.get_cursor(GROUP_DOSSIER, name.format(resource=resource)) for name in INBOUND_HORIZONS]
        cursor = next((c for c in cursors if c is not None and c.value), None)
        since = parse_datetime(cursor.value) if cursor is not None else None
        if since is None:
            return 0
        count = 0
        for record in own:
            created = parse_datetime(record.get("dateCreated")) if record.get("dateCreated") else None
            if created is None or created <= since:
                continue
            if entity == Entity.ACCOUNT.value and self._route(record) != dossier:
                continue
            if entity == Entity.CONTACT.value:
                account = reference_id(record.get("accountId"))
                owner = self.store.get_link_by_ssm_id(dossier, Entity.ACCOUNT.value, int(account)) if account else None
                if owner is None:
                    continue
            count += 1
        return count

    def _route(self, record: dict) -> Optional[str]:
        """The dossier a new SSM account goes to, as the SSM → Sage path routes it."""
        if not self.dossier_branches:
            return self.dossiers[0] if len(self.dossiers) == 1 else None
        branch = reference_id(record.get("branchId"))
        matching = [d for d, name in self.dossier_branches.items() if self.ssm.find_id(BRANCHES, name) == branch]
        return matching[0] if len(matching) == 1 else None


def matches_of(preview: dict) -> dict[str, list[adoption.Match]]:
    """The matches a kept preview (its JSON form) showed and nobody decided yet, by entity: what
    `Adopter.confirm` binds (unique) or holds (ambiguous) without reading Sage again."""
    found: dict[str, list[adoption.Match]] = {}
    for item in preview.get("adoptions") or []:
        if item.get("decision"):
            continue
        ids = tuple(c["ssm_id"] for c in item.get("candidates", []))
        contested = ("",) if item["status"] == adoption.AMBIGUOUS and len(ids) == 1 else ()
        found.setdefault(item["entity"], []).append(
            adoption.Match(item["entity"], item["sage_key"], item["rule"], ids, contested))
    return found
