"""What the console reads, and the FastAPI dependencies that hand it to the routes.

The wiring (``hazwatch.app``) builds one :class:`Console` from the running stages and
passes it to :func:`dashboards.app.create_app`, which keeps it on ``app.state``. Routes
never build or own a resource: they declare ``console: ConsoleDep`` (or the narrower
``JournalDep``) and read. Tests build a ``Console`` from the real classes on temporary
files.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Annotated, Any

from fastapi import Depends, Request

from alerting.journal import Journal
from alerting.kpis import KpiRules
from alerting.service import AlarmService
from dashboards.feed import LiveFeed
from hazwatch.clock import Clock
from hazwatch.metrics import Metrics
from hazwatch.models import Registry
from ingest.gateways import GatewayTracker
from ingest.latest import LatestValues
from ingest.rejects import RejectLog
from ingest.sink import ReadingSink
from ingest.spool import DeadLetter
from ingest.validation import UnknownTag


@dataclass
class Console:
    """Everything the console reads, injected by the wiring."""

    registry: Registry
    alarms: AlarmService
    """``.acknowledge(id, comment)``; ``.journal`` for reads."""
    sink: ReadingSink
    """``.history(...)`` for the trend of one point."""
    latest: LatestValues
    rejects: RejectLog
    unknown_tags: Callable[[], list[UnknownTag]]
    gateways: GatewayTracker
    metrics: Metrics
    feed: LiveFeed
    """Live items for the SSE stream, routed per view (:mod:`dashboards.feed`)."""
    health: Callable[[], dict[str, Any]]
    """Component name -> ``"ok"`` (or ``True``, or ``{"status": "ok", ...}``) or a problem."""
    clock: Clock
    dead_letters: Callable[[int], Awaitable[list[DeadLetter]]] | None = None
    """Newest readings storage refused for good (the spool's dead-letter table)."""
    shelve_max_min: float = 480
    """``[alerting] shelve_max_min``: longer shelving is refused (422)."""
    map_tiles_url: str = ""
    """``[console] map_tiles_url``: the risk map's tiles; "": a plain background."""
    kpi_rules: KpiRules = field(default_factory=KpiRules)
    """``[console] kpi_*``: the alarm KPIs' thresholds."""


def get_console(request: Request) -> Console:
    console: Console = request.app.state.console
    return console


ConsoleDep = Annotated[Console, Depends(get_console)]


def get_journal(console: ConsoleDep) -> Journal:
    return console.alarms.journal


JournalDep = Annotated[Journal, Depends(get_journal)]

DEFAULT_ACTOR = "operator"


def get_actor(request: Request) -> str:
    """Who is acting, as recorded in the alarm's transitions. Until login exists every
    request acts as ``operator``; an authentication layer sets ``request.state.user``."""
    user = getattr(request.state, "user", None)
    name = getattr(user, "name", user)
    return name if isinstance(name, str) and name else DEFAULT_ACTOR


ActorDep = Annotated[str, Depends(get_actor)]
