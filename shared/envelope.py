"""The envelope: the versioned JSON unit that travels on the bus between agent and cloud.

Kinds: `change` (a Sage record upserted or deleted), `command` (cloud asks Sage to act),
`command-result` (Sage's answer), `run-marker` (a run starts or ends, with counts) and, since
schema version 2, `dossier-state` (the agent deactivated or activated a dossier again).
Message ids are deterministic — a function of dossier, entity, key, operation and content
hash — so a re-send is dropped by the bus's duplicate detection, and handlers stay idempotent.
Many envelopes travel in one bus message (`pack_batches`), always of one dossier (the session),
each message under the Service Bus Standard limit of 256 KB. A batch is stamped with the lowest
schema version that can read it, so a reader of an older version refuses, by its version, only
the batches it could not understand.
"""
from __future__ import annotations

import datetime as dt
import hashlib
import json
from decimal import Decimal
from enum import Enum
from typing import Any, Iterable, Iterator, Optional

from pydantic import BaseModel, ConfigDict, Field, model_validator

SCHEMA_VERSION = 1
"""The version of the original kinds, stamped on every batch that carries only those."""
LATEST_SCHEMA_VERSION = 3
WARNINGS_SINCE_VERSION = 3
"""Upserts carrying `warnings` (values of the Sage row left out of the record) are of version 3."""
READABLE_VERSIONS = frozenset(range(1, LATEST_SCHEMA_VERSION + 1))
MAX_MESSAGE_BYTES = 256 * 1024
# Room for the AMQP envelope, application properties and headers around the body.
MESSAGE_OVERHEAD_BYTES = 8 * 1024


class EnvelopeKind(str, Enum):
    CHANGE = "change"
    COMMAND = "command"
    COMMAND_RESULT = "command-result"
    RUN_MARKER = "run-marker"
    DOSSIER_STATE = "dossier-state"


KIND_SINCE_VERSION = {EnvelopeKind.DOSSIER_STATE: 2}
"""Kinds added after version 1, with the schema version that introduced them."""


class Op(str, Enum):
    UPSERT = "upsert"
    DELETE = "delete"
    INVALID = "invalid"        # a Sage row that cannot be mapped: `error` says why, `record` is None
    RUN_START = "run-start"
    RUN_END = "run-end"
    # dossier states
    ACTIVATE = "activate"
    DEACTIVATE = "deactivate"
    # commands
    PRICE_QUOTE = "price-quote"
    CREATE_QUOTE = "create-quote"
    CREATE_PROSPECT = "create-prospect"
    UPDATE_PROSPECT = "update-prospect"
    CREATE_CONTACT = "create-contact"
    UPDATE_CONTACT = "update-contact"


def _json_default(value: Any):
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, (dt.date, dt.datetime)):
        return value.isoformat()
    if isinstance(value, Enum):
        return value.value
    if isinstance(value, (set, frozenset)):
        return sorted(value)
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")


def canonical_json(value: Any) -> str:
    """JSON with sorted keys and no spaces: the same data always gives the same text."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=_json_default)


def content_hash(record: Optional[dict]) -> str:
    """SHA-256 of a record's canonical JSON (`""` for a deletion)."""
    if record is None:
        return ""
    return hashlib.sha256(canonical_json(record).encode("utf-8")).hexdigest()


def message_id(*parts: str) -> str:
    """A deterministic message id (Service Bus accepts up to 128 characters)."""
    return hashlib.sha256("\x1f".join(parts).encode("utf-8")).hexdigest()[:64]


