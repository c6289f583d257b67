"""The template's parameters are validated before anything is deployed, and every name they build is a
legal Azure name; the Key Vault can be deployed again after its resource group was deleted; the
Function App's Service Bus transport and telemetry are set as the code expects.

The Bicep compiler cannot run here: `tests/infra/bicep.py` reads the template and evaluates the
expressions of the names and of the checks (functions of ARM, `fail()` included)."""
from __future__ import annotations

import json
import re
import string
from pathlib import Path

import pytest

from tests.infra.bicep import BicepFail, evaluate, parse_bicep

ROOT = Path(__file__).resolve().parents[2]
TEMPLATE = parse_bicep(ROOT / "infra" / "main.bicep")
PARAMETERS = json.loads((ROOT / "infra" / "main.parameters.json").read_text(encoding="utf-8"))["parameters"]

# Azure's naming rules of the resources the template names.
NAME_RULES = {
    "storage": r"[a-z0-9]{3,24}",
    "keyVault": r"[a-zA-Z](?!.*--)[a-zA-Z0-9-]{1,22}[a-zA-Z0-9]",
    "serviceBus": r"[a-zA-Z][a-zA-Z0-9-]{4,48}[a-zA-Z0-9]",
    "functionApp": r"[a-zA-Z0-9][a-zA-Z0-9-]{0,58}[a-zA-Z0-9]",
    "plan": r"[a-zA-Z0-9-]{1,40}",
    "identity": r"[a-zA-Z0-9][a-zA-Z0-9_-]{2,127}",
    "logs": r"[a-zA-Z0-9][a-zA-Z0-9-]{2,61}[a-zA-Z0-9]",
    "insights": r"[^%&\\?/]{1,260}",
}


def names_for(**params) -> dict[str, str]:
    return evaluate(TEMPLATE, TEMPLATE.variables["names"], params)


def decorators(param: str) -> dict:
    return TEMPLATE.param_decorators[param]


def test_environment_name_length_is_bounded_by_the_names_it_builds():
    rules = decorators("environmentName")
    assert rules["minLength"] >= 2
    # within 24 characters, the storage account and the Key Vault keep enough of the unique suffix
    assert len("stssm") + rules["maxLength"] + 8 <= 24
    assert len("kv-ssm--") + rules["maxLength"] + 6 <= 24
    assert str(rules["minLength"]) in rules["description"] and str(rules["maxLength"]) in rules["description"]


def test_environment_name_characters_are_those_of_a_storage_account_name():
    assert TEMPLATE.variables["storageNameCharacters"] == string.ascii_lowercase + string.digits
    check = TEMPLATE.variables["env"]
    assert "fail(" in check and "environmentNameBadCharacters" in check


@pytest.mark.parametrize("name", ["prod", "test", "ab", "production", "1234567890"])
def test_a_valid_environment_name_gives_legal_names_to_every_resource(name):
    names = names_for(environmentName=name)
    assert set(names) == set(NAME_RULES)
    for resource, rule in NAME_RULES.items():
        assert re.fullmatch(rule, names[resource]), (resource, names[resource])
    assert name in names["storage"] and name in names["keyVault"]


@pytest.mark.parametrize("name", ["Prod", "pre-prod", "test_1", "prod!", "été", "pr od"])
def test_an_environment_name_with_other_characters_stops_the_deployment_with_a_clear_message(name):
    with pytest.raises(BicepFail) as failed:
        names_for(environmentName=name)
    assert f"'{name}'" in str(failed.value) and "lowercase letters and digits" in str(failed.value)


def test_every_resource_name_goes_through_the_checked_environment_name():
    """No name uses the raw parameter: each goes through `env`, which is the parameter only once checked."""
    assert "environmentName" not in json.dumps(TEMPLATE.variables["names"])
    assert "environmentName" not in str(TEMPLATE.variables["suffix"])
    text = (ROOT / "infra" / "main.bicep").read_text(encoding="utf-8")
    uses = [line for line in text.splitlines() if "environmentName" in line
            and not line.lstrip().startswith(("//", "@description", "param environmentName"))]
    assert all(line.startswith(("var environmentNameBadCharacters", "var env ")) for line in uses), uses


