"""The Sage 100 tables the connector reads, declared as data, and their DDL.

Names and SQL Server types are Sage's own (`F_COMPTET.CT_Num varchar(17)`, `numeric(24,6)`
amounts, `smallint` flags), so the same queries run on a real Sage database and on the SQLite
stand-in used by tests and the demo. The DDL is for building such stand-ins: a real Sage
database is never altered. Every table carries Sage's technical columns (`cbMarq` identity,
`cbModification`, `cbCreation`, ...). On SQLite, triggers named after Sage's (`TG_CBINS_<table>`,
`TG_CBUPD_<table>`) stamp `cbModification` on insert and on every update that does not set it
itself, from the `EMU_SERVER` clock when one is set (so tests choose the time) or from local time.
"""
from __future__ import annotations

import re
from dataclasses import dataclass

SQLITE = "sqlite"
MSSQL = "mssql"
DIALECTS = (SQLITE, MSSQL)

DATETIME_TEXT_FORMAT = "%Y-%m-%d %H:%M:%S.%f"
SQLITE_NOW = "strftime('%Y-%m-%d %H:%M:%f','now','localtime')"
SQLITE_CLOCK = f"(SELECT COALESCE(MAX(ES_Clock), {SQLITE_NOW}) FROM EMU_SERVER)"
EMULATION_TABLE = "EMU_SERVER"
COMPANY_TABLE = "F_COMPTET"           # a database holding it is a Sage 100 company
COMPANY_INFO_TABLE = "P_DOSSIER"      # the company's own record (D_RaisonSoc)


@dataclass(frozen=True)
class Column:
    name: str
    type: str
    not_null: bool = False
    default: str | None = None


@dataclass(frozen=True)
class Table:
    name: str
    columns: tuple[Column, ...]
    unique: tuple[tuple[str, ...], ...] = ()
    indexes: tuple[tuple[str, ...], ...] = ()

    def column(self, name: str) -> Column:
        for column in self.columns:
            if column.name.lower() == name.lower():
                return column
        raise KeyError(f"{self.name} has no column {name}")

    @property
    def column_names(self) -> tuple[str, ...]:
        return tuple(column.name for column in self.columns)


def _columns(spec: str) -> tuple[Column, ...]:
    """Columns from lines such as `CT_Num varchar(17) NOT NULL` or `CT_Sommeil smallint DEFAULT 0`."""
    columns = []
    for line in spec.strip().splitlines():
        name, sql_type, *rest = line.split()
        modifiers = " ".join(rest)
        default = re.search(r"DEFAULT\s+(\S+)", modifiers)
        columns.append(Column(name, sql_type, not_null="NOT NULL" in modifiers,
                              default=default.group(1) if default else None))
    return tuple(columns)


TECHNICAL_COLUMNS = _columns("""
cbModification datetime
cbCreation datetime
cbCreateur varchar(4)
cbProt smallint DEFAULT 0
cbReplication int DEFAULT 0
cbFlag smallint DEFAULT 0
""")
MARQ = "cbMarq"
MODIFIED = "cbModification"
CREATED = "cbCreation"
TECHNICAL_NAMES = frozenset({MARQ} | {column.name for column in TECHNICAL_COLUMNS})


def _table(name: str, columns: str, unique=(), indexes=()) -> Table:
    return Table(name, _columns(columns) + TECHNICAL_COLUMNS, tuple(unique),
                 tuple(indexes) + ((MODIFIED,),))


