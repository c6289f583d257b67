"""The Bicep template declares every resource, queue property, role and setting the connector needs."""
from __future__ import annotations

from pathlib import Path

import pytest

from shared.config import CLOUD_APP_SETTINGS, load_settings
from tests.infra.bicep import Expr, parse_bicep

ROOT = Path(__file__).resolve().parents[2]
TEMPLATE = parse_bicep(ROOT / "infra" / "main.bicep")

ROLE_IDS = {
    "Azure Service Bus Data Receiver": "4f6d3b9b-027b-4f4c-9142-0e5a2a2247e0",
    "Azure Service Bus Data Sender": "69a216fc-b8fb-44d8-bc22-1f3c2cd27a39",
    "Storage Table Data Contributor": "0a9a7e1f-b9d0-4cc4-a60d-0319b160aaa3",
    "Key Vault Secrets User": "4633458b-17de-408a-b874-0445c86b69e6",
}


def _one(resource_type: str):
    found = TEMPLATE.of_type(resource_type)
    assert len(found) == 1, f"expected one {resource_type}, found {len(found)}"
    return found[0]


def _app_settings() -> dict[str, object]:
    site = _one("Microsoft.Web/sites")
    return {s["name"]: s["value"] for s in site.body["properties"]["siteConfig"]["appSettings"]}


def _role_assignments() -> list[tuple[str, str]]:
    """(role definition id, scope symbol) of every role assignment, resolving `roles.x` names."""
    roles = TEMPLATE.variables["roles"]
    out = []
    for ra in TEMPLATE.of_type("Microsoft.Authorization/roleAssignments"):
        definition = ra.body["properties"]["roleDefinitionId"]
        role_name = definition.rsplit("roles.", 1)[1].rstrip(")")
        assert ra.body["properties"]["principalId"] == "identity.properties.principalId"
        out.append((roles[role_name], ra.body["scope"]))
    return out


def test_parameters_for_environment_and_region():
    assert "environmentName" in TEMPLATE.params
    assert "location" in TEMPLATE.params


def test_function_app_is_linux_python_311_on_flex_consumption():
    plan = _one("Microsoft.Web/serverfarms")
    assert plan.body["sku"] == {"name": "FC1", "tier": "FlexConsumption"}
    site = _one("Microsoft.Web/sites")
    assert "linux" in site.body["kind"]
    config = site.body["properties"]["functionAppConfig"]
    assert config["runtime"] == {"name": "python", "version": "3.11"}
    assert config["deployment"]["storage"]["authentication"]["type"] == "UserAssignedIdentity"
    assert site.body["identity"]["type"] == "UserAssigned"
    assert site.body["properties"]["httpsOnly"] is True


def test_service_bus_standard_with_both_session_queues():
    namespace = _one("Microsoft.ServiceBus/namespaces")
    assert namespace.body["sku"]["name"] == "Standard"
    queues = {q.body["name"]: q for q in TEMPLATE.of_type("Microsoft.ServiceBus/namespaces/queues")}
    names = {TEMPLATE.variables[str(n)] if str(n) in TEMPLATE.variables else n for n in queues}
    assert names == {"sage-changes", "sage-commands"}
    for queue in queues.values():
        props = queue.body["properties"]
        if isinstance(props, Expr):
            props = TEMPLATE.variables[str(props)]
        assert props["requiresSession"] is True
        assert props["requiresDuplicateDetection"] is True
        assert props["duplicateDetectionHistoryTimeWindow"].startswith("PT")
        assert props["lockDuration"].startswith("PT")
        assert props["deadLetteringOnMessageExpiration"] is True
        assert props["maxDeliveryCount"] in ("maxDeliveryCount", 10)


def test_storage_has_no_shared_key_and_a_deployment_container():
    storage = _one("Microsoft.Storage/storageAccounts")
    assert storage.body["properties"]["allowSharedKeyAccess"] is False
    assert storage.body["properties"]["allowBlobPublicAccess"] is False
    _one("Microsoft.Storage/storageAccounts/blobServices/containers")
    _one("Microsoft.Storage/storageAccounts/tableServices")


