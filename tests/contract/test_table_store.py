"""Conformance of every TableStore backend (SQLite file, Azurite) to Table Storage's contract."""
from __future__ import annotations

import datetime as dt
import math
import multiprocessing
import random
import threading

import pytest

from shared.errors import (
    AlreadyExistsError,
    ConcurrencyError,
    EntityTooLargeError,
    NotFoundError,
    TransactionTooLargeError,
)
from shared.keys import row_key, split_row_key
from shared.state.limits import entity_size, prefix_upper_bound, sort_key
from shared.state.protocol import OperationKind, TableEntity, TableOperation
from shared.state.sqlite_store import SqliteTableStore

T = "things"
UTC = dt.timezone.utc


@pytest.fixture
def store(table_store):
    table_store.ensure_table(T)
    return table_store


def rows(store, partition="p", **query):
    return [e.row_key for e in store.query(T, partition, **query)]


def op(kind, rk, data=None, etag=None, pk="p"):
    return TableOperation(OperationKind(kind), TableEntity(pk, rk, data or {}), etag)


# --- single-entity semantics ---------------------------------------------------------------
def test_insert_then_get_returns_the_data_and_an_etag(store):
    written = store.insert(T, TableEntity("p", "r", {"name": "Dupont"}))
    read = store.get(T, "p", "r")
    assert read.data == {"name": "Dupont"}
    assert written.etag and read.etag == written.etag


def test_insert_of_an_existing_entity_fails_and_keeps_the_first(store):
    store.insert(T, TableEntity("p", "r", {"v": 1}))
    with pytest.raises(AlreadyExistsError):
        store.insert(T, TableEntity("p", "r", {"v": 2}))
    assert store.get(T, "p", "r").data == {"v": 1}


def test_get_of_a_missing_entity_raises_and_try_get_returns_none(store):
    with pytest.raises(NotFoundError):
        store.get(T, "p", "missing")
    assert store.try_get(T, "p", "missing") is None


def test_upsert_creates_then_replaces_every_property(store):
    first = store.upsert(T, TableEntity("p", "r", {"a": 1, "b": 2}))
    second = store.upsert(T, TableEntity("p", "r", {"a": 3}))
    assert store.get(T, "p", "r").data == {"a": 3}
    assert first.etag != second.etag


def test_update_replaces_and_respects_the_etag(store):
    first = store.insert(T, TableEntity("p", "r", {"v": 1}))
    second = store.update(T, TableEntity("p", "r", {"v": 2}), etag=first.etag)
    assert second.etag != first.etag
    with pytest.raises(ConcurrencyError):
        store.update(T, TableEntity("p", "r", {"v": 3}), etag=first.etag)
    store.update(T, TableEntity("p", "r", {"w": 4}), etag=None)
    assert store.get(T, "p", "r").data == {"w": 4}


def test_update_of_a_missing_entity_raises_not_found(store):
    with pytest.raises(NotFoundError):
        store.update(T, TableEntity("p", "missing", {"v": 1}), etag=None)
    with pytest.raises(NotFoundError):
        store.update(T, TableEntity("p", "missing", {"v": 1}), etag='W/"datetime\'2020-01-01T00:00:00Z\'"')
    assert store.try_get(T, "p", "missing") is None


def test_delete_is_idempotent_without_etag_and_guarded_with_one(store):
    store.delete(T, "p", "never-existed")
    first = store.insert(T, TableEntity("p", "r", {"v": 1}))
    store.update(T, TableEntity("p", "r", {"v": 2}), etag=first.etag)
    with pytest.raises(ConcurrencyError):
        store.delete(T, "p", "r", etag=first.etag)
    assert store.try_get(T, "p", "r") is not None
    current = store.get(T, "p", "r")
    store.delete(T, "p", "r", etag=current.etag)
    assert store.try_get(T, "p", "r") is None
    with pytest.raises(ConcurrencyError):
        store.delete(T, "p", "r", etag=current.etag)
    store.delete(T, "p", "r")


