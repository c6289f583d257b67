"""The cloud sync core: Sage change envelopes in, SSM state out, per the entity rule table.

One module per role: `mapping` (Sage → SSM fields, as data), `binder` (Sage key ⇄ SSM id),
`merge` (3-way merge), `dependencies` (order and references), `synchronizers` (one per entity),
`runs`, `incidents`, and `service` (`SyncService`, what the cloud glue calls).
"""
from shared.sync.service import BatchOutcome, SyncService

__all__ = ["SyncService", "BatchOutcome"]
