"""The client-side rate limiter: one token bucket shared by every thread of an SSM client.

Each request takes a token; tokens come back at `rate_per_s`, up to `burst` saved. A caller that
finds none reserves the next one and sleeps until it is due, so waiters are served in arrival
order without spinning. When SSM answers 429 with `Retry-After`, `hold` stops every thread until
that time has passed, not only the one that was refused.
"""
from __future__ import annotations

import threading
import time
from typing import Callable


MIN_SLEEP_S = 0.001
"""Waits shorter than this are not slept: the time passes anyway while the request is built."""


class TokenBucket:
    def __init__(self, rate_per_s: float, *, burst: float = 1.0,
                 clock: Callable[[], float] = time.monotonic,
                 sleep: Callable[[float], None] = time.sleep):
        if rate_per_s <= 0:
            raise ValueError("rate_per_s must be positive")
        if burst < 1:
            raise ValueError("burst must be at least 1")
        self.rate_per_s = float(rate_per_s)
        self.burst = float(burst)
        self._clock = clock
        self._sleep = sleep
        self._lock = threading.Lock()
        self._tokens = self.burst
        self._updated = clock()
        self._not_before = 0.0

    def acquire(self) -> float:
        """Take one token, sleeping until it is available; returns the seconds waited."""
        with self._lock:
            now = self._clock()
            start = max(now, self._not_before)
            if start > self._updated:
                self._tokens = min(self.burst, self._tokens + (start - self._updated) * self.rate_per_s)
                self._updated = start
            self._tokens -= 1.0
            wait = (start - now) + max(0.0, -self._tokens) / self.rate_per_s
        if wait >= MIN_SLEEP_S:
            self._sleep(wait)
        return max(wait, 0.0)

    def hold(self, seconds: float) -> None:
        """No token is handed out before `seconds` from now (SSM asked everyone to wait)."""
        with self._lock:
            self._not_before = max(self._not_before, self._clock() + max(0.0, seconds))
