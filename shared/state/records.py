"""The typed state records, one per table. Every record but `Dossier` belongs to one dossier."""
from __future__ import annotations

import datetime as dt
from enum import Enum
from typing import Any, Optional

from pydantic import BaseModel, ConfigDict, Field


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc)


class _Record(BaseModel):
    model_config = ConfigDict(extra="forbid")
    etag: Optional[str] = Field(default=None, exclude=True)


class Dossier(_Record):
    id: str
    name: Optional[str] = None
    product: str = "sage100"
    active: bool = True
    database_identity: Optional[str] = None
    created_at: dt.datetime = Field(default_factory=utcnow)
    activated_at: Optional[dt.datetime] = None
    deactivated_at: Optional[dt.datetime] = None
    needs_realignment: bool = True
    last_realigned_at: Optional[dt.datetime] = None
    first_load_done: bool = False
    # Its lifecycle state is read from these fields by `shared.lifecycle.cloud_state`.
    realignment_cause: Optional[str] = None
    ssm_branch: Optional[str] = None            # as the agent's run-start marker gives it
    identity: dict[str, Any] = Field(default_factory=dict)   # its Sage database, as the last run read it


class Link(_Record):
    """Sage key ⇄ SSM id of one record, with the base snapshot of the last synced values."""

    dossier: str
    entity: str
    sage_key: str
    ssm_id: Optional[int] = None
    base: dict[str, Any] = Field(default_factory=dict)
    hash: str = ""
    deleted: bool = False
    updated_at: dt.datetime = Field(default_factory=utcnow)


class Cursor(_Record):
    dossier: str
    name: str
    value: str
    updated_at: dt.datetime = Field(default_factory=utcnow)


class RunState(str, Enum):
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    PARTIAL = "partial"      # ended with failed records (incidents)
    FAILED = "failed"


RUN_COUNTERS = ("read", "created", "updated", "deleted", "skipped_unchanged", "conflicts", "failed")


class Run(_Record):
    dossier: str
    run_id: str
    side: str                      # "agent" or "cloud"
    direction: str                 # "sage_to_ssm" or "ssm_to_sage"
    started_at: dt.datetime = Field(default_factory=utcnow)
    ended_at: Optional[dt.datetime] = None
    state: RunState = RunState.RUNNING
    realignment: bool = False
    counts: dict[str, int] = Field(default_factory=lambda: {c: 0 for c in RUN_COUNTERS})
    message: Optional[str] = None
    ssm_held_none: dict[str, bool] = Field(default_factory=dict)
    """Per SSM resource asked during this realignment, whether it held no record of the dossier
    when first needed: then none there can be an earlier install's or attempt's record, and no
    record is looked for before its create (`shared.sync.runs.RunBook.held_none`)."""


class JournalEntry(_Record):
    dossier: str
    at: dt.datetime = Field(default_factory=utcnow)
    run_id: Optional[str] = None
    entity: Optional[str] = None
    key: Optional[str] = None
    event: str                      # e.g. "conflict", "ssm-deletion-ignored", "invite-needed"
    message: str
    detail: dict[str, Any] = Field(default_factory=dict)


class IncidentState(str, Enum):
    OPEN = "open"
    RESOLVED = "resolved"


class Incident(_Record):
    dossier: str
    entity: str
    key: str
    operation: str
    message: str                    # a sentence a Sage administrator understands
    detail: Optional[str] = None    # internal detail, never secrets
    first_seen: dt.datetime = Field(default_factory=utcnow)
    last_seen: dt.datetime = Field(default_factory=utcnow)
    attempts: int = 1
    state: IncidentState = IncidentState.OPEN
    resolved_at: Optional[dt.datetime] = None
    next_attempt_at: Optional[dt.datetime] = None
    dead_lettered: bool = False
    parked: dict[str, Any] = Field(default_factory=dict)   # a dead-lettered change (envelope JSON), to replay
    replay_at: Optional[dt.datetime] = None                 # when the parked change is tried again
    replays: int = 0                                        # how many times it was tried again
    waiting_for: Optional[str] = None   # "entity:key" of the record the parked change waits for


class AdoptionState(str, Enum):
    HELD = "held"            # ambiguous: not created in SSM until the administrator decides
    CREATE = "create"        # the administrator chose a new SSM record


class Adoption(_Record):
    """A Sage record whose adoption of an SSM record waits for (or got) the administrator's choice."""

    dossier: str
    entity: str
    sage_key: str
    state: AdoptionState = AdoptionState.HELD
    rule: str = ""
    candidates: list[int] = Field(default_factory=list)
    parked: dict[str, Any] = Field(default_factory=dict)   # the Sage change held back (envelope JSON)
    waits_for: str = ""       # "<entity>:<key>" of the held record this one refers to (its account, a product)
    held_at: dt.datetime = Field(default_factory=utcnow)
    decided_at: Optional[dt.datetime] = None
