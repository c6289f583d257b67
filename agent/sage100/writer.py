"""The Sage 100 writer: applies the cloud's commands (prospects and contacts made or changed in
SSM) to the company database, one transaction per command.

A command names canonical fields (`name`, `phone`…); the writer turns them into Sage's columns
through the entity specs of `agent.sage100.spec`, so no column name travels on the bus. Each
command is applied at most once: the transaction that writes the Sage rows also records the
command in `SSM_CONNECTOR_COMMANDS` (`agent.sage100.dialect`), and a command found there
answers what it answered the first time. Values are checked against the database's own column
widths and code page before anything is written: a value Sage cannot hold refuses the whole
command with a message naming the field, never a silent truncation.

A new prospect is an `F_COMPTET` row (`CT_Type` 0, `CT_Prospect` 1, `CT_Num` = the configured
prefix and the next free number of that prefix), with the companion rows Sage's own application
creates for a tiers: its collective account in `F_COMPTETG` (the `CG_NumPrinc` most used by the
dossier's clients and prospects: a dossier with none refuses, nothing is guessed) and its main
delivery address in `F_LIVRAISON`. Sage's triggers stay on; `cbMarq`, `cbModification` and the
other technical columns are left to Sage. A change merges field by field against the base the
cloud last synced: a field Sage changed meanwhile keeps Sage's value and is reported as a
conflict. A prospect Sage converted to a client is no longer written from SSM.
"""
from __future__ import annotations

import contextlib
import datetime as dt
import json
import re
from collections import Counter
from decimal import ROUND_HALF_UP, Decimal
from typing import Any, Iterator, Optional

from agent.odbc import column_widths
from agent.outcomes import CommandRefused, Outcome
from agent.sage100.dialect import COMMANDS_COLUMNS, COMMANDS_TABLE, Dialect, dialect_of
from agent.sage100.spec import ACCOUNT, CONTACT
from shared.envelope import Op

DEFAULT_PROSPECT_PREFIX = "SSM"
COUNTER_DIGITS = 6
SAGE_CODE_PAGE = "cp1252"
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")

ACCOUNT_COLUMNS = {canonical: column for column, canonical in ACCOUNT.direct}
CONTACT_COLUMNS = {canonical: column for column, canonical in CONTACT.direct}
DELIVERY_COLUMNS = (("CT_Intitule", "LI_Intitule"), ("CT_Adresse", "LI_Adresse"), ("CT_Complement", "LI_Complement"),
                    ("CT_CodePostal", "LI_CodePostal"), ("CT_Ville", "LI_Ville"), ("CT_CodeRegion", "LI_CodeRegion"),
                    ("CT_Pays", "LI_Pays"), ("CT_Telephone", "LI_Telephone"), ("CT_Telecopie", "LI_Telecopie"),
                    ("CT_EMail", "LI_EMail"))
WRITABLE = {Op.CREATE_PROSPECT: ("name", "address1", "address2", "postcode", "city", "region", "country", "phone",
                                 "fax", "email", "website", "siret", "vat_number"),
            Op.CREATE_CONTACT: ("first_name", "last_name", "job_title", "civility", "phone", "mobile", "fax",
                                "email")}
WRITABLE[Op.UPDATE_PROSPECT] = WRITABLE[Op.CREATE_PROSPECT]
WRITABLE[Op.UPDATE_CONTACT] = WRITABLE[Op.CREATE_CONTACT]


ENTITY_OF = {Op.CREATE_PROSPECT: "account", Op.UPDATE_PROSPECT: "account", Op.CREATE_CONTACT: "contact",
             Op.UPDATE_CONTACT: "contact", Op.CREATE_QUOTE: "quote"}
CENT = Decimal("0.01")
LINE_STEP = 1000                 # Sage numbers DL_Ligne in steps of 1000
DELIVERY_ADDRESS_GONE = "delivery-address-gone"   # the quote's address is not one of its tiers' in Sage


