"""A Sage 50 FR exchange folder for the tests, written from the declared layouts
(`agent/sage50/layouts.toml`) with awkward data: tabs and line breaks inside text, CP1252
characters, DDMMYYYY dates, comma decimals. `import_all` plays Sage 50's parametrable import:
it takes the agent's import files into the export rows and writes the exports again, newer."""
from __future__ import annotations

import datetime as dt
import os
import time
from decimal import Decimal
from pathlib import Path
from typing import Optional

from agent.sage50.layout import Layouts, load_layouts, read_file, write_records
from agent.sage50.reader import key_of

CLIENTS = [
    {"Code": "C0001", "Nom": "Bijouterie L'Œil d'Or", "Prospect": False, "Adresse 1": "12, rue de l’Église",
     "Adresse 2": "Bâtiment B\r\n2e étage", "Code Postal": "25000", "Ville": "Besançon", "Pays": "France",
     "Téléphone": "03 81 00 00 01", "E-mail": "contact@oeildor.fr", "SIRET": "12345678900011",
     "Représentant Client": "R01", "Taux Remise": Decimal("2.5"), "Crédit accordé": Decimal("15000.5"),
     "Bloqué": False, "Dernière modification Client": dt.date(2026, 11, 30)},
    {"Code": "C0002", "Nom": "Atelier\tMartin & \"Fils\"", "Prospect": False, "Ville": "Lyon",
     "Taux Remise": Decimal("0"), "Bloqué": False},
    {"Code": "P0001", "Nom": "Perles de Saône", "Prospect": True, "Ville": "Chalon-sur-Saône",
     "Représentant Client": "R01", "Bloqué": False},
]
CONTACTS = [
    {"Code client": "C0001", "Nom": "Dupont", "Prénom": "Jeanne", "Fonction": "Gérante",
     "E-mail": "jeanne@oeildor.fr", "Téléphone": "06 00 00 00 01"},
    {"Code client": "C0001", "Nom": "Béranger", "Prénom": "Noël", "Fonction": "Acheteur\tbijoux"},
    {"Code client": "C0002", "Nom": "Martin", "Prénom": "Zoé"},
]
REPS = [
    {"Code": "R01", "Nom": "Rémi Leclerc", "Fonction": "Commercial", "E-mail": "remi.leclerc@example.fr"},
]
FAMILIES = [
    {"Code": "BAG", "Libellé": "Bagues"},
    {"Code": "COL", "Libellé": "Colliers & pendentifs"},
]
ARTICLES = [
    {"Code": "BAG-OR-18", "Désignation courte": "Bague or 18 carats", "Famille": "BAG",
     "Prix de vente HT": Decimal("1234.5"), "Prix d'achat HT": Decimal("600"), "Stock réel": Decimal("3.25"),
     "Stock disponible": Decimal("2"), "Article Inutilisé": False},
    {"Code": "COL-PERLE", "Désignation courte": "Collier perles — 45 cm", "Famille": "COL",
     "Prix de vente HT": Decimal("89.9"), "Stock réel": Decimal("12"), "Stock disponible": Decimal("12"),
     "Article Inutilisé": False},
]
PIECES = [
    ("E", {"Type de ligne": "E", "Type de pièce": "Devis", "N° pièce": "DE00001", "Date Pièce": dt.date(2026, 11, 2),
           "Client": "C0001", "Référence de la pièce": "Salon d'été", "Représentant": "R01",
           "Total HT": Decimal("1324.4"), "Total TTC": Decimal("1589.28")}),
    ("L", {"Type de ligne": "L", "N° pièce": "DE00001", "Ordre": 1, "Code de l'article": "BAG-OR-18",
           "Description": "Bague or 18 carats\r\ngravure :\t« Pour toujours »", "Qté": Decimal("1"),
           "Prix Uni. HT": Decimal("1234.5"), "Tx Remise": Decimal("0"), "Mt Tot HT": Decimal("1234.5"),
           "Mt Tot TTC": Decimal("1481.4")}),
    ("L", {"Type de ligne": "L", "N° pièce": "DE00001", "Ordre": 2, "Code de l'article": "COL-PERLE",
           "Description": "Collier perles — 45 cm", "Qté": Decimal("1"), "Prix Uni. HT": Decimal("89.9"),
           "Mt Tot HT": Decimal("89.9"), "Mt Tot TTC": Decimal("107.88")}),
    ("E", {"Type de ligne": "E", "Type de pièce": "Facture", "N° pièce": "FA00001", "Date Pièce": dt.date(2026, 11, 15),
           "Client": "C0002", "Total HT": Decimal("179.8"), "Total TTC": Decimal("215.76")}),
    ("L", {"Type de ligne": "L", "N° pièce": "FA00001", "Ordre": 1, "Code de l'article": "COL-PERLE",
           "Description": "Collier perles — 45 cm", "Qté": Decimal("2,5".replace(",", ".")),
           "Prix Uni. HT": Decimal("89.9"), "Mt Tot HT": Decimal("224.75")}),
    ("E", {"Type de ligne": "E", "Type de pièce": "Bon de livraison", "N° pièce": "BL00001", "Client": "C0002"}),
]


