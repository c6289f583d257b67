"""The clients the function handlers share, built once per worker process, on first use.

Settings come from `shared.config.load_settings`: the TOML file named by the `SSMCONN_CONFIG`
app setting (if any) plus `SSMCONN__SECTION__FIELD` overrides, which is how the Function App's
application settings (and Key Vault references) reach the core. The local runtime calls
`configure(settings)` instead, so the same handlers run against its SQLite store and simulator.
"""
from __future__ import annotations

import os
import threading
import time
from typing import TYPE_CHECKING, Optional

from shared.config import Settings, load_settings
from shared.telemetry import configure_azure_monitor_if_enabled

if TYPE_CHECKING:
    from shared.inbound.service import InboundService
    from shared.sync.service import SyncService

CONFIG_PATH_ENV = "SSMCONN_CONFIG"

_lock = threading.RLock()
_settings: Optional[Settings] = None
_sync_service: Optional["SyncService"] = None
_inbound_service: Optional["InboundService"] = None
_telemetry_configured = False
_deadline: Optional[float] = None


def set_deadline(deadline: Optional[float]) -> None:
    """Set (a `time.monotonic()` value) or clear the time the current local cycle must end by;
    the handlers shorten their waits to it. Azure's host has its own function timeout."""
    global _deadline
    _deadline = deadline


def time_left() -> Optional[float]:
    """Seconds left before the deadline (never negative); None when there is none."""
    deadline = _deadline
    return None if deadline is None else max(0.0, deadline - time.monotonic())


def settings() -> Settings:
    """The settings of this process (loaded from the environment on first use)."""
    global _settings
    with _lock:
        if _settings is None:
            _settings = load_settings(os.environ.get(CONFIG_PATH_ENV) or None)
        return _settings


def sync_service() -> "SyncService":
    """The process-wide `SyncService` (state store and SSM client inside), built on first use."""
    global _sync_service, _telemetry_configured
    with _lock:
        if not _telemetry_configured:
            configure_azure_monitor_if_enabled()
            _telemetry_configured = True
        if _sync_service is None:
            from shared.sync.service import SyncService

            _sync_service = SyncService.from_settings(settings())
        return _sync_service


def inbound_service() -> "InboundService":
    """The process-wide SSM → Sage pass, sharing the sync service's store and SSM client and
    sending its commands on the configured bus."""
    global _inbound_service
    service = sync_service()
    with _lock:
        if _inbound_service is None or _inbound_service.ssm is not service.ssm:
            from shared.bus.factory import open_bus
            from shared.inbound.service import InboundService

            _inbound_service = InboundService.from_settings(settings(), service.store, service.ssm,
                                                            open_bus(settings().bus))
        return _inbound_service


def configure(new_settings: Optional[Settings] = None, *, service: Optional["SyncService"] = None) -> None:
    """Replace the settings (and optionally the service) used by the handlers from now on.

    The previous service is closed. With no arguments, the next call reloads from the environment.
    """
    global _settings, _sync_service, _inbound_service
    with _lock:
        previous = _sync_service
        _settings = new_settings
        _sync_service = service
        inbound, _inbound_service = _inbound_service, None
    if inbound is not None:
        _close(inbound.bus)
    if previous is not None and previous is not service:
        _close(previous)


def reset() -> None:
    """Forget everything built so far (closing the service)."""
    configure(None)


def _close(service: object) -> None:
    close = getattr(service, "close", None)
    if callable(close):
        close()
