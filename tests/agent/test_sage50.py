"""The Sage 50 FR adapter over exchange folders written from the declared layouts, with awkward
data: first load, changes, deletions, a malformed file, an older file, a late export, and
prospects, contacts and quotes written as import files and answered by the following export."""
from __future__ import annotations

import datetime as dt
import json
import time
from decimal import Decimal
from pathlib import Path

import pytest

from agent.checkpoint import Checkpoint
from agent.relay import run_selected
from agent.sage50.layout import LayoutError, load_layouts, read_file, write_records
from agent_support import drain
from sage50_support import ExchangeFolder
from shared.bus.local_bus import LocalBus
from shared.bus.protocol import OutgoingMessage
from shared.config import Settings
from shared.envelope import Envelope, EnvelopeBatch, EnvelopeKind, Op, content_hash
from shared.messages import CATALOGUE

D = "CIEL"


class Agent:
    def __init__(self, folder, **dossier):
        self.exchange = ExchangeFolder(folder / "echange")
        self.settings = Settings.model_validate({
            "agent": {"state_path": str(folder / "agent" / "agent.db")}, "bus": {"path": str(folder / "bus.db")},
            "dossiers": [{"id": D, "name": "Ciel Bijoux", "product": "sage50", "exchange": str(folder / "echange"),
                          **dossier}]})
        (folder / "agent").mkdir()
        self.bus = LocalBus(str(folder / "bus.db"))

    def run(self):
        with Checkpoint(self.settings.agent.state_path) as checkpoint:
            [result] = run_selected(self.settings, checkpoint=checkpoint, bus=self.bus)
        assert result.ok, result.error
        return result, drain(self.bus, D)

    def command(self, op: Op, entity: str, key: str, body: dict, command_id: str = "cmd-1") -> Envelope:
        command = Envelope(kind=EnvelopeKind.COMMAND, dossier=D, run_id=command_id, entity=entity, op=op, key=key,
                           hash=content_hash(body), record=body, correlation_id=command_id)
        batch = EnvelopeBatch(dossier=D, envelopes=(command,))
        self.bus.send(self.settings.bus.commands_queue, [OutgoingMessage(body=batch.to_bytes(), message_id=batch.message_id,
                                                                         session_id=D)])
        return command


@pytest.fixture
def agent(tmp_path):
    made = Agent(tmp_path)
    made.exchange.export()
    yield made
    made.bus.close()


def upserts(delivered, entity):
    return {e.key: e.record for e in delivered.changes(Op.UPSERT, entity)}


def start_report(delivered) -> dict:
    [(start, _end)] = delivered.runs()
    return start.record["source"]


# --- layouts ---------------------------------------------------------------------------------------

def test_awkward_values_are_written_and_read_back_without_loss_or_shift():
    layouts = load_layouts()
    clients = layouts.files["clients"]
    row = {"Code": "C'0001", "Nom": 'Tab\tdans "le" nom\r\nsur deux lignes', "Prospect": True,
           "Adresse 1": "l’Œuvre — 12 €", "Ville": "Besançon", "Taux Remise": Decimal("12.5"),
           "Crédit accordé": Decimal("-1234.5678"), "Dernière modification Client": dt.date(2026, 2, 28)}
    data = write_records([("", row), ("", {"Code": "C0002", "Nom": "Suivant"})], clients, layouts.format)
    assert "12,50\t-1234,5678\tNon\t28022026\r\n".encode("cp1252") in data
    assert "l’Œuvre — 12 €".encode("cp1252") in data
    first, second = read_file(data, clients, layouts.format, file="clients.txt")
    assert {k: v for k, v in first.values.items() if v is not None and k in row} == {
        **row, "Taux Remise": Decimal("12.50"), "Crédit accordé": Decimal("-1234.5678")}
    assert (second.line, second.values["Code"], second.values["Nom"]) == (4, "C0002", "Suivant")   # no shift


