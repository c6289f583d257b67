"""Full reads of large Sage tables shared among processes, their rows still in order.

A first load or a realignment reads every record of every entity, and reading is work for the
processor: the driver's fetch, then normalising, mapping, validating and writing the canonical
JSON of each record. One Python process keeps one core busy with it, so `ParallelReader` cuts
the table into slices of `cbMarq` and has helper processes read them, each with its own
connection to the company database, while it yields their rows in `cbMarq` order, exactly as
`Sage100Reader.changed` would. Whenever the next slice in order is not read yet, the agent's
own process reads the last slice no helper has started instead of waiting, so the work shares
itself out between the agent (which also compares and stages what it reads) and its helpers.
At most `workers × SLICES_IN_FLIGHT_PER_PROCESS` slices are read or waiting at a time, so memory
stays bounded whatever the table size.

Reads since a watermark and small tables are read in-process: they are short, and starting
helpers would cost more than it saves. The helpers start with the first full read of a large
table and stop when the reader is closed. Every other read goes to the in-process reader.
"""
from __future__ import annotations

import datetime as dt
import itertools
import multiprocessing
import os
from collections import deque
from concurrent.futures import BrokenExecutor, Future, ProcessPoolExecutor
from dataclasses import dataclass
from typing import Iterator, Optional

from agent.sage100.reader import Sage100Reader, SourceRow
from shared.errors import RetryableError
from shared.models import Entity

SLICES_IN_FLIGHT_PER_PROCESS = 4
SLICE_WIDTH_FACTOR = 2      # a slice spans 2 × batch_rows cbMarq values
MIN_SLICES = 8              # a table spanning fewer slices is read in-process

_Packed = tuple[str, Optional[str], str, Optional[str], str, Optional[dt.datetime], int, Optional[str]]


def peak_rss_mb() -> Optional[float]:
    """This process's peak resident memory in MB (None where the system does not tell)."""
    try:
        with open("/proc/self/status", encoding="ascii") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    try:
        import resource
    except ImportError:  # Windows
        return None
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


# --- the helper side ---------------------------------------------------------------------------

_helper: dict = {}


def _configure_helper(connection_string: str, batch_rows: int) -> None:
    _helper.update(connection_string=connection_string, batch_rows=batch_rows, reader=None)


def _helper_reader() -> Sage100Reader:
    if _helper["reader"] is None:  # connected on first use, so a failure reaches the caller as it is
        from agent.odbc import connect

        _helper["reader"] = Sage100Reader(connect(_helper["connection_string"]), batch_rows=_helper["batch_rows"])
    return _helper["reader"]


def _read_slice(entity: str, low: int, top: int, history=None,
                read_pass: Optional[int] = None) -> tuple[list[_Packed], int, Optional[float]]:
    """The rows of one slice, packed; with this helper's process id and peak memory. `history`:
    the agent's reader's `limit_history` arguments, applied here too."""
    reader = _helper_reader()
    if history is not None and _helper.get("history") != history:
        reader.limit_history(*history)
        _helper["history"] = history
    rows = [(row.key, row.record_text, row.record_hash, row.error, row.raw_hash, row.modified, row.marq,
             row.warnings) for row in reader.changed_between(entity, low, top, read_pass)]
    return rows, os.getpid(), peak_rss_mb()


# --- the reading side --------------------------------------------------------------------------

@dataclass
class _Slice:
    """One slice of a full read: `low < cbMarq <= top`, read by a helper (`future`) or here (`rows`)."""

    entity: Entity
    low: int
    top: int
    future: Future
    rows: Optional[list[SourceRow]] = None
    descending: bool = False      # its rows are yielded newest (highest cbMarq) first
    read_pass: Optional[int] = None  # the pass of a full read in passes it belongs to