class ExchangeFolder:
    """The exports of one Sage 50 FR dossier, kept as rows and written by the layouts."""

    def __init__(self, folder: Path, layouts: Optional[Layouts] = None):
        self.folder = folder
        self.folder.mkdir(parents=True, exist_ok=True)
        self.layouts = layouts or load_layouts()
        self.rows: dict[str, list] = {
            "clients": [dict(r) for r in CLIENTS], "contacts": [dict(r) for r in CONTACTS],
            "representants": [dict(r) for r in REPS], "familles": [dict(r) for r in FAMILIES],
            "articles": [dict(r) for r in ARTICLES], "pieces": [(t, dict(r)) for t, r in PIECES]}
        self.exported_at = time.time() - 60

    def path(self, name: str) -> Path:
        return self.folder / self.layouts.files[name].file

    def export(self, *names: str, age_s: float = 0.0) -> None:
        """Write the exports (all of them by default), dated `age_s` seconds ago and after the last."""
        self.exported_at = time.time() - age_s if age_s else max(self.exported_at + 1, time.time())
        for name in names or tuple(self.rows):
            layout = self.layouts.files[name]
            rows = self.rows[name] if name == "pieces" else [("", row) for row in self.rows[name]]
            self.path(name).write_bytes(write_records(rows, layout, self.layouts.format))
            os.utime(self.path(name), (self.exported_at, self.exported_at))

    def write_raw(self, name: str, data: bytes, *, age_s: float = 0.0) -> None:
        self.path(name).write_bytes(data)
        moment = time.time() - age_s if age_s else max(self.exported_at + 1, time.time())
        self.exported_at = max(self.exported_at, moment)
        os.utime(self.path(name), (moment, moment))

    def row(self, name: str, **match) -> dict:
        return next(r for r in self.rows[name] if all(r.get(k) == v for k, v in match.items()))

    def imports(self) -> list[Path]:
        folder = self.folder / "import"
        return sorted(folder.glob("*.txt")) if folder.is_dir() else []

    def read_import(self, path: Path):
        layout = next(l for l in self.layouts.files.values() if path.name.startswith(Path(l.file).stem + "-"))
        return layout, read_file(path.read_bytes(), layout, self.layouts.format, file=path.name)

    def import_all(self) -> None:
        """Sage 50 takes every import file in: a record of the same key replaced, others added;
        the import file moves aside and the exports are written again."""
        for path in self.imports():
            layout, records = self.read_import(path)
            if layout.name == "pieces":
                self.rows["pieces"] += [(r.type, dict(r.values)) for r in records]
            else:
                for record in records:
                    key = key_of(layout, record.values)
                    kept = [r for r in self.rows[layout.name] if key_of(layout, r) != key]
                    self.rows[layout.name] = kept + [dict(record.values)]
            done = self.folder / "import" / "traités"
            done.mkdir(exist_ok=True)
            path.rename(done / path.name)
        self.export()
