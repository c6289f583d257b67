"""Sage 100 pricing of quote lines (agent.sage100.pricing), one test per rule and a few
combinations, on tiny demo dossiers read through pyodbc (SQLite ODBC driver).

Each test adds its own rows (article TART, customer TCLI in tariff category 2, ...) so the
expected figures follow from the rows written here; every expected value is computed by hand
in the comment next to it. Amounts are compared as text so that the type (Decimal, never float)
and the number of decimals are checked too.
"""
from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest

from agent.demo_builder import build_demo_dossier, delete_row, insert_row, update_row
from agent.odbc import connect, sqlite_connection_string
from agent.sage100.pricing import (BREAK_KINDS, PRICE_SOURCES, LineRequest, PricingRefused, Reason,
                                   category_bands_key, price_lines, price_quote)
from shared.errors import ConnectorError

DATE = dt.date(2024, 9, 2)
CUSTOMER = "TCLI"
ARTICLE = "TART"


@pytest.fixture
def db(tmp_path):
    path = build_demo_dossier(tmp_path / "D.db", size="tiny", seed=11).path
    add_customer(path, CUSTOMER, category=2)
    add_article(path, ARTICLE, "100")
    return path


@pytest.fixture
def sage(db):
    connection = connect(sqlite_connection_string(db))
    yield connection
    connection.close()


# --- rows, as a Sage user enters them ----------------------------------------------------------------

def add_customer(db, num, *, category=1, discount="0", **extra):
    insert_row(db, "F_COMPTET", {"CT_Num": num, "CT_Intitule": f"Client {num}", "CT_Type": 0, "N_CatTarif": category,
                                 "CT_Taux02": Decimal(discount), **extra})


def add_article(db, ref, price, **extra):
    insert_row(db, "F_ARTICLE", {"AR_Ref": ref, "AR_Design": f"Article {ref}", "FA_CodeFamille": "BAGUES",
                                 "AR_PrixVen": Decimal(price), "AR_UniteVen": 1, "AR_SuiviStock": 2, **extra})


def add_tariff(db, ref, price, *, category=0, customer=None, remise="0", kind=0, **extra):
    insert_row(db, "F_ARTCLIENT", {"AR_Ref": ref, "AC_Categorie": category, "CT_Num": customer,
                                   "AC_PrixVen": Decimal(price), "AC_Remise": Decimal(remise), "AC_QteMont": kind,
                                   **extra})


def add_bands(db, ref, refcf, bands):
    """bands: (TQ_BorneSup, TQ_Remise01REM_Valeur, TQ_PrixNet)."""
    for bound, discount, net in bands:
        insert_row(db, "F_TARIFQTE", {"AR_Ref": ref, "TQ_RefCF": refcf, "TQ_BorneSup": Decimal(bound),
                                      "TQ_Remise01REM_Valeur": Decimal(discount), "TQ_Remise01REM_Type": 1,
                                      "TQ_PrixNet": Decimal(net)})


def price_one(sage, quantity, *, article=ARTICLE, tiers=CUSTOMER, stock_depot=None, **options):
    [line] = price_lines(sage, tiers=tiers, date=DATE, lines=[LineRequest(article, Decimal(quantity))],
                         stock_depot=stock_depot, **options)
    return line


def figures(line):
    """(unit price, discount %, amount) as text, after checking each is a Decimal."""
    values = (line.unit_price, line.discount, line.amount)
    assert all(type(value) is Decimal for value in values)
    return tuple(str(value) for value in values)


def refusal_of(sage, lines, *, tiers=CUSTOMER, **options):
    with pytest.raises(PricingRefused) as caught:
        price_lines(sage, tiers=tiers, date=DATE, lines=lines, stock_depot=options.pop("stock_depot", None),
                    **options)
    return caught.value


# --- the tables ----------------------------------------------------------------------------------------

def test_the_rules_are_tables_in_resolution_order():
    assert [source.name for source in PRICE_SOURCES] == ["customer", "category", "article"]
    assert sorted(BREAK_KINDS) == [0, 1, 2, 3]
    assert [BREAK_KINDS[kind].uses_bands for kind in range(4)] == [False, True, True, True]
    assert (category_bands_key(1), category_bands_key(12)) == ("a01", "a12")


# --- price sources -------------------------------------------------------------------------------------

