"""Canonical records a Sage dossier of a jeweller would hold, and small helpers to read the simulator."""
from __future__ import annotations

import datetime as dt
from decimal import Decimal

from shared.models import (Account, Contact, Document, DocumentLine, Entity, Product, ProductFamily,
                           TariffPrice, User)


def user(key="1", first="Amélie", last="Durand", email="amelie.durand@bijou.example", **kw) -> User:
    return User(key=key, first_name=first, last_name=last, email=email, **kw)


def client(key="C001", name="Bijouterie Émeraude", **kw) -> Account:
    fields = dict(kind="client", name=name, address1="12 rue de la Paix", postcode="75002", city="Paris",
                  phone="01 42 00 00 01", email="contact@emeraude.example", vat_number="FR12345678901")
    fields.update(kw)
    return Account(key=key, **fields)


def prospect(key="P001", name="Atelier Saphir", **kw) -> Account:
    fields = dict(kind="prospect", name=name, city="Lyon", phone="04 72 00 00 02")
    fields.update(kw)
    return Account(key=key, **fields)


def contact(key="7", account_key="C001", last="Lefèvre", first="Hélène", **kw) -> Contact:
    fields = dict(email="helene.lefevre@emeraude.example", phone="01 42 00 00 03", mobile="06 12 34 56 78")
    fields.update(kw)
    return Contact(key=key, account_key=account_key, first_name=first, last_name=last, **fields)


def family(key="BAGUES", name="Bagues et alliances") -> ProductFamily:
    return ProductFamily(key=key, name=name)


def product(key="BAG-OR-18", name="Bague or 18 carats", family_key="BAGUES", **kw) -> Product:
    fields = dict(price=Decimal("1249.90"), cost=Decimal("612.35"), stock_total=Decimal("14"),
                  stock_available=Decimal("11.5"),
                  tariffs=(TariffPrice(category=1, category_name="Détaillants", price=Decimal("1199.00")),
                           TariffPrice(category=2, category_name="Grossistes", price=Decimal("999.99"))))
    fields.update(kw)
    return Product(key=key, name=name, family_key=family_key, **fields)


def line(line_id="1", position=1, product_key="BAG-OR-18", quantity="2", unit_price="1249.90",
         discount="5", **kw) -> DocumentLine:
    quantity, unit_price = Decimal(quantity), Decimal(unit_price)
    total = kw.pop("total_ht", (quantity * unit_price * (1 - Decimal(discount) / 100)).quantize(Decimal("0.01")))
    return DocumentLine(line_id=line_id, position=position, product_key=product_key, quantity=quantity,
                        unit_price=unit_price, discount_rate=Decimal(discount), total_ht=total,
                        description=kw.pop("description", "Bague or 18 carats"), **kw)


def document(entity: Entity, number: str, lines=(), *, account_key="C001", rep_key=None, **kw) -> Document:
    doc_type = {Entity.QUOTE: 0, Entity.ORDER: 1, Entity.INVOICE: 6}[entity]
    lines = tuple(lines)
    total = sum((l.total_ht for l in lines), Decimal("0"))
    fields = dict(date=dt.date(2024, 3, 14), reference="CDE-ÉTÉ", total_ht=total,
                  total_ttc=(total * Decimal("1.2")).quantize(Decimal("0.01")))
    fields.update(kw)
    family = "F" if entity is Entity.INVOICE else doc_type     # the agent's keys (agent/sage100/spec.py)
    return Document(entity=entity, key=f"{family}:{number}", number=number, doc_type=doc_type,
                    account_key=account_key, rep_key=rep_key, lines=lines, **fields)


def only(records: list[dict], **match) -> dict:
    """The one record matching all `match` fields (references compared by id); live ones unless
    `deleted=True` is asked for."""
    def value(record, name):
        v = record.get(name)
        return v["id"] if isinstance(v, dict) and "id" in v else v
    match.setdefault("deleted", False)
    found = [r for r in records if all(value(r, k) == v for k, v in match.items())]
    assert len(found) == 1, f"expected one record matching {match}, found {len(found)}"
    return found[0]


def writes(sim, resource=None) -> list:
    return [c for c in sim.calls if c.method in ("POST", "PUT", "DELETE") and c.resource != "login"
            and (resource is None or c.resource == resource)]


def invite(sim, *users: User) -> list[int]:
    """The collaborateurs made SSM users, as `ssm-connector users` (or an invitation) does."""
    from shared.sync.binder import external_id
    return [sim.seed_user(u.first_name or u.last_name, u.last_name, u.email, ext_id=external_id("BIJOU", u.key))
            for u in users]
