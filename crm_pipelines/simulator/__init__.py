"""Local provider simulators: real HTTP servers that answer like the providers' APIs.

The generic plumbing lives here (server, router, clock, faults, statistics, rate limiters, fake
data); each provider's simulator lives next to its client, e.g.
``crm_pipelines.providers.hubspot.simulator``. ``python -m crm_pipelines.simulator <provider>``
starts one in the foreground.
"""

from crm_pipelines.simulator.datagen import FakeData
from crm_pipelines.simulator.ratelimit import DailyCounter, LimitDecision, SlidingWindowLimiter
from crm_pipelines.simulator.server import (
    Fault,
    FaultConfig,
    FaultInjector,
    Request,
    RequestStats,
    Response,
    Route,
    Router,
    SimClock,
    SimulatorBase,
)

__all__ = [
    "DailyCounter",
    "FakeData",
    "Fault",
    "FaultConfig",
    "FaultInjector",
    "LimitDecision",
    "Request",
    "RequestStats",
    "Response",
    "Route",
    "Router",
    "SimClock",
    "SimulatorBase",
    "SlidingWindowLimiter",
]