TABLES: tuple[Table, ...] = (
    _table("P_DOSSIER", """
D_RaisonSoc varchar(35)
D_Profession varchar(35)
D_Adresse varchar(35)
D_Complement varchar(35)
D_CodePostal varchar(9)
D_Ville varchar(35)
D_Pays varchar(35)
D_Telephone varchar(21)
D_EMail varchar(69)
D_Siret varchar(15)
D_Ape varchar(7)
D_Identifiant varchar(25)
D_DebutExo01 datetime
D_FinExo01 datetime
"""),
    _table("P_CATTARIF", """
cbIndice smallint NOT NULL
CT_Intitule varchar(35)
CT_PrixTTC smallint DEFAULT 0
""", unique=[("cbIndice",)]),
    _table("P_UNITE", """
cbIndice smallint NOT NULL
U_Intitule varchar(21)
""", unique=[("cbIndice",)]),
    _table("F_COLLABORATEUR", """
CO_No int NOT NULL
CO_Nom varchar(35)
CO_Prenom varchar(35)
CO_Fonction varchar(35)
CO_Adresse varchar(35)
CO_CodePostal varchar(9)
CO_Ville varchar(35)
CO_Service varchar(35)
CO_Vendeur smallint DEFAULT 0
CO_Caissier smallint DEFAULT 0
CO_Acheteur smallint DEFAULT 0
CO_Telephone varchar(21)
CO_Telecopie varchar(21)
CO_EMail varchar(69)
CO_TelPortable varchar(21)
CO_Matricule varchar(10)
CO_Sommeil smallint DEFAULT 0
""", unique=[("CO_No",)]),
    _table("F_COMPTET", """
CT_Num varchar(17) NOT NULL
CT_Intitule varchar(69)
CT_Type smallint DEFAULT 0
CG_NumPrinc varchar(13)
CT_Qualite varchar(17)
CT_Classement varchar(17)
CT_Contact varchar(35)
CT_Adresse varchar(35)
CT_Complement varchar(35)
CT_CodePostal varchar(9)
CT_Ville varchar(35)
CT_CodeRegion varchar(25)
CT_Pays varchar(35)
CT_Raccourci varchar(7)
CT_Ape varchar(7)
CT_Identifiant varchar(25)
CT_Siret varchar(15)
CT_Commentaire varchar(35)
CT_Encours numeric(24,6) DEFAULT 0
CT_Taux02 numeric(24,6) DEFAULT 0
N_CatTarif smallint DEFAULT 1
CO_No int DEFAULT 0
CT_Sommeil smallint DEFAULT 0
CT_Prospect smallint DEFAULT 0
CT_DateCreate datetime
CT_Telephone varchar(21)
CT_Telecopie varchar(21)
CT_EMail varchar(69)
CT_Site varchar(69)
""", unique=[("CT_Num",)], indexes=[("CT_Type", "CT_Intitule")]),
    _table("F_COMPTETG", """
CT_Num varchar(17) NOT NULL
CG_Num varchar(13) NOT NULL
""", unique=[("CT_Num", "CG_Num")]),
    _table("F_LIVRAISON", """
LI_No int NOT NULL
CT_Num varchar(17) NOT NULL
LI_Intitule varchar(35)
LI_Adresse varchar(35)
LI_Complement varchar(35)
LI_CodePostal varchar(9)
LI_Ville varchar(35)
LI_CodeRegion varchar(25)
LI_Pays varchar(35)
LI_Contact varchar(35)
LI_Principal smallint DEFAULT 0
LI_Telephone varchar(21)
LI_Telecopie varchar(21)
LI_EMail varchar(69)
""", unique=[("LI_No",)], indexes=[("CT_Num",)]),
    _table("F_CONTACTT", """
CT_Num varchar(17) NOT NULL
CT_No int NOT NULL
N_Contact smallint DEFAULT 0
CT_Civilite smallint DEFAULT 0
CT_Nom varchar(35)
CT_Prenom varchar(35)
N_Service smallint DEFAULT 0
CT_Fonction varchar(35)
CT_Telephone varchar(21)
CT_TelPortable varchar(21)
CT_Telecopie varchar(21)
CT_EMail varchar(69)
""", unique=[("CT_No",)], indexes=[("CT_Num",)]),
    _table("F_FAMILLE", """
FA_CodeFamille varchar(11) NOT NULL
FA_Type smallint DEFAULT 0
FA_Intitule varchar(69)
FA_Central varchar(11)
FA_Coef numeric(24,6) DEFAULT 0
""", unique=[("FA_CodeFamille",)]),
    _table("F_ARTICLE", """
AR_Ref varchar(19) NOT NULL
AR_Design varchar(69)
FA_CodeFamille varchar(11)
AR_Type smallint DEFAULT 0
AR_SuiviStock smallint DEFAULT 2
AR_UniteVen smallint DEFAULT 1
AR_PrixAch numeric(24,6) DEFAULT 0
AR_Coef numeric(24,6) DEFAULT 0
AR_PrixVen numeric(24,6) DEFAULT 0
AR_PrixTTC smallint DEFAULT 0
AR_PoidsNet numeric(24,6) DEFAULT 0
AR_Garantie smallint DEFAULT 0
AR_Publie smallint DEFAULT 0
AR_Sommeil smallint DEFAULT 0
AR_CodeBarre varchar(19)
AR_Langue1 varchar(69)
""", unique=[("AR_Ref",)], indexes=[("FA_CodeFamille",)]),
    _table("F_DEPOT", """
DE_No int NOT NULL
DE_Intitule varchar(35)
DE_Adresse varchar(35)
DE_CodePostal varchar(9)
DE_Ville varchar(35)
DE_Principal smallint DEFAULT 0
DE_Code varchar(8)
""", unique=[("DE_No",)]),
    _table("F_ARTSTOCK", """
AR_Ref varchar(19) NOT NULL
DE_No int NOT NULL
AS_QteMini numeric(24,6) DEFAULT 0
AS_QteMaxi numeric(24,6) DEFAULT 0
AS_MontSto numeric(24,6) DEFAULT 0
AS_QteSto numeric(24,6) DEFAULT 0
AS_QteRes numeric(24,6) DEFAULT 0
AS_QteCom numeric(24,6) DEFAULT 0
AS_Principal smallint DEFAULT 0
""", unique=[("AR_Ref", "DE_No")]),
    _table("F_ARTCLIENT", """
AR_Ref varchar(19) NOT NULL
AC_Categorie smallint DEFAULT 0
CT_Num varchar(17)
AC_PrixVen numeric(24,6) DEFAULT 0
AC_Coef numeric(24,6) DEFAULT 0
AC_PrixTTC smallint DEFAULT 0
AC_Arrondi smallint DEFAULT 0
AC_QteMont smallint DEFAULT 0
AC_Remise numeric(24,6) DEFAULT 0
AC_RefClient varchar(19)
""", unique=[("AR_Ref", "AC_Categorie", "CT_Num")], indexes=[("AR_Ref",)]),
    _table("F_TARIFQTE", """
AR_Ref varchar(19) NOT NULL
TQ_RefCF varchar(17) NOT NULL
TQ_BorneSup numeric(24,6) NOT NULL
TQ_Remise01REM_Valeur numeric(24,6) DEFAULT 0
TQ_Remise01REM_Type smallint DEFAULT 0
TQ_PrixNet numeric(24,6) DEFAULT 0
""", unique=[("AR_Ref", "TQ_RefCF", "TQ_BorneSup")]),
    _table("F_DOCENTETE", """
DO_Domaine smallint NOT NULL
DO_Type smallint NOT NULL
DO_Piece varchar(13) NOT NULL
DO_Date datetime
DO_Ref varchar(17)
DO_Tiers varchar(17)
CO_No int DEFAULT 0
DE_No int DEFAULT 0
LI_No int DEFAULT 0
DO_Statut smallint DEFAULT 0
DO_Souche smallint DEFAULT 0
DO_DateLivr datetime
N_CatTarif smallint DEFAULT 1
DO_TotalHT numeric(24,6) DEFAULT 0
DO_TotalTTC numeric(24,6) DEFAULT 0
DO_NetAPayer numeric(24,6) DEFAULT 0
DO_Imprim smallint DEFAULT 0
""", unique=[("DO_Domaine", "DO_Type", "DO_Piece")], indexes=[("DO_Tiers",)]),
    _table("F_DOCLIGNE", """
DO_Domaine smallint NOT NULL
DO_Type smallint NOT NULL
CT_Num varchar(17)
DO_Piece varchar(13) NOT NULL
DL_PieceBC varchar(13)
DL_PieceBL varchar(13)
DL_PieceDE varchar(13)
DO_Date datetime
DL_Ligne int DEFAULT 0
DO_Ref varchar(17)
AR_Ref varchar(19)
DL_Design varchar(69)
DL_Qte numeric(24,6) DEFAULT 0
DL_PrixUnitaire numeric(24,6) DEFAULT 0
DL_Remise01REM_Valeur numeric(24,6) DEFAULT 0
DL_Remise01REM_Type smallint DEFAULT 0
DL_Taxe1 numeric(24,6) DEFAULT 0
DL_MontantHT numeric(24,6) DEFAULT 0
DL_MontantTTC numeric(24,6) DEFAULT 0
DE_No int DEFAULT 0
CO_No int DEFAULT 0
DL_No int NOT NULL
""", unique=[("DL_No",)], indexes=[("DO_Domaine", "DO_Type", "DO_Piece", "DL_Ligne"), ("AR_Ref",)]),
    _table("F_DOCCURRENTPIECE", """
DC_Domaine smallint NOT NULL
DC_IdCol smallint NOT NULL
DC_Souche smallint DEFAULT 0
DC_Piece varchar(13)
""", unique=[("DC_Domaine", "DC_IdCol", "DC_Souche")]),
)

