"""Users and licences: which Sage collaborators have an SSM user, and creating the ones an administrator chose.

Every active SSM user is a paid licence, so the sync never creates one: a collaborator is linked
when an SSM user has the same e-mail, else it waits, "à inviter/créer". `collaborators` lists them
per dossier with their SSM match (e-mail, case aside, live users only); `collaborator_rows` does the
same from the state store alone (the status page). `create_users` creates the chosen collaborators
with every field the API requires, binds each link right after its POST and resolves its invitation
incident. Nothing here runs unless an administrator asks (`ssm-connector users`).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Iterable, Mapping, Optional

from shared.config import Settings
from shared.errors import SsmAuthError, SsmError
from shared.messages import Message, text
from shared.ssm import contract
from shared.ssm.tenant import (BRANCHES, COUNTRIES, FRANCE_ISO2, USERS, choose_branch, find_code, live,
                               users_by_email)
from shared.state.records import Link
from shared.sync.binder import Binder

USER = "user"
INVITE = "invite"
LINKED, TO_CREATE, NO_EMAIL = "linked", "to-create", "no-email"
STATE_MESSAGES = {LINKED: "users.state.linked", TO_CREATE: "users.state.to_create", NO_EMAIL: "users.state.no_email"}
CREATED, LINKED_EXISTING, ALREADY_LINKED, REFUSED, FAILED = "created", "linked", "already-linked", "refused", "failed"


@dataclass(frozen=True)
class Collaborator:
    """A Sage collaborator as its link keeps it (`base["_collaborator"]`, else the mapped fields)."""

    key: str
    first_name: Optional[str]
    last_name: Optional[str]
    email: Optional[str]
    phone: Optional[str]
    mobile: Optional[str]

    @classmethod
    def of(cls, link: Link) -> "Collaborator":
        known = link.base.get("_collaborator")
        if isinstance(known, Mapping):
            values = {name: _clean(known.get(name)) for name in ("first_name", "last_name", "email", "phone", "mobile")}
        else:
            values = dict(first_name=_clean(link.base.get("name")), last_name=_clean(link.base.get("lastName")),
                          email=_clean(link.base.get("email")), phone=None, mobile=None)
        return cls(key=link.sage_key, **values)

    @property
    def name(self) -> str:
        return " ".join(p for p in (self.first_name, self.last_name) if p) or self.key


def _clean(value: Any) -> Optional[str]:
    if not isinstance(value, str):
        return None
    return value.strip() or None


@dataclass(frozen=True)
class CollaboratorRow:
    """One line of the collaborators list. `bound`: the link itself holds `ssm_id` (else it is only
    the e-mail match found in SSM, which the next sync binds)."""

    dossier: str
    key: str
    name: str
    email: Optional[str]
    state: str
    ssm_id: Optional[int] = None
    bound: bool = False

    @property
    def state_label(self) -> str:
        return text(STATE_MESSAGES[self.state])

    def to_dict(self) -> dict[str, Any]:
        return {"dossier": self.dossier, "key": self.key, "name": self.name, "email": self.email,
                "state": self.state, "state_label": self.state_label, "ssm_id": self.ssm_id, "bound": self.bound}


def _user_links(store, dossier: str) -> list[Link]:
    return sorted((link for link in store.list_links(dossier, USER) if not link.deleted), key=lambda l: l.sage_key)


def collaborator_rows(store, dossier: str,
                      ssm_users: Optional[Mapping[str, dict]] = None) -> list[CollaboratorRow]:
    """The dossier's collaborators; matched against `ssm_users` (by casefolded e-mail, as
    `users_by_email` gives them) when given, else from the links alone."""
    rows = []
    for link in _user_links(store, dossier):
        who = Collaborator.of(link)
        match = ssm_users.get(who.email.casefold()) if ssm_users is not None and who.email else None
        if link.ssm_id is not None:
            state, ssm_id = LINKED, link.ssm_id
        elif not who.email:
            state, ssm_id = NO_EMAIL, None
        elif match is not None:
            state, ssm_id = LINKED, int(match["id"])
        else:
            state, ssm_id = TO_CREATE, None
        rows.append(CollaboratorRow(dossier, who.key, who.name, who.email, state, ssm_id,
                                    bound=link.ssm_id is not None))
    return rows


def collaborators(store, client, dossier_ids: Iterable[str]) -> list[CollaboratorRow]:
    """Every collaborator of these dossiers with its SSM match (one read of SSM's users)."""
    users = users_by_email(client.list(USERS))
    return [row for dossier in dossier_ids for row in collaborator_rows(store, dossier, users)]


# --- creating ------------------------------------------------------------------------------------
@dataclass(frozen=True)
class CreationResult:
    """What `create_users` did for one collaborator, in a French sentence (`message`)."""

    dossier: str
    key: str
    outcome: str        # created, linked, already-linked, refused, failed
    message: Message
    ssm_id: Optional[int] = None

    @property
    def ok(self) -> bool:
        return self.outcome in (CREATED, LINKED_EXISTING, ALREADY_LINKED)

    def to_dict(self) -> dict[str, Any]:
        return {"dossier": self.dossier, "key": self.key, "outcome": self.outcome, "ssm_id": self.ssm_id,
                "code": self.message.code, "text": self.message.text}


@dataclass
class _Tenant:
    users: dict[str, dict]
    france_id: Optional[int]
    branch_id: Optional[int]
    branch_problem: Optional[Message]


def _tenant(client, settings: Settings, dossier: str) -> _Tenant:
    users = users_by_email(client.list(USERS))
    france = find_code(live(client.list(COUNTRIES)), "iso2", FRANCE_ISO2)
    choice = choose_branch(client.list(BRANCHES), settings.dossier(dossier).ssm_branch, settings.ssm.branch)
    return _Tenant(users, None if france is None else int(france["id"]), choice.id,
                   None if choice.entry is not None else choice.message())


def pending_keys(store, dossier: str) -> list[str]:
    """The collaborators of a dossier that could be created: not bound yet, with an e-mail."""
    return [row.key for row in collaborator_rows(store, dossier) if row.state == TO_CREATE]


def create_users(store, client, settings: Settings, dossier: str, keys: Iterable[str]) -> list[CreationResult]:
    """Create the chosen pending collaborators of `dossier` as SSM users, one POST each.

    A collaborator an SSM user already has the e-mail of is bound to that user instead (no licence
    taken twice); one without e-mail, or without any phone when `[ssm] user_phone_default` is not
    set, is refused with a message and nothing is sent for it.
    """
    keys = list(dict.fromkeys(keys))
    if not keys:
        return []
    binder = Binder(store, dossier, USER)
    tenant = _tenant(client, settings, dossier)
    return [_create_one(store, client, settings, binder, tenant, key) for key in keys]


def _create_one(store, client, settings: Settings, binder: Binder, tenant: _Tenant, key: str) -> CreationResult:
    dossier = binder.dossier
    link = binder.to_external(key)
    if link is None or link.deleted:
        return CreationResult(dossier, key, REFUSED, Message.of("users.unknown", key=key, dossier=dossier))
    who = Collaborator.of(link)
    named = dict(name=who.name, key=key)
    if link.ssm_id is not None:
        return CreationResult(dossier, key, ALREADY_LINKED, Message.of("users.already_linked", id=link.ssm_id,
                                                                       **named), link.ssm_id)
    if not who.email:
        return CreationResult(dossier, key, REFUSED, Message.of("users.refused.no_email", **named))
    existing = tenant.users.get(who.email.casefold())
    if existing is not None:
        ssm_id = int(existing["id"])
        binder.bind(key, ssm_id, base={**link.base, "_ext_id": existing.get("extId")}, hash=link.hash, link=link)
        store.resolve_incident(dossier, USER, key, INVITE)
        return CreationResult(dossier, key, LINKED_EXISTING,
                              Message.of("users.linked_existing", email=who.email, id=ssm_id, **named), ssm_id)
    refusal = _refusal(settings, tenant, who, dossier)
    if refusal is not None:
        return CreationResult(dossier, key, REFUSED, refusal)
    ext_id = binder.ext_id(key)
    language = settings.ssm.user_language
    body = {
        "name": who.first_name or who.last_name, "lastName": who.last_name or who.first_name,
        "email": who.email, "nic": who.email.split("@")[0],
        "phone": _phone(settings, who),
        "idPrefix": tenant.france_id, "dbLanguage": language, "uiLanguage": language,
        "branches": [tenant.branch_id], "isActive": True, "extId": ext_id,
    }
    try:
        ssm_id = client.create(USERS, body)
    except SsmAuthError:
        raise
    except SsmError as exc:
        return CreationResult(dossier, key, FAILED, Message.of("users.failed", reason=exc.user_message, **named))
    binder.bind(key, ssm_id, base={**link.base, "_ext_id": ext_id}, hash=link.hash, link=link)
    store.resolve_incident(dossier, USER, key, INVITE)
    tenant.users[who.email.casefold()] = {**body, "id": ssm_id}
    return CreationResult(dossier, key, CREATED, Message.of("users.created", id=ssm_id, **named), ssm_id)


def _phone(settings: Settings, who: Collaborator) -> Optional[str]:
    """Sage's phone, else its mobile, else `[ssm] user_phone_default`; never an invented one."""
    return who.phone or who.mobile or _clean(settings.ssm.user_phone_default)


def _refusal(settings: Settings, tenant: _Tenant, who: Collaborator, dossier: str) -> Optional[Message]:
    """Why this collaborator cannot be created with every field SSM requires, or None."""
    named = dict(name=who.name, key=who.key)
    language = settings.ssm.user_language
    if language not in contract.USER_LANGUAGES:
        return Message.of("users.refused.language", value=language, choices=", ".join(contract.USER_LANGUAGES),
                          **named)
    if _phone(settings, who) is None:
        return Message.of("users.refused.no_phone", **named)
    if tenant.france_id is None:
        return Message.of("users.refused.no_country", **named)
    if tenant.branch_id is None:
        return Message.of("users.refused.no_branch", dossier=dossier, reason=tenant.branch_problem.text, **named)
    return None
