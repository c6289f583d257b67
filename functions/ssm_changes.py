"""SSM → Sage: a timer reads SSM's changes to prospects and contacts every five minutes and sends
the agent its commands (`shared.inbound.service`); SSM's webhooks, where the tenant has them,
ask for the same pass at once (`POST /api/ssm/hooks`, function key in the URL). Sage's answers
come back on the changes queue (`sage_changes`)."""
import azure.functions as func

from functions import context
from shared.telemetry import get_logger

INBOUND_SCHEDULE = "0 */5 * * * *"

log = get_logger(__name__)
bp = func.Blueprint()


@bp.function_name("ssm_changes")
@bp.timer_trigger(arg_name="timer", schedule=INBOUND_SCHEDULE, run_on_startup=False, use_monitor=True)
def ssm_changes(timer: func.TimerRequest) -> None:
    outcome = context.inbound_service().run_pass()
    log.info("SSM pass: %d record(s) read, %d command(s) sent, %d waiting", outcome.read, outcome.sent,
             outcome.waiting)


@bp.function_name("ssm_hooks")
@bp.route(route="ssm/hooks", methods=["POST"], auth_level=func.AuthLevel.FUNCTION)
def ssm_hooks(req: func.HttpRequest) -> func.HttpResponse:
    outcome = context.inbound_service().run_pass()
    return func.HttpResponse(status_code=200, mimetype="application/json",
                             body=f'{{"read": {outcome.read}, "commands": {outcome.sent}}}')