def test_base_price_is_the_articles_own_when_no_tariff_row(sage):
    line = price_one(sage, "3")
    # AR_PrixVen 100, no F_ARTCLIENT row: 3 × 100 = 300.00
    assert figures(line) == ("100.00", "0.00", "300.00")
    assert (line.source, line.break_kind, line.band_bound, line.discounts) == ("article", 0, None, ())
    assert (line.line, line.article, line.designation, str(line.quantity)) == (1, ARTICLE, "Article TART", "3")


def test_category_price_of_the_customers_tariff_category(db, sage):
    add_tariff(db, ARTICLE, "90", category=1)
    add_tariff(db, ARTICLE, "85", category=2)
    line = price_one(sage, "2")
    # TCLI is in category 2: 2 × 85 = 170.00 (category 1's 90 is someone else's)
    assert figures(line) == ("85.00", "0.00", "170.00")
    assert line.source == "category"


def test_customer_specific_price_beats_the_category_price(db, sage):
    add_tariff(db, ARTICLE, "85", category=2)
    add_tariff(db, ARTICLE, "80", customer=CUSTOMER)
    add_tariff(db, ARTICLE, "70", customer="LEFEVRE")
    line = price_one(sage, "2")
    # TCLI's own row: 2 × 80 = 160.00 (LEFEVRE's 70 is LEFEVRE's)
    assert figures(line) == ("80.00", "0.00", "160.00")
    assert line.source == "customer"


def test_a_tariff_row_without_price_leaves_the_price_to_the_next_source(db, sage):
    add_tariff(db, ARTICLE, "0", customer=CUSTOMER, remise="50")
    add_tariff(db, ARTICLE, "0", category=2)
    line = price_one(sage, "1")
    # both rows are empty cells: AR_PrixVen 100, and the empty row's 50 % goes with it
    assert figures(line) == ("100.00", "0.00", "100.00")
    assert line.source == "article"


def test_the_rows_own_discount_ac_remise(db, sage):
    add_tariff(db, ARTICLE, "200", category=2, remise="5")
    line = price_one(sage, "3")
    # 3 × 200 × (1 − 0.05) = 600 × 0.95 = 570.00
    assert figures(line) == ("200.00", "5.00", "570.00")
    assert [(item.origin, item.percent) for item in line.discounts] == [("AC_Remise", Decimal("5"))]


# --- break kinds (AC_QteMont) ----------------------------------------------------------------------------

QUANTITY_BANDS = [("5", "2", "0"), ("10", "5", "0"), ("999999", "8", "0")]


@pytest.mark.parametrize("quantity, discount, amount, bound", [
    ("1", "2.00", "98.00", "5"),                     # 1 × 100 × 0.98
    ("5", "2.00", "490.00", "5"),                    # 5 ≤ 5, first band: 500 × 0.98
    ("5.5", "5.00", "522.50", "10"),                 # just above 5: 550 × 0.95
    ("6", "5.00", "570.00", "10"),                   # 600 × 0.95
    ("10", "5.00", "950.00", "10"),                  # 10 ≤ 10, second band: 1000 × 0.95
    ("11", "8.00", "1012.00", "999999"),             # 1100 × 0.92
    ("999999", "8.00", "91999908.00", "999999"),     # 99 999 900 × 0.92
    ("1000000", "8.00", "92000000.00", "999999"),    # past the last bound, still the last band: 100 000 000 × 0.92
])
def test_quantity_discount_bands_at_each_edge(db, sage, quantity, discount, amount, bound):
    add_tariff(db, ARTICLE, "100", category=2, kind=1)
    add_bands(db, ARTICLE, "a02", QUANTITY_BANDS)
    add_bands(db, ARTICLE, "a01", [("999999", "50", "0")])          # category 1's bands: not TCLI's
    line = price_one(sage, quantity)
    assert figures(line) == ("100.00", discount, amount)
    assert (line.break_kind, line.band_bound) == (1, Decimal(bound))
    assert type(line.band_bound) is Decimal


def test_a_quantity_break_row_without_bands_gives_no_band_discount(db, sage):
    add_tariff(db, ARTICLE, "100", category=2, kind=1)
    line = price_one(sage, "4")
    # no a02 band: 4 × 100 = 400.00
    assert figures(line) == ("100.00", "0.00", "400.00")
    assert line.band_bound is None


