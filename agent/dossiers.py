"""The agent's side of each dossier's lifecycle (`shared.lifecycle`): its state, and the notices
that tell the cloud of a deactivation or an activation.

Both live in the agent's state file, beside the change tracking of `agent.checkpoint` (so deleting
that file is a reinstall: every state is gone with it). A dossier the administrator never chose
has no row; a dossier listed in the configuration with `active = true` counts as chosen by the
administrator until they deselect it, and `active = false` in the configuration deactivates it.

Every move goes through `shared.lifecycle.transition`, so a move the table does not allow is
refused here as in the cloud. A deactivation, a reactivation and the adoption of a dossier the
group already knows are *notices*: each is kept, one per dossier, until the bus accepted it
(`unannounced`, `mark_announced`); a newer change replaces a notice not sent yet.
"""
from __future__ import annotations

import datetime as dt
import secrets
from dataclasses import dataclass
from typing import Optional

from agent.checkpoint import Checkpoint, utc_text
from shared.lifecycle import ANY_SYNCED, REALIGNS, Actor, Cause, Event, State, is_running, transition

_SCHEMA = """
CREATE TABLE IF NOT EXISTS lifecycle (
    dossier    TEXT PRIMARY KEY,
    state      TEXT NOT NULL,
    cause      TEXT,
    changed_by TEXT NOT NULL,
    changed_at TEXT NOT NULL
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS activity (
    dossier      TEXT PRIMARY KEY,
    active       INTEGER NOT NULL,
    change_id    TEXT NOT NULL,
    changed_at   TEXT NOT NULL,
    announced_at TEXT
) WITHOUT ROWID;
"""

DESELECTED = "deselected"
"""The cause of a dossier the administrator deselected (`agent deselect`)."""
CONFIGURATION = "configuration"
"""The cause of a dossier deactivated by `active = false` in the configuration."""


@dataclass(frozen=True)
class Entry:
    """A dossier's recorded state: why (`cause`), by whom and when it got there."""

    dossier: str
    state: State
    cause: Optional[str]
    changed_by: str
    changed_at: str


@dataclass(frozen=True)
class ActivityChange:
    """The last time a dossier was deactivated or activated again, and when the bus accepted the
    notice of it to the cloud (`announced_at` is None until then)."""

    dossier: str
    active: bool
    change_id: str
    changed_at: str
    announced_at: Optional[str]

    @property
    def announced(self) -> bool:
        return self.announced_at is not None


