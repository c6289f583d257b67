"""Raw fetch of a Sage database through pyodbc: the ceiling the agent's detection is compared to.

`reader_queries` gives, for every entity the reader reads, the same rows and the same columns
the reader selects (main rows with their joins and filters, then child rows with theirs), as
plain SQL with no normalisation or mapping. `raw_fetch` drains them with `fetchmany`; with
`share=(i, n)` it reads only the i-th of n slices of `cbMarq` of each table, so n processes
together read exactly the rows one process reads.
"""
from __future__ import annotations

import time
from typing import Iterable

import pyodbc


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
              batch_rows: int = 1000) -> dict:
    """Rows and seconds of draining `queries` (this process's share of each table's `cbMarq` span)."""
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
            while batch := cursor.fetchmany(batch_rows):
                rows += len(batch)
        finally:
            cursor.close()
    seconds = time.perf_counter() - started
    conn.rollback()
    return {"rows": rows, "seconds": seconds}
