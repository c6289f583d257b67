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
import json
from contextlib import contextmanager
from dataclasses import dataclass, replace
from functools import cached_property, lru_cache
from pathlib import Path
from typing import Any, Callable, Iterator, NamedTuple, Sequence

import pyodbc
from pydantic import ValidationError

from agent import normalize
from agent.canonical import CanonicalForm, canonical_json, content_hash, text_hash
from agent.odbc import is_sqlite, table_exists
from agent.sage100.schema import EMULATION_TABLE, MARQ, MODIFIED, column_type
from agent.sage100.spec import SAGE100_SPEC, Child, EntitySpec, Lookup, Raw
from shared.errors import ConfigurationError, ConnectorError, RetryableError
from shared.models import Entity, describe_validation_error
from shared.rules import sync_order

MAX_PARAMETERS_PER_QUERY = 500
MAX_WINDOW_FACTOR = 8      # a window spans at most 8 × batch_rows cbMarq values
KEYS_PER_ROW = 10          # keys are small: key reads use windows 10 times wider
MAX_SEEK_ROWS = 50_000     # more changed rows than this: read the table in windows instead
HISTORY_TABLE, HISTORY_COLUMN = "F_DOCENTETE", "DO_Date"   # what the history window limits
# Tables a full read (first load, realignment) reads newest first: the documents a sales rep
# needs first are the recent ones (cbMarq grows with each new record).
NEWEST_FIRST = frozenset({"F_DOCENTETE"})
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

    @cached_property
    def record(self) -> dict | None:
        """The canonical record (JSON form), None if the row is invalid."""
        return None if self.record_text is None else json.loads(self.record_text)


@dataclass(frozen=True)
class TableProbe:
    """Counters of one table; a restore shows as counts or watermarks going backwards."""

    table: str
    row_count: int
    max_marq: int
    max_modified: dt.datetime | None


