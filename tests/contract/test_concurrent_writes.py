"""Transactions that threads ask for at the same time are written together (SQLite: one fsync'd
commit; Azure: one batch request per partition), yet each stays all or nothing, none is bigger
than Table Storage allows, every caller returns once its write is stored (read back by another
store, as another process would), and a write refused (a stale ETag) leaves the others in place."""
from __future__ import annotations

import threading

import pytest

from shared.errors import ConcurrencyError, TransactionTooLargeError
from shared.state.protocol import MAX_TRANSACTION_OPERATIONS, OperationKind, TableEntity, TableOperation

TABLE = "links"


@pytest.fixture
def stores(backend):
    """A store the threads write with, and another one reading what they stored."""
    writer, reader = backend.open(), backend.open()
    writer.ensure_table(TABLE)
    return writer, reader


def insert(pk: str, rk: str, **data) -> TableOperation:
    return TableOperation(OperationKind.INSERT, TableEntity(pk, rk, data))


def stored(store, pk: str) -> int:
    return sum(1 for _ in store.query(TABLE, pk))


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


def test_writes_of_several_threads_are_all_stored_when_they_return(stores):
    writer, reader = stores

    def job(n):
        for i in range(20):
            writer.transact(TABLE, "D", [insert("D", f"l|{n}|{i}", n=i), insert("D", f"s|{n}|{i}", n=i)])
        return stored(reader, "D")

    results = run_together([lambda n=n: job(n) for n in range(4)])

    assert all(isinstance(result, int) and result >= 40 for result in results)   # its own 40 at least
    assert stored(reader, "D") == 160


def test_no_write_holds_more_than_100_operations(stores):
    writer, reader = stores
    big = MAX_TRANSACTION_OPERATIONS * 6 // 10                # two such writes cannot be sent together
    commits = getattr(writer, "commits", None)
    results = run_together([lambda n=n: writer.transact(TABLE, "P", [insert("P", f"r{n}|{i}") for i in range(big)])
                            for n in range(3)])

    assert all(isinstance(result, list) and len(result) == big for result in results)
    assert stored(reader, "P") == 3 * big
    if commits is not None:                                   # SQLite counts its commits
        assert writer.commits - commits == 3
    with pytest.raises(TransactionTooLargeError):
        writer.transact(TABLE, "P", [insert("P", f"x{i}") for i in range(MAX_TRANSACTION_OPERATIONS + 1)])


def test_a_refused_write_leaves_the_others_sent_with_it_in_place(stores):
    writer, reader = stores
    first = writer.insert(TABLE, TableEntity("D", "held", {"v": 1}))
    writer.update(TABLE, TableEntity("D", "held", {"v": 2}), etag=first.etag)     # first.etag is stale now

    results = run_together([
        lambda: writer.update(TABLE, TableEntity("D", "held", {"v": 3}), etag=first.etag),
        *[lambda n=n: writer.transact(TABLE, "D", [insert("D", f"ok{n}"), insert("D", f"ok{n}b")]) for n in range(3)],
    ])

    assert isinstance(results[0], ConcurrencyError)
    assert all(isinstance(result, list) and len(result) == 2 and all(results[1:]) for result in results[1:])
    assert reader.get(TABLE, "D", "held").data == {"v": 2}
    assert stored(reader, "D") == 7
