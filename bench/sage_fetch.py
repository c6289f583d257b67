"""Raw fetch of a Sage database through pyodbc: the ceiling the agent's detection is compared to.

`reader_queries` gives, for every entity the reader reads, the same rows and the same columns
the reader selects (main rows with their joins and filters, then child rows with theirs), as
plain SQL with no normalisation or mapping. `raw_fetch` drains them with `fetchmany`; with
`share=(i, n)` it reads only the i-th of n slices of `cbMarq` of each table, so n processes
together read exactly the rows one process reads. With `least_work`, each row fetched is also
given the least work any relay sending records as JSON must do: a dict of its columns (text
stripped), written as compact JSON with sorted keys, hashed with SHA-256. No mapping, no
validation, no typed values, nothing staged or sent: a ceiling for the agent's first load, not
a relay.
"""
from __future__ import annotations

import hashlib
import json
import time
from typing import Iterable

import pyodbc

_encode = json.JSONEncoder(separators=(",", ":"), sort_keys=True, default=str).encode


def _distinct(names: list[str]) -> list[str]:
    """The columns' names, a repeated one (a joined table's) numbered by its position."""
    return [name if name not in names[:i] else f"{name}#{i}" for i, name in enumerate(names)]


def least_work(columns: list[str], batch: list) -> None:
    """What any relay sending each row as a JSON record does at least: name, strip, write, hash."""
    for row in batch:
        record = {column: (value.strip() if type(value) is str else value) for column, value in zip(columns, row)}
        hashlib.sha256(_encode(record).encode("utf-8")).digest()


def reader_queries(reader) -> list[tuple[str, str, str]]:
    """(table, alias, SQL with a `cbMarq` window `> ? AND <= ?`) for every query a full read runs."""
    from agent.sage100.reader import _child_from, _child_shape, _from, _main_shape, _where

    queries = []
    for entity in reader.entities():
        spec = reader._entity_spec(entity)
        window = f"{spec.alias}.cbMarq > ? AND {spec.alias}.cbMarq <= ?"
        queries.append((spec.table, spec.alias,
                        f"SELECT {_main_shape(spec).sql()} FROM {_from(spec)}{_where(spec, [window])}"))
        for child in spec.children:
            # only the child rows of the entity's own main rows (its filter), as the reader reads them
            conditions = [f"{child.alias}.cbMarq > ? AND {child.alias}.cbMarq <= ?"]
            conditions += [clause for clause in (child.filter, spec.filter) if clause]
            link = " AND ".join(f"{child.alias}.{mine} = {spec.alias}.{theirs}" for mine, theirs in child.link)
            queries.append((child.table, child.alias,
                            f"SELECT {_child_shape(child).sql()} FROM {_child_from(child)}"
                            f" INNER JOIN {spec.table} {spec.alias} ON {link} WHERE {' AND '.join(conditions)}"))
    return queries


def raw_fetch(conn: pyodbc.Connection, queries: Iterable[tuple[str, str, str]], *, share: tuple[int, int] = (0, 1),
              batch_rows: int = 1000, least: bool = False) -> dict:
    """Rows and seconds of draining `queries` (this process's share of each table's `cbMarq` span);
    with `least`, each row also gets `least_work`."""
    index, count = share
    rows = 0
    started = time.perf_counter()
    for table, _, sql in queries:
        cursor = conn.cursor()
        try:
            low, top = cursor.execute(f"SELECT MIN(cbMarq) - 1, MAX(cbMarq) FROM {table}").fetchone()
            if low is None:
                continue
            width = (top - low + count - 1) // count
            start, end = low + index * width, min(low + (index + 1) * width, top)
            cursor.execute(sql, [start, end])
            columns = _distinct([description[0] for description in cursor.description])
            while batch := cursor.fetchmany(batch_rows):
                rows += len(batch)
                if least:
                    least_work(columns, batch)
        finally:
            cursor.close()
    seconds = time.perf_counter() - started
    conn.rollback()
    return {"rows": rows, "seconds": seconds}