@dataclass(frozen=True)
class DossierIdentity:
    database_name: str
    company_name: str | None       # P_DOSSIER.D_RaisonSoc
    created_at: dt.datetime | None  # SQL Server: sys.databases.create_date; SQLite: EMU_SERVER, else P_DOSSIER.cbCreation
    fingerprint: str               # hash of what identifies this database (name and creation date)


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
        return self._changed(spec, since)

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

    def keys(self, entity: Entity | str, spans: Sequence[tuple[int, int]] | None = None) -> Iterator[str]:
        """Every key currently in Sage for `entity` (with `spans`: of the records whose `low <
        cbMarq <= top` for one of them), streamed in `cbMarq` order."""
        return self._keys(self._entity_spec(entity), spans)

    def read_passes(self, entity: Entity | str) -> int:
        """How many passes a full read of `entity` makes (`FIRST_LOAD_PASSES`; 0: one, unfiltered)."""
        return len(FIRST_LOAD_PASSES.get(Entity(entity), ()))

    def newest_first(self, entity: Entity | str) -> bool:
        """Whether a full read of `entity` yields its records newest first (`NEWEST_FIRST`)."""
        return self._entity_spec(entity).table in NEWEST_FIRST

    def marq_sums(self, entity: Entity | str, width: int) -> dict[int, tuple[int, int]]:
        """Per range of `width` cbMarq values (`cbMarq / width`), how many records of `entity` there
        are and the sum of their cbMarq: one aggregate the server computes on its cbMarq index,
        so the agent learns where records were added or deleted without reading every key."""
        spec = self._entity_spec(entity)
        bucket = f"{spec.alias}.{MARQ} / {int(width)}"
        sql = f"SELECT {bucket}, COUNT(*), SUM({spec.alias}.{MARQ}) FROM {_from(spec)}{_where(spec, [])} GROUP BY {bucket}"
        with self._reading():
            return {int(row[0]): (int(row[1]), int(row[2])) for row in self._fetch_all(sql, [])}

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
        """Row count, highest `cbMarq` and latest `cbModification` of every table read."""
        tables = dict.fromkeys(name for spec in self._spec.values() for name in spec.tables())
        probes = []
        with self._reading():
            for name in tables:
                row = self._fetch_one(f"SELECT COUNT(*), MAX({MARQ}), MAX({MODIFIED}) FROM {name}")
                probes.append(TableProbe(name, int(row[0] or 0), int(row[1] or 0), normalize.datetime_(row[2])))
        return probes

    def identity(self) -> DossierIdentity:
        """What identifies this company database; a new creation date means a restore."""
        with self._reading():
            company = normalize.text(self._fetch_one("SELECT D_RaisonSoc FROM P_DOSSIER ORDER BY cbMarq")[0]
                                     if self._has_rows("P_DOSSIER") else None)
            if is_sqlite(self._connection):
                name, created = self._sqlite_identity()
            else:
                name, created = self._sqlserver_identity()
        stamp = created.isoformat() if created else ""
        fingerprint = hashlib.sha256(f"{name}\x1f{stamp}".encode("utf-8")).hexdigest()
        return DossierIdentity(database_name=name, company_name=company, created_at=created,
                               fingerprint=fingerprint)

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
        sql, since_parameters = _main_query(spec, since)
        shape = _main_shape(spec)
        form = CanonicalForm(spec.entity)
        if since is None and span is None and spec.table in NEWEST_FIRST:
            windows = self._windows_newest_first(spec.table, sql, self._batch_rows)
        else:
            windows = self._windows(spec.table, sql, since_parameters, self._batch_rows, span)
        with self._reading():
            for window in windows:
                for start in range(0, len(window), self._batch_rows):
                    yield from self._records(spec, form, [shape.values(row) for row in
                                                          window[start:start + self._batch_rows]])

    def _records(self, spec: EntitySpec, form: CanonicalForm, mains: list[_Values]) -> Iterator[SourceRow]:
        children = {child.name: self._child_rows(child, mains) for child in spec.children}
        for values in mains:
            yield self._source_row(spec, form, values, children)

    def _changed_marqs(self, spec: EntitySpec, since: dt.datetime) -> list[int] | None:
        """The cbMarq of every main row changed at or after `since` (itself, a refreshing joined row,
        a child row or a child's refreshing joined row), each term one query the server answers
        with a seek on its `cbModification` index; None when they are so many that reading the
        table in windows is cheaper (the caller does)."""
        found: set[int] = set()
        alias = spec.alias
        with self._reading():
            # each query names one table and compares only its cbModification: an index seek
            # whatever the engine's statistics (a filter beside it may make an engine scan)
            found.update(int(row[0]) for row in self._fetch_all(
                f"SELECT {MARQ} FROM {spec.table} WHERE {MODIFIED} >= ?", [since]))
            for lookup in spec.lookups:
                if lookup.refreshes:
                    found.update(self._owners(spec.table, alias, lookup.on, lookup.table, since))
                if len(found) > MAX_SEEK_ROWS:
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
        shape = _main_shape(spec)
        form = CanonicalForm(spec.entity)
        step = min(self._batch_rows, MAX_PARAMETERS_PER_QUERY)
        with self._reading():
            for start in range(0, len(marqs), step):
                part = marqs[start:start + step]
                condition = f"{alias}.{MARQ} IN ({', '.join('?' * len(part))})"
                sql = f"SELECT {shape.sql()} FROM {_from(spec)}{_where(spec, [condition])} ORDER BY {alias}.{MARQ}"
                rows = self._fetch_rows(sql, part)
                yield from self._records(spec, form, [shape.values(row) for row in rows])

    def _keys(self, spec: EntitySpec, spans: Sequence[tuple[int, int]] | None = None) -> Iterator[str]:
        alias = spec.alias
        key_shape = _Shape(head=[_marq_selection(alias)], columns=_column_selection(alias, spec.table, spec.key_columns))
        where = _where(spec, [_WINDOW.format(alias=alias)])
        sql = f"SELECT {key_shape.sql()} FROM {_from(spec)}{where} ORDER BY {alias}.{MARQ}"
        with self._reading():
            for span in ([None] if spans is None else spans):
                if span is not None and span[0] >= span[1]:
                    continue
                for window in self._windows(spec.table, sql, [], self._batch_rows * KEYS_PER_ROW, span):
                    for row in window:
                        yield spec.key(key_shape.raw(row))

    def _windows(self, table: str, sql: str, parameters: Sequence[Any], target: int,
                 span: tuple[int, int] | None = None) -> Iterator[list]:
        """The rows of `sql` over consecutive `cbMarq` windows (`cbMarq > ? AND cbMarq <= ?`).

        Each window's result is fetched whole and its cursor closed before the rows are used, so
        no statement stays open while rows are yielded, and no query returns more than a bounded
        number of rows (some drivers, SQLite's among them, buffer a whole result set). Window
        widths adapt to aim at `target` rows each, between `target` and `target *
        MAX_WINDOW_FACTOR` cbMarq values, and an empty window jumps to the table's next cbMarq
        (identity gaps). The read goes on until the table's highest cbMarq, checked again at the
        end, so rows inserted during the read are read too. With `span` (`low, top`), only the
        rows with `low < cbMarq <= top` are read, and the end is not checked again.
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
                rows = self._fetch_rows(sql, [low, high, *parameters])
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

    def _windows_newest_first(self, table: str, sql: str, target: int) -> Iterator[list]:
        """As `_windows` over the whole table, from the highest cbMarq down (each window's rows
        newest first too), then the rows added during the read, oldest first."""
        span = self._marq_bounds(table)
        if span is None:
            return
        bottom, top = span
        high, width = top, target
        while high > bottom:
            low = max(high - width, bottom)
            rows = self._fetch_rows(sql, [low, high])
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
            yield from self._windows(table, sql, [], target, (top, int(newest)))

    def _marq_bounds(self, table: str, after: int | None = None) -> tuple[int, int] | None:
        """`(MIN(cbMarq) - 1, MAX(cbMarq))` of `table` (of its rows above `after`), None if none.
        Two queries: each is one index seek, while one query asking both may scan the table."""
        first = self._fetch_one(f"SELECT MIN({MARQ}) FROM {table}" + ("" if after is None else f" WHERE {MARQ} > ?"),
                                [] if after is None else [after])
        if first is None or first[0] is None:
            return None
        return int(first[0]) - 1, int(self._fetch_one(f"SELECT MAX({MARQ}) FROM {table}")[0])

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
        shape = _child_shape(child)
        order = ", ".join(f"{child.alias}.{column}" for column in (*child_columns, *child.order_by))
        grouped: dict[tuple, _Children] = {}
        for start in range(0, len(varying), MAX_PARAMETERS_PER_QUERY):
            conditions, parameters = [], []
            for column, values in zip(child_columns, [*fixed, varying[start:start + MAX_PARAMETERS_PER_QUERY]]):
                conditions.append(f"{child.alias}.{column} IN ({', '.join('?' * len(values))})")
                parameters += values
            if child.filter:
                conditions.append(child.filter)
            sql = (f"SELECT {shape.sql()} FROM {_child_from(child)}"
                   f" WHERE {' AND '.join(conditions)} ORDER BY {order}")
            previous, group = None, None
            for row in self._fetch_all(sql, parameters):
                raw, modified, problems = shape.child_values(row)
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

    def _source_row(self, spec: EntitySpec, form: CanonicalForm, main: _Values,
                    children: dict[str, dict[tuple, _Children]]) -> SourceRow:
        raw = main.raw
        problems = list(main.problems)
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
        key = spec.key(raw)
        entity = spec.entity.value
        who = f"{entity} '{key}'" if key else f"{entity} (cbMarq {main.marq})"
        record, error = None, None
        problems += spec.problems(raw)
        try:
            data = spec.to_canonical(raw)
        except (ValueError, TypeError, ArithmeticError, KeyError) as exc:
            data, problems = None, problems + [f"cannot be mapped ({exc})"]
        if data is not None:
            try:
                canonical = form.record({**data, "key": key})
            except ValidationError as exc:
                error = describe_validation_error(exc, entity=entity, key=key or None)
            else:
                if not problems:
                    record = canonical
        if problems:
            error = (error + "; " if error else f"{who} cannot be synced: ") + "; ".join(problems)
        if record is None:  # the raw values tell whether an invalid row changed; a valid row has its record
            return SourceRow(entity=spec.entity, key=key, record_text=None, record_hash="", error=error,
                             raw_hash=content_hash(raw), modified=latest, marq=main.marq)
        text = canonical_json(record)
        return SourceRow(entity=spec.entity, key=key, record_text=text, record_hash=text_hash(text), error=None,
                         raw_hash="", modified=latest, marq=main.marq)

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


class _Values(NamedTuple):
    """One fetched row, normalised: raw values (no technical columns) plus cbMarq and the
    latest change time of the row and of the joined rows that refresh it."""

    raw: Raw
    marq: int
    modified: dt.datetime | None
    problems: tuple[str, ...]


@dataclass
class _Children:
    """The child rows of one parent, their latest change time and their normalisation problems."""

    rows: list[Raw]
    modified: dt.datetime | None
    problems: list[str]


class _Shape:
    """The columns of one query and how one of its rows becomes `_Values`.

    A row holds cbMarq (main rows only), the change times (the row's own, then those of the
    joined rows that refresh it), then the raw columns in name order (a dict already in key
    order is quicker to write as canonical JSON).
    """

    def __init__(self, *, head: Selection, columns: Selection):
        columns = sorted(columns, key=lambda column: column[1])
        self.selected: Selection = head + columns
        self._head = len(head)
        self._normalize = normalize.row_normalizer([normalizer for _, _, normalizer in head],
                                                   [(name, normalizer) for _, name, normalizer in columns])

    def sql(self) -> str:
        return ", ".join(expression for expression, _, _ in self.selected)

    def values(self, row) -> _Values:
        """A main row's values (cbMarq first)."""
        try:
            head, raw = self._normalize(row)
            problems: tuple[str, ...] = ()
        except ValueError:
            head, raw, problems = self._values_one_by_one(row)
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
            return raw, _latest(head), problems
        return raw, head[0] if len(head) == 1 else _latest(head), ()

    def _values_one_by_one(self, row) -> tuple[list, Raw, tuple[str, ...]]:
        """The row's values, None (and a problem) for each value its normaliser refuses."""
        problems = []
        values = []
        for (_, name, normalizer), value in zip(self.selected, row):
            try:
                values.append(normalizer(value))
            except ValueError as exc:
                problems.append(f"{name}: {exc}")
                values.append(None)
        names = [name for _, name, _ in self.selected[self._head:]]
        return values[:self._head], dict(zip(names, values[self._head:])), tuple(problems)


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
def _main_shape(spec: EntitySpec) -> _Shape:
    """cbMarq, the change times, then every column of the entity and of its lookups."""
    return _Shape(head=[_marq_selection(spec.alias), *_times(spec.alias, spec.lookups)],
                  columns=_columns(spec.alias, spec.table, spec.columns, spec.lookups))


