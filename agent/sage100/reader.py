"""The Sage 100 reader: streams canonical records out of a company database through pyodbc.

It turns the declarative source (`spec.SAGE100_SPEC`) into portable SQL and yields one
`SourceRow` per Sage record: the canonical record (or, for a row that cannot be mapped, a
readable error), a hash of the raw values, the record's last change time and its `cbMarq`.
A record is read as one unit with its child rows (stock and category prices of a product, the
lines of a document).

Memory stays flat whatever the table size: main rows are read in windows of `cbMarq`
(`cbMarq > ? AND cbMarq <= ?`, about `batch_rows` rows each), every window fetched whole and
its cursor closed before the child rows of its records are fetched with `IN (?, ...)`. So no
query returns more than a bounded number of rows (the SQLite ODBC driver buffers whole result
sets), no result set is left open while rows are yielded, and the connection never needs
several active statements (SQL Server without MARS).
Each public read ends the connection's transaction when it finishes, so the next read sees
fresh data (SQLite keeps a snapshot until then).
"""
from __future__ import annotations

import datetime as dt
import hashlib
import itertools
import json
import logging
from contextlib import contextmanager
from dataclasses import dataclass, replace
from functools import cached_property, lru_cache, partial
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator, NamedTuple, Sequence

import pyodbc
from pydantic import ValidationError

from agent import normalize
from agent.canonical import CanonicalForm, canonical_json, content_hash, text_hash
from agent.odbc import is_sqlite, table_exists
from agent.sage100.schema import EMULATION_TABLE, MARQ, MODIFIED, column_type
from agent.sage100.spec import SAGE100_SPEC, Child, EntitySpec, Lookup, Orphans, Raw
from shared import sage_rows
from shared.errors import ConfigurationError, ConnectorError, RetryableError
from shared.messages import label, record_name, text as message_text
from shared.messages import text as message
from shared.models import Entity, describe_validation_error
from shared.rules import sync_order

log = logging.getLogger(__name__)

MAX_PARAMETERS_PER_QUERY = 500
MAX_WINDOW_FACTOR = 8      # a window spans at most 8 × batch_rows cbMarq values
KEYS_PER_ROW = 10          # keys are small: key reads use windows 10 times wider
MAX_SEEK_ROWS = 50_000     # more changed rows than this: read the table in windows instead
HISTORY_TABLE, HISTORY_COLUMN = "F_DOCENTETE", "DO_Date"   # what the history window limits
# Tables a full read (first load, realignment) reads newest first (cbMarq grows with each new
# record): a first load at SSM's rate takes hours, and the accounts and documents a sales rep
# needs first are the recent ones, a dossier's oldest accounts the likeliest to be dormant.
NEWEST_FIRST = frozenset({"F_COMPTET", "F_DOCENTETE"})
# Entities a full read reads in passes, the records a sales rep needs first first: clients, then prospects.
FIRST_LOAD_PASSES = {Entity.ACCOUNT: ("COALESCE(t.CT_Prospect, 0) = 0", "COALESCE(t.CT_Prospect, 0) <> 0")}
_NO_DATE_BELOW = {True: "1901-01-01", False: "19010101"}   # SQLite text dates / SQL Server literals
_WINDOW = "{alias}.cbMarq > ? AND {alias}.cbMarq <= ?"


@dataclass(frozen=True)
class SourceRow:
    entity: Entity
    key: str                       # canonical key (documents: spec.document_key or invoice_key; contacts: CT_No)
    record_text: str | None        # canonical JSON of parse_record(...).model_dump(mode="json"); None if invalid
    record_hash: str               # content_hash of the record ("" if invalid)
    error: str | None              # readable sentence when the row cannot be mapped (record None)
    raw_hash: str                  # invalid rows: content_hash of the normalised raw source values; valid rows: ""
    modified: dt.datetime | None   # max cbModification of the row and its child rows (naive, Sage server time)
    marq: int                      # cbMarq of the main row
    warnings: str | None = None    # valid rows synced without some values: their `shared.sage_rows` warnings (JSON)

    @cached_property
    def record(self) -> dict | None:
        """The canonical record (JSON form), None if the row is invalid."""
        return None if self.record_text is None else json.loads(self.record_text)


@dataclass(frozen=True)
class TableProbe:
    """Counters of one table; a restore shows as counts or watermarks going backwards."""

    table: str
    row_count: int | None        # None: not counted (`Sage100Reader.probes`)
    max_marq: int
    max_modified: dt.datetime | None


@dataclass(frozen=True)
class DossierIdentity:
    database_name: str
    company_name: str | None       # P_DOSSIER.D_RaisonSoc
    created_at: dt.datetime | None  # SQL Server: sys.databases.create_date; SQLite: EMU_SERVER, else P_DOSSIER.cbCreation
    fingerprint: str               # hash of what identifies this database (name and creation date)
    siret: str | None = None       # P_DOSSIER.D_Siret: which company it is, whatever its name


