"""The dossiers a group already knows, as the cloud tells an agent, and whether a database is the
company a known dossier synchronised.

After a reinstall the agent's own state is gone, but the cloud still holds every dossier of the
group: its state (`shared.lifecycle`), last run, how many records it links, and the identity of
its Sage database as the last run-start marker gave it (company name, SIRET, the database's
creation date). `known_dossiers` builds that list from the state store; the HTTP
function `group/dossiers` (`functions.group_http`, same function key as the status routes) serves
it, `HttpDirectory` reads it from the agent, and `StoreDirectory` reads the store directly where
agent and cloud share one machine (the local runtime).

`company_mismatch` compares two identities: the SIRET when both have one (a company may rename
itself), else the company names (case and spacing aside); with neither it cannot tell and
accepts. A different creation date alone is the same company restored from a copy: accepted,
and realigned.
"""
from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any, Optional, Protocol

from pydantic import BaseModel, ConfigDict, Field

from shared.errors import ConnectorError
from shared.lifecycle import cloud_state
from shared.messages import text

ROUTE = "group/dossiers"
KEY_HEADER = "x-functions-key"
RECORDS_PARAMETER = "records"
"""`?records=false`: the list without the linked record counts (cheap, for the agent's every cycle)."""
IDENTITY_FIELDS = ("company_name", "siret", "created_at", "database_name")


class KnownDossier(BaseModel):
    model_config = ConfigDict(extra="ignore")

    id: str
    name: Optional[str] = None
    product: str = "sage100"
    state: str
    active: bool
    ssm_branch: Optional[str] = None
    last_run_at: Optional[dt.datetime] = None
    last_run_state: Optional[str] = None
    records: dict[str, int] = Field(default_factory=dict, description="live SSM records linked, per entity")
    identity: dict[str, Any] = Field(default_factory=dict, description="the Sage database the last run read")


class GroupDirectory(BaseModel):
    model_config = ConfigDict(extra="ignore")

    group: str
    dossiers: list[KnownDossier]


def known_dossiers(store, *, records: bool = True) -> list[KnownDossier]:
    """Every dossier of the group, from the state store. Counting the `records` reads every link
    once (an administrator's call); without them, the list costs a few reads per dossier."""
    found = []
    for dossier in sorted(store.list_dossiers(), key=lambda d: d.id.lower()):
        runs = sorted(store.list_runs(dossier.id, limit=5), key=lambda r: r.started_at, reverse=True)
        counts: dict[str, int] = {}
        for link in store.list_links(dossier.id) if records else ():
            if not link.deleted and link.ssm_id is not None:
                counts[link.entity] = counts.get(link.entity, 0) + 1
        found.append(KnownDossier(
            id=dossier.id, name=dossier.name, product=dossier.product, state=cloud_state(dossier).value,
            active=dossier.active, ssm_branch=dossier.ssm_branch,
            last_run_at=runs[0].started_at if runs else None, last_run_state=runs[0].state.value if runs else None,
            records=dict(sorted(counts.items())), identity=dict(dossier.identity or {})))
    return found


class Directory(Protocol):
    def known(self, *, records: bool = True) -> list[KnownDossier]: ...


class StoreDirectory:
    """The group's dossiers read from a state store (one handed in, or opened from `[state]` per call)."""

    def __init__(self, store=None, *, state_settings=None):
        self.store = store
        self.state_settings = state_settings

    def known(self, *, records: bool = True) -> list[KnownDossier]:
        if self.store is not None:
            return known_dossiers(self.store, records=records)
        from shared.state.factory import open_state_store

        store = open_state_store(self.state_settings)
        try:
            store.ensure_tables()
            return known_dossiers(store, records=records)
        finally:
            store.close()


class HttpDirectory:
    """The group's dossiers asked of the cloud: `GET <cloud_url>/group/dossiers` with the function key."""

    def __init__(self, base_url: str, key: Optional[str], *, timeout_s: float = 30.0):
        self.url = f"{base_url.rstrip('/')}/{ROUTE}"
        self.key = key
        self.timeout_s = timeout_s

    def known(self, *, records: bool = True) -> list[KnownDossier]:
        import httpx

        try:
            answer = httpx.get(self.url, params={} if records else {RECORDS_PARAMETER: "false"},
                               headers={KEY_HEADER: self.key} if self.key else {}, timeout=self.timeout_s)
        except httpx.HTTPError as exc:
            raise ConnectorError(text("lifecycle.group_http_failed", url=self.url, reason=type(exc).__name__),
                                 detail=str(exc)) from None
        if answer.status_code != 200:
            raise ConnectorError(text("lifecycle.group_http_failed", url=self.url, reason=f"HTTP {answer.status_code}"))
        return GroupDirectory.model_validate_json(answer.content).dossiers


def directory_for(settings) -> Optional[Directory]:
    """Where this agent reads the group's dossiers: `[agent] cloud_url`, else (agent and cloud on one
    machine) the SQLite state store of `[state]` when it exists, else nowhere (None)."""
    if settings.agent.cloud_url:
        key = settings.agent.cloud_key.get_secret_value() if settings.agent.cloud_key else None
        return HttpDirectory(settings.agent.cloud_url, key)
    if settings.state.kind == "sqlite" and Path(settings.state.path).is_file():
        return StoreDirectory(state_settings=settings.state)
    return None


# --- is it the same company? ------------------------------------------------------------------
def _digits(value: Any) -> Optional[str]:
    digits = "".join(ch for ch in str(value or "") if ch.isdigit())
    return digits or None


def _name(value: Any) -> Optional[str]:
    name = " ".join(str(value or "").casefold().split())
    return name or None


def describe_company(identity: dict) -> str:
    """A company as the messages name it: its name and SIRET."""
    name = identity.get("company_name") or text("lifecycle.company.unnamed")
    siret = identity.get("siret")
    return text("lifecycle.company.with_siret", name=name, siret=siret) if siret else name


def company_mismatch(known: dict, found: dict) -> Optional[dict[str, str]]:
    """None when `found` may be the company of `known`; else both described, for a message
    (`known=`, `found=`)."""
    known_siret, found_siret = _digits(known.get("siret")), _digits(found.get("siret"))
    if known_siret and found_siret:
        same = known_siret == found_siret
    else:
        known_name, found_name = _name(known.get("company_name")), _name(found.get("company_name"))
        if not (known_name and found_name):
            return None
        same = known_name == found_name
    return None if same else {"known": describe_company(known), "found": describe_company(found)}


def restored_copy(known: dict, found: dict) -> bool:
    """The same company whose database was created again (restored from a copy, moved)."""
    return bool(known.get("created_at") and found.get("created_at")
                and known.get("created_at") != found.get("created_at"))


__all__ = ["Directory", "GroupDirectory", "HttpDirectory", "IDENTITY_FIELDS", "KnownDossier", "RECORDS_PARAMETER",
           "ROUTE",
           "StoreDirectory", "company_mismatch", "describe_company", "directory_for", "known_dossiers",
           "restored_copy"]
