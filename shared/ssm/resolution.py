"""The resolution table: what the SSM client does with every answer that is not a success.

One row per (HTTP status or transport failure, SSM application code, operation) gives the action
(retry, log in again, fail the record, skip, stop on refused keys) and the sentence a Sage
administrator reads (a code of the French catalogue, `shared.messages`). Rows are data, matched top to bottom, first match wins: the most specific
rows come first. `resolve` never raises; the last row catches everything.
"""
from __future__ import annotations

from dataclasses import dataclass
from enum import Enum

from shared.messages import CATALOGUE, sentence, text


class Action(str, Enum):
    RETRY = "retry"        # transient: back off and try again, a bounded number of times
    RELOGIN = "relogin"    # the session expired: log in once more, then retry the call
    AUTH = "auth"          # the integration keys are refused: nothing can sync until fixed
    RECORD = "record"      # this record cannot be synced as it is
    SKIP = "skip"          # nothing to do (the record is already gone)


# Pseudo-statuses for failures that never produced an HTTP answer.
TIMEOUT = "timeout"
CONNECTION = "connection"
# Status classes used by the catch-all rows.
CLIENT_ERROR = "4xx"
SERVER_ERROR = "5xx"

LOGIN = "LOGIN"  # the operation name of POST /login

# SSM application codes (from the public documentation).
CODE_DATABASE = 900
CODE_SQL_GENERATION = 901
CODE_RESOURCE_MISSING = 910

_KEYS_REFUSED = "sync.ssm.keys_refused"

@dataclass(frozen=True)
class Resolution:
    """One row of the table.

    `status` is an HTTP status, TIMEOUT, CONNECTION, CLIENT_ERROR, SERVER_ERROR or None (any);
    `code` an SSM application code or None (any); `operation` an HTTP method, LOGIN or None.
    `message` is the code of a catalogue sentence (`shared.messages`) over: entity, target,
    resource, message, status, attempts, timeout, public_key.
    """

    status: int | str | None
    code: int | None
    operation: str | None
    action: Action
    message: str

    def matches(self, status: int | str, code: int | None, operation: str) -> bool:
        if self.operation is not None and self.operation != operation:
            return False
        if self.code is not None and self.code != code:
            return False
        if self.status is None or self.status == status:
            return True
        if isinstance(status, int):
            return (self.status == CLIENT_ERROR and 400 <= status < 500) or \
                   (self.status == SERVER_ERROR and 500 <= status < 600)
        return False

    def render(self, **values) -> str:
        return sentence(CATALOGUE[self.message].format_map(_Defaults(values)))


R, A = Resolution, Action

RESOLUTIONS: tuple[Resolution, ...] = (
    # Login: any refusal means the keys are wrong or revoked; transient failures retry below.
    R(400, None, LOGIN, A.AUTH, _KEYS_REFUSED),
    R(401, None, LOGIN, A.AUTH, _KEYS_REFUSED),
    R(403, None, LOGIN, A.AUTH, _KEYS_REFUSED),
    R(404, None, LOGIN, A.AUTH, "sync.ssm.no_login"),
    # Deleting what is already gone is done.
    R(404, None, "DELETE", A.SKIP, "sync.ssm.already_gone"),
    R(410, None, "DELETE", A.SKIP, "sync.ssm.already_gone"),
    # SSM application codes.
    R(None, CODE_DATABASE, None, A.RETRY, "sync.ssm.database"),
    R(None, CODE_SQL_GENERATION, None, A.RECORD, "sync.ssm.query"),
    R(None, CODE_RESOURCE_MISSING, None, A.RECORD, "sync.ssm.refers_to_missing"),
    # Sessions.
    R(401, None, None, A.RELOGIN, "sync.ssm.session_refused"),
    # Transient failures.
    R(429, None, None, A.RETRY, "sync.ssm.throttled"),
    R(500, None, None, A.RETRY, "sync.ssm.no_answer"),
    R(502, None, None, A.RETRY, "sync.ssm.no_answer"),
    R(503, None, None, A.RETRY, "sync.ssm.no_answer"),
    R(504, None, None, A.RETRY, "sync.ssm.no_answer"),
    R(TIMEOUT, None, None, A.RETRY, "sync.ssm.timeout"),
    R(CONNECTION, None, None, A.RETRY, "sync.ssm.unreachable"),
    # The record itself.
    R(400, None, None, A.RECORD, "sync.ssm.refused"),
    R(403, None, None, A.RECORD, "sync.ssm.forbidden"),
    R(404, None, None, A.RECORD, "sync.ssm.not_found"),
    R(405, None, None, A.RECORD, "sync.ssm.method"),
    R(409, None, None, A.RECORD, "sync.ssm.conflict"),
    R(413, None, None, A.RECORD, "sync.ssm.too_large"),
    R(CLIENT_ERROR, None, None, A.RECORD, "sync.ssm.refused_status"),
    R(SERVER_ERROR, None, None, A.RECORD, "sync.ssm.failed_status"),
    R(None, None, None, A.RECORD, "sync.ssm.other_status"),
)

del R, A

# How each SSM resource is named in sentences (the catalogue's `sync.resource.<resource>`).
ENTITY_LABELS: dict[str, str] = {
    resource: f"sync.resource.{resource}"
    for resource in ("accounts", "accountTypes", "contacts", "products", "productFamilies", "salesorders",
                     "salesordersLines", "salesorderStatuses", "users", "sales", "branches", "currencies",
                     "login", "extrafields")
}


def entity_label(resource: str) -> str:
    """The resource named in a French sentence, with its article (« le compte », « l'article »)."""
    code = ENTITY_LABELS.get(resource)
    return text(code) if code else text("sync.resource.other", resource=resource)


def resolve(status: int | str, code: int | None, operation: str) -> Resolution:
    """The first row of RESOLUTIONS matching this answer (the last row matches everything)."""
    for row in RESOLUTIONS:
        if row.matches(status, code, operation):
            return row
    raise AssertionError("the resolution table has no catch-all row")  # pragma: no cover


class _Defaults(dict):
    def __missing__(self, key: str) -> str:
        return "?" if key != "message" else text("sync.ssm.no_details")
