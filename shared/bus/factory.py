"""Open the configured bus: the SQLite `LocalBus`, or Azure Service Bus through its adapter.

The Azure SDK is imported only when Service Bus is configured, so the local runtime and the
agent run without the cloud extra. Delivery limits (`max_delivery_count`, `lock_duration_s`,
`duplicate_window_s`) configure the local bus; on Service Bus they are queue properties set by
the infrastructure templates. `websockets` chooses AMQP over WebSockets (port 443) for Service Bus.
"""
from __future__ import annotations

from shared.bus.protocol import Bus
from shared.config import BusSettings
from shared.errors import ConfigurationError


def open_bus(settings: BusSettings) -> Bus:
    """The bus described by `[bus]` settings.

    Raises:
        ConfigurationError: Service Bus without a connection string or namespace, or without
            the `azure-servicebus` / `azure-identity` packages installed.
    """
    if settings.kind == "local":
        from shared.bus.local_bus import LocalBus
        return LocalBus(settings.path, max_delivery_count=settings.max_delivery_count,
                        lock_duration_s=settings.lock_duration_s, duplicate_window_s=settings.duplicate_window_s)
    if settings.kind == "service-bus":
        return _open_service_bus(settings)
    raise ConfigurationError(f"unknown bus kind '{settings.kind}'")


def _open_service_bus(settings: BusSettings) -> Bus:
    try:
        from shared.adapters.service_bus import ServiceBusAdapter
    except ImportError as exc:
        raise ConfigurationError("Service Bus is configured but its client library is not installed "
                                 "(install ssm-connector[cloud]).", detail=str(exc)) from None
    if settings.connection_string is not None and settings.connection_string.get_secret_value():
        return ServiceBusAdapter.from_connection_string(settings.connection_string.get_secret_value(),
                                                        websockets=settings.websockets)
    if settings.fully_qualified_namespace:
        try:
            from azure.identity import DefaultAzureCredential
        except ImportError as exc:
            raise ConfigurationError("A Service Bus namespace with a managed identity needs azure-identity "
                                     "(install ssm-connector[cloud]).", detail=str(exc)) from None
        return ServiceBusAdapter.from_namespace(settings.fully_qualified_namespace, DefaultAzureCredential(),
                                                websockets=settings.websockets)
    raise ConfigurationError("The Service Bus connection is not configured: set bus.connection_string "
                             "or bus.fully_qualified_namespace.")