def test_a_missing_table_is_an_error_and_ensure_table_is_idempotent(table_store):
    with pytest.raises(NotFoundError):
        table_store.get("nothere", "p", "r")
    with pytest.raises(NotFoundError):
        table_store.insert("nothere", TableEntity("p", "r", {}))
    with pytest.raises(NotFoundError):
        list(table_store.query("nothere", "p"))
    table_store.ensure_table("nothere")
    table_store.ensure_table("nothere")
    assert table_store.try_get("nothere", "p", "r") is None


@pytest.mark.parametrize("name", ["ab", "1abc", "has-dash", "x" * 64, "sp ace"])
def test_illegal_table_names_are_refused(table_store, name):
    with pytest.raises(ValueError):
        table_store.ensure_table(name)


# --- concurrent writers --------------------------------------------------------------------
def test_two_readers_both_update_and_the_second_gets_a_concurrency_error(backend):
    one, two = backend.open(), backend.open()
    one.ensure_table(T)
    one.insert(T, TableEntity("p", "r", {"owner": "nobody"}))
    read_one, read_two = one.get(T, "p", "r"), two.get(T, "p", "r")
    one.update(T, TableEntity("p", "r", {"owner": "one"}), etag=read_one.etag)
    with pytest.raises(ConcurrencyError):
        two.update(T, TableEntity("p", "r", {"owner": "two"}), etag=read_two.etag)
    assert two.get(T, "p", "r").data == {"owner": "one"}


def _increment(store, times: int, errors: list) -> None:
    try:
        for _ in range(times):
            while True:
                current = store.get(T, "p", "counter")
                try:
                    store.update(T, TableEntity("p", "counter", {"n": current.data["n"] + 1}), etag=current.etag)
                    break
                except ConcurrencyError:
                    continue
    except Exception as error:  # surfaced by the assertion below
        errors.append(error)