class ParallelReader:
    """A `Sage100Reader` whose full reads of large tables are shared among `workers` processes:
    the agent's own and `workers - 1` helpers.

    Args:
        reader: the in-process reader (its connection serves every other read).
        connection_string: what each helper connects with (the same database).
        workers: processes reading; 1 reads everything in-process.
        batch_rows: rows per fetch, as the reader's.
    """

    def __init__(self, reader: Sage100Reader, connection_string: str, *, workers: int, batch_rows: int = 1000):
        if workers < 1:
            raise ValueError("workers must be at least 1")
        self.reader = reader
        self.workers = workers
        self._connection_string = connection_string
        self._batch_rows = batch_rows
        self._slice_width = batch_rows * SLICE_WIDTH_FACTOR
        self._pool: Optional[ProcessPoolExecutor] = None
        self._broken = False   # a helper died: the pool fails every slice by itself
        self._history = None   # the reader's `limit_history`, for the helpers
        self.slices_read_by_helpers = 0
        self.slices_read_here = 0
        self.helper_peak_rss_mb: dict[int, float] = {}   # by process id

    def entities(self) -> tuple[Entity, ...]:
        return self.reader.entities()

    def keys(self, entity: Entity | str, spans=None) -> Iterator[str]:
        return self.reader.keys(entity, spans)

    def marq_sums(self, entity: Entity | str, width: int, buckets=None) -> dict[int, tuple[int, int]]:
        return self.reader.marq_sums(entity, width, buckets)

    def touched_rows(self, entity: Entity | str, since: dt.datetime, above: int) -> list[int] | None:
        return self.reader.touched_rows(entity, since, above)

    def rows_above(self, table: str, marq: int) -> int:
        return self.reader.rows_above(table, marq)

    def deletion_tables(self, entity: Entity | str) -> tuple[str, ...]:
        return self.reader.deletion_tables(entity)

    def change_tables(self, entity: Entity | str) -> tuple[str, ...]:
        return self.reader.change_tables(entity)

    def orphan_parents(self, entity: Entity | str) -> tuple[str, ...]:
        return self.reader.orphan_parents(entity)

    def keys_at(self, entity: Entity | str, marqs) -> set[str] | None:
        return self.reader.keys_at(entity, marqs)

    def limit_orphans(self, entity: Entity | str, since: dt.datetime | None) -> None:
        self.reader.limit_orphans(entity, since)

    def changed_between(self, entity: Entity | str, low: int, top: int) -> Iterator[SourceRow]:
        return self.reader.changed_between(entity, low, top)

    def limit_history(self, start) -> None:
        self.reader.limit_history(start)
        self._history = (start,) if start is not None else None

    def fiscal_year_start(self, today):
        return self.reader.fiscal_year_start(today)

    def duplicate_copies(self, entity: Entity | str) -> dict[int, str]:
        return self.reader.duplicate_copies(entity)

    def table_of(self, entity: Entity | str) -> str:
        return self.reader.table_of(entity)

    def copies_of(self, entity: Entity | str, key: str) -> int:
        return self.reader.copies_of(entity, key)

    def probes(self):
        return self.reader.probes()

    def identity(self):
        return self.reader.identity()

    def main_table(self, entity: Entity | str) -> str:
        return self.reader.main_table(entity)

    def changed(self, entity: Entity | str, since: dt.datetime | None) -> Iterator[SourceRow]:
        """As `Sage100Reader.changed`; a full read of a large table is shared with the helpers."""
        if since is not None or self.workers < 2:
            return self.reader.changed(entity, since)
        entity = Entity(entity)
        span = self.reader.marq_span(entity)
        if span is None or span[1] - span[0] < self._slice_width * MIN_SLICES:
            return self.reader.changed(entity, since)
        passes = self.reader.read_passes(entity)
        if passes:
            rows = (row for read_pass in range(passes) for row in self._read_in_slices(entity, span, read_pass))
        else:
            rows = self._read_in_slices(entity, span)
        return itertools.chain(rows, self.reader.orphans(entity))

    def orphans(self, entity: Entity | str) -> Iterator[SourceRow]:
        return self.reader.orphans(entity)

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=not self._broken)
            self._pool = None

    def __enter__(self) -> "ParallelReader":
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()

    def _read_in_slices(self, entity: Entity, span: tuple[int, int],
                        read_pass: Optional[int] = None) -> Iterator[SourceRow]:
        """The slices of `span`, then of whatever was added during the read, in order.

        Each slice starts at the next row there is, so gaps in `cbMarq` cost nothing."""
        slices: deque[_Slice] = deque()
        most_in_flight = self.workers * SLICES_IN_FLIGHT_PER_PROCESS
        low = span[0]
        newest_first = self.reader.newest_first(entity)
        high = span[1]
        try:
            while True:
                while len(slices) < most_in_flight:
                    if newest_first:
                        if high <= span[0]:
                            break
                        low = max(high - self._slice_width, span[0])
                        slices.append(_Slice(entity, low, high, self._submit(entity, low, high, read_pass),
                                              descending=True, read_pass=read_pass))
                        high = low
                        continue
                    above = self.reader.marq_span(entity, after=low)
                    if above is None:
                        break
                    low, top = above
                    high = min(low + self._slice_width, top)
                    slices.append(_Slice(entity, low, high, self._submit(entity, low, high, read_pass),
                                         read_pass=read_pass))
                    low = high
                if not slices:
                    if newest_first:       # then what was added during the read, oldest first
                        newest = self.reader.marq_span(entity, after=span[1])
                        if newest is not None:
                            yield from self.reader.changed_between(entity, span[1], newest[1], read_pass)
                    return
                head = slices[0]
                if head.rows is None and not head.future.done() and self._read_one_here(slices):
                    continue
                slices.popleft()
                yield from self._rows(head)
        finally:
            if not self._broken:
                for pending in slices:
                    pending.future.cancel()

    def _read_one_here(self, slices: deque[_Slice]) -> bool:
        """Reads in this process the last slice no helper has started; False if there is none."""
        for pending in reversed(slices):
            if pending.rows is None and pending.future.cancel():
                pending.rows = list(self.reader.changed_between(pending.entity, pending.low, pending.top,
                                                                pending.read_pass))
                if pending.descending:
                    pending.rows.reverse()
                self.slices_read_here += 1
                return True
        return False

    def _submit(self, entity: Entity, low: int, top: int, read_pass: Optional[int] = None) -> Future:
        if self._pool is None:
            self._pool = ProcessPoolExecutor(max_workers=self.workers - 1,
                                             mp_context=multiprocessing.get_context("spawn"),
                                             initializer=_configure_helper,
                                             initargs=(self._connection_string, self._batch_rows))
        try:
            return self._pool.submit(_read_slice, entity.value, low, top, self._history, read_pass)
        except BrokenExecutor as exc:
            raise self._stopped(exc) from None

    def _rows(self, piece: _Slice) -> Iterator[SourceRow]:
        if piece.rows is not None:
            yield from piece.rows
            return
        try:
            rows, pid, peak = piece.future.result()
        except BrokenExecutor as exc:
            raise self._stopped(exc) from None
        self.slices_read_by_helpers += 1
        if peak is not None:
            self.helper_peak_rss_mb[pid] = max(peak, self.helper_peak_rss_mb.get(pid, 0.0))
        if piece.descending:
            rows.reverse()
        for key, record_text, record_hash, error, raw_hash, modified, marq, warnings in rows:
            yield SourceRow(entity=piece.entity, key=key, record_text=record_text, record_hash=record_hash, error=error,
                            raw_hash=raw_hash, modified=modified, marq=marq, warnings=warnings)

    def _stopped(self, exc: BaseException) -> RetryableError:
        self._broken = True
        return RetryableError("A process reading the Sage database stopped unexpectedly; the run will be retried.",
                              detail=f"{type(exc).__name__}: {exc}")
