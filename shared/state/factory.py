"""Opens the state store the settings name: the SQLite file (local) or Azure Table Storage (cloud)."""
from __future__ import annotations

from shared.config import StateSettings
from shared.errors import ConfigurationError
from shared.state.repository import StateStore


def open_state_store(settings: StateSettings) -> StateStore:
    """A `StateStore` over the configured backend (its tables are not created: `ensure_tables`).

    For Azure, a connection string wins over an account URL; with an account URL the identity
    comes from `DefaultAzureCredential` (the Function App's managed identity in production).
    """
    if settings.kind == "sqlite":
        from shared.state.sqlite_store import SqliteTableStore

        return StateStore(SqliteTableStore(settings.path))
    from shared.adapters.azure_tables import AzureTableStore

    if settings.connection_string is not None and settings.connection_string.get_secret_value():
        return StateStore(AzureTableStore.from_connection_string(
            settings.connection_string.get_secret_value(), table_prefix=settings.table_prefix))
    if settings.account_url:
        from azure.identity import DefaultAzureCredential

        return StateStore(AzureTableStore.from_account_url(
            settings.account_url, DefaultAzureCredential(), table_prefix=settings.table_prefix))
    raise ConfigurationError("The Azure state store needs [state] connection_string or account_url.")
