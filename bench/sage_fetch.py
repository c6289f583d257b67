"""Raw fetch rate of a Sage database through pyodbc: the ceiling the agent's reader is compared to.

`raw_fetch_rate` runs a plain `SELECT *` per table and drains it with `fetchmany`, without any
normalisation or mapping, and reports rows per second for each table and overall.
"""
from __future__ import annotations

import time
from typing import Iterable

import pyodbc


def raw_fetch_rate(conn: pyodbc.Connection, tables: Iterable[str], *, batch_rows: int = 1000) -> dict:
    """Rows, seconds and rows/s of `SELECT * FROM <table>` for each table, plus a `"total"` entry.

    The connection's transaction is ended afterwards, as the reader does.
    """
    results: dict[str, dict] = {}
    all_rows = 0
    all_seconds = 0.0
    for table in tables:
        cursor = conn.cursor()
        started = time.perf_counter()
        rows = 0
        try:
            cursor.execute(f"SELECT * FROM {table}")
            while batch := cursor.fetchmany(batch_rows):
                rows += len(batch)
        finally:
            cursor.close()
        seconds = time.perf_counter() - started
        results[table] = {"rows": rows, "seconds": round(seconds, 4),
                          "rows_per_s": round(rows / seconds) if seconds > 0 else None}
        all_rows += rows
        all_seconds += seconds
    conn.rollback()
    results["total"] = {"rows": all_rows, "seconds": round(all_seconds, 4),
                        "rows_per_s": round(all_rows / all_seconds) if all_seconds > 0 else None}
    return results
