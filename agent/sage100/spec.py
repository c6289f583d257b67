"""The Sage 100 source declared as data: for each entity, where its rows live and how they map.

Each `EntitySpec` names the main table and its filter, the key, the Sage columns read, the
joined rows it needs (`Lookup`: the sales rep, the unit, the tariff category), the child rows
read with it as one unit (`Child`: stock per depot, category prices, document lines), and the
mapping to the canonical record: OCA-style `direct` pairs (Sage column → canonical field) plus
`computed` fields made by small named conversions. The reader (`reader.py`) turns this into
portable SQL (`?` parameters, no TOP/LIMIT, no vendor functions); nothing here runs SQL.

Raw values reach the conversions already normalised (`agent.normalize`): text trimmed or None,
Decimal amounts, None for Sage's "no date". Lookup columns appear as `<alias>.<column>`, child
rows as a list under the child's name.

A document's key is what stays the same while Sage keeps it. Quotes and orders are keyed
`<DO_Type>:<DO_Piece>` (a piece number is unique within (DO_Domaine, DO_Type); a transformation
makes a new document with a new piece). Invoices are keyed `F:<DO_Piece>` whether their DO_Type
is 6 (facture) or 7 (facture comptabilisée): Sage's accounting update ("mise à jour comptable")
turns a 6 into a 7 in place, keeping DO_Piece and its lines' DL_No, and Sage numbers both types
from one sequence, so a 6 and a 7 never share a piece. Posting thus reaches SSM as a change of the
same invoice (its record's `doc_type` goes from 6 to 7), never as a new invoice plus the deletion
of the old one with its /sales total reversed and posted again. The `F` family keeps the
`<family>:<piece>` shape of every document key, so an invoice key never equals a quote's or an
order's (they share the sales-order extIds and line links in SSM). No connector ever ran with
type-prefixed invoice keys, so no link or shadow entry needs migrating.
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from decimal import Decimal
from typing import Any, Callable

from agent import normalize
from shared.messages import text
from shared.models import Entity

Raw = dict[str, Any]
Conversion = Callable[[Raw], Any]
Check = Callable[[Raw], "str | None"]


@dataclass(frozen=True)
class Lookup:
    """A row joined to the main (or child) row for a few of its columns.

    `on` pairs (lookup column, owner column). An `inner` lookup also filters: the owner row is
    read only when the joined row exists and `filter` holds. When `refreshes` is set, a change
    of the joined row re-reads the owner (a renamed tariff category re-reads its products).
    """

    table: str
    alias: str
    on: tuple[tuple[str, str], ...]
    columns: tuple[str, ...]
    inner: bool = False
    filter: str = ""
    refreshes: bool = True


@dataclass(frozen=True)
class Child:
    """Rows of another table read with their parent as one unit (`link`: child col, parent col)."""

    name: str
    table: str
    alias: str
    link: tuple[tuple[str, str], ...]
    columns: tuple[str, ...]
    order_by: tuple[str, ...]
    filter: str = ""
    lookups: tuple[Lookup, ...] = ()


@dataclass(frozen=True)
class Orphans:
    """Rows of `table` that refer (`link`: their column, the parent's column) to a row of `parent`
    Sage does not have: a contact whose account is not in F_COMPTET, a document line whose
    document is not in F_DOCENTETE. The entity's joins need the parent, so its reads never meet
    these rows; each read of the entity finds them with one anti-join (`NOT EXISTS`) and makes
    every record key they carry (`EntitySpec.key` of the row: the contact's CT_No, the missing
    document's key) an incident naming them (`message`, with `names` of each row), never a
    silent omission. `filter` (alias `alias`) keeps the rows the entity would read;
    `parent_filter` (alias `p`) the parent rows that count; `parent_key` the link columns that
    name the missing parent in the incident (all of them when empty).
    """

    table: str
    alias: str
    parent: str
    link: tuple[tuple[str, str], ...]
    names: tuple[str, ...]
    message: str
    filter: str = ""
    parent_filter: str = ""
    parent_key: tuple[str, ...] = ()


def _copier(pairs: tuple[tuple[str, str], ...]) -> Callable[[Raw], dict]:
    """A function giving `{target: raw[source]}` for each (source, target) pair (None when absent)."""
    sources = tuple(source for source, _ in pairs)
    targets = tuple(target for _, target in pairs)
    return lambda raw: dict(zip(targets, map(raw.get, sources)))


@dataclass(frozen=True)
class EntitySpec:
    entity: Entity
    table: str
    key_columns: tuple[str, ...]
    key: Callable[[Raw], str]
    columns: tuple[str, ...]
    direct: tuple[tuple[str, str], ...]
    computed: tuple[tuple[str, Conversion], ...] = ()
    filter: str = ""
    lookups: tuple[Lookup, ...] = ()
    children: tuple[Child, ...] = ()
    checks: tuple[Check, ...] = ()
    optional: tuple[tuple[str, str], ...] = ()
    """(Sage column, canonical field) of values the record syncs without, with a warning, when
    Sage holds one that cannot be read or sent (an invalid e-mail, a binary phone number)."""
    naming: tuple[str, ...] = ()
    """Columns that tell an administrator which row it is when its key cannot be read."""
    orphans: tuple[Orphans, ...] = ()
    """Rows referring to a parent Sage does not have: incidents of the entity (`Orphans`)."""

    alias = "t"

    @cached_property
    def optional_fields(self) -> dict[str, str]:
        """Canonical field → Sage column of the values left out rather than refused."""
        return {field: column for column, field in self.optional}

    @cached_property
    def optional_columns(self) -> dict[str, str]:
        """Sage column → canonical field of the values left out rather than refused."""
        return dict(self.optional)

    @cached_property
    def _copy_direct(self) -> Callable[[Raw], dict]:
        return _copier(self.direct)

    def tables(self) -> tuple[str, ...]:
        """Every table this entity reads, main table first."""
        names = [self.table] + [lookup.table for lookup in self.lookups]
        for child in self.children:
            names += [child.table] + [lookup.table for lookup in child.lookups]
        return tuple(dict.fromkeys(names))

    def to_canonical(self, raw: Raw) -> dict:
        """The canonical fields of a raw row, ready for `shared.models.parse_record`."""
        data = self._copy_direct(raw)
        for target, conversion in self.computed:
            data[target] = conversion(raw)
        return data

    def problems(self, raw: Raw) -> list[str]:
        """Reasons, beyond field validation, why the row cannot be synced."""
        return [problem for check in self.checks if (problem := check(raw))]


# --- named conversions --------------------------------------------------------------------

def as_flag(column: str) -> Conversion:
    """A Sage smallint flag (`CT_Sommeil`, `AR_Sommeil`, `CO_Vendeur`) as bool."""
    def convert(raw: Raw) -> bool:
        return normalize.flag(raw.get(column))
    convert.__name__ = f"flag_{column}"
    return convert


def zero_is_none(column: str, *, as_text: bool = False) -> Conversion:
    """A Sage reference where 0 means "none" (`CO_No` 0 → no sales rep)."""
    def convert(raw: Raw):
        number = normalize.zero_as_none(raw.get(column))
        return str(number) if as_text and number is not None else number
    convert.__name__ = f"zero_is_none_{column}"
    return convert


def as_date(column: str) -> Conversion:
    def convert(raw: Raw):
        value = raw.get(column)
        return value.date() if value is not None else None
    convert.__name__ = f"date_{column}"
    return convert


def account_kind(raw: Raw) -> str:
    """`CT_Prospect` 1 is a prospect, anything else a client."""
    return "prospect" if normalize.flag(raw.get("CT_Prospect")) else "client"


def text_key(column: str) -> Callable[[Raw], str]:
    def key(raw: Raw) -> str:
        value = raw.get(column)
        return "" if value is None else str(value)
    key.__name__ = f"key_{column}"
    return key


INVOICE_KEY_FAMILY = "F"


def document_key(raw: Raw) -> str:
    """Quotes and orders are keyed `<DO_Type>:<DO_Piece>` (a piece number is unique within its type)."""
    return f"{raw.get('DO_Type')}:{raw.get('DO_Piece') or ''}"


def invoice_key(raw: Raw) -> str:
    """Invoices, posted (7) or not (6), are keyed `F:<DO_Piece>`: posting keeps their identity."""
    return f"{INVOICE_KEY_FAMILY}:{raw.get('DO_Piece') or ''}"


def rep_must_exist(column: str = "CO_No", lookup: str = "rep") -> Check:
    """A sales rep number other than 0 must point to an existing `F_COLLABORATEUR` row."""
    def check(raw: Raw) -> str | None:
        number = normalize.zero_as_none(raw.get(column))
        if number is not None and raw.get(f"{lookup}.CO_No") is None:
            return text("sync.invalid.rep_unknown", number=number)
        return None
    check.__name__ = f"{lookup}_must_exist"
    return check


def total_of(child: str, amount: Callable[[Raw], Decimal | None]) -> Conversion:
    """The exact sum of `amount` over a child list (None when there is no child row)."""
    def convert(raw: Raw) -> Decimal | None:
        values = [amount(row) for row in raw.get(child, ())]
        values = [value for value in values if value is not None]
        return sum(values, Decimal(0)) if values else None
    convert.__name__ = f"total_of_{child}"
    return convert


def _in_stock(row: Raw) -> Decimal | None:
    return row.get("AS_QteSto")


def _available(row: Raw) -> Decimal | None:
    stock = row.get("AS_QteSto")
    if stock is None:
        return None
    return stock - (row.get("AS_QteRes") or Decimal(0))


def category_prices(raw: Raw) -> list[dict]:
    """`F_ARTCLIENT` category rows as `TariffPrice` dicts, ordered by category number."""
    return [{"category": row["AC_Categorie"], "category_name": row.get("cat.CT_Intitule"),
             "price": row.get("AC_PrixVen"), "discount_rate": row.get("AC_Remise")}
            for row in sorted(raw.get("tariffs", ()), key=lambda row: row["AC_Categorie"])]


LINE_DIRECT: tuple[tuple[str, str], ...] = (
    ("DL_Ligne", "position"),
    ("AR_Ref", "product_key"),
    ("DL_Design", "description"),
    ("DL_Qte", "quantity"),
    ("DL_PrixUnitaire", "unit_price"),
    ("DL_Remise01REM_Valeur", "discount_rate"),
    ("DL_MontantHT", "total_ht"),
    ("DL_MontantTTC", "total_ttc"),
    ("DL_PieceDE", "origin_quote"),
)

_copy_line = _copier(LINE_DIRECT)


def document_lines(raw: Raw) -> list[dict]:
    """`F_DOCLIGNE` rows as `DocumentLine` dicts; `DL_No` is the stable line id."""
    lines = []
    for row in raw.get("lines", ()):
        line = _copy_line(row)
        number = row.get("DL_No")
        line["line_id"] = None if number is None else str(number)
        if line["position"] is None:
            line["position"] = 0
        lines.append(line)
    return lines


# --- the entities ---------------------------------------------------------------------------

REP = Lookup("F_COLLABORATEUR", "rep", (("CO_No", "CO_No"),), ("CO_No",))
# The tiers a contact or a delivery address belongs to: only those of a client or prospect are read.
CLIENT_OWNER = Lookup("F_COMPTET", "owner", (("CT_Num", "CT_Num"),), ("CT_Type",), inner=True,
                      filter="owner.CT_Type = 0", refreshes=False)

USER = EntitySpec(
    entity=Entity.USER,
    table="F_COLLABORATEUR",
    key_columns=("CO_No",),
    key=text_key("CO_No"),
    columns=("CO_No", "CO_Nom", "CO_Prenom", "CO_Fonction", "CO_EMail", "CO_Telephone",
             "CO_TelPortable", "CO_Vendeur", "CO_Sommeil"),
    direct=(("CO_Prenom", "first_name"), ("CO_Nom", "last_name"), ("CO_EMail", "email"),
            ("CO_Telephone", "phone"), ("CO_TelPortable", "mobile"), ("CO_Fonction", "job_title")),
    computed=(("is_sales_rep", as_flag("CO_Vendeur")), ("dormant", as_flag("CO_Sommeil"))),
    optional=(("CO_Telephone", "phone"), ("CO_TelPortable", "mobile"), ("CO_Fonction", "job_title")),
    naming=("CO_Nom", "CO_Prenom", "CO_EMail"),
)

ACCOUNT = EntitySpec(
    entity=Entity.ACCOUNT,
    table="F_COMPTET",
    filter="t.CT_Type = 0",
    key_columns=("CT_Num",),
    key=text_key("CT_Num"),
    columns=("CT_Num", "CT_Intitule", "CT_Type", "CT_Prospect", "CT_Adresse", "CT_Complement",
             "CT_CodePostal", "CT_Ville", "CT_CodeRegion", "CT_Pays", "CT_Telephone", "CT_Telecopie",
             "CT_EMail", "CT_Site", "CT_Siret", "CT_Identifiant", "CO_No", "N_CatTarif", "CT_Taux02",
             "CT_Encours", "CT_Sommeil"),
    direct=(("CT_Intitule", "name"), ("CT_Adresse", "address1"), ("CT_Complement", "address2"),
            ("CT_CodePostal", "postcode"), ("CT_Ville", "city"), ("CT_CodeRegion", "region"),
            ("CT_Pays", "country"), ("CT_Telephone", "phone"), ("CT_Telecopie", "fax"),
            ("CT_EMail", "email"), ("CT_Site", "website"), ("CT_Siret", "siret"),
            ("CT_Identifiant", "vat_number"), ("CT_Taux02", "discount_rate"), ("CT_Encours", "credit_limit")),
    computed=(("kind", account_kind), ("rep_key", zero_is_none("CO_No", as_text=True)),
              ("tariff_category", zero_is_none("N_CatTarif")), ("dormant", as_flag("CT_Sommeil"))),
    lookups=(REP,),
    checks=(rep_must_exist(),),
    optional=(("CT_Telephone", "phone"), ("CT_Telecopie", "fax"), ("CT_EMail", "email"), ("CT_Site", "website")),
    naming=("CT_Intitule", "CT_Ville"),
)

CONTACT = EntitySpec(
    entity=Entity.CONTACT,
    table="F_CONTACTT",
    key_columns=("CT_No",),
    key=text_key("CT_No"),
    columns=("CT_No", "CT_Num", "CT_Nom", "CT_Prenom", "CT_Fonction", "CT_Civilite", "CT_Telephone",
             "CT_TelPortable", "CT_Telecopie", "CT_EMail"),
    direct=(("CT_Num", "account_key"), ("CT_Prenom", "first_name"), ("CT_Nom", "last_name"),
            ("CT_Fonction", "job_title"), ("CT_Civilite", "civility"), ("CT_Telephone", "phone"),
            ("CT_TelPortable", "mobile"), ("CT_Telecopie", "fax"), ("CT_EMail", "email")),
    lookups=(CLIENT_OWNER,),
    optional=(("CT_Telephone", "phone"), ("CT_TelPortable", "mobile"), ("CT_Telecopie", "fax"),
              ("CT_EMail", "email"), ("CT_Fonction", "job_title")),
    naming=("CT_Num", "CT_Nom", "CT_Prenom"),
    orphans=(Orphans("F_CONTACTT", "t", "F_COMPTET", (("CT_Num", "CT_Num"),), names=("CT_Nom", "CT_Prenom"),
                     message="sage_row.orphan.contact"),),
)

PRODUCT_FAMILY = EntitySpec(
    entity=Entity.PRODUCT_FAMILY,
    table="F_FAMILLE",
    filter="t.FA_Type = 0",
    key_columns=("FA_CodeFamille",),
    key=text_key("FA_CodeFamille"),
    columns=("FA_CodeFamille", "FA_Intitule", "FA_Type"),
    direct=(("FA_Intitule", "name"),),
    naming=("FA_Intitule",),
)

PRODUCT = EntitySpec(
    entity=Entity.PRODUCT,
    table="F_ARTICLE",
    key_columns=("AR_Ref",),
    key=text_key("AR_Ref"),
    columns=("AR_Ref", "AR_Design", "FA_CodeFamille", "AR_PrixVen", "AR_PrixAch", "AR_UniteVen",
             "AR_CodeBarre", "AR_Sommeil"),
    direct=(("AR_Design", "name"), ("FA_CodeFamille", "family_key"), ("AR_PrixVen", "price"),
            ("AR_PrixAch", "cost"), ("unit.U_Intitule", "unit"), ("AR_CodeBarre", "barcode")),
    computed=(("dormant", as_flag("AR_Sommeil")),
              ("stock_total", total_of("stock", _in_stock)),
              ("stock_available", total_of("stock", _available)),
              ("tariffs", category_prices)),
    lookups=(Lookup("P_UNITE", "unit", (("cbIndice", "AR_UniteVen"),), ("U_Intitule",)),),
    optional=(("AR_CodeBarre", "barcode"),),
    naming=("AR_Design", "FA_CodeFamille"),
    children=(
        Child("stock", "F_ARTSTOCK", "s", (("AR_Ref", "AR_Ref"),),
              ("AR_Ref", "DE_No", "AS_QteSto", "AS_QteRes", "AS_QteCom"), order_by=("DE_No",)),
        Child("tariffs", "F_ARTCLIENT", "ac", (("AR_Ref", "AR_Ref"),),
              ("AR_Ref", "AC_Categorie", "AC_PrixVen", "AC_Remise"), order_by=("AC_Categorie",),
              filter="ac.AC_Categorie > 0",
              lookups=(Lookup("P_CATTARIF", "cat", (("cbIndice", "AC_Categorie"),), ("CT_Intitule",)),)),
    ),
)


def _orphan_lines(types: str, link: tuple[str, ...]) -> Orphans:
    """`F_DOCLIGNE` rows of the types `types` whose document (matched on `link`) is not in
    `F_DOCENTETE`: an incident of the missing document's key naming each line by its `DL_No`."""
    return Orphans("F_DOCLIGNE", "l", "F_DOCENTETE", tuple((column, column) for column in link),
                   names=("DL_No", "DL_Ligne", "AR_Ref"), message="sage_row.orphan.lines",
                   filter=f"l.DO_Domaine = 0 AND l.DO_Type {types}",
                   parent_filter=f"p.DO_Type {types}", parent_key=link[1:])


def _document(entity: Entity, types: str, *, key: Callable[[Raw], str] = document_key,
              key_columns: tuple[str, ...] = ("DO_Type", "DO_Piece"),
              optional: tuple[tuple[str, str], ...] = (("DO_Date", "date"),)) -> EntitySpec:
    """A sales document; its date may be left out (with a warning) unless `optional` says otherwise.
    Lines whose document is missing are incidents of the document's key: matched on DO_Domaine and
    DO_Piece when the key leaves the type out (an invoice, 6 or 7), else on the type too."""
    link = ("DO_Domaine", *key_columns) if "DO_Type" in key_columns else ("DO_Domaine", "DO_Piece")
    return EntitySpec(
        entity=entity,
        table="F_DOCENTETE",
        filter=f"t.DO_Domaine = 0 AND t.DO_Type {types}",
        key_columns=key_columns,
        key=key,
        columns=("DO_Domaine", "DO_Type", "DO_Piece", "DO_Date", "DO_Tiers", "DO_Ref", "CO_No",
                 "DO_Statut", "DO_TotalHT", "DO_TotalTTC", "DO_NetAPayer"),
        direct=(("DO_Piece", "number"), ("DO_Type", "doc_type"), ("DO_Tiers", "account_key"),
                ("DO_Ref", "reference"), ("DO_Statut", "status"), ("DO_TotalHT", "total_ht"),
                ("DO_TotalTTC", "total_ttc"), ("DO_NetAPayer", "net_to_pay")),
        computed=(("date", as_date("DO_Date")), ("rep_key", zero_is_none("CO_No", as_text=True)),
                  ("lines", document_lines)),
        children=(
            Child("lines", "F_DOCLIGNE", "l",
                  (("DO_Domaine", "DO_Domaine"), ("DO_Type", "DO_Type"), ("DO_Piece", "DO_Piece")),
                  ("DO_Domaine", "DO_Type", "DO_Piece", "DL_No", "DL_Ligne", "AR_Ref", "DL_Design",
                   "DL_Qte", "DL_PrixUnitaire", "DL_Remise01REM_Valeur", "DL_MontantHT", "DL_MontantTTC",
                   "DL_PieceDE"),
                  order_by=("DL_Ligne", "DL_No")),
        ),
        optional=optional,
        naming=("DO_Tiers", "DO_Date"),
        orphans=(_orphan_lines(types, link),),
    )


DELIVERY_ADDRESS = EntitySpec(
    entity=Entity.DELIVERY_ADDRESS,
    table="F_LIVRAISON",
    key_columns=("LI_No",),
    key=text_key("LI_No"),
    columns=("LI_No", "CT_Num", "LI_Intitule", "LI_Adresse", "LI_Complement", "LI_CodePostal", "LI_Ville",
             "LI_CodeRegion", "LI_Pays", "LI_Principal"),
    direct=(("CT_Num", "account_key"), ("LI_Intitule", "name"), ("LI_Adresse", "address1"),
            ("LI_Complement", "address2"), ("LI_CodePostal", "postcode"), ("LI_Ville", "city"),
            ("LI_CodeRegion", "region"), ("LI_Pays", "country")),
    computed=(("main", as_flag("LI_Principal")),),
    lookups=(CLIENT_OWNER,),
    orphans=(Orphans("F_LIVRAISON", "t", "F_COMPTET", (("CT_Num", "CT_Num"),), names=("LI_Intitule", "LI_Ville"),
                     message="sage_row.orphan.delivery_address"),),
)

QUOTE = _document(Entity.QUOTE, "= 0")
ORDER = _document(Entity.ORDER, "= 1")
# An invoice's date dates its sale in SSM's /sales totals: without it the invoice is not synced.
INVOICE = _document(Entity.INVOICE, "IN (6, 7)", key=invoice_key, key_columns=("DO_Piece",), optional=())

SAGE100_SPEC: dict[Entity, EntitySpec] = {spec.entity: spec for spec in
                                          (USER, ACCOUNT, CONTACT, PRODUCT_FAMILY, PRODUCT, QUOTE, ORDER, INVOICE,
                                           DELIVERY_ADDRESS)}


def sage100_spec(*, delivery_addresses: bool = True) -> dict[Entity, EntitySpec]:
    """The Sage 100 source, without `F_LIVRAISON` when the dossier does not sync delivery addresses."""
    if delivery_addresses:
        return SAGE100_SPEC
    return {entity: spec for entity, spec in SAGE100_SPEC.items() if entity is not Entity.DELIVERY_ADDRESS}
