"""Local provider simulators: real HTTP servers that answer like the providers' APIs.

The toolkit lives here: the server and request pipeline (:mod:`.server`), accounts and the
command line (:mod:`.config`), the record store (:mod:`.store`), the clock, rate limits, faults,
webhook delivery and fake data. Each provider's simulator lives next to its client, e.g.
``crm_pipelines.providers.hubspot.simulator``, and declares only that provider's API.
``python -m crm_pipelines.simulator <provider>`` starts one in the foreground.
"""

from crm_pipelines.simulator.clock import SimClock
from crm_pipelines.simulator.config import AccountSpec, SimConfig
from crm_pipelines.simulator.datagen import FakeData
from crm_pipelines.simulator.faults import Fault, FaultConfig, FaultInjector
from crm_pipelines.simulator.ratelimit import DailyCounter, LeakyBucket, LimitDecision, SlidingWindowLimiter
from crm_pipelines.simulator.server import Account, ApiError, Request, RequestStats, Response, Route, Simulator, SimulatorBase, admin, api
from crm_pipelines.simulator.store import Record, RecordStore

__all__ = [
    "Account", "AccountSpec", "ApiError", "DailyCounter", "FakeData", "Fault", "FaultConfig", "FaultInjector", "LeakyBucket",
    "LimitDecision", "Record", "RecordStore", "Request", "RequestStats", "Response", "Route", "SimClock", "SimConfig", "Simulator",
    "SimulatorBase", "SlidingWindowLimiter", "admin", "api",
]
