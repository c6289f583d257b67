"""The HTML of the status page: escaping, French formats, empty states."""
from __future__ import annotations

import datetime as dt

import pytest

from shared.state.records import RUN_COUNTERS
from shared.status.page import COUNT_LABELS, format_datetime, format_duration, render_status_page
from shared.status.report import GROUP_INCIDENTS_DOSSIER, IncidentStateFilter, StatusQuery, StatusReader
from tests.status.sample import NOW, open_store


@pytest.mark.parametrize("seconds, text", [
    (None, "—"), (0, "0 s"), (44.6, "45 s"), (125, "2 min 05 s"), (3 * 3600 + 12 * 60 + 9, "3 h 12 min"),
    (2 * 86400 + 4 * 3600, "2 j 4 h"), (86400, "1 j"), (-3, "0 s"),
])
def test_durations_in_french(seconds, text):
    assert format_duration(seconds) == text


def test_dates_in_paris_time_summer_and_winter():
    assert format_datetime(dt.datetime(2025, 1, 15, 23, 30, tzinfo=dt.timezone.utc)) == "16/01/2025 00:30:00"
    assert format_datetime(dt.datetime(2025, 7, 15, 23, 30, tzinfo=dt.timezone.utc)) == "16/07/2025 01:30:00"
    assert format_datetime(None) == "—"


def test_every_run_counter_has_a_label():
    assert list(COUNT_LABELS) == list(RUN_COUNTERS)


def test_an_empty_group_says_so(tmp_path):
    store = open_store(tmp_path / "state.db")
    page = render_status_page(StatusReader(store, group="Vide", clock=lambda: NOW).report())
    assert "Aucun dossier n'est encore connu de ce groupe" in page
    assert "Incidents du groupe" not in page
    store.close()


def test_every_data_field_is_escaped(reader, store):
    hostile = '"><script>alert(1)</script>'
    store.record_incident("BIJOU", hostile, hostile, hostile, hostile, detail=hostile)
    store.record_incident(GROUP_INCIDENTS_DOSSIER, hostile, hostile, hostile, hostile)
    page = render_status_page(reader.report(StatusQuery(state=IncidentStateFilter.ALL)), key=hostile)
    assert "<script" not in page
    assert page.count("&quot;&gt;&lt;script&gt;alert(1)&lt;/script&gt;") >= 8


def test_unknown_dossier_filter_and_group_only_views(reader):
    unknown = render_status_page(reader.report(StatusQuery(dossier="NOPE<")))
    assert "Aucun dossier « NOPE&lt; » dans ce groupe." in unknown
    group_only = render_status_page(reader.report(StatusQuery(dossier=GROUP_INCIDENTS_DOSSIER)))
    assert "INCONNU:CL9" in group_only and "Vue d'ensemble" not in group_only
    assert "Vue d'ensemble" in render_status_page(reader.report())


def test_json_link_keeps_the_filters_and_the_key(reader):
    page = render_status_page(reader.report(StatusQuery(entity="contact", state=IncidentStateFilter.ALL)), key="k")
    assert 'href="../status?entity=contact&amp;state=all&amp;code=k"' in page


def test_a_dead_lettered_change_shows_when_it_is_tried_again(reader):
    page = render_status_page(reader.report(StatusQuery(entity="product")))
    replay_at = by_key(reader.report(StatusQuery(entity="product")))["ART/01"].replay_at
    assert f"oui, nouvel essai le <time datetime=\"{replay_at.isoformat()}\">{format_datetime(replay_at)}</time>" \
        in page


def by_key(report):
    return {i.key: i for d in report.dossiers for i in d.incidents}
