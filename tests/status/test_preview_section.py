"""The realignment preview's page section: French words from the catalogue, data escaped."""
from __future__ import annotations

import datetime as dt

from shared.status.preview_section import render_preview_page, render_preview_section
from shared.sync.preview import AdoptionItem, Candidate, EntityPreview, Preview


def preview() -> dict:
    return Preview(
        dossier="BIJOU", at=dt.datetime(2026, 3, 2, 9, 30, tzinfo=dt.timezone.utc), first_load=True,
        entities=[EntityPreview(entity="account", label="Comptes", sage_records=3, create=1, adopt=1, held=1,
                                ssm_only=2),
                  EntityPreview(entity="order", label="Commandes", sage_records=4, create=4)],
        adoptions=[AdoptionItem(entity="account", sage_key="DUPRE", label="<script>x</script> 45000",
                                rule="name_postcode", rule_label="nom et code postal", status="ambiguous",
                                candidates=[Candidate(ssm_id=12, label="Dupré"), Candidate(ssm_id=13, label="DUPRE")])],
    ).model_dump(mode="json")


def test_the_section_shows_counts_and_ambiguous_matches_in_french_with_data_escaped():
    section = render_preview_section(preview(), "BIJOU")
    assert "Aperçu du premier chargement du dossier BIJOU (calculé le 02/03/2026 09:30 UTC)" in section
    assert "SSM : à reprendre" in section and "SSM : en attente de votre choix" in section
    assert "ambiguë : en attente de votre choix" in section and "n° SSM 13 « DUPRE »" in section
    assert "<script>" not in section and "&lt;script&gt;" in section
    assert "--bind ENTITÉ:CLÉ=N°SSM" in section
    orders = section[section.index("Commandes"):]
    assert "<td>—</td>" in orders.split("</tr>")[0]               # SSM's own orders are not read: no count


def test_without_a_preview_the_section_says_how_to_compute_one():
    page = render_preview_page(None, "BIJOU")
    assert page.startswith("<!DOCTYPE html>") and 'lang="fr"' in page
    assert "ssm-connector local --config FICHIER --dry-run --dossier BIJOU" in page
