"""What a source adapter's writer answers for one of the cloud's commands, whatever the Sage
product: the record it wrote (`Outcome`), or why it cannot (`CommandRefused`, a code the cloud
words in French, `sage.refused.<code>`)."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Optional


class CommandRefused(Exception):
    """The command cannot be applied as it is (permanent): `field` names the culprit, if one."""

    def __init__(self, message: str, *, field: Optional[str] = None, code: Optional[str] = None, **values):
        super().__init__(message)
        self.message = message
        self.field = field
        self.code = code               # the reason's code, for the cloud's French sentence
        self.values = values


@dataclass
class Outcome:
    """What a command did: the Sage key it wrote, the fields written, conflicts, warnings."""

    key: str
    written: dict[str, Any] = field(default_factory=dict)
    conflicts: list[dict] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    replayed: bool = False

    def to_record(self) -> dict:
        return {"key": self.key, "written": self.written, "conflicts": self.conflicts, "warnings": self.warnings}
