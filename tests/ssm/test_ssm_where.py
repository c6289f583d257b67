"""The where grammar of the simulator, evaluated on records shaped as the API returns them."""
from __future__ import annotations

import pytest

from local.simulator.where import WhereError, compile_where, order_records, parse_order

RECORDS = [
    {"id": 1, "name": "Durand SA", "city": "Paris", "price": 10.5, "deleted": False,
     "typeId": {"id": 36, "value": "Client"}, "dateUpdated": None, "dateCreated": "2024-01-10T08:00:00.000Z"},
    {"id": 2, "name": "L'Atelier", "city": None, "price": 3, "deleted": True,
     "typeId": {"id": 37, "value": "Prospect"}, "dateUpdated": "2024-01-12T08:00:00.500Z",
     "dateCreated": "2024-01-10T09:00:00.000Z"},
    {"id": 3, "name": "dupont", "city": "Lyon", "price": None, "deleted": False,
     "typeId": None, "dateUpdated": "2024-01-12T08:00:00.499Z", "dateCreated": "2024-01-11T09:00:00.000Z"},
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
def test_where(where, expected):
    assert ids(where) == expected


@pytest.mark.parametrize("where", [
    "id =", "id = 1 AND", "(id = 1", "id = 1)", "name LIKE 5", "id IN 1", "id IS 5", "id", "id = 'x",
    "id NOT = 1", "colour = 'red'", "name.id = 1", "typeId.colour = 'x'", "price > 'cheap'",
    "deleted = 'maybe'", "id = 1 ; DROP TABLE",
])
def test_bad_filters_raise(where):
    with pytest.raises(WhereError):
        ids(where)


def test_order_by_one_or_several_fields_nulls_first_then_id():
    by = lambda order: [r["id"] for r in order_records(RECORDS, parse_order(order, set(RECORDS[0])))]  # noqa: E731
    assert by("name") == [3, 1, 2]
    assert by("name DESC") == [2, 1, 3]
    assert by("city") == [2, 3, 1]
    assert by("price desc") == [1, 2, 3]
    assert by("deleted, id DESC") == [3, 1, 2]
    assert by("dateUpdated") == [1, 3, 2]
    assert by("typeId.id") == [3, 1, 2]
    with pytest.raises(WhereError):
        parse_order("name sideways", set(RECORDS[0]))
    with pytest.raises(WhereError):
        parse_order("colour", set(RECORDS[0]))
