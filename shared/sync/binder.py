"""The binder: Sage key ⇄ SSM id, one link per record, per dossier and entity.

Every SSM record created from Sage carries an `extId` naming its dossier and Sage key, so the
same Sage key in two dossiers is two SSM records and a lost link can be found again. The scheme
fits the 30 characters SSM allows on products (applied to every resource):
`<dossier tag>:<Sage key>`, where the tag is the dossier id when it has at most 8 characters,
else its first 3 characters and 5 of its hash; a key that would not fit, or that holds a double
quote, a backslash or a control character (none can be written in an SSM filter), is replaced by
`#` and 20 characters of its SHA-256 (base 32). The scheme is stable and, per dossier, injective
(a kept key never starts with `#`). `legacy_external_id` is the scheme of earlier releases
(`<dossier>:<key>`), still looked up so records they created are found, never duplicated.

The link is saved right after the create (as OCA connectors bind), before anything else is sent
for that record: a retry then updates instead of creating a duplicate. Two writers binding the
same key at once lose the race on the link's insert; the loser gets `BindingRaceError`
(retryable) and the SSM record it created for nothing is reported in `orphan_id` so the caller
can remove it.
"""
from __future__ import annotations

import base64
import datetime as dt
import hashlib
from typing import Any, Callable, Optional

from shared.messages import record_name, sentence, text
from shared.errors import AlreadyExistsError, ConcurrencyError, RetryableError
from shared.ssm.contract import EXT_ID_MAX_ASSUMED
from shared.state.records import Link, utcnow

DOSSIER_TAG_MAX = 8
HASHED_KEY_MARK = "#"
_UNSAFE = set('"\\') | {chr(c) for c in range(0x20)} | {chr(0x7F)}


def _digest(text: str, length: int) -> str:
    raw = hashlib.sha256(text.encode("utf-8")).digest()
    return base64.b32encode(raw).decode("ascii")[:length]


def dossier_tag(dossier: str) -> str:
    """The dossier's part of its `extId`s: the id itself when short, else 3 characters + 5 of hash."""
    if len(dossier) <= DOSSIER_TAG_MAX:
        return dossier
    return dossier[:3] + _digest(dossier, DOSSIER_TAG_MAX - 3)


def external_id(dossier: str, sage_key: str) -> str:
    """The `extId` every SSM record created from this dossier carries (at most 30 characters)."""
    head = dossier_tag(dossier) + ":"
    room = EXT_ID_MAX_ASSUMED - len(head)
    if len(sage_key) <= room and not sage_key.startswith(HASHED_KEY_MARK) \
            and not any(ch in _UNSAFE for ch in sage_key):
        return head + sage_key
    return head + HASHED_KEY_MARK + _digest(sage_key, min(20, room - 1))


def legacy_external_id(dossier: str, sage_key: str) -> Optional[str]:
    """The `extId` earlier releases wrote, when it differs from today's and can be searched for."""
    legacy = f"{dossier}:{sage_key}"
    if legacy == external_id(dossier, sage_key) or any(ch in _UNSAFE for ch in legacy):
        return None
    return legacy


class BindingRaceError(RetryableError):
    """Another writer linked the same Sage key first; `orphan_id` is our now useless SSM record."""

    def __init__(self, user_message: str, *, detail: str | None = None, orphan_id: int | None = None):
        super().__init__(user_message, detail=detail)
        self.orphan_id = orphan_id


class Binder:
    """Links of one entity of one dossier."""

    def __init__(self, store, dossier: str, entity: str, *, clock: Callable[[], dt.datetime] = utcnow):
        self.store = store
        self.dossier = dossier
        self.entity = entity
        self.clock = clock

    def ext_id(self, sage_key: str) -> str:
        return external_id(self.dossier, sage_key)

    def legacy_ext_id(self, sage_key: str) -> Optional[str]:
        return legacy_external_id(self.dossier, sage_key)

    def to_external(self, sage_key: str) -> Optional[Link]:
        """The link of a Sage key (None when the record was never bound)."""
        return self.store.get_link(self.dossier, self.entity, sage_key)

    def to_internal(self, ssm_id: int) -> Optional[Link]:
        """The link of an SSM id (None when no Sage record of this dossier is bound to it)."""
        return self.store.get_link_by_ssm_id(self.dossier, self.entity, ssm_id)

    def bind(self, sage_key: str, ssm_id: Optional[int], *, base: dict[str, Any], hash: str = "",
             link: Optional[Link] = None, deleted: bool = False) -> Link:
        """Save the link of `sage_key` to `ssm_id` now.

        With `link` (the one read earlier) the save is conditional on its ETag; without, the link
        is inserted and must not exist yet.

        Raises:
            BindingRaceError: another writer saved the link in between.
        """
        if link is None:
            new = Link(dossier=self.dossier, entity=self.entity, sage_key=sage_key, ssm_id=ssm_id,
                       base=base, hash=hash, deleted=deleted, updated_at=self.clock())
        else:
            new = link.model_copy(update={"ssm_id": ssm_id, "base": base, "hash": hash, "deleted": deleted,
                                          "updated_at": self.clock()})
        try:
            return self.store.save_link(new)
        except (ConcurrencyError, AlreadyExistsError) as exc:
            winner = self.to_external(sage_key)
            orphan = ssm_id if ssm_id is not None and (winner is None or winner.ssm_id != ssm_id) else None
            if link is not None and link.ssm_id == ssm_id:
                orphan = None
            raise BindingRaceError(
                sentence(text("sync.binding_race", record=record_name(self.entity, sage_key))), detail=f"link {self.dossier}/{self.entity}/{sage_key}: {exc}",
                orphan_id=orphan) from exc

    def unbind(self, link: Link) -> None:
        self.store.delete_link(link)
