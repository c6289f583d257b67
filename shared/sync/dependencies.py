"""Dependencies between records: the order a batch is applied in, and references resolved.

`plan` orders a batch's change envelopes by the rule table's dependency order (accounts before
their contacts, products before the documents using them) and keeps only the newest envelope of
each key, since every envelope carries the whole record. `BatchDependencies` is the
`MappingContext` of one batch: it turns a Sage key into the SSM id of its linked record (or raises
`DependencyMissingError`, so the record is retried, never dropped; when the cloud lost the
dossier's state, a reference without a link is found in SSM by its `extId`), finds the owner of an
account, and looks per-tenant ids up. `TenantDefaults` holds what is the same for every dossier
(the admin user, the branch), read once per process.
"""
from __future__ import annotations

import logging
import threading
from dataclasses import dataclass, field
from typing import Iterable, Optional

from shared.envelope import Envelope
from shared.errors import ConfigurationError, DependencyMissingError, SsmRecordError
from shared.messages import record_name, sentence, text
from shared.models import Entity
from shared.rules import DeletePolicy, rule_for, sync_order
from shared.ssm.lookups import ACCOUNT_TYPES, BRANCHES, SALES_ORDER_STATUSES
from shared.sync import mapping
from shared.sync.binder import external_id, legacy_external_id
from shared.sync.mapping import USERS_RESOURCE

log = logging.getLogger("ssm_connector.sync")

REFERENCED_RESOURCES = {Entity.ACCOUNT.value: mapping.ACCOUNT.resource,
                        Entity.PRODUCT.value: mapping.PRODUCT.resource,
                        Entity.USER.value: mapping.USER.resource}
"""The SSM resource of each entity other records refer to and that can be found by `extId`
(product families carry none: a family without a link waits for its own sync)."""


@dataclass
class Wave:
    """The envelopes of one entity, at most one per key: they may be applied in parallel."""

    entity: str
    envelopes: list[Envelope] = field(default_factory=list)


def plan(envelopes: Iterable[Envelope]) -> tuple[list[Wave], list[Envelope]]:
    """Waves in dependency order, and the envelopes superseded by a newer one of the same key."""
    newest: dict[tuple[str, str], Envelope] = {}
    superseded: list[Envelope] = []
    for envelope in envelopes:
        slot = (envelope.entity or "", envelope.key or "")
        if slot in newest:
            superseded.append(newest.pop(slot))
        newest[slot] = envelope
    rank = {entity.value: position for position, entity in enumerate(sync_order())}
    waves: dict[str, Wave] = {}
    for (entity, _key), envelope in newest.items():
        waves.setdefault(entity, Wave(entity)).envelopes.append(envelope)
    ordered = sorted(waves.values(), key=lambda wave: (rank.get(wave.entity, len(rank)), wave.entity))
    return ordered, superseded


def email_key(email: Optional[str]) -> Optional[str]:
    return email.strip().casefold() if email and email.strip() else None


NO_REP_KEY = "-"
"""The Sage key standing for "no sales rep" in the `extId` of a `/sales` total's rep."""