@lru_cache(maxsize=None)
def _child_shape(child: Child) -> _Shape:
    """The change times, then every column of the child and of its lookups (no cbMarq: unused)."""
    return _Shape(head=_times(child.alias, child.lookups),
                  columns=_columns(child.alias, child.table, child.columns, child.lookups))


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


def _matching(columns: list[str], values: set[tuple]) -> Iterator[tuple[str, list]]:
    """WHERE clauses (with their parameters) selecting the rows whose `columns` hold one of
    `values`, at most `MAX_PARAMETERS_PER_QUERY` parameters each."""
    rows = sorted((value for value in values if None not in value), key=repr)
    if len(columns) == 1:
        for start in range(0, len(rows), MAX_PARAMETERS_PER_QUERY):
            part = [value[0] for value in rows[start:start + MAX_PARAMETERS_PER_QUERY]]
            yield f"{columns[0]} IN ({', '.join('?' * len(part))})", part
        return
    step = max(MAX_PARAMETERS_PER_QUERY // len(columns), 1)
    one = "(" + " AND ".join(f"{column} = ?" for column in columns) + ")"
    for start in range(0, len(rows), step):
        part = rows[start:start + step]
        yield " OR ".join([one] * len(part)), [item for value in part for item in value]


def _main_query(spec: EntitySpec, since: dt.datetime | None) -> tuple[str, list]:
    """The windowed query of `spec` (first parameters: the cbMarq window) and its `since` parameters."""
    alias = spec.alias
    conditions = [_WINDOW.format(alias=alias)]
    parameters: list = []
    if since is not None:
        clause, count = _since_clause(spec)
        conditions.append(clause)
        parameters = [since] * count
    sql = f"SELECT {_main_shape(spec).sql()} FROM {_from(spec)}{_where(spec, conditions)} ORDER BY {alias}.{MARQ}"
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
