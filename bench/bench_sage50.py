"""Sage 50 FR exchange files: reading rate of the declared layouts, and the agent's runs over an
exchange folder (first load, then a run with nothing changed).

Writes an exchange folder from the shipped layouts (`agent/sage50/layouts.toml`) with `--clients`
clients (each with two contacts), `--articles` articles and `--pieces` pieces of five lines, text
holding tabs, line breaks and CP1252 characters, then measures:
- parsing: `read_file` over every file, in records per second;
- the agent's first load of the dossier (accept the exports, read, hash, stage, send to a local
  bus) and a second run with nothing changed (every record read and hashed again, none sent).

    python bench/bench_sage50.py                        # 20,000 clients, 5,000 articles, 10,000 pieces
    python bench/bench_sage50.py --clients 2000 --articles 500 --pieces 1000
"""
from __future__ import annotations

import argparse
import datetime as dt
import sys
import tempfile
import time
from decimal import Decimal
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

QUICK_ARGS = ["--clients", "2000", "--articles", "500", "--pieces", "1000"]


def build(folder: Path, clients: int, articles: int, pieces: int) -> int:
    from agent.sage50.layout import load_layouts, write_records

    layouts = load_layouts()
    rows = {
        "clients": [("", {"Code": f"C{n:07d}", "Nom": f"Bijouterie n°{n}\tÉtoile « {n % 97} »",
                          "Prospect": n % 5 == 0, "Adresse 1": "12, rue de l’Église",
                          "Adresse 2": "Bâtiment B\r\n2e étage", "Ville": "Besançon", "Taux Remise": Decimal("2.5"),
                          "Dernière modification Client": dt.date(2026, 1, 1 + n % 28)}) for n in range(clients)],
        "contacts": [("", {"Code client": f"C{n // 2:07d}", "Nom": f"Nom{n}", "Prénom": "Zoé",
                           "E-mail": f"c{n}@exemple.fr"}) for n in range(clients * 2)],
        "representants": [("", {"Code": f"R{n:02d}", "Nom": f"Représentant {n}"}) for n in range(20)],
        "familles": [("", {"Code": f"F{n:02d}", "Libellé": f"Famille {n}"}) for n in range(30)],
        "articles": [("", {"Code": f"A{n:08d}", "Désignation courte": f"Article {n} — or", "Famille": f"F{n % 30:02d}",
                           "Prix de vente HT": Decimal("12.5") + n, "Stock réel": Decimal("3.25"),
                           "Stock disponible": Decimal(2)}) for n in range(articles)],
        "pieces": [],
    }
    for n in range(pieces):
        piece = f"FA{n:07d}"
        rows["pieces"].append(("E", {"Type de ligne": "E", "Type de pièce": "Facture", "N° pièce": piece,
                                     "Date Pièce": dt.date(2026, 3, 1), "Client": f"C{n % clients:07d}",
                                     "Total HT": Decimal("100")}))
        rows["pieces"] += [("L", {"Type de ligne": "L", "N° pièce": piece, "Ordre": line,
                                  "Code de l'article": f"A{(n + line) % articles:08d}",
                                  "Description": "Gravure :\t« Pour toujours »\r\nécrin", "Qté": Decimal("2.5"),
                                  "Prix Uni. HT": Decimal("40"), "Mt Tot HT": Decimal("100")})
                           for line in range(1, 6)]
    for name, records in rows.items():
        layout = layouts.files[name]
        (folder / layout.file).write_bytes(write_records(records, layout, layouts.format))
    return sum(len(records) for records in rows.values())


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, default=20_000)
    parser.add_argument("--articles", type=int, default=5_000)
    parser.add_argument("--pieces", type=int, default=10_000)
    args = parser.parse_args(argv)

    from agent.checkpoint import Checkpoint
    from agent.relay import run_selected
    from agent.sage50.layout import load_layouts, read_file
    from shared.bus.local_bus import LocalBus
    from shared.config import Settings

    with tempfile.TemporaryDirectory() as temporary:
        folder = Path(temporary)
        exchange = folder / "echange"
        exchange.mkdir()
        lines = build(exchange, args.clients, args.articles, args.pieces)
        size = sum(p.stat().st_size for p in exchange.iterdir())
        layouts = load_layouts()
        started = time.perf_counter()
        for layout in layouts.files.values():
            read_file((exchange / layout.file).read_bytes(), layout, layouts.format, file=layout.file)
        parse_s = time.perf_counter() - started
        print(f"exchange folder: {lines:,} records, {size / 1e6:.1f} MB")
        print(f"parsing by the layouts: {parse_s:.2f} s, {lines / parse_s:,.0f} records/s")

        settings = Settings.model_validate({
            "agent": {"state_path": str(folder / "agent.db")}, "bus": {"path": str(folder / "bus.db")},
            "dossiers": [{"id": "CIEL", "product": "sage50", "exchange": str(exchange)}]})
        bus = LocalBus(str(folder / "bus.db"))
        try:
            with Checkpoint(settings.agent.state_path) as checkpoint:
                for label in ("first load", "nothing changed"):
                    started = time.perf_counter()
                    [result] = run_selected(settings, checkpoint=checkpoint, bus=bus)
                    seconds = time.perf_counter() - started
                    if not result.ok:
                        print(f"{label}: FAILED {result.error}")
                        return 1
                    records = result.counts["read"]
                    print(f"{label}: {seconds:.2f} s for {records:,} records ({records / seconds:,.0f}/s), "
                          f"{result.counts['created'] + result.counts['changed']:,} sent, {result.batches_sent} batch(es)")
        finally:
            bus.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
