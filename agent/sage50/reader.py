"""The Sage 50 FR reader: the dossier's accepted exports as canonical records.

Sage 50's exports are snapshots with no reliable change time (a client's « Dernière
modification » is a date only), so every run reads every record (`changed` ignores `since`) and
detection keeps what changed by the content hash of each record, and what was deleted by the key
sets (`keys`), as it does for Sage 100. Rows carry no change time (`modified` None): no watermark
is kept. A record that cannot be mapped is an invalid row naming its fields, the others go on.
"""
from __future__ import annotations

import datetime as dt
import hashlib
import json
from dataclasses import dataclass
from functools import cached_property
from typing import Any, Iterator, Optional

from pydantic import ValidationError

from agent.canonical import canonical_json, content_hash, text_hash
from agent.sage50.exchange import Exchange
from agent.sage50.layout import FileLayout, ReadRecord, RecordLayout
from shared.models import Entity, describe_validation_error, parse_record
from shared.rules import sync_order

KEY_SEPARATOR = "/"


@dataclass(frozen=True)
class SnapshotRow:
    entity: Entity
    key: str
    record_text: Optional[str]
    record_hash: str
    error: Optional[str]
    raw_hash: str
    modified: Optional[dt.datetime] = None
    marq: int = 0
    warnings: Optional[str] = None      # never set: a Sage 50 file is taken whole or refused whole

    @cached_property
    def record(self) -> Optional[dict]:
        return None if self.record_text is None else json.loads(self.record_text)


@dataclass(frozen=True)
class FileProbe:
    table: str
    row_count: int
    max_marq: int = 0
    max_modified: Optional[dt.datetime] = None


@dataclass(frozen=True)
class ExchangeIdentity:
    database_name: str
    company_name: Optional[str]
    created_at: Optional[dt.datetime]
    fingerprint: str


def fields_of(record: RecordLayout, values: dict[str, Any]) -> dict[str, Any]:
    """The canonical fields a record's typed values make, by the layout's `fields`."""
    data = {}
    for target, source in record.fields.items():
        if isinstance(source, dict):
            value = values.get(source["column"])
            data[target] = source["yes"] if value else source["no"]
        else:
            value = values.get(source)
            data[target] = value
    return data


def key_of(layout: FileLayout, values: dict[str, Any]) -> str:
    return KEY_SEPARATOR.join("" if values.get(label) is None else str(values[label]).strip()
                              for label in layout.key)


class Sage50Reader:
    """Reads one dossier's accepted exports (`Exchange`)."""

    def __init__(self, exchange: Exchange, *, dossier: str, company_name: Optional[str] = None):
        self.exchange = exchange
        self.dossier = dossier
        self.company_name = company_name
        self.report: Optional[dict] = None       # carried by the run's start marker
        self._rows: dict[Entity, list[SnapshotRow]] = {}

    def entities(self) -> tuple[Entity, ...]:
        return tuple(entity for entity in sync_order() if self._layout(entity) is not None)

    def main_table(self, entity: Entity | str) -> str:
        return self._layout(Entity(entity)).file

    def changed(self, entity: Entity | str, since: Optional[dt.datetime]) -> Iterator[SnapshotRow]:
        return iter(self.rows(Entity(entity)))

    def keys(self, entity: Entity | str) -> Iterator[str]:
        return iter([row.key for row in self.rows(Entity(entity))])

    def probes(self) -> list[FileProbe]:
        return [FileProbe(layout.file, len(self.exchange.records(layout))) for layout in self.exchange.layouts.files.values()]

    def identity(self) -> ExchangeIdentity:
        folder = str(self.exchange.folder.resolve())
        return ExchangeIdentity(self.dossier, self.company_name, None,
                                hashlib.sha256(f"sage50:{self.dossier}:{folder}".encode("utf-8")).hexdigest())

    def record(self, entity: Entity | str, key: str) -> Optional[dict]:
        """The canonical record of `key` in the snapshot (None when absent or invalid)."""
        row = next((row for row in self.rows(Entity(entity)) if row.key == key), None)
        return None if row is None else row.record

    # --- building the rows ------------------------------------------------------------------------
    def rows(self, entity: Entity) -> list[SnapshotRow]:
        if entity not in self._rows:
            layout = self._layout(entity)
            built = self._documents(layout) if layout.entity == "document" else self._plain(entity, layout)
            self._rows.update(built)
        return self._rows.get(entity, [])

    def _layout(self, entity: Entity) -> Optional[FileLayout]:
        try:
            return self.exchange.layouts.for_entity(entity.value)
        except KeyError:
            return None

    def _plain(self, entity: Entity, layout: FileLayout) -> dict[Entity, list[SnapshotRow]]:
        return {entity: [self._row(entity, key_of(layout, read.values), fields_of(layout.single, read.values), read)
                         for read in self.exchange.records(layout)]}

    def _documents(self, layout: FileLayout) -> dict[Entity, list[SnapshotRow]]:
        out: dict[Entity, list[SnapshotRow]] = {Entity(kind["entity"]): [] for kind in layout.kinds.values()}
        for header, lines in _documents_of(self.exchange.records(layout)):
            kind = layout.kinds.get(header.values.get(layout.kind_column))
            if kind is None:
                continue                          # a document kind not synchronised (delivery note…)
            entity = Entity(kind["entity"])
            data = fields_of(layout.records["E"], header.values)
            data["doc_type"] = kind["doc_type"]
            data["lines"] = [fields_of(layout.records["L"], line.values) for line in lines]
            for line in data["lines"]:
                line["line_id"] = None if line.get("line_id") is None else str(line["line_id"])
            key = f"{kind['family']}:{header.values.get('N° pièce') or data.get('number')}"
            strays = [line.line for line in lines if line.values.get("N° pièce") not in (None, data.get("number"))]
            if strays:
                out[entity].append(self._invalid(entity, key, header, f"{entity.value} '{key}': the lines of"
                                                 f" line(s) {strays} name another piece"))
                continue
            out[entity].append(self._row(entity, key, data, header, lines))
        return out

    def _row(self, entity: Entity, key: str, data: dict, read: ReadRecord,
             lines: tuple[ReadRecord, ...] | list = ()) -> SnapshotRow:
        try:
            record = parse_record(entity, {**data, "key": key}).model_dump(mode="json")
        except ValidationError as error:
            return self._invalid(entity, key, read, describe_validation_error(error, entity=entity.value, key=key),
                                 lines)
        record_text = canonical_json(record)
        return SnapshotRow(entity, key, record_text, text_hash(record_text), None, "")

    @staticmethod
    def _invalid(entity: Entity, key: str, read: ReadRecord, error: str, lines=()) -> SnapshotRow:
        raw = {"values": {k: str(v) for k, v in read.values.items()},
               "lines": [{k: str(v) for k, v in line.values.items()} for line in lines]}
        return SnapshotRow(entity, key, None, "", error, content_hash(raw))


def _documents_of(records: list[ReadRecord]):
    """(header, its lines) in file order: each « L » record belongs to the « E » before it."""
    header, lines = None, []
    for read in records:
        if read.type == "E":
            if header is not None:
                yield header, lines
            header, lines = read, []
        elif header is not None:
            lines.append(read)
    if header is not None:
        yield header, lines
