"""The redelivery backoff: how long a redelivered Sage changes message waits before it is applied again.

Service Bus hands an abandoned message back at once, so without a wait a few minutes of SSM outage
would use up the queue's deliveries and dead-letter whole batches. The wait doubles at each
delivery from a base (`bus.redelivery_backoff_s`, 5 s by default) up to `CAP_MULTIPLE` times the
base (4 minutes by default, under the 5-minute session lock), so a message's 10 deliveries span
over a quarter of an hour before it is set aside: 0, 5, 10, 20, 40, 80, 160, 240, 240, 240 s.
"""
from __future__ import annotations

from dataclasses import dataclass

GROWTH = 2.0
CAP_MULTIPLE = 48.0


@dataclass(frozen=True)
class RedeliveryBackoff:
    """The wait before delivery `n` of a message: none for the first, then `base_s` doubling to a cap."""

    base_s: float
    growth: float = GROWTH
    cap_multiple: float = CAP_MULTIPLE

    @property
    def cap_s(self) -> float:
        return max(0.0, self.base_s) * self.cap_multiple

    def delay_s(self, delivery_count: int) -> float:
        if delivery_count <= 1 or self.base_s <= 0:
            return 0.0
        return min(self.cap_s, self.base_s * self.growth ** (delivery_count - 2))

    def span_s(self, max_delivery_count: int) -> float:
        """The waits of every delivery of a message the queue dead-letters after `max_delivery_count`."""
        return sum(self.delay_s(n) for n in range(1, max_delivery_count + 1))
