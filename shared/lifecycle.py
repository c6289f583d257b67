"""A dossier's lifecycle: its states, who may move it from one to another, and what each state
lets through in each direction. The agent, the cloud handlers (Sage → SSM and SSM → Sage) and the
status report all ask this module; none keeps its own idea of whether a dossier is "on".

States (`State`):

| State | Meaning | Sage → SSM | SSM → Sage |
|---|---|---|---|
| unselected | a database the agent sees, never chosen | no | no |
| selected | chosen, its first run (a full load) not done yet | yes | waits |
| active | synchronised | yes | yes |
| inactive | deactivated: its SSM records stay, status lists it | no | waits |
| realigning | reactivated, or chosen again after a reinstall: its next run reads it in full, Sage primary | yes | waits |
| restored | its Sage database was restored or replaced: its next run reads it in full, Sage primary | yes | waits |

What does not go through is never lost: Sage's changes are read again by the realignment that
follows every reactivation, and SSM's changes stay to be read by the next SSM pass (the inbound
reader keeps them waiting); a command already on its way waits on the agent's queue. Sage's answers
to commands already applied (command results) always go through: they record what Sage has done.

Who moves a dossier (`TRANSITIONS`): the administrator (select, deselect, choose a dossier the
group already knows after a reinstall), the agent's change detection (a restored database, a
run completed) and the cloud, which mirrors the agent's notices and run markers in its own store.
A move not in the table is refused (`LifecycleError`), so a state never changes by accident.

On the cloud side the state is kept in the `Dossier` record's own fields (`active`,
`first_load_done`, `needs_realignment`, `realignment_cause`); `cloud_state` reads it and
`cloud_changes` writes it.
"""
from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from enum import Enum
from typing import Any, Optional

from shared.errors import ConnectorError


class State(str, Enum):
    UNSELECTED = "unselected"
    SELECTED = "selected"
    ACTIVE = "active"
    INACTIVE = "inactive"
    REALIGNING = "realigning"
    RESTORED = "restored"


class Actor(str, Enum):
    ADMINISTRATOR = "administrator"     # `agent select` / `deselect`, or `active` in the configuration
    DETECTION = "detection"             # the agent's change detection and runs
    CLOUD = "cloud"                     # the cloud handlers, applying the agent's notices and markers


class Event(str, Enum):
    SELECT = "select"                   # a database chosen for the first time
    DEACTIVATE = "deactivate"
    REACTIVATE = "reactivate"           # chosen again after a deactivation
    ADOPT = "adopt"                     # a dossier the group already knows, chosen on a new agent
    RESTORE = "restore"                 # the database was restored, replaced, or went back in time
    REALIGN = "realign"                 # a realignment started for another reason (the cloud's mirror)
    SYNCED = "synced"                   # a run completed: a first load, or a realignment


class Direction(str, Enum):
    SAGE_TO_SSM = "sage-to-ssm"
    SSM_TO_SAGE = "ssm-to-sage"


class Cause(str, Enum):
    """Why a dossier realigns (kept with the state, shown by status and in the run marker)."""

    FIRST_LOAD = "first-load"
    REACTIVATED = "reactivated"
    REINSTALLED = "reinstalled"
    RESTORED = "restored"


ANY_SYNCED = frozenset({State.SELECTED, State.ACTIVE, State.REALIGNING, State.RESTORED})
ADMIN = frozenset({Actor.ADMINISTRATOR})
ADMIN_OR_CLOUD = frozenset({Actor.ADMINISTRATOR, Actor.CLOUD})
AGENT_OR_CLOUD = frozenset({Actor.DETECTION, Actor.CLOUD})


@dataclass(frozen=True)
class Transition:
    sources: frozenset[State]
    event: Event
    target: State
    actors: frozenset[Actor]
    cause: Optional[Cause] = None


TRANSITIONS: tuple[Transition, ...] = (
    Transition(frozenset({State.UNSELECTED}), Event.SELECT, State.SELECTED, ADMIN, Cause.FIRST_LOAD),
    Transition(frozenset({State.UNSELECTED, State.INACTIVE}), Event.ADOPT, State.REALIGNING, ADMIN,
               Cause.REINSTALLED),
    Transition(ANY_SYNCED, Event.DEACTIVATE, State.INACTIVE, ADMIN_OR_CLOUD),
    Transition(frozenset({State.INACTIVE}), Event.REACTIVATE, State.REALIGNING, ADMIN_OR_CLOUD, Cause.REACTIVATED),
    Transition(frozenset({State.ACTIVE, State.REALIGNING, State.RESTORED}), Event.RESTORE, State.RESTORED,
               AGENT_OR_CLOUD, Cause.RESTORED),
    Transition(frozenset({State.ACTIVE, State.REALIGNING}), Event.REALIGN, State.REALIGNING, AGENT_OR_CLOUD,
               Cause.REACTIVATED),
    Transition(ANY_SYNCED, Event.SYNCED, State.ACTIVE, AGENT_OR_CLOUD),
)
"""Every move a dossier can make. A first load that completes makes the dossier active too."""


