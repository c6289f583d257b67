"""Normalisation of raw Sage values: one form whatever the ODBC driver hands out."""
from __future__ import annotations

import datetime as dt
import itertools
from decimal import Decimal

import pytest

from agent import normalize
from shared import sage_rows


def test_text_is_trimmed_and_blank_is_none():
    assert normalize.text("  Bijouterie Lefèvre  ") == "Bijouterie Lefèvre"
    assert normalize.text("") is None
    assert normalize.text("   ") is None
    assert normalize.text(None) is None


def test_cp1252_text_is_kept_intact():
    assert normalize.text("L’Écrin «Cœur» 50 € – œil") == "L’Écrin «Cœur» 50 € – œil"
    raw = "Perles & Œuvres d’Art 100 € «VIP» ‰".encode("cp1252")
    assert normalize.text(raw) == "Perles & Œuvres d’Art 100 € «VIP» ‰"


def test_binary_is_never_handed_on_as_text():
    for value in (b"\x03\x81%\x19@", bytearray(b"\x03\x81"), memoryview(b"\x00\x01")):
        with pytest.raises(ValueError, match="is a binary value"):
            normalize.text(value)
    assert sage_rows.shown(b"\x03\x81%\x19@") == "X'0381251940'"


def test_decimal_from_float_goes_through_text_not_binary_arithmetic():
    assert normalize.decimal(0.1) == Decimal("0.100000")
    assert str(normalize.decimal(0.1)) == "0.100000"
    assert normalize.decimal(0.1) + normalize.decimal(0.2) == Decimal("0.3")
    assert str(normalize.decimal(1249.9)) == "1249.900000"
    assert str(normalize.decimal(12.345678)) == "12.345678"


def test_decimal_from_every_driver_type_gives_the_same_value():
    expected = Decimal("25000.500000")
    for value in (25000.5, "25000.5", " 25000.50 ", Decimal("25000.5"), Decimal("25000.500000"), b"25000.5"):
        result = normalize.decimal(value)
        assert result == expected and str(result) == "25000.500000", value
    assert str(normalize.decimal(7)) == "7.000000"


def test_decimal_quantizes_to_the_column_scale_or_keeps_its_exponent():
    assert str(normalize.decimal("2.345", scale=2)) == "2.35"  # half away from zero, as SQL Server rounds
    assert str(normalize.decimal("1.10", scale=None)) == "1.10"
    assert normalize.decimal(None) is None
    assert normalize.decimal("") is None


@pytest.mark.parametrize("value", ["abc", float("nan"), float("inf"), "1,5"])
def test_decimal_rejects_what_is_not_a_number(value):
    with pytest.raises(ValueError, match="n.est pas un nombre"):
        normalize.decimal(value)


def test_sage_no_dates_are_none():
    assert normalize.datetime_(dt.datetime(1753, 1, 1)) is None
    assert normalize.datetime_("1753-01-01 00:00:00.000") is None
    assert normalize.datetime_("1900-01-01") is None
    assert normalize.datetime_(dt.date(1900, 1, 1)) is None
    assert normalize.date(dt.datetime(1753, 1, 1)) is None


def test_datetimes_from_text_and_objects():
    expected = dt.datetime(2024, 3, 1, 10, 15, 0, 123000)
    assert normalize.datetime_("2024-03-01 10:15:00.123") == expected
    assert normalize.datetime_("2024-03-01T10:15:00.123") == expected
    assert normalize.datetime_(expected) == expected
    assert normalize.datetime_("2024-03-01") == dt.datetime(2024, 3, 1)
    assert normalize.datetime_(dt.date(2024, 3, 1)) == dt.datetime(2024, 3, 1)
    assert normalize.date("2024-03-01 10:15:00.000") == dt.date(2024, 3, 1)
    assert normalize.datetime_("") is None
    with pytest.raises(ValueError, match="n.est pas une date"):
        normalize.datetime_("le 3 mars")


