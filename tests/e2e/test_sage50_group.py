"""A group of one Sage 100 dossier and one Sage 50 FR dossier through the whole local pipeline:
each read by its own adapter (the registry, by `product`), each with its own runs, journal and
incidents on the status report; a prospect created in SSM for the Sage 50 dossier written as an
import file and bound when the following export shows it."""
from __future__ import annotations

import datetime as dt

from local.runtime import LocalRuntime
from shared.config import load_settings
from shared.state.records import IncidentState
from shared.status.page import render_status_page
from shared.status.report import StatusQuery, StatusReader
from shared.sync.binder import external_id
from tests.agent.sage50_support import ExchangeFolder
from tests.e2e.conftest import FAST_CLIENT, FAST_REDELIVERY
from tests.e2e.test_inbound import rep_of, session

S100, S50 = "BIJOU", "CIEL"


def with_sage50(p, *, exported_ago_s: float = 0.0, **options) -> ExchangeFolder:
    """The pipeline's group joined by a Sage 50 FR dossier reading `<folder>/ciel-echange`, whose
    exports were written `exported_ago_s` seconds ago."""
    exchange = ExchangeFolder(p.folder / "ciel-echange")
    exchange.export(age_s=exported_ago_s)
    extra = "".join(f"{name} = {value!r}\n".replace("'", '"') for name, value in options.items())
    with open(p.config_path, "a", encoding="utf-8") as config:
        config.write(f'\n[[dossiers]]\nid = "{S50}"\nname = "Ciel Bijoux"\nproduct = "sage50"\n'
                     f'exchange = "ciel-echange"\n{extra}')
    p.runtime.close()
    p.settings = load_settings(p.config_path, environ={**FAST_CLIENT, **FAST_REDELIVERY})
    p.runtime = LocalRuntime(p.settings)
    return exchange


def status(p, dossier: str):
    reader = StatusReader.from_settings(p.settings, p.runtime.store, p.runtime.bus)
    [found] = reader.report(StatusQuery(dossier=dossier, journal=50)).dossiers
    return found


def open_incidents(p, dossier: str) -> dict[str, str]:
    return {i.key: i.message for i in p.runtime.store.list_incidents(dossier, state=IncidentState.OPEN)}


def test_a_sage100_and_a_sage50_dossier_synchronise_side_by_side(make_pipeline):
    p = make_pipeline()
    exchange = with_sage50(p, exported_ago_s=3 * 3600 + 120)       # Sage 50 last exported 3 h ago

    summary = p.run()

    assert summary.ok, summary.render()
    accounts = p.live("accounts")
    assert accounts[external_id(S50, "C0001")]["name"] == "Bijouterie L'Œil d'Or"
    assert accounts[external_id(S50, "P0001")]["typeId"]["value"] == "Prospect"
    first_bijou = p.sage(S100, "SELECT CT_Num FROM F_COMPTET WHERE CT_Type = 0 ORDER BY CT_Num")[0][0]
    assert external_id(S100, first_bijou) in accounts
    assert external_id(S50, "BAG-OR-18") in p.live("products")
    s100, s50 = status(p, S100), status(p, S50)
    assert (s100.product, s50.product) == ("sage100", "sage50")
    assert s50.last_export == "Dernière exportation reçue il y a 3 h." and s100.last_export is None
    assert s100.runs and s50.runs and {r.run_id for r in s100.runs}.isdisjoint({r.run_id for r in s50.runs})
    assert [i.message for i in s50.incidents if i.key == "export:late"] == [
        "Dernière exportation reçue il y a 3 h (attendue au moins toutes les 2 h) : vérifiez que Sage 50 "
        "exporte toujours vers le dossier d'échange."]
    assert not [i for i in s100.incidents if i.key.startswith("export:")]
    page = render_status_page(StatusReader.from_settings(p.settings, p.runtime.store, p.runtime.bus).report())
    assert "<dt>Exportations de Sage 50</dt><dd>Dernière exportation reçue il y a 3 h.</dd>" in page
    assert page.count("Exportations de Sage 50") == 1                 # the Sage 100 dossier has none

    # Sage 50's client file comes back malformed (a tab in a postcode shifts the columns): the
    # Sage 50 dossier says so, in French, on its own; nothing of the file reaches SSM, and the
    # Sage 100 dossier goes on untouched.
    exchange.row("clients", Code="C0001")["Ville"] = "Dole"
    exchange.export("clients")
    text = exchange.path("clients").read_bytes().decode("cp1252")
    exchange.write_raw("clients", text.replace("25000", "25\t000").encode("cp1252"))
    runs_before = len(p.runtime.store.list_runs(S100))

    assert p.run().ok

    incidents = open_incidents(p, S50)
    assert incidents["export:clients.txt"].startswith(
        "Le fichier d'exportation « clients.txt » de Sage 50 a été refusé en entier — ligne 2 : 20 colonnes au"
        " lieu de 19")
    assert "export:late" in incidents
    assert p.ssm("accounts", external_id(S50, "C0001"))["city"] == "Besançon"       # nothing half-read
    assert not [k for k in open_incidents(p, S100) if k.startswith("export:")]
    assert len(p.runtime.store.list_runs(S100)) == runs_before + 1

    exchange.export()                                     # fixed and fresh: the incidents resolve
    assert p.run().ok
    assert not [k for k in open_incidents(p, S50) if k.startswith("export:")]
    assert status(p, S50).last_export == "Dernière exportation reçue il y a 0 min."
    assert p.ssm("accounts", external_id(S50, "C0001"))["city"] == "Dole"

    exchange.rows["articles"] = exchange.rows["articles"][:1]
    exchange.export("articles", age_s=24 * 3600)          # an old copy put back: ignored, said in CIEL's journal
    assert p.run().ok
    assert [e.message for e in status(p, S50).journal if e.event == "export-ignored"] == [
        "Le fichier « articles.txt » déposé est plus ancien que la dernière exportation lue : il a été ignoré."]
    assert p.ssm("products", external_id(S50, "COL-PERLE"))                     # not deleted
    assert not [e for e in p.runtime.store.list_journal(S100, limit=500) if (e.key or "").startswith("export:")]