class TenantDefaults:
    """The admin user and the branch of the SSM tenant, looked up once per process."""

    def __init__(self, ssm, *, admin_user_email: Optional[str], branch: Optional[str],
                 dossier_branches: Optional[dict[str, str]] = None):
        self.ssm = ssm
        self.admin_user_email = admin_user_email
        self.branch = branch
        self.dossier_branches = {k: v for k, v in (dossier_branches or {}).items() if v}
        self._lock = threading.Lock()
        self._admin: Optional[dict] = None
        self._branch_ids: dict[Optional[str], int] = {}
        self._custom_fields: dict[str, frozenset[str]] = {}
        self._lookup_lock = threading.Lock()

    def admin_user(self) -> dict:
        """The user owning what has no owner in SSM: the one `[ssm] admin_user_email` names.

        SSM's users carry no admin flag (`level` and `userTypeId` are per tenant), so the
        connector does not guess: without the setting nothing is assigned.
        """
        with self._lock:
            if self._admin is None:
                if not self.admin_user_email:
                    raise ConfigurationError(text("sync.admin.not_configured"))
                wanted = email_key(self.admin_user_email)
                users = [u for u in self.ssm.list(USERS_RESOURCE) if not u.get("deleted")
                         and email_key(u.get("email")) == wanted]
                if not users:
                    raise ConfigurationError(text("sync.admin.missing", email=self.admin_user_email))
                self._admin = min(users, key=lambda u: u["id"])
            return self._admin

    def branch_id(self, dossier: Optional[str] = None) -> int:
        """The branch of a dossier's records: its `ssm_branch`, else `[ssm] branch`, else the
        tenant's first live branch."""
        name = self.dossier_branches.get(dossier or "") or self.branch
        with self._lock:
            if name not in self._branch_ids:
                if name:
                    self._branch_ids[name] = self.ssm.lookup_id(BRANCHES, name)
                else:
                    branches = [b for b in self.ssm.list(BRANCHES) if not b.get("deleted")]
                    if not branches:
                        raise ConfigurationError(text("sync.branch.none"))
                    self._branch_ids[name] = int(min(branches, key=lambda b: b["id"])["id"])
            return self._branch_ids[name]

    def lookup_id(self, resource: str, description: str) -> int:
        """The client's cached lookup, one thread at a time so the list is read once, not per thread."""
        with self._lookup_lock:
            return self.ssm.lookup_id(resource, description)

    def custom_fields(self, resource: str) -> frozenset[str]:
        """The tenant's `Z_*` fields of a resource (`/extrafields/<resource>/schema`); none when
        SSM gives no list."""
        with self._lookup_lock:
            known = self._custom_fields.get(resource)
            if known is None:
                try:
                    known = self.ssm.custom_fields(resource)
                except SsmRecordError as exc:
                    log.warning("no custom fields read for %s, none are synced: %s", resource, exc)
                    known = frozenset()
                self._custom_fields[resource] = known
            return known