TABLE_BY_NAME: dict[str, Table] = {table.name: table for table in TABLES}
TABLE_NAMES: tuple[str, ...] = tuple(table.name for table in TABLES)


def table(name: str) -> Table:
    try:
        return TABLE_BY_NAME[name.upper()]
    except KeyError:
        raise KeyError(f"{name} is not a Sage 100 table the connector knows") from None


def column_type(table_name: str, column_name: str) -> str:
    """The declared SQL type of a column (`cbMarq` is `int`)."""
    if column_name.lower() == MARQ.lower():
        return "int"
    return table(table_name).column(column_name).type


def _column_ddl(column: Column, dialect: str) -> str:
    parts = [column.name, column.type]
    if column.not_null:
        parts.append("NOT NULL")
    elif dialect == MSSQL:
        parts.append("NULL")
    if column.default is not None:
        parts.append(f"DEFAULT {column.default}" if dialect == SQLITE else f"DEFAULT ({column.default})")
    elif dialect == MSSQL and column.name in (MODIFIED, CREATED):
        parts.append("DEFAULT (GETDATE())")
    return " ".join(parts)


def _create_table(spec: Table, dialect: str) -> str:
    marq = (f"{MARQ} INTEGER PRIMARY KEY AUTOINCREMENT" if dialect == SQLITE
            else f"{MARQ} int IDENTITY(1,1) NOT NULL CONSTRAINT PK_CBMARQ_{spec.name} PRIMARY KEY")
    lines = [marq] + [_column_ddl(column, dialect) for column in spec.columns]
    for number, key in enumerate(spec.unique, start=1):
        lines.append(f"CONSTRAINT UK{number}_{spec.name} UNIQUE ({', '.join(key)})")
    return f"CREATE TABLE {spec.name} (\n  " + ",\n  ".join(lines) + "\n)"


