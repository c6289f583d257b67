"""Full reads shared among reader processes give exactly the rows of one in-process read."""
from __future__ import annotations

import datetime as dt
import os
import signal

import pytest

from agent import demo_builder as sage
from agent.demo_builder import build_demo_dossier
from agent.odbc import sqlite_connection_string
from agent.sage100.parallel import MIN_SLICES, SLICE_WIDTH_FACTOR, ParallelReader
from agent.sage100.reader import Sage100Reader
from agent_support import Harness, build_dossier
from shared.errors import RetryableError
from shared.models import Entity

BATCH_ROWS = 5
T = dt.datetime(2025, 3, 3, 9, 0)


@pytest.fixture(scope="module")
def small_template(tmp_path_factory):
    path = tmp_path_factory.mktemp("parallel") / "BIJOU.db"
    build_demo_dossier(path, size="small", seed=5, bad_rows=True)
    return path


@pytest.fixture
def small(small_template, tmp_path):
    path = tmp_path / "BIJOU.db"
    path.write_bytes(small_template.read_bytes())
    return path


def parallel_reader(path, open_sage, *, workers: int = 2, connection_string: str | None = None) -> ParallelReader:
    reader = Sage100Reader(open_sage(path), batch_rows=BATCH_ROWS)
    return ParallelReader(reader, connection_string or sqlite_connection_string(path), workers=workers,
                          batch_rows=BATCH_ROWS)


def test_a_full_read_by_the_workers_gives_the_rows_of_an_in_process_read(small, open_sage):
    alone = Sage100Reader(open_sage(small), batch_rows=BATCH_ROWS)
    with parallel_reader(small, open_sage) as shared:
        for entity in alone.entities():
            before = shared.slices_read_by_helpers
            expected = list(alone.changed(entity, None))
            rows = list(shared.changed(entity, None))
            assert rows == expected, entity
            # documents newest first, accounts clients then prospects (what sales reps need first),
            # each pass in cbMarq order
            marqs = [row.marq for row in rows][::-1 if alone.newest_first(entity) else 1]
            descents = sum(1 for a, b in zip(marqs, marqs[1:]) if b < a)
            assert descents <= max(alone.read_passes(entity) - 1, 0), entity
            low, top = alone.marq_span(entity)
            large = top - low >= BATCH_ROWS * SLICE_WIDTH_FACTOR * MIN_SLICES
            assert (shared.slices_read_by_helpers > before) == large, entity
        assert shared.slices_read_by_helpers > 0 and shared.helper_peak_rss_mb
    invalid = [row for row in list(alone.changed(Entity.ACCOUNT, None)) if row.error]
    assert invalid and all(row.raw_hash and row.record is None for row in invalid)


def test_reads_since_a_watermark_and_small_tables_stay_in_process(small, open_sage):
    sage.update_row(small, "F_COMPTET", {"CT_Num": "ECRIN"}, {"CT_Telecopie": "01 42 00 00 00"}, at=T)
    with parallel_reader(small, open_sage) as shared:
        assert [row.key for row in shared.changed(Entity.ACCOUNT, T)] == ["ECRIN"]
        assert list(shared.changed(Entity.USER, None))
        assert shared.slices_read_by_helpers == 0 and shared.helper_peak_rss_mb == {}


def test_one_worker_reads_everything_in_process(small, open_sage):
    with parallel_reader(small, open_sage, workers=1) as alone:
        assert len(list(alone.changed(Entity.INVOICE, None))) > 0
        assert alone.slices_read_by_helpers == 0


def test_rows_added_during_the_read_are_read_too(small, open_sage):
    with parallel_reader(small, open_sage) as shared:
        rows = shared.changed(Entity.ACCOUNT, None)
        first = next(rows)
        sage.insert_row(small, "F_COMPTET", {"cbMarq": 9_000_000, "CT_Num": "TARDIF", "CT_Type": 0,
                                             "CT_Intitule": "Bijouterie Tardive"}, at=T)
        keys = [first.key] + [row.key for row in rows]
    assert "TARDIF" in keys and len(keys) == len(set(keys))


def test_an_error_in_a_worker_reaches_the_caller_as_it_is(small, open_sage, tmp_path):
    elsewhere = sqlite_connection_string(tmp_path / "not-a-sage-database.db")
    with parallel_reader(small, open_sage, connection_string=elsewhere) as shared:
        with pytest.raises(RetryableError, match="no such table: F_COMPTET"):
            list(shared.changed(Entity.ACCOUNT, None))


def test_a_worker_that_dies_makes_the_read_fail_to_be_retried(small, open_sage):
    with parallel_reader(small, open_sage) as shared:
        rows = shared.changed(Entity.INVOICE, None)
        next(rows)
        for pid in shared.helper_peak_rss_mb:
            os.kill(pid, signal.SIGKILL)
        with pytest.raises(RetryableError, match="stopped unexpectedly"):
            list(rows)


def test_a_dossier_synced_with_reader_processes_sends_what_one_process_sends(tmp_path):
    sent = {}
    for workers in (1, 2):
        (tmp_path / f"workers-{workers}").mkdir()
        agent = Harness(tmp_path / f"workers-{workers}")
        build_dossier(agent.folder, "BIJOU", size="small", seed=5, bad_rows=True)
        try:
            result = agent.run("BIJOU", batch_rows=BATCH_ROWS, read_workers=workers)
            assert result.error is None
            sent[workers] = [(e.op, e.entity, e.key, e.hash, e.error) for e in agent.drain("BIJOU").changes()]
        finally:
            agent.close()
    assert sent[2] == sent[1] and len(sent[1]) > 100


def test_a_full_read_by_the_workers_ends_with_the_orphan_rows_as_an_in_process_read(small, open_sage):
    connection = open_sage(small)
    cursor = connection.cursor()
    number = cursor.execute("SELECT MAX(CT_No) FROM F_CONTACTT").fetchone()[0] + 1
    line = cursor.execute("SELECT MAX(DL_No) FROM F_DOCLIGNE").fetchone()[0] + 1
    cursor.close()
    connection.rollback()
    sage.insert_row(small, "F_CONTACTT", {"CT_No": number, "CT_Num": "ZZABSENT", "CT_Nom": "Orphelin"}, at=T)
    sage.insert_row(small, "F_DOCLIGNE", {"DO_Domaine": 0, "DO_Type": 6, "DO_Piece": "FA99999", "DL_No": line,
                                          "DL_Ligne": 1000, "AR_Ref": "BAAR01"}, at=T)
    alone = Sage100Reader(open_sage(small), batch_rows=BATCH_ROWS)
    with parallel_reader(small, open_sage) as shared:
        for entity, key in ((Entity.CONTACT, str(number)), (Entity.INVOICE, "F:FA99999")):
            rows = list(shared.changed(entity, None))
            assert rows == list(alone.changed(entity, None)) and rows[-1].key == key and rows[-1].record is None
            assert [row.key for row in rows if row.record is None].count(key) == 1
        assert shared.slices_read_by_helpers > 0