@pytest.mark.parametrize("damage, code, line, column", [
    (lambda t: t.replace("01122026", "31022026"), "date", 2, "Dernière modification Client"),
    (lambda t: t.replace("2,50", "2.50"), "decimal", 2, "Taux Remise"),
    (lambda t: t.replace("Perles de Saône\tOui", "Perles de Saône\tPeut-être"), "bool", 3, "Prospect"),
    (lambda t: t.replace("Perles de Saône", "Perles\tde Saône"), "column_count", 3, None),
    (lambda t: t.replace("Code\tNom", "Code\tRaison sociale"), "header", 1, "Nom"),
])
def test_a_file_that_does_not_match_its_layout_is_refused_naming_line_and_column(damage, code, line, column):
    layouts = load_layouts()
    clients = layouts.files["clients"]
    rows = [("", {"Code": "C0001", "Nom": "Premier", "Taux Remise": Decimal("2.5"),
                  "Dernière modification Client": dt.date(2026, 12, 1)}),
            ("", {"Code": "P0001", "Nom": "Perles de Saône", "Prospect": True})]
    text = write_records(rows, clients, layouts.format).decode("cp1252")
    with pytest.raises(LayoutError) as refused:
        read_file(damage(text).encode("cp1252"), clients, layouts.format, file="clients.txt")
    assert refused.value.code == code
    assert refused.value.values["line"] == line
    assert refused.value.message.text.startswith(f"ligne {line}")
    if column is not None:
        assert f"« {column} »" in refused.value.message.text


def test_bytes_outside_cp1252_refuse_the_file_at_their_line():
    layouts = load_layouts()
    data = "Code\tNom\r\n".encode("cp1252")
    with pytest.raises(LayoutError) as refused:
        read_file(data + b"C1\t\x81\r\n", layouts.files["familles"], layouts.format, file="familles.txt")
    assert (refused.value.code, refused.value.values["line"]) == ("encoding", 2)


def test_every_refusal_is_worded_in_french():
    import ast

    from agent.sage50 import layout

    tree = ast.parse(Path(layout.__file__).read_text(encoding="utf-8"))
    codes = {node.args[0].value for node in ast.walk(tree)
             if isinstance(node, ast.Call) and getattr(node.func, "id", "") == "LayoutError"}
    assert len(codes) >= 10 and all(f"sage50.file.{code}" in CATALOGUE for code in codes)


def test_an_administrators_layout_replaces_the_shipped_one(tmp_path):
    shipped = load_layouts().source
    text = open(shipped, encoding="utf-8").read().replace('label = "Libellé"', 'label = "Intitulé"') \
        .replace('name = "Libellé"', 'name = "Intitulé"')
    custom = tmp_path / "mes-modeles.toml"
    custom.write_text(text, encoding="utf-8")
    layouts = load_layouts(custom)
    data = write_records([("", {"Code": "BAG", "Intitulé": "Bagues"})], layouts.files["familles"], layouts.format)
    assert data.startswith("Code\tIntitulé\r\n".encode("cp1252"))
    with pytest.raises(LayoutError):
        read_file(data, load_layouts().files["familles"], load_layouts().format, file="familles.txt")


# --- reading and change detection -------------------------------------------------------------------

def test_the_first_load_sends_every_record_as_exported(agent):
    result, delivered = agent.run()

    assert result.realignment and result.counts["invalid"] == 0
    accounts = upserts(delivered, "account")
    assert set(accounts) == {"C0001", "C0002", "P0001"}
    oeil = accounts["C0001"]
    assert (oeil["name"], oeil["address1"], oeil["address2"], oeil["city"]) == (
        "Bijouterie L'Œil d'Or", "12, rue de l’Église", "Bâtiment B\r\n2e étage", "Besançon")
    assert (oeil["kind"], oeil["discount_rate"], oeil["credit_limit"], oeil["rep_key"]) == (
        "client", "2.50", "15000.5000", "R01")
    assert accounts["C0002"]["name"] == 'Atelier\tMartin & "Fils"'
    assert accounts["P0001"]["kind"] == "prospect"
    assert set(upserts(delivered, "contact")) == {"C0001/Dupont/Jeanne", "C0001/Béranger/Noël", "C0002/Martin/Zoé"}
    assert upserts(delivered, "contact")["C0001/Béranger/Noël"]["job_title"] == "Acheteur\tbijoux"
    assert upserts(delivered, "product")["BAG-OR-18"]["price"] == "1234.50"
    assert upserts(delivered, "product")["BAG-OR-18"]["stock_total"] == "3.25"
    quote = upserts(delivered, "quote")["0:DE00001"]
    assert (quote["date"], quote["account_key"], quote["reference"]) == ("2026-11-02", "C0001", "Salon d'été")
    assert [l["description"] for l in quote["lines"]] == ["Bague or 18 carats\r\ngravure :\t« Pour toujours »",
                                                          "Collier perles — 45 cm"]
    assert upserts(delivered, "invoice")["F:FA00001"]["lines"][0]["quantity"] == "2.50"
    assert not [e for e in delivered.changes() if "BL00001" in (e.key or "")]     # delivery notes: not synced
    report = start_report(delivered)
    assert report["product"] == "sage50" and report["refused"] == [] and report["missing"] == []
    assert dt.datetime.fromisoformat(report["last_export_at"]) > dt.datetime.now(dt.timezone.utc) - dt.timedelta(minutes=5)


