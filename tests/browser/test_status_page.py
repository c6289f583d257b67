"""The status page as headless Chromium renders it, served by the local Function App HTTP server."""
from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from html.parser import HTMLParser
from pathlib import Path
from typing import Optional

import pytest

from tests.status.serving import serve_status
from tests.status.sample import MARKUP_NAME, fill_sample_state, open_store

pytestmark = pytest.mark.browser

KEY = "browser-test-key"
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync")


# --- a tiny DOM of Chromium's dump ------------------------------------------------------------
class Node:
    def __init__(self, tag: str, attrs: dict[str, Optional[str]], parent: Optional["Node"]):
        self.tag, self.attrs, self.parent, self.children = tag, attrs, parent, []

    def text(self) -> str:
        return "".join(c if isinstance(c, str) else c.text() for c in self.children)

    def find_all(self, tag: str, **attrs: str) -> list["Node"]:
        found = []
        for child in self.children:
            if isinstance(child, Node):
                if child.tag == tag and all(child.attrs.get(k) == v for k, v in attrs.items()):
                    found.append(child)
                found.extend(child.find_all(tag, **attrs))
        return found

    def classes(self) -> set[str]:
        return set((self.attrs.get("class") or "").split())


class DomBuilder(HTMLParser):
    VOID = {"meta", "link", "input", "br", "img", "hr", "col", "source", "wbr", "area", "base", "embed"}

    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.root = self.current = Node("#document", {}, None)

    def handle_starttag(self, tag, attrs):
        node = Node(tag, dict(attrs), self.current)
        self.current.children.append(node)
        if tag not in self.VOID:
            self.current = node

    def handle_endtag(self, tag):
        node = self.current
        while node is not None and node.tag != tag:
            node = node.parent
        if node is not None and node.parent is not None:
            self.current = node.parent

    def handle_data(self, data):
        self.current.children.append(data)


def parse(dom: str) -> Node:
    builder = DomBuilder()
    builder.feed(dom)
    return builder.root


def squash(text: str) -> str:
    return " ".join(text.split())


# --- Chromium --------------------------------------------------------------------------------
def chromium() -> str:
    path = shutil.which("chromium") or (CHROMIUM if os.access(CHROMIUM, os.X_OK) else None)
    if path is None:
        pytest.fail("Chromium is missing: the status page test needs Debian's `chromium` "
                    "(`make test` installs it with apt-get; or run `sudo apt-get install chromium`).")
    return path


