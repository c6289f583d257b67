"""The source registry: which adapter reads and writes a dossier, chosen by its `product`.

A dossier's `[[dossiers]] product` (`sage100` when not configured: the databases the agent finds
on the Sage server are Sage 100 ones) names its adapter. An adapter tells how to open the
dossier for a run (a context manager yielding the connection and the reader detection reads,
`agent.detection.SageSource`), where the run's signpost comes from, how to open the writer the
cloud's commands go through (`agent.commands`), and what to do before a run reads the dossier
(Sage 50 FR answers there the writes its earlier import files asked for and its exports show). Nothing outside an adapter's own
package knows a Sage product's tables or files.
"""
from __future__ import annotations

import datetime as dt
import importlib
from dataclasses import dataclass
from typing import Any, Callable

from shared.errors import ConfigurationError


@dataclass(frozen=True)
class SourceAdapter:
    product: str
    open_source: Callable[[Any, str], Callable]           # (settings, dossier) -> source opener
    signpost_clock: Callable[[Any], dt.datetime]          # the opened connection -> the run's signpost
    open_writer: Callable[[Any, str], Callable]           # (settings, dossier) -> () -> command writer
    before_run: Callable[[Any, Any, str], Any]            # (settings, bus, dossier), after its commands


# product -> the module declaring its adapter (imported on first use)
ADAPTER_MODULES: dict[str, str] = {
    "sage100": "agent.sage100.source",
    "sage50": "agent.sage50.source",
}
DEFAULT_PRODUCT = "sage100"

_loaded: dict[str, SourceAdapter] = {}


def adapter(product: str) -> SourceAdapter:
    """The adapter of `product`.

    Raises:
        ConfigurationError: no adapter reads that product.
    """
    found = _loaded.get(product)
    if found is not None:
        return found
    name = ADAPTER_MODULES.get(product)
    if name is None:
        raise ConfigurationError(f"no source adapter for the Sage product '{product}'"
                                 f" (known: {', '.join(ADAPTER_MODULES)})")
    module = importlib.import_module(name)
    found = _loaded[product] = SourceAdapter(product, module.open_dossier, module.signpost_clock,
                                             module.open_writer, module.before_run)
    return found


def product_of(settings, dossier: str) -> str:
    """The configured product of `dossier` (`sage100` for a database found on the Sage server)."""
    configured = next((d for d in settings.dossiers if d.id == dossier), None)
    return configured.product if configured is not None else DEFAULT_PRODUCT


def adapter_for(settings, dossier: str) -> SourceAdapter:
    return adapter(product_of(settings, dossier))