def test_a_new_export_sends_what_changed_and_the_deletions_only(agent):
    agent.run()
    agent.exchange.row("clients", Code="C0002")["Téléphone"] = "04 78 00 00 02"
    agent.exchange.rows["contacts"] = [c for c in agent.exchange.rows["contacts"] if c["Nom"] != "Béranger"]
    agent.exchange.rows["articles"][1]["Stock disponible"] = Decimal("11")
    agent.exchange.export()

    result, delivered = agent.run()

    assert not result.realignment
    assert {(e.op, e.entity, e.key) for e in delivered.changes()} == {
        (Op.UPSERT, "account", "C0002"), (Op.DELETE, "contact", "C0001/Béranger/Noël"),
        (Op.UPSERT, "product", "COL-PERLE")}
    assert upserts(delivered, "account")["C0002"]["phone"] == "04 78 00 00 02"

    result, delivered = agent.run()                        # the same export again: nothing
    assert delivered.changes() == [] and result.counts["skipped_unchanged"] == 12


def test_a_malformed_export_is_refused_whole_and_nothing_of_it_is_relayed(agent):
    agent.run()
    agent.exchange.row("clients", Code="C0001")["Ville"] = "Dole"
    agent.exchange.export()
    good = agent.exchange.path("clients").read_bytes().decode("cp1252")
    agent.exchange.write_raw("clients", good.replace("Chalon-sur-Saône", "Chalon\tsur-Saône").encode("cp1252"))
    agent.exchange.rows["articles"][0]["Prix de vente HT"] = Decimal("1300")
    agent.exchange.export("articles")

    result, delivered = agent.run()

    assert upserts(delivered, "account") == {} and delivered.changes(Op.DELETE) == []    # C0001's change waits
    assert set(upserts(delivered, "product")) == {"BAG-OR-18"}                            # the other files go on
    [refused] = start_report(delivered)["refused"]
    assert (refused["file"], refused["code"], refused["values"]["line"]) == ("clients.txt", "column_count", 5)
    assert refused["message"].startswith("ligne 5 : 20 colonnes au lieu de 19")

    agent.exchange.export("clients")                       # corrected: taken, the change goes
    result, delivered = agent.run()
    assert upserts(delivered, "account")["C0001"]["city"] == "Dole"
    assert start_report(delivered)["refused"] == []


def test_a_file_older_than_the_last_one_read_is_ignored(agent):
    agent.run()
    agent.exchange.rows["clients"] = agent.exchange.rows["clients"][:1]
    agent.exchange.export("clients", age_s=3600)           # an old copy put back in the folder

    result, delivered = agent.run()

    assert delivered.changes() == []                       # no deletion of C0002 and P0001
    assert start_report(delivered)["ignored"] == ["clients.txt"]


def test_a_missing_or_late_export_is_reported(tmp_path):
    agent = Agent(tmp_path)
    agent.exchange.export("clients", "articles", age_s=3 * 3600)
    result, delivered = agent.run()

    report = start_report(delivered)
    assert sorted(report["missing"]) == ["contacts.txt", "familles.txt", "pieces.txt", "representants.txt"]
    age = dt.datetime.now(dt.timezone.utc) - dt.datetime.fromisoformat(report["last_export_at"])
    assert dt.timedelta(hours=3) <= age < dt.timedelta(hours=3, minutes=1)
    assert report["late_after_s"] == 7200
    agent.bus.close()


# --- writing back -------------------------------------------------------------------------------------

def results_of(delivered):
    return [e for e in delivered.envelopes if e.kind is EnvelopeKind.COMMAND_RESULT]


