"""A faithful stand-in for the public SSM v4 API over real HTTP, with injectable faults."""
from local.simulator.faults import DROP, TIMEOUT, FaultPlan
from local.simulator.server import Call, SsmSimulator
from local.simulator.store import ManualClock
from local.simulator.user import SsmUserSession

__all__ = ["SsmSimulator", "FaultPlan", "Call", "ManualClock", "SsmUserSession", "TIMEOUT", "DROP"]