class Sage100Reader:
    """Reads the entities of one Sage 100 company database.

    Consume one iterator at a time: on SQL Server a connection runs one statement at a time.
    """

    def __init__(self, connection: pyodbc.Connection, *, batch_rows: int = 1000,
                 spec: dict[Entity, EntitySpec] = SAGE100_SPEC):
        if batch_rows < 1:
            raise ValueError("batch_rows must be at least 1")
        self._connection = connection
        self._batch_rows = batch_rows
        self._spec = spec
        self._base_spec = spec
        self._active_reads = 0
        self._check_storage = is_sqlite(connection)
        self._patched_rows = 0
        self._copies: dict[Entity, dict[int, str]] = {}
        self._copies_unread: set[Entity] = set()     # keys read in no span: copies looked for when asked
        self._copy_counts: dict[Entity, dict[str, int]] = {}
        self._orphans_read: dict[Entity, list[SourceRow]] = {}
        self._orphans_since: dict[Entity, dt.datetime | None] = {}

    def duplicate_copies(self, entity: Entity | str) -> dict[int, str]:
        """The rows the last `keys(entity)` found repeating an older row's key: cbMarq → that key.
        `keys` gave each of them `shared.sage_rows.row_key(cbMarq, key)` instead. After a key read
        of no span, they are looked for now (one aggregate), so a cycle reading no row pays nothing."""
        entity = Entity(entity)
        if entity in self._copies_unread:
            self._copies_unread.discard(entity)
            spec = self._entity_spec(entity)
            with self._reading():
                self._copies[entity] = self._copies_in_table(spec, _key_shape(spec, self._check_storage),
                                                             _link_values(spec.key_columns),
                                                             self._copy_counts.setdefault(entity, {}))
        return self._copies.get(entity, {})

    def entities(self) -> tuple[Entity, ...]:
        """The entities this source provides, dependencies first (`shared.rules.sync_order`)."""
        return tuple(entity for entity in sync_order() if entity in self._spec)

    def changed(self, entity: Entity | str, since: dt.datetime | None) -> Iterator[SourceRow]:
        """The records of `entity` changed at or after `since` (every record when None).

        A record counts as changed when its own `cbModification`, that of one of its child rows
        (stock, category price, document line) or that of a joined row it depends on (its sales
        rep, unit or tariff category) is at or after `since`; it is then read whole. Rows come in
        `cbMarq` order, not in `modified` order.
        """
        spec = self._entity_spec(entity)
        if since is not None and since.tzinfo is not None:
            raise ValueError("since is a naive datetime in the Sage server's local time")
        if not spec.orphans:
            return self._changed(spec, since)
        return itertools.chain(self._changed(spec, since), self._orphans_of(spec))

    def marq_span(self, entity: Entity | str, after: int | None = None) -> tuple[int, int] | None:
        """`(low, top)`: the entity's main rows (those above `after`) have `low < cbMarq <= top`;
        None when there are none."""
        with self._reading():
            return self._marq_bounds(self._entity_spec(entity).table, after)

    def changed_between(self, entity: Entity | str, low: int, top: int,
                        read_pass: int | None = None) -> Iterator[SourceRow]:
        """Every record of `entity` whose main row has `low < cbMarq <= top`, in `cbMarq` order
        (one slice of a full read: `changed(entity, None)` reads them all); with `read_pass`,
        only those of that pass of `FIRST_LOAD_PASSES`."""
        if low >= top:
            return iter(())
        spec = self._entity_spec(entity)
        if read_pass is not None:
            condition = FIRST_LOAD_PASSES[spec.entity][read_pass]
            spec = replace(spec, filter=f"{spec.filter} AND {condition}" if spec.filter else condition)
        return self._changed(spec, None, span=(low, top))

    def main_table(self, entity: Entity | str) -> str:
        """The table whose probe tells whether `entity`'s records went back in time."""
        return self._entity_spec(entity).table

    def keys(self, entity: Entity | str, spans: Sequence[tuple[int, int]] | None = None) -> Iterator[str]:
        """Every key currently in Sage for `entity` (with `spans`: of the records whose `low <
        cbMarq <= top` for one of them), streamed in `cbMarq` order, then the keys its orphan rows
        carry (`orphans`), whatever `spans` (one anti-join: an orphan is never taken for a
        deletion). With `spans`, the rows repeating an older row's key are found first by one
        aggregate over the whole table (`duplicate_copies`), so a copy is named by its cbMarq
        whichever span it is in."""
        spec = self._entity_spec(entity)
        if not spec.orphans:
            return self._keys(spec, spans)
        return itertools.chain(self._keys(spec, spans), self._orphan_keys(spec))

    def _orphan_keys(self, spec: EntitySpec) -> Iterator[str]:
        """The keys of the entity's orphan rows; the rows are kept for the next `changed` or
        `orphans` of the entity (a run reads the keys, then the changes: one anti-join serves both)."""
        rows = self._orphans_read[spec.entity] = list(self._orphan_rows(spec))
        return (row.key for row in rows)

    def orphans(self, entity: Entity | str) -> Iterator[SourceRow]:
        """The rows referring to a parent Sage does not have (`spec.Orphans`), one invalid row per
        record key they carry, its error naming them. `changed` ends with them whatever `since`:
        a contact whose account was deleted is met in the run after the deletion."""
        return self._orphans_of(self._entity_spec(entity))

    def _orphans_of(self, spec: EntitySpec) -> Iterator[SourceRow]:
        """The orphan rows found by the last `keys` of the entity (once), else read now."""
        kept = self._orphans_read.pop(spec.entity, None)
        return iter(kept) if kept is not None else self._orphan_rows(spec)

    def read_passes(self, entity: Entity | str) -> int:
        """How many passes a full read of `entity` makes (`FIRST_LOAD_PASSES`; 0: one, unfiltered)."""
        return len(FIRST_LOAD_PASSES.get(Entity(entity), ()))

    def newest_first(self, entity: Entity | str) -> bool:
        """Whether a full read of `entity` yields its records newest first (`NEWEST_FIRST`)."""
        return self._entity_spec(entity).table in NEWEST_FIRST

    def marq_sums(self, entity: Entity | str, width: int,
                  buckets: Iterable[int] | None = None) -> dict[int, tuple[int, int]]:
        """Per range of `width` cbMarq values (`cbMarq / width`), how many records of `entity` there
        are and the sum of their cbMarq: one aggregate the server computes on its cbMarq index,
        so the agent learns where records were added or deleted without reading every key. With
        `buckets`, only those ranges: one range seek per run of consecutive ones, or, with a
        width of 1 (each range one cbMarq), one lookup of the rows by cbMarq."""
        spec = self._entity_spec(entity)
        bucket = f"{spec.alias}.{MARQ} / {int(width)}"
        select = f"SELECT {bucket}, COUNT(*), SUM({spec.alias}.{MARQ}) FROM {_from(spec)}"
        if buckets is None:
            queries = [(f"{select}{_where(spec, [])} GROUP BY {bucket}", [])]
        elif width == 1:
            queries = [(f"{select}{_where(spec, [where])} GROUP BY {bucket}", parameters)
                       for where, parameters in _matching([f"{spec.alias}.{MARQ}"], {(b,) for b in buckets})]
        else:
            window = _where(spec, [_WINDOW.format(alias=spec.alias)])
            queries = [(f"{select}{window} GROUP BY {bucket}", [first * width - 1, (last + 1) * width - 1])
                       for first, last in _runs(sorted(set(buckets)))]
        with self._reading():
            return {int(row[0]): (int(row[1]), int(row[2]))
                    for sql, parameters in queries for row in self._fetch_all(sql, parameters)}

    def touched_rows(self, entity: Entity | str, since: dt.datetime, above: int) -> list[int] | None:
        """The cbMarq of the main rows where a record of `entity` may have come or gone since
        `since` without a deletion, sorted: the main rows changed at or after `since`, whether
        they still belong to the entity or not (no filter: a client turned supplier leaves it),
        the main rows whose inner-joined row changed (an account turned prospect takes its
        contacts along), and the main rows added above cbMarq `above`. Each term one seek on a
        `cbModification` or cbMarq index; None when they are so many that comparing every range
        is cheaper."""
        spec = self._entity_spec(entity)
        with self._reading():
            found = self._rows_changed_with(spec, since, [lookup for lookup in spec.lookups if lookup.inner])
            if found is None:
                return None
            for (marq,) in self._fetch_all(f"SELECT {MARQ} FROM {spec.table} WHERE {MARQ} > ?", [int(above)]):
                found.add(int(marq))
                if len(found) > MAX_SEEK_ROWS:
                    return None
        return sorted(found)

    def rows_above(self, table: str, marq: int) -> int:
        """How many rows of `table` have a cbMarq above `marq` (one range seek): with the table's
        row count, whether rows were deleted since the count of a run whose highest cbMarq was
        `marq` (cbMarq is an identity: a new row is always above it)."""
        with self._reading():
            return int(self._fetch_one(f"SELECT COUNT(*) FROM {table} WHERE {MARQ} > ?", [int(marq)])[0])

    def deletion_tables(self, entity: Entity | str) -> tuple[str, ...]:
        """The tables a deleted row of which can take records out of `entity` or orphan its rows:
        its main table, the tables it inner-joins, the parents of its orphan rows."""
        spec = self._entity_spec(entity)
        return tuple(dict.fromkeys([*_membership_tables(spec), *(orphans.parent for orphans in spec.orphans)]))

    def change_tables(self, entity: Entity | str) -> tuple[str, ...]:
        """The tables a changed row of which can bring a record in or out of `entity` or make an
        orphan row: its main table, the tables it inner-joins, the tables of its orphan rows."""
        spec = self._entity_spec(entity)
        return tuple(dict.fromkeys([*_membership_tables(spec), *(orphans.table for orphans in spec.orphans)]))

    def orphan_parents(self, entity: Entity | str) -> tuple[str, ...]:
        """The tables holding the parents of `entity`'s orphan rows (`spec.Orphans`)."""
        return tuple(dict.fromkeys(orphans.parent for orphans in self._entity_spec(entity).orphans))

    def keys_at(self, entity: Entity | str, marqs: Sequence[int]) -> set[str] | None:
        """The keys of `entity`'s records whose main row has one of `marqs` (a row whose key
        cannot be read is left out); None when the driver cannot decode them."""
        spec = self._entity_spec(entity)
        checked = self._check_storage
        shape, key_values = _key_shape(spec, checked), _link_values(spec.key_columns)
        keys: set[str] = set()
        with self._reading():
            for where, parameters in _matching([f"{spec.alias}.{MARQ}"], {(marq,) for marq in marqs}):
                try:
                    rows = self._fetch_rows(f"SELECT {shape.sql()} FROM {_from(spec)}{_where(spec, [where])}", parameters)
                except UnicodeDecodeError:
                    return None
                for row in rows:
                    raw = shape.raw(row)
                    values = key_values(raw)
                    if not _key_unreadable(values, row, checked):
                        keys.add(spec.key(raw))
        return keys

    def limit_orphans(self, entity: Entity | str, since: dt.datetime | None) -> None:
        """From now on, look for `entity`'s orphan rows among the rows changed at or after `since`
        only (None: among all): the agent knows no orphan of it, and no parent row was deleted."""
        self._orphans_since[Entity(entity)] = since

    def limit_history(self, start: dt.date | None) -> None:
        """From now on, read only the documents (quotes, orders, invoices) dated (`DO_Date`) on or
        after `start`; None: every document."""
        for entity, base in self._base_spec.items():
            if base.table != HISTORY_TABLE:
                continue
            if start is None:
                self._spec = {**self._spec, entity: base}
                continue
            literal = start.isoformat() if is_sqlite(self._connection) else start.strftime("%Y%m%d")
            column = f"{base.alias}.{HISTORY_COLUMN}"          # Sage's "no date" (1753, 1900) is kept
            condition = f"({column} >= '{literal}' OR {column} IS NULL OR {column} < '{_NO_DATE_BELOW[is_sqlite(self._connection)]}')"
            self._spec = {**self._spec, entity: replace(
                base, filter=f"{base.filter} AND {condition}" if base.filter else condition)}

    def fiscal_year_start(self, today: dt.date) -> dt.date | None:
        """The start of the fiscal year holding `today`, from `P_DOSSIER.D_DebutExo01` (the day and
        month fiscal years start on); None when the dossier does not say."""
        with self._reading():
            if not self._has_rows("P_DOSSIER"):
                return None
            value = normalize.datetime_(self._fetch_one("SELECT D_DebutExo01 FROM P_DOSSIER ORDER BY cbMarq")[0])
        if value is None:
            return None
        day = min(value.day, 28) if value.month == 2 else value.day
        start = dt.date(today.year, value.month, day)
        return start if start <= today else dt.date(today.year - 1, value.month, day)

    def probes(self) -> list[TableProbe]:
        """Highest `cbMarq` and latest `cbModification` of every table read (each an index seek),
        and the row count of the tables whose deletions matter (`deletion_tables`; a count
        reads a whole index, so the others are not counted)."""
        tables = dict.fromkeys(name for spec in self._spec.values() for name in spec.tables())
        counted = {name for entity in self._spec for name in self.deletion_tables(entity)}
        probes = []
        with self._reading():
            for name in (*tables, *(name for name in counted if name not in tables)):
                # one scalar subquery each: asked together in one SELECT, an engine may scan for all three
                count = f"(SELECT COUNT(*) FROM {name})" if name in counted else "NULL"
                row = self._fetch_one(f"SELECT {count}, (SELECT MAX({MARQ}) FROM {name}),"
                                      f" (SELECT MAX({MODIFIED}) FROM {name})")
                try:
                    latest = normalize.datetime_(row[2])
                except ValueError:   # a change time that is not a date (SQLite keeps any text)
                    latest = self._latest_readable_change(name)
                probes.append(TableProbe(name, None if row[0] is None else int(row[0]), int(row[1] or 0), latest))
        return probes

    def _latest_readable_change(self, table: str) -> dt.datetime | None:
        """The latest `cbModification` of `table` that is a date (the driver reads the others as NULL)."""
        for (value,) in self._fetch_all(f"SELECT {MODIFIED} FROM {table} ORDER BY {MODIFIED} DESC", []):
            try:
                moment = normalize.datetime_(value)
            except ValueError:
                continue
            if moment is not None:
                return moment
        return None

    def identity(self) -> DossierIdentity:
        """What identifies this company database; a new creation date means a restore."""
        with self._reading():
            company = siret = None
            if self._has_rows("P_DOSSIER"):
                row = self._fetch_one("SELECT D_RaisonSoc, D_Siret FROM P_DOSSIER ORDER BY cbMarq")
                company, siret = normalize.text(row[0]), normalize.text(row[1])
            if is_sqlite(self._connection):
                name, created = self._sqlite_identity()
            else:
                name, created = self._sqlserver_identity()
        stamp = created.isoformat() if created else ""
        fingerprint = hashlib.sha256(f"{name}\x1f{stamp}".encode("utf-8")).hexdigest()
        return DossierIdentity(database_name=name, company_name=company, created_at=created,
                               fingerprint=fingerprint, siret=siret)

    # --- reading ----------------------------------------------------------------------------

    def _changed(self, spec: EntitySpec, since: dt.datetime | None,
                 span: tuple[int, int] | None = None) -> Iterator[SourceRow]:
        if since is not None and span is None:
            marqs = self._changed_marqs(spec, since)
            if marqs is not None:
                yield from self._read_marqs(spec, marqs)
                return
        yield from self._read_windows(spec, since, span)

    def _read_windows(self, spec: EntitySpec, since: dt.datetime | None,
                      span: tuple[int, int] | None) -> Iterator[SourceRow]:
        passes = FIRST_LOAD_PASSES.get(spec.entity) if since is None and span is None else None
        if passes:
            for condition in passes:
                yield from self._read_windows(replace(spec, filter=f"{spec.filter} AND {condition}"
                                                      if spec.filter else condition), since, (None, None))
            return
        if span == (None, None):
            span = None
        checked = self._check_storage
        sql, since_parameters = _main_query(spec, since, checked)
        shape = _main_shape(spec, checked)
        form = CanonicalForm(spec.entity)
        by_column = partial(self._row_by_column, shape, _from(spec), spec.alias)
        if since is None and span is None and spec.table in NEWEST_FIRST:
            windows = self._windows_newest_first(spec.table, sql, self._batch_rows, by_column)
        else:
            windows = self._windows(spec.table, sql, since_parameters, self._batch_rows, span, by_column)
        with self._reading():
            for window in windows:
                for start in range(0, len(window), self._batch_rows):
                    yield from self._records(spec, form, window[start:start + self._batch_rows], shape)

    def _records(self, spec: EntitySpec, form: CanonicalForm, rows: list, shape: _Shape) -> Iterator[SourceRow]:
        """The records of main `rows`: their values (read again where the row was read value by
        value or a value is not stored as its column's type), their children."""
        mains = [shape.values(row) for row in rows]
        if self._check_storage or self._patched_rows:
            mains = self._read_again(spec, rows, mains)
        children = {child.name: self._child_rows(child, mains) for child in spec.children}
        for values in mains:
            yield self._source_row(spec, form, values, children)

    def _changed_marqs(self, spec: EntitySpec, since: dt.datetime) -> list[int] | None:
        """The cbMarq of every main row changed at or after `since` (itself, a refreshing joined row,
        a child row or a child's refreshing joined row), each term one query the server answers
        with a seek on its `cbModification` index; None when they are so many that reading the
        table in windows is cheaper (the caller does)."""
        with self._reading():
            found = self._rows_changed_with(spec, since, [lookup for lookup in spec.lookups if lookup.refreshes])
            if found is None:
                return None
            for child in spec.children:
                links = self._changed_links(child.table, [mine for mine, _ in child.link], since,
                                            alias=child.alias, condition=child.filter)
                for lookup in child.lookups:
                    if lookup.refreshes:
                        keys = self._changed_links(lookup.table, [mine for mine, _ in lookup.on], since)
                        links |= self._links_of(child, [theirs for _, theirs in lookup.on], keys)
                    if len(links) > MAX_SEEK_ROWS:
                        return None
                found.update(self._marqs_of(spec.table, [theirs for _, theirs in child.link], links))
                if len(found) > MAX_SEEK_ROWS:
                    return None
        return sorted(found)

    def _rows_changed_with(self, spec: EntitySpec, since: dt.datetime, lookups: Sequence[Lookup]) -> set[int] | None:
        """The cbMarq of the main rows changed at or after `since` and of those whose row joined by
        one of `lookups` changed since; None past `MAX_SEEK_ROWS`. Each query names one table and
        compares only its cbModification: an index seek whatever the engine's statistics (a filter
        beside it may make an engine scan)."""
        own = self._changed_rows(spec.table, since)
        if own is None:
            return None
        found = set(own)
        for lookup in lookups:
            found.update(self._owners(spec.table, spec.alias, lookup.on, lookup.table, since))
            if len(found) > MAX_SEEK_ROWS:
                return None
        return found

    def _changed_links(self, table: str, columns: list[str], since: dt.datetime, *, alias: str = "",
                       condition: str = "") -> set[tuple]:
        """The distinct values of `columns` among the rows of `table` (`alias`) changed at or after
        `since` for which `condition` holds."""
        name = f"{alias}." if alias else ""
        where = f"{name}{MODIFIED} >= ?" + (f" AND {condition}" if condition else "")
        sql = f"SELECT {', '.join(name + column for column in columns)} FROM {table} {alias} WHERE {where}"
        return {tuple(row) for row in self._fetch_all(sql, [since])}    # no DISTINCT: an engine may scan for it

    def _owners(self, table: str, alias: str, on: tuple[tuple[str, str], ...], lookup_table: str,
                since: dt.datetime) -> set[int]:
        """cbMarq of the rows of `table` joined to a row of `lookup_table` changed since `since`."""
        keys = self._changed_links(lookup_table, [mine for mine, _ in on], since)
        return self._marqs_of(table, [theirs for _, theirs in on], keys)

    def _links_of(self, child: Child, columns: list[str], values: set[tuple]) -> set[tuple]:
        """The links to their parent of the rows of `child` (its filter holding) whose `columns`
        hold one of `values`."""
        found: set[tuple] = set()
        wanted = ", ".join(f"{child.alias}.{mine}" for mine, _ in child.link)
        for where, parameters in _matching([f"{child.alias}.{column}" for column in columns], values):
            condition = f"({where})" + (f" AND {child.filter}" if child.filter else "")
            found.update(tuple(row) for row in self._fetch_all(
                f"SELECT {wanted} FROM {child.table} {child.alias} WHERE {condition}", parameters))
        return found

    def _marqs_of(self, table: str, columns: list[str], values: set[tuple]) -> set[int]:
        return {int(row[0]) for where, parameters in _matching(columns, values)
                for row in self._fetch_all(f"SELECT {MARQ} FROM {table} WHERE {where}", parameters)}

    def _read_marqs(self, spec: EntitySpec, marqs: list[int]) -> Iterator[SourceRow]:
        """The records whose main row has one of `marqs` (sorted), in cbMarq order."""
        alias = spec.alias
        checked = self._check_storage
        shape = _main_shape(spec, checked)
        form = CanonicalForm(spec.entity)
        step = min(self._batch_rows, MAX_PARAMETERS_PER_QUERY)
        by_column = partial(self._row_by_column, shape, _from(spec), alias)
        one_sql, _ = _main_query(spec, None, checked)
        with self._reading():
            for start in range(0, len(marqs), step):
                part = marqs[start:start + step]
                condition = f"{alias}.{MARQ} IN ({', '.join('?' * len(part))})"
                sql = f"SELECT {shape.sql()} FROM {_from(spec)}{_where(spec, [condition])} ORDER BY {alias}.{MARQ}"
                try:
                    rows = self._fetch_rows(sql, part)
                except UnicodeDecodeError:      # one row at a time, a row that cannot be decoded value by value
                    rows = [row for marq in part for row in self._fetch_window(one_sql, marq - 1, marq, [], by_column)]
                yield from self._records(spec, form, rows, shape)

    def _keys(self, spec: EntitySpec, spans: Sequence[tuple[int, int]] | None = None) -> Iterator[str]:
        """Every key in cbMarq order (with `spans`: those of the rows within them). A row whose key
        cannot be read, or that repeats the key of an older row (a lower cbMarq), is named by its
        cbMarq (`shared.sage_rows.row_key`)."""
        alias = spec.alias
        checked = self._check_storage
        key_shape = _key_shape(spec, checked)
        where = _where(spec, [_WINDOW.format(alias=alias)])
        sql = f"SELECT {key_shape.sql()} FROM {_from(spec)}{where} ORDER BY {alias}.{MARQ}"
        by_column = partial(self._row_by_column, key_shape, _from(spec), alias)
        seen: set[str] = set()
        copies: dict[int, str] = {}
        counts: dict[str, int] = {}
        key_values = _link_values(spec.key_columns)
        self._copies[spec.entity], self._copy_counts[spec.entity] = copies, counts
        self._copies_unread.discard(spec.entity)
        if spans is not None and not any(span[0] < span[1] for span in spans):
            self._copies_unread.add(spec.entity)
            return
        with self._reading():
            if spans is not None:
                copies.update(self._copies_in_table(spec, key_shape, key_values, counts))
            for span in ([None] if spans is None else spans):
                if span is not None and span[0] >= span[1]:
                    continue
                for window in self._windows(spec.table, sql, [], self._batch_rows * KEYS_PER_ROW, span, by_column):
                    for row in window:
                        raw = key_shape.raw(row)
                        values = key_values(raw)
                        if _key_unreadable(values, row, checked):
                            yield sage_rows.row_key(int(row[0]))
                            continue
                        key = spec.key(raw)
                        if spans is not None:
                            yield sage_rows.row_key(int(row[0]), key) if int(row[0]) in copies else key
                            continue
                        if key in seen:
                            copies[int(row[0])] = key
                            counts[key] = counts.get(key, 1) + 1
                            yield sage_rows.row_key(int(row[0]), key)
                            continue
                        seen.add(key)
                        yield key

    def _copies_in_table(self, spec: EntitySpec, key_shape: "_Shape", key_values: Callable[[Raw], tuple],
                         counts: dict[str, int]) -> dict[int, str]:
        """The rows of the whole table repeating an older row's key (cbMarq → key), from one
        aggregate (the keys held by more than one row) and the rows holding those keys; `counts`
        gets how many rows hold each."""
        alias = spec.alias
        # keys compared loosely here (case, spaces around): the rows found are then keyed as `keys` does
        folded = [f"UPPER(LTRIM(RTRIM({column})))" for column in spec.key_columns]
        columns = ", ".join(f"{expression} AS k{i}" for i, expression in enumerate(folded))
        joined = " AND ".join(f"twice_keys.k{i} = UPPER(LTRIM(RTRIM({alias}.{column})))"
                              for i, column in enumerate(spec.key_columns))
        twice = (f"SELECT {columns} FROM {spec.table} GROUP BY {', '.join(folded)} HAVING COUNT(*) > 1")
        where = _where(spec, [_WINDOW.format(alias=alias)])
        sql = (f"SELECT {key_shape.sql()} FROM {_from(spec)} JOIN ({twice}) twice_keys ON {joined}{where}"
               f" ORDER BY {alias}.{MARQ}")
        seen: set[str] = set()
        copies: dict[int, str] = {}
        by_column = partial(self._row_by_column, key_shape, _from(spec), alias)
        for window in self._windows(spec.table, sql, [], self._batch_rows * KEYS_PER_ROW, by_column=by_column):
            for row in window:
                raw = key_shape.raw(row)
                values = key_values(raw)
                if _key_unreadable(values, row, checked=False):
                    continue
                key = spec.key(raw)
                if key in seen:
                    copies[int(row[0])] = key
                    counts[key] = counts.get(key, 1) + 1
                else:
                    seen.add(key)
        return copies

    def table_of(self, entity: Entity | str) -> str:
        """The Sage table an entity's rows come from (named in incidents)."""
        return self._spec[Entity(entity)].table

    def copies_of(self, entity: Entity | str, key: str) -> int:
        """How many rows the last `keys(entity)` found with `key`, when more than one (else 0)."""
        self.duplicate_copies(entity)
        return self._copy_counts.get(Entity(entity), {}).get(key, 0)

    def _windows(self, table: str, sql: str, parameters: Sequence[Any], target: int,
                 span: tuple[int, int] | None = None,
                 by_column: Callable[[int], tuple] | None = None) -> Iterator[list]:
        """The rows of `sql` over consecutive `cbMarq` windows (`cbMarq > ? AND cbMarq <= ?`).

        Each window's result is fetched whole and its cursor closed before the rows are used, so
        no statement stays open while rows are yielded, and no query returns more than a bounded
        number of rows (some drivers, SQLite's among them, buffer a whole result set). Window
        widths adapt to aim at `target` rows each, between `target` and `target *
        MAX_WINDOW_FACTOR` cbMarq values, and an empty window jumps to the table's next cbMarq
        (identity gaps). The read goes on until the table's highest cbMarq, checked again at the
        end, so rows inserted during the read are read too. With `span` (`low, top`), only the
        rows with `low < cbMarq <= top` are read, and the end is not checked again. A window the
        driver cannot decode (a lone UTF-16 surrogate) is split until the row at fault is alone;
        `by_column(cbMarq)` then reads that row value by value.
        """
        if span is None:
            span = self._marq_bounds(table)
            if span is None:
                return
        low, top = span
        width = target
        while True:
            while low < top:
                high = min(low + width, top)
                rows = self._fetch_window(sql, low, high, parameters, by_column)
                if rows:
                    yield rows
                    low = high
                else:
                    following = self._fetch_one(f"SELECT MIN({MARQ}) FROM {table} WHERE {MARQ} > ?", [high])[0]
                    low = top if following is None else min(max(high, int(following) - 1), top)
                if len(rows) < target // 2:
                    width = min(width * 2, target * MAX_WINDOW_FACTOR)
                elif len(rows) > target:
                    width = max(target, width // 2)
            if span is not None:
                return
            newest = self._fetch_one(f"SELECT MAX({MARQ}) FROM {table}")[0]
            if newest is None or int(newest) <= top:
                return
            top = int(newest)

    def _windows_newest_first(self, table: str, sql: str, target: int,
                              by_column: Callable[[int], tuple] | None = None) -> Iterator[list]:
        """As `_windows` over the whole table, from the highest cbMarq down (each window's rows
        newest first too), then the rows added during the read, oldest first."""
        span = self._marq_bounds(table)
        if span is None:
            return
        bottom, top = span
        high, width = top, target
        while high > bottom:
            low = max(high - width, bottom)
            rows = self._fetch_window(sql, low, high, [], by_column)
            if rows:
                yield rows[::-1]
                high = low
            else:
                previous = self._fetch_one(f"SELECT MAX({MARQ}) FROM {table} WHERE {MARQ} <= ?", [low])[0]
                high = bottom if previous is None else max(int(previous), bottom)
            if len(rows) < target // 2:
                width = min(width * 2, target * MAX_WINDOW_FACTOR)
            elif len(rows) > target:
                width = max(target, width // 2)
        newest = self._fetch_one(f"SELECT MAX({MARQ}) FROM {table}")[0]
        if newest is not None and int(newest) > top:
            yield from self._windows(table, sql, [], target, (top, int(newest)), by_column)

    def _marq_bounds(self, table: str, after: int | None = None) -> tuple[int, int] | None:
        """`(MIN(cbMarq) - 1, MAX(cbMarq))` of `table` (of its rows above `after`), None if none.
        Two queries: each is one index seek, while one query asking both may scan the table."""
        first = self._fetch_one(f"SELECT MIN({MARQ}) FROM {table}" + ("" if after is None else f" WHERE {MARQ} > ?"),
                                [] if after is None else [after])
        if first is None or first[0] is None:
            return None
        return int(first[0]) - 1, int(self._fetch_one(f"SELECT MAX({MARQ}) FROM {table}")[0])

    def _fetch_window(self, sql: str, low: int, high: int, parameters: Sequence[Any],
                      by_column: Callable[[int], tuple] | None) -> list:
        """The rows of one cbMarq window; a window that cannot be decoded is read in halves, and
        a single row that cannot be decoded is read value by value (`by_column`)."""
        try:
            return self._fetch_rows(sql, [low, high, *parameters])
        except UnicodeDecodeError:
            if by_column is None:
                raise
        if high - low <= 1:
            return [by_column(high)]
        middle = (low + high) // 2
        return (self._fetch_window(sql, low, middle, parameters, by_column)
                + self._fetch_window(sql, middle, high, parameters, by_column))

    def _row_by_column(self, shape: _Shape, source: str, alias: str, marq: int) -> _PatchedRow:
        """One row read a value at a time: a value the driver cannot decode is None, and a problem."""
        values, problems = [], []
        for expression, name, _ in shape.selected:
            try:
                row = self._fetch_one(f"SELECT {expression} FROM {source} WHERE {alias}.{MARQ} = ?", [marq])
                values.append(row[0] if row is not None else None)
            except UnicodeDecodeError:
                values.append(None)
                problems.append((name, sage_rows.UNREADABLE, None))
        values[0] = marq
        patched = _PatchedRow(values)
        patched.problems = tuple(problems)
        self._patched_rows += 1
        log.warning("%s cbMarq %s could not be read whole; read value by value: %s", source.split()[0], marq,
                    ", ".join(name for name, _, _ in problems))
        return patched

    def _read_again(self, spec: EntitySpec, rows: list, mains: list[_Values]) -> list[_Values]:
        """Main rows with their problems: values read value by value (`_PatchedRow`), and values
        the storage check says are not stored as their column's type, read again as text."""
        out = []
        for row, values in zip(rows, mains):
            if type(row) is _PatchedRow:
                values = values._replace(problems=values.problems + row.problems)
            if values.suspect:
                values = self._stored_values(spec, values)
            out.append(values)
        return out

    def _stored_values(self, spec: EntitySpec, values: _Values) -> _Values:
        """A suspect main row with its own values as stored (`_stored`)."""
        raw, problems, modified = self._stored(spec.table, spec.columns, values.marq, values.raw)
        if modified is not None:
            modified = modified if values.modified is None else max(modified, values.modified)
        return _Values(raw, values.marq, modified or values.modified, values.problems + tuple(problems))

    def _stored(self, table: str, columns: Sequence[str], marq: int,
                raw: Raw) -> tuple[Raw, list[Problem], dt.datetime | None]:
        """A suspect row's values of `columns` as stored (SQLite): numbers held as text are parsed
        when unambiguous (the French '12,50'); anything else is None and a problem. Returns the
        values, the problems and the row's own change time when the driver could not read it."""
        columns = (*columns, MODIFIED)
        selection = ", ".join(f"typeof({c}), CASE WHEN typeof({c}) = 'blob' THEN hex({c}) ELSE CAST({c} AS TEXT) END"
                              for c in columns)
        row = self._fetch_one(f"SELECT {selection} FROM {table} WHERE {MARQ} = ?", [marq])
        raw, problems, modified = dict(raw), [], None
        if row is None:
            return raw, problems, modified
        for index, column in enumerate(columns):
            stored, value = row[2 * index], row[2 * index + 1]
            try:
                parsed = _parse_stored(column_type(table, column), stored, value)
            except ValueError as exc:
                problems.append((column, str(exc), f"X'{value}'" if stored == "blob" else value))
                parsed = None
            else:
                if parsed is _AS_READ:
                    continue
            if column != MODIFIED:
                raw[column] = parsed
            else:
                modified = parsed
        return raw, problems, modified

    def _fetch_rows(self, sql: str, parameters: Sequence[Any]) -> list:
        cursor = self._connection.cursor()
        try:
            cursor.execute(sql, list(parameters))
            rows = []
            while batch := cursor.fetchmany(self._batch_rows):
                rows += batch
            return rows
        except pyodbc.Error as error:
            raise _read_error(error, sql) from None
        finally:
            cursor.close()

    def _fetch_all(self, sql: str, parameters: Sequence[Any]) -> Iterator:
        cursor = self._connection.cursor()
        try:
            cursor.execute(sql, list(parameters))
            while rows := cursor.fetchmany(self._batch_rows):
                yield from rows
        except pyodbc.Error as error:
            raise _read_error(error, sql) from None
        finally:
            cursor.close()

    def _fetch_one(self, sql: str, parameters: Sequence[Any] = ()):
        cursor = self._connection.cursor()
        try:
            return cursor.execute(sql, list(parameters)).fetchone()
        except pyodbc.Error as error:
            raise _read_error(error, sql) from None
        finally:
            cursor.close()

    def _has_rows(self, table: str) -> bool:
        return table_exists(self._connection, table) and self._fetch_one(f"SELECT COUNT(*) FROM {table}")[0] > 0

    @contextmanager
    def _reading(self):
        """Ends the read transaction once the last open read finishes (fresh data next time)."""
        self._active_reads += 1
        try:
            yield
        finally:
            self._active_reads -= 1
            if self._active_reads == 0:
                try:
                    self._connection.rollback()
                except pyodbc.Error:
                    pass

    # --- rows -------------------------------------------------------------------------------

    def _child_rows(self, child: Child, mains: list[_Values]) -> dict[tuple, _Children]:
        """The child rows of a page of main rows, grouped by their link to the parent."""
        parent_link = _linker(tuple(parent for _, parent in child.link))
        child_columns = [mine for mine, _ in child.link]
        child_link_values = _link_values(tuple(child_columns))
        links: dict[tuple, tuple] = {}
        for values in mains:
            links.setdefault(parent_link(values.raw),
                             tuple(values.raw.get(parent) for _, parent in child.link))
        candidates = [sorted({link[i] for link in links.values() if link[i] is not None}, key=repr)
                      for i in range(len(child.link))]
        if not all(candidates):
            return {}
        *fixed, varying = candidates
        checked = self._check_storage
        shape = _child_shape(child, checked)
        suspect = len(_times(child.alias, child.lookups)) + 1     # where a row's storage check is
        order = ", ".join(f"{child.alias}.{column}" for column in (*child_columns, *child.order_by))
        grouped: dict[tuple, _Children] = {}

        def query(part: list) -> tuple[str, list]:
            conditions, parameters = [], []
            for column, values in zip(child_columns, [*fixed, part]):
                conditions.append(f"{child.alias}.{column} IN ({', '.join('?' * len(values))})")
                parameters += values
            if child.filter:
                conditions.append(child.filter)
            return (f"SELECT {shape.sql()} FROM {_child_from(child)}"
                    f" WHERE {' AND '.join(conditions)} ORDER BY {order}"), parameters

        for start in range(0, len(varying), MAX_PARAMETERS_PER_QUERY):
            rows, unreadable = self._child_fetch(query, varying[start:start + MAX_PARAMETERS_PER_QUERY])
            for value in unreadable:   # their parents cannot be read whole: each is a problem of its record
                folded = _folded((value,))[0]
                for link in links:
                    if link[-1] == folded:
                        grouped[link] = _Children([], None, [(child.table, sage_rows.UNREADABLE, None)])
            previous, group = None, None
            for row in rows:
                raw, modified, problems = shape.child_values(row)
                if checked and row[suspect]:
                    raw, more, own = self._stored(child.table, child.columns, int(row[suspect - 1]), raw)
                    problems = (*problems, *((f"{child.table}.{column}", code, value) for column, code, value in more))
                    if own is not None:
                        modified = own if modified is None else max(own, modified)
                link_values = child_link_values(raw)
                if link_values != previous:  # rows come grouped by link: fold each link once
                    previous = link_values
                    link = _folded(link_values)
                    group = grouped.get(link)
                    if group is None and link in links:
                        group = grouped[link] = _Children([], None, [])
                if group is None:
                    continue
                group.rows.append(raw)
                if modified is not None and (group.modified is None or modified > group.modified):
                    group.modified = modified
                if problems:
                    group.problems += problems
        return grouped

    def _child_fetch(self, query: Callable[[list], tuple[str, list]], values: list) -> tuple[Sequence, list]:
        """The child rows of the parents whose last link value is in `values`, and the values whose
        child rows the driver cannot decode (found by halving `values`)."""
        sql, parameters = query(values)
        try:
            return list(self._fetch_all(sql, parameters)), []
        except UnicodeDecodeError:
            if len(values) == 1:
                return [], list(values)
        middle = len(values) // 2
        rows, unreadable = self._child_fetch(query, values[:middle])
        more_rows, more_unreadable = self._child_fetch(query, values[middle:])
        return rows + more_rows, unreadable + more_unreadable

    def _source_row(self, spec: EntitySpec, form: CanonicalForm, main: _Values,
                    children: dict[str, dict[tuple, _Children]]) -> SourceRow:
        raw = main.raw
        problems: list = list(main.problems)
        latest = main.modified
        for child in spec.children:
            group = children[child.name].get(_linker(tuple(parent for _, parent in child.link))(raw))
            if group is None:
                raw[child.name] = []
                continue
            raw[child.name] = group.rows
            problems += group.problems
            if group.modified is not None and (latest is None or group.modified > latest):
                latest = group.modified
        if problems:
            return self._source_row_in_part(spec, form, main, raw, problems, latest)
        key = spec.key(raw)
        if not key:
            return self._source_row_in_part(spec, form, main, raw, problems, latest)
        return self._mapped(spec, form, main, raw, key, latest, [], [])

    def _mapped(self, spec: EntitySpec, form: CanonicalForm, main: _Values, raw: Raw, key: str,
                latest: dt.datetime | None, refused: list[str], warnings: list[dict]) -> SourceRow:
        """The row's record; invalid (with the reasons) when `refused` names values it cannot
        do without, or when mapping or validation fails; synced without the optional values
        that fail validation, with a warning each."""
        entity = spec.entity.value
        who = record_name(entity, key) if key else message_text("sync.record.marq", entity=label("status.entity", entity).lower(),
                                                                   marq=main.marq)
        record, error = None, None
        problems = spec.problems(raw)
        try:
            data = spec.to_canonical(raw)
        except (ValueError, TypeError, ArithmeticError, KeyError) as exc:
            data, problems = None, problems + [message_text("sync.invalid.unmapped", reason=exc)]
        if data is not None:
            try:
                canonical = form.record({**data, "key": key})
            except ValidationError as exc:
                canonical, left_out = _without_invalid_optionals(spec, form, data, key, exc)
                if canonical is None:
                    error = describe_validation_error(exc, entity=entity, key=key or None)
                warnings = warnings + left_out
            if canonical is not None and not problems and not refused:
                record = canonical
        if refused:     # what validation says of the values refused would only repeat it
            error = None
        if problems:
            error = error + "; " + "; ".join(problems) if error else \
                message_text("sync.invalid", record=who, problems="; ".join(problems))
        if refused:
            french = message("sage_row.not_synced", what=sage_rows.what(entity), key=key, reasons="; ".join(refused))
            error = french + (" " + error if error else "")
        if record is None:  # the raw values tell whether an invalid row changed; a valid row has its record
            return SourceRow(entity=spec.entity, key=key, record_text=None, record_hash="", error=error,
                             raw_hash=content_hash(raw if not refused else {**raw, "~refused": refused}),
                             modified=latest, marq=main.marq)
        text = canonical_json(record)
        if not warnings:
            return SourceRow(entity=spec.entity, key=key, record_text=text, record_hash=text_hash(text), error=None,
                             raw_hash="", modified=latest, marq=main.marq)
        noted = canonical_json(sorted(warnings, key=lambda w: (w["column"], w.get("field") or "")))
        return SourceRow(entity=spec.entity, key=key, record_text=text, record_hash=text_hash(f"{text}\x1e{noted}"),
                         error=None, raw_hash="", modified=latest, marq=main.marq, warnings=noted)

    def _source_row_in_part(self, spec: EntitySpec, form: CanonicalForm, main: _Values, raw: Raw,
                            problems: list, latest: dt.datetime | None) -> SourceRow:
        """A row some values of which could not be read: an unreadable key names the row by its
        cbMarq (and the row is not synced), an optional value is left out with a warning, a
        change time is ignored with a warning, any other value keeps the record out."""
        key_values = _link_values(spec.key_columns)(raw)
        key_problems = [p for p in problems if p[0] in spec.key_columns]
        if key_problems or None in key_values or "" in key_values:
            reasons = [sage_rows.reason(column, code, value) for column, code, value in problems]
            reasons += [message("sage_row.reason.whole" if "int" in column_type(spec.table, column) else
                                "sage_row.reason.invalid", column=column, value="")
                        for column, value in zip(spec.key_columns, key_values)
                        if value in (None, "") and not any(p[0] == column for p in key_problems)]
            names = ", ".join(f"{column} « {sage_rows.shown(raw.get(column))} »" for column in spec.naming
                              if raw.get(column) not in (None, "")) or message("sage_row.no_names")
            error = message("sage_row.no_key", table=spec.table, marq=main.marq, names=names,
                            reasons="; ".join(reasons))
            return SourceRow(entity=spec.entity, key=sage_rows.row_key(main.marq), record_text=None, record_hash="",
                             error=error, raw_hash=content_hash({**raw, "~problems": [list(map(str, p))
                                                                                     for p in problems]}),
                             modified=latest, marq=main.marq)
        refused: list[str] = []
        warnings: list[dict] = []
        for column, code, value in problems:
            field = spec.optional_columns.get(column)
            if column == MODIFIED:
                warnings.append({"column": column, "reason": sage_rows.MODIFIED, "value": sage_rows.shown(value)})
            elif field is not None:
                raw[column] = None
                warnings.append({"column": column, "field": field, "reason": code, "value": sage_rows.shown(value)})
            else:
                refused.append(sage_rows.reason(column, code, value))
        return self._mapped(spec, form, main, raw, spec.key(raw), latest, refused, warnings)

    # --- orphans ----------------------------------------------------------------------------

    def _orphan_rows(self, spec: EntitySpec) -> Iterator[SourceRow]:
        """One invalid `SourceRow` per key the entity's orphan rows carry. One anti-join per
        `Orphans`, its rows folded into their keys as they are fetched (memory: one entry per
        key, at most `MAX_NAMED_ORPHANS` named rows each), then yielded with no statement open."""
        for orphans in spec.orphans:
            with self._reading():
                found = self._orphans_found(spec, orphans)
            for found_key in found.values():
                yield found_key.source_row(spec, orphans)

    def _orphans_found(self, spec: EntitySpec, orphans: Orphans) -> dict[str, "_OrphanKey"]:
        link = [column for column, _ in orphans.link]
        key_columns = tuple(dict.fromkeys((*spec.key_columns, *link)))
        try:
            return self._fold_orphans(spec, orphans, key_columns, orphans.names)
        except UnicodeDecodeError:   # a name the driver cannot decode: the rows are named by their keys
            log.warning("%s: orphan rows read without %s (undecodable text)", orphans.table, ", ".join(orphans.names))
            return self._fold_orphans(spec, orphans, key_columns, ())

    def _fold_orphans(self, spec: EntitySpec, orphans: Orphans, key_columns: tuple[str, ...],
                      names: tuple[str, ...]) -> dict[str, "_OrphanKey"]:
        alias, shape = orphans.alias, _orphan_shape(orphans, key_columns, names)
        matched = [f"p.{theirs} = {alias}.{mine}" for mine, theirs in orphans.link]
        absent = (f"NOT EXISTS (SELECT 1 FROM {orphans.parent} p WHERE "
                  f"{' AND '.join(matched + ([orphans.parent_filter] if orphans.parent_filter else []))})")
        order = ", ".join(f"{alias}.{column}" for column in (*key_columns, MARQ))
        conditions = ([orphans.filter] if orphans.filter else []) + [absent]
        since = self._orphans_since.get(spec.entity)
        marqs = self._changed_rows(orphans.table, since) if since is not None else None
        if marqs is None:
            queries = [(f"SELECT {shape.sql()} FROM {orphans.table} {alias} WHERE {' AND '.join(conditions)}"
                        f" ORDER BY {order}", [])]
        else:       # only the rows changed since: found by their cbMarq, in cbMarq order per key
            queries = [(f"SELECT {shape.sql()} FROM {orphans.table} {alias} WHERE {alias}.{MARQ} IN"
                        f" ({_marks(part)}) AND {' AND '.join(conditions)} ORDER BY {order}", part)
                       for part in _parts(marqs)]
        main_table = orphans.table == spec.table
        found: dict[str, _OrphanKey] = {}
        for row in (row for sql, parameters in queries for row in self._fetch_all(sql, parameters)):
            values = shape.values(row)
            key_values = _link_values(spec.key_columns)(values.raw)
            if main_table and (values.problems or None in key_values or "" in key_values):
                key = sage_rows.row_key(values.marq)      # as the entity's own reads name such a row
            else:
                key = spec.key(values.raw)
            found.setdefault(key, _OrphanKey(key, main_table)).add(values, names)
        return found

    def _changed_rows(self, table: str, since: dt.datetime) -> list[int] | None:
        """The cbMarq of the rows of `table` changed at or after `since`, sorted (one seek on its
        `cbModification` index); None when there are more than `MAX_SEEK_ROWS`."""
        marqs = []
        for (marq,) in self._fetch_all(f"SELECT {MARQ} FROM {table} WHERE {MODIFIED} >= ?", [since]):
            marqs.append(int(marq))
            if len(marqs) > MAX_SEEK_ROWS:
                return None
        return sorted(marqs)

    # --- identity ---------------------------------------------------------------------------

    def _sqlite_identity(self) -> tuple[str, dt.datetime | None]:
        if table_exists(self._connection, EMULATION_TABLE):
            row = self._fetch_one(f"SELECT ES_DatabaseName, ES_CreateDate FROM {EMULATION_TABLE}")
            if row and row[0]:
                return str(row[0]), normalize.datetime_(row[1])
        path = self._connection.getinfo(pyodbc.SQL_DATABASE_NAME) or "sqlite"
        created = None
        if self._has_rows("P_DOSSIER"):
            created = normalize.datetime_(self._fetch_one("SELECT cbCreation FROM P_DOSSIER ORDER BY cbMarq")[0])
        return Path(path).stem, created

    def _sqlserver_identity(self) -> tuple[str, dt.datetime | None]:
        name = str(self._fetch_one("SELECT DB_NAME()")[0])
        try:
            created = self._fetch_one("SELECT create_date FROM sys.databases WHERE name = DB_NAME()")
        except ConnectorError:  # no permission on sys.databases: the name still identifies it
            created = None
        return name, normalize.datetime_(created[0]) if created else None

    def _entity_spec(self, entity: Entity | str) -> EntitySpec:
        try:
            return self._spec[Entity(entity)]
        except (KeyError, ValueError):
            raise ValueError(f"this Sage source has no entity {entity!r}") from None


# --- SQL building (portable subset) -----------------------------------------------------------

Selection = list[tuple[str, str, Callable[[Any], Any]]]
"""(SQL expression, raw name, normaliser) of selected columns."""


Problem = tuple[str, str, Any]
"""A value that could not be read as its column's type: (column, reason code of
`shared.sage_rows`, the value as Sage holds it)."""


class _Values(NamedTuple):
    """One fetched row, normalised: raw values (no technical columns) plus cbMarq and the
    latest change time of the row and of the joined rows that refresh it. `suspect`: the
    database says a value is not stored as its column's type (SQLite only), so the row is read
    again value by value."""

    raw: Raw
    marq: int
    modified: dt.datetime | None
    problems: tuple[Problem, ...]
    suspect: bool = False


MAX_NAMED_ORPHANS = 20     # rows an orphan incident names one by one; the others are counted


@dataclass
class _OrphanKey:
    """The orphan rows carrying one record key, as the anti-join meets them (cbMarq order)."""

    key: str
    main_table: bool               # the rows are the entity's own (a contact), not child rows (lines)
    count: int = 0
    marq: int = 0
    modified: dt.datetime | None = None
    parent: Raw | None = None
    named: list[str] | None = None
    digest: Any = None

    def add(self, values: _Values, names: Sequence[str]) -> None:
        raw = values.raw
        if self.count == 0:
            self.marq, self.parent, self.named, self.digest = values.marq, raw, [], hashlib.sha256()
        self.count += 1
        if values.modified is not None and (self.modified is None or values.modified > self.modified):
            self.modified = values.modified
        if len(self.named) < MAX_NAMED_ORPHANS:
            self.named.append(", ".join(f"{column} « {sage_rows.shown(raw[column])} »" for column in names
                                        if raw.get(column) not in (None, "")))
        self.digest.update(canonical_json({"marq": values.marq, **raw}).encode("utf-8"))

    def source_row(self, spec: EntitySpec, orphans: Orphans) -> SourceRow:
        parent = ", ".join(f"{theirs} « {sage_rows.shown(self.parent.get(mine))} »" for mine, theirs in orphans.link
                           if not orphans.parent_key or mine in orphans.parent_key)
        rows = "; ".join(name for name in self.named if name)
        if self.count > len(self.named):
            rows += " " + message("sage_row.orphan.more", count=self.count - len(self.named))
        error = message(orphans.message, what=sage_rows.what(spec.entity.value), key=self.key, parent=parent,
                        table=orphans.table, parent_table=orphans.parent, count=self.count,
                        rows=rows or message("sage_row.no_names"))
        return SourceRow(entity=spec.entity, key=self.key, record_text=None, record_hash="", error=error,
                         raw_hash=sage_rows.ORPHAN_HASH
                         + text_hash(f"{orphans.table}\x1e{self.digest.hexdigest()}\x1e{error}"),
                         modified=self.modified, marq=self.marq if self.main_table else 0)


@dataclass
class _Children:
    """The child rows of one parent, their latest change time and their normalisation problems."""

    rows: list[Raw]
    modified: dt.datetime | None
    problems: list[Problem]


class _PatchedRow(tuple):
    """A row read value by value because reading it whole failed: its unreadable values are None."""

    problems: tuple[Problem, ...] = ()


class _Shape:
    """The columns of one query and how one of its rows becomes `_Values`.

    A row holds cbMarq (main rows only), the change times (the row's own, then those of the
    joined rows that refresh it), then the raw columns in name order (a dict already in key
    order is quicker to write as canonical JSON).
    """

    def __init__(self, *, head: Selection, columns: Selection, checked: bool = False):
        columns = sorted(columns, key=lambda column: column[1])
        self.selected: Selection = head + columns
        self._head = len(head)
        self.checked = checked      # the head ends with the storage check (`_storage_check`)
        self._normalize = normalize.row_normalizer([normalizer for _, _, normalizer in head],
                                                   [(name, normalizer) for _, name, normalizer in columns])

    def sql(self) -> str:
        return ", ".join(expression for expression, _, _ in self.selected)

    def values(self, row) -> _Values:
        """A main row's values (cbMarq first)."""
        try:
            head, raw = self._normalize(row)
            problems: tuple[Problem, ...] = ()
        except ValueError:
            head, raw, problems = self._values_one_by_one(row)
        if self.checked:
            return _Values(raw, head[0], _latest(head[1:-1]), problems, bool(head[-1]))
        return _Values(raw, head[0], _latest(head[1:]), problems)

    def raw(self, row) -> Raw:
        """A row's raw values alone."""
        try:
            return self._normalize(row)[1]
        except ValueError:
            return self._values_one_by_one(row)[1]

    def child_values(self, row) -> tuple[Raw, dt.datetime | None, tuple[str, ...]]:
        """A child row's raw values, latest change time and problems (no cbMarq)."""
        try:
            head, raw = self._normalize(row)
        except ValueError:
            head, raw, problems = self._values_one_by_one(row)
            return raw, _latest(head[:-2] if self.checked else head), problems
        if self.checked:
            return raw, _latest(head[:-2]), ()
        return raw, head[0] if len(head) == 1 else _latest(head), ()

    def _values_one_by_one(self, row) -> tuple[list, Raw, tuple[str, ...]]:
        """The row's values, None (and a problem) for each value its normaliser refuses."""
        problems = []
        values = []
        for (_, name, normalizer), value in zip(self.selected, row):
            try:
                values.append(normalizer(value))
            except ValueError:
                problems.append((name, _reason_of(normalizer), value))
                values.append(None)
        names = [name for _, name, _ in self.selected[self._head:]]
        return values[:self._head], dict(zip(names, values[self._head:])), tuple(problems)


def _without_invalid_optionals(spec: EntitySpec, form: CanonicalForm, data: dict, key: str,
                               error: ValidationError) -> tuple[dict | None, list[dict]]:
    """The record without the optional values validation refuses (an invalid e-mail, a website
    longer than SSM takes), with a warning each; (None, []) when a refused value is not optional."""
    failures = error.errors()
    fields = {str(item["loc"][0]) for item in failures if item.get("loc")}
    if not fields or len(fields) != len(failures) or not fields <= spec.optional_fields.keys():
        return None, []
    warnings = []
    for item in failures:
        field = str(item["loc"][0])
        reason = (sage_rows.TOO_LONG if item.get("type") == "string_too_long"
                  else sage_rows.EMAIL if field == "email" else sage_rows.INVALID)
        warning = {"column": spec.optional_fields[field], "field": field, "reason": reason,
                   "value": sage_rows.shown(item.get("input"))}
        if reason == sage_rows.TOO_LONG:
            warning["limit"] = item.get("ctx", {}).get("max_length")
        warnings.append(warning)
    try:
        return form.record({**data, **dict.fromkeys(fields), "key": key}), warnings
    except ValidationError:
        return None, []


def _reason_of(normalizer: Callable[[Any], Any]) -> str:
    """Why a value its normaliser refuses cannot be read (`shared.sage_rows` reason codes)."""
    kind = normalizer.func if isinstance(normalizer, partial) else normalizer
    if kind is normalize.datetime_:
        return sage_rows.DATE
    if kind in (normalize.integer, int):
        return sage_rows.WHOLE
    if kind is normalize.decimal:
        return sage_rows.NUMBER
    return sage_rows.BINARY


def _storage_check(alias: str, table: str, columns: Sequence[str]) -> tuple[str, str, Callable[[Any], Any]]:
    """SQLite only: 1 when a value of `columns` is not stored as its declared type (text in a
    number or date column, an impossible date, binary in a text column), which the SQLite ODBC
    driver would otherwise hand out as NULL, as a truncated number or as `X'..'` text."""
    terms = [_stored_wrong(f"{alias}.{column}", column_type(table, column)) for column in columns]
    terms = [term for term in terms if term]
    expression = f"(CASE WHEN {' OR '.join(terms)} THEN 1 ELSE 0 END)" if terms else "0"
    return (expression, "~stored", int)


def _stored_wrong(expression: str, declared: str) -> str | None:
    kind = declared.lower().partition("(")[0].strip()
    if kind in _NUMBER_TYPES:
        return f"typeof({expression}) NOT IN ('integer', 'real', 'null')"
    if kind in _INTEGER_TYPES:
        return f"typeof({expression}) NOT IN ('integer', 'null')"
    if kind in _DATE_TYPES:
        return (f"({expression} IS NOT NULL AND (typeof({expression}) <> 'text'"
                f" OR date({expression}, '+0 days') IS NOT substr({expression}, 1, 10)))")  # '+0 days': 02-30 → 03-02
    if kind in _TEXT_TYPES:
        return f"typeof({expression}) = 'blob'"
    return None


_AS_READ = object()


def _parse_stored(declared: str, stored: str, value: str | None) -> Any:
    """The value of a column of type `declared` that SQLite stores as `stored` (its `typeof`),
    `value` being its text (hex for a blob): `_AS_READ` when the driver read it right.

    Raises:
        ValueError: the value is not of its column's type; the message is the reason code.
    """
    kind = declared.lower().partition("(")[0].strip()
    if stored == "null":
        return _AS_READ
    if kind in _NUMBER_TYPES:
        if stored in ("integer", "real"):
            return _AS_READ
        if stored == "text":
            normalizer = normalize.normalizer_for(declared)
            scale = normalizer.keywords.get("scale") if isinstance(normalizer, partial) else None
            try:
                return normalize.stored_number(value or "", scale)
            except ValueError:
                pass
        raise ValueError(sage_rows.NUMBER)
    if kind in _INTEGER_TYPES:
        if stored == "integer":
            return _AS_READ
        raise ValueError(sage_rows.WHOLE)
    if kind in _DATE_TYPES:
        if stored == "text":
            try:
                return normalize.datetime_(value)
            except ValueError:
                pass
        raise ValueError(sage_rows.DATE)
    if kind in _TEXT_TYPES and stored == "blob":
        raise ValueError(sage_rows.BINARY)
    return _AS_READ


_NUMBER_TYPES = frozenset({"numeric", "decimal", "float", "real"})
_INTEGER_TYPES = frozenset({"smallint", "int", "integer", "tinyint", "bigint"})
_DATE_TYPES = frozenset({"datetime", "smalldatetime", "datetime2", "date"})
_TEXT_TYPES = frozenset({"varchar", "char", "nvarchar", "nchar", "text"})


def _latest(moments: Sequence[dt.datetime | None]) -> dt.datetime | None:
    return max((moment for moment in moments if moment is not None), default=None)


def _marq_selection(alias: str) -> tuple[str, str, Callable[[Any], Any]]:
    return (f"{alias}.{MARQ}", MARQ, int)


def _time_selection(alias: str) -> tuple[str, str, Callable[[Any], Any]]:
    return (f"{alias}.{MODIFIED}", MODIFIED, normalize.datetime_)


def _column_selection(alias: str, table: str, columns: Sequence[str]) -> Selection:
    return [(f"{alias}.{column}", column, normalize.normalizer_for(column_type(table, column))) for column in columns]


def _lookup_selection(lookup: Lookup) -> Selection:
    return [(f"{lookup.alias}.{column} AS {lookup.alias}__{column}", f"{lookup.alias}.{column}",
             normalize.normalizer_for(column_type(lookup.table, column))) for column in lookup.columns]


def _lookup_times(lookups: Sequence[Lookup]) -> Selection:
    return [(f"{lookup.alias}.{MODIFIED} AS {lookup.alias}__{MODIFIED}", f"{lookup.alias}.{MODIFIED}",
             normalize.datetime_) for lookup in lookups if lookup.refreshes]


@lru_cache(maxsize=None)
def _main_shape(spec: EntitySpec, checked: bool = False) -> _Shape:
    """cbMarq, the change times (and with `checked`, the storage check of the row's own
    columns), then every column of the entity and of its lookups."""
    head = [_marq_selection(spec.alias), *_times(spec.alias, spec.lookups)]
    if checked:
        head.append(_storage_check(spec.alias, spec.table, (*spec.columns, MODIFIED)))
    return _Shape(head=head, columns=_columns(spec.alias, spec.table, spec.columns, spec.lookups), checked=checked)


@lru_cache(maxsize=None)
def _orphan_shape(orphans: Orphans, key_columns: tuple[str, ...], names: tuple[str, ...]) -> _Shape:
    """cbMarq and the change time of an orphan row, then its key, link and naming columns."""
    alias = orphans.alias
    columns = tuple(dict.fromkeys((*key_columns, *names)))
    return _Shape(head=[_marq_selection(alias), _time_selection(alias)],
                  columns=_column_selection(alias, orphans.table, columns))


def _key_unreadable(values: tuple, row: Sequence[Any], checked: bool) -> bool:
    """Whether a row read by `_key_shape` has no key to go by: a key column empty, read value by
    value (`_PatchedRow`), or (with `checked`) not stored as its column's type."""
    return None in values or "" in values or (checked and bool(row[1])) or type(row) is _PatchedRow


@lru_cache(maxsize=None)
def _key_shape(spec: EntitySpec, checked: bool = False) -> _Shape:
    """cbMarq (and with `checked`, the storage check of the key columns), then the key columns."""
    head = [_marq_selection(spec.alias)]
    if checked:
        head.append(_storage_check(spec.alias, spec.table, spec.key_columns))
    return _Shape(head=head, columns=_column_selection(spec.alias, spec.table, spec.key_columns), checked=checked)


@lru_cache(maxsize=None)
def _child_shape(child: Child, checked: bool = False) -> _Shape:
    """The change times (and with `checked`, cbMarq and the storage check of the row's own
    columns), then every column of the child and of its lookups."""
    head = _times(child.alias, child.lookups)
    if checked:
        head += [_marq_selection(child.alias), _storage_check(child.alias, child.table, (*child.columns, MODIFIED))]
    return _Shape(head=head, columns=_columns(child.alias, child.table, child.columns, child.lookups), checked=checked)


def _times(alias: str, lookups: Sequence[Lookup]) -> Selection:
    """The row's own change time, then those of the joined rows that refresh it."""
    return [_time_selection(alias)] + _lookup_times(lookups)


def _columns(alias: str, table: str, columns: Sequence[str], lookups: Sequence[Lookup]) -> Selection:
    """The table's columns, then those of its lookups."""
    selection = _column_selection(alias, table, columns)
    for lookup in lookups:
        selection += _lookup_selection(lookup)
    return selection


def _join(lookup: Lookup, owner: str) -> str:
    condition = " AND ".join(f"{lookup.alias}.{mine} = {owner}.{theirs}" for mine, theirs in lookup.on)
    return f" {'INNER' if lookup.inner else 'LEFT'} JOIN {lookup.table} {lookup.alias} ON {condition}"


def _from(spec: EntitySpec) -> str:
    return f"{spec.table} {spec.alias}" + "".join(_join(lookup, spec.alias) for lookup in spec.lookups)


def _child_from(child: Child) -> str:
    return f"{child.table} {child.alias}" + "".join(_join(lookup, child.alias) for lookup in child.lookups)


def _where(spec: EntitySpec, conditions: list[str]) -> str:
    clauses = [clause for clause in [spec.filter, *(lookup.filter for lookup in spec.lookups if lookup.inner),
                                     *conditions] if clause]
    return " WHERE " + " AND ".join(clauses) if clauses else ""


def _since_clause(spec: EntitySpec) -> tuple[str, int]:
    """`(own change OR a refreshing joined row changed OR EXISTS a changed child)` and its `?` count."""
    alias = spec.alias
    terms = [f"{alias}.{MODIFIED} >= ?"]
    terms += [f"{lookup.alias}.{MODIFIED} >= ?" for lookup in spec.lookups if lookup.refreshes]
    for child in spec.children:
        link = " AND ".join(f"{child.alias}.{mine} = {alias}.{theirs}" for mine, theirs in child.link)
        changed = [f"{child.alias}.{MODIFIED} >= ?"]
        changed += [f"{lookup.alias}.{MODIFIED} >= ?" for lookup in child.lookups if lookup.refreshes]
        conditions = [link] + ([child.filter] if child.filter else []) + [f"({' OR '.join(changed)})"]
        terms.append(f"EXISTS (SELECT 1 FROM {_child_from(child)} WHERE {' AND '.join(conditions)})")
    sql = "(" + " OR ".join(terms) + ")"
    return sql, sql.count("?")


def _membership_tables(spec: EntitySpec) -> list[str]:
    """The entity's main table and the tables it inner-joins: those whose rows decide which
    records the entity has."""
    return [spec.table] + [lookup.table for lookup in spec.lookups if lookup.inner]


def _parts(values: Sequence[Any]) -> list[Sequence[Any]]:
    """`values` in slices of at most `MAX_PARAMETERS_PER_QUERY` (one query's parameters each)."""
    return [values[start:start + MAX_PARAMETERS_PER_QUERY] for start in range(0, len(values), MAX_PARAMETERS_PER_QUERY)]


def _marks(values: Sequence[Any]) -> str:
    """One `?` per value, comma-separated."""
    return ", ".join("?" * len(values))


def _runs(numbers: Sequence[int]) -> Iterator[tuple[int, int]]:
    """(first, last) of each run of consecutive values of sorted `numbers`."""
    for _, group in itertools.groupby(enumerate(numbers), key=lambda pair: pair[1] - pair[0]):
        run = [number for _, number in group]
        yield run[0], run[-1]


def _matching(columns: list[str], values: set[tuple]) -> Iterator[tuple[str, list]]:
    """WHERE clauses (with their parameters) selecting the rows whose `columns` hold one of
    `values`, at most `MAX_PARAMETERS_PER_QUERY` parameters each."""
    rows = sorted((value for value in values if None not in value), key=repr)
    if len(columns) == 1:
        for part in _parts([value[0] for value in rows]):
            yield f"{columns[0]} IN ({_marks(part)})", part
        return
    step = max(MAX_PARAMETERS_PER_QUERY // len(columns), 1)
    one = "(" + " AND ".join(f"{column} = ?" for column in columns) + ")"
    for start in range(0, len(rows), step):
        part = rows[start:start + step]
        yield " OR ".join([one] * len(part)), [item for value in part for item in value]


def _main_query(spec: EntitySpec, since: dt.datetime | None, checked: bool = False) -> tuple[str, list]:
    """The windowed query of `spec` (first parameters: the cbMarq window) and its `since` parameters."""
    alias = spec.alias
    conditions = [_WINDOW.format(alias=alias)]
    parameters: list = []
    if since is not None:
        clause, count = _since_clause(spec)
        conditions.append(clause)
        parameters = [since] * count
    sql = (f"SELECT {_main_shape(spec, checked).sql()} FROM {_from(spec)}{_where(spec, conditions)}"
           f" ORDER BY {alias}.{MARQ}")
    return sql, parameters


@lru_cache(maxsize=None)
def _link_values(columns: tuple[str, ...]) -> Callable[[Raw], tuple]:
    """The values of `columns` in a row, as a tuple."""
    def values(raw: Raw) -> tuple:
        return tuple(map(raw.get, columns))
    return values


def _folded(values: tuple) -> tuple:
    """Link values as SQL Server's default collation compares them (case, trailing spaces)."""
    return tuple([value.rstrip().upper() if isinstance(value, str) else value for value in values])


@lru_cache(maxsize=None)
def _linker(columns: tuple[str, ...]) -> Callable[[Raw], tuple]:
    """The link of a row to its parent or children: `columns`' values, folded."""
    values = _link_values(columns)

    def link(raw: Raw) -> tuple:
        return _folded(values(raw))
    return link


def _read_error(error: pyodbc.Error, sql: str) -> Exception:
    message = str(error.args[-1] if error.args else error).splitlines()[0]
    if isinstance(error, pyodbc.ProgrammingError):
        return ConfigurationError("The Sage database does not have the tables or columns the connector reads.",
                                  detail=f"{message} in: {sql[:200]}")
    return RetryableError("Reading the Sage database failed; the read will be retried.", detail=message)
