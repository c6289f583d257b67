"""The status shows each dossier's Sage collaborators (linked to an SSM user, to invite or create,
without e-mail) and the group's last tenant check with its date, in the JSON report and the page."""
from __future__ import annotations

import datetime as dt
import html
import json
import re

from shared.messages import Message, text
from shared.ssm.tenant import Finding, Severity, TenantReport
from shared.status.page import format_datetime, render_status_page
from shared.sync.binder import Binder
from tests.status.sample import NOW

CHECKED_AT = NOW - dt.timedelta(hours=5)


def add_collaborators(store) -> None:
    binder = Binder(store, "BIJOU", "user")
    binder.bind("JDUPONT", None, hash="h", base={"lastName": "Dupont", "email": "jean.dupont@bijou.example",
                                                 "_collaborator": {"first_name": "Jean", "last_name": "Dupont",
                                                                   "email": "jean.dupont@bijou.example"}})
    binder.bind("ADMIN", 4242, hash="h", base={"name": "Alice", "lastName": "Admin", "email": "alice@bijou.example"})
    binder.bind("SANS", None, hash="h", base={"_collaborator": {"first_name": "<b>Paul</b>", "last_name": "Sans",
                                                               "email": None}})


def save_check(store) -> TenantReport:
    report = TenantReport("Bijoux & Co", CHECKED_AT, (
        Finding(Message.of("tenant.status.missing", label="Facture"), Severity.BLOCKING),
        Finding(Message.of("tenant.rate.unknown", value="10"), Severity.WARNING),
        Finding(Message.of("tenant.branch.chosen", branch="Siège", id=12, how=text("tenant.branch.how.first")),
                Severity.INFO, "BIJOU"),
    ), ("BIJOU",))
    store.save_tenant_check(report.to_dict())
    return report


def by_id(report):
    return {d.id: d for d in report.dossiers}


def test_the_report_lists_each_dossiers_collaborators_by_key(reader, store):
    add_collaborators(store)

    dossiers = by_id(reader.report())

    assert [(c.key, c.state, c.ssm_id) for c in dossiers["BIJOU"].collaborators] == [
        ("ADMIN", "linked", 4242), ("JDUPONT", "to-create", None), ("SANS", "no-email", None)]
    assert dossiers["BIJOU"].collaborators[1].state_label == "à inviter/créer"
    assert dossiers["ARCHIVE"].collaborators == []


def test_the_report_carries_the_last_tenant_check(reader, store):
    assert reader.report().tenant_check is None
    saved = save_check(store)

    check = reader.report().tenant_check

    assert check.checked_at == CHECKED_AT and check.blocking is True
    assert [(f.code, f.severity, f.dossier) for f in check.findings] == [
        (f.code, f.severity.value, f.dossier) for f in saved.findings]
    data = json.loads(reader.report().model_dump_json())
    assert data["tenant_check"]["findings"][0]["code"] == "tenant.status.missing"
    assert [c["key"] for c in data["dossiers"][0]["collaborators"]] == []


def test_a_newer_check_replaces_the_older_one(reader, store):
    save_check(store)
    store.save_tenant_check(TenantReport("Bijoux & Co", NOW, (), ()).to_dict())

    check = reader.report().tenant_check

    assert check.checked_at == NOW and check.findings == [] and check.blocking is False


def test_the_page_shows_collaborators_and_the_dated_tenant_check(reader, store):
    add_collaborators(store)
    save_check(store)

    page = render_status_page(reader.report())

    section = page[page.index('<section class="tenant"'):page.index('aria-labelledby="dossiers-title"')]
    assert html.escape(text("status.tenant.checked_at", at=format_datetime(CHECKED_AT)), quote=True) in section
    assert html.escape(text("tenant.status.missing", label="Facture"), quote=True) in section
    assert re.search(r'badge error">bloquant<', section)
    card = page[page.index('id="dossier-0"'):page.index('id="dossier-1"')]
    table = card[card.index('<table class="collaborators">'):]
    table = table[:table.index("</table>")]
    rows = re.findall(r"<tr><td>(.*?)</td><td>(.*?)</td><td>(.*?)</td><td>(.*?)</td>", table)
    assert rows == [("ADMIN", "Alice Admin", "alice@bijou.example", "lié"),
                    ("JDUPONT", "Jean Dupont", "jean.dupont@bijou.example", "à inviter/créer"),
                    ("SANS", "&lt;b&gt;Paul&lt;/b&gt; Sans", "—", "sans e-mail")]
    assert "<b>Paul</b>" not in page


def test_the_page_says_when_no_tenant_check_was_made(reader):
    page = render_status_page(reader.report())
    assert html.escape(text("status.tenant.none"), quote=True) in page