def test_a_prospect_is_written_as_an_import_file_and_bound_when_the_next_export_shows_it(agent):
    agent.run()
    agent.command(Op.CREATE_PROSPECT, "account", "ssm:501", {
        "ssm_id": 501, "rep_key": "R01",
        "fields": {"name": "L’Atelier « Œuvre » &\tCie", "city": "Mâcon", "phone": "03 85 00 00 00",
                   "email": "bonjour@oeuvre.fr"}})

    result, delivered = agent.run()

    assert result.commands.pending == 1 and results_of(delivered) == []           # not confirmed yet
    [written] = agent.exchange.imports()
    layout, [record] = agent.exchange.read_import(written)
    assert layout.name == "clients"
    code = record.values["Code"]
    assert code == "SSM000001" and len(code) <= 13
    assert (record.values["Nom"], record.values["Ville"], record.values["Prospect"],
            record.values["Représentant Client"]) == ("L’Atelier « Œuvre » &\tCie", "Mâcon", True, "R01")
    assert upserts(delivered, "account") == {}

    result, delivered = agent.run()                        # Sage 50 has not imported it yet
    assert results_of(delivered) == [] and len(agent.exchange.imports()) == 1

    agent.exchange.import_all()
    result, delivered = agent.run()

    [answer] = results_of(delivered)
    assert delivered.envelopes.index(answer) < delivered.envelopes.index(delivered.runs()[0][0])  # before the run
    assert (answer.op, answer.key, answer.record["ok"], answer.record["outcome"]["key"]) == (
        Op.CREATE_PROSPECT, "SSM000001", True, "SSM000001")
    assert answer.record["command"]["ssm_id"] == 501
    assert upserts(delivered, "account")["SSM000001"]["name"] == "L’Atelier « Œuvre » &\tCie"

    agent.command(Op.CREATE_PROSPECT, "account", "ssm:501", {"ssm_id": 501, "fields": {"name": "x"}})   # redelivered
    result, delivered = agent.run()
    assert agent.exchange.imports() == []                  # no second file
    assert [r.record["outcome"]["key"] for r in results_of(delivered)] == ["SSM000001"]


def test_a_quote_is_written_with_its_lines_and_bound_to_the_devis_the_export_shows(agent):
    agent.run()
    agent.command(Op.CREATE_QUOTE, "quote", "ssm:quote:77", {
        "ssm_id": 77, "account_key": "C0001", "date": "2026-12-04", "reference": "Noël\t2026", "lines": [
            {"line_id": 9001, "article": "BAG-OR-18", "quantity": "2", "unit_price": "1234.50", "discount": "2.5",
             "amount": "2407.28", "description": "Bague gravée\r\n« J & M »"},
            {"line_id": 9002, "article": "COL-PERLE", "quantity": "1", "unit_price": "89.90", "discount": "0",
             "amount": "89.90"}]})

    result, delivered = agent.run()

    assert result.commands.pending == 1
    [written] = agent.exchange.imports()
    layout, records = agent.exchange.read_import(written)
    header, first, second = records
    assert (header.type, header.values["Type de pièce"], header.values["N° pièce"], header.values["Date Pièce"],
            header.values["Client"], header.values["Référence de la pièce"], header.values["Total HT"]) == (
        "E", "Devis", "SSM000001", dt.date(2026, 12, 4), "C0001", "Noël\t2026", Decimal("2497.1800"))
    assert [(l.type, l.values["Ordre"], l.values["Code de l'article"], l.values["Qté"], l.values["Prix Uni. HT"],
             l.values["Tx Remise"], l.values["Mt Tot HT"]) for l in (first, second)] == [
        ("L", 1, "BAG-OR-18", Decimal("2.00"), Decimal("1234.50"), Decimal("2.50"), Decimal("2407.2800")),
        ("L", 2, "COL-PERLE", Decimal("1.00"), Decimal("89.90"), Decimal("0.00"), Decimal("89.9000"))]
    assert first.values["Description"] == "Bague gravée\r\n« J & M »"

    agent.exchange.import_all()
    result, delivered = agent.run()

    [answer] = results_of(delivered)
    assert (answer.key, answer.record["outcome"]["written"]) == (
        "0:SSM000001", {"piece": "SSM000001", "lines": {"9001": "1", "9002": "2"}, "total_ht": "2497.18"})
    devis = upserts(delivered, "quote")["0:SSM000001"]
    assert [l["description"] for l in devis["lines"]] == ["Bague gravée\r\n« J & M »", None]


