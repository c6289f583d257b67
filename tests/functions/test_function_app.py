"""The Function App as the host indexes it: bindings of every registered function, and host.json."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from function_app import app
from local.dispatcher import registered_functions

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def bindings() -> dict[str, list[dict]]:
    return {f.get_function_name(): json.loads(f.get_function_json())["bindings"] for f in registered_functions(app)}


def trigger_of(bindings: dict[str, list[dict]], name: str) -> dict:
    triggers = [b for b in bindings[name] if b["type"].endswith("Trigger")]
    assert len(triggers) == 1, bindings[name]
    return triggers[0]


def test_changes_trigger_takes_one_message_of_a_session_at_a_time_on_the_changes_queue(bindings):
    """`Cardinality.ONE`: the host's session processor renews the message and session locks while
    an invocation runs and serves several sessions at once; a batch (`many`) trigger does neither."""
    trigger = trigger_of(bindings, "sage_changes")
    assert trigger["type"] == "serviceBusTrigger"
    assert trigger["direction"].lower() == "in"
    assert trigger["queueName"] == "%SSMCONN__BUS__CHANGES_QUEUE%"
    assert trigger["connection"] == "ServiceBusConnection"
    assert trigger["isSessionsEnabled"] is True
    assert trigger["cardinality"].lower() == "one"
    assert trigger["name"] == "message"
    assert trigger.get("autoCompleteMessages", True) is True


def test_changes_handler_takes_one_function_message():
    import inspect

    import azure.functions as func

    handler = next(f for f in registered_functions(app) if f.get_function_name() == "sage_changes")
    parameters = inspect.signature(handler.get_user_function()).parameters
    assert list(parameters) == ["message"]
    assert parameters["message"].annotation in (func.ServiceBusMessage, "func.ServiceBusMessage")


def test_dead_letter_trigger_reads_the_dead_letter_queue_of_the_changes_queue(bindings):
    trigger = trigger_of(bindings, "sage_changes_dead_letters")
    assert trigger["type"] == "serviceBusTrigger"
    assert trigger["queueName"] == "%SSMCONN__BUS__CHANGES_QUEUE%/$DeadLetterQueue"
    assert trigger["connection"] == "ServiceBusConnection"
    assert not trigger.get("isSessionsEnabled")         # a dead-letter queue has no sessions
    assert trigger.get("cardinality", "one").lower() == "one"


def test_the_replay_of_dead_lettered_changes_runs_every_five_minutes(bindings):
    trigger = trigger_of(bindings, "replay_parked_changes")
    assert trigger["type"] == "timerTrigger"
    assert trigger["schedule"] == "0 */5 * * * *"
    assert trigger["runOnStartup"] is False and trigger["useMonitor"] is True


def test_the_http_functions_require_a_function_key(bindings):
    http = {name: trigger_of(bindings, name) for name in bindings
            if trigger_of(bindings, name)["type"] == "httpTrigger"}
    assert http, "the status endpoint is registered"
    assert {t["authLevel"].lower() for t in http.values()} == {"function"}


def test_the_queue_app_setting_is_set_by_the_infrastructure(bindings):
    bicep = (ROOT / "infra" / "main.bicep").read_text(encoding="utf-8")
    assert "'SSMCONN__BUS__CHANGES_QUEUE'" in bicep
    assert "'ServiceBusConnection__fullyQualifiedNamespace'" in bicep


def test_host_json_configures_service_bus_sessions_one_message_at_a_time():
    host = json.loads((ROOT / "host.json").read_text(encoding="utf-8"))
    assert host["version"] == "2.0"
    assert host["extensionBundle"] == {"id": "Microsoft.Azure.Functions.ExtensionBundle", "version": "[4.*, 5.0.0)"}
    service_bus = host["extensions"]["serviceBus"]
    for key in ("sessionIdleTimeout", "maxConcurrentSessions", "maxConcurrentCallsPerSession",
                "maxAutoLockRenewalDuration", "autoCompleteMessages", "prefetchCount", "transportType"):
        assert key in service_bus, key
    assert service_bus["autoCompleteMessages"] is True
    assert service_bus["maxConcurrentSessions"] > 1              # several dossiers at once per instance
    assert service_bus["maxConcurrentCallsPerSession"] == 1      # a dossier's messages in order
    assert service_bus["prefetchCount"] == 0                     # nothing locked that is not being processed
    assert service_bus["transportType"].lower() == "amqptcp"     # AMQP over WebSockets: an app setting (infra)
    assert "maxMessageBatchSize" not in service_bus, "batch setting of a batch trigger"
    assert "functionTimeout" in host and "logLevel" in host["logging"]


def test_host_exports_opentelemetry_and_the_worker_streams_its_own_logs_once():
    """`telemetryMode` OpenTelemetry: the host exports in OpenTelemetry; the Python worker's logs are
    exported by the connector's own `configure_azure_monitor` (shared.telemetry), and the host is told
    so (`PYTHON_ENABLE_OPENTELEMETRY`) instead of exporting them a second time. The worker's own
    Azure Monitor set-up (`PYTHON_APPLICATIONINSIGHTS_ENABLE_TELEMETRY`) would be a second exporter."""
    host = json.loads((ROOT / "host.json").read_text(encoding="utf-8"))
    assert host["telemetryMode"] == "OpenTelemetry"
    assert "applicationInsights" not in host["logging"], "classic Application Insights settings do not apply"
    bicep = (ROOT / "infra" / "main.bicep").read_text(encoding="utf-8")
    assert "{ name: 'PYTHON_ENABLE_OPENTELEMETRY', value: 'true' }" in bicep
    assert "PYTHON_APPLICATIONINSIGHTS_ENABLE_TELEMETRY" not in bicep


def test_ssms_changes_are_read_every_five_minutes_and_on_a_webhook_call(bindings):
    timer = trigger_of(bindings, "ssm_changes")
    assert timer["type"] == "timerTrigger" and timer["schedule"] == "0 */5 * * * *"
    hook = trigger_of(bindings, "ssm_hooks")
    assert hook["type"] == "httpTrigger" and hook["route"] == "ssm/hooks"
    assert [m.lower() for m in hook["methods"]] == ["post"] and hook["authLevel"].lower() == "function"
