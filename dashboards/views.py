"""The risk map's and the alarm KPIs' API: ``GET /api/map`` and ``GET /api/kpis``.

The map gets everything it draws in one answer: grid areas, enterprises with their
location, risk colour and reason, and the tile server (``[console] map_tiles_url``,
empty for the plain offline background). The KPIs are computed by ``alerting/kpis.py``
from the journal's transitions of the period (docs/alerting.md, "Alarm KPIs").
"""

from __future__ import annotations

import asyncio
import functools
from collections import defaultdict
from typing import Annotated

from fastapi import APIRouter, HTTPException, Query, Request, status
from pydantic import BaseModel, ConfigDict

from alerting import kpis
from dashboards.api import OPEN_ALARMS_SCAN, _summary
from dashboards.auth import CallerDep
from dashboards.deps import ConsoleDep, JournalDep
from dashboards.schemas import EnterpriseSummary
from dashboards.timerange import TimeParamError, parse_instant
from hazwatch.models import Alarm, ms_to_iso

router = APIRouter()

KPI_DEFAULT_SPAN_MS = 24 * 3_600_000

KPI_MAX_SPAN_MS = 366 * 24 * 3_600_000
"""A year and a day: the longest period one request may ask for."""


# --- the risk map ---------------------------------------------------------------------


class _Out(BaseModel):
    model_config = ConfigDict(frozen=True)


class GridArea(_Out):
    id: str
    name: str
    area: list[tuple[float, float]]
    """``[lon, lat]`` corners of the grid's outline; empty when the registry has none."""


class MapOut(_Out):
    tiles_url: str
    """Leaflet tile template (``https://host/{z}/{x}/{y}.png``); "": plain background."""
    grids: list[GridArea]
    enterprises: list[EnterpriseSummary]
    """Every enterprise the caller sees, placed or not (``location`` null: not placed)."""


@router.get("/api/map")
async def risk_map(console: ConsoleDep, journal: JournalDep, caller: CallerDep) -> MapOut:
    """What the risk map draws for the caller: the grid areas of the enterprises it sees,
    and those enterprises with their location and risk reason."""
    by_enterprise: dict[str, list[Alarm]] = defaultdict(list)
    open_alarms = journal.list_alarms(
        active=True, limit=OPEN_ALARMS_SCAN, enterprises=caller.enterprises
    )
    for alarm in open_alarms:
        by_enterprise[alarm.enterprise].append(alarm)
    enterprises = [
        (eid, e) for eid, e in sorted(console.registry.enterprises.items()) if caller.sees(eid)
    ]
    shown_grids = {e.grid for _, e in enterprises}
    return MapOut(
        tiles_url=console.map_tiles_url,
        grids=[
            GridArea(id=g.id, name=g.name, area=list(g.area))
            for gid, g in sorted(console.registry.grids.items())
            if gid in shown_grids
        ],
        enterprises=[
            EnterpriseSummary.model_validate(_summary(e, by_enterprise[eid]))
            for eid, e in enterprises
        ],
    )


# --- alarm KPIs -----------------------------------------------------------------------


class RateOut(_Out):
    position: str
    """The operator position: a grid id ("" for enterprises outside every grid)."""
    alarms: int
    per_10min_mean: float
    per_10min_max: int
    flood_pct: float


class AlarmKeyOut(_Out):
    enterprise: str
    installation: str
    tag: str
    type: str


class TopOut(AlarmKeyOut):
    count: int
    share_pct: float


class ChatterOut(AlarmKeyOut):
    count: int
    max_in_window: int


class StandingOut(AlarmKeyOut):
    alarm_id: str
    raised_at: str
    active_h: float
    still_active: bool


class ResponseRow(_Out):
    id: str
    acknowledged: int
    unacknowledged: int
    mean_ack_s: float | None
    feedback: int
    mean_feedback_s: float | None


class ResponseOut(_Out):
    by_enterprise: list[ResponseRow]
    by_grid: list[ResponseRow]


class RulesOut(_Out):
    flood_alarms: int
    chatter_count: int
    chatter_window_s: float
    standing_h: float


class KpisOut(_Out):
    start: str
    end: str
    enterprises: int
    """How many enterprises the figures cover (those the caller sees)."""
    truncated: bool
    """True when the period held more transitions than one request reads: narrow it."""
    rate: list[RateOut]
    top: list[TopOut]
    chattering: list[ChatterOut]
    standing: list[StandingOut]
    response: ResponseOut
    rules: RulesOut


def _period(start: str | None, end: str | None, now_ms: int) -> tuple[int, int]:
    try:
        end_ms = parse_instant(end, "to") if end is not None else now_ms
        start_ms = (
            parse_instant(start, "from") if start is not None else end_ms - KPI_DEFAULT_SPAN_MS
        )
    except TimeParamError as exc:
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, detail=str(exc)) from exc
    if start_ms >= end_ms:
        raise HTTPException(
            status.HTTP_422_UNPROCESSABLE_CONTENT,
            detail=f"from: expected an instant before to ({ms_to_iso(end_ms)}), "
            f"got {ms_to_iso(start_ms)}",
        )
    if end_ms - start_ms > KPI_MAX_SPAN_MS:
        raise HTTPException(
            status.HTTP_422_UNPROCESSABLE_CONTENT,
            detail="from/to: expected a period of at most 366 days",
        )
    return start_ms, end_ms


def _kpi_turn(request: Request) -> asyncio.Lock:
    """One KPI computation at a time per console; the others wait their turn."""
    turn: asyncio.Lock | None = getattr(request.app.state, "kpi_turn", None)
    if turn is None:
        turn = request.app.state.kpi_turn = asyncio.Lock()
    return turn


@router.get("/api/kpis")
async def alarm_kpis(
    *,
    request: Request,
    console: ConsoleDep,
    journal: JournalDep,
    caller: CallerDep,
    start: Annotated[
        str | None,
        Query(alias="from", description="ISO 8601 with offset, or epoch ms; default to - 24 h"),
    ] = None,
    end: Annotated[
        str | None, Query(alias="to", description="ISO 8601 with offset, or epoch ms; default now")
    ] = None,
) -> KpisOut:
    """ISA-18.2 alarm KPIs of the period ``[from, to)`` (docs/alerting.md, "Alarm KPIs"),
    over the enterprises the caller sees: their grids are the operator positions."""
    start_ms, end_ms = _period(start, end, console.clock.now_ms())
    enterprises = {eid: e for eid, e in console.registry.enterprises.items() if caller.sees(eid)}
    grid_of = {eid: e.grid for eid, e in enterprises.items()}
    # Seconds of work for a long period: in a worker thread (the stream and the other
    # routes keep running), one period at a time (many people asking cannot multiply it).
    async with _kpi_turn(request):
        transitions, truncated = await asyncio.to_thread(
            journal.transitions_between, start_ms, end_ms, enterprises=caller.enterprises
        )
        figures = await asyncio.to_thread(
            functools.partial(
                kpis.compute,
                transitions,
                grid_of,
                sorted(set(grid_of.values())),
                start_ms,
                end_ms,
                rules=console.kpi_rules,
            )
        )
    for row in figures["standing"]:
        row["raised_at"] = ms_to_iso(row.pop("raised_ms"))
    return KpisOut.model_validate(
        {
            **figures,
            "start": ms_to_iso(start_ms),
            "end": ms_to_iso(end_ms),
            "enterprises": len(enterprises),
            "truncated": truncated,
        }
    )