def test_the_names_of_an_existing_deployment_do_not_change():
    """The checked name is the parameter itself: a valid environment keeps its resource names."""
    names = names_for(environmentName="prod")
    from tests.infra.bicep import FUNCTIONS
    suffix = FUNCTIONS["uniqueString"](FUNCTIONS["resourceGroup"]()["id"], "prod")
    assert names["storage"] == ("stssmprod" + suffix)[:24]
    assert names["keyVault"] == ("kv-ssm-prod-" + suffix)[:24]


# --- the Key Vault after the resource group was deleted ----------------------------------------------
def test_key_vault_keeps_purge_protection_and_can_be_recovered_or_renamed():
    vault = TEMPLATE.resources["keyVault"].body["properties"]
    assert vault["enableSoftDelete"] is True and vault["enablePurgeProtection"] is True
    assert vault["createMode"] == "keyVaultCreateMode"
    assert decorators("keyVaultCreateMode")["allowed"] == ["default", "recover"]
    assert TEMPLATE.param_defaults["keyVaultCreateMode"] == "default"
    assert decorators("keyVaultName")["maxLength"] == 24 and TEMPLATE.param_defaults["keyVaultName"] == ""
    assert names_for(environmentName="prod", keyVaultName="kv-ssm-prod-2")["keyVault"] == "kv-ssm-prod-2"
    assert names_for(environmentName="prod")["keyVault"].startswith("kv-ssm-prod-")
    assert TEMPLATE.outputs["keyVaultName"] == "keyVault.name"


# --- the parameters file -------------------------------------------------------------------------------
def test_the_parameters_file_names_only_declared_parameters_with_valid_values():
    for name, entry in PARAMETERS.items():
        assert name in TEMPLATE.params, f"{name} is not a parameter of main.bicep"
        value, rules = entry["value"], decorators(name)
        if "allowed" in rules:
            assert value in rules["allowed"], name
        if isinstance(value, str):
            assert rules.get("minLength", 0) <= len(value) <= rules.get("maxLength", 10 ** 6), name
    names_for(**{name: entry["value"] for name, entry in PARAMETERS.items()})      # no fail()


def test_every_parameter_is_described():
    missing = [name for name in TEMPLATE.params if "description" not in decorators(name)]
    assert not missing


# --- Service Bus transport and telemetry of the Function App ---------------------------------------------
def _app_settings(**params) -> dict[str, object]:
    [site] = TEMPLATE.of_type("Microsoft.Web/sites")
    settings = {s["name"]: s["value"] for s in site.body["properties"]["siteConfig"]["appSettings"]}
    return {name: evaluate(TEMPLATE, value, {"environmentName": "prod", **params})
            for name, value in settings.items()
            if name in ("AzureFunctionsJobHost__extensions__serviceBus__transportType", "SSMCONN__BUS__WEBSOCKETS",
                        "PYTHON_ENABLE_OPENTELEMETRY")}


def test_amqp_over_websockets_is_one_parameter_for_the_trigger_and_the_connector():
    assert TEMPLATE.params["serviceBusOverWebSockets"] == "bool"
    assert TEMPLATE.param_defaults["serviceBusOverWebSockets"] is False
    assert _app_settings() == {"AzureFunctionsJobHost__extensions__serviceBus__transportType": "amqpTcp",
                               "SSMCONN__BUS__WEBSOCKETS": "false", "PYTHON_ENABLE_OPENTELEMETRY": "true"}
    over_443 = _app_settings(serviceBusOverWebSockets=True)
    assert over_443["AzureFunctionsJobHost__extensions__serviceBus__transportType"] == "amqpWebSockets"
    assert over_443["SSMCONN__BUS__WEBSOCKETS"] == "true"

    from shared.config import load_settings
    assert load_settings(environ={"SSMCONN__BUS__WEBSOCKETS": over_443["SSMCONN__BUS__WEBSOCKETS"]}).bus.websockets


def test_the_host_json_transport_is_the_one_the_app_setting_overrides():
    host = json.loads((ROOT / "host.json").read_text(encoding="utf-8"))
    assert host["extensions"]["serviceBus"]["transportType"] == _app_settings()[
        "AzureFunctionsJobHost__extensions__serviceBus__transportType"]
