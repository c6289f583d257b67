"""Reading SSM's changes: the accounts and contacts created, changed or deleted since a cursor.

One cursor per resource for the whole group (SSM is one tenant): the newest `dateCreated`,
`dateUpdated` or `dateDeleted` seen, re-read with an overlap window since SSM's clock and ours
differ and its stamps are only a few milliseconds apart. The first pass starts from now (what SSM
held before the connector is adopted on purpose, not taken as news). Records a pass could not
decide yet (a contact whose account Sage has not created yet, a record of a deactivated
dossier) are kept by id and read again at every pass until they are. For accounts and contacts
the first pass also keeps the *horizon*: the newest creation stamp SSM shows in the last overlap
window (SSM's own clock), else the window's start; a record created at or before it was in SSM
before the connector and is never taken for one created since (`predates`).
"""
from __future__ import annotations

import datetime as dt
import json
from typing import Callable, Iterable, Optional

from shared.errors import ConcurrencyError
from shared.ssm.contract import parse_datetime
from shared.state.records import Cursor
from shared.sync.incidents import GROUP_DOSSIER

CURSOR = "ssm-changes:{resource}"
PENDING = "ssm-pending:{resource}"
HORIZON = "ssm-horizon:{resource}"
IDS_PER_READ = 40


class ChangeReader:
    """The SSM records of one resource to look at in this pass (see the module docstring)."""

    def __init__(self, store, ssm, resource: str, *, overlap: dt.timedelta, clock: Callable[[], dt.datetime],
                 keep_horizon: bool = False):
        self.store = store
        self.ssm = ssm
        self.resource = resource
        self.overlap = overlap
        self.clock = clock
        self._cursor = store.get_cursor(GROUP_DOSSIER, CURSOR.format(resource=resource))
        self._pending = store.get_cursor(GROUP_DOSSIER, PENDING.format(resource=resource))
        self.newest: Optional[dt.datetime] = None
        self.keep_horizon = keep_horizon
        horizon = store.get_cursor(GROUP_DOSSIER, HORIZON.format(resource=resource)) if keep_horizon else None
        self._horizon = dt.datetime.fromisoformat(horizon.value) if horizon is not None else None
        self._new_horizon: Optional[dt.datetime] = None

    def records(self) -> list[dict]:
        """The records changed since the cursor, then those waiting from earlier passes."""
        since = self.since()
        if since is None and self.keep_horizon and self._horizon is None:
            self._new_horizon = self._horizon = self._first_horizon()
        found: dict[int, dict] = {}
        if since is not None:
            for row in self.ssm.changed_since(self.resource, since - self.overlap):
                found[int(row["id"])] = row
                self._saw(row)
        waiting = [i for i in self.pending_ids() if i not in found]
        for start in range(0, len(waiting), IDS_PER_READ):
            where = " OR ".join(f"id={i}" for i in waiting[start:start + IDS_PER_READ])
            for row in self.ssm.list(self.resource, where=where):
                found.setdefault(int(row["id"]), row)
        return [found[i] for i in sorted(found)]

    def _first_horizon(self) -> dt.datetime:
        start = self.clock() - self.overlap
        newest: Optional[dt.datetime] = None
        for row in self.ssm.changed_since(self.resource, start):
            created = _stamp(row.get("dateCreated"))
            if created is not None:
                newest = max(newest or created, created)
        return newest or start

    def predates(self, record: dict) -> bool:
        """Whether the record was in SSM before the connector first read it (adopted or left
        alone, never copied into Sage as new)."""
        created = _stamp(record.get("dateCreated"))
        return self._horizon is not None and created is not None and created <= self._horizon

    def since(self) -> Optional[dt.datetime]:
        return None if self._cursor is None else dt.datetime.fromisoformat(self._cursor.value)

    def pending_ids(self) -> list[int]:
        return [] if self._pending is None else [int(i) for i in json.loads(self._pending.value)]

    def finish(self, pending: Iterable[int]) -> None:
        """Move the cursor to the newest change seen (to now on the first pass) and keep `pending`."""
        start = self.newest or (self.clock() if self._cursor is None else None)
        if start is not None:
            self._save(self._cursor, CURSOR, start.isoformat())
        self._save(self._pending, PENDING, json.dumps(sorted(set(pending))))
        if self._new_horizon is not None:
            self._save(None, HORIZON, self._new_horizon.isoformat())

    def _saw(self, row: dict) -> None:
        for name in ("dateCreated", "dateUpdated", "dateDeleted"):
            stamp = _stamp(row.get(name))
            if stamp is not None:
                self.newest = max(self.newest or stamp, stamp)

    def _save(self, current: Optional[Cursor], name: str, value: str) -> None:
        name = name.format(resource=self.resource)
        if current is not None and current.value == value:
            return
        cursor = (current.model_copy(update={"value": value}) if current is not None
                  else Cursor(dossier=GROUP_DOSSIER, name=name, value=value))
        try:
            self.store.save_cursor(cursor)
        except ConcurrencyError:        # another pass moved it meanwhile: its value stands
            pass


def _stamp(value) -> Optional[dt.datetime]:
    """An SSM date as an aware UTC time; None when absent or a placeholder (year 1900 or before)."""
    stamp = parse_datetime(value) if value else None
    if stamp is None or stamp.year <= 1900:
        return None
    return stamp if stamp.tzinfo else stamp.replace(tzinfo=dt.timezone.utc)