def test_a_quote_is_priced_from_the_last_export(agent):
    agent.run()
    agent.command(Op.PRICE_QUOTE, "quote", "ssm:quote:78", {
        "ssm_id": 78, "account_key": "C0001", "lines": [
            {"line_id": 1, "article": "BAG-OR-18", "quantity": 2}, {"line_id": 2, "article": "COL-PERLE", "quantity": 3}]})

    result, delivered = agent.run()

    [answer] = results_of(delivered)
    written = answer.record["outcome"]["written"]
    # C0001's « Taux Remise » is 2,50 %: 2 × 1234,50 × 0,975 = 2407,28; 3 × 89,90 × 0,975 = 262,96
    assert [(l["unit_price"], l["discount"], l["amount"], l["stock"]) for l in written["lines"]] == [
        ("1234.50", "2.50", "2407.28", "2.00"), ("89.90", "2.50", "262.96", "12.00")]
    assert written["total_ht"] == "2670.24"


def test_a_write_no_export_shows_becomes_a_refusal_after_the_delay(tmp_path):
    agent = Agent(tmp_path, confirm_within_s=1.5)
    agent.exchange.export()
    agent.run()
    agent.command(Op.CREATE_CONTACT, "contact", "ssm:contact:9", {
        "ssm_id": 9, "account_key": "C0002", "fields": {"first_name": "Élodie", "last_name": "Faure"}})
    result, delivered = agent.run()
    assert result.commands.pending == 1 and results_of(delivered) == []
    [written] = agent.exchange.imports()
    assert agent.exchange.read_import(written)[1][0].values["Nom"] == "Faure"
    time.sleep(1.6)

    result, delivered = agent.run()

    [answer] = results_of(delivered)
    assert (answer.record["ok"], answer.record["code"]) == (False, "unconfirmed")
    assert answer.record["values"] == {"file": written.name, "hours": "0"}      # 1.5 s, in hours
    assert "sage.refused.unconfirmed" in CATALOGUE
    agent.bus.close()


@pytest.mark.parametrize("fields, code", [
    ({"name": "N" * 51}, "width"),
    ({"name": "Étoile ✓"}, "codepage"),
    ({"name": "Sans région", "region": "Bourgogne"}, "not_writable"),
])
def test_a_value_sage_50_cannot_take_is_refused_at_once_and_nothing_is_dropped(agent, fields, code):
    agent.run()
    agent.command(Op.CREATE_PROSPECT, "account", "ssm:502", {"ssm_id": 502, "fields": fields})

    result, delivered = agent.run()

    [answer] = results_of(delivered)
    assert (answer.record["ok"], answer.record["code"]) == (False, code)
    assert agent.exchange.imports() == []


def test_pending_writes_survive_the_agent(agent):
    agent.run()
    agent.command(Op.CREATE_PROSPECT, "account", "ssm:503", {"ssm_id": 503, "fields": {"name": "Survivant"}})
    agent.run()
    state = Path(agent.settings.agent.state_path).parent / "sage50" / D / "writes.json"
    pending = json.loads(state.read_text(encoding="utf-8"))
    assert [w["key"] for w in pending["pending"].values()] == ["SSM000001"]


def test_a_prospect_changed_in_ssm_is_imported_whole_and_confirmed_by_its_new_values(agent):
    agent.run()
    agent.exchange.row("clients", Code="P0001")["Téléphone"] = "03 85 11 11 11"     # changed in Sage 50 too
    agent.exchange.export("clients")
    agent.run()
    agent.command(Op.UPDATE_PROSPECT, "account", "P0001", {
        "ssm_id": 600, "fields": {"city": "Tournus", "phone": "03 85 22 22 22"},
        "base": {"city": "Chalon-sur-Saône", "phone": None}})

    agent.run()

    [written] = agent.exchange.imports()
    _, [record] = agent.exchange.read_import(written)
    assert (record.values["Code"], record.values["Nom"], record.values["Ville"], record.values["Téléphone"],
            record.values["Prospect"], record.values["Représentant Client"]) == (
        "P0001", "Perles de Saône", "Tournus", "03 85 11 11 11", True, "R01")      # Sage 50's phone wins
    agent.exchange.import_all()
    result, delivered = agent.run()
    [answer] = results_of(delivered)
    assert answer.record["outcome"]["written"] == {"city": "Tournus"}
    assert [c["field"] for c in answer.record["outcome"]["conflicts"]] == ["phone"]

    agent.command(Op.UPDATE_PROSPECT, "account", "P0001", {"ssm_id": 600, "fields": {"city": "Tournus"}},
                  command_id="cmd-2")
    result, delivered = agent.run()                        # nothing to change: answered at once, no file
    assert [r.record["ok"] for r in results_of(delivered)] == [True] and agent.exchange.imports() == []