def test_key_vault_uses_rbac_and_insights_use_log_analytics():
    vault = _one("Microsoft.KeyVault/vaults")
    assert vault.body["properties"]["enableRbacAuthorization"] is True
    insights = _one("Microsoft.Insights/components")
    assert insights.body["properties"]["WorkspaceResourceId"] == "logs.id"
    _one("Microsoft.OperationalInsights/workspaces")
    _one("Microsoft.ManagedIdentity/userAssignedIdentities")


@pytest.mark.parametrize("role, scope", [
    ("Azure Service Bus Data Receiver", "changesQueue"),
    ("Azure Service Bus Data Sender", "commandsQueue"),
    ("Storage Table Data Contributor", "storage"),
    ("Key Vault Secrets User", "keyVault"),
])
def test_function_identity_has_least_privilege_role(role, scope):
    assert (ROLE_IDS[role], scope) in _role_assignments()


def test_function_identity_cannot_send_changes_nor_read_commands():
    assignments = _role_assignments()
    assert (ROLE_IDS["Azure Service Bus Data Sender"], "changesQueue") not in assignments
    assert (ROLE_IDS["Azure Service Bus Data Receiver"], "commandsQueue") not in assignments
    assert all(scope != "serviceBus" for _, scope in assignments), "no namespace-wide Service Bus role"


def test_agent_rules_are_send_on_changes_and_listen_on_commands_only():
    rules = {r.body["name"]: r for r in TEMPLATE.of_type("Microsoft.ServiceBus/namespaces/queues/authorizationRules")}
    by_parent = {r.body["parent"]: r.body["properties"]["rights"] for r in rules.values()}
    assert by_parent == {"changesQueue": ["Send"], "commandsQueue": ["Listen"]}
    assert not TEMPLATE.of_type("Microsoft.ServiceBus/namespaces/authorizationRules")


def test_identity_based_connections_in_app_settings():
    settings = _app_settings()
    assert "ServiceBusConnection__fullyQualifiedNamespace" in settings
    assert "AzureWebJobsStorage__accountName" in settings
    assert not any(name in settings for name in ("AzureWebJobsStorage", "ServiceBusConnection"))
    assert "KeyVault" in str(settings["SSMCONN__SSM__PRIVATE_KEY"])


def test_every_setting_the_code_reads_is_set_by_the_template():
    settings = _app_settings()
    missing = [name for name in CLOUD_APP_SETTINGS if name not in settings]
    assert not missing, f"app settings missing from infra/main.bicep: {missing}"
    environ = {name: _value_with_defaults(value) for name, value in settings.items() if name.startswith("SSMCONN__")}
    load_settings(environ=environ).validate_for_cloud()


def _value_with_defaults(value: object) -> str:
    """A setting's value with every parameter at its default; what Azure resolves at deployment time
    (resource properties, Key Vault references) stays as written."""
    from tests.infra.bicep import evaluate

    try:
        resolved = evaluate(TEMPLATE, value, {"environmentName": "prod"})
    except (KeyError, AssertionError, TypeError):
        return str(value)
    return str(resolved).lower() if isinstance(resolved, bool) else str(resolved)


def test_every_binding_connection_and_placeholder_is_set_by_the_template():
    import re

    from function_app import app
    from local.dispatcher import registered_functions

    settings = _app_settings()
    for function in registered_functions(app):
        for binding in function.get_bindings():
            data = binding.get_dict_repr()
            connection = data.get("connection")
            if connection:
                assert f"{connection}__fullyQualifiedNamespace" in settings or connection in settings, connection
            for placeholder in re.findall(r"%(\w+)%", str(data)):
                assert placeholder in settings, f"binding placeholder %{placeholder}% is not an app setting"


def test_outputs_give_the_agent_what_it_needs():
    for name in ("serviceBusNamespace", "changesQueue", "commandsQueue", "agentSendRuleName", "agentListenRuleName"):
        assert name in TEMPLATE.outputs
