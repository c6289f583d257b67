"""Dataclasses of counters that add up, such as what one call of a loop did."""
from __future__ import annotations

from dataclasses import fields


class AddableCounts:
    """Mixin of a dataclass whose `int` fields are counters: `add(other)` adds each of `other`'s."""

    def add(self, other: "AddableCounts") -> None:
        for counter in fields(self):
            value = getattr(self, counter.name)
            if type(value) is int:
                setattr(self, counter.name, value + getattr(other, counter.name))