class Envelope(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, use_enum_values=False)

    v: int = SCHEMA_VERSION
    kind: EnvelopeKind
    dossier: str = Field(min_length=1, max_length=128)
    run_id: str = Field(min_length=1)
    entity: Optional[str] = None
    op: Op
    key: Optional[str] = None
    hash: str = ""
    record: Optional[dict] = None
    counts: Optional[dict[str, int]] = None
    error: Optional[str] = None
    sent_at: Optional[dt.datetime] = None
    correlation_id: Optional[str] = None
    warnings: Optional[list[dict[str, Any]]] = None

    @model_validator(mode="after")
    def _kind_fits_version(self) -> "Envelope":
        needed = KIND_SINCE_VERSION.get(self.kind, SCHEMA_VERSION)
        if self.warnings:
            needed = max(needed, WARNINGS_SINCE_VERSION)
        if not needed <= self.v <= LATEST_SCHEMA_VERSION:
            raise ValueError(f"a {self.kind.value} envelope cannot be of schema version {self.v}")
        return self

    @property
    def id(self) -> str:
        """Deterministic id: dossier, entity, key, operation and content hash.

        Run markers are identified by their run instead of a record, dossier states by the
        agent's id of that change of state (`run_id`).
        """
        if self.kind is EnvelopeKind.RUN_MARKER:
            return message_id(self.dossier, "run", self.run_id, self.op.value)
        if self.kind is EnvelopeKind.DOSSIER_STATE:
            return message_id(self.dossier, self.kind.value, self.run_id, self.op.value)
        return message_id(self.dossier, self.kind.value, self.entity or "", self.key or "",
                          self.op.value, self.hash)

    def to_json(self) -> str:
        return canonical_json(self.model_dump(mode="json", exclude_none=True))

    @classmethod
    def change(cls, *, dossier: str, run_id: str, entity: str, key: str, record: Optional[dict],
               sent_at: Optional[dt.datetime] = None) -> "Envelope":
        """A change envelope; `record=None` means the Sage record was deleted."""
        return cls(kind=EnvelopeKind.CHANGE, dossier=dossier, run_id=run_id, entity=entity, key=key,
                   op=Op.DELETE if record is None else Op.UPSERT, hash=content_hash(record),
                   record=record, sent_at=sent_at)

    @classmethod
    def invalid(cls, *, dossier: str, run_id: str, entity: str, key: str, error: str, raw_hash: str,
                sent_at: Optional[dt.datetime] = None) -> "Envelope":
        """A Sage row the agent could not map; the cloud records it as an incident."""
        return cls(kind=EnvelopeKind.CHANGE, dossier=dossier, run_id=run_id, entity=entity, key=key,
                   op=Op.INVALID, hash=raw_hash, error=error, sent_at=sent_at)

    @classmethod
    def run_marker(cls, *, dossier: str, run_id: str, start: bool, counts: Optional[dict[str, int]] = None,
                   sent_at: Optional[dt.datetime] = None, realignment: bool = False,
                   facts: Optional[dict[str, Any]] = None, name: Optional[str] = None,
                   reasons: tuple[str, ...] = (), source: Optional[dict[str, Any]] = None) -> "Envelope":
        """A run's start (`realignment`, and `facts` about the dossier: its `ssm_branch`, database
        `identity` and realignment `cause`; its display `name` and the `reasons` for a realignment
        when known; from a file-exchange source its `source` report: `shared.sync.exchange_report`)
        or its end (`counts`)."""
        record = None
        if start:
            record = {**(facts or {}), "realignment": realignment}
            if name:
                record["name"] = name
            if reasons:
                record["reasons"] = list(reasons)
            if source:
                record["source"] = source
        return cls(kind=EnvelopeKind.RUN_MARKER, dossier=dossier, run_id=run_id,
                   op=Op.RUN_START if start else Op.RUN_END, counts=counts, record=record, sent_at=sent_at)

    @classmethod
    def dossier_state(cls, *, dossier: str, change_id: str, active: bool, changed_at: dt.datetime,
                      name: Optional[str] = None, sent_at: Optional[dt.datetime] = None) -> "Envelope":
        """The agent deactivated (`active=False`) or activated again a dossier at `changed_at`.

        `change_id` is the agent's id of that change of state: a re-send carries the same one
        (and so the same message id), the next change of the same dossier another one.
        """
        record: dict[str, Any] = {"active": active, "changed_at": changed_at.astimezone(dt.timezone.utc).isoformat()}
        if name:
            record["name"] = name
        return cls(v=KIND_SINCE_VERSION[EnvelopeKind.DOSSIER_STATE], kind=EnvelopeKind.DOSSIER_STATE,
                   dossier=dossier, run_id=change_id, op=Op.ACTIVATE if active else Op.DEACTIVATE,
                   hash=content_hash(record), record=record, sent_at=sent_at)