def test_flags_and_integers():
    assert normalize.flag(1) is True
    assert normalize.flag(0) is False
    assert normalize.flag(None) is False
    assert normalize.flag(1.0) is True
    assert normalize.integer(3.0) == 3
    assert normalize.integer(" 12 ") == 12
    with pytest.raises(ValueError, match="pas un nombre entier"):
        normalize.integer(3.5)


def test_zero_is_none_for_references():
    assert normalize.zero_as_none(0) is None
    assert normalize.zero_as_none(None) is None
    assert normalize.zero_as_none(4) == 4


def test_normalizer_follows_the_declared_column_type():
    assert normalize.by_column_type("  Bague  ", "varchar(69)") == "Bague"
    assert str(normalize.by_column_type(0.1, "numeric(24,6)")) == "0.100000"
    assert str(normalize.by_column_type(0.105, "numeric(10,2)")) == "0.11"
    assert normalize.by_column_type(2.0, "smallint") == 2
    assert normalize.by_column_type("1753-01-01 00:00:00.000", "datetime") is None
    assert normalize.by_column_type(b"\x01", "varbinary(17)") == b"\x01"



ROW_VALUES = [None, "", "  ", " Lefèvre ", "12", "1.5", "x", b"Caf\xe9", bytearray(b"7"), 0, 7, -3, True, False,
              0.0, -0.0, 0.1, 2720.72, 1e-7, 5e-07, 0.0000005, 1e22, float("nan"), float("inf"), Decimal("2.5"),
              Decimal("-0"), Decimal("1E+3"), Decimal("NaN"), Decimal("sNaN"), dt.datetime(2024, 3, 1, 10, 15),
              dt.datetime(1753, 1, 1), dt.datetime(1900, 1, 1), dt.datetime(1900, 1, 2, 8),
              dt.datetime(2024, 3, 1, tzinfo=dt.timezone.utc), dt.date(2024, 3, 1), dt.date(1900, 1, 1),
              "2024-03-01 10:15:00.123", "1753-01-01", "not a date", object()]
ROW_NORMALIZERS = [normalize.text, normalize.integer, normalize.datetime_, normalize.normalizer_for("numeric(24,6)"),
                   normalize.normalizer_for("numeric(24,2)"), normalize.normalizer_for("float"),
                   normalize.normalizer_for("numeric(10,0)"), normalize.normalizer_for("varbinary(10)"), int]


def outcome(function):
    """('ok', result) or the exception's type and message."""
    try:
        return "ok", function()
    except Exception as exc:
        return type(exc).__name__, str(exc)


def test_a_whole_row_is_normalised_exactly_as_value_by_value():
    for normalizer, value in itertools.product(ROW_NORMALIZERS, ROW_VALUES):
        expected = outcome(lambda: normalizer(value))
        as_head = outcome(lambda: normalize.row_normalizer([normalizer], [])((value,))[0][0])
        as_named = outcome(lambda: normalize.row_normalizer([], [("c", normalizer)])((value,))[1]["c"])
        assert as_head == expected and as_named == expected, (normalizer, value)
        if expected[0] == "ok" and isinstance(expected[1], Decimal):
            assert str(as_named[1]) == str(expected[1])


def test_a_whole_row_stops_at_its_first_invalid_value():
    normalizers = [int, normalize.datetime_, normalize.text, normalize.normalizer_for("numeric(24,6)"), normalize.integer]
    row_normalizer = normalize.row_normalizer(normalizers[:2], [(f"c{i}", n) for i, n in enumerate(normalizers[2:])])
    rows = [(1, "2024-01-01", " a ", 1.25, "3"), (2, None, None, float("nan"), "x"), (3, None, None, 1.0, "4.5")]
    for row in rows:
        expected = outcome(lambda: [normalizer(value) for normalizer, value in zip(normalizers, row)])
        got = outcome(lambda: (lambda head, named: [*head, *named.values()])(*row_normalizer(row)))
        assert got == expected
    assert row_normalizer(rows[0]) == ([1, dt.datetime(2024, 1, 1)], {"c0": "a", "c1": Decimal("1.250000"), "c2": 3})
