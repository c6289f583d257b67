"""Canonical models: clean values in, readable errors out."""
from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest
from pydantic import ValidationError

from shared.models import (Account, AccountKind, Document, DocumentLine, Entity, Product, TariffPrice,
                           describe_validation_error, parse_record)


def test_text_is_trimmed_and_empty_text_is_none():
    account = Account(key=" C001 ", kind="client", name="  Bijouterie « Élégance » ", city="   ", email=None)
    assert account.key == "C001" and account.name == "Bijouterie « Élégance »" and account.city is None


def test_cp1252_bytes_are_decoded():
    account = Account(key="C1", kind="prospect", name="Œuvre d’art € 1".encode("cp1252"))
    assert account.name == "Œuvre d’art € 1" and account.kind is AccountKind.PROSPECT


def test_amounts_stay_exact_decimals_and_serialise_as_text():
    product = Product(key="BA01", name="Bague", price="1234.567800", cost=0.1,
                      tariffs=[TariffPrice(category=1, price="99.99", discount_rate="2.5")])
    assert product.price == Decimal("1234.567800") and product.cost == Decimal("0.1")
    fields = product.fields()
    assert fields["price"] == "1234.567800" and fields["tariffs"][0]["price"] == "99.99"


def test_round_trip_through_json_keeps_every_value():
    document = Document(entity=Entity.INVOICE, key="F:FA0001", number="FA0001", doc_type=6, date=dt.date(2024, 3, 1),
                        account_key="C1", total_ht="100.10", lines=[
                            DocumentLine(line_id="1", position=1, product_key="BA01", quantity="2", unit_price="50.05")])
    again = parse_record("invoice", document.model_dump(mode="json"))
    assert again == document


@pytest.mark.parametrize("data, expected", [
    ({"name": None}, "name : obligatoire mais vide dans Sage"),
    ({"name": "x" * 70}, "name : dépasse les 69 caractères acceptés par SSM"),
    ({"email": "jean.dupont@"}, "email : « jean.dupont@ » n'est pas une adresse e-mail valide"),
    ({"email": "a" * 200 + "@b.fr"}, "email : dépasse les 69 caractères acceptés par SSM"),
])
def test_bad_values_give_one_readable_sentence(data, expected):
    with pytest.raises(ValidationError) as caught:
        Account(**{"key": "C042", "kind": "client", "name": "Bijou", **data})
    message = describe_validation_error(caught.value, entity="account", key="C042")
    assert message.startswith("Impossible de synchroniser le tiers « C042 » : ") and expected in message
    assert "a" * 60 not in message, "long values are shortened in messages"


def test_a_document_refuses_two_lines_with_the_same_number():
    line = DocumentLine(line_id="7", position=1, quantity="1")
    with pytest.raises(ValidationError, match="même numéro de ligne"):
        Document(entity=Entity.ORDER, key="1:BC1", number="BC1", doc_type=1, account_key="C1", lines=[line, line])


def test_unknown_fields_are_refused():
    with pytest.raises(ValidationError):
        parse_record("contact", {"key": "1", "account_key": "C1", "last_name": "Durand", "shoe_size": 44})
