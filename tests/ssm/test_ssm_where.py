"""The where grammar of the simulator: the documented mode on stored records, the loose mode on
records shaped as the API returns them."""
from __future__ import annotations

from datetime import datetime, timezone

import pytest

from local.simulator.where import (Column, WhereError, compile_documented, compile_where, format_instant,
                                   order_records, parse_order, sort_descending)
from shared.ssm import contract
from shared.ssm.contract import BOOLEAN, DATETIME, NUMBER, REF, REF_LIST, STRING


def _at(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


# --- documented mode ------------------------------------------------------------------------
COLUMNS = {
    "id": Column("id", "integer"), "name": Column("name", STRING), "city": Column("city", STRING),
    "price": Column("price", NUMBER), "deleted": Column("deleted", BOOLEAN),
    "typeId": Column("typeId", REF), "branches": Column("branches", REF_LIST),
    "dateUpdated": Column("dateUpdated", DATETIME), "dateCreated": Column("dateCreated", DATETIME),
    "salesorderId": Column("salesOrderId", REF), "extId": Column("extId", STRING),
}
STORED = [
    {"id": 1, "name": "Durand SA", "city": "Paris", "price": 10.5, "deleted": False, "typeId": 36,
     "branches": [5], "dateUpdated": None, "dateCreated": _at("2024-01-10T08:00:00Z"), "salesOrderId": 70,
     "extId": "D1:C1"},
    {"id": 2, "name": "L'Atelier", "city": None, "price": 3, "deleted": True, "typeId": 37,
     "branches": [5, 6], "dateUpdated": _at("2024-01-12T08:00:00.5Z"), "dateCreated": _at("2024-01-10T09:00:00Z"),
     "salesOrderId": 71, "extId": "D1:C2"},
    {"id": 3, "name": "dupont", "city": "Lyon", "price": None, "deleted": False, "typeId": None,
     "branches": [6], "dateUpdated": _at("2024-01-12T08:00:00.499Z"), "dateCreated": _at("2024-01-11T09:00:00Z"),
     "salesOrderId": 70, "extId": None},
]


def documented(where: str) -> list[int]:
    compiled = compile_documented(where, COLUMNS)
    return [r["id"] for r in STORED if compiled(r)]


@pytest.mark.parametrize("where,expected", [
    ("id=2", [2]),
    ("price > 3", [1]),
    ('name = "DURAND SA"', [1]),                       # without regard to case
    ("name = dupont", [3]),                            # bare value
    ('name = "L\'Atelier"', [2]),                      # a single quote inside double quotes
    ('name LIKE "d%"', [1, 3]),
    ('name LIKE "_upont"', [3]),
    ("city LIKE %y%", [3]),                            # null never matches
    ("typeId = 37", [2]),                              # a reference by its id
    ("branches = 6", [2, 3]),
    ("salesorderId = 70", [1, 3]),                     # the read name, stored under the written one
    ("deleted = 1", [2]), ("deleted = false", [1, 3]), ('deleted = "true"', [2]),
    ('dateUpdated > "2024-01-12T08:00:00.499Z"', [2]),
    ('dateUpdated > "2024-01-12T08:00:00Z"', [2, 3]),
    ("dateCreated>2024-01-10T08:30:00Z OR dateUpdated>2024-01-12T08:00:00.5Z", [2, 3]),
    ('city = "Paris" OR city = "Lyon" AND price > 100', [1]),          # AND binds tighter
    ("id=1 or id=2", [1, 2]),                          # keywords in any case
    ('extId="d1:c2"', [2]),
])
def test_documented_where(where, expected):
    assert documented(where) == expected


@pytest.mark.parametrize("where", [
    "", "id =", "id = 1 AND", "(id = 1)", "id IN (1, 3)", "id <> 2", "id != 2", "price >= 3", "price < 3",
    "name = 'dupont'", "city IS NULL", "NOT id = 1", "typeId.id = 36", "colour = red", "id = x",
    'dateCreated > "2024-01-11"', 'dateCreated > "2024-01-11 09:00:00"', "deleted = maybe",
    "id = 1 ; DROP TABLE", 'name = "a"b"', "id = 1 AND OR id = 2", "LIKE = 1",
])
def test_undocumented_forms_raise(where):
    with pytest.raises(WhereError):
        documented(where)


def test_documented_grammar_agrees_with_the_contract():
    accounts = contract.RESOURCES["accounts"]
    for where in ('name="x" OR extId=y AND typeId=3', "dateCreated>2024-01-01T00:00:00Z", "id IN (1)",
                  "name='x'", "(id=1)", "typeId.id=1", "id<>1", "colour=1"):
        columns = {f.read_name: Column(f.name, f.type) for f in accounts.fields}
        try:
            compile_documented(where, columns)
            accepted = True
        except WhereError:
            accepted = False
        assert accepted == (contract.where_violations(accounts, where) == []), where


def test_candidates_come_from_indexed_equalities_only():
    index = {("extId", "d1:c2"): {2}, ("typeId", 36): {1}}

    def lookup(key, value):
        if key not in ("extId", "typeId", "id"):
            return None
        return {value} if key == "id" else index.get((key, value), set())

    assert compile_documented('extId="D1:C2" OR extId="D1:C9"', COLUMNS).candidates(lookup) == {2}
    assert compile_documented('id=3 OR typeId=36 AND city="Paris"', COLUMNS).candidates(lookup) == {1, 3}
    assert compile_documented('extId="D1:C2" OR city="Paris"', COLUMNS).candidates(lookup) is None
    assert compile_documented("id>1", COLUMNS).candidates(lookup) is None


def test_order_is_descending_nulls_last_ties_by_id_descending():
    by = lambda name: [r["id"] for r in sort_descending(STORED, COLUMNS[name])]  # noqa: E731
    assert by("name") == [2, 1, 3]
    assert by("city") == [1, 3, 2]
    assert by("price") == [1, 2, 3]
    assert by("deleted") == [2, 3, 1]
    assert by("dateUpdated") == [2, 3, 1]
    assert by("typeId") == [2, 1, 3]


def test_instants_are_written_with_0_to_3_fraction_digits():
    assert format_instant(_at("2021-12-14T11:53:29.160Z")) == "2021-12-14T11:53:29.16Z"
    assert format_instant(_at("2021-04-26T16:47:10.100999Z")) == "2021-04-26T16:47:10.1Z"
    assert format_instant(datetime(2024, 1, 15, 9, tzinfo=timezone.utc)) == "2024-01-15T09:00:00Z"


# --- loose mode (Strictness.documented_where_only = False) ----------------------------------
RECORDS = [
    {"id": 1, "name": "Durand SA", "city": "Paris", "price": 10.5, "deleted": False,
     "typeId": {"id": 36, "value": "Client"}, "dateUpdated": None, "dateCreated": "2024-01-10T08:00:00Z"},
    {"id": 2, "name": "L'Atelier", "city": None, "price": 3, "deleted": True,
     "typeId": {"id": 37, "value": "Prospect"}, "dateUpdated": "2024-01-12T08:00:00.5Z",
     "dateCreated": "2024-01-10T09:00:00Z"},
    {"id": 3, "name": "dupont", "city": "Lyon", "price": None, "deleted": False,
     "typeId": None, "dateUpdated": "2024-01-12T08:00:00.499Z", "dateCreated": "2024-01-11T09:00:00Z"},
]


def ids(where: str) -> list[int]:
    predicate = compile_where(where)
    return [r["id"] for r in RECORDS if predicate(r)]


@pytest.mark.parametrize("where,expected", [
    ("", [1, 2, 3]),
    ("id=2", [2]),
    ("id <> 2", [1, 3]),
    ("id != 2", [1, 3]),
    ("price > 3", [1]),
    ("price >= 3", [1, 2]),
    ("price < 10.5", [2]),
    ("price <= 10.5", [1, 2]),
    ("name = 'DURAND SA'", [1]),                       # case-insensitive, as SQL Server
    ('name = "DURAND SA"', [1]),                       # double quotes too
    ("name = 'L''Atelier'", [2]),                      # doubled quote
    ("name LIKE 'd%'", [1, 3]),
    ("name LIKE '_upont'", [3]),
    ("name NOT LIKE 'd%'", [2]),
    ("city NOT LIKE 'P%'", [3]),                       # NULL never matches
    ("city IS NULL", [2]),
    ("city IS NOT NULL", [1, 3]),
    ("city <> 'Paris'", [3]),                          # NULL <> x is not true
    ("id IN (1, 3)", [1, 3]),
    ("id NOT IN (1,3)", [2]),
    ("name IN ('dupont', 'durand sa')", [1, 3]),
    ("typeId.id = 36", [1]),
    ("typeId = 37", [2]),
    ("typeId.value = 'prospect'", [2]),
    ("deleted = 1", [2]),
    ("deleted = false", [1, 3]),
    ("deleted = 'true'", [2]),
    ("dateUpdated > '2024-01-12T08:00:00.499Z'", [2]),
    ("dateUpdated > '2024-01-12 08:00:00.499'", [2]),   # naive is UTC
    ("dateCreated >= '2024-01-10T10:00:00+02:00'", [1, 2, 3]),
    ("dateCreated > '2024-01-11'", [3]),
    ("dateCreated>'2024-01-10T08:30:00Z' OR dateUpdated>'2024-01-12T08:00:00Z'", [2, 3]),
    ("city = 'Paris' OR city = 'Lyon' AND price > 100", [1]),          # AND binds tighter
    ("(city = 'Paris' OR city = 'Lyon') AND price > 100", []),
    ("NOT (id = 1) AND NOT deleted = 1", [3]),
    ("id=1 or id=2", [1, 2]),                          # keywords in any case
])
def test_loose_where(where, expected):
    assert ids(where) == expected


@pytest.mark.parametrize("where", [
    "id =", "id = 1 AND", "(id = 1", "id = 1)", "name LIKE 5", "id IN 1", "id IS 5", "id", "id = 'x",
    "id NOT = 1", "colour = 'red'", "name.id = 1", "typeId.colour = 'x'", "price > 'cheap'",
    "deleted = 'maybe'", "id = 1 ; DROP TABLE",
])
def test_loose_bad_filters_raise(where):
    with pytest.raises(WhereError):
        ids(where)


def test_loose_order_is_descending_unless_asc_is_written():
    by = lambda order: [r["id"] for r in order_records(RECORDS, parse_order(order, set(RECORDS[0])))]  # noqa: E731
    assert by("name") == [2, 1, 3]
    assert by("name ASC") == [3, 1, 2]
    assert by("name DESC") == [2, 1, 3]
    assert by("city asc") == [2, 3, 1]
    assert by("price") == [1, 2, 3]
    assert by("deleted ASC, id DESC") == [3, 1, 2]
    assert by("dateUpdated ASC") == [1, 3, 2]
    assert by("typeId.id ASC") == [3, 1, 2]
    with pytest.raises(WhereError):
        parse_order("name sideways", set(RECORDS[0]))
    with pytest.raises(WhereError):
        parse_order("colour", set(RECORDS[0]))
