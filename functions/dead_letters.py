"""Service Bus trigger on the dead-letter queue of `sage-changes`.

A message lands there after `maxDeliveryCount` failed deliveries (or when Service Bus refuses
it). Its records become open incidents of their dossier, so nothing is dropped silently; the
message is then completed. The dead-letter queue has no sessions.
"""
import azure.functions as func

from functions import context
from functions.sage_changes import CHANGES_QUEUE, CONNECTION

DEAD_LETTER_QUEUE = f"{CHANGES_QUEUE}/$DeadLetterQueue"

bp = func.Blueprint()


@bp.function_name("sage_changes_dead_letters")
@bp.service_bus_queue_trigger(arg_name="message", queue_name=DEAD_LETTER_QUEUE, connection=CONNECTION,
                              auto_complete_messages=True)
def sage_changes_dead_letters(message: func.ServiceBusMessage) -> None:
    context.sync_service().record_dead_letter(
        message.get_body(),
        reason=message.dead_letter_reason or "dead-lettered",
        description=message.dead_letter_error_description or "",
    )