class EnvelopeBatch(BaseModel):
    """The body of one bus message: envelopes of one dossier, in order."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    v: int = SCHEMA_VERSION
    dossier: str
    envelopes: tuple[Envelope, ...]

    @model_validator(mode="before")
    @classmethod
    def _lowest_readable_version(cls, data: Any) -> Any:
        """Without an explicit `v`, the batch takes the highest version among its envelopes."""
        if isinstance(data, dict) and "v" not in data:
            versions = [e.v if isinstance(e, Envelope) else e.get("v", SCHEMA_VERSION) if isinstance(e, dict)
                        else SCHEMA_VERSION for e in data.get("envelopes") or ()]
            data = {**data, "v": max(versions, default=SCHEMA_VERSION)}
        return data

    @model_validator(mode="after")
    def _version_covers_envelopes(self) -> "EnvelopeBatch":
        if self.v not in READABLE_VERSIONS:
            raise ValueError(f"unsupported envelope batch version: {self.v}")
        newer = max((e.v for e in self.envelopes), default=SCHEMA_VERSION)
        if newer > self.v:
            raise ValueError(f"a batch of schema version {self.v} carries an envelope of version {newer}")
        return self

    @property
    def message_id(self) -> str:
        return message_id(self.dossier, "batch", *(e.id for e in self.envelopes))

    def to_bytes(self) -> bytes:
        return canonical_json(self.model_dump(mode="json", exclude_none=True)).encode("utf-8")

    @classmethod
    def from_bytes(cls, body: bytes | str) -> "EnvelopeBatch":
        """Decode a message body; raises `ValueError` on anything that is not a valid batch."""
        if isinstance(body, bytes):
            body = body.decode("utf-8")
        data = json.loads(body)
        if not isinstance(data, dict) or data.get("v") not in READABLE_VERSIONS:
            raise ValueError(f"unsupported envelope batch version: {data.get('v') if isinstance(data, dict) else '?'}")
        batch = cls.model_validate(data)
        strays = {e.dossier for e in batch.envelopes} - {batch.dossier}
        if strays:
            raise ValueError(f"batch of dossier {batch.dossier} carries envelopes of {sorted(strays)}")
        return batch


def pack_batches(envelopes: Iterable[Envelope], *, max_bytes: int = MAX_MESSAGE_BYTES - MESSAGE_OVERHEAD_BYTES,
                 max_envelopes: int = 500) -> Iterator[EnvelopeBatch]:
    """Group envelopes of one dossier into batches whose JSON body stays under `max_bytes`.

    Order is kept. One envelope larger than `max_bytes` by itself raises ValueError: it could
    never be sent, and the caller must turn it into an incident for that record.
    """
    current: list[Envelope] = []
    size = 0
    dossier = None
    frame = len(EnvelopeBatch(dossier="x" * 128, envelopes=()).to_bytes())
    for envelope in envelopes:
        if dossier is None:
            dossier = envelope.dossier
        elif envelope.dossier != dossier:
            raise ValueError("pack_batches takes the envelopes of one dossier at a time")
        item = len(envelope.to_json().encode("utf-8")) + 1
        if item + frame > max_bytes:
            raise ValueError(f"{envelope.entity} '{envelope.key}' is too large to send ({item} bytes)")
        if current and (size + item + frame > max_bytes or len(current) >= max_envelopes):
            yield EnvelopeBatch(dossier=dossier, envelopes=tuple(current))
            current, size = [], 0
        current.append(envelope)
        size += item
    if current:
        yield EnvelopeBatch(dossier=dossier, envelopes=tuple(current))
