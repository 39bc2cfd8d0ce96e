"""What the console reads, and the FastAPI dependencies that hand it to the routes.

The wiring (``hazwatch.app``) builds one :class:`Console` from the running stages and
passes it to :func:`dashboards.app.create_app`, which keeps it on ``app.state``. Routes
never build or own a resource: they declare ``console: ConsoleDep`` (or the narrower
``JournalDep``) and read. Tests build a ``Console`` from the real classes on temporary
files. Who calls is ``dashboards.auth.CallerDep``.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Annotated, Any, Protocol

from fastapi import Depends, Request

from alerting.journal import Journal
from alerting.kpis import KpiRules
from alerting.service import AlarmService
from dashboards.audit import AuditLog
from dashboards.feed import LiveFeed
from dashboards.users import ConsoleDb
from hazwatch.clock import Clock
from hazwatch.metrics import Metrics
from hazwatch.models import Registry
from ingest.gateways import GatewayTracker
from ingest.latest import LatestValues
from ingest.rejects import RejectLog
from ingest.sink import ReadingSink
from ingest.spool import DeadLetter
from ingest.validation import UnknownTag


class RegistryReloader(Protocol):
    """The service, as the admin's registry reload sees it (``hazwatch/app.py``)."""

    def check_registry(self) -> Registry:
        """The registry's files as they are now, checked; a ``HazwatchError`` says why
        not."""
        ...

    def reload(self, registry: Registry) -> None:
        """Restart the pipeline on ``registry`` (called once the answer is sent)."""
        ...


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
    users: ConsoleDb | None = None
    """Users, sessions and the audit log (``[console] db``). ``None``: nobody can log in,
    so every API route answers 401."""
    audit: AuditLog | None = None
    """Built from ``users`` when not given."""
    timezone: str = "Asia/Shanghai"
    """``[console] timezone``: the site's IANA time zone, for showing times."""
    registry_reloader: RegistryReloader | None = None
    """``None``: the registry is read at start only (409 to a reload)."""

    def __post_init__(self) -> None:
        if self.audit is None and self.users is not None:
            self.audit = AuditLog(self.users)


def get_console(request: Request) -> Console:
    console: Console = request.app.state.console
    return console


ConsoleDep = Annotated[Console, Depends(get_console)]


def get_journal(console: ConsoleDep) -> Journal:
    return console.alarms.journal


JournalDep = Annotated[Journal, Depends(get_journal)]