def test_a_file_changing_while_it_is_read_is_left_for_the_next_run(agent, monkeypatch):
    from agent.sage50 import exchange as exchange_module

    agent.run()
    agent.exchange.rows["familles"].append({"Code": "MON", "Libellé": "Montres"})
    agent.exchange.export("familles")
    path = agent.exchange.path("familles")
    real_read = exchange_module.Path.read_bytes

    appended = []

    def read_while_sage_writes(self):
        data = real_read(self)
        if self == path:                          # Sage 50 is still appending during this run
            appended.append(f"BR{len(appended)}")
            with open(path, "ab") as more:
                more.write(f"{appended[-1]}\tBracelets\r\n".encode("cp1252"))
        return data

    monkeypatch.setattr(exchange_module.Path, "read_bytes", read_while_sage_writes)
    result, delivered = agent.run()
    monkeypatch.undo()
    assert upserts(delivered, "product_family") == {} and delivered.changes(Op.DELETE) == []

    result, delivered = agent.run()
    assert start_report(delivered)["refused"] == []
    assert set(upserts(delivered, "product_family")) == {"MON", *appended} and len(appended) == 2


def test_a_long_prospect_prefix_still_gives_codes_within_13_characters(tmp_path):
    agent = Agent(tmp_path, prospect_prefix="PROSPECTSM")
    agent.exchange.export()
    agent.run()
    for number in (1, 2):
        agent.command(Op.CREATE_PROSPECT, "account", f"ssm:{number}", {"ssm_id": number, "fields": {"name": f"N{number}"}},
                      command_id=f"cmd-{number}")
    agent.run()
    codes = sorted(agent.exchange.read_import(path)[1][0].values["Code"] for path in agent.exchange.imports())
    assert codes == ["PROSPECTSM001", "PROSPECTSM002"] and all(len(code) == 13 for code in codes)
    agent.bus.close()


def test_a_contact_changed_in_ssm_is_imported_and_its_names_stay_sage_50s(agent):
    agent.run()
    key = "C0001/Dupont/Jeanne"
    agent.command(Op.UPDATE_CONTACT, "contact", key, {"ssm_id": 700, "fields": {"job_title": "Directrice\tachats"},
                                                      "base": {"job_title": "Gérante"}})
    agent.run()
    [written] = agent.exchange.imports()
    _, [record] = agent.exchange.read_import(written)
    assert (record.values["Code client"], record.values["Nom"], record.values["Prénom"], record.values["Fonction"],
            record.values["E-mail"]) == ("C0001", "Dupont", "Jeanne", "Directrice\tachats", "jeanne@oeildor.fr")
    agent.exchange.import_all()
    result, delivered = agent.run()
    [answer] = results_of(delivered)
    assert (answer.key, answer.record["outcome"]["written"]) == (key, {"job_title": "Directrice\tachats"})
    assert upserts(delivered, "contact")[key]["job_title"] == "Directrice\tachats"

    agent.command(Op.UPDATE_CONTACT, "contact", key, {"ssm_id": 700, "fields": {"last_name": "Durand"}},
                  command_id="cmd-2")
    result, delivered = agent.run()
    [answer] = results_of(delivered)
    assert (answer.record["ok"], answer.record["code"]) == (False, "contact_rename")
    assert agent.exchange.imports() == []


def test_the_code_of_a_prospect_never_confirmed_is_not_given_again(tmp_path):
    agent = Agent(tmp_path, confirm_within_s=1.0)
    agent.exchange.export()
    agent.run()
    agent.command(Op.CREATE_PROSPECT, "account", "ssm:1", {"ssm_id": 1, "fields": {"name": "Jamais importé"}})
    agent.run()
    time.sleep(1.1)
    result, delivered = agent.run()
    assert [r.record["code"] for r in results_of(delivered)] == ["unconfirmed"]

    agent.command(Op.CREATE_PROSPECT, "account", "ssm:2", {"ssm_id": 2, "fields": {"name": "Suivant"}},
                  command_id="cmd-2")
    agent.run()
    codes = sorted(agent.exchange.read_import(path)[1][0].values["Code"] for path in agent.exchange.imports())
    assert codes == ["SSM000001", "SSM000002"]         # Sage 50 may still import the first file late
    agent.bus.close()
