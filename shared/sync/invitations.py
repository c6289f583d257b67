"""Collaborateurs waiting for an SSM user: linked as soon as SSM has a user with their e-mail.

The sync never creates SSM users (each is a paid licence): a collaborateur without one waits,
with an "invite" incident, until an administrator invites them in SSM or creates them with
`ssm-connector users`. At each run end the waiting ones are matched by e-mail (case aside) and
linked; no SSM call is made when none waits.
"""
from __future__ import annotations

from typing import Callable

from shared.messages import record_name, text
from shared.models import Entity
from shared.state.records import JournalEntry
from shared.sync.binder import Binder, BindingRaceError
from shared.sync.dependencies import email_key
from shared.sync.incidents import INVITE
from shared.sync.mapping import USERS_RESOURCE


def match_invitations(store, ssm, incidents, dossier: str, *, clock: Callable) -> int:
    """Link the dossier's waiting collaborateurs SSM now has a user for; returns how many."""
    pending = [link for link in store.list_links(dossier, Entity.USER.value) if link.ssm_id is None and not link.deleted]
    if not pending:
        return 0
    users: dict[str, dict] = {}
    for user in sorted(ssm.list(USERS_RESOURCE), key=lambda u: u["id"]):
        key = email_key(user.get("email"))
        if key and not user.get("deleted"):
            users.setdefault(key, user)
    binder = Binder(store, dossier, Entity.USER.value, clock=clock)
    matched = 0
    for link in pending:
        user = users.get(email_key(link.base.get("email")) or "")
        if user is None:
            continue
        try:
            binder.bind(link.sage_key, int(user["id"]), base={**link.base, "_ext_id": user.get("extId")},
                        hash=link.hash, link=link)
        except BindingRaceError:
            continue
        incidents.resolve(dossier, Entity.USER.value, link.sage_key, INVITE)
        store.append_journal(JournalEntry(dossier=dossier, at=clock(), entity=Entity.USER.value, key=link.sage_key,
                                          event="invite-matched", detail={"ssm_id": user["id"]},
                                          message=text("journal.invite_matched", email=link.base.get("email"),
                                                       record=record_name(Entity.USER.value, link.sage_key))))
        matched += 1
    return matched
