"""The SQLite state store commits the writes its threads ask for at the same time together: each
write stays all or nothing, a commit never holds more than Table Storage's 100 operations, every
caller returns once its write is on disk (read back from a fresh connection), and a write refused
(a stale ETag) leaves the others of its commit in place."""
from __future__ import annotations

import sqlite3
import threading

import pytest

from shared.errors import ConcurrencyError, TransactionTooLargeError
from shared.state.protocol import MAX_TRANSACTION_OPERATIONS, OperationKind, TableEntity, TableOperation
from shared.state.sqlite_store import SqliteTableStore


@pytest.fixture
def store(tmp_path):
    store = SqliteTableStore(tmp_path / "state.db")
    store.ensure_table("links")
    yield store
    store.close()


def insert(pk: str, rk: str, **data) -> TableOperation:
    return TableOperation(OperationKind.INSERT, TableEntity(pk, rk, data))


def on_disk(store: SqliteTableStore) -> dict[str, int]:
    """Row keys per partition, read by another connection (what survives the process)."""
    with sqlite3.connect(store.path) as db:
        return dict(db.execute("SELECT partition_key, COUNT(*) FROM entities WHERE table_name = 'links'"
                               " GROUP BY partition_key"))


def run_together(jobs) -> list:
    """Run the jobs in threads started at once; returns each one's result or exception."""
    start = threading.Barrier(len(jobs))
    results: list = [None] * len(jobs)

    def run(index, job):
        start.wait()
        try:
            results[index] = job()
        except Exception as exc:          # noqa: BLE001 - the test looks at it
            results[index] = exc

    threads = [threading.Thread(target=run, args=(i, job)) for i, job in enumerate(jobs)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return results


def test_writes_of_several_threads_share_commits_and_are_all_on_disk_when_they_return(store):
    def writer(n):
        def job():
            for i in range(50):
                store.transact("links", f"D{n}", [insert(f"D{n}", f"l|{i}", n=i), insert(f"D{n}", f"s|{i}", n=i)])
            return on_disk(store).get(f"D{n}")
        return job

    results = run_together([writer(n) for n in range(4)])

    assert all(result == 100 for result in results)           # each saw its own 100 rows on disk at return
    assert on_disk(store) == {f"D{n}": 100 for n in range(4)}


def test_a_commit_never_holds_more_than_100_operations(store):
    big = MAX_TRANSACTION_OPERATIONS * 6 // 10                # two such writes cannot share a commit
    before = store.commits
    results = run_together([lambda n=n: store.transact("links", f"P{n}", [insert(f"P{n}", f"r{i}") for i in range(big)])
                            for n in range(3)])

    assert all(isinstance(result, list) and len(result) == big for result in results)
    assert store.commits - before == 3
    with pytest.raises(TransactionTooLargeError):
        store.transact("links", "P9", [insert("P9", f"r{i}") for i in range(MAX_TRANSACTION_OPERATIONS + 1)])


def test_a_refused_write_leaves_the_others_of_its_commit_in_place(store):
    first = store.insert("links", TableEntity("D", "held", {"v": 1}))
    store.update("links", TableEntity("D", "held", {"v": 2}), etag=first.etag)     # first.etag is stale now

    results = run_together([
        lambda: store.update("links", TableEntity("D", "held", {"v": 3}), etag=first.etag),
        *[lambda n=n: store.transact("links", "D", [insert("D", f"ok{n}"), insert("D", f"ok{n}b")]) for n in range(3)],
    ])

    assert isinstance(results[0], ConcurrencyError)
    assert all(isinstance(result, list) for result in results[1:])
    assert store.get("links", "D", "held").data == {"v": 2}
    assert on_disk(store) == {"D": 7}