TRAFFIC: dict[State, dict[Direction, bool]] = {
    State.UNSELECTED: {Direction.SAGE_TO_SSM: False, Direction.SSM_TO_SAGE: False},
    State.SELECTED: {Direction.SAGE_TO_SSM: True, Direction.SSM_TO_SAGE: False},
    State.ACTIVE: {Direction.SAGE_TO_SSM: True, Direction.SSM_TO_SAGE: True},
    State.INACTIVE: {Direction.SAGE_TO_SSM: False, Direction.SSM_TO_SAGE: False},
    State.REALIGNING: {Direction.SAGE_TO_SSM: True, Direction.SSM_TO_SAGE: False},
    State.RESTORED: {Direction.SAGE_TO_SSM: True, Direction.SSM_TO_SAGE: False},
}
"""What each state lets through, per direction (the table of the module docstring)."""

REALIGNS = frozenset({State.SELECTED, State.REALIGNING, State.RESTORED})
"""States whose next run reads the whole dossier (a first load is a full read too)."""


class LifecycleError(ConnectorError):
    """A move the lifecycle does not allow (from this state, by this actor)."""


def lets_through(state: State, direction: Direction) -> bool:
    return TRAFFIC[state][direction]


def is_running(state: State) -> bool:
    """Whether the agent runs the dossier (Sage → SSM goes through)."""
    return lets_through(state, Direction.SAGE_TO_SSM)


def transition(state: State, event: Event, actor: Actor) -> Transition:
    """The move `event` makes from `state` when `actor` asks.

    Raises:
        LifecycleError: the table has no such move, or not for this actor.
    """
    for move in TRANSITIONS:
        if move.event is event and state in move.sources:
            if actor not in move.actors:
                raise LifecycleError(f"{actor.value} may not {event.value} a dossier",
                                     detail=f"{state.value} --{event.value}--> {move.target.value}")
            return move
    raise LifecycleError(f"a dossier in state {state.value} cannot {event.value}",
                         detail=f"{state.value} --{event.value}--> ?")


def move(state: State, event: Event, actor: Actor) -> State:
    """The state after `event` (see `transition`)."""
    return transition(state, event, actor).target


def may(state: State, event: Event, actor: Actor) -> bool:
    try:
        transition(state, event, actor)
    except LifecycleError:
        return False
    return True


# --- the cloud's copy, in the Dossier record ----------------------------------------------------
def cloud_state(dossier: Any) -> State:
    """A cloud `Dossier` record's state (`shared.state.records.Dossier`)."""
    if not dossier.active:
        return State.INACTIVE
    if not dossier.first_load_done:
        return State.SELECTED
    if dossier.needs_realignment:
        return State.RESTORED if getattr(dossier, "realignment_cause", None) == Cause.RESTORED.value \
            else State.REALIGNING
    return State.ACTIVE


def cloud_changes(dossier: Any, event: Event, *, at: dt.datetime,
                  cause: Optional[Cause] = None) -> dict[str, Any]:
    """The `Dossier` fields to save for `event` applied by the cloud; {} when it changes nothing
    (a notice repeated, a state already reached).

    Raises:
        LifecycleError: the move is not allowed from the dossier's state.
    """
    state = cloud_state(dossier)
    if event is Event.DEACTIVATE and state is State.INACTIVE:
        return {}
    if event in (Event.REACTIVATE, Event.ADOPT) and state is not State.INACTIVE:
        return {}
    if event is Event.SYNCED and state is State.ACTIVE:
        return {}
    if event in (Event.REALIGN, Event.RESTORE) and state is State.SELECTED:
        return {}                                   # the first load is a full read already
    found = transition(state, event, Actor.CLOUD)
    target, why = found.target, cause or found.cause
    if target is State.INACTIVE:
        return {"active": False, "deactivated_at": at}
    if target in (State.REALIGNING, State.RESTORED):
        changes: dict[str, Any] = {"needs_realignment": True,
                                   "realignment_cause": (why or Cause.REACTIVATED).value}
        if state is State.INACTIVE:
            changes.update(active=True, activated_at=at)
        return changes
    if target is State.ACTIVE:
        changes = {"needs_realignment": False, "realignment_cause": None}
        if state is State.SELECTED:
            changes["first_load_done"] = True
        else:
            changes["last_realigned_at"] = at
        return changes
    raise LifecycleError(f"the cloud does not keep the state {target.value}")


__all__ = ["ANY_SYNCED", "Actor", "Cause", "Direction", "Event", "LifecycleError", "REALIGNS", "State",
           "TRAFFIC", "TRANSITIONS", "Transition", "cloud_changes", "cloud_state", "is_running", "lets_through",
           "may", "move", "transition"]
