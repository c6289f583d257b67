"""The tenant check against the SSM simulator over HTTP: what a complete tenant, a tenant lacking a
status, an admin user, an account type or a branch, and odd settings give; `fix` creates account
types and nothing else. Assertions are on codes and on the tenant's records, never on wording."""
from __future__ import annotations

import httpx
import pytest

from shared.config import Settings
from shared.ssm import contract
from shared.ssm.tenant import (ACCOUNT_TYPES, QUOTE_STATUS_LABELS, STATUSES, Severity, check_tenant, fix,
                               matching_plan)


def settings_for(sim, *, dossiers=({"id": "BIJOU", "name": "Bijouterie"},), **ssm) -> Settings:
    values = {"base_url": sim.base_url, "public_key": sim.public_key, "private_key": sim.private_key,
              "admin_user_email": sim.admin_email, "rate_limit_per_s": 13, **ssm}
    return Settings.model_validate({
        "group": "bijou", "ssm": values,
        "dossiers": [{"odbc": "Driver=SQLite3;Database=x.db", **d} for d in dossiers]})


def by_code(report) -> dict[str, list]:
    found: dict[str, list] = {}
    for finding in report.findings:
        found.setdefault(finding.code, []).append(finding)
    return found


def raw_call(sim, method: str, path: str, body: dict | None = None) -> httpx.Response:
    """A documented call the client does not make (account types are changed at /list/accountTypes/{id})."""
    with httpx.Client(base_url=sim.base_url + "/", timeout=5) as http:
        token = http.post("login", json={"username": sim.public_key, "password": sim.private_key}).json()["token"]
        return http.request(method, path.lstrip("/"), json=body, headers={"X-Session-Key": token})


def rename_status(client, sim, label: str, new_label: str) -> None:
    client.update(STATUSES, sim.status_ids[label], {"descriptionFR": new_label, "descriptionEN": new_label})


def live_labels(sim, resource: str) -> list[str]:
    return [r.get("descriptionFR") for r in sim.records(resource) if not r.get("deleted")]


def test_a_complete_tenant_has_nothing_blocking(sim, client):
    report = check_tenant(client, settings_for(sim))

    assert not report.blocking, [f.text for f in report.findings if f.severity is Severity.BLOCKING]
    assert report.codes(Severity.WARNING) == []
    found = by_code(report)
    admin = found["tenant.admin.found"][0]
    assert admin.dossier is None and admin.message.values["id"] == sim.admin_id
    branch = found["tenant.branch.chosen"][0]
    assert branch.dossier == "BIJOU" and branch.message.values["id"] == sim.branch_id
    assert found["tenant.rate.plan"][0].severity is Severity.INFO
    assert report.dossiers == ("BIJOU",)
    assert sim.call_count("POST") == 1 and sim.call_count(writes_only=True) == 0      # the login only


def test_every_call_of_the_check_is_one_the_contract_documents(sim, client):
    check_tenant(client, settings_for(sim))

    calls = [c for c in sim.calls if c.resource != "login"]
    assert {c.method for c in calls} == {"GET"}
    assert [(c.path, contract.request_violations(c.request)) for c in calls
            if contract.request_violations(c.request)] == []
    paths = {c.path.rsplit("/api/v4", 1)[-1] for c in calls}
    assert {"/users", "/branches", "/accountTypes", "/salesorderStatuses", "/currencies", "/countries",
            "/extrafields/products/schema", "/extrafields/accounts/schema",
            "/extrafields/salesorders/schema"} <= paths


def test_a_missing_invoice_status_blocks_and_names_the_label_to_create_by_hand(sim, client):
    rename_status(client, sim, "Facture", "Avoir")

    report = check_tenant(client, settings_for(sim))

    assert report.blocking
    missing = by_code(report)["tenant.status.missing"]
    assert [(f.severity, f.dossier, f.message.values["label"]) for f in missing] == [
        (Severity.BLOCKING, None, "Facture")]
    assert "« Facture »" in missing[0].text