@pytest.mark.parametrize("quantity, discount, amount", [
    ("2", "1.00", "99.00"),          # 2 × 50 = 100 ≤ 100: 100 × 0.99
    ("3", "3.00", "145.50"),         # 150 in (100, 500]: 150 × 0.97
    ("10", "3.00", "485.00"),        # 500 ≤ 500: 500 × 0.97
    ("11", "6.00", "517.00"),        # 550 > 500: 550 × 0.94
])
def test_amount_discount_bands_measure_quantity_times_price(db, sage, quantity, discount, amount):
    add_tariff(db, ARTICLE, "50", category=2, kind=2)
    add_bands(db, ARTICLE, "a02", [("100", "1", "0"), ("500", "3", "0"), ("999999", "6", "0")])
    line = price_one(sage, quantity)
    assert figures(line) == ("50.00", discount, amount)
    assert line.break_kind == 2


@pytest.mark.parametrize("quantity, unit, amount", [
    ("1", "9.50", "9.50"),           # 1 ≤ 10: net 9.50
    ("10", "9.50", "95.00"),         # 10 × 9.50
    ("11", "8.75", "96.25"),         # 11 × 8.75
])
def test_net_price_by_quantity_replaces_the_price(db, sage, quantity, unit, amount):
    add_tariff(db, ARTICLE, "10", category=2, kind=3)
    add_bands(db, ARTICLE, "a02", [("10", "0", "9.5"), ("999999", "0", "8.75")])
    line = price_one(sage, quantity)
    assert figures(line) == (unit, "0.00", amount)
    assert line.break_kind == 3


# --- the customer's discount, combining, rounding ------------------------------------------------------------

def test_the_customers_own_discount_applies_on_top(db, sage):
    update_row(db, "F_COMPTET", {"CT_Num": CUSTOMER}, {"CT_Taux02": Decimal("2.5")})
    line = price_one(sage, "4")
    # AR_PrixVen 100, CT_Taux02 2.5 %: 400 × 0.975 = 390.00
    assert figures(line) == ("100.00", "2.50", "390.00")
    assert [item.origin for item in line.discounts] == ["CT_Taux02"]


def test_discounts_combine_successively_as_one_rounded_rate(db, sage):
    add_tariff(db, ARTICLE, "100", category=2, remise="5")
    update_row(db, "F_COMPTET", {"CT_Num": CUSTOMER}, {"CT_Taux02": Decimal("2.5")})
    line = price_one(sage, "1")
    # 1 − 0.95 × 0.975 = 1 − 0.92625 = 7.375 % → 7.38 % (half-up; not 5 + 2.5 = 7.5 %)
    # amount from the rate shown: 100 × (1 − 0.0738) = 92.62
    assert figures(line) == ("100.00", "7.38", "92.62")
    assert [(item.origin, item.percent) for item in line.discounts] == [("AC_Remise", Decimal("5")),
                                                                        ("CT_Taux02", Decimal("2.5"))]


def test_unit_prices_and_amounts_round_half_up(db, sage):
    add_article(db, "HALF", "10.005")
    add_article(db, "FLOAT", "2.675")
    half = price_one(sage, "0.5", article="HALF")
    # 10.005 → 10.01 (half-up; half-even would give 10.00); 0.5 × 10.01 = 5.005 → 5.01
    assert figures(half) == ("10.01", "0.00", "5.01")
    # 2.675 is read as the text "2.675" (as a float it is 2.67499…): → 2.68; × 3 = 8.04
    assert figures(price_one(sage, "3", article="FLOAT")) == ("2.68", "0.00", "8.04")
    # with 3 price decimals: 10.005 stays; 0.5 × 10.005 = 5.0025 → 5.00
    assert figures(price_one(sage, "0.5", article="HALF", price_decimals=3)) == ("10.005", "0.00", "5.00")


# --- stock -------------------------------------------------------------------------------------------

def test_available_stock_over_all_depots_or_one(db, sage):
    for depot, stock, reserved in ((1, "10", "2"), (2, "5.5", "0.5"), (3, "3", "4")):
        insert_row(db, "F_ARTSTOCK", {"AR_Ref": ARTICLE, "DE_No": depot, "AS_QteSto": Decimal(stock),
                                      "AS_QteRes": Decimal(reserved)})
    # all depots: (10 − 2) + (5.5 − 0.5) + (3 − 4) = 8 + 5 − 1 = 12
    assert price_one(sage, "1").available == Decimal("12")
    # depot 2: 5.5 − 0.5 = 5; depot 3: 3 − 4 = −1
    assert price_one(sage, "1", stock_depot=2).available == Decimal("5")
    assert price_one(sage, "1", stock_depot=3).available == Decimal("-1")
    assert type(price_one(sage, "1").available) is Decimal


