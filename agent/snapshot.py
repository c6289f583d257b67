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
    """The picture of one configured dossier, read through its ODBC connection."""
    from agent.catalog import connection_string_for
    from agent.relay import open_sage100

    return read_picture(open_sage100(connection_string_for(settings, dossier), batch_rows=settings.agent.batch_rows))