def _create_indexes(spec: Table) -> list[str]:
    return [f"CREATE INDEX IX{number}_{spec.name} ON {spec.name} ({', '.join(columns)})"
            for number, columns in enumerate(spec.indexes, start=1)]


def _create_triggers(spec: Table, dialect: str) -> list[str]:
    name = spec.name
    if dialect == MSSQL:
        return [
            f"CREATE TRIGGER TG_CBUPD_{name} ON {name} AFTER UPDATE AS\nBEGIN\n  SET NOCOUNT ON;\n"
            f"  IF NOT UPDATE({MODIFIED})\n    UPDATE t SET {MODIFIED} = GETDATE() FROM {name} t"
            f" JOIN inserted i ON i.{MARQ} = t.{MARQ};\nEND"
        ]
    return [
        f"CREATE TRIGGER TG_CBINS_{name} AFTER INSERT ON {name} FOR EACH ROW\n"
        f"WHEN NEW.{MODIFIED} IS NULL OR NEW.{CREATED} IS NULL\nBEGIN\n"
        f"  UPDATE {name} SET {MODIFIED} = COALESCE(NEW.{MODIFIED}, {SQLITE_CLOCK}),\n"
        f"    {CREATED} = COALESCE(NEW.{CREATED}, NEW.{MODIFIED}, {SQLITE_CLOCK}) WHERE {MARQ} = NEW.{MARQ};\nEND",
        f"CREATE TRIGGER TG_CBUPD_{name} AFTER UPDATE ON {name} FOR EACH ROW\n"
        f"WHEN NEW.{MODIFIED} IS OLD.{MODIFIED} AND NEW.{CREATED} IS OLD.{CREATED}\nBEGIN\n"
        f"  UPDATE {name} SET {MODIFIED} = {SQLITE_CLOCK} WHERE {MARQ} = NEW.{MARQ};\nEND",
    ]


def ddl(dialect: str = SQLITE, *, parts: tuple[str, ...] = ("tables", "indexes", "triggers"),
        tables: tuple[Table, ...] = TABLES) -> list[str]:
    """The DDL statements of the schema, in execution order.

    `parts` lets a bulk loader create tables first and indexes and triggers after loading.
    On SQLite the tables include `EMU_SERVER` (database name, creation date and the clock the
    triggers read), which stands in for what SQL Server keeps in `sys.databases` and `GETDATE()`.
    """
    if dialect not in DIALECTS:
        raise ValueError(f"unknown SQL dialect {dialect!r}; expected one of {', '.join(DIALECTS)}")
    statements: list[str] = []
    if "tables" in parts:
        if dialect == SQLITE:
            statements.append(f"CREATE TABLE {EMULATION_TABLE} (ES_DatabaseName varchar(128),"
                              " ES_CreateDate datetime, ES_Clock datetime)")
        statements += [_create_table(spec, dialect) for spec in tables]
    if "indexes" in parts:
        for spec in tables:
            statements += _create_indexes(spec)
    if "triggers" in parts:
        for spec in tables:
            statements += _create_triggers(spec, dialect)
    return statements


def create_schema(cursor, dialect: str = SQLITE) -> None:
    """Create every table, index and trigger through a DB-API cursor (pyodbc in practice)."""
    for statement in ddl(dialect):
        cursor.execute(statement)
    connection = getattr(cursor, "connection", None)
    if connection is not None and not getattr(connection, "autocommit", True):
        connection.commit()


def sqlite_datetime(value) -> str | None:
    """A datetime as the SQLite stand-in stores it: 'YYYY-MM-DD HH:MM:SS.fff' text.

    It is the form the SQLite ODBC driver binds datetime parameters in, so stored values and
    `cbModification >= ?` parameters compare correctly as text.
    """
    if value is None:
        return None
    return value.strftime(DATETIME_TEXT_FORMAT)[:-3]
