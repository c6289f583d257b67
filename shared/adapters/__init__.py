"""Azure SDK implementations of the core's protocols; the only place `shared` imports Azure.

Import the module you need (`shared.adapters.azure_tables`, ...): nothing is imported here, so
the local runtime never loads an Azure SDK it does not use.
"""
