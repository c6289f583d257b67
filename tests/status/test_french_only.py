"""No English sentence reaches an administrator: the catalogue, the rendered page and the JSON
`message` fields of a group holding every incident and journal sentence the connector can write.

English is spotted by common English words standing alone (French has its own words for them);
quotations « … » (another system's words, data) and setting names in backticks or brackets are
not sentences of ours and are left out. Every JSON message also carries its catalogue code.
"""
from __future__ import annotations

import json
import re
from html.parser import HTMLParser

import azure.functions as func
import pytest

from functions import status_http
from local.status_server import FunctionHttpServer
from shared.messages import CATALOGUE
from shared.status.page import render_status_page
from shared.status.report import IncidentStateFilter, StatusQuery, StatusReader
from tests.status.rich_sample import (INCIDENT_PREFIXES, JOURNAL_PREFIXES, NOW, open_rich_store,
                                      sample_text, walked_codes)

ENGLISH_WORDS = frozenset("""
the and is are was were be been being not could would should will shall can cannot does did has have had
with from which this that these those there their its it of to for by yet again only into than then
also because any all some more such other what who while until when where after before must here
record records sent tried failed deleted created updated synced unknown missing invalid error found
please check settings connection answer answered refused already nothing something every each
""".split())
QUOTED = re.compile(r"«[^»]*»|`[^`]*`|--[\w-]+|\[[^\]]*\]|\([a-z_]+(?: [a-z_]+)*\)|https?://\S+|[\w.+-]+@[\w.-]+")
WORD = re.compile(r"[\w'’]+")


def english_words(sentence: str) -> list[str]:
    """The English words of `sentence`, quotations and setting names left out."""
    bare = QUOTED.sub(" ", sentence)
    words = [w for w in WORD.findall(bare) if "_" not in w and not any(c.isdigit() for c in w)]  # CO_No, DL_No
    return [w for w in words if w.lower().strip("'’") in ENGLISH_WORDS]


def test_the_detector_spots_english_and_spares_french():
    assert english_words("The account 'C001' could not be sent to Sales Management.") == \
        ["The", "could", "not", "be", "sent", "to"]
    assert english_words("SSM a refusé le compte : « The field is required » ; réglez [ssm] admin_user_email.") == []
    assert english_words("Le tiers « C001 » a été modifié dans Sage et dans SSM ; la valeur de Sage est gardée.") == []


@pytest.mark.parametrize("code", sorted(CATALOGUE))
def test_every_catalogue_sentence_is_french(code):
    template = re.sub(r"\{[^}]*\}", " ", CATALOGUE[code])
    assert english_words(template) == [], f"{code}: {CATALOGUE[code]}"


class VisibleText(HTMLParser):
    """The text a person reads: element text and labels, not the style sheet."""

    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self._skip = 0

    def handle_starttag(self, tag, attrs):
        if tag in ("style", "script"):
            self._skip += 1
        self.parts += [v for k, v in attrs if k in ("aria-label", "title", "alt", "placeholder") and v]

    def handle_endtag(self, tag):
        if tag in ("style", "script"):
            self._skip -= 1

    def handle_data(self, data):
        if not self._skip and data.strip():
            self.parts.append(data.strip())


@pytest.fixture(scope="module")
def rich(tmp_path_factory):
    store = open_rich_store(tmp_path_factory.mktemp("rich") / "state.db")
    yield StatusReader(store, group="Bijoux & Co", clock=lambda: NOW)
    store.close()


def messages_of(data) -> list[dict]:
    """Every JSON object of `data` holding a `message` (incidents, journal lines, runs)."""
    found = []
    if isinstance(data, dict):
        if "message" in data and data["message"]:
            found.append(data)
        for value in data.values():
            found += messages_of(value)
    elif isinstance(data, list):
        for value in data:
            found += messages_of(value)
    return found


def test_the_sample_holds_every_incident_and_journal_sentence(rich):
    report = rich.report(StatusQuery(state=IncidentStateFilter.ALL, journal=500, incidents=5000))
    shown = {i.message for d in report.dossiers for i in d.incidents} | {e.message for d in report.dossiers
                                                                          for e in d.journal}
    assert len(report.dossiers) == 3
    assert [c for c in walked_codes(INCIDENT_PREFIXES + JOURNAL_PREFIXES) if sample_text(c) not in shown] == []
    assert {"run-start", "run-end"} <= {e.event for d in report.dossiers for e in d.journal}
    assert {r.direction for d in report.dossiers for r in d.runs} == {"sage_to_ssm", "ssm_to_sage"}
    assert all(len(d.commands) == 2 for d in report.dossiers)


def test_no_english_in_the_json_messages_and_every_one_has_its_code(rich):
    data = json.loads(rich.report(StatusQuery(state=IncidentStateFilter.ALL, journal=500,
                                              incidents=5000)).model_dump_json())
    found = messages_of(data)
    assert len(found) > 150
    fragments = {sample_text(code) for code in CATALOGUE if not re.search(r"[^\W\d_]{3}", re.sub(
        r"\{[^}]*\}", "", CATALOGUE[code]))}        # "{label} {value}": a piece of a sentence, no code of its own
    for item in found:
        assert english_words(item["message"]) == [], item["message"]
        assert item.get("code") in CATALOGUE or item["message"] in fragments, item["message"]
    assert sum(item["code"] is not None for item in found) > 0.95 * len(found)


def test_no_english_on_the_page(rich):
    for query in (StatusQuery(state=IncidentStateFilter.ALL, journal=500, incidents=5000),
                  StatusQuery(dossier="ORFEVRE", run="ORFEVRE-run-1"), StatusQuery(dossier="_group")):
        parser = VisibleText()
        parser.feed(render_status_page(rich.report(query), key="k"))
        for part in parser.parts:
            assert english_words(part) == [], part


def test_the_json_errors_are_french_with_their_code(rich):
    status_http.use_reader(rich)
    app = func.FunctionApp()
    app.register_functions(status_http.bp)
    try:
        with FunctionHttpServer(app, function_key="k") as server:
            import httpx
            bad = httpx.get(server.url("status?state=perhaps", with_key=True))
            unknown = httpx.get(server.url("status/dossiers/NOPE", with_key=True))
    finally:
        status_http.use_reader(None)
    assert (bad.status_code, unknown.status_code) == (400, 404)
    for body in (bad.json(), unknown.json()):
        assert english_words(body["error"]) == [] and body.get("code") in CATALOGUE, body