class AgentDossiers:
    """The lifecycle states of the agent's dossiers, in the agent's state file."""

    def __init__(self, checkpoint: Checkpoint, settings=None):
        self.checkpoint = checkpoint
        self.configured = {d.id: d for d in settings.dossiers} if settings is not None else {}
        self._db = checkpoint.connection
        if self._db.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'lifecycle'").fetchone() is None:
            self._db.executescript(_SCHEMA)        # once per state file (executescript commits first)
            self._import_earlier_flags()
            self._db.commit()

    # --- reading --------------------------------------------------------------------------------
    _ENTRY = "SELECT dossier, state, cause, changed_by, changed_at FROM lifecycle"

    @staticmethod
    def _entry(row) -> Entry:
        return Entry(row[0], State(row[1]), *row[2:])

    def entry(self, dossier: str) -> Optional[Entry]:
        row = self._db.execute(f"{self._ENTRY} WHERE dossier = ?", (dossier,)).fetchone()
        return None if row is None else self._entry(row)

    def entries(self) -> dict[str, Entry]:
        return {row[0]: self._entry(row) for row in self._db.execute(f"{self._ENTRY} ORDER BY dossier")}

    def state(self, dossier: str) -> State:
        """The dossier's state, the configuration's `active` taken into account."""
        configured = self.configured.get(dossier)
        entry = self.entry(dossier)
        if configured is not None and not configured.active:
            return State.INACTIVE if entry is not None and entry.state in ANY_SYNCED | {State.INACTIVE} \
                else State.UNSELECTED
        if entry is not None:
            return entry.state
        return State.SELECTED if configured is not None else State.UNSELECTED

    def chosen(self, dossier: str) -> bool:
        """Whether the administrator chose this dossier on this agent (not only by the configuration)."""
        return self.entry(dossier) is not None

    def is_fresh(self) -> bool:
        """No dossier was ever chosen nor run with this state file: a new install, or a reinstall."""
        return not self.entries() and not self.checkpoint.known_dossiers()

    def running(self) -> list[str]:
        """The dossiers the agent runs (Sage → SSM goes through), in a stable order."""
        candidates = set(self.configured) | set(self.entries())
        return sorted((d for d in candidates if is_running(self.state(d))), key=str.lower)

    def realignment_cause(self, dossier: str) -> Optional[str]:
        """Why the dossier's next run must read it in full, when its state asks for it."""
        state = self.state(dossier)
        if state not in REALIGNS or state is State.SELECTED:
            return None
        entry = self.entry(dossier)
        return (entry.cause if entry is not None and entry.cause else Cause.REACTIVATED.value)

    def run_options(self, dossier: str) -> dict:
        """What `agent.relay.sync_dossier` needs of the dossier's lifecycle: whether to realign, and
        the moves its run makes (restored when detection says so, active once applied)."""
        return {"realignment_requested": self.realignment_cause(dossier) is not None,
                "on_restored": lambda: self.restored(dossier),
                "on_applied": lambda realignment: self.run_applied(dossier, realignment=realignment)}

    # --- moves ------------------------------------------------------------------------------------
    def select(self, dossier: str, *, known_to_group: bool = False) -> tuple[State, State]:
        """The administrator chooses the dossier: selected for the first time, reactivated, or (a
        dossier the group already knows, on an agent that never ran it) adopted, which realigns.
        Returns (before, after); a dossier already running does not move."""
        before = self.state(dossier)
        if is_running(before) and self.chosen(dossier):
            return before, before
        if before in (State.UNSELECTED, State.SELECTED) and not self.checkpoint.snapshot(dossier):
            event = Event.ADOPT if known_to_group else Event.SELECT
            before = State.UNSELECTED
        elif before is State.INACTIVE or (before is State.UNSELECTED and self.checkpoint.snapshot(dossier)):
            event = Event.REACTIVATE
            before = State.INACTIVE
        else:
            return before, before
        after = self._move(dossier, before, event, Actor.ADMINISTRATOR)
        if event is not Event.SELECT:
            self._notice(dossier, True)
        self._db.commit()
        return before, after

    def deselect(self, dossier: str, *, cause: str = DESELECTED) -> State:
        """Nothing of the dossier moves any more; the cloud is told (once it ever ran). Returns the
        state it had."""
        entry = self.entry(dossier)
        before = entry.state if entry is not None else self.state(dossier)
        if before in ANY_SYNCED and self._reached_cloud(dossier):
            self._move(dossier, before, Event.DEACTIVATE, Actor.ADMINISTRATOR, cause=cause)
            self._notice(dossier, False)
        elif before is not State.INACTIVE:
            self._save(dossier, State.UNSELECTED, cause, Actor.ADMINISTRATOR)    # never ran: nothing to tell
        self._db.commit()
        return before

    def reconcile(self) -> None:
        """The configuration's `active = false` deactivates a dossier that ran; set back to true,
        the dossier it deactivated is active again (its next run realigns)."""
        for configured in self.configured.values():
            entry = self.entry(configured.id)
            if not configured.active and entry is not None and entry.state in ANY_SYNCED:
                self.deselect(configured.id, cause=CONFIGURATION)
            elif configured.active and entry is not None and entry.state is State.INACTIVE \
                    and entry.cause == CONFIGURATION:
                self._move(configured.id, State.INACTIVE, Event.REACTIVATE, Actor.ADMINISTRATOR)
                self._notice(configured.id, True)
                self._db.commit()

    def restored(self, dossier: str) -> None:
        """The agent's detection found the database restored or replaced: realigned by this run."""
        state = self.state(dossier)
        if state in (State.ACTIVE, State.REALIGNING, State.RESTORED):
            self._move(dossier, state, Event.RESTORE, Actor.DETECTION)
            self._db.commit()

    def run_applied(self, dossier: str, *, realignment: bool) -> None:
        """A run of the dossier was sent and applied: a first load or a realignment makes it active."""
        state = self.state(dossier)
        if self.entry(dossier) is None and state is State.SELECTED:
            self._save(dossier, State.SELECTED, Cause.FIRST_LOAD.value, Actor.ADMINISTRATOR)   # by the configuration
        if realignment and state in REALIGNS:
            self._move(dossier, state, Event.SYNCED, Actor.DETECTION)
        elif state is State.SELECTED and self.checkpoint.snapshot(dossier) is not None:
            self._move(dossier, state, Event.SYNCED, Actor.DETECTION)
        self._db.commit()

    def _reached_cloud(self, dossier: str) -> bool:
        """Whether something of the dossier was sent: a run applied, or one sealed (and being sent)."""
        pending = self.checkpoint.pending(dossier)
        return self.checkpoint.snapshot(dossier) is not None or (pending is not None and pending.sealed)

    def _move(self, dossier: str, state: State, event: Event, actor: Actor, *, cause: Optional[str] = None) -> State:
        found = transition(state, event, actor)
        self._save(dossier, found.target, cause or (found.cause.value if found.cause else None), actor)
        return found.target

    def _save(self, dossier: str, state: State, cause: Optional[str], actor: Actor) -> None:
        self._db.execute(
            "INSERT INTO lifecycle (dossier, state, cause, changed_by, changed_at) VALUES (?, ?, ?, ?, ?)"
            " ON CONFLICT (dossier) DO UPDATE SET state = excluded.state, cause = excluded.cause,"
            " changed_by = excluded.changed_by, changed_at = excluded.changed_at",
            (dossier, state.value, cause, actor.value, utc_text()))

    # --- notices for the cloud ----------------------------------------------------------------
    _ACTIVITY = "SELECT dossier, active, change_id, changed_at, announced_at FROM activity"

    @staticmethod
    def _activity_change(row) -> ActivityChange:
        return ActivityChange(row[0], bool(row[1]), *row[2:])

    def activity(self, dossier: str) -> Optional[ActivityChange]:
        row = self._db.execute(f"{self._ACTIVITY} WHERE dossier = ?", (dossier,)).fetchone()
        return None if row is None else self._activity_change(row)

    def unannounced(self) -> list[ActivityChange]:
        """The changes of activity the bus has not accepted a notice of yet, oldest first."""
        rows = self._db.execute(f"{self._ACTIVITY} WHERE announced_at IS NULL ORDER BY changed_at, dossier")
        return [self._activity_change(row) for row in rows]

    def mark_announced(self, dossier: str, change_id: str) -> bool:
        """The bus accepted the notice of `change_id`; False when a newer change replaced it meanwhile."""
        cursor = self._db.execute("UPDATE activity SET announced_at = ? WHERE dossier = ? AND change_id = ?",
                                  (utc_text(), dossier, change_id))
        self._db.commit()
        return cursor.rowcount == 1

    def _notice(self, dossier: str, active: bool) -> None:
        now = dt.datetime.now(dt.timezone.utc)
        self._db.execute(
            "INSERT INTO activity (dossier, active, change_id, changed_at) VALUES (?, ?, ?, ?)"
            " ON CONFLICT (dossier) DO UPDATE SET active = excluded.active, change_id = excluded.change_id,"
            " changed_at = excluded.changed_at, announced_at = NULL",
            (dossier, int(active), f"{now:%Y%m%dT%H%M%S%f}Z-{secrets.token_hex(3)}",
             now.isoformat(timespec="microseconds")))

    # --- state files written before the lifecycle had its own table ---------------------------------
    def _import_earlier_flags(self) -> None:
        """Earlier agents kept `selected` and `needs_realignment` in the `dossiers` table: taken over once."""
        columns = {row[1] for row in self._db.execute("PRAGMA table_info(dossiers)")}
        if "selected" not in columns or self._db.execute("SELECT 1 FROM lifecycle LIMIT 1").fetchone():
            return
        rows = self._db.execute("SELECT d.dossier, d.selected, d.needs_realignment,"
                                " EXISTS (SELECT 1 FROM snapshots s WHERE s.dossier = d.dossier) FROM dossiers d")
        for dossier, selected, realign, synced in rows.fetchall():
            if selected == 0:
                state, cause = (State.INACTIVE if synced else State.UNSELECTED), DESELECTED
            elif realign and synced:
                state, cause = State.REALIGNING, Cause.REACTIVATED.value
            elif selected == 1 or synced:
                state, cause = (State.ACTIVE if synced else State.SELECTED), None
            else:
                continue
            self._save(dossier, state, cause, Actor.ADMINISTRATOR)


__all__ = ["ActivityChange", "AgentDossiers", "CONFIGURATION", "DESELECTED", "Entry"]