def test_racing_threads_never_lose_an_update(backend):
    stores = [backend.open() for _ in range(2)]
    stores[0].ensure_table(T)
    stores[0].insert(T, TableEntity("p", "counter", {"n": 0}))
    errors: list = []
    threads = [threading.Thread(target=_increment, args=(stores[i % 2], 10, errors)) for i in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert stores[1].get(T, "p", "counter").data == {"n": 60}


def _increment_in_process(path: str, times: int) -> None:
    store = SqliteTableStore(path)
    errors: list = []
    _increment(store, times, errors)
    store.close()
    if errors:
        raise errors[0]


def test_sqlite_processes_sharing_one_file_never_lose_an_update(tmp_path):
    path = str(tmp_path / "shared.db")
    store = SqliteTableStore(path)
    store.ensure_table(T)
    store.insert(T, TableEntity("p", "counter", {"n": 0}))
    context = multiprocessing.get_context("spawn")
    workers = [context.Process(target=_increment_in_process, args=(path, 25)) for _ in range(3)]
    for w in workers:
        w.start()
    errors: list = []
    _increment(store, 25, errors)
    for w in workers:
        w.join(60)
    assert errors == [] and [w.exitcode for w in workers] == [0, 0, 0]
    assert store.get(T, "p", "counter").data == {"n": 100}
    store.close()
    reopened = SqliteTableStore(path)
    assert reopened.get(T, "p", "counter").data == {"n": 100}
    reopened.close()


# --- transactions -------------------------------------------------------------------------
def test_a_transaction_of_100_operations_writes_them_all(store):
    etags = store.transact(T, "p", [op("insert", f"r{i:03d}", {"i": i}) for i in range(100)])
    assert rows(store) == [f"r{i:03d}" for i in range(100)]
    assert etags[7] == store.get(T, "p", "r007").etag


def test_a_transaction_of_101_operations_is_refused_and_writes_nothing(store):
    with pytest.raises(TransactionTooLargeError):
        store.transact(T, "p", [op("insert", f"r{i:03d}") for i in range(101)])
    assert rows(store) == []


def test_a_transaction_across_partitions_is_refused_and_writes_nothing(store):
    with pytest.raises(TransactionTooLargeError):
        store.transact(T, "p", [op("insert", "a"), op("insert", "b", pk="q")])
    assert rows(store) == [] and rows(store, "q") == []


def test_a_failing_operation_rolls_the_whole_transaction_back(store):
    existing = store.insert(T, TableEntity("p", "existing", {"v": 1}))
    store.insert(T, TableEntity("p", "to-delete", {"v": 1}))
    with pytest.raises(AlreadyExistsError):
        store.transact(T, "p", [op("insert", "new"), op("delete", "to-delete"), op("insert", "existing")])
    assert rows(store) == ["existing", "to-delete"]
    store.update(T, TableEntity("p", "existing", {"v": 2}), etag=existing.etag)
    with pytest.raises(ConcurrencyError):
        store.transact(T, "p", [op("upsert", "new"), op("update", "existing", {"v": 3}, etag=existing.etag)])
    assert rows(store) == ["existing", "to-delete"]
    assert store.get(T, "p", "existing").data == {"v": 2}
    with pytest.raises(NotFoundError):
        store.transact(T, "p", [op("upsert", "new"), op("update", "missing", {"v": 3})])
    assert rows(store) == ["existing", "to-delete"]


def test_a_transaction_applies_each_kind_and_returns_the_new_etags(store):
    old = store.insert(T, TableEntity("p", "old", {"v": 1}))
    store.insert(T, TableEntity("p", "gone", {"v": 1}))
    etags = store.transact(T, "p", [
        op("update", "old", {"v": 2}, etag=old.etag),
        op("delete", "gone"),
        op("delete", "never-existed"),
        op("upsert", "up", {"v": 3}),
        op("insert", "new", {"v": 4}),
    ])
    assert rows(store) == ["new", "old", "up"]
    assert etags[1] is None and etags[2] is None
    assert etags[0] == store.get(T, "p", "old").etag and etags[4] == store.get(T, "p", "new").etag
    with pytest.raises(ConcurrencyError):
        store.transact(T, "p", [op("upsert", "x"), op("delete", "never-existed", etag=old.etag)])
    assert store.try_get(T, "p", "x") is None


def test_an_oversize_entity_inside_a_transaction_is_refused_before_anything_is_written(store):
    with pytest.raises(EntityTooLargeError):
        store.transact(T, "p", [op("insert", "small"), op("insert", "big", {"s": "x" * 40_000})])
    assert rows(store) == []


# --- limits -------------------------------------------------------------------------------
def test_the_size_formula_is_table_storage_s():
    assert entity_size("p", "r", {"name": "abc"}) == 4 + 2 * 2 + (8 + 2 * 4 + 4 + 2 * 3)
    assert entity_size("p", "r", {"i": 1, "j": 2**40, "f": 1.0, "b": True, "d": dt.datetime.now(UTC),
                                  "n": None}) == 8 + (10 + 4) + (10 + 8) + (10 + 8) + (10 + 1) + (10 + 8)
    assert entity_size("", "", {"e": "😀"}) == 4 + 8 + 2 + 4 + 4


def test_an_entity_over_1_mib_is_refused_with_a_clear_error(store):
    data = {f"part{i}": "x" * 32_000 for i in range(17)}
    with pytest.raises(EntityTooLargeError) as raised:
        store.insert(T, TableEntity("p", "huge", data))
    text = str(raised.value)
    assert "1 MiB" in text and "things" in text and "huge" in text and "1,048,576" in text
    assert store.try_get(T, "p", "huge") is None
    with pytest.raises(EntityTooLargeError):
        store.upsert(T, TableEntity("p", "huge", data))
    assert store.try_get(T, "p", "huge") is None


def test_a_string_property_over_64_kib_is_refused_and_one_at_the_limit_is_kept(store):
    store.insert(T, TableEntity("p", "limit", {"s": "x" * 32_768}))
    assert store.get(T, "p", "limit").data["s"] == "x" * 32_768
    with pytest.raises(EntityTooLargeError) as raised:
        store.insert(T, TableEntity("p", "over", {"s": "x" * 32_769}))
    assert "'s'" in str(raised.value) and "64 KiB" in str(raised.value)
    with pytest.raises(EntityTooLargeError):
        store.insert(T, TableEntity("p", "emoji", {"s": "😀" * 16_385}))
    assert rows(store) == ["limit"]


def test_more_than_252_properties_are_refused(store):
    store.insert(T, TableEntity("p", "ok", {f"p{i}": i for i in range(252)}))
    with pytest.raises(EntityTooLargeError):
        store.insert(T, TableEntity("p", "over", {f"p{i}": i for i in range(253)}))
    assert len(store.get(T, "p", "ok").data) == 252


@pytest.mark.parametrize("data, error", [
    ({"when": dt.datetime(2024, 1, 1)}, ValueError),
    ({"big": 2**63}, ValueError),
    ({"bad name": 1}, ValueError),
    ({"RowKey": "x"}, ValueError),
    ({"values": [1, 2]}, TypeError),
    ({"blob": b"bytes"}, TypeError),
])
def test_values_table_storage_cannot_hold_are_refused(store, data, error):
    with pytest.raises(error):
        store.insert(T, TableEntity("p", "r", data))
    assert store.try_get(T, "p", "r") is None


# --- keys ---------------------------------------------------------------------------------
AWKWARD_KEYS = ["C/1", "C/10", "C%2F1", "back\\slash", "hash#1", "what?", "tab\there", "nul\x00l", "del\x7f",
                "c1\x85", "Élodie Müller", "ŒUVRE", "😀 smile", "pipe|key", "quote'key", 'dq"', "  spaced  ",
                "percent%", "%", "", "+plus&amp", "日本語"]


def test_awkward_sage_keys_round_trip_through_encoded_row_keys(store):
    for raw in AWKWARD_KEYS:
        store.upsert(T, TableEntity("p", row_key("account", raw), {"raw": raw}))
    store.upsert(T, TableEntity("p", row_key("accounts", "C/1"), {"raw": "other entity"}))
    for raw in AWKWARD_KEYS:
        assert store.get(T, "p", row_key("account", raw)).data == {"raw": raw}
    found = [split_row_key(e.row_key)[1] for e in store.query(T, "p", prefix=row_key("account") + "|")]
    assert sorted(found) == sorted(AWKWARD_KEYS)
    for raw in filter(None, AWKWARD_KEYS):
        prefix = row_key("account", raw)
        matches = rows(store, prefix=prefix)
        assert prefix in matches and all(m.startswith(prefix) for m in matches)
    for raw in AWKWARD_KEYS:
        store.delete(T, "p", row_key("account", raw))
    assert rows(store) == [row_key("accounts", "C/1")]


def test_a_prefix_of_an_encoded_key_matches_exactly_the_keys_that_start_with_it(store):
    for raw in ["C/1", "C/10", "C%2F1", "C", "C/2"]:
        store.upsert(T, TableEntity("p", row_key("account", raw), {}))
    found = [split_row_key(e.row_key)[1] for e in store.query(T, "p", prefix=row_key("account", "C/1"))]
    assert found == ["C/1", "C/10"]


@pytest.mark.parametrize("bad", ["a/b", "a\\b", "a#b", "a?b", "a\x01b", "a\x9fb", "x" * 513])
def test_illegal_raw_keys_are_refused(store, bad):
    with pytest.raises(ValueError):
        store.insert(T, TableEntity("p", bad, {}))
    with pytest.raises(ValueError):
        store.insert(T, TableEntity(bad, "r", {}))
    with pytest.raises(ValueError):
        store.try_get(T, "p", bad)
    with pytest.raises(ValueError):
        store.delete(T, "p", bad)


def test_the_same_row_key_twice_in_one_transaction_is_refused(store):
    with pytest.raises(ValueError):
        store.transact(T, "p", [op("upsert", "a"), op("delete", "a")])


# --- values -------------------------------------------------------------------------------
def test_every_value_type_round_trips_exactly(store):
    paris = dt.timezone(dt.timedelta(hours=2))
    data = {
        "text": "Société Générale — 😀", "empty": "",
        "small": 42, "negative": -(2**31), "int32_max": 2**31 - 1, "int64": 2**40 + 7,
        "int64_min": -(2**63), "int64_max": 2**63 - 1,
        "whole": 1.0, "fraction": 0.1 + 0.2, "tiny": 5e-324, "huge": 1.7976931348623157e308,
        "infinite": math.inf, "yes": True, "no": False,
        "moment": dt.datetime(2024, 2, 29, 23, 59, 59, 123456, tzinfo=UTC),
        "paris": dt.datetime(2024, 7, 1, 12, 0, tzinfo=paris),
        "nothing": None,
    }
    store.insert(T, TableEntity("p", "r", data))
    read = store.get(T, "p", "r").data
    assert read.get("nothing") is None
    for name, value in data.items():
        if value is None:
            continue
        assert read[name] == value, name
        assert type(read[name]) is type(value), name
    assert read["paris"].utcoffset() == dt.timedelta(0)
    assert read["paris"] == dt.datetime(2024, 7, 1, 10, 0, tzinfo=UTC)


def test_not_a_number_round_trips(store):
    store.insert(T, TableEntity("p", "r", {"nan": math.nan}))
    assert math.isnan(store.get(T, "p", "r").data["nan"])


# --- queries ------------------------------------------------------------------------------
ORDER_KEYS = ["a", "B", "é", "😀", "\uff01", "a|b", "ab", "", "~", "Z", "0", "a b"]


def test_rows_come_back_in_table_storage_s_ordinal_order(store):
    shuffled = ORDER_KEYS[:]
    random.Random(7).shuffle(shuffled)
    for key in shuffled:
        store.insert(T, TableEntity("p", key, {}))
    expected = sorted(ORDER_KEYS, key=sort_key)
    assert expected.index("😀") < expected.index("\uff01")
    assert rows(store) == expected


def test_prefix_start_and_limit_select_the_right_rows(store):
    keys = ["a", "a|1", "a|2", "a|3", "ab", "b", "b|1"]
    store.transact(T, "p", [op("insert", k) for k in keys])
    store.insert(T, TableEntity("other", "a|9", {}))
    assert rows(store, prefix="a|") == ["a|1", "a|2", "a|3"]
    assert rows(store, prefix="a") == ["a", "ab", "a|1", "a|2", "a|3"]
    assert rows(store, start="a|2") == ["a|2", "a|3", "b", "b|1"]
    assert rows(store, prefix="a|", start="a|2") == ["a|2", "a|3"]
    assert rows(store, prefix="a|", start="0") == ["a|1", "a|2", "a|3"]
    assert rows(store, prefix="a|", limit=2) == ["a|1", "a|2"]
    assert rows(store, limit=0) == []
    assert rows(store, prefix="zz") == []
    assert rows(store, "nobody") == []


@pytest.mark.parametrize("prefix", ["\uffff", "x\U0010ffff", "\ud7ff", "😀"])
def test_prefixes_at_the_edges_of_utf16_still_match_exactly(store, prefix):
    keys = [prefix, prefix + "a", prefix[:-1], prefix[:-1] + "\uffff", prefix[:-1] + "😀", prefix[:-1] + "\U0010ffff",
            prefix[:-1] + "\ue000", "zz"]
    for key in dict.fromkeys(keys):
        store.upsert(T, TableEntity("p", key, {}))
    expected = sorted({k for k in keys if k.startswith(prefix)}, key=sort_key)
    assert rows(store, prefix=prefix) == expected


def test_prefix_upper_bound_is_the_first_key_past_the_prefix():
    assert prefix_upper_bound("abc") == "abd"
    assert prefix_upper_bound("a\uffff") == "b"
    assert prefix_upper_bound("") is None and prefix_upper_bound("\uffff") is None
    assert prefix_upper_bound("😀") == "😁"
    assert sort_key(prefix_upper_bound("\ud7ff")) > sort_key("\ud7ff\U0010ffff")


def test_a_query_longer_than_one_page_returns_every_row_once(store):
    keys = [f"k{i:05d}" for i in range(1_150)]
    for start in range(0, len(keys), 100):
        store.transact(T, "p", [op("insert", k) for k in keys[start:start + 100]])
    assert rows(store) == keys
    assert rows(store, limit=1_020) == keys[:1_020]
    assert rows(store, prefix="k010") == keys[1_000:1_100]


def test_partitions_lists_each_partition_once(store):
    for pk in ["dossier-b", "dossier-a", "dossier-a", "é"]:
        store.upsert(T, TableEntity(pk, f"r{random.random()}", {}))
    assert store.partitions(T) == ["dossier-a", "dossier-b", "é"]
