"""An administrator's walk through the status page of a group of three dossiers, in headless
Chromium driven over the DevTools protocol (`--remote-debugging-pipe`): switch dossier, filter the
incidents by entity, read a French incident, open a run's journal. Each step clicks what the page
shows (links, the filter form) and keeps a screenshot in var/screenshots/status-page/ (printed)."""
from __future__ import annotations

import base64
import json
import os
import subprocess
import tempfile
from pathlib import Path
from typing import Any

import pytest

from tests.browser.test_status_page import CHROMIUM_FLAGS, chromium
from tests.status.serving import serve_status
from tests.status.rich_sample import DOSSIERS, open_rich_store
from tests.status.test_french_only import english_words

pytestmark = pytest.mark.browser

KEY = "navigation-test-key"
TIMEOUT_S = 60
SCREENSHOTS = Path(__file__).resolve().parents[2] / "var" / "screenshots" / "status-page"   # kept (var/ is ignored)


class DevTools:
    """Chromium with its DevTools protocol on a pipe (fd 3 in, fd 4 out, messages ending in NUL)."""

    def __init__(self, work: Path):
        to_chrome_r, self._to_chrome = os.pipe()
        self._from_chrome, from_chrome_w = os.pipe()

        def give_pipes() -> None:           # in the child, before exec: the pipes become fds 3 and 4
            os.dup2(to_chrome_r, 3)
            os.dup2(from_chrome_w, 4)

        profile = tempfile.mkdtemp(prefix="chromium-profile-", dir=work)
        self.process = subprocess.Popen(
            [chromium(), *CHROMIUM_FLAGS, "--remote-debugging-pipe", f"--user-data-dir={profile}",
             "--window-size=1280,1000", "about:blank"],
            pass_fds=(3, 4), preexec_fn=give_pipes, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        os.close(to_chrome_r)
        os.close(from_chrome_w)
        self._buffer = b""
        self._next_id = 0
        self.events: list[dict] = []
        page = next(t for t in self.call("Target.getTargets")["targetInfos"] if t["type"] == "page")
        self.session = self.call("Target.attachToTarget", targetId=page["targetId"], flatten=True)["sessionId"]
        self.call("Page.enable", session=True)

    def _read(self) -> dict:
        import select

        while b"\0" not in self._buffer:
            ready, _, _ = select.select([self._from_chrome], [], [], TIMEOUT_S)
            assert ready, "Chromium did not answer"
            chunk = os.read(self._from_chrome, 1 << 16)
            assert chunk, "Chromium closed its DevTools pipe"
            self._buffer += chunk
        message, self._buffer = self._buffer.split(b"\0", 1)
        return json.loads(message)

    def call(self, method: str, *, session: bool = False, **params: Any) -> dict:
        self._next_id += 1
        message = {"id": self._next_id, "method": method, "params": params}
        if session:
            message["sessionId"] = self.session
        os.write(self._to_chrome, json.dumps(message).encode() + b"\0")
        while True:
            answer = self._read()
            if answer.get("id") == self._next_id:
                assert "error" not in answer, f"{method}: {answer['error']}"
                return answer.get("result", {})
            self.events.append(answer)

    def wait_for(self, event: str) -> None:
        while not any(e.get("method") == event for e in self.events):
            self.events.append(self._read())

    def load(self, action) -> None:
        """Do `action` (which navigates) and wait until the new page has loaded."""
        self.events.clear()
        action()
        self.wait_for("Page.loadEventFired")

    def open(self, url: str) -> None:
        self.load(lambda: self.call("Page.navigate", session=True, url=url))

    def js(self, expression: str) -> Any:
        result = self.call("Runtime.evaluate", session=True, expression=expression, returnByValue=True)
        assert "exceptionDetails" not in result, result["exceptionDetails"]
        return result["result"].get("value")

    def click(self, selector: str) -> None:
        self.load(lambda: self.js(f"document.querySelector({json.dumps(selector)}).click()"))

    def screenshot(self, path: Path) -> Path:
        data = self.call("Page.captureScreenshot", session=True, format="png", captureBeyondViewport=True)["data"]
        path.write_bytes(base64.b64decode(data))
        return path

    def close(self) -> None:
        try:
            self.call("Browser.close")
        except (AssertionError, OSError):
            pass
        try:
            self.process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.process.kill()
        os.close(self._to_chrome)
        os.close(self._from_chrome)


@pytest.fixture(scope="module")
def work(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("status-navigation")


@pytest.fixture(scope="module")
def server(work):
    with serve_status(open_rich_store(work / "state.db"), KEY) as running:
        yield running


@pytest.fixture
def browser(work):
    devtools = DevTools(work)
    yield devtools
    devtools.close()


def cards(browser: DevTools) -> list[str]:
    return browser.js("[...document.querySelectorAll('article.dossier')].map(a => a.dataset.dossier)")


def incident_rows(browser: DevTools, dossier: str) -> list[list[str]]:
    return browser.js(f"""[...document.querySelectorAll('article[data-dossier="{dossier}"] table.incidents tbody tr')]
        .map(tr => [...tr.querySelectorAll('td')].map(td => td.innerText.trim()))""")


def test_switch_dossier_filter_by_entity_read_an_incident_and_open_a_run_journal(server, browser):
    shots = SCREENSHOTS
    shots.mkdir(parents=True, exist_ok=True)
    print(f"\nscreenshots of the status page: {shots}")

    # the whole group: three dossiers, the switcher names each
    browser.open(server.url("status/page", with_key=True))
    assert browser.js("document.title") == "État de synchronisation — Bijoux & Co"
    assert sorted(cards(browser)) == sorted(DOSSIERS)
    assert browser.js("[...document.querySelectorAll('nav.switcher a')].map(a => a.innerText)") == \
        ["Tous les dossiers"] + [f"{DOSSIERS[dossier]} ({dossier})" for dossier in sorted(DOSSIERS)]
    browser.screenshot(shots / "1-groupe.png")

    # switch to one dossier by its link
    browser.click('nav.switcher a[data-dossier="ORFEVRE"]')
    assert cards(browser) == ["ORFEVRE"]
    assert browser.js("document.querySelector('nav.switcher a[aria-current]').innerText") == \
        "Orfèvrerie Martin (ORFEVRE)"
    assert browser.js("document.querySelector('#filter-dossier').value") == "ORFEVRE"
    all_rows = incident_rows(browser, "ORFEVRE")
    assert {row[0] for row in all_rows} > {"Contact"}
    browser.screenshot(shots / "2-dossier.png")

    # filter the incidents by entity with the form
    browser.load(lambda: browser.js("document.querySelector('#filter-entity').value = 'contact';"
                                    "document.querySelector('form.filters button[type=submit]').click()"))
    rows = incident_rows(browser, "ORFEVRE")
    assert rows and {row[0] for row in rows} == {"Contact"} and len(rows) < len(all_rows)
    assert browser.js("location.search").count("entity=contact") == 1
    browser.screenshot(shots / "3-contacts.png")

    # read a French incident
    unexpected = next(row for row in rows if row[1] == "CT9|1")
    assert unexpected[3] == ("Une erreur inattendue a arrêté la synchronisation pour le contact « CT9|1 » ; "
                             "nouvel essai automatique.")
    assert all(english_words(row[3]) == [] for row in rows)

    # open the journal of the Sage → SSM run
    browser.click('article[data-dossier="ORFEVRE"] a.run-journal[data-run="ORFEVRE-run-1"]')
    caption = browser.js("document.querySelector('section.journal caption').innerText")
    assert caption.startswith("Journal de la synchronisation Sage → SSM du ")
    lines = browser.js("[...document.querySelectorAll('section.journal tbody tr')]"
                       ".map(tr => [...tr.querySelectorAll('td')].map(td => td.innerText.trim()))")
    events = [line[3] for line in lines]
    assert events[0] == "Fin" and events[-1] == "Début"
    assert lines[-1][4] == ("Début de la synchronisation Sage → SSM : réalignement, Sage fait foi (première "
                            "synchronisation de ce dossier).")
    assert lines[0][4].startswith("Fin de la synchronisation Sage → SSM : lus 120, créés 100, modifiés 15")
    assert all(english_words(line[4]) == [] for line in lines)
    assert browser.js("document.querySelector('table.runs tr.current').dataset.run") == "ORFEVRE-run-1"
    browser.screenshot(shots / "4-journal.png")

    for shot in sorted(shots.iterdir()):
        assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and shot.stat().st_size > 20_000, shot
