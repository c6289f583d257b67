"""SSM's account addresses as the contract declares them (W1's pages), a tenant that does not offer
them, and what the tenant check tells the administrator about a dossier's delivery addresses."""
from __future__ import annotations

import httpx
import pytest

from local.simulator import SsmSimulator
from shared.config import Settings
from shared.errors import SsmError
from shared.ssm import SsmClient, contract
from shared.ssm.contract import CODE_RESOURCE_MISSING, CREATE, DELETE, UPDATE
from shared.ssm.tenant import check_tenant


def settings_for(sim, **dossier) -> Settings:
    return Settings.model_validate({
        "group": "bijou", "ssm": {"base_url": sim.base_url, "public_key": sim.public_key,
                                  "private_key": sim.private_key, "admin_user_email": sim.admin_email,
                                  "rate_limit_per_s": 13},
        "dossiers": [{"id": "BIJOU", "odbc": "Driver=SQLite3;Database=x.db", **dossier}]})


def address_findings(report) -> list[tuple[str, str]]:
    return [(f.code, f.severity.value) for f in report.about("BIJOU") if f.code.startswith("tenant.addresses")]


def an_account(client) -> int:
    return client.create("accounts", {"name": "Bijouterie", "branchId": next(b["id"] for b in client.list("branches")),
                                      "salesRepId1": next(u["id"] for u in client.list("users"))})


def test_account_addresses_are_written_with_the_fields_w1_documents_and_no_ext_id(client):
    res = contract.resource("accountAddresses")
    assert {CREATE, UPDATE, DELETE} <= res.operations and contract.documents_writes("accountAddresses")
    assert res.required() == ("accountId",) and not contract.has_ext_id("accountAddresses")

    account = an_account(client)
    new_id = client.create("accountAddresses", {"accountId": account, "address1": "8 place aux Fleurs",
                                                "city": "Dole", "postcode": "39100", "description": "Boutique"})
    client.update("accountAddresses", new_id, {"city": "Dole-Centre"})
    assert client.get("accountAddresses", new_id)["city"] == "Dole-Centre"
    with pytest.raises(SsmError):
        client.create("accountAddresses", {"accountId": account, "city": "Dole", "extId": "BIJOU:1"})
    with pytest.raises(SsmError):
        client.create("accountAddresses", {"city": "Dole"})          # accountId is required
    client.delete("accountAddresses", new_id)
    assert client.get("accountAddresses", new_id)["deleted"] is True


def test_a_tenant_without_account_addresses_answers_400_code_910_and_the_check_warns(clock):
    with SsmSimulator(seed=3, clock=clock, unavailable=("accountAddresses",)) as sim:
        with httpx.Client(base_url=sim.base_url + "/", timeout=5) as http:
            token = http.post("login", json={"username": sim.public_key, "password": sim.private_key}).json()["token"]
            answer = http.get("accountAddresses/schema", headers={"X-Session-Key": token})
        assert answer.status_code == 400 and answer.json()["code"] == CODE_RESOURCE_MISSING
        with SsmClient(sim.base_url, sim.public_key, sim.private_key, max_retries=0) as client:
            report = check_tenant(client, settings_for(sim))
            off = check_tenant(client, settings_for(sim, delivery_addresses=False))
        assert address_findings(report) == [("tenant.addresses.unavailable", "avertissement")]
        assert "delivery_addresses = false" in report.about("BIJOU")[-1].text
        assert address_findings(off) == [("tenant.addresses.off", "info")]


class ReadOnlyAddresses:
    """A tenant whose account-address schema marks the address lines read-only."""

    def __init__(self, client):
        self.client = client

    def __getattr__(self, name):
        return getattr(self.client, name)

    def schema(self, resource):
        body = self.client.schema(resource)
        for name in ("address1", "address2"):
            body["properties"][name]["readOnly"] = True
        return body


def test_the_check_names_the_address_fields_a_tenant_will_not_take(sim, client):
    assert address_findings(check_tenant(client, settings_for(sim))) == [("tenant.addresses.on", "info")]
    report = check_tenant(ReadOnlyAddresses(client), settings_for(sim))
    assert address_findings(report) == [("tenant.addresses.read_only", "avertissement")]
    assert report.about("BIJOU")[-1].message.values["fields"] == "address1, address2"


def test_without_documented_writes_no_dossier_syncs_addresses_whatever_its_setting(sim, client, monkeypatch):
    monkeypatch.setattr(contract, "documents_writes", lambda name: False)
    settings = settings_for(sim, delivery_addresses=True)
    assert settings.dossiers[0].syncs_delivery_addresses is False
    assert address_findings(check_tenant(client, settings)) == [("tenant.addresses.undocumented", "avertissement")]
    monkeypatch.undo()
    assert settings.dossiers[0].syncs_delivery_addresses is True
    assert settings_for(sim, delivery_addresses=False).dossiers[0].syncs_delivery_addresses is False
