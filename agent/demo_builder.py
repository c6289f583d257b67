"""Builds Sage 100 demo company databases (SQLite) and changes them the way a Sage user would.

`build_demo_dossier` creates the Sage schema (`agent.sage100.schema`) in a SQLite file and fills
it with a French jewellery wholesaler modelled on Sage's own demo company BIJOU: sales reps,
clients, prospects and dormant accounts, suppliers, contacts, families (detail, total and
centralising), articles with units, stock per depot, tariff categories with category prices
and quantity breaks, quotes, orders, delivery notes, invoices and purchase documents whose
header totals match their lines. Text uses accents and characters that only exist in CP1252
(€, œ, ’, «», –); "no date" is 1753-01-01 as in Sage. The same seed gives the same content.

Building writes through the `sqlite3` module in bulk, because a large dossier (over a million
document lines) must build in seconds; everything the connector reads goes through pyodbc.
The mutation helpers (`update_row`, `touch_rows`, `insert_row`, `delete_row`,
`insert_document`, `transform_document`, `set_clock`) let tests and the demo act like a Sage
user: Sage's triggers (emulated) stamp `cbModification`, and `at=` or `set_clock` choose that
time for deterministic watermarks.
"""
from __future__ import annotations

import datetime as dt
import random
import sqlite3
import time
import unicodedata
from contextlib import contextmanager
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any, Iterator

from agent.odbc import connection_path
from agent.sage100.schema import EMULATION_TABLE, SQLITE, TABLE_NAMES, ddl, sqlite_datetime

NO_DATE = "1753-01-01 00:00:00.000"
VAT_RATE_PERCENT = 20


@dataclass(frozen=True)
class DemoSize:
    tiers: int
    reps: int
    articles: int
    documents: int
    max_lines: int          # lines per document: uniform between 1 and max_lines


SIZES: dict[str, DemoSize] = {
    "tiny": DemoSize(tiers=20, reps=5, articles=17, documents=24, max_lines=5),
    "small": DemoSize(tiers=500, reps=8, articles=200, documents=1_500, max_lines=7),
    "medium": DemoSize(tiers=10_000, reps=25, articles=2_000, documents=20_000, max_lines=9),
    "large": DemoSize(tiers=100_000, reps=60, articles=10_000, documents=200_000, max_lines=10),
}

# Deliberately broken rows added with `bad_rows=True`: what the reader must report, not crash on.
BAD_ACCOUNT_NO_NAME = "SANSNOM"
BAD_ACCOUNT_UNKNOWN_REP = "FANTOME"
BAD_UNKNOWN_REP_NO = 999
BAD_CONTACT_LONG_EMAIL = 990001
BAD_CONTACT_INVALID_EMAIL = 990002


@dataclass(frozen=True)
class DemoStats:
    path: Path
    database_name: str
    size: str
    seed: int
    counts: dict[str, int]
    seconds: float
    bad_rows: bool = False

    @property
    def document_lines(self) -> int:
        return self.counts.get("F_DOCLIGNE", 0)


# --- the company's data, as tables -------------------------------------------------------------

REPS = (  # CO_Nom, CO_Prenom, CO_Fonction, CO_Vendeur, CO_Acheteur, CO_Sommeil
    ("MARTIN", "Sophie", "Directrice commerciale", 1, 0, 0),
    ("LEFÈVRE", "Étienne", "Commercial grands comptes", 1, 0, 0),
    ("DUBOIS", "Anaïs", "Commerciale sédentaire", 1, 0, 0),
    ("GIRAUD", "Loïc", "Acheteur matières précieuses", 0, 1, 0),
    ("MOREAU", "Chloé", "Commerciale export", 1, 0, 1),
)
FIRST_NAMES = ("Élodie", "François", "Chloé", "Gaël", "Hélène", "Jérôme", "Noëlle", "Anaïs", "Loïc",
               "Cécile", "Benoît", "Zoé", "Mathéo", "Léa", "Raphaël", "Inès", "Agnès", "Thérèse")
LAST_NAMES = ("Lefèvre", "Mercier", "Rousseau", "Faure", "Girard", "Bonnet", "Dupré", "Lambert",
              "Fontaine", "Chevalier", "Noël", "Müller", "Lemaître", "Benoît", "Gauthier", "Besnard",
              "Périer", "Caron", "Leclère", "Joly")
SHOP_KINDS = ("Bijouterie", "Joaillerie", "Horlogerie", "Boutique", "Maison", "Atelier", "Galerie",
              "Comptoir", "Orfèvrerie")
CITIES = (  # CT_CodePostal, CT_Ville, CT_CodeRegion, CT_Pays
    ("25000", "Besançon", "Bourgogne-Franche-Comté", "France"),
    ("75001", "Paris", "Île-de-France", "France"),
    ("69002", "Lyon", "Auvergne-Rhône-Alpes", "France"),
    ("30000", "Nîmes", "Occitanie", "France"),
    ("45000", "Orléans", "Centre-Val de Loire", "France"),
    ("42000", "Saint-Étienne", "Auvergne-Rhône-Alpes", "France"),
    ("1204", "Genève", None, "Suisse"),
    ("33000", "Bordeaux", "Nouvelle-Aquitaine", "France"),
    ("67000", "Strasbourg", "Grand Est", "France"),
    ("13001", "Marseille", "Région Sud", "France"),
    ("59000", "Lille", "Hauts-de-France", "France"),
    ("06000", "Nice", "Région Sud", "France"),
    ("31000", "Toulouse", "Occitanie", "France"),
    ("35000", "Rennes", "Bretagne", "France"),
    ("21000", "Dijon", "Bourgogne-Franche-Comté", "France"),
    ("74000", "Annecy", "Auvergne-Rhône-Alpes", "France"),
    ("1000", "Bruxelles", None, "Belgique"),
)
STREETS = ("rue de la Paix", "place Vendôme", "rue du Faubourg Saint-Honoré", "quai de la Fontaine",
           "avenue Foch", "rue des Orfèvres", "cours Mirabeau", "rue Émile Zola", "boulevard Gambetta")

# CT_Num, CT_Intitule, CT_Type, CT_Prospect, CT_Sommeil, city index, N_CatTarif, CT_Taux02, CT_Encours
CURATED_TIERS = (
    ("LEFEVRE", "Bijouterie Lefèvre", 0, 0, 0, 0, 1, "2.5", "15000"),
    ("ECRIN", "L’Écrin d’Émeraude", 0, 0, 0, 1, 1, "0", "25000.5"),
    ("RUBIS", "Joaillerie «Le Rubis»", 0, 0, 0, 2, 2, "5", "40000"),
    ("COEUR", "Horlogerie du Cœur", 0, 0, 0, 3, 1, "0", "8000"),
    ("DUPRE", "Maison Dupré & Fils", 0, 0, 0, 4, 2, "3.75", "12000"),
    ("TRESORS", "Les Trésors de Chloé", 0, 0, 0, 5, 1, "0", "5000"),
    ("PERLES", "Perles & Œuvres d’Art", 0, 0, 0, 6, 3, "10", "60000"),
    ("SAPHIR", "Atelier Saphir", 0, 1, 0, 7, 1, "0", "0"),
    ("MULLER", "Bijoux Müller", 0, 0, 0, 8, 1, "0", "7500"),
    ("COMPTOIR", "Comptoir de l’Or – Marseille", 0, 0, 1, 9, 1, "0", "0"),
    ("AMETHYSTE", "Galerie Améthyste", 0, 1, 0, 10, 1, "0", "0"),
    ("NOEL", "Diamants Noël", 0, 0, 0, 11, 2, "1.5", "20000"),
    ("ECLAT", "Éclat de Lune", 0, 1, 0, 12, 1, "0", "0"),
    ("GAELLE", "Orfèvrerie Gaëlle", 0, 0, 0, 13, 1, "0", "9000"),
    ("FRANCOISE", "Bijouterie Françoise", 0, 0, 0, 14, 1, "0", "3000"),
    ("PRESTIGE", "Cadeaux «Prestige» 100 €", 0, 0, 0, 15, 3, "7", "18000"),
    ("FONDERIE", "Fonderie Précieuse SA", 1, 0, 0, 0, 1, "0", "0"),
    ("PACIFIQUE", "Perles du Pacifique SARL", 1, 0, 0, 16, 1, "0", "0"),
    ("TRANSPORT", "Transports Rapides Comtois", 3, 0, 0, 0, 1, "0", "0"),
    ("BERNARD", "Bernard Cécile (salariée)", 2, 0, 0, 0, 1, "0", "0"),
)

