"""A Sage 50 FR dossier's exchange folder: the exports Sage 50 writes there, taken in whole or not
at all, and the import files the agent drops into its `import` subfolder.

Each export file is *accepted* when it is complete and matches its layout: the agent keeps its
own copy (in the agent's state folder) and reads only that copy, so a file refused (it does not
match its layout), missing, or older than the one accepted before changes nothing the agent
relays: the last accepted copy stays the dossier's snapshot. `refresh()` answers what it found
(`report()`), which the run's start marker carries to the cloud: the time of the newest export,
the files missing, refused (line, column, reason) or ignored as older. A file that changes while
it is read (Sage 50 still writing it) is left for the next run.
"""
from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Optional

from agent.sage50.layout import FileLayout, LayoutError, Layouts, ReadRecord, read_file

IMPORT_FOLDER = "import"
META_FILE = "exports.json"


def utc_now() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc)


def write_atomically(path: Path, data: bytes) -> None:
    """`data` in `path`, whole or not at all (written aside, then renamed over)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.tmp")
    with open(temporary, "wb") as out:
        out.write(data)
        out.flush()
        os.fsync(out.fileno())
    os.replace(temporary, path)


@dataclass
class Refresh:
    """What one look at the exchange folder found."""

    accepted: list[str] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)
    ignored: list[str] = field(default_factory=list)
    refused: list[dict] = field(default_factory=list)
    writing: list[str] = field(default_factory=list)


class Exchange:
    """One dossier's exchange folder and the agent's accepted copies of its exports."""

    def __init__(self, folder: str | Path, state_dir: str | Path, layouts: Layouts, *,
                 late_after_s: float = 7200.0, clock: Callable[[], dt.datetime] = utc_now):
        self.folder = Path(folder)
        self.state_dir = Path(state_dir)
        self.layouts = layouts
        self.late_after_s = late_after_s
        self.clock = clock
        self._parsed: dict[str, list[ReadRecord]] = {}

    @property
    def import_folder(self) -> Path:
        return self.folder / IMPORT_FOLDER

    # --- accepting exports ------------------------------------------------------------------------
    def refresh(self) -> Refresh:
        """Accept every export file newer than its accepted copy that matches its layout."""
        meta = self._meta()
        found = Refresh()
        for layout in self.layouts.files.values():
            source = self.folder / layout.file
            known = meta["files"].get(layout.name)
            if not source.is_file():
                found.missing.append(layout.file)
                continue
            before = source.stat()
            data = source.read_bytes()
            after = source.stat()
            if (before.st_mtime, before.st_size) != (after.st_mtime, after.st_size) or len(data) != after.st_size:
                found.writing.append(layout.file)     # Sage 50 is writing it: taken at the next run
                continue
            modified = after.st_mtime
            digest = hashlib.sha256(data).hexdigest()
            if known is not None and known["sha256"] == digest:
                continue
            if known is not None and modified < known["modified"]:
                found.ignored.append(layout.file)
                continue
            try:
                read_file(data, layout, self.layouts.format, file=layout.file)
            except LayoutError as refusal:
                found.refused.append({"file": layout.file, "entity": _entity_of(layout), "code": refusal.code,
                                      "values": _plain(refusal.values), "message": refusal.message.text})
                continue
            write_atomically(self._copy(layout), data)
            meta["files"][layout.name] = {"file": layout.file, "modified": modified, "sha256": digest,
                                          "accepted_at": self.clock().isoformat()}
            self._parsed.pop(layout.name, None)
            found.accepted.append(layout.file)
        meta["last"] = {"missing": found.missing, "ignored": found.ignored, "refused": found.refused,
                        "at": self.clock().isoformat()}
        write_atomically(self.state_dir / META_FILE, json.dumps(meta, ensure_ascii=False, indent=1).encode("utf-8"))
        return found

    def report(self) -> dict:
        """What the run's start marker tells the cloud about the exports (see the module docstring)."""
        meta = self._meta()
        newest = max((entry["modified"] for entry in meta["files"].values()), default=None)
        last = meta.get("last") or {}
        return {"product": "sage50",
                "last_export_at": None if newest is None else
                dt.datetime.fromtimestamp(newest, dt.timezone.utc).isoformat(),
                "late_after_s": self.late_after_s,
                "files": sorted(layout.file for layout in self.layouts.files.values()),
                "missing": [name for name in last.get("missing", ()) if not self._accepted_file(name)],
                "ignored": list(last.get("ignored", ())), "refused": list(last.get("refused", ()))}

    # --- the accepted snapshot --------------------------------------------------------------------
    def records(self, layout: FileLayout) -> list[ReadRecord]:
        """The records of the accepted copy of `layout`'s file (none before one is accepted)."""
        if layout.name not in self._parsed:
            copy = self._copy(layout)
            self._parsed[layout.name] = (read_file(copy.read_bytes(), layout, self.layouts.format, file=layout.file)
                                         if copy.is_file() else [])
        return self._parsed[layout.name]

    def accepted_at(self, layout: FileLayout) -> Optional[float]:
        entry = self._meta()["files"].get(layout.name)
        return entry["modified"] if entry else None

    def _accepted_file(self, file: str) -> bool:
        return any(entry["file"] == file for entry in self._meta()["files"].values())

    def _copy(self, layout: FileLayout) -> Path:
        return self.state_dir / "accepted" / layout.file

    def _meta(self) -> dict:
        path = self.state_dir / META_FILE
        if not path.is_file():
            return {"files": {}}
        return json.loads(path.read_text(encoding="utf-8"))


def _entity_of(layout: FileLayout) -> str:
    if layout.entity != "document":
        return layout.entity
    return next(iter(kind["entity"] for kind in layout.kinds.values()), "quote")


def _plain(values: dict) -> dict:
    return {name: value if isinstance(value, (int, float, str)) or value is None else str(value)
            for name, value in values.items()}