def run_chromium(url: str, work: Path, *options: str) -> str:
    profile = tempfile.mkdtemp(prefix="chromium-profile-", dir=work)
    result = subprocess.run([chromium(), *CHROMIUM_FLAGS, f"--user-data-dir={profile}", *options, url],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, f"chromium failed ({result.returncode}): {result.stderr[-2000:]}"
    return result.stdout


@pytest.fixture(scope="module")
def work(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("status-page")


@pytest.fixture(scope="module")
def server(work):
    store = open_store(work / "state.db")
    fill_sample_state(store)
    with serve_status(store, KEY) as running:
        yield running


@pytest.fixture(scope="module")
def page(server, work) -> Node:
    return parse(run_chromium(server.url("status/page", with_key=True), work, "--dump-dom"))


def dossier_cards(page: Node) -> dict[str, Node]:
    cards = {}
    for article in page.find_all("article"):
        title = squash(article.find_all("h3")[0].text())
        cards[title] = article
    return cards


def incident_rows(container: Node) -> list[list[str]]:
    rows = []
    for table in container.find_all("table"):
        if squash(table.find_all("caption")[0].text()).startswith("Incidents"):
            body = table.find_all("tbody")[0]
            rows += [[squash(td.text()) for td in tr.find_all("td")] for tr in body.find_all("tr")]
    return rows


def test_the_page_shows_every_dossier_and_which_is_deactivated(page):
    cards = dossier_cards(page)
    assert set(cards) == {f"{MARKUP_NAME} (BIJOU · Sage 100)", "Archives 2019 (ARCHIVE · Sage 100)",
                          "Nouvelle société (NEUF · Sage 100)"}
    archive = cards["Archives 2019 (ARCHIVE · Sage 100)"]
    badges = {squash(b.text()) for b in archive.find_all("span") if "badge" in b.classes()}
    assert badges == {"Désactivé"}
    assert "inactive" in archive.classes()
    bijou = cards[f"{MARKUP_NAME} (BIJOU · Sage 100)"]
    assert {squash(b.text()) for b in bijou.find_all("span") if "badge" in b.classes()} == {"Actif", "À surveiller"}
    assert "Aucune synchronisation pour l'instant." in squash(cards["Nouvelle société (NEUF · Sage 100)"].text())


def test_markup_in_data_is_shown_as_text_and_never_runs(page):
    assert squash(page.find_all("title")[0].text()) == "État de synchronisation — Bijoux & Co"
    assert page.find_all("img") == [] and page.find_all("script") == [] and page.find_all("b") == []
    bijou = next(card for title, card in dossier_cards(page).items() if "BIJOU" in title)
    assert squash(bijou.find_all("h3")[0].text()).startswith("Bijouterie <img src=x onerror=document.title='pwned'>")
    messages = [row[3] for row in incident_rows(bijou)]
    assert "Le nom <b>Dupont & Fils</b> dépasse 60 caractères" in messages


def test_incidents_invitations_runs_and_group_incidents(page):
    bijou = next(card for title, card in dossier_cards(page).items() if "BIJOU" in title)
    rows = incident_rows(bijou)
    assert [row[1] for row in rows] == ["CLT001|2", "ART/01", "CL-42", "JDUPONT"]
    assert rows[0][:3] == ["Contact", "CLT001|2", "Création"]
    assert rows[0][4:] == ["23/11/2025 08:00:00", "23/11/2025 10:46:00", "2", "Ouvert", "non"]
    assert rows[1][-1] == "oui, nouvel essai le 23/11/2025 10:15:00"
    invites = [s for s in bijou.find_all("section") if "invites" in s.classes()]
    assert len(invites) == 1 and "JDUPONT" in invites[0].text()
    runs = next(t for t in bijou.find_all("table") if "Dernières synchronisations" in t.find_all("caption")[0].text())
    first_run = [td.text().strip() for td in runs.find_all("tbody")[0].find_all("tr")[-1].find_all("td")]
    assert first_run[:6] == ["23/11/2025 09:00:00", "23/11/2025 09:05:30", "5 min 30 s", "Sage → SSM",
                             "Réussie", "oui"]
    assert first_run[6] == "1\u202f250"
    facts = {squash(dt.text()): squash(dd.text())
             for dt, dd in zip(bijou.find_all("dt"), bijou.find_all("dd"))}
    assert facts["Retard"] == "14 min 00 s"
    assert facts["Dernière synchronisation réussie"] == "23/11/2025 10:46:00"
    assert facts["Incidents ouverts"] == "4"
    group = next(s for s in page.find_all("section") if s.attrs.get("aria-labelledby") == "group-title")
    assert [row[1] for row in incident_rows(group)] == ["INCONNU:CL9"]
    header = squash(page.find_all("header")[0].text())
    assert "état au 23/11/2025 11:00:00 (heure de Paris)" in header


def test_the_filter_form_is_a_labelled_get_form_keeping_the_key(page):
    form = page.find_all("form")[0]
    assert form.attrs.get("method") == "get"
    hidden = form.find_all("input", type="hidden")
    assert [(h.attrs["name"], h.attrs["value"]) for h in hidden] == [("code", KEY)]
    labelled = {label.attrs["for"] for label in form.find_all("label")}
    assert labelled == {s.attrs["id"] for s in form.find_all("select")}
    assert {s.attrs["name"] for s in form.find_all("select")} == {"dossier", "entity", "state"}


def test_filtering_on_contacts_narrows_the_incidents(server, work):
    page = parse(run_chromium(server.url("status/page?entity=contact&state=all", with_key=True), work, "--dump-dom"))
    bijou = next(card for title, card in dossier_cards(page).items() if "BIJOU" in title)
    assert [(row[1], row[7]) for row in incident_rows(bijou)] == [("CLT001|2", "Ouvert"), ("CLT002|1", "Résolu")]
    archive = next(card for title, card in dossier_cards(page).items() if "ARCHIVE" in title)
    assert incident_rows(archive) == []
    assert "Aucun incident pour l'entité Contact." in squash(archive.text())
    selected = {s.attrs["name"]: [o.attrs["value"] for o in s.find_all("option") if "selected" in o.attrs]
                for s in page.find_all("select")}
    assert selected == {"dossier": [""], "entity": ["contact"], "state": ["all"]}


def test_without_the_key_the_page_is_refused(server, work):
    dom = run_chromium(server.url("status/page"), work, "--dump-dom")
    assert "Unauthorized" in dom and "Dossiers" not in dom


def test_screenshot(server, work):
    shot = work / "status-page.png"
    run_chromium(server.url("status/page", with_key=True), work, f"--screenshot={shot}", "--window-size=1280,900")
    data = shot.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 20_000