UNITS = ((1, "Pièce"), (2, "Gramme"), (3, "Paire"), (4, "Lot"))
DEPOTS = ((1, "Dépôt principal", "Besançon", "DEP1"), (2, "Boutique «Vendôme»", "Paris", "VEND"),
          (3, "Atelier de Besançon", "Besançon", "ATEL"))
TARIFF_CATEGORIES = (  # cbIndice, CT_Intitule, coefficient on AR_PrixVen, AC_Remise
    (1, "Détaillants", "1", "0"),
    (2, "Grossistes", "0.85", "5"),
    (3, "Export (€ HT)", "0.9", "2.5"),
    (4, "", None, None),
)
# FA_CodeFamille, FA_Intitule, FA_Type (0 detail, 1 total, 2 centralisateur), AR_Ref prefix
FAMILIES = (
    ("BAGUES", "Bagues", 0, "BA"),
    ("BRACELETS", "Bracelets", 0, "BR"),
    ("COLLIERS", "Colliers", 0, "CO"),
    ("BOUCLES", "Boucles d’oreilles", 0, "BO"),
    ("MONTRES", "Montres", 0, "MO"),
    ("PENDENTIFS", "Pendentifs & médailles", 0, "PE"),
    ("CHAINES", "Chaînes", 0, "CH"),
    ("ALLIANCES", "Alliances «Éternité»", 0, "AL"),
    ("SERVICES", "Services & chèques cadeaux", 0, "SE"),
    ("ZBIJOUX", "Total bijoux", 1, None),
    ("ZCENTRAL", "Centralisateur joaillerie", 2, None),
)
# AR_Ref, AR_Design, FA_CodeFamille, AR_PrixAch, AR_PrixVen, AR_UniteVen, AR_SuiviStock, AR_Sommeil
CURATED_ARTICLES = (
    ("BAAR01", "Bague argent 925 «Solitaire»", "BAGUES", "32.4", "89.9", 1, 2, 0),
    ("BAOR01", "Bague or 18 carats, diamant 0,25 ct", "BAGUES", "610", "1249", 1, 2, 0),
    ("BRAR10", "Bracelet argent maille forçat", "BRACELETS", "21.15", "59.5", 1, 2, 0),
    ("BROR05", "Bracelet or jaune – jonc ciselé", "BRACELETS", "389", "845", 1, 2, 0),
    ("COPE01", "Collier perles de culture d’eau douce", "COLLIERS", "95", "229", 1, 2, 0),
    ("COOR02", "Collier or «Cœur» 45 cm", "COLLIERS", "180.6", "399", 1, 2, 0),
    ("BOAR01", "Boucles d’oreilles créoles argent", "BOUCLES", "12.3", "34.9", 3, 2, 0),
    ("BOOR03", "Boucles d’oreilles or & saphir", "BOUCLES", "240", "560", 3, 2, 0),
    ("MOAC01", "Montre acier, bracelet cuir", "MONTRES", "78", "189", 1, 2, 0),
    ("MOOR01", "Montre or rose – édition limitée", "MONTRES", "1450", "3290", 1, 2, 0),
    ("PEAR01", "Pendentif médaille de baptême", "PENDENTIFS", "18.5", "49", 1, 2, 0),
    ("PEOR02", "Pendentif œil de tigre", "PENDENTIFS", "41", "119", 1, 2, 0),
    ("CHOR01", "Chaîne or au gramme", "CHAINES", "48.1", "92.35", 2, 2, 0),
    ("ALOR01", "Alliance or blanc 750‰", "ALLIANCES", "210", "480", 1, 2, 0),
    ("GOAR01", "Gourmette argent gravée", "BRACELETS", "27", "75", 1, 2, 0),
    ("CADEAU50", "Chèque cadeau 50 €", "SERVICES", "50", "50", 1, 0, 0),
    ("BAAR99", "Bague argent ancienne collection", "BAGUES", "20", "45", 1, 2, 1),
)
METALS = (("AR", "argent 925"), ("OR", "or jaune 18 carats"), ("OB", "or blanc"), ("OR", "or rose"),
          ("PL", "plaqué or"), ("AC", "acier"))
STONES = ("", " et diamant", " et saphir", " et rubis", " et émeraude", " et perle", " «Cœur»", " – gravure offerte")
FAMILY_NOUNS = {"BAGUES": "Bague", "BRACELETS": "Bracelet", "COLLIERS": "Collier",
                "BOUCLES": "Boucles d’oreilles", "MONTRES": "Montre", "PENDENTIFS": "Pendentif",
                "CHAINES": "Chaîne", "ALLIANCES": "Alliance", "SERVICES": "Prestation"}
# DO_Domaine, DO_Type, piece prefix, share of documents (per thousand)
DOCUMENT_KINDS = (
    (0, 0, "DE", 300), (0, 1, "BC", 200), (0, 3, "BL", 50), (0, 6, "FA", 150), (0, 7, "FA", 250),
    (1, 12, "CF", 30), (1, 17, "FF", 20),
)
LINE_START = 1000          # Sage numbers DL_Ligne in steps of 1000

SAGE_START = dt.datetime(2023, 1, 2, 8, 0)
SAGE_SPAN_SECONDS = 700 * 24 * 3600
DOSSIER_CREATED = dt.datetime(2019, 6, 3, 9, 30)


# --- building ---------------------------------------------------------------------------------

def _luhn_completed(digits: str) -> str:
    """`digits` followed by the digit that makes the whole pass the Luhn check (as SIREN and SIRET do)."""
    total = 0
    for position, digit in enumerate(reversed(digits)):
        value = int(digit) * (2 if position % 2 == 0 else 1)
        total += value - 9 if value > 9 else value
    return digits + str((10 - total % 10) % 10)


def company_numbers(company: str) -> tuple[str, str]:
    """A company's own SIRET (14 digits) and intra-community VAT number, the same every time for
    the same company name, so two demo companies are never the same company."""
    seed = sum((index + 1) * ord(char) for index, char in enumerate(company)) * 7919 % 10 ** 8
    siren = _luhn_completed(f"{seed:08d}")
    siret = _luhn_completed(siren + "0001")
    return siret, f"FR{(12 + 3 * (int(siren) % 97)) % 97:02d}{siren}"