def test_the_dossiers_stock_depot_setting_all_or_its_default_depot(db, sage):
    """`stock_depot = "all"` sums every depot; "default" takes the depot Sage marks DE_Principal;
    with no such depot, or two, the quote is refused rather than shown some depot's stock."""
    from agent.sage100.quote_pricing import price_command
    from agent.sage100.writer import CommandRefused

    for depot, stock, reserved in ((1, "10", "2"), (2, "5.5", "0.5"), (3, "3", "4")):
        insert_row(db, "F_ARTSTOCK", {"AR_Ref": ARTICLE, "DE_No": depot, "AS_QteSto": Decimal(stock),
                                      "AS_QteRes": Decimal(reserved)})
    command = {"key": "ssm:1", "account_key": CUSTOMER, "date": DATE.isoformat(),
               "lines": [{"line_id": 7, "article": ARTICLE, "quantity": 1}]}

    def stock(setting):
        [line] = price_command(sage, command, stock_depot=setting).written["lines"]
        return Decimal(line["stock"])

    assert stock("all") == Decimal("12")
    update_row(db, "F_DEPOT", {"DE_No": 1}, {"DE_Principal": 0})
    update_row(db, "F_DEPOT", {"DE_No": 2}, {"DE_Principal": 1})
    assert stock("default") == Decimal("5")
    update_row(db, "F_DEPOT", {"DE_No": 3}, {"DE_Principal": 1})           # two default depots: none guessed
    with pytest.raises(CommandRefused) as two:
        stock("default")
    update_row(db, "F_DEPOT", {"DE_No": 2}, {"DE_Principal": 0})
    update_row(db, "F_DEPOT", {"DE_No": 3}, {"DE_Principal": 0})
    with pytest.raises(CommandRefused) as none:
        stock("default")
    assert two.value.code == none.value.code == "default_depot"
    assert stock("all") == Decimal("12")                                  # "all" needs no default depot


def test_stock_of_an_article_without_rows_or_not_followed(db, sage):
    add_article(db, "NOSTOCK", "10")
    add_article(db, "SERVICE", "10", AR_SuiviStock=0)
    assert price_one(sage, "1", article="NOSTOCK").available == Decimal(0)
    assert price_one(sage, "1", article="SERVICE").available is None


# --- refusals ------------------------------------------------------------------------------------------

def test_unknown_article_is_refused(sage):
    refused = refusal_of(sage, [LineRequest("NOPE", Decimal(1), key="L1")])
    [refusal] = refused.refusals
    assert (refusal.line, refusal.key, refusal.article, refusal.reason) == (1, "L1", "NOPE", Reason.UNKNOWN_ARTICLE)
    assert refusal.message == "line 1 (NOPE): the article does not exist in Sage"


def test_a_dormant_article_is_refused(sage):
    # BAAR99 is the demo's dormant article (AR_Sommeil 1)
    [refusal] = refusal_of(sage, [LineRequest("BAAR99", Decimal(1))]).refusals
    assert refusal.reason == Reason.ARTICLE_ASLEEP
    assert "dormant" in refusal.message


def test_an_article_without_any_price_is_refused(db, sage):
    add_article(db, "FREE", "0")
    add_tariff(db, "FREE", "0", category=2)
    [refusal] = refusal_of(sage, [LineRequest("FREE", Decimal(1))]).refusals
    assert refusal.reason == Reason.NO_PRICE
    assert refusal.message == "line 1 (FREE): Sage has no sale price for this article"


@pytest.mark.parametrize("quantity", ["0", "-1", "-0.5"])
def test_a_quantity_not_above_zero_is_refused(sage, quantity):
    [refusal] = refusal_of(sage, [LineRequest(ARTICLE, Decimal(quantity))]).refusals
    assert refusal.reason == Reason.QUANTITY_NOT_POSITIVE


@pytest.mark.parametrize("quantity", ["abc", None, "NaN"])
def test_a_quantity_that_is_not_a_number_is_refused(sage, quantity):
    [refusal] = refusal_of(sage, [LineRequest(ARTICLE, quantity)]).refusals
    assert refusal.reason == Reason.INVALID_QUANTITY


