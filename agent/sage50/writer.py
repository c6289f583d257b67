"""The Sage 50 FR writer: the cloud's commands as import files in the declared layouts, confirmed
by the exports that follow.

Sage 50 FR has no database the agent may write: a prospect, a contact or a quote made in SSM is
written as an import file, in the layout of the matching export (`layouts.toml`), into the
dossier's `import` folder, for Sage 50's parametrable import. The write is *pending* until an
export shows the record: then (`confirm`, before the run reads the exports, so the cloud links
the record before it sees it come back) its result goes to the cloud and the record is bound;
past `confirm_within_s` without it, a refusal (`unconfirmed`) becomes an incident. A command seen
again (redelivered) drops no second file: a pending one waits, an answered one answers the same.

A new prospect's code is the configured prefix and the next free number, within the 13
characters of a Sage 50 client code (the layout's `Code` width); a quote's piece number likewise
within the piece number's width. Quotes are priced from the last accepted export (the article's
« Prix de vente HT », the client's « Taux Remise »).
"""
from __future__ import annotations

import datetime as dt
import json
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from pathlib import Path
from typing import Any, Callable, Optional

from agent.outcomes import CommandRefused, Outcome
from agent.sage50.exchange import Exchange, utc_now, write_atomically
from agent.sage50.layout import FileLayout, ValueRefused, write_records
from agent.sage50.reader import KEY_SEPARATOR, Sage50Reader, key_of
from shared.envelope import Envelope, Op

PENDING_FILE = "writes.json"
COUNTER_DIGITS = 6
CENT = Decimal("0.01")
ANSWERED_KEPT = 1000
CREATES = {Op.CREATE_PROSPECT.value, Op.CREATE_CONTACT.value, Op.CREATE_QUOTE.value}
ENTITY_OF = {Op.CREATE_PROSPECT: "account", Op.UPDATE_PROSPECT: "account", Op.CREATE_CONTACT: "contact",
             Op.UPDATE_CONTACT: "contact", Op.CREATE_QUOTE: "quote"}


class PendingWrites:
    """The writes waiting for an export, and the last answers given (a JSON file, written whole)."""

    def __init__(self, state_dir: Path):
        self.path = Path(state_dir) / PENDING_FILE
        data = json.loads(self.path.read_text(encoding="utf-8")) if self.path.is_file() else {}
        self.pending: dict[str, dict] = data.get("pending", {})
        self.answered: dict[str, dict] = data.get("answered", {})

    def save(self) -> None:
        answered = dict(list(self.answered.items())[-ANSWERED_KEPT:])
        write_atomically(self.path, json.dumps({"pending": self.pending, "answered": answered},
                                               ensure_ascii=False, indent=1).encode("utf-8"))


