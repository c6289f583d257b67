"""The batch breaker: once SSM as a whole cannot be used, the rest of the batch is not attempted.

During an outage every record would run through all of the SSM client's retries, so one batch
could outlast the function's timeout. A record whose failure is SSM's rather than its own (the
client gave up on a 5xx, a 429, a timeout or a lost connection) is confirmed by one cheap probe
read; when SSM does not answer it either, or when several records in a row fail that way (SSM
reads but refuses every write), the breaker trips and every record not yet attempted is left for
the redelivery of the batch, without an SSM call. Refused keys or wrong settings trip it at once.
A record-level failure, a missing dependency or a single record SSM keeps failing on does not.
"""
from __future__ import annotations

import logging
import threading
from typing import Optional

from shared.messages import text
from shared.errors import ConnectorError, SsmRetryableError

log = logging.getLogger("ssm_connector.sync")

OUTAGE_STREAK = 3
"""Records failing in a row on SSM's side (with nothing synced between) that trip the breaker even
though the probe read is answered."""

NOT_USABLE = text("sync.breaker.not_usable")
NOT_ANSWERING = text("sync.breaker.not_answering")


def is_outage(error: BaseException) -> bool:
    """Whether the SSM client gave up on a failure of the service rather than of the record."""
    if not isinstance(error, SsmRetryableError):
        return False
    return error.status is None or error.status == 429 or error.status >= 500


class BatchBreaker:
    """Shared by the records of one batch (thread-safe); see the module docstring."""

    def __init__(self, ssm, *, streak_limit: int = OUTAGE_STREAK):
        self._ssm = ssm
        self._streak_limit = max(1, streak_limit)
        self._lock = threading.Lock()
        self._streak = 0
        self._tripped = threading.Event()
        self.reason = ""
        self.outage: Optional[SsmRetryableError] = None
        """The failure that tripped the breaker on an outage (None otherwise)."""
        self.outage_reported = False
        self.answered = False
        """Whether SSM answered a record of the batch, even with a refusal of its data."""

    @property
    def tripped(self) -> bool:
        return self._tripped.is_set()

    def stop(self, reason: str = NOT_USABLE) -> None:
        """Trip now (SSM refuses the keys, the settings are wrong)."""
        with self._lock:
            if not self._tripped.is_set():
                self.reason = reason
                self._tripped.set()

    def succeeded(self) -> None:
        """A record got through: the failures before it were its own, not SSM's."""
        with self._lock:
            self._streak = 0
            self.answered = True

    def refused(self) -> None:
        """SSM answered a record by refusing its data: SSM is there, the record is at fault."""
        with self._lock:
            self.answered = True

    def trips_on(self, error: BaseException, resource: Optional[str]) -> bool:
        """Whether `error` means SSM is out; the breaker trips then. Only an outage-like failure is
        probed (one read of `resource`), once at a time: records failing meanwhile wait for the answer."""
        if not is_outage(error):
            return False
        with self._lock:
            if self._tripped.is_set():
                return self.outage is not None
            self._streak += 1
            if self._streak < self._streak_limit and self._answers(resource):
                return False
            self.outage = error
            self.reason = NOT_ANSWERING
            self._tripped.set()
        log.warning("SSM is not answering (%s); the rest of the batch waits for its redelivery", error)
        return True

    def _answers(self, resource: Optional[str]) -> bool:
        try:
            next(iter(self._ssm.list(resource or "users", page_size=1)), None)
        except ConnectorError as exc:
            return not is_outage(exc)
        return True