def test_fractional_quantities_are_allowed_unless_the_unit_is_declared_whole(db, sage):
    add_article(db, "GRAM", "2", AR_UniteVen=2)
    # no flag in Sage's schema: fractional by default; 1.5 × 100 = 150.00
    assert figures(price_one(sage, "1.5"))[2] == "150.00"
    # unit 1 (Pièce) declared whole: 1.5 refused, 2.000 accepted (2 × 100 = 200.00)
    [refusal] = refusal_of(sage, [LineRequest(ARTICLE, Decimal("1.5"))], whole_units={1}).refusals
    assert refusal.reason == Reason.FRACTIONAL_QUANTITY
    assert figures(price_one(sage, "2.000", whole_units={1}))[2] == "200.00"
    # unit 2 (Gramme) is not declared whole: 1.5 × 2 = 3.00
    assert figures(price_one(sage, "1.5", article="GRAM", whole_units={1}))[2] == "3.00"


@pytest.mark.parametrize("tiers", ["NOBODY", "FONDERIE", ""])      # FONDERIE is a supplier
def test_an_unknown_customer_is_refused(sage, tiers):
    refused = refusal_of(sage, [LineRequest(ARTICLE, Decimal(1))], tiers=tiers)
    [refusal] = refused.refusals
    assert (refusal.line, refusal.reason) == (None, Reason.UNKNOWN_TIERS)
    assert isinstance(refused, ConnectorError)


def test_a_dormant_customer_is_refused(sage):
    # COMPTOIR is the demo's dormant client (CT_Sommeil 1)
    [refusal] = refusal_of(sage, [LineRequest(ARTICLE, Decimal(1))], tiers="COMPTOIR").refusals
    assert refusal.reason == Reason.TIERS_ASLEEP


def test_a_prospect_is_priced(db, sage):
    add_customer(db, "PROSP", category=2, discount="10", CT_Prospect=1)
    # 2 × 100 × 0.90 = 180.00
    assert figures(price_one(sage, "2", tiers="PROSP")) == ("100.00", "10.00", "180.00")


def test_an_unknown_depot_is_refused(sage):
    [refusal] = refusal_of(sage, [LineRequest(ARTICLE, Decimal(1))], stock_depot=99).refusals
    assert refusal.reason == Reason.UNKNOWN_DEPOT


def test_a_price_entered_tax_included_is_refused(db, sage):
    add_tariff(db, ARTICLE, "120", category=2, AC_PrixTTC=1)
    [refusal] = refusal_of(sage, [LineRequest(ARTICLE, Decimal(1))]).refusals
    assert refusal.reason == Reason.PRICE_INCLUDES_TAX


def test_an_unknown_break_kind_is_refused(db, sage):
    add_tariff(db, ARTICLE, "100", category=2, kind=7)
    [refusal] = refusal_of(sage, [LineRequest(ARTICLE, Decimal(1))]).refusals
    assert refusal.reason == Reason.UNKNOWN_BREAK_KIND


def test_every_refused_line_is_reported_and_nothing_is_priced(sage):
    refused = refusal_of(sage, [LineRequest(ARTICLE, Decimal(1), key="a"), LineRequest("NOPE", Decimal(1), key="b"),
                                LineRequest("BAAR99", Decimal(1), key="c"), LineRequest(ARTICLE, Decimal(0), key="d")])
    assert [(r.line, r.key, r.reason) for r in refused.refusals] == [
        (2, "b", Reason.UNKNOWN_ARTICLE), (3, "c", Reason.ARTICLE_ASLEEP), (4, "d", Reason.QUANTITY_NOT_POSITIVE)]
    assert "line 2 (NOPE)" in str(refused) and "line 4 (TART)" in str(refused)


# --- combinations ---------------------------------------------------------------------------------------

def test_customer_price_with_its_own_quantity_bands_and_the_customer_discount(db, sage):
    add_tariff(db, ARTICLE, "85", category=2, kind=1)
    add_bands(db, ARTICLE, "a02", [("999999", "50", "0")])          # the category's bands: not used
    add_tariff(db, ARTICLE, "80", customer=CUSTOMER, kind=1)
    add_bands(db, ARTICLE, CUSTOMER, [("5", "3", "0"), ("999999", "10", "0")])
    update_row(db, "F_COMPTET", {"CT_Num": CUSTOMER}, {"CT_Taux02": Decimal("5")})
    line = price_one(sage, "6")
    # customer price 80; 6 > 5: band 10 %; then 5 %: 1 − 0.90 × 0.95 = 1 − 0.855 = 14.50 %
    # 6 × 80 × 0.855 = 480 × 0.855 = 410.40
    assert figures(line) == ("80.00", "14.50", "410.40")
    assert (line.source, line.band_bound) == ("customer", Decimal("999999"))
    assert [item.origin for item in line.discounts] == ["TQ_Remise01REM_Valeur", "CT_Taux02"]