class Sage50Writer:
    def __init__(self, exchange: Exchange, reader: Sage50Reader, *, prospect_prefix: str = "SSM",
                 confirm_within_s: float = 86400.0, clock: Callable[[], dt.datetime] = utc_now):
        self.exchange = exchange
        self.reader = reader
        self.prefix = prospect_prefix
        self.confirm_within_s = confirm_within_s
        self.clock = clock
        self.writes = PendingWrites(exchange.state_dir)
        self.layouts = exchange.layouts

    # --- the commands ---------------------------------------------------------------------------
    def apply(self, command_id: str, op: Op, record: dict, command: Optional[Envelope] = None) -> Optional[Outcome]:
        """Drop the command's import file; None: answered once an export shows it.

        Raises:
            CommandRefused: the command cannot be written (nothing was dropped).
        """
        done = self.writes.answered.get(command_id)
        if done is not None and done.get("outcome") is not None:
            return Outcome(**done["outcome"], replayed=True)
        if command_id in self.writes.pending or done is not None:
            return None
        handler = {Op.CREATE_PROSPECT: self._prospect, Op.UPDATE_PROSPECT: self._prospect_change,
                   Op.CREATE_CONTACT: self._contact, Op.UPDATE_CONTACT: self._contact_change,
                   Op.CREATE_QUOTE: self._quote}.get(op)
        if handler is None:
            raise CommandRefused(f"the agent does not know the command {op.value}", code="unknown_command",
                                 op=op.value)
        layout, rows, expected = handler(record)
        if expected.get("expect") == {}:             # a change Sage 50 already holds: nothing to import
            return Outcome(expected["key"], conflicts=expected.get("conflicts") or [])
        try:
            data = write_records(rows, layout, self.layouts.format)
        except ValueRefused as refused:
            field = self._canonical_field(layout, refused.field)
            raise CommandRefused(f"{field}: {refused.code}", field=field, code=refused.code,
                                 **refused.values) from None
        name = f"{Path(layout.file).stem}-{_safe(command_id)}{Path(layout.file).suffix or '.txt'}"
        write_atomically(self.exchange.import_folder / name, data)
        now = self.clock()
        self.writes.pending[command_id] = {
            "op": op.value, "entity": ENTITY_OF[op], "file": name, "written_at": now.isoformat(),
            "deadline": (now + dt.timedelta(seconds=self.confirm_within_s)).isoformat(),
            "command": command.to_json() if command is not None else None, **expected}
        self.writes.save()
        return None

    def price(self, record: dict) -> Outcome:
        """The quote's lines priced from the last accepted export (read-only)."""
        account = self._account(record.get("account_key"))
        discount = Decimal(str(account.get("discount_rate") or 0))
        lines, total = [], Decimal(0)
        for item in record.get("lines") or ():
            product = self._product(item.get("article"))
            quantity = _decimal(item.get("quantity"))
            if quantity is None or quantity <= 0:
                raise CommandRefused("quantity", field="lines", code="quantity", article=item.get("article"))
            price = Decimal(product["price"])
            amount = (quantity * price * (1 - discount / 100)).quantize(CENT, rounding=ROUND_HALF_UP)
            total += amount
            lines.append({"line_id": item["line_id"], "article": item["article"], "unit_price": str(price),
                          "discount": str(discount), "amount": str(amount), "stock": product.get("stock_available")})
        if not lines:
            raise CommandRefused("a quote needs at least one line", field="lines", code="no_lines")
        return Outcome(record.get("key") or "", written={"lines": lines, "total_ht": str(total)})

    def close(self) -> None:
        pass

    # --- confirmation -------------------------------------------------------------------------------
    def confirm(self) -> list[Envelope]:
        """The results of the pending writes an export now shows, or whose delay ran out."""
        from agent.commands import result_envelope

        results = []
        now = self.clock()
        for command_id, write in list(self.writes.pending.items()):
            command = Envelope.model_validate_json(write["command"]) if write.get("command") else None
            found = self.reader.record(write["entity"], write["key"])
            shown = found is not None and all(_same(found.get(name), value)
                                              for name, value in (write.get("expect") or {}).items())
            if shown:
                outcome = Outcome(write["key"], written=write.get("written") or {},
                                  conflicts=write.get("conflicts") or [], warnings=write.get("warnings") or [])
                self.writes.answered[command_id] = {"outcome": outcome.to_record(), "entity": write["entity"]}
                if command is not None:
                    results.append(result_envelope(command, outcome=outcome))
            elif now >= dt.datetime.fromisoformat(write["deadline"]):
                hours = round(self.confirm_within_s / 3600, 1)
                self.writes.answered[command_id] = {"outcome": None, "entity": write["entity"], "key": write["key"]}
                if command is not None:
                    results.append(result_envelope(
                        command, error=f"the import file {write['file']} is not in Sage 50's exports after {hours} h",
                        code="unconfirmed", values={"file": write["file"], "hours": f"{hours:g}"}))
            else:
                continue
            del self.writes.pending[command_id]
        return results

    def saved(self) -> None:
        self.writes.save()

    # --- prospects ----------------------------------------------------------------------------------
    def _prospect(self, record: dict):
        layout = self.layouts.for_entity("account")
        fields = _clean(record.get("fields") or {})
        if not fields.get("name"):
            raise CommandRefused("a prospect needs a name", field="name", code="name")
        code = self._next_code(layout, "account", self.layouts.for_entity("account").key[0])
        values = self._columns(layout, layout.single.fields, {**fields, "kind": "prospect"})
        values[layout.key[0]] = code
        rep = record.get("rep_key")
        warnings = []
        if rep and self.reader.record("user", str(rep)) is not None:
            values.update(self._columns(layout, layout.single.fields, {"rep_key": str(rep)}))
        elif rep:
            warnings.append("rep-unknown")
        return layout, [("", values)], {"key": code, "written": fields, "warnings": warnings}

    def _prospect_change(self, record: dict):
        layout = self.layouts.for_entity("account")
        key = str(record["key"])
        current = self.reader.record("account", key)
        if current is None:
            raise CommandRefused(f"the tiers {key} no longer exists in Sage", code="tiers_gone", key=key)
        if current.get("kind") != "prospect":
            raise CommandRefused(f"the tiers {key} is a client now", field="kind", code="converted", key=key)
        chosen, conflicts = _merge(current, record)
        merged = {**{name: value for name, value in current.items() if name in layout.single.fields}, **chosen}
        values = self._columns(layout, layout.single.fields, merged)
        values[layout.key[0]] = key
        return layout, [("", values)], {"key": key, "written": chosen, "expect": chosen, "conflicts": conflicts}

    # --- contacts -----------------------------------------------------------------------------------
    def _contact(self, record: dict):
        layout = self.layouts.for_entity("contact")
        owner = record.get("account_key")
        if not owner or self.reader.record("account", str(owner)) is None:
            raise CommandRefused(f"the contact's tiers {owner} does not exist in Sage", field="account",
                                 code="contact_tiers", tiers=owner)
        fields = _clean(record.get("fields") or {})
        warnings = []
        if not fields.get("last_name"):
            fields["last_name"] = fields.get("first_name") or "?"
            fields.pop("first_name", None)
            warnings.append("last-name-filled")
        values = self._columns(layout, layout.single.fields, {**fields, "account_key": owner})
        key = key_of(layout, values)
        return layout, [("", values)], {"key": key, "written": fields, "warnings": warnings}

    def _contact_change(self, record: dict):
        layout = self.layouts.for_entity("contact")
        key = str(record["key"])
        current = self.reader.record("contact", key)
        if current is None:
            raise CommandRefused(f"the contact {key} no longer exists in Sage", code="contact_gone", key=key)
        chosen, conflicts = _merge(current, record)
        if any(layout.single.fields.get(name) in layout.key for name in chosen):
            raise CommandRefused("a Sage 50 contact's names change in Sage 50 only", field="last_name",
                                 code="contact_rename")
        merged = {**{name: value for name, value in current.items() if name in layout.single.fields}, **chosen}
        values = self._columns(layout, layout.single.fields, merged)
        return layout, [("", values)], {"key": key, "written": chosen, "expect": chosen, "conflicts": conflicts}

    # --- quotes -------------------------------------------------------------------------------------
    def _quote(self, record: dict):
        layout = self.layouts.for_entity("quote")
        kind_label, kind = next((label, kind) for label, kind in layout.kinds.items() if kind["entity"] == "quote")
        account = self._account(record.get("account_key"))
        items = list(record.get("lines") or ())
        if not items:
            raise CommandRefused("a quote needs at least one line", field="lines", code="no_lines")
        header_layout, line_layout = layout.records["E"], layout.records["L"]
        width = next(c.width for c in header_layout.columns if c.label == header_layout.fields["number"])
        piece = self._next_code(layout, "quote", "N° pièce", width=width)
        rows, kept, total = [], {}, Decimal(0)
        for position, item in enumerate(items, start=1):
            self._product(item.get("article"))
            if item.get("unit_price") is None:
                raise CommandRefused(f"the line of {item.get('article')} has no validated price", field="lines",
                                     code="no_price", article=item.get("article"))
            amount = Decimal(str(item["amount"]))
            total += amount
            line = self._columns(layout, line_layout.fields, {
                "line_id": position, "position": position, "product_key": item["article"],
                "description": item.get("description"), "quantity": item.get("quantity"),
                "unit_price": item.get("unit_price"), "discount_rate": item.get("discount") or 0,
                "total_ht": amount}, record_layout=line_layout)
            line[layout.type_column] = "L"
            line["N° pièce"] = piece
            rows.append(("L", line))
            kept[str(item["line_id"])] = str(position)
        header = self._columns(layout, header_layout.fields, {
            "number": piece, "date": record.get("date") or self.clock().date().isoformat(),
            "account_key": account["key"], "reference": record.get("reference"),
            "rep_key": record.get("rep_key") if record.get("rep_key") and
            self.reader.record("user", str(record["rep_key"])) is not None else account.get("rep_key"),
            "total_ht": total}, record_layout=header_layout)
        header[layout.type_column] = "E"
        header[layout.kind_column] = kind_label
        key = f"{kind['family']}:{piece}"
        return layout, [("E", header), *rows], {"key": key, "written": {"piece": piece, "lines": kept,
                                                                        "total_ht": str(total)}}

    # --- helpers ------------------------------------------------------------------------------------
    def _columns(self, layout: FileLayout, mapping: dict, fields: dict, *, record_layout=None) -> dict[str, Any]:
        """Column label → value for canonical `fields`; a field with a value and no column is refused."""
        values: dict[str, Any] = {}
        for name, value in fields.items():
            source = mapping.get(name)
            if source is None:
                if value is None:
                    continue
                raise CommandRefused(f"the field {name} cannot be written to Sage 50", field=name, code="not_writable")
            if isinstance(source, dict):
                values[source["column"]] = value == source["yes"]
            elif source not in values or value is not None:
                values[source] = value
        return values

    @staticmethod
    def _canonical_field(layout: FileLayout, label: str) -> str:
        for record in layout.records.values():
            for name, source in record.fields.items():
                if source == label or (isinstance(source, dict) and source["column"] == label):
                    return name
        return label

    def _next_code(self, layout: FileLayout, entity: str, label: str, *, width: Optional[int] = None) -> str:
        if width is None:
            width = next(c.width for c in layout.single.columns if c.label == label)
        taken = [row.key.split(":", 1)[-1] for row in self.reader.rows(_entity(entity))]
        taken += [w["key"].split(":", 1)[-1] for w in self.writes.pending.values() if w["entity"] == entity]
        taken += [(a["outcome"]["key"] if a.get("outcome") else a.get("key", "")).split(":", 1)[-1]
                  for a in self.writes.answered.values() if a.get("entity", entity) == entity]   # a refused
        # write keeps its code: Sage 50 may still import its file late
        highest = max((int(code[len(self.prefix):]) for code in taken
                       if code.startswith(self.prefix) and code[len(self.prefix):].isdigit()), default=0)
        digits = COUNTER_DIGITS if width is None else max(1, min(COUNTER_DIGITS, width - len(self.prefix)))
        code = f"{self.prefix}{highest + 1:0{digits}d}"            # SSM000001; a long prefix, fewer digits
        if width is not None and len(code) > width:
            raise CommandRefused(f"the next code {code} is longer than {width}", code="code_too_long",
                                 code_value=code, width=width)
        return code

    def _account(self, key) -> dict:
        found = self.reader.record("account", str(key)) if key else None
        if found is None:
            raise CommandRefused(f"the tiers {key} does not exist in Sage", field="account", code="tiers", tiers=key)
        return found

    def _product(self, key) -> dict:
        found = self.reader.record("product", str(key)) if key else None
        if found is None or found.get("dormant"):
            raise CommandRefused(f"the article {key} is unknown or asleep", field="lines", code="article", article=key)
        if found.get("price") is None:
            raise CommandRefused(f"the article {key} has no price", field="lines", code="no_price", article=key)
        return found


