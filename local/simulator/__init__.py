"""A strict stand-in for the public SSM v4 API over real HTTP, driven by `shared.ssm.contract`,
with injectable faults."""
from local.simulator.faults import DROP, TIMEOUT, FaultPlan
from local.simulator.server import Call, HookDelivery, SsmSimulator
from local.simulator.store import ManualClock
from local.simulator.user import SsmUserSession

__all__ = ["SsmSimulator", "FaultPlan", "Call", "HookDelivery", "ManualClock", "SsmUserSession", "TIMEOUT",
           "DROP"]