def build_demo_dossier(odbc_or_path: str | Path, *, size: str = "tiny", seed: int = 0, company: str = "BIJOU",
                       database_name: str | None = None, bad_rows: bool = False) -> DemoStats:
    """Create a Sage 100 demo company database in a SQLite file (replacing a previous one).

    Args:
        odbc_or_path: the file path, or an ODBC connection string `Driver=SQLite3;Database=...`.
        size: "tiny" (about 20 tiers, for tests), "small" (500), "medium" (10k tiers, 100k lines)
            or "large" (100k tiers, over a million lines).
        seed: the same seed gives the same content.
        company: the company code; the default database name.
        database_name: the name the dossier reports as its database (SQL Server's DB_NAME()).
        bad_rows: add rows the connector must report instead of syncing (a tiers without a name,
            a tiers whose sales rep does not exist, contacts with an over-long or invalid e-mail).
    """
    if size not in SIZES:
        raise ValueError(f"unknown demo size {size!r}; expected one of {', '.join(SIZES)}")
    started = time.perf_counter()
    path = _resolve_path(odbc_or_path)
    _remove_database(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    name = database_name or company
    connection = sqlite3.connect(path, isolation_level=None)
    try:
        for pragma in ("journal_mode = OFF", "synchronous = OFF", "temp_store = MEMORY", "cache_size = -200000"):
            connection.execute(f"PRAGMA {pragma}")
        for statement in ddl(SQLITE, parts=("tables",)):
            connection.execute(statement)
        connection.execute("BEGIN")
        _DemoWriter(connection, SIZES[size], random.Random(f"{company}:{size}:{seed}"), company, bad_rows).write()
        connection.execute("COMMIT")
        for statement in ddl(SQLITE, parts=("indexes", "triggers")):
            connection.execute(statement)
        connection.execute(f"INSERT INTO {EMULATION_TABLE} (ES_DatabaseName, ES_CreateDate, ES_Clock)"
                           " VALUES (?, ?, NULL)", (name, sqlite_datetime(dt.datetime.now())))
        connection.execute("ANALYZE")
        connection.execute("PRAGMA journal_mode = WAL")
        counts = {table: connection.execute(f"SELECT COUNT(*) FROM {table}").fetchone()[0] for table in TABLE_NAMES}
    finally:
        connection.close()
    return DemoStats(path=path, database_name=name, size=size, seed=seed, counts=counts,
                     seconds=round(time.perf_counter() - started, 3), bad_rows=bad_rows)


def _resolve_path(target: str | Path) -> Path:
    if isinstance(target, Path):
        return target
    from_odbc = connection_path(target)
    if from_odbc is not None:
        return from_odbc
    if "=" in target and ";" in target:
        raise ValueError("the demo dossier is a SQLite file: give its path or a Driver=SQLite3 connection string")
    return Path(target)


def _remove_database(path: Path) -> None:
    """Remove a previous demo file (refusing anything that is not a SQLite database)."""
    if path.exists() and path.stat().st_size > 0:
        with open(path, "rb") as handle:
            if handle.read(16) != b"SQLite format 3\x00":
                raise FileExistsError(f"{path} exists and is not a SQLite database; not replacing it")
    for suffix in ("", "-wal", "-shm", "-journal"):
        Path(f"{path}{suffix}").unlink(missing_ok=True)


def _cents(text: str | Decimal) -> int:
    return int((Decimal(text) * 100).to_integral_value())


def _amount(cents: int) -> float:
    return cents / 100


@dataclass
class _Article:
    ref: str
    price_cents: int
    by_weight: bool
    design: str


@dataclass
class _Tiers:
    num: str
    kind: int
    prospect: int
    category: int
    discount_bp: int          # CT_Taux02 in hundredths of a percent
    rep: int


@dataclass
class _DemoWriter:
    connection: sqlite3.Connection
    size: DemoSize
    rng: random.Random
    company: str
    bad_rows: bool
    articles: list[_Article] = field(default_factory=list)
    customers: list[_Tiers] = field(default_factory=list)
    suppliers: list[_Tiers] = field(default_factory=list)

    def write(self) -> None:
        self._dossier()
        self._parameters()
        reps = self._reps()
        self._tiers(reps)
        self._families()
        self._articles()
        self._stock_and_prices()
        self._documents(reps)

    # times are deterministic: a spread over two years of activity
    def _moment(self) -> dt.datetime:
        return SAGE_START + dt.timedelta(seconds=self.rng.randrange(SAGE_SPAN_SECONDS))

    def _stamps(self) -> tuple[str, str]:
        modified = self._moment()
        created = modified - dt.timedelta(days=self.rng.randrange(0, 90))
        return sqlite_datetime(modified), sqlite_datetime(created)

    def _insert(self, table: str, columns: tuple[str, ...], rows) -> None:
        sql = f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({', '.join('?' * len(columns))})"
        self.connection.executemany(sql, rows)

    def _dossier(self) -> None:
        siret, vat = company_numbers(self.company)
        self._insert("P_DOSSIER", ("D_RaisonSoc", "D_Profession", "D_Adresse", "D_CodePostal", "D_Ville",
                                   "D_Pays", "D_Telephone", "D_EMail", "D_Siret", "D_Ape", "D_Identifiant",
                                   "D_DebutExo01", "D_FinExo01", "cbModification", "cbCreation"),
                     [(f"{self.company} SA", "Négoce de bijoux & joaillerie", "12 rue des Orfèvres", "25000",
                       "Besançon", "France", "03 81 00 00 00", f"contact@{self.company.lower()}.fr",
                       siret, "4648Z", vat, "2024-01-01 00:00:00.000",
                       "2024-12-31 00:00:00.000", sqlite_datetime(DOSSIER_CREATED),
                       sqlite_datetime(DOSSIER_CREATED))])

    def _parameters(self) -> None:
        stamp = sqlite_datetime(DOSSIER_CREATED)
        self._insert("P_UNITE", ("cbIndice", "U_Intitule", "cbModification", "cbCreation"),
                     [(number, label, stamp, stamp) for number, label in UNITS])
        self._insert("P_CATTARIF", ("cbIndice", "CT_Intitule", "cbModification", "cbCreation"),
                     [(number, label, stamp, stamp) for number, label, _, _ in TARIFF_CATEGORIES])
        self._insert("F_DEPOT", ("DE_No", "DE_Intitule", "DE_Ville", "DE_Code", "DE_Principal", "cbModification",
                                 "cbCreation"),
                     [(number, label, city, code, int(index == 0), stamp, stamp)
                      for index, (number, label, city, code) in enumerate(DEPOTS)])

    def _reps(self) -> list[int]:
        rows = []
        for number in range(1, self.size.reps + 1):
            if number <= len(REPS):
                last, first, job, seller, buyer, dormant = REPS[number - 1]
            else:
                last = self.rng.choice(LAST_NAMES).upper()
                first = self.rng.choice(FIRST_NAMES)
                job, seller, buyer, dormant = "Commercial(e) terrain", 1, 0, 0
            email = f"{_ascii(first)}.{_ascii(last)}{number if number > len(REPS) else ''}@{self.company.lower()}.fr"
            rows.append((number, last, first, job, seller, buyer, dormant, email.lower(),
                         f"03 81 4{number % 10} {number % 100:02d} 00", f"06 12 {number % 100:02d} 34 56",
                         f"M{number:04d}", *self._stamps()))
        self._insert("F_COLLABORATEUR", ("CO_No", "CO_Nom", "CO_Prenom", "CO_Fonction", "CO_Vendeur",
                                         "CO_Acheteur", "CO_Sommeil", "CO_EMail", "CO_Telephone",
                                         "CO_TelPortable", "CO_Matricule", "cbModification", "cbCreation"), rows)
        return [row[0] for row in rows if row[4] == 1]

    def _tiers(self, reps: list[int]) -> None:
        columns = ("CT_Num", "CT_Intitule", "CT_Type", "CT_Prospect", "CT_Sommeil", "CT_Adresse", "CT_Complement",
                   "CT_CodePostal", "CT_Ville", "CT_CodeRegion", "CT_Pays", "CT_Telephone", "CT_Telecopie",
                   "CT_EMail", "CT_Site", "CT_Siret", "CT_Identifiant", "CT_Ape", "CO_No", "N_CatTarif",
                   "CT_Taux02", "CT_Encours", "CT_Classement", "CT_DateCreate", "CG_NumPrinc",
                   "cbModification", "cbCreation")
        contacts = []
        rows = []
        for index in range(self.size.tiers):
            if index < len(CURATED_TIERS):
                num, name, kind, prospect, dormant, city, category, discount, limit = CURATED_TIERS[index]
                city = CITIES[city]
            else:
                kind = self._tiers_kind()
                num = {0: "CL", 1: "FR", 2: "SA", 3: "AU"}[kind] + f"{index + 1:06d}"
                surname = self.rng.choice(LAST_NAMES)
                name = (f"{self.rng.choice(SHOP_KINDS)} {surname}" if kind == 0
                        else f"{surname} {'SARL' if kind == 1 else 'et associés'}")
                prospect = int(kind == 0 and self.rng.random() < 0.2)
                dormant = int(kind == 0 and not prospect and self.rng.random() < 0.05)
                city = self.rng.choice(CITIES)
                category = self.rng.choice((1, 1, 1, 2, 3))
                discount = self.rng.choice(("0", "0", "2.5", "5", "7.5"))
                limit = str(self.rng.randrange(0, 50) * 1000)
            rep = self.rng.choice(reps) if kind == 0 and reps and self.rng.random() < 0.9 else 0
            domain = _ascii(name.split()[-1]).lower() or "client"
            rows.append((num, name, kind, prospect, dormant, f"{self.rng.randrange(1, 120)} {self.rng.choice(STREETS)}",
                         self.rng.choice((None, "", "Bâtiment B", "2e étage")), *city,
                         f"0{self.rng.randrange(1, 6)} {self.rng.randrange(10, 99)} {self.rng.randrange(10, 99)} "
                         f"{self.rng.randrange(10, 99)} {self.rng.randrange(10, 99)}",
                         None, f"contact@{domain}-bijoux.fr", f"www.{domain}-bijoux.fr",
                         f"{self.rng.randrange(10**13, 10**14)}", f"FR{self.rng.randrange(10**10, 10**11)}", "4777Z",
                         rep, category, float(discount), float(limit), name[:17].upper(),
                         NO_DATE if index % 3 == 0 else sqlite_datetime(self._moment()),
                         "4110000" if kind == 0 else "4010000", *self._stamps()))
            tiers = _Tiers(num, kind, prospect, category, _cents(discount), rep)
            if kind == 0:
                self.customers.append(tiers)
            elif kind == 1:
                self.suppliers.append(tiers)
            if kind in (0, 1):
                contacts += self._contacts_of(num, 1 + (index % 3 == 0) if index < len(CURATED_TIERS)
                                              else self.rng.choice((0, 1, 1, 2)), len(contacts))
        if self.bad_rows:
            first = rows[0]
            rows.append((BAD_ACCOUNT_NO_NAME, None, *first[2:25], *self._stamps()))
            rows.append((BAD_ACCOUNT_UNKNOWN_REP, "Bijouterie du Fantôme", *first[2:18], BAD_UNKNOWN_REP_NO,
                         *first[19:25], *self._stamps()))
        self._insert("F_COMPTET", columns, rows)
        self._delivery_addresses(rows[:self.size.tiers])
        if self.bad_rows:
            owner = CURATED_TIERS[0][0]
            contacts.append((owner, BAD_CONTACT_LONG_EMAIL, 1, "Trop-Long", "Adresse", "Responsable",
                             None, None, ("a" * 180) + "@exemple-bijoux.fr", *self._stamps()))
            contacts.append((owner, BAD_CONTACT_INVALID_EMAIL, 2, "Sans-Arobase", "Irène", "Comptable",
                             None, None, "irene.sans-arobase(at)bijou.fr", *self._stamps()))
        self._insert("F_CONTACTT", ("CT_Num", "CT_No", "CT_Civilite", "CT_Nom", "CT_Prenom", "CT_Fonction",
                                    "CT_Telephone", "CT_TelPortable", "CT_EMail", "cbModification", "cbCreation"),
                     contacts)

    def _delivery_addresses(self, tiers_rows: list[tuple]) -> None:
        """Each client's and prospect's main delivery address (`LI_Principal` 1, its own address, as
        Sage creates it with the tiers), and a second one for one in four (its stock room)."""
        rows = []
        for index, row in enumerate(tiers_rows):
            num, name, kind, *_ = row
            if kind != 0:
                continue
            address, complement, postcode, city, region, country = row[5:11]
            rows.append((len(rows) + 1, num, name[:35], address, complement, postcode, city, region, country, 1,
                         row[25], row[26]))
            if index % 4 == 1:
                rows.append((len(rows) + 1, num, "Réserve", f"{address} (réserve)"[:35], None, postcode, city, region,
                             country, 0, row[25], row[26]))
        self._insert("F_LIVRAISON", ("LI_No", "CT_Num", "LI_Intitule", "LI_Adresse", "LI_Complement", "LI_CodePostal",
                                     "LI_Ville", "LI_CodeRegion", "LI_Pays", "LI_Principal", "cbModification",
                                     "cbCreation"), rows)

    def _tiers_kind(self) -> int:
        draw = self.rng.random()
        return 0 if draw < 0.88 else 1 if draw < 0.96 else 2 if draw < 0.98 else 3

    def _contacts_of(self, num: str, count: int, already: int) -> list[tuple]:
        contacts = []
        for offset in range(count):
            first, last = self.rng.choice(FIRST_NAMES), self.rng.choice(LAST_NAMES)
            number = already + offset + 1
            contacts.append((num, number, self.rng.randrange(0, 3), last, first,
                             self.rng.choice(("Gérant(e)", "Responsable achats", "Vendeuse", "Comptable", None)),
                             f"03 {self.rng.randrange(10, 99)} {self.rng.randrange(10, 99)} 00 00",
                             self.rng.choice((None, f"06 {self.rng.randrange(10, 99)} 00 00 00")),
                             f"{_ascii(first)}.{_ascii(last)}{number}@{_ascii(num).lower()}.fr".lower(),
                             *self._stamps()))
        return contacts

    def _families(self) -> None:
        stamp = sqlite_datetime(DOSSIER_CREATED)
        self._insert("F_FAMILLE", ("FA_CodeFamille", "FA_Intitule", "FA_Type", "FA_Central", "cbModification",
                                   "cbCreation"),
                     [(code, label, kind, "ZCENTRAL" if kind == 0 else None, stamp, stamp)
                      for code, label, kind, _ in FAMILIES])

    def _articles(self) -> None:
        detail = [family for family in FAMILIES if family[2] == 0 and family[0] != "SERVICES"]
        rows = []
        for index in range(self.size.articles):
            if index < len(CURATED_ARTICLES):
                ref, design, family, cost, price, unit, tracked, dormant = CURATED_ARTICLES[index]
            else:
                family, _, _, prefix = detail[index % len(detail)]
                code, metal = self.rng.choice(METALS)
                ref = f"{prefix}{code}{index:05d}"
                design = f"{FAMILY_NOUNS[family]} {metal}{self.rng.choice(STONES)}"[:69]
                price = str(Decimal(self.rng.randrange(1990, 350000)) / 100)
                cost = str((Decimal(price) * Decimal("0.45")).quantize(Decimal("0.01")))
                unit, tracked, dormant = 1, 2, int(self.rng.random() < 0.03)
            barcode = None if tracked == 0 else f"3{self.rng.randrange(10**11, 10**12)}"
            rows.append((ref, design, family, float(cost), float(price), unit, tracked, dormant, barcode,
                         *self._stamps()))
            self.articles.append(_Article(ref, _cents(price), unit == 2, design))
        self._insert("F_ARTICLE", ("AR_Ref", "AR_Design", "FA_CodeFamille", "AR_PrixAch", "AR_PrixVen",
                                   "AR_UniteVen", "AR_SuiviStock", "AR_Sommeil", "AR_CodeBarre",
                                   "cbModification", "cbCreation"), rows)

    def _stock_and_prices(self) -> None:
        stock, prices, breaks = [], [], []
        for index, article in enumerate(self.articles):
            if article.ref == "CADEAU50":
                continue
            for depot, *_ in DEPOTS:
                if depot == 3 and index % 2:
                    continue
                if article.ref == "CHOR01":
                    quantity, reserved = ("10.1", "0.2") if depot == 1 else ("20.2", "0.1") if depot == 2 else ("0", "0")
                else:
                    quantity = str(self.rng.randrange(0, 60))
                    reserved = str(self.rng.randrange(0, min(int(quantity), 5) + 1))
                stock.append((article.ref, depot, float(quantity), float(reserved), float(self.rng.randrange(0, 10)),
                              int(depot == 1), *self._stamps()))
            for category, _, coefficient, discount in TARIFF_CATEGORIES:
                if coefficient is None:
                    continue
                price = _amount(int((Decimal(article.price_cents) * Decimal(coefficient)).to_integral_value()))
                prices.append((article.ref, category, None, price, float(coefficient), 0, float(discount),
                               *self._stamps()))
            if index % 5 == 0 and self.customers:
                customer = self.customers[index % len(self.customers)]
                prices.append((article.ref, 0, customer.num, _amount(article.price_cents * 95 // 100), 0.95, 0, 0.0,
                               *self._stamps()))
            if index % 4 == 0:
                for bound, discount in ((5, "2"), (10, "5"), (999999, "8")):
                    breaks.append((article.ref, "a01", float(bound), float(discount), 1, 0.0, *self._stamps()))
        self._insert("F_ARTSTOCK", ("AR_Ref", "DE_No", "AS_QteSto", "AS_QteRes", "AS_QteCom", "AS_Principal",
                                    "cbModification", "cbCreation"), stock)
        self._insert("F_ARTCLIENT", ("AR_Ref", "AC_Categorie", "CT_Num", "AC_PrixVen", "AC_Coef", "AC_QteMont",
                                     "AC_Remise", "cbModification", "cbCreation"), prices)
        self._insert("F_TARIFQTE", ("AR_Ref", "TQ_RefCF", "TQ_BorneSup", "TQ_Remise01REM_Valeur",
                                    "TQ_Remise01REM_Type", "TQ_PrixNet", "cbModification", "cbCreation"), breaks)

    def _documents(self, reps: list[int]) -> None:
        header_columns = ("DO_Domaine", "DO_Type", "DO_Piece", "DO_Date", "DO_Ref", "DO_Tiers", "CO_No", "DE_No",
                          "DO_Statut", "DO_Souche", "DO_DateLivr", "N_CatTarif", "DO_TotalHT", "DO_TotalTTC",
                          "DO_NetAPayer", "cbModification", "cbCreation")
        line_columns = ("DO_Domaine", "DO_Type", "CT_Num", "DO_Piece", "DL_PieceBC", "DL_PieceDE", "DO_Date",
                        "DL_Ligne", "DO_Ref", "AR_Ref", "DL_Design", "DL_Qte", "DL_PrixUnitaire",
                        "DL_Remise01REM_Valeur", "DL_Taxe1", "DL_MontantHT", "DL_MontantTTC", "DE_No", "CO_No",
                        "DL_No", "cbModification", "cbCreation")
        weights = [share for *_, share in DOCUMENT_KINDS]
        numbers: dict[str, int] = {}
        line_no = 0
        headers, lines = [], []
        for index in range(self.size.documents):
            domain, doc_type, prefix, _ = (DOCUMENT_KINDS[index % len(DOCUMENT_KINDS)] if index < len(DOCUMENT_KINDS) * 2
                                           else self.rng.choices(DOCUMENT_KINDS, weights)[0])
            partners = self.suppliers if domain == 1 else self.customers
            if not partners:
                continue
            tiers = partners[self.rng.randrange(len(partners))]
            if domain == 0 and doc_type != 0 and tiers.prospect:
                doc_type, prefix = 0, "DE"
            numbers[prefix] = numbers.get(prefix, 0) + 1
            piece = f"{prefix}{numbers[prefix]:05d}"
            date = self._moment().replace(hour=0, minute=0, second=0)
            stamp = sqlite_datetime(date + dt.timedelta(hours=self.rng.randrange(8, 19), minutes=self.rng.randrange(60)))
            created = sqlite_datetime(date + dt.timedelta(hours=8))
            date_text = NO_DATE if (domain, doc_type, numbers[prefix]) == (0, 0, 2) else sqlite_datetime(date)
            rep = tiers.rep if domain == 0 else 0
            total_ht = total_ttc = 0
            for position in range(1, self.rng.randint(1, self.size.max_lines) + 1):
                article = self.articles[self.rng.randrange(len(self.articles))]
                quantity_milli = (self.rng.randrange(1, 400) * 100) if article.by_weight else self.rng.randint(1, 12) * 1000
                price = article.price_cents if domain == 0 else article.price_cents * 45 // 100
                discount_bp = tiers.discount_bp if domain == 0 else 0
                line_ht = _round_div(quantity_milli * price * (10000 - discount_bp), 1000 * 10000)
                line_ttc = _round_div(line_ht * (100 + VAT_RATE_PERCENT), 100)
                total_ht += line_ht
                total_ttc += line_ttc
                line_no += 1
                lines.append((domain, doc_type, tiers.num, piece, piece if doc_type == 1 else None,
                              piece if doc_type == 0 else None, date_text, position * LINE_START,
                              None, article.ref, article.design, quantity_milli / 1000, _amount(price),
                              discount_bp / 100, float(VAT_RATE_PERCENT), _amount(line_ht), _amount(line_ttc),
                              1, rep, line_no, stamp, created))
            headers.append((domain, doc_type, piece, date_text, f"CDE-{self.rng.randrange(1000, 9999)}"
                            if self.rng.random() < 0.4 else None, tiers.num, rep, 1,
                            self.rng.randrange(0, 3), 0, NO_DATE, tiers.category, _amount(total_ht),
                            _amount(total_ttc), _amount(total_ttc), stamp, created))
            if len(lines) >= 50_000:
                self._insert("F_DOCENTETE", header_columns, headers)
                self._insert("F_DOCLIGNE", line_columns, lines)
                headers, lines = [], []
        self._insert("F_DOCENTETE", header_columns, headers)
        self._insert("F_DOCLIGNE", line_columns, lines)
        stamp = sqlite_datetime(DOSSIER_CREATED)
        self._insert("F_DOCCURRENTPIECE", ("DC_Domaine", "DC_IdCol", "DC_Souche", "DC_Piece", "cbModification",
                                           "cbCreation"),
                     [(domain, doc_type, 0, f"{prefix}{numbers.get(prefix, 0) + 1:05d}", stamp, stamp)
                      for domain, doc_type, prefix, _ in DOCUMENT_KINDS])


def _round_div(numerator: int, denominator: int) -> int:
    """Integer division rounded half away from zero (amounts are rounded to the cent)."""
    quotient, remainder = divmod(abs(numerator), denominator)
    if remainder * 2 >= denominator:
        quotient += 1
    return quotient if numerator >= 0 else -quotient


def _ascii(value: str) -> str:
    """Letters, digits, dots and hyphens only, accents removed: for e-mail addresses and domains."""
    value = value.replace("œ", "oe").replace("Œ", "OE")
    value = unicodedata.normalize("NFKD", value).encode("ascii", "ignore").decode("ascii")
    return "".join(ch if ch.isalnum() or ch in "-." else "-" for ch in value).strip("-")


# --- mutations, as a Sage user makes them ------------------------------------------------------------

PARENT_OF_CHILD = {  # deleting these rows re-saves their parent, as Sage's forms do
    "F_ARTSTOCK": ("F_ARTICLE", ("AR_Ref",)),
    "F_ARTCLIENT": ("F_ARTICLE", ("AR_Ref",)),
    "F_TARIFQTE": ("F_ARTICLE", ("AR_Ref",)),
    "F_DOCLIGNE": ("F_DOCENTETE", ("DO_Domaine", "DO_Type", "DO_Piece")),
}


@contextmanager
def _session(target: str | Path, at: dt.datetime | None) -> Iterator[sqlite3.Connection]:
    """One write transaction; with `at`, Sage's (emulated) triggers stamp that time."""
    connection = sqlite3.connect(_resolve_path(target), timeout=30, isolation_level=None)
    try:
        connection.execute("BEGIN IMMEDIATE")
        previous = None
        if at is not None:
            row = connection.execute(f"SELECT ES_Clock FROM {EMULATION_TABLE}").fetchone()
            previous = row[0] if row else None
            _write_clock(connection, sqlite_datetime(at))
        try:
            yield connection
        except BaseException:
            connection.execute("ROLLBACK")
            raise
        if at is not None:
            _write_clock(connection, previous)
        connection.execute("COMMIT")
    finally:
        connection.close()


def _write_clock(connection: sqlite3.Connection, value: str | None) -> None:
    if connection.execute(f"UPDATE {EMULATION_TABLE} SET ES_Clock = ?", (value,)).rowcount == 0:
        connection.execute(f"INSERT INTO {EMULATION_TABLE} (ES_Clock) VALUES (?)", (value,))


def _sql_value(value: Any) -> Any:
    if isinstance(value, dt.datetime):
        return sqlite_datetime(value)
    if isinstance(value, dt.date):
        return sqlite_datetime(dt.datetime(value.year, value.month, value.day))
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, bool):
        return int(value)
    return value


def _where(where: dict[str, Any] | None) -> tuple[str, list]:
    if not where:
        return "", []
    clauses, parameters = [], []
    for column, value in where.items():
        if value is None:
            clauses.append(f"{column} IS NULL")
        else:
            clauses.append(f"{column} = ?")
            parameters.append(_sql_value(value))
    return " WHERE " + " AND ".join(clauses), parameters


def set_clock(target: str | Path, when: dt.datetime | None) -> None:
    """The time Sage's (emulated) triggers stamp from now on; None returns to the real clock."""
    with _session(target, None) as connection:
        _write_clock(connection, sqlite_datetime(when))


def update_row(target: str | Path, table: str, where: dict[str, Any], values: dict[str, Any], *,
               at: dt.datetime | None = None) -> int:
    """Change columns of the matching rows (the trigger stamps cbModification); returns the row count."""
    clause, parameters = _where(where)
    assignments = ", ".join(f"{column} = ?" for column in values)
    with _session(target, at) as connection:
        return connection.execute(f"UPDATE {table} SET {assignments}{clause}",
                                  [_sql_value(value) for value in values.values()] + parameters).rowcount


def touch_rows(target: str | Path, table: str, where: dict[str, Any] | None = None, *,
               at: dt.datetime | None = None) -> int:
    """Re-save rows without changing their content, as opening and saving a Sage form does."""
    clause, parameters = _where(where)
    with _session(target, at) as connection:
        return connection.execute(f"UPDATE {table} SET cbFlag = cbFlag{clause}", parameters).rowcount


def insert_row(target: str | Path, table: str, values: dict[str, Any], *, at: dt.datetime | None = None) -> int:
    """Insert one row (the trigger stamps cbModification and cbCreation); returns its cbMarq."""
    columns = list(values)
    with _session(target, at) as connection:
        cursor = connection.execute(
            f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({', '.join('?' * len(columns))})",
            [_sql_value(values[column]) for column in columns])
        return int(cursor.lastrowid)


def delete_row(target: str | Path, table: str, where: dict[str, Any], *, at: dt.datetime | None = None) -> int:
    """Delete the matching rows; deleting a child row (stock, price, document line) re-saves its
    parent, and a document's totals are recomputed from its remaining lines, as Sage does."""
    clause, parameters = _where(where)
    with _session(target, at) as connection:
        parents = []
        if table in PARENT_OF_CHILD:
            parent_table, link = PARENT_OF_CHILD[table]
            parents = connection.execute(f"SELECT DISTINCT {', '.join(link)} FROM {table}{clause}", parameters).fetchall()
        count = connection.execute(f"DELETE FROM {table}{clause}", parameters).rowcount
        for parent in parents:
            parent_clause, parent_parameters = _where(dict(zip(link, parent)))
            if parent_table == "F_DOCENTETE":
                _recompute_totals(connection, *parent)
            connection.execute(f"UPDATE {parent_table} SET cbFlag = cbFlag{parent_clause}", parent_parameters)
        return count


def _recompute_totals(connection: sqlite3.Connection, domain: int, doc_type: int, piece: str) -> None:
    rows = connection.execute("SELECT DL_MontantHT, DL_MontantTTC FROM F_DOCLIGNE WHERE DO_Domaine = ?"
                              " AND DO_Type = ? AND DO_Piece = ?", (domain, doc_type, piece)).fetchall()
    total_ht = sum(_cents(repr(float(ht or 0))) for ht, _ in rows)
    total_ttc = sum(_cents(repr(float(ttc or 0))) for _, ttc in rows)
    connection.execute("UPDATE F_DOCENTETE SET DO_TotalHT = ?, DO_TotalTTC = ?, DO_NetAPayer = ?"
                       " WHERE DO_Domaine = ? AND DO_Type = ? AND DO_Piece = ?",
                       (_amount(total_ht), _amount(total_ttc), _amount(total_ttc), domain, doc_type, piece))


def _next_piece(connection: sqlite3.Connection, domain: int, doc_type: int) -> str:
    """Take the next piece number from F_DOCCURRENTPIECE inside the caller's transaction."""
    row = connection.execute("SELECT DC_Piece FROM F_DOCCURRENTPIECE WHERE DC_Domaine = ? AND DC_IdCol = ?"
                             " AND DC_Souche = 0", (domain, doc_type)).fetchone()
    if row is None:
        raise ValueError(f"no numbering for document type {doc_type} of domain {domain}")
    piece = row[0]
    digits = len(piece) - len(piece.rstrip("0123456789"))
    following = f"{piece[:len(piece) - digits]}{int(piece[len(piece) - digits:]) + 1:0{digits}d}"
    connection.execute("UPDATE F_DOCCURRENTPIECE SET DC_Piece = ? WHERE DC_Domaine = ? AND DC_IdCol = ?"
                       " AND DC_Souche = 0", (following, domain, doc_type))
    if doc_type in (6, 7):  # invoices share one numbering
        other = 13 - doc_type
        connection.execute("UPDATE F_DOCCURRENTPIECE SET DC_Piece = ? WHERE DC_Domaine = ? AND DC_IdCol = ?"
                           " AND DC_Souche = 0", (following, domain, other))
    return piece


def insert_document(target: str | Path, *, doc_type: int, tiers: str, lines: list[dict[str, Any]],
                    date: dt.date | None = None, rep: int = 0, reference: str | None = None,
                    at: dt.datetime | None = None) -> str:
    """Enter a sales document with its lines, numbered from F_DOCCURRENTPIECE; returns its piece.

    Each line is `{"AR_Ref": ..., "DL_Qte": ..., "DL_PrixUnitaire": ..., "DL_Remise01REM_Valeur": ...}`
    (price defaults to the article's `AR_PrixVen`); amounts and header totals are computed.
    """
    with _session(target, at) as connection:
        piece = _next_piece(connection, 0, doc_type)
        date_text = sqlite_datetime(dt.datetime.combine(date or dt.date.today(), dt.time()))
        category = connection.execute("SELECT N_CatTarif FROM F_COMPTET WHERE CT_Num = ?", (tiers,)).fetchone()
        next_line = connection.execute("SELECT COALESCE(MAX(DL_No), 0) + 1 FROM F_DOCLIGNE").fetchone()[0]
        total_ht = total_ttc = 0
        for position, line in enumerate(lines, start=1):
            article = connection.execute("SELECT AR_Design, AR_PrixVen FROM F_ARTICLE WHERE AR_Ref = ?",
                                         (line["AR_Ref"],)).fetchone()
            design = line.get("DL_Design", article[0] if article else None)
            price = _cents(str(line.get("DL_PrixUnitaire", repr(float(article[1])) if article else "0")))
            quantity_milli = int(Decimal(str(line.get("DL_Qte", 1))) * 1000)
            discount_bp = _cents(str(line.get("DL_Remise01REM_Valeur", 0)))
            line_ht = _round_div(quantity_milli * price * (10000 - discount_bp), 1000 * 10000)
            line_ttc = _round_div(line_ht * (100 + VAT_RATE_PERCENT), 100)
            total_ht, total_ttc = total_ht + line_ht, total_ttc + line_ttc
            connection.execute(
                "INSERT INTO F_DOCLIGNE (DO_Domaine, DO_Type, CT_Num, DO_Piece, DO_Date, DL_Ligne, AR_Ref, DL_Design,"
                " DL_Qte, DL_PrixUnitaire, DL_Remise01REM_Valeur, DL_Taxe1, DL_MontantHT, DL_MontantTTC, DE_No, CO_No,"
                " DL_No, DL_PieceDE, DL_PieceBC) VALUES (0, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 1, ?, ?, ?, ?)",
                (doc_type, tiers, piece, date_text, position * LINE_START, line["AR_Ref"], design,
                 quantity_milli / 1000, _amount(price), discount_bp / 100, float(VAT_RATE_PERCENT),
                 _amount(line_ht), _amount(line_ttc), rep, next_line + position - 1,
                 piece if doc_type == 0 else None, piece if doc_type == 1 else None))
        connection.execute(
            "INSERT INTO F_DOCENTETE (DO_Domaine, DO_Type, DO_Piece, DO_Date, DO_Ref, DO_Tiers, CO_No, DE_No,"
            " DO_Statut, DO_DateLivr, N_CatTarif, DO_TotalHT, DO_TotalTTC, DO_NetAPayer)"
            " VALUES (0, ?, ?, ?, ?, ?, ?, 1, 0, ?, ?, ?, ?, ?)",
            (doc_type, piece, date_text, reference, tiers, rep, NO_DATE, category[0] if category else 1,
             _amount(total_ht), _amount(total_ttc), _amount(total_ttc)))
        return piece


def transform_document(target: str | Path, *, doc_type: int, piece: str, to_type: int,
                       at: dt.datetime | None = None) -> str:
    """Transform a sales document (quote → order → invoice) the way Sage does: a new header with
    the next piece number, the same lines UPDATEd in place (new DO_Type and DO_Piece, the
    origin kept in DL_PieceDE/DL_PieceBC), the old header deleted. Returns the new piece."""
    with _session(target, at) as connection:
        header = connection.execute("SELECT DO_Date, DO_Ref, DO_Tiers, CO_No, DE_No, N_CatTarif, DO_TotalHT,"
                                    " DO_TotalTTC, DO_NetAPayer FROM F_DOCENTETE WHERE DO_Domaine = 0 AND DO_Type = ?"
                                    " AND DO_Piece = ?", (doc_type, piece)).fetchone()
        if header is None:
            raise ValueError(f"no sales document {doc_type}:{piece}")
        new_piece = _next_piece(connection, 0, to_type)
        connection.execute(
            "INSERT INTO F_DOCENTETE (DO_Domaine, DO_Type, DO_Piece, DO_Date, DO_Ref, DO_Tiers, CO_No, DE_No,"
            " N_CatTarif, DO_TotalHT, DO_TotalTTC, DO_NetAPayer, DO_DateLivr) VALUES (0, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (to_type, new_piece, *header, NO_DATE))
        origin = {0: "DL_PieceDE", 1: "DL_PieceBC", 3: "DL_PieceBL"}.get(doc_type)
        keep_origin = f", {origin} = COALESCE({origin}, ?)" if origin else ""
        connection.execute(f"UPDATE F_DOCLIGNE SET DO_Type = ?, DO_Piece = ?{keep_origin}"
                           " WHERE DO_Domaine = 0 AND DO_Type = ? AND DO_Piece = ?",
                           (to_type, new_piece, *([piece] if origin else []), doc_type, piece))
        connection.execute("DELETE FROM F_DOCENTETE WHERE DO_Domaine = 0 AND DO_Type = ? AND DO_Piece = ?",
                           (doc_type, piece))
        return new_piece


# --- hostile data -----------------------------------------------------------------------------
# Values a damaged or hand-edited database holds and the connector must survive row by row. The
# SQLite stand-in keeps whatever is written, as a database without column types does; SQL Server
# would refuse most of them, except text Sage's own drivers cannot decode (a lone UTF-16
# surrogate in an nvarchar column).

LONE_SURROGATE_SQL = "CAST(X'{prefix}EDA080{suffix}' AS TEXT)"
"""A text holding a lone UTF-16 surrogate (U+D800, CESU-8 bytes): what a driver cannot decode."""
BINARY_PHONE_SQL = "X'0381251940'"
HOSTILE_KEY_ACCOUNT = "ILLISIBLE"
HOSTILE_KEY_PRODUCT = "PRIXAMBIGU"


@dataclass(frozen=True)
class HostileRows:
    """What `add_hostile_rows` wrote, by case: the business key (or cbMarq) of each row."""

    modified_text: str           # account whose cbModification is text
    unreadable_name: str         # account whose CT_Intitule holds a lone surrogate (not synced)
    binary_phone: str            # account whose CT_Telephone is a blob
    bad_email: str               # account whose e-mail is malformed
    long_website: str            # account whose CT_Site is longer than SSM takes
    duplicate_account: str       # key of an account repeated by a second row
    duplicate_account_marq: int  # the repeating row
    bad_key_marq: int            # contact whose CT_No is 'A12'
    unreadable_phone: str        # contact whose CT_Telephone holds a lone surrogate
    french_price: str            # article whose AR_PrixVen is the text '12,50'
    ambiguous_price: str         # article whose AR_PrixVen is the text '1 250,00' (not synced)
    duplicate_product: str
    duplicate_product_marq: int
    impossible_date: str         # order whose DO_Date is '2026-02-30' (synced without date)
    zero_date: str               # invoice whose DO_Date is '0000-00-00' (not synced: its date is required)


def _surrogate_text(text: str) -> str:
    """SQL for `text` with a lone surrogate in its middle."""
    head, tail = text[: len(text) // 2].encode("utf-8").hex(), text[len(text) // 2:].encode("utf-8").hex()
    return LONE_SURROGATE_SQL.format(prefix=head.upper(), suffix=tail.upper())


def _copy_row(connection: sqlite3.Connection, table: str, marq: int, changes: dict[str, Any]) -> int:
    """Insert a copy of row `marq` of `table` with `changes`; returns the copy's cbMarq."""
    columns = [row[1] for row in connection.execute(f"PRAGMA table_info({table})") if row[1] != "cbMarq"]
    values = dict(zip(columns, connection.execute(f"SELECT {', '.join(columns)} FROM {table} WHERE cbMarq = ?",
                                                  (marq,)).fetchone()))
    values.update(changes)
    cursor = connection.execute(f"INSERT INTO {table} ({', '.join(values)}) VALUES ({', '.join('?' * len(values))})",
                                list(values.values()))
    return int(cursor.lastrowid)


def add_hostile_rows(target: str | Path) -> HostileRows:
    """Damage a demo dossier with one row of each hostile case (`HostileRows`), the rest untouched.

    Rows that cannot be synced at all are new rows nothing else refers to, so their absence from
    SSM costs nothing else; the other cases alter existing rows.
    """
    with _session(target, None) as connection:
        def first(sql: str, *parameters) -> tuple:
            return connection.execute(sql, parameters).fetchone()

        clients = [row[0] for row in connection.execute(
            "SELECT CT_Num FROM F_COMPTET WHERE CT_Type = 0 ORDER BY cbMarq LIMIT 6")]
        modified_text, binary_phone, bad_email, long_website, duplicated, contact_owner = clients
        connection.execute("UPDATE F_COMPTET SET cbModification = 'pas une date' WHERE CT_Num = ?", (modified_text,))
        connection.execute(f"UPDATE F_COMPTET SET CT_Telephone = {BINARY_PHONE_SQL} WHERE CT_Num = ?", (binary_phone,))
        connection.execute("UPDATE F_COMPTET SET CT_EMail = 'contact(at)bijou.fr' WHERE CT_Num = ?", (bad_email,))
        connection.execute("UPDATE F_COMPTET SET CT_Site = ? WHERE CT_Num = ?",
                           ("www." + "joaillerie-" * 8 + "bijou.fr", long_website))
        marq = first("SELECT cbMarq FROM F_COMPTET WHERE CT_Num = ?", duplicated)[0]
        duplicate_account_marq = _copy_row(connection, "F_COMPTET", marq,
                                           {"CT_Num": duplicated + " ", "CT_Intitule": "Doublon saisi à la main"})
        marq = first("SELECT cbMarq FROM F_COMPTET WHERE CT_Num = ?", clients[0])[0]
        _copy_row(connection, "F_COMPTET", marq, {"CT_Num": HOSTILE_KEY_ACCOUNT, "CT_Intitule": None})
        connection.execute(f"UPDATE F_COMPTET SET CT_Intitule = {_surrogate_text('Bijouterie illisible')}"
                           " WHERE CT_Num = ?", (HOSTILE_KEY_ACCOUNT,))

        contact_marq, unreadable_phone = first("SELECT cbMarq, CT_No FROM F_CONTACTT WHERE CT_Num = ?"
                                               " ORDER BY cbMarq", contact_owner)
        bad_key_marq = _copy_row(connection, "F_CONTACTT", contact_marq,
                                 {"CT_No": "A12", "CT_Nom": "Sans-Numéro", "CT_Prenom": "Aline",
                                  "CT_Telephone": None})
        connection.execute(f"UPDATE F_CONTACTT SET CT_Telephone = {_surrogate_text('03 81 25 19 40')}"
                           " WHERE cbMarq = ?", (contact_marq,))

        articles = [row[0] for row in connection.execute("SELECT AR_Ref FROM F_ARTICLE ORDER BY cbMarq LIMIT 2")]
        french_price, duplicated_product = articles
        connection.execute("UPDATE F_ARTICLE SET AR_PrixVen = '12,50' WHERE AR_Ref = ?", (french_price,))
        marq = first("SELECT cbMarq FROM F_ARTICLE WHERE AR_Ref = ?", duplicated_product)[0]
        duplicate_product_marq = _copy_row(connection, "F_ARTICLE", marq,
                                           {"AR_Ref": duplicated_product + " ", "AR_Design": "Doublon d'article"})
        _copy_row(connection, "F_ARTICLE", marq, {"AR_Ref": HOSTILE_KEY_PRODUCT, "AR_PrixVen": "1 250,00"})

        order = first("SELECT DO_Piece FROM F_DOCENTETE WHERE DO_Domaine = 0 AND DO_Type = 1 ORDER BY cbMarq")[0]
        connection.execute("UPDATE F_DOCENTETE SET DO_Date = '2026-02-30 00:00:00.000'"
                           " WHERE DO_Domaine = 0 AND DO_Type = 1 AND DO_Piece = ?", (order,))
        invoice = first("SELECT DO_Piece FROM F_DOCENTETE WHERE DO_Domaine = 0 AND DO_Type IN (6, 7)"
                        " ORDER BY cbMarq")[0]
        connection.execute("UPDATE F_DOCENTETE SET DO_Date = '0000-00-00 00:00:00'"
                           " WHERE DO_Domaine = 0 AND DO_Type IN (6, 7) AND DO_Piece = ?", (invoice,))
    return HostileRows(modified_text=modified_text, unreadable_name=HOSTILE_KEY_ACCOUNT, binary_phone=binary_phone,
                       bad_email=bad_email, long_website=long_website, duplicate_account=duplicated,
                       duplicate_account_marq=duplicate_account_marq, bad_key_marq=bad_key_marq,
                       unreadable_phone=str(unreadable_phone), french_price=french_price,
                       ambiguous_price=HOSTILE_KEY_PRODUCT, duplicate_product=duplicated_product,
                       duplicate_product_marq=duplicate_product_marq, impossible_date=f"1:{order}",
                       zero_date=f"F:{invoice}")


def add_hostile_share(target: str | Path, one_in: int) -> int:
    """Damage about one row in `one_in` of the tiers, contacts, articles and sales documents with
    the cases of `add_hostile_rows`, in turn (a benchmark's hostile dossier); returns how many
    rows are hostile. Existing rows get only values that cost a field or that nothing depends
    on (an invoice's date); the rows that cannot be synced at all are added."""
    hostile = 0
    with _session(target, None) as connection:
        def chosen(sql: str) -> list[tuple]:
            """Rows of `sql` spread evenly, one for every `one_in` rows of its table."""
            table = sql.split(" FROM ")[1].split()[0]
            wanted = round(connection.execute(f"SELECT COUNT(*) FROM {table}").fetchone()[0] / one_in)
            rows = connection.execute(sql + " ORDER BY cbMarq").fetchall()
            return [rows[int(i * len(rows) / wanted)] for i in range(wanted)] if wanted and rows else []

        def update(sql: str, *parameters) -> None:
            nonlocal hostile
            hostile += connection.execute(sql, parameters).rowcount

        account_cases = (
            "UPDATE F_COMPTET SET cbModification = 'pas une date' WHERE cbMarq = ?",
            f"UPDATE F_COMPTET SET CT_Telephone = {BINARY_PHONE_SQL} WHERE cbMarq = ?",
            "UPDATE F_COMPTET SET CT_EMail = REPLACE(COALESCE(CT_EMail, 'contact@x.fr'), '@', '(at)') WHERE cbMarq = ?",
            "UPDATE F_COMPTET SET CT_Site = 'www.' || hex(randomblob(40)) || '.fr' WHERE cbMarq = ?",
            "copy", "unreadable")
        for index, (marq, num) in enumerate(chosen("SELECT cbMarq, CT_Num FROM F_COMPTET WHERE CT_Type = 0")):
            case = account_cases[index % len(account_cases)]
            if case == "copy":
                _copy_row(connection, "F_COMPTET", marq, {"CT_Num": num + " ", "CT_Intitule": "Doublon"})
                hostile += 1
            elif case == "unreadable":
                copy = _copy_row(connection, "F_COMPTET", marq, {"CT_Num": f"ILL{marq}"[:17], "CT_Intitule": None})
                update(f"UPDATE F_COMPTET SET CT_Intitule = {_surrogate_text('Bijouterie illisible')}"
                       " WHERE cbMarq = ?", copy)
            else:
                update(case, marq)
        for index, (marq,) in enumerate(chosen("SELECT cbMarq FROM F_CONTACTT")):
            if index % 2:
                _copy_row(connection, "F_CONTACTT", marq, {"CT_No": f"A{marq}", "CT_Telephone": None})
                hostile += 1
            else:
                update(f"UPDATE F_CONTACTT SET CT_Telephone = {_surrogate_text('03 81 25 19 40')} WHERE cbMarq = ?",
                       marq)
        for index, (marq, ref) in enumerate(chosen("SELECT cbMarq, AR_Ref FROM F_ARTICLE")):
            if index % 3 == 0:
                update("UPDATE F_ARTICLE SET AR_PrixVen = REPLACE(CAST(AR_PrixVen AS TEXT), '.', ',')"
                       " WHERE cbMarq = ?", marq)
            else:
                changes = {"AR_Ref": ref + " "} if index % 3 == 1 else {"AR_Ref": f"AMB{marq}"[:19],
                                                                         "AR_PrixVen": "1 250,00"}
                _copy_row(connection, "F_ARTICLE", marq, changes)
                hostile += 1
        for marq, doc_type in chosen("SELECT cbMarq, DO_Type FROM F_DOCENTETE WHERE DO_Domaine = 0"
                                     " AND DO_Type IN (1, 6, 7)"):
            update("UPDATE F_DOCENTETE SET DO_Date = ? WHERE cbMarq = ?",
                   "2026-02-30 00:00:00.000" if doc_type == 1 else "0000-00-00 00:00:00", marq)
    return hostile