def test_a_missing_or_unset_admin_user_blocks(sim, client):
    absent = check_tenant(client, settings_for(sim, admin_user_email="nobody@bijou.example"))
    unset = check_tenant(client, settings_for(sim, admin_user_email=None))

    assert absent.blocking and unset.blocking
    assert by_code(absent)["tenant.admin.missing"][0].severity is Severity.BLOCKING
    assert by_code(unset)["tenant.admin.not_configured"][0].severity is Severity.BLOCKING
    assert "tenant.admin.found" not in absent.codes() + unset.codes()


def test_the_admin_user_is_matched_by_email_whatever_its_case(sim, client):
    report = check_tenant(client, settings_for(sim, admin_user_email=sim.admin_email.upper()))
    assert "tenant.admin.found" in report.codes() and not report.blocking


def test_an_inactive_admin_user_blocks(sim, client):
    sim.seed_user("Ancien", "Admin", "ancien.admin@bijou.example", is_active=False)
    report = check_tenant(client, settings_for(sim, admin_user_email="ancien.admin@bijou.example"))
    assert by_code(report)["tenant.admin.inactive"][0].severity is Severity.BLOCKING


def test_fix_creates_the_missing_account_type_and_nothing_else(sim, client):
    answer = raw_call(sim, "DELETE", f"/list/accountTypes/{sim.account_type_ids['Prospect']}")
    assert answer.status_code == 200, answer.text
    rename_status(client, sim, "Commande", "Commande ancienne")
    before = check_tenant(client, settings_for(sim))
    assert [f.message.values["label"] for f in by_code(before)["tenant.account_type.missing"]] == ["Prospect"]
    statuses_before = sim.records(STATUSES)
    sim.reset_calls()

    after = fix(client, before)

    writes = [(c.method, c.resource) for c in sim.calls if c.method in ("POST", "PUT", "DELETE")
              and c.resource != "login"]
    assert writes == [("POST", ACCOUNT_TYPES)]
    assert sorted(live_labels(sim, ACCOUNT_TYPES)) == ["Client", "Prospect"]
    assert sim.records(STATUSES) == statuses_before
    assert [a.code for a in after.actions] == ["tenant.account_type.created"]
    assert "tenant.account_type.missing" not in after.codes()
    assert after.blocking and after.codes(Severity.BLOCKING) == ["tenant.status.missing"]


def test_fix_on_a_complete_tenant_writes_nothing(sim, client):
    after = fix(client, check_tenant(client, settings_for(sim)))

    assert sim.call_count(writes_only=True) == 0
    assert [a.code for a in after.actions] == ["tenant.fix.nothing"] and not after.blocking


def test_a_rate_that_is_no_documented_plan_is_a_warning(sim, client):
    odd = check_tenant(client, settings_for(sim, rate_limit_per_s=10))
    starter = check_tenant(client, settings_for(sim, rate_limit_per_s=50 / 60))

    assert [(f.code, f.severity) for f in odd.findings if f.code.startswith("tenant.rate")] == [
        ("tenant.rate.unknown", Severity.WARNING)]
    assert not odd.blocking
    assert "tenant.rate.plan" in starter.codes()
    assert (matching_plan(4.0), matching_plan(13), matching_plan(0.8333), matching_plan(10)) == ("4", "13", "starter",
                                                                                                 None)


def test_a_user_language_the_api_refuses_blocks(sim, client):
    report = check_tenant(client, settings_for(sim, user_language="FR"))
    assert by_code(report)["tenant.language.invalid"][0].severity is Severity.BLOCKING


def test_each_dossier_gets_its_branch_and_a_missing_one_blocks(sim, client):
    settings = settings_for(sim, branch="Siège", dossiers=(
        {"id": "BIJOU"}, {"id": "LYON", "ssm_branch": "Agence de Lyon"}, {"id": "OLD", "active": False}))

    report = check_tenant(client, settings)

    chosen = [f for f in report.about("BIJOU") if f.code.startswith("tenant.branch")]
    assert [(f.code, f.message.values.get("id")) for f in chosen] == [("tenant.branch.chosen", sim.branch_id)]
    lyon = [f for f in report.about("LYON") if f.code.startswith("tenant.branch")]
    assert [(f.code, f.severity, f.message.values["branch"]) for f in lyon] == [
        ("tenant.branch.missing", Severity.BLOCKING, "Agence de Lyon")]
    assert [f.code for f in report.about("OLD")] == ["tenant.dossier.inactive"]
    assert report.dossiers == ("BIJOU", "LYON")


