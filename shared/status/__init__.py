"""The sync status an administrator reads: the report as data (`report`) and its HTML page (`page`)."""
from shared.status.report import (
    GROUP_INCIDENTS_DOSSIER,
    DossierStatus,
    IncidentStateFilter,
    StatusQuery,
    StatusQueryError,
    StatusReader,
    StatusReport,
)

__all__ = [
    "GROUP_INCIDENTS_DOSSIER",
    "DossierStatus",
    "IncidentStateFilter",
    "StatusQuery",
    "StatusQueryError",
    "StatusReader",
    "StatusReport",
]