def _entity(name: str):
    from shared.models import Entity
    return Entity(name)


def _safe(command_id: str) -> str:
    return "".join(ch for ch in command_id if ch.isalnum() or ch in "-_")[:40] or "commande"


def _clean(fields: dict) -> dict:
    return {name: (value.strip() or None) if isinstance(value, str) else value for name, value in fields.items()}


def _decimal(value) -> Optional[Decimal]:
    try:
        return Decimal(str(value))
    except (InvalidOperation, ValueError):
        return None


def _merge(current: dict, record: dict) -> tuple[dict, list[dict]]:
    """SSM's changed fields Sage did not change meanwhile (those it did are conflicts: Sage wins)."""
    fields, base = _clean(record.get("fields") or {}), record.get("base") or {}
    chosen, conflicts = {}, []
    for name, value in fields.items():
        sage_now = current.get(name)
        if name in base and not _same(sage_now, base.get(name)) and not _same(sage_now, value):
            conflicts.append({"field": name, "sage": sage_now, "ssm": value, "base": base.get(name)})
        elif not _same(sage_now, value):
            chosen[name] = value
    return chosen, conflicts


def _same(a: Any, b: Any) -> bool:
    a = a.strip() or None if isinstance(a, str) else a
    b = b.strip() or None if isinstance(b, str) else b
    if a is None or b is None:
        return a is None and b is None
    try:
        return Decimal(str(a)) == Decimal(str(b))
    except (InvalidOperation, ValueError):
        return str(a) == str(b)


__all__ = ["KEY_SEPARATOR", "PendingWrites", "Sage50Writer"]
