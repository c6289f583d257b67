"""Faults the simulator injects, changeable while it runs: latency, rate limits, 5xx, timeouts.

Random faults come from one seeded generator, so a test with `error_rate=0.3` sees the same
sequence on every run (for one client thread). `fail_next` scripts exact faults for the next
matching requests, ahead of any random one. The rate limit is a sliding window over accepted
requests, tenant-wide: beyond `rate_limit_per_s` per `rate_limit_window_s`, SSM answers 429 with
`Retry-After` in whole seconds (at least 1). The documented limits are the plans of
`contract.RATE_PLANS` (4 or 13 requests per second, 50 per minute on Starter; `use_rate_plan`);
the answer when one is exceeded is undocumented, 429 with `Retry-After` is the simulator's
choice. `resources` / `methods` narrow the random 5xx and timeout faults (the login resource is
"login"); scripted faults carry their own filter.
"""
from __future__ import annotations

import math
import random
import threading
import time
from collections import deque
from dataclasses import dataclass, field

from shared.ssm.contract import RATE_PLANS

TIMEOUT = "timeout"   # the server holds the answer longer than timeout_hold_s
DROP = "drop"         # the server closes the connection without answering
RATE_LIMITED = 429


@dataclass(frozen=True)
class Fault:
    kind: str | int                  # an HTTP status, TIMEOUT or DROP
    retry_after: int | None = None   # seconds, for 429


@dataclass
class _Scripted:
    kind: str | int
    remaining: int
    method: str | None
    resource: str | None


@dataclass
class FaultPlan:
    latency_s: float = 0.0
    rate_limit_per_s: float | None = None
    rate_limit_window_s: float = 1.0
    error_rate: float = 0.0
    error_statuses: tuple[int, ...] = (500, 502, 503)
    timeout_rate: float = 0.0
    timeout_hold_s: float = 5.0
    timeout_applies: bool = True     # a held request is still carried out: only its answer is lost
    resources: frozenset[str] | None = None
    methods: frozenset[str] | None = None
    seed: int = 0
    session_generation: int = field(default=0, init=False)

    def __post_init__(self):
        self._lock = threading.Lock()
        self._rng = random.Random(self.seed)
        self._accepted: deque[float] = deque()
        self._scripted: list[_Scripted] = []

    def use_rate_plan(self, plan: str | None) -> None:
        """Limit as the credentials' plan does: a name of `contract.RATE_PLANS` ("starter": 50 per
        minute, counted over a minute; "4", "13": per second), or None / "none" for no limit."""
        with self._lock:
            if plan is None or plan == "none":
                self.rate_limit_per_s = None
                return
            if plan not in RATE_PLANS:
                raise ValueError(f"unknown rate plan {plan!r}: one of {', '.join(RATE_PLANS)} or none")
            self.rate_limit_per_s = RATE_PLANS[plan]
            self.rate_limit_window_s = 60.0 if RATE_PLANS[plan] < 1 else 1.0
            self._accepted.clear()

    def reseed(self, seed: int) -> None:
        with self._lock:
            self.seed = seed
            self._rng = random.Random(seed)

    def expire_sessions(self) -> None:
        """Every session issued so far is refused from now on (401 until the client logs in)."""
        with self._lock:
            self.session_generation += 1

    def fail_next(self, kind: str | int, count: int = 1, *, method: str | None = None,
                  resource: str | None = None) -> None:
        """The next `count` requests matching method/resource get `kind` (a status, TIMEOUT, DROP)."""
        with self._lock:
            self._scripted.append(_Scripted(kind, count, method and method.upper(), resource))

    def clear(self) -> None:
        """No fault at all from now on (sessions stay as they are)."""
        with self._lock:
            self.latency_s = 0.0
            self.rate_limit_per_s = None
            self.error_rate = 0.0
            self.timeout_rate = 0.0
            self.resources = None
            self.methods = None
            self._scripted.clear()
            self._accepted.clear()

    def decide(self, method: str, resource: str) -> Fault | None:
        """The fault for this request, if any (called once per request, thread-safe)."""
        with self._lock:
            for scripted in self._scripted:
                if (scripted.method in (None, method)) and (scripted.resource in (None, resource)):
                    scripted.remaining -= 1
                    if scripted.remaining <= 0:
                        self._scripted.remove(scripted)
                    retry_after = 1 if scripted.kind == RATE_LIMITED else None
                    return Fault(scripted.kind, retry_after)
            limited = self._rate_limited()
            if limited is not None:
                return limited
            in_scope = (self.resources is None or resource in self.resources) and \
                       (self.methods is None or method in self.methods)
            if not in_scope:
                return None
            if self.error_rate and self._rng.random() < self.error_rate:
                return Fault(self._rng.choice(self.error_statuses))
            if self.timeout_rate and self._rng.random() < self.timeout_rate:
                return Fault(TIMEOUT)
            return None

    def _rate_limited(self) -> Fault | None:
        if not self.rate_limit_per_s:
            return None
        now = time.monotonic()
        window = self.rate_limit_window_s
        while self._accepted and self._accepted[0] <= now - window:
            self._accepted.popleft()
        allowed = max(1, int(self.rate_limit_per_s * window + 1e-9))
        if len(self._accepted) >= allowed:
            wait = self._accepted[0] + window - now
            return Fault(RATE_LIMITED, max(1, math.ceil(wait)))
        self._accepted.append(now)
        return None
