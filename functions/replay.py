"""Timer trigger: every five minutes the dead-lettered changes that are due are tried again
(`shared.sync.replay`); most calls find none and make no SSM call."""
import azure.functions as func

from functions import context
from shared.sync.replay import replay_parked

REPLAY_SCHEDULE = "0 */5 * * * *"

bp = func.Blueprint()


@bp.function_name("replay_parked_changes")
@bp.timer_trigger(arg_name="timer", schedule=REPLAY_SCHEDULE, run_on_startup=False, use_monitor=True)
def replay_parked_changes(timer: func.TimerRequest) -> None:
    replay_parked(context.sync_service())