class BatchDependencies:
    """References of one batch of one dossier (the `MappingContext` the mappers use).

    Positive answers are cached for the batch; a missing link is read again on each question,
    because an earlier wave of the same batch may have created it. With `find_unlinked` (the
    cloud lost the dossier's state) a reference that has no link at all is looked up in SSM by its
    `extId`; its link is left for the record's own next sync to rebuild.
    """

    def __init__(self, store, ssm, dossier: str, defaults: TenantDefaults, *, find_unlinked: bool = False):
        self.store = store
        self.ssm = ssm
        self.dossier = dossier
        self.defaults = defaults
        self.find_unlinked = find_unlinked
        self._lock = threading.Lock()
        self._ids: dict[tuple[str, str], int] = {}
        self._users_by_email: Optional[dict[str, dict]] = None
        self._prefetched: dict[str, dict[str, dict]] = {}
        self._asked: dict[str, set[str]] = {}

    # --- MappingContext -------------------------------------------------------------------------
    def ext_id(self, sage_key: str) -> str:
        return external_id(self.dossier, sage_key)

    def linked_id(self, entity: Entity | str, sage_key: str, *, needed_by: str) -> int:
        entity = Entity(entity).value
        found = self.try_linked_id(entity, sage_key)
        if found is None:
            raise DependencyMissingError(
                sentence(text("sync.dependency_missing", needed_by=needed_by, record=record_name(entity, sage_key))),
                detail=f"no link {self.dossier}/{entity}/{sage_key}", entity=entity, key=sage_key)
        return found

    def try_linked_id(self, entity: str, sage_key: str) -> Optional[int]:
        with self._lock:
            cached = self._ids.get((entity, sage_key))
        if cached is not None:
            return cached
        link = self.store.get_link(self.dossier, entity, sage_key)
        if link is None and self.find_unlinked:
            return self._found_in_ssm(entity, sage_key)
        if link is None or link.ssm_id is None:
            return None
        if link.deleted and rule_for(entity).sage_delete is not DeletePolicy.NOT_AVAILABLE_IN_SSM \
                and entity != Entity.USER.value:
            return None
        with self._lock:
            self._ids[(entity, sage_key)] = link.ssm_id
        return link.ssm_id

    def _found_in_ssm(self, entity: str, sage_key: str) -> Optional[int]:
        resource = REFERENCED_RESOURCES.get(entity)
        if resource is None:
            return None
        for ext_id in (self.ext_id(sage_key), legacy_external_id(self.dossier, sage_key)):
            record = self.ssm.find_by_ext_id(resource, ext_id) if ext_id else None
            if record is not None and not record.get("deleted"):
                with self._lock:
                    self._ids[(entity, sage_key)] = int(record["id"])
                return int(record["id"])
        return None

    def forget(self, entity: str, sage_key: str) -> None:
        with self._lock:
            self._ids.pop((entity, sage_key), None)

    def owner_id(self, rep_key: Optional[str]) -> int:
        """The SSM user linked to the Sage rep, else the admin user."""
        if rep_key:
            found = self.try_linked_id(Entity.USER.value, rep_key)
            if found is not None:
                return found
        return int(self.defaults.admin_user()["id"])

    def account_owner_id(self, account_key: str) -> int:
        """The SSM owner the account of this key had when last synced, else the rep's rule."""
        link = self.store.get_link(self.dossier, Entity.ACCOUNT.value, account_key)
        owner = link.base.get("salesRepId1") if link is not None else None
        return int(owner) if isinstance(owner, int) else int(self.defaults.admin_user()["id"])

    def owner_ext_id(self, rep_key: Optional[str]) -> str:
        """The `extId` naming the rep's user in `/sales` (required there): the user's own when SSM
        has one, else the one this dossier gives the collaborateur (what `ssm-connector users`
        writes; an invited user can be given it in SSM); without a rep, the admin's, else the
        dossier's "no rep" id."""
        if rep_key:
            link = self.store.get_link(self.dossier, Entity.USER.value, rep_key)
            if link is not None and link.ssm_id is not None and link.base.get("_ext_id"):
                return link.base["_ext_id"]
            return self.ext_id(rep_key)
        return self.defaults.admin_user().get("extId") or self.ext_id(NO_REP_KEY)

    def account_type_id(self, description: str) -> int:
        return self.defaults.lookup_id(ACCOUNT_TYPES, description)

    def status_id(self, description: str) -> int:
        return self.defaults.lookup_id(SALES_ORDER_STATUSES, description)

    def branch_id(self) -> int:
        return self.defaults.branch_id(self.dossier)

    def custom_fields(self, resource: str) -> frozenset[str]:
        return self.defaults.custom_fields(resource)

    # --- users ----------------------------------------------------------------------------------
    def ssm_user_by_email(self, email: Optional[str]) -> Optional[dict]:
        """The live SSM user with this e-mail (case ignored); SSM's users are read once per batch."""
        wanted = email_key(email)
        if wanted is None:
            return None
        with self._lock:
            if self._users_by_email is None:
                directory: dict[str, dict] = {}
                for user in sorted(self.ssm.list(USERS_RESOURCE), key=lambda u: u["id"]):
                    key = email_key(user.get("email"))
                    if key and not user.get("deleted"):
                        directory.setdefault(key, user)
                self._users_by_email = directory
            return self._users_by_email.get(wanted)

    def remember_user(self, user: dict) -> None:
        key = email_key(user.get("email"))
        with self._lock:
            if key and self._users_by_email is not None:
                self._users_by_email.setdefault(key, user)

    # --- realignment read-ahead -----------------------------------------------------------------
    def prefetch(self, resource: str, sage_keys: Iterable[str]) -> None:
        """Read ahead the SSM records carrying these keys' `extId` (a few dozen per call)."""
        ext_ids = sorted({self.ext_id(key) for key in sage_keys})
        found = self.ssm.find_by_ext_ids(resource, ext_ids)
        with self._lock:
            self._prefetched.setdefault(resource, {}).update(found)
            self._asked.setdefault(resource, set()).update(ext_ids)

    def prefetched(self, resource: str, ext_id: str) -> tuple[bool, Optional[dict]]:
        """(whether the record was read ahead, the record or None when SSM has none)."""
        with self._lock:
            asked = ext_id in self._asked.get(resource, ())
            return asked, self._prefetched.get(resource, {}).get(ext_id)
