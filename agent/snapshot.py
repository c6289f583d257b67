"""A picture of a dossier's Sage records, for the realignment preview (`shared.sync.preview`).

Reads every valid record of every entity the dossier's source provides, as a full run would,
through a read-only connection, and touches neither the agent's checkpoint (watermarks, shadow,
outbox) nor the bus: looking costs nothing but the reads. Rows Sage holds but the agent cannot
map are counted apart (they would be incidents, not records).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional

from shared.sync.preview import SageRecord


@dataclass
class SagePicture:
    records: dict[str, list[SageRecord]] = field(default_factory=dict)
    invalid: dict[str, int] = field(default_factory=dict)


def read_picture(open_source, entities: Optional[set[str]] = None) -> SagePicture:
    """Every record of the source `open_source()` opens (a `relay.SourceOpener`), entity by entity."""
    picture = SagePicture()
    with open_source() as (_connection, reader):
        for entity in reader.entities():
            name = getattr(entity, "value", entity)
            if entities is not None and name not in entities:
                continue
            rows = picture.records.setdefault(name, [])
            for row in reader.changed(entity, None):
                if row.record is None:
                    picture.invalid[name] = picture.invalid.get(name, 0) + 1
                else:
                    rows.append(SageRecord(key=row.key, record=row.record, hash=row.record_hash))
    return picture


def read_dossier(settings, dossier: str) -> SagePicture:
    """The picture of one configured dossier, read through its product's source adapter."""
    from agent.sources import adapter_for

    return read_picture(adapter_for(settings, dossier).open_source(settings, dossier))


@dataclass
class EntitySend:
    """What the agent's next full read would send for one entity, against what it sent before."""

    entity: str
    records: int = 0
    new: int = 0
    changed: int = 0
    unchanged: int = 0
    deleted: int = 0
    invalid: int = 0


def compare_with_shadow(picture: SagePicture, checkpoint, dossier: str) -> list[EntitySend]:
    """Per entity: records never sent, changed since sent, unchanged, and sent ones gone from Sage.
    Reads the checkpoint only."""
    from agent.checkpoint import short_hash

    result = []
    for entity in sorted(set(picture.records) | set(picture.invalid), key=_order):
        records = picture.records.get(entity, [])
        shadow = checkpoint.shadow_lookup(dossier, entity, [r.key for r in records])
        send = EntitySend(entity, records=len(records), invalid=picture.invalid.get(entity, 0))
        for record in records:
            prior = shadow.get(record.key)
            if prior is None or not prior.sent_valid:
                send.new += 1
            elif prior.invalid or prior.hash != short_hash(record.hash):   # last sent invalid: changed since
                send.changed += 1
            else:
                send.unchanged += 1
        send.deleted = max(0, checkpoint.shadow_size(dossier, entity) - len(shadow) - send.invalid)
        result.append(send)
    return result


def _order(entity: str) -> int:
    from shared.rules import sync_order

    order = [e.value for e in sync_order()]
    return order.index(entity) if entity in order else len(order)


def render_sends(dossier: str, sends: list[EntitySend], *, realignment: bool) -> str:
    """The agent's side of a preview, in French."""
    from shared.messages import text

    lines = [text("preview.agent.title", dossier=dossier),
             text("preview.agent.realignment" if realignment else "preview.agent.incremental"),
             text("preview.nothing_written")]
    columns = ("entity", "records", "new", "changed", "unchanged", "deleted", "invalid")
    rows = [[text(f"preview.agent.column.{c}") for c in columns]]
    rows += [[text(f"preview.entity.{s.entity}")] + [str(getattr(s, c)) for c in columns[1:]] for s in sends]
    widths = [max(len(r[i]) for r in rows) for i in range(len(columns))]
    lines += ["  ".join(cell.ljust(w) for cell, w in zip(row, widths)).rstrip() for row in rows]
    lines.append(text("preview.agent.ssm_side"))
    return "\n".join(lines)
