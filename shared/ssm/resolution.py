"""The resolution table: what the SSM client does with every answer that is not a success.

One row per (HTTP status or transport failure, SSM application code, operation) gives the action
(retry, log in again, fail the record, skip, stop on refused keys) and the sentence a Sage
administrator reads. Rows are data, matched top to bottom, first match wins: the most specific
rows come first. `resolve` never raises; the last row catches everything.
"""
from __future__ import annotations

from dataclasses import dataclass
from enum import Enum


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

_KEYS_REFUSED = ("SSM refused the integration keys (public key {public_key}): check the SSM "
                 "public and private keys in the connector settings.")


@dataclass(frozen=True)
class Resolution:
    """One row of the table.

    `status` is an HTTP status, TIMEOUT, CONNECTION, CLIENT_ERROR, SERVER_ERROR or None (any);
    `code` an SSM application code or None (any); `operation` an HTTP method, LOGIN or None.
    `message` is a template over: entity, target, resource, message, status, attempts,
    timeout, public_key.
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
        return self.message.format_map(_Defaults(values))


R, A = Resolution, Action

RESOLUTIONS: tuple[Resolution, ...] = (
    # Login: any refusal means the keys are wrong or revoked; transient failures retry below.
    R(400, None, LOGIN, A.AUTH, _KEYS_REFUSED),
    R(401, None, LOGIN, A.AUTH, _KEYS_REFUSED),
    R(403, None, LOGIN, A.AUTH, _KEYS_REFUSED),
    R(404, None, LOGIN, A.AUTH, "SSM has no login service at {resource}: check the SSM base URL "
                                "in the connector settings."),
    # Deleting what is already gone is done.
    R(404, None, "DELETE", A.SKIP, "The {target} no longer exists in SSM; nothing to delete."),
    R(410, None, "DELETE", A.SKIP, "The {target} no longer exists in SSM; nothing to delete."),
    # SSM application codes.
    R(None, CODE_DATABASE, None, A.RETRY, "SSM reported a database error on the {entity} "
                                          "{attempts} times in a row (HTTP {status}): {message}"),
    R(None, CODE_SQL_GENERATION, None, A.RECORD, "SSM could not run the query on {resource}: "
                                                 "{message}"),
    R(None, CODE_RESOURCE_MISSING, None, A.RECORD, "SSM refused the {entity}: {message} (it refers "
                                                   "to something SSM does not have)"),
    # Sessions.
    R(401, None, None, A.RELOGIN, "SSM refused the connector's session again right after a fresh "
                                  "login: check that the integration keys are still active."),
    # Transient failures.
    R(429, None, None, A.RETRY, "SSM kept asking the connector to slow down (HTTP 429) after "
                                "{attempts} attempts; the {entity} will be tried again later."),
    R(500, None, None, A.RETRY, "SSM did not answer after {attempts} attempts (HTTP {status})."),
    R(502, None, None, A.RETRY, "SSM did not answer after {attempts} attempts (HTTP {status})."),
    R(503, None, None, A.RETRY, "SSM did not answer after {attempts} attempts (HTTP {status})."),
    R(504, None, None, A.RETRY, "SSM did not answer after {attempts} attempts (HTTP {status})."),
    R(TIMEOUT, None, None, A.RETRY, "SSM did not answer after {attempts} attempts (no answer "
                                    "within {timeout} s)."),
    R(CONNECTION, None, None, A.RETRY, "SSM could not be reached after {attempts} attempts "
                                       "({message}); check the network and the SSM base URL."),
    # The record itself.
    R(400, None, None, A.RECORD, "SSM refused the {entity}: {message}"),
    R(403, None, None, A.RECORD, "SSM does not allow this change to the {entity}: {message}"),
    R(404, None, None, A.RECORD, "SSM has no {target}."),
    R(405, None, None, A.RECORD, "SSM does not accept this operation on {resource}: {message}"),
    R(409, None, None, A.RECORD, "SSM refused the {entity} because it conflicts with another "
                                 "record: {message}"),
    R(413, None, None, A.RECORD, "SSM refused the {entity} because it is too large: {message}"),
    R(CLIENT_ERROR, None, None, A.RECORD, "SSM refused the {entity} (HTTP {status}): {message}"),
    R(SERVER_ERROR, None, None, A.RECORD, "SSM failed on the {entity} (HTTP {status}): {message}"),
    R(None, None, None, A.RECORD, "SSM answered HTTP {status} about the {entity}: {message}"),
)

del R, A

# How each SSM resource is named in sentences.
ENTITY_LABELS: dict[str, str] = {
    "accounts": "account",
    "accountTypes": "account type",
    "contacts": "contact",
    "products": "product",
    "productFamilies": "product family",
    "salesorders": "sales order",
    "salesordersLines": "sales order line",
    "salesorderStatuses": "sales order status",
    "users": "user",
    "sales": "sales total",
    "branches": "branch",
    "currencies": "currency",
    "login": "login",
}


def entity_label(resource: str) -> str:
    return ENTITY_LABELS.get(resource, resource)


def resolve(status: int | str, code: int | None, operation: str) -> Resolution:
    """The first row of RESOLUTIONS matching this answer (the last row matches everything)."""
    for row in RESOLUTIONS:
        if row.matches(status, code, operation):
            return row
    raise AssertionError("the resolution table has no catch-all row")  # pragma: no cover


class _Defaults(dict):
    def __missing__(self, key: str) -> str:
        return "?" if key != "message" else "no details given"
