"""Service Bus trigger on `sage-changes`: Sage change batches, one dossier per session.

One message per invocation (`Cardinality.ONE`): the host's session processor hands the messages
of a session (dossier) one after the other, in order, holds up to `maxConcurrentSessions`
sessions per instance at once (host.json), and renews both the message lock and the session lock
while an invocation runs (`maxAutoLockRenewalDuration`). A batch trigger (`Cardinality.MANY`) gets
neither: its locks are not renewed and it works one session at a time per instance.

Each body is an `EnvelopeBatch` handed to `SyncService.apply_batch`. A body that cannot be decoded
(or claims another dossier than its session) is recorded as an incident and completed: one bad
body never blocks the dossier. A record that refers to one not in SSM is parked alone at once
(`shared.sync.waiting`), the batch goes on. When the batch needs redelivery (SSM unreachable, one
record SSM keeps failing on) the handler raises: the host abandons the message and Service Bus
redelivers it, in order. At its last delivery (`bus.max_delivery_count`, the queue's
`maxDeliveryCount`) the message is split instead: each record still not applied is set aside alone
in its own incident, holding its change for the replay (`record_dead_letter`), and the message is
completed, so the dead-letter queue never holds a whole batch (only a body that crashed the
handler every time lands there). Only that message counts a delivery: a message that keeps
failing is set aside alone, never with the messages queued behind it.

Service Bus redelivers an abandoned message at once, so a redelivered message first waits its
backoff (`shared.sync.redelivery`: from `bus.redelivery_backoff_s`, doubling at each delivery, at
most 4 minutes; the 10 deliveries span about 17 minutes) — a few minutes of SSM outage no longer
dead-letter whole batches. The wait happens here, inside the invocation, because a session message
cannot be put back with a delay without losing its place in the dossier's order; the host renews
the locks meanwhile (`maxAutoLockRenewalDuration` 30 min in host.json, above the longest wait plus
the batch, and within the 30-minute function timeout). The price: while a message waits, its
dossier's later messages wait too (other dossiers' sessions do not), and the wait holds one of the
host's concurrent sessions and counts as execution time. A missing dependency never waits here: its
record is parked alone at once. In the local runtime the wait never outlasts the cycle's ceiling
(`functions.context.time_left`).
"""
import time

import azure.functions as func

from functions import context
from shared.envelope import EnvelopeBatch
from shared.errors import RetryableError
from shared.sync.redelivery import RedeliveryBackoff
from shared.telemetry import get_logger, log_context

# The queue name is the app setting the core reads too (shared/config.py, bus.changes_queue).
CHANGES_QUEUE = "%SSMCONN__BUS__CHANGES_QUEUE%"
CONNECTION = "ServiceBusConnection"

log = get_logger(__name__)
bp = func.Blueprint()


class RedeliveryRequested(RetryableError):
    """Raised so that the host abandons the message (it comes back in its session's order)."""


def decode(message: func.ServiceBusMessage) -> EnvelopeBatch:
    """The message's batch; ValueError when the body is not a batch of the message's session."""
    batch = EnvelopeBatch.from_bytes(message.get_body())
    if message.session_id and message.session_id != batch.dossier:
        raise ValueError(f"a batch of dossier {batch.dossier} arrived in session {message.session_id}")
    return batch


def wait_before_redelivery(delivery_count: int) -> None:
    """Sleep the backoff of this delivery (nothing on a first delivery)."""
    delay = RedeliveryBackoff(context.settings().bus.redelivery_backoff_s).delay_s(delivery_count)
    left = context.time_left()
    if left is not None:                   # a local cycle with a ceiling: never wait past it
        delay = min(delay, left)
    if delay > 0:
        log.info("delivery %d of a Sage changes message: waiting %.1f s before applying it again",
                 delivery_count, delay)
        time.sleep(delay)


@bp.function_name("sage_changes")
@bp.service_bus_queue_trigger(arg_name="message", queue_name=CHANGES_QUEUE, connection=CONNECTION,
                              is_sessions_enabled=True, cardinality=func.Cardinality.ONE,
                              auto_complete_messages=True)
def sage_changes(message: func.ServiceBusMessage) -> None:
    service = context.sync_service()
    try:
        batch = decode(message)
    except ValueError as exc:
        log.warning("undecodable message %s in session %s: %s", message.message_id, message.session_id, exc)
        service.record_dead_letter(message.get_body(), reason="undecodable", description=str(exc))
        return
    delivery_count = message.delivery_count or 1
    wait_before_redelivery(delivery_count)
    with log_context(dossier=batch.dossier, message_id=message.message_id):
        outcome = service.apply_batch(batch, delivery_count=delivery_count)
        if outcome.needs_redelivery and delivery_count >= context.settings().bus.max_delivery_count:
            # its last delivery: split, never a whole batch on the dead-letter queue
            log.warning("message %s of dossier %s still needs redelivery at its last delivery (%d): each record"
                        " not applied is set aside alone", message.message_id, batch.dossier, delivery_count)
            service.record_dead_letter(message.get_body(), reason="MaxDeliveryCountExceeded",
                                       description=f"{len(outcome.retry)} record(s) not applied after "
                                                   f"{delivery_count} deliveries")
            return
    if outcome.needs_redelivery:
        raise RedeliveryRequested(
            "Some Sage changes could not be sent to Sales Management yet; they will be retried.",
            detail=f"message {message.message_id} of dossier {batch.dossier}, delivery {delivery_count}")