class Sage100Writer:
    """Applies commands to one company database (see the module docstring)."""

    def __init__(self, connection, *, prospect_prefix: str = DEFAULT_PROSPECT_PREFIX,
                 clock=lambda: dt.datetime.now(), dialect: Optional[Dialect] = None):
        self.connection = connection
        self.dialect = dialect or dialect_of(connection)
        self.prefix = prospect_prefix
        self.clock = clock
        self._widths: dict[str, dict[str, int]] = {}
        self._commands_table = False

    # --- the one entry point --------------------------------------------------------------------
    def apply(self, command_id: str, op: Op, record: dict) -> Outcome:
        """Apply one command in one transaction; the outcome it had if it was applied before.

        Raises:
            CommandRefused: the command cannot be applied (nothing was written).
            pyodbc.Error: the database refused or timed out (nothing was written; try again).
        """
        handler = {Op.CREATE_PROSPECT: self._create_prospect, Op.UPDATE_PROSPECT: self._update_prospect,
                   Op.CREATE_CONTACT: self._create_contact, Op.UPDATE_CONTACT: self._update_contact,
                   Op.CREATE_QUOTE: self._create_quote}.get(op)
        if handler is None:
            raise CommandRefused(f"the agent does not know the command {op.value}", code="unknown_command",
                                 op=op.value)
        with self._transaction() as cursor:
            done = self._applied(cursor, command_id)
            if done is not None:
                return done
            outcome = handler(cursor, record)
            cursor.execute(self.dialect.insert(COMMANDS_TABLE, COMMANDS_COLUMNS),
                           (command_id, op.value, ENTITY_OF.get(op, "contact"), outcome.key,
                            json.dumps(outcome.to_record(), ensure_ascii=False), self.clock()))
            self._drain(cursor)
            return outcome

    # --- prospects ------------------------------------------------------------------------------
    def _create_prospect(self, cursor, record: dict) -> Outcome:
        values = self._columns(cursor, "F_COMPTET", ACCOUNT_COLUMNS, record.get("fields") or {},
                               WRITABLE[Op.CREATE_PROSPECT])
        if not values.get("CT_Intitule"):
            raise CommandRefused("a prospect needs a name", field="name", code="name")
        account = self._collective_account(cursor)
        number = self._next_prospect_number(cursor)
        rep = self._rep(cursor, record.get("rep_key"))
        row = {"CT_Num": number, "CT_Type": 0, "CT_Prospect": 1, "CG_NumPrinc": account, "CO_No": rep or 0,
               "CT_DateCreate": self.clock(), **values}
        self._insert(cursor, "F_COMPTET", row)
        self._insert(cursor, "F_COMPTETG", {"CT_Num": number, "CG_Num": account})
        delivery = {target: values[source] for source, target in DELIVERY_COLUMNS if values.get(source) is not None}
        self._insert(cursor, "F_LIVRAISON", {"LI_No": self._next_number(cursor, "F_LIVRAISON", "LI_No"),
                                             "CT_Num": number, "LI_Principal": 1, **delivery})
        outcome = Outcome(number, written=dict(record.get("fields") or {}))
        if record.get("rep_key") and rep is None:
            outcome.warnings.append("rep-unknown")
        return outcome

    def _update_prospect(self, cursor, record: dict) -> Outcome:
        key = record["key"]
        current = self._row(cursor, "F_COMPTET", {"CT_Num": key, "CT_Type": 0},
                            ["CT_Prospect", *ACCOUNT_COLUMNS.values()])
        if current is None:
            raise CommandRefused(f"the tiers {key} no longer exists in Sage", code="tiers_gone", key=key)
        if current["CT_Prospect"] != 1:
            raise CommandRefused(f"the tiers {key} is a client now: only Sage changes it", field="kind",
                                 code="converted", key=key)
        return self._merge(cursor, "F_COMPTET", {"CT_Num": key}, ACCOUNT_COLUMNS, current, record,
                           WRITABLE[Op.UPDATE_PROSPECT])

    # --- contacts -------------------------------------------------------------------------------
    def _create_contact(self, cursor, record: dict) -> Outcome:
        owner = record.get("account_key")
        if not owner or self._row(cursor, "F_COMPTET", {"CT_Num": owner, "CT_Type": 0}, ["CT_Num"]) is None:
            raise CommandRefused(f"the contact's tiers {owner} does not exist in Sage", field="account",
                                 code="contact_tiers", tiers=owner)
        fields = dict(record.get("fields") or {})
        warnings = []
        if not fields.get("last_name"):
            fields["last_name"] = fields.get("first_name") or "?"     # Sage wants CT_Nom
            warnings.append("last-name-filled")
        values = self._columns(cursor, "F_CONTACTT", CONTACT_COLUMNS, fields, WRITABLE[Op.CREATE_CONTACT])
        number = self._next_number(cursor, "F_CONTACTT", "CT_No")
        self._insert(cursor, "F_CONTACTT", {"CT_Num": owner, "CT_No": number, **values})
        return Outcome(str(number), written=fields, warnings=warnings)

    def _update_contact(self, cursor, record: dict) -> Outcome:
        key = record["key"]
        current = self._row(cursor, "F_CONTACTT", {"CT_No": int(key)}, list(CONTACT_COLUMNS.values()))
        if current is None:
            raise CommandRefused(f"the contact {key} no longer exists in Sage", code="contact_gone", key=key)
        return self._merge(cursor, "F_CONTACTT", {"CT_No": int(key)}, CONTACT_COLUMNS, current, record,
                           WRITABLE[Op.UPDATE_CONTACT])

    # --- quotes -----------------------------------------------------------------------------------
    def _create_quote(self, cursor, record: dict) -> Outcome:
        """A devis (`DO_Domaine` 0, `DO_Type` 0) with its lines at the prices Sage validated: the
        piece from `F_DOCCURRENTPIECE` (read and moved on under lock, in this transaction), the
        totals computed from the lines, the delivery address (`LI_No`) from `_delivery_address`.
        `F_DOCENTETEINFOS` and the settlement rows (`F_DOCREGL`) are Sage's application's to
        maintain; a quote created here has none until Sage opens it."""
        tiers = self._row(cursor, "F_COMPTET", {"CT_Num": record.get("account_key"), "CT_Type": 0},
                          ["CT_Num", "N_CatTarif", "CO_No"])
        if tiers is None:
            raise CommandRefused(f"the quote's tiers {record.get('account_key')} does not exist in Sage", field="account",
                                 code="tiers", tiers=record.get("account_key"))
        try:
            header = self._columns(cursor, "F_DOCENTETE", {"reference": "DO_Ref"},
                                   {"reference": record.get("reference")}, ("reference",))
        except CommandRefused as refusal:
            width = self._widths["F_DOCENTETE"].get("DO_Ref")
            raise CommandRefused(refusal.message, field="reference", code="reference", width=width) from None
        lines = []
        for item in record.get("lines") or ():
            article = self._row(cursor, "F_ARTICLE", {"AR_Ref": item.get("article")}, ["AR_Design", "AR_Sommeil"])
            if article is None or article["AR_Sommeil"] == 1:
                raise CommandRefused(f"the article {item.get('article')} is unknown or asleep in Sage", field="lines",
                                     code="article", article=item.get("article"))
            if item.get("unit_price") is None:
                raise CommandRefused(f"the line of {item.get('article')} has no validated price", field="lines",
                                     code="no_price", article=item.get("article"))
            lines.append((item, article))
        if not lines:
            raise CommandRefused("a quote needs at least one line", field="lines", code="no_lines")
        piece = self._next_piece(cursor, domain=0, doc_type=0)
        rate = self._vat_rate(cursor)
        day = record.get("date") or self.clock().date().isoformat()
        rep = self._rep(cursor, record.get("rep_key")) or tiers["CO_No"] or 0
        depot = self._default_depot(cursor)
        delivery, delivery_warning = self._delivery_address(cursor, tiers["CT_Num"], record.get("delivery_address_key"))
        number = self._next_number(cursor, "F_DOCLIGNE", "DL_No")
        total_ht = total_ttc = Decimal(0)
        kept = {}
        for position, (item, article) in enumerate(lines, start=1):
            amount = Decimal(str(item["amount"]))
            with_tax = (amount * (1 + rate / 100)).quantize(CENT, rounding=ROUND_HALF_UP)
            total_ht, total_ttc = total_ht + amount, total_ttc + with_tax
            self._insert(cursor, "F_DOCLIGNE", {
                "DO_Domaine": 0, "DO_Type": 0, "CT_Num": tiers["CT_Num"], "DO_Piece": piece, "DL_PieceDE": piece,
                "DO_Date": day, "DL_Ligne": position * LINE_STEP, "DO_Ref": header.get("DO_Ref"),
                "AR_Ref": item["article"], "DL_Design": (item.get("description") or article["AR_Design"] or "")[:69] or None,
                "DL_Qte": Decimal(str(item["quantity"])), "DL_PrixUnitaire": Decimal(str(item["unit_price"])),
                "DL_Remise01REM_Valeur": Decimal(str(item.get("discount") or 0)), "DL_Taxe1": rate,
                "DL_MontantHT": amount, "DL_MontantTTC": with_tax, "DE_No": depot, "CO_No": rep,
                "DL_No": number + position - 1})
            kept[str(item["line_id"])] = number + position - 1
        self._insert(cursor, "F_DOCENTETE", {
            "DO_Domaine": 0, "DO_Type": 0, "DO_Piece": piece, "DO_Date": day, "DO_Ref": header.get("DO_Ref"),
            "DO_Tiers": tiers["CT_Num"], "CO_No": rep, "DE_No": depot, "LI_No": delivery, "DO_Statut": 0,
            "N_CatTarif": tiers["N_CatTarif"], "DO_TotalHT": total_ht, "DO_TotalTTC": total_ttc,
            "DO_NetAPayer": total_ttc})
        return Outcome(f"0:{piece}", written={"piece": piece, "lines": kept, "total_ht": str(total_ht),
                                              "delivery_address": delivery or None},
                       warnings=[delivery_warning] if delivery_warning else [])

    def _delivery_address(self, cursor, tiers: str, chosen) -> tuple[int, Optional[str]]:
        """The devis' `LI_No`: the address the quote chose when it is one of the tiers' in
        `F_LIVRAISON`, else the tiers' main one (`LI_Principal` 1) when it has exactly one, else
        none (0). A chosen address Sage no longer has for this tiers is a warning, not a refusal."""
        warning = None
        if chosen not in (None, ""):
            try:
                row = self._row(cursor, "F_LIVRAISON", {"LI_No": int(chosen)}, ["LI_No", "CT_Num"])
            except (TypeError, ValueError):
                row = None
            if row is not None and str(row["CT_Num"] or "").strip() == str(tiers).strip():
                return int(row["LI_No"]), None
            warning = DELIVERY_ADDRESS_GONE
        cursor.execute("SELECT LI_No FROM F_LIVRAISON WHERE CT_Num = ? AND LI_Principal = 1", (tiers,))
        mains = [int(found[0]) for found in cursor.fetchall()]
        return (mains[0] if len(mains) == 1 else 0), warning

    def _next_piece(self, cursor, *, domain: int, doc_type: int) -> str:
        where = {"DC_Domaine": domain, "DC_IdCol": doc_type, "DC_Souche": 0}
        row = self._row(cursor, "F_DOCCURRENTPIECE", where, ["DC_Piece"])
        if row is None or not row["DC_Piece"]:
            raise CommandRefused("Sage has no numbering for quotes (F_DOCCURRENTPIECE)", code="numbering")
        piece = str(row["DC_Piece"]).strip()
        digits = len(piece) - len(piece.rstrip("0123456789"))
        if not digits:
            raise CommandRefused(f"the quotes' numbering {piece} has no number to move on", code="numbering")
        following = f"{piece[:len(piece) - digits]}{int(piece[len(piece) - digits:]) + 1:0{digits}d}"
        cursor.execute(self.dialect.update("F_DOCCURRENTPIECE", ["DC_Piece"], list(where)),
                       (following, *where.values()))
        return piece

    def _vat_rate(self, cursor) -> Decimal:
        """The VAT rate of the dossier's sales lines (the most used); none known: refused."""
        cursor.execute("SELECT DL_Taxe1 FROM F_DOCLIGNE WHERE DO_Domaine = 0 AND DL_Taxe1 IS NOT NULL")
        used = Counter(Decimal(str(row[0])).normalize() for row in cursor.fetchall() if row[0])
        if not used:
            raise CommandRefused("the dossier has no sales line to take the VAT rate from", code="vat")
        return used.most_common(1)[0][0]

    def _default_depot(self, cursor) -> int:
        cursor.execute("SELECT MIN(DE_No) FROM F_DEPOT")
        row = cursor.fetchone()
        return int(row[0]) if row and row[0] is not None else 0

    # --- merging a change -------------------------------------------------------------------------
    def _merge(self, cursor, table: str, where: dict, columns: dict[str, str], current: dict, record: dict,
               writable: tuple[str, ...]) -> Outcome:
        fields, base = record.get("fields") or {}, record.get("base") or {}
        outcome = Outcome(str(record["key"]))
        chosen = {}
        for name, value in fields.items():
            sage_now = _plain(current.get(columns.get(name, "")))
            if name in base and not _same(sage_now, base.get(name)) and not _same(sage_now, value):
                outcome.conflicts.append({"field": name, "sage": sage_now, "ssm": value, "base": base.get(name)})
                continue
            if not _same(sage_now, value):
                chosen[name] = value
        values = self._columns(cursor, table, columns, chosen, writable)
        if values:
            cursor.execute(self.dialect.update(table, list(values), list(where)),
                           (*values.values(), *where.values()))
        outcome.written = chosen
        return outcome

    # --- checks and numbers -------------------------------------------------------------------------
    def _columns(self, cursor, table: str, columns: dict[str, str], fields: dict, writable: tuple[str, ...]) -> dict:
        """Sage's columns for `fields`, each checked against the column's width and code page."""
        widths = self._widths.setdefault(table, column_widths(self.connection, table))
        values = {}
        for name, value in fields.items():
            column = columns.get(name)
            if column is None or name not in writable:
                raise CommandRefused(f"the field {name} cannot be written to Sage", field=name, code="not_writable")
            if isinstance(value, str):
                value = value.strip() or None
            if isinstance(value, str):
                width = widths.get(column)
                if width and len(value) > width:
                    raise CommandRefused(f"{name}: {len(value)} characters, Sage's {column} holds {width}", field=name,
                                         code="width", length=len(value), column=column, width=width)
                try:
                    value.encode(SAGE_CODE_PAGE)
                except UnicodeEncodeError as exc:
                    raise CommandRefused(f"{name}: the character {value[exc.start]!r} cannot be stored by Sage",
                                         field=name, code="codepage", char=value[exc.start]) from None
                if name == "email" and not _EMAIL.match(value):
                    raise CommandRefused(f"email: '{value}' is not an e-mail address Sage accepts", field=name,
                                         code="email", value=value)
            values[column] = value
        return values

    def _collective_account(self, cursor) -> str:
        cursor.execute("SELECT CG_NumPrinc FROM F_COMPTET WHERE CT_Type = 0 AND CG_NumPrinc IS NOT NULL")
        used = Counter(str(row[0]).strip() for row in cursor.fetchall() if row[0] and str(row[0]).strip())
        if not used:
            raise CommandRefused(code="collective_account", message="the dossier has no client to take the "
                                 "prospects' collective account from "
                                 "(CG_NumPrinc)")
        return used.most_common(1)[0][0]

    def _next_prospect_number(self, cursor) -> str:
        cursor.execute(self.dialect.keys_like("F_COMPTET", "CT_Num"), (f"{self.prefix}%",))
        taken = [str(row[0]).strip()[len(self.prefix):] for row in cursor.fetchall()]
        highest = max((int(suffix) for suffix in taken if suffix.isdigit()), default=0)
        number = f"{self.prefix}{highest + 1:0{COUNTER_DIGITS}d}"
        width = self._widths.setdefault("F_COMPTET", column_widths(self.connection, "F_COMPTET")).get("CT_Num", 17)
        if len(number) > width:
            raise CommandRefused(f"the next code {number} is longer than CT_Num ({width})", code="code_too_long",
                                 code_value=number, width=width)
        return number

    def _next_number(self, cursor, table: str, column: str) -> int:
        cursor.execute(self.dialect.max_of(table, column))
        row = cursor.fetchone()
        return int(row[0] or 0) + 1

    def _rep(self, cursor, rep_key: Optional[str]) -> Optional[int]:
        if not rep_key or not str(rep_key).isdigit():
            return None
        found = self._row(cursor, "F_COLLABORATEUR", {"CO_No": int(rep_key)}, ["CO_No"])
        return int(rep_key) if found is not None else None

    def _row(self, cursor, table: str, where: dict, columns: list[str]) -> Optional[dict]:
        cursor.execute(self.dialect.select(table, columns, list(where), for_update=True), tuple(where.values()))
        row = cursor.fetchone()
        return None if row is None else dict(zip(columns, row))

    def _insert(self, cursor, table: str, row: dict) -> None:
        cursor.execute(self.dialect.insert(table, list(row)), tuple(row.values()))
        self._drain(cursor)

    @staticmethod
    def _drain(cursor) -> None:
        with contextlib.suppress(Exception):
            while cursor.nextset():
                pass

    def _applied(self, cursor, command_id: str) -> Optional[Outcome]:
        self._ensure_commands_table(cursor)
        cursor.execute(self.dialect.select(COMMANDS_TABLE, ["CMD_Result"], ["CMD_Id"]), (command_id,))
        row = cursor.fetchone()
        if row is None:
            return None
        done = json.loads(row[0])
        return Outcome(done["key"], written=done.get("written", {}), conflicts=done.get("conflicts", []),
                       warnings=done.get("warnings", []), replayed=True)

    def _ensure_commands_table(self, cursor) -> None:
        """Create the connector's table where the install did not (the SQLite stand-in); looked up
        once per writer, not per command."""
        from agent.odbc import table_exists
        if self._commands_table:
            return
        if table_exists(self.connection, COMMANDS_TABLE):
            self._commands_table = True          # created in a transaction that may roll back: looked up again
        else:
            cursor.execute(self.dialect.commands_table())

    @contextlib.contextmanager
    def _transaction(self) -> Iterator[Any]:
        cursor = self.connection.cursor()
        explicit = self.dialect.begin is not None
        if explicit:
            self.connection.autocommit = True
            cursor.execute(self.dialect.begin)
        try:
            yield cursor
        except BaseException:
            if explicit:
                cursor.execute("ROLLBACK")
            else:
                self.connection.rollback()
            raise
        else:
            if explicit:
                cursor.execute("COMMIT")
            else:
                self.connection.commit()
        finally:
            if explicit:
                self.connection.autocommit = False
            cursor.close()


def _plain(value: Any) -> Any:
    if isinstance(value, str):
        return value.strip() or None
    return value


def _same(a: Any, b: Any) -> bool:
    a, b = _plain(a), _plain(b)
    if a is None or b is None:
        return a is None and b is None
    return str(a) == str(b)