def test_a_prospect_made_in_ssm_for_the_sage50_dossier_is_bound_when_sage50_exports_it(make_pipeline):
    p = make_pipeline()
    exchange = with_sage50(p, ssm_branch="Siège")       # SSM's new accounts belong to the Sage 50 dossier
    assert p.run().ok
    _, email = rep_of(p)
    with session(p, email) as rep:
        ssm_id = rep.create_account("Maison Hélène\tOr & Argent", city="Mâcon", phone="03 85 00 00 00")

    assert p.run().ok                                     # written as an import file, not yet confirmed
    [written] = exchange.imports()
    _, [record] = exchange.read_import(written)
    assert (record.values["Code"], record.values["Nom"], record.values["Prospect"]) == (
        "SSM000001", "Maison Hélène\tOr & Argent", True)
    assert not p.simulator.record("accounts", ssm_id).get("extId")
    assert p.run().ok
    assert len(exchange.imports()) == 1                   # written once

    exchange.import_all()                                 # Sage 50 imports it and exports again
    assert p.run().ok

    account = p.simulator.record("accounts", ssm_id)
    assert account["extId"] == external_id(S50, "SSM000001")
    assert p.runtime.store.get_link(S50, "account", "SSM000001").ssm_id == ssm_id
    assert len([a for a in p.simulator.records("accounts") if a["name"] == "Maison Hélène\tOr & Argent"]) == 1
    assert not p.sage(S100, "SELECT CT_Num FROM F_COMPTET WHERE CT_Num LIKE 'SSM%'")    # not in the Sage 100 one


SAGE50_STATUSES = ("Brouillon (⇆)", "Brouillon validé ✔️", "En attente de synchronisation finale (⇆)")


def test_a_quote_made_in_ssm_is_priced_by_the_sage50_export_and_becomes_a_devis_sage50_exports(make_pipeline):
    from shared.ssm.lookups import SALES_ORDER_STATUSES

    p = make_pipeline()
    for position, label in enumerate(SAGE50_STATUSES, start=10):       # made by hand in SSM (README)
        p.simulator.store.seed("salesorderStatuses", {"descriptionFR": label, "descriptionEN": label,
                                                      "order": position})
    exchange = with_sage50(p, ssm_branch="Siège")
    assert p.run().ok
    _, email = rep_of(p)
    products = {code: p.ssm_id(S50, "product", code) for code in ("BAG-OR-18", "COL-PERLE")}
    with session(p, email) as rep:
        pending = rep._client.lookup_id(SALES_ORDER_STATUSES, SAGE50_STATUSES[0])
        quote = rep.create_quote(p.ssm_id(S50, "account", "C0001"), reference="Fêtes", statusId=pending, lines=[
            {"product_id": products["BAG-OR-18"], "quantity": 2, "price": 1},
            {"product_id": products["COL-PERLE"], "quantity": 3, "price": 1}])

    assert p.run().ok                                     # priced from the export: C0001 has 2,50 %

    assert p.simulator.record("salesorders", quote)["statusId"]["value"] == SAGE50_STATUSES[1]
    with session(p, email) as rep:
        lines = rep.quote_lines(quote)
        assert [(str(l["price"]), str(l["total"])) for l in lines] == [("1234.5", "2407.28"), ("89.9", "262.96")]
        awaiting = rep._client.lookup_id(SALES_ORDER_STATUSES, SAGE50_STATUSES[2])
        rep._client.update("salesorders", quote, {"statusId": awaiting, "readOnly": True})

    assert p.run().ok and p.run().ok                      # asked over two cycles: one import file
    [written] = exchange.imports()
    _, (header, *sage_lines) = exchange.read_import(written)
    assert (header.values["Type de pièce"], header.values["Client"], header.values["Référence de la pièce"],
            str(header.values["Total HT"])) == ("Devis", "C0001", "Fêtes", "2670.2400")
    assert [(l.values["Code de l'article"], str(l.values["Qté"]), str(l.values["Mt Tot HT"])) for l in sage_lines] == [
        ("BAG-OR-18", "2.00", "2407.2800"), ("COL-PERLE", "3.00", "262.9600")]

    exchange.import_all()                                 # Sage 50 imports the devis and exports it
    assert p.run().ok

    piece = header.values["N° pièce"]
    assert p.runtime.store.get_link(S50, "quote", f"0:{piece}").ssm_id == quote
    assert p.simulator.record("salesorders", quote)["reference"] == f"{piece} · Fêtes"
    assert not [o for o in p.simulator.records("salesorders") if o.get("extId") == external_id(S50, f"0:{piece}")
                and o["id"] != quote]                     # the devis read back is the SSM quote, not a second one
