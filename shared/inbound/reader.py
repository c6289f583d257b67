"""Reading SSM's changes: the accounts and contacts created, changed or deleted since a cursor.

One cursor per resource for the whole group (SSM is one tenant): the newest `dateCreated`,
`dateUpdated` or `dateDeleted` seen, re-read with an overlap window since SSM's clock and ours
differ and its stamps are only a few milliseconds apart. The first pass starts from now (what SSM
held before the connector is adopted on purpose, not taken as news). Records a pass could not
decide yet (a contact whose account Sage has not created yet, a record of a deactivated
dossier) are kept by id and read again at every pass until they are.
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
IDS_PER_READ = 40


class ChangeReader:
    """The SSM records of one resource to look at in this pass (see the module docstring)."""

    def __init__(self, store, ssm, resource: str, *, overlap: dt.timedelta, clock: Callable[[], dt.datetime]):
        self.store = store
        self.ssm = ssm
        self.resource = resource
        self.overlap = overlap
        self.clock = clock
        self._cursor = store.get_cursor(GROUP_DOSSIER, CURSOR.format(resource=resource))
        self._pending = store.get_cursor(GROUP_DOSSIER, PENDING.format(resource=resource))
        self.newest: Optional[dt.datetime] = None

    def records(self) -> list[dict]:
        """The records changed since the cursor, then those waiting from earlier passes."""
        since = self.since()
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

    def _saw(self, row: dict) -> None:
        for name in ("dateCreated", "dateUpdated", "dateDeleted"):
            stamp = parse_datetime(row.get(name)) if row.get(name) else None
            if stamp is not None and stamp.year > 1900:
                stamp = stamp if stamp.tzinfo else stamp.replace(tzinfo=dt.timezone.utc)
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