def test_category_price_remise_amount_band_and_customer_discount(db, sage):
    add_tariff(db, ARTICLE, "40", category=2, remise="10", kind=2)
    add_bands(db, ARTICLE, "a02", [("200", "0", "0"), ("999999", "5", "0")])
    update_row(db, "F_COMPTET", {"CT_Num": CUSTOMER}, {"CT_Taux02": Decimal("2")})
    line = price_one(sage, "6")
    # amount measured 6 × 40 = 240 > 200: band 5 %
    # 1 − 0.90 × 0.95 × 0.98 = 1 − 0.8379 = 16.21 %; 240 × (1 − 0.1621) = 240 × 0.8379 = 201.096 → 201.10
    assert figures(line) == ("40.00", "16.21", "201.10")


def test_customer_net_price_by_quantity_then_the_customer_discount(db, sage):
    add_tariff(db, ARTICLE, "10", customer=CUSTOMER, kind=3)
    add_bands(db, ARTICLE, CUSTOMER, [("10", "0", "9.5"), ("999999", "0", "8.75")])
    update_row(db, "F_COMPTET", {"CT_Num": CUSTOMER}, {"CT_Taux02": Decimal("3")})
    line = price_one(sage, "12")
    # 12 > 10: net 8.75; 12 × 8.75 = 105 × 0.97 = 101.85
    assert figures(line) == ("8.75", "3.00", "101.85")


def test_a_quote_totals_its_lines(db, sage):
    add_article(db, "SECOND", "19.99")
    add_tariff(db, ARTICLE, "100", category=2, kind=1)
    add_bands(db, ARTICLE, "a02", QUANTITY_BANDS)
    quote = price_quote(sage, tiers=CUSTOMER, date=DATE, stock_depot=None,
                        lines=[LineRequest(ARTICLE, Decimal("6"), key="x"),
                               LineRequest("SECOND", Decimal("3"), key="y")])
    # line 1: 6 × 100 × 0.95 = 570.00; line 2: 3 × 19.99 = 59.97; total 629.97
    assert [figures(line)[2] for line in quote.lines] == ["570.00", "59.97"]
    assert [line.key for line in quote.lines] == ["x", "y"]
    assert str(quote.total_ht) == "629.97"
    assert (quote.tiers, quote.date) == (CUSTOMER, DATE)


def test_the_demo_dossier_as_built(db, sage):
    # LEFEVRE: category 1, CT_Taux02 2.5; BAAR01 (AR_PrixVen 89.90) has LEFEVRE's own row at 95 %:
    # 8990 × 95 // 100 cents = 85.40; 2 × 85.40 = 170.80 × 0.975 = 166.53
    lefevre = price_one(sage, "2", article="BAAR01", tiers="LEFEVRE")
    assert figures(lefevre) == ("85.40", "2.50", "166.53")
    assert lefevre.source == "customer"
    # RUBIS: category 2 (× 0.85: 89.90 × 0.85 = 76.415 → 76.42, AC_Remise 5), CT_Taux02 5:
    # 1 − 0.95 × 0.95 = 9.75 %; 76.42 × 0.9025 = 68.96905 → 68.97
    rubis = price_one(sage, "1", article="BAAR01", tiers="RUBIS")
    assert figures(rubis) == ("76.42", "9.75", "68.97")
    assert rubis.source == "category"


def test_pricing_writes_nothing(db, sage):
    delete_row(db, "F_ARTSTOCK", {"AR_Ref": ARTICLE})
    before = _snapshot(db)
    price_quote(sage, tiers=CUSTOMER, date=DATE, stock_depot=1, lines=[LineRequest(ARTICLE, Decimal(2))])
    sage.rollback()
    assert _snapshot(db) == before


def _snapshot(path):
    import sqlite3
    connection = sqlite3.connect(path)
    try:
        return {table: connection.execute(f"SELECT MAX(cbModification), COUNT(*) FROM {table}").fetchone()
                for table in ("F_COMPTET", "F_ARTICLE", "F_ARTCLIENT", "F_TARIFQTE", "F_ARTSTOCK")}
    finally:
        connection.close()