def test_quote_statuses_are_checked_per_sage_product_as_warnings(sim, client):
    rename_status(client, sim, "Brouillon – Validé", "Brouillon relu")
    settings = settings_for(sim, dossiers=({"id": "CENT", "product": "sage100"},
                                           {"id": "CINQ", "product": "sage50"}))

    report = check_tenant(client, settings)

    def missing(dossier):
        return [f.message.values["label"] for f in report.about(dossier) if f.code == "tenant.quote_status.missing"]
    assert missing("CENT") == ["Brouillon – Validé"]
    assert missing("CINQ") == list(QUOTE_STATUS_LABELS["sage50"])
    assert {f.severity for f in report.findings if f.code == "tenant.quote_status.missing"} == {Severity.WARNING}
    assert not report.blocking


class ListsOnly:
    """A client serving fixed lists (for what the API cannot change on the simulator: currencies, countries)."""

    def __init__(self, sim, client, **lists):
        self.client = client
        self.lists = {name: list(client.list(name)) for name in ("users", "branches", "accountTypes",
                                                                 "salesorderStatuses", "currencies", "countries")}
        self.lists.update(lists)

    def list(self, resource):
        return iter(self.lists[resource])

    def custom_fields(self, resource):
        return frozenset()

    def schema(self, resource):
        return self.client.schema(resource)


def test_currency_and_france_are_looked_up_by_iso_code_among_live_entries(sim, client):
    complete = ListsOnly(sim, client)
    euro_deleted = [{**c, "deleted": True} if c.get("isoCode") == "EUR" else c for c in complete.lists["currencies"]]
    no_france = [c for c in complete.lists["countries"] if c.get("iso2") != "FR"]
    lacking = ListsOnly(sim, client, currencies=euro_deleted, countries=no_france)

    assert {"tenant.currency.missing", "tenant.country.missing"}.isdisjoint(
        check_tenant(complete, settings_for(sim)).codes())
    report = check_tenant(lacking, settings_for(sim))
    found = by_code(report)
    assert [f.severity for f in found["tenant.currency.missing"] + found["tenant.country.missing"]] == [
        Severity.WARNING, Severity.WARNING]
    assert not report.blocking


def test_custom_fields_are_listed(sim, client):
    sim.add_custom_field("products", "Z_SKU")
    report = check_tenant(client, settings_for(sim))
    listed = by_code(report)["tenant.custom_fields"]
    assert [(f.severity, f.message.values["names"]) for f in listed] == [
        (Severity.INFO, "Z_Brand, Z_SKU"), (Severity.INFO, "Z_Notes, Z_Segment")]   # with the tenant's own
    assert len(by_code(report)["tenant.custom_fields.none"]) == 1


def test_refused_keys_block_and_stop_the_check(sim, make_client):
    client = make_client(private_key="fm-priv-wrong")
    report = check_tenant(client, settings_for(sim))
    assert report.codes() == ["tenant.login.refused"] and report.blocking


def test_the_report_as_json_keeps_codes_severities_and_scopes(sim, client):
    rename_status(client, sim, "Facture", "Avoir")
    data = check_tenant(client, settings_for(sim)).to_dict()

    assert data["blocking"] is True and data["counts"]["bloquant"] == 1
    assert {"code": "tenant.status.missing", "severity": "bloquant", "dossier": None} in [
        {k: f[k] for k in ("code", "severity", "dossier")} for f in data["findings"]]


def test_fix_needs_the_settings_the_report_was_made_with(sim, client):
    report = check_tenant(client, settings_for(sim))
    with pytest.raises(ValueError):
        fix(client, type(report)(report.group, report.checked_at, report.findings, report.dossiers))
