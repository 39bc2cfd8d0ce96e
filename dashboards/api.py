"""The console's HTTP routes (docs/contract.md §7): health, metrics, enterprises, point
history, alarms, acknowledgement, ingest rejects and the live SSE stream.

Every handler is ``async`` and runs on the event loop: the journal is a synchronous,
local SQLite API meant to be called from the loop thread (its connection belongs to
that thread), and the alarm service wakes its outbox with an ``asyncio.Event``.

Path parameters are checked against the id patterns of ``hazwatch.models`` before a
handler runs; errors are JSON ``{"detail": ...}`` saying what was expected.

Every route but ``/healthz`` takes the caller (``dashboards.auth.CallerDep``: 401 without
a session) and every query is scoped by what the caller sees: the journal queries take
``caller.enterprises``; an enterprise, point or alarm outside it is 404, worded exactly
as for one that does not exist, so a caller cannot learn what others have.
"""

from __future__ import annotations

import asyncio
import json
from collections import defaultdict
from collections.abc import AsyncGenerator
from typing import Annotated, Any

import structlog
from fastapi import APIRouter, Depends, HTTPException, Path, Query, Request, Response, status
from fastapi.sse import EventSourceResponse
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.types import Receive, Scope, Send

from alerting.journal import Journal
from dashboards.auth import (
    Caller,
    CallerDep,
    OptionalCallerDep,
    audit,
    from_this_machine,
    require,
    session_alive,
)
from dashboards.deps import Console, ConsoleDep, JournalDep
from dashboards.feed import FEED_KINDS, VIEW_PATTERN, View, is_stale
from dashboards.schemas import (
    AckIn,
    AlarmDetail,
    ContactOut,
    DeadLetterOut,
    EnterpriseDetail,
    EnterpriseSummary,
    GatewayOut,
    HealthOut,
    HistoryOut,
    HistoryPoint,
    InstallationOut,
    LastValue,
    PointOut,
    RejectOut,
    RejectsOut,
    UnknownTagOut,
)
from dashboards.status import limit_state, risk
from dashboards.timerange import TimeParamError, history_window, parse_instant
from hazwatch.errors import AlarmNotFound, JournalError, JournalUnavailable, SinkError
from hazwatch.models import ID_PATTERN, TAG_PATTERN, Alarm, Enterprise, Point, ms_to_iso
from ingest.validation import UnknownTag

log = structlog.get_logger(__name__)

router = APIRouter()

_ID_HELP = "1-64 characters of A-Z a-z 0-9 _ -"
EnterpriseId = Annotated[str, Path(pattern=ID_PATTERN, description=f"Enterprise id: {_ID_HELP}")]
PointTag = Annotated[
    str, Path(pattern=TAG_PATTERN, description="Point tag: 1-128 characters of A-Z a-z 0-9 _ . : -")
]
AlarmId = Annotated[str, Path(pattern=ID_PATTERN, description=f"Alarm id: {_ID_HELP}")]

OPEN_ALARMS_SCAN = 100_000
"""Open alarms read at once for the risk colours. One open alarm per (enterprise,
installation, tag, type) bounds the real number far below this."""
SSE_RETRY_MS = 5_000
"""How long a browser waits before reconnecting a dropped stream."""
SESSION_RECHECK_MS = 30_000
"""How often an open stream checks that its session still exists."""
SSE_PING_S = 15.0
"""A stream silent this long sends a ``: ping`` comment (proxies close idle ones)."""


def _not_found(detail: str) -> HTTPException:
    return HTTPException(status.HTTP_404_NOT_FOUND, detail=detail)


def _unprocessable(detail: str) -> HTTPException:
    return HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, detail=detail)


def _enterprise(console: Console, caller: Caller, eid: str) -> Enterprise:
    """The enterprise ``eid`` if the caller sees it; 404 alike when it does not exist."""
    enterprise = console.registry.enterprises.get(eid)
    if enterprise is None or not caller.sees(eid):
        raise _not_found(f"no enterprise {eid!r} in the registry")
    return enterprise


def visible_alarm(journal: Journal, caller: Caller, alarm_id: str) -> Alarm:
    """The alarm if the caller sees its enterprise; 404 alike when it does not exist."""
    try:
        alarm = journal.get(alarm_id)
    except AlarmNotFound as exc:
        raise _not_found(str(exc)) from exc
    if not caller.sees(alarm.enterprise):
        raise _not_found(str(AlarmNotFound(alarm_id)))
    return alarm


# --- health and metrics -------------------------------------------------------------


def _component_ok(report: Any) -> bool:
    if isinstance(report, dict):
        return report.get("status") == "ok" or report.get("ok") is True
    return report is True or report == "ok"


@router.get("/healthz", responses={503: {"model": HealthOut, "description": "a component is down"}})
async def healthz(console: ConsoleDep, response: Response) -> HealthOut:
    """200 when every component reports ok, 503 otherwise; the body lists each one."""
    try:
        components = dict(console.health())
    except Exception as exc:
        log.exception("health_check_failed")
        components = {"console": f"health check failed: {type(exc).__name__}"}
    healthy = bool(components) and all(_component_ok(v) for v in components.values())
    if not healthy:
        response.status_code = status.HTTP_503_SERVICE_UNAVAILABLE
    return HealthOut(status="ok" if healthy else "degraded", components=components)


@router.get("/metrics", response_class=Response)
async def metrics(request: Request, console: ConsoleDep, caller: OptionalCallerDep) -> Response:
    """Prometheus text exposition of the pipeline's metrics. They are labelled by
    enterprise: for callers who see every enterprise (404 for the others), and for a
    scraper on this machine (loopback, not through a proxy) without a session."""
    if caller is None:
        if not from_this_machine(request):
            raise HTTPException(
                status.HTTP_401_UNAUTHORIZED,
                detail="log in first (POST /api/login)",
                headers={"WWW-Authenticate": "Cookie"},
            )
    elif not caller.sees_all:
        raise _not_found("no metrics for a caller who sees some enterprises only")
    return Response(generate_latest(console.metrics.registry), media_type=CONTENT_TYPE_LATEST)


# --- enterprises ------------------------------------------------------------------


def _summary(enterprise: Enterprise, open_alarms: list[Alarm]) -> dict[str, Any]:
    colour, reason, cause = risk(open_alarms, {i.id: i.grade for i in enterprise.installations})
    return {
        "id": enterprise.id,
        "name": enterprise.name,
        "grid": enterprise.grid,
        "status": enterprise.status,
        "risk": colour,
        "risk_reason": reason,
        "risk_cause": cause,
        "location": enterprise.location,
        "installation_count": len(enterprise.installations),
        "point_count": sum(len(i.points) for i in enterprise.installations),
        "open_alarm_count": len(open_alarms),
    }


@router.get("/api/enterprises")
async def list_enterprises(
    console: ConsoleDep, journal: JournalDep, caller: CallerDep
) -> list[EnterpriseSummary]:
    """Every registered enterprise the caller sees, with its risk colour and counts,
    ordered by id."""
    by_enterprise: dict[str, list[Alarm]] = defaultdict(list)
    open_alarms = journal.list_alarms(
        active=True, limit=OPEN_ALARMS_SCAN, enterprises=caller.enterprises
    )
    for alarm in open_alarms:
        by_enterprise[alarm.enterprise].append(alarm)
    return [
        EnterpriseSummary.model_validate(_summary(e, by_enterprise[eid]))
        for eid, e in sorted(console.registry.enterprises.items())
        if caller.sees(eid)
    ]


def _point_out(console: Console, point: Point, now_ms: int) -> PointOut:
    reading = console.latest.get(point.enterprise, point.tag)
    last = None
    if reading is not None:
        last = LastValue(
            value=reading.value,
            ts=ms_to_iso(reading.ts_ms),
            quality=reading.quality,
            age_s=round((now_ms - reading.ts_ms) / 1000, 1),
            stale=is_stale(point, reading.ts_ms, now_ms, console.feed.stale_factor),
        )
    return PointOut(
        tag=point.tag,
        name=point.name,
        kind=point.kind,
        unit=point.unit,
        min=point.min,
        max=point.max,
        ll=point.ll,
        l=point.l,
        h=point.h,
        hh=point.hh,
        deadband=point.deadband,
        interval_s=point.interval_s,
        last=last,
        limit_state=limit_state(point, reading.value) if reading is not None else None,
    )


@router.get("/api/enterprises/{eid}")
async def get_enterprise(
    eid: EnterpriseId, console: ConsoleDep, journal: JournalDep, caller: CallerDep
) -> EnterpriseDetail:
    """Installations with their points (limits, last value), gateways, contacts by name."""
    enterprise = _enterprise(console, caller, eid)
    open_alarms = journal.list_alarms(active=True, enterprise=eid, limit=OPEN_ALARMS_SCAN)
    now_ms = console.clock.now_ms()
    installations = [
        InstallationOut(
            id=i.id,
            name=i.name,
            grade=i.grade,
            points=[_point_out(console, p, now_ms) for p in i.points],
        )
        for i in enterprise.installations
    ]
    gateways = [
        GatewayOut(
            gateway=g.gateway,
            state=g.state,
            last_seen=ms_to_iso(g.last_seen_ms) if g.last_seen_ms is not None else None,
            last_seq=g.last_seq,
            seq_gaps=g.seq_gaps,
            seq_repeats=g.seq_repeats,
            messages=g.messages,
        )
        for g in console.gateways.gateways(eid)
    ]
    # Personal data: names only. Phone numbers and e-mail addresses stay out of the API
    # (the console's users do not need them); the notifiers read them from the registry.
    contacts = [ContactOut(role=role, name=c.name) for role, c in enterprise.contacts.items()]
    return EnterpriseDetail.model_validate(
        {
            **_summary(enterprise, open_alarms),
            "installations": installations,
            "gateways": gateways,
            "contacts": contacts,
        }
    )


# --- history --------------------------------------------------------------------------


@router.get("/api/points/{eid}/{tag}/history")
async def point_history(
    *,
    eid: EnterpriseId,
    tag: PointTag,
    console: ConsoleDep,
    caller: CallerDep,
    start: Annotated[
        str | None, Query(description="ISO 8601 with offset, or epoch ms; default end - 1 h")
    ] = None,
    end: Annotated[
        str | None, Query(description="ISO 8601 with offset, or epoch ms; default now")
    ] = None,
    step: Annotated[
        str | None, Query(description="ms, or 15s / 5m / 1h; default about 300 buckets")
    ] = None,
) -> HistoryOut:
    """Mean value per time bucket of one point, from the readings store."""
    enterprise = _enterprise(console, caller, eid)
    point = console.registry.point(eid, tag)
    if point is None:
        raise _not_found(f"no point {tag!r} in enterprise {enterprise.id!r}")
    try:
        window = history_window(start, end, step, console.clock.now_ms())
    except TimeParamError as exc:
        raise _unprocessable(str(exc)) from exc
    try:
        rows = await console.sink.history(eid, tag, window.start_ms, window.end_ms, window.step_ms)
    except ValueError as exc:  # the sink's own range check; history_window is stricter
        raise _unprocessable(str(exc)) from exc
    except SinkError as exc:
        log.warning("history_unavailable", enterprise=eid, tag=tag, error=str(exc))
        raise HTTPException(
            status.HTTP_503_SERVICE_UNAVAILABLE,
            detail=f"the readings store ({console.sink.name}) is not available; try again",
        ) from exc
    return HistoryOut(
        enterprise=eid,
        tag=tag,
        unit=point.unit,
        start=ms_to_iso(window.start_ms),
        end=ms_to_iso(window.end_ms),
        step_ms=window.step_ms,
        points=[HistoryPoint(ts=ms_to_iso(ts_ms), value=value) for ts_ms, value in rows],
    )


# --- alarms ------------------------------------------------------------------------------


@router.get("/api/alarms")
async def list_alarms(
    *,
    journal: JournalDep,
    caller: CallerDep,
    active: Annotated[
        bool | None, Query(description="true: not closed; false: closed; absent: all")
    ] = None,
    enterprise: Annotated[str | None, Query(pattern=ID_PATTERN)] = None,
    since: Annotated[
        str | None, Query(description="raised at or after: ISO 8601 with offset, or epoch ms")
    ] = None,
    closed: Annotated[
        bool | None,
        Query(
            description="true: closed by the disposal loop (销号); false: not yet — "
            "the alarm desk's list, with cleared alarms still owing feedback or verification"
        ),
    ] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> list[Alarm]:
    """Alarms of the enterprises the caller sees, newest first; open ones
    (``active=true``) by priority, unacknowledged first, then newest (the journal's
    ``OPERATOR_ORDER``)."""
    try:
        since_ms = parse_instant(since, "since") if since is not None else None
    except TimeParamError as exc:
        raise _unprocessable(str(exc)) from exc
    return journal.list_alarms(
        active=active,
        enterprise=enterprise,
        since_ms=since_ms,
        closed=closed,
        limit=limit,
        enterprises=caller.enterprises,
    )


@router.get("/api/alarms/{alarm_id}")
async def get_alarm(alarm_id: AlarmId, journal: JournalDep, caller: CallerDep) -> AlarmDetail:
    """One alarm with its state transitions and its notifications' delivery state."""
    alarm = visible_alarm(journal, caller, alarm_id)
    return AlarmDetail.model_validate(
        {
            **alarm.model_dump(),
            "transitions": journal.transitions(alarm_id),
            "notifications": journal.notifications(alarm_id),
        }
    )


@router.post(
    "/api/alarms/{alarm_id}/ack",
    responses={
        404: {"description": "no such alarm"},
        409: {"description": "already acknowledged or closed"},
        503: {"description": "the alarm journal cannot write (disk full, I/O): retry"},
    },
)
async def acknowledge_alarm(
    *, alarm_id: AlarmId, body: AckIn, request: Request, console: ConsoleDep, caller: CallerDep
) -> Alarm:
    """Acknowledge an alarm; returns it in its new state (also sent on the stream)."""
    visible_alarm(console.alarms.journal, caller, alarm_id)
    require(caller, "ack")
    try:
        event = console.alarms.acknowledge(alarm_id, body.comment, caller.username)
    except AlarmNotFound as exc:
        raise _not_found(str(exc)) from exc
    except JournalUnavailable:
        raise  # 503 with the cause (dashboards.app), not "already acknowledged"
    except JournalError as exc:
        raise HTTPException(status.HTTP_409_CONFLICT, detail=str(exc)) from exc
    log.info("alarm_acknowledged_via_console", alarm_id=alarm_id, state=event.alarm.state)
    audit(request, console, caller.username, "ack", alarm_id, detail={"comment": body.comment})
    return event.alarm


# --- ingest ---------------------------------------------------------------------------


def _rejected_by_reason(console: Console) -> dict[str, int]:
    counts: dict[str, int] = {}
    for family in console.metrics.rejected.collect():
        for sample in family.samples:
            if sample.name.endswith("_total"):
                counts[sample.labels["reason"]] = int(sample.value)
    return counts


@router.get("/api/ingest/rejects")
async def ingest_rejects(console: ConsoleDep, caller: CallerDep) -> RejectsOut:
    """Recent rejected messages and why, and readings of tags not in the registry.

    A rejected message may not name a registered enterprise (that can be why it was
    rejected), so rejections and their counts go to callers who see every enterprise;
    the others get the unknown tags of their own enterprises only."""
    if not caller.sees_all:
        return RejectsOut(
            rejected_total=0,
            by_reason={},
            recent=[],
            unknown_tags=[
                _unknown_tag_out(u) for u in console.unknown_tags() if caller.sees(u.enterprise)
            ],
        )
    by_reason = _rejected_by_reason(console)
    return RejectsOut(
        rejected_total=sum(by_reason.values()),
        by_reason=by_reason,
        recent=[
            RejectOut(
                ts=ms_to_iso(r.ts_ms),
                topic=r.topic,
                reason=r.reason,
                detail=r.detail,
                payload_head=r.payload_head,
            )
            for r in console.rejects.recent()
        ],
        unknown_tags=[_unknown_tag_out(u) for u in console.unknown_tags()],
    )


def _unknown_tag_out(u: UnknownTag) -> UnknownTagOut:
    return UnknownTagOut(
        enterprise=u.enterprise,
        gateway=u.gateway,
        tag=u.tag,
        count=u.count,
        last_seen=ms_to_iso(u.last_seen_ms),
    )


@router.get("/api/ingest/dead-letters")
async def ingest_dead_letters(
    console: ConsoleDep, caller: CallerDep, limit: Annotated[int, Query(ge=1, le=1000)] = 100
) -> list[DeadLetterOut]:
    """Readings the storage refused for good (InfluxDB 400: type conflict, retention...),
    newest first. The other readings of their batch were stored. Callers who see some
    enterprises only get those of their enterprises (a line storage refused whole names
    none, and goes to callers who see all)."""
    if console.dead_letters is None:
        return []
    letters = await console.dead_letters(limit)
    if not caller.sees_all:
        letters = [
            d for d in letters if d.reading is not None and caller.sees(d.reading.enterprise)
        ]
    return [
        DeadLetterOut(
            at=ms_to_iso(d.at_ms),
            enterprise=d.reading.enterprise,
            gateway=d.reading.gateway,
            tag=d.reading.tag,
            ts=ms_to_iso(d.reading.ts_ms),
            value=d.reading.value,
            quality=d.reading.quality,
            error=d.error,
        )
        if d.reading is not None
        else DeadLetterOut(at=ms_to_iso(d.at_ms), gateway=d.gateway, error=d.error, line=d.line)
        for d in letters
    ]


# --- live stream ---------------------------------------------------------------------


def stream_view(
    console: ConsoleDep,
    caller: CallerDep,
    view: Annotated[
        str,
        Query(
            pattern=VIEW_PATTERN,
            description="overview | desk | enterprise:E001 | installation:E001/MH01 | all "
            "(docs/contract.md, 'Live stream views')",
        ),
    ] = "all",
) -> View:
    """The stream's view; an enterprise or installation not in the registry is 404,
    answered before the stream opens, as one the caller does not see."""
    wanted = View.parse(view)
    if wanted.enterprise is not None:
        enterprise = _enterprise(console, caller, wanted.enterprise)
        if wanted.installation is not None and all(
            i.id != wanted.installation for i in enterprise.installations
        ):
            raise _not_found(f"no installation {wanted.installation!r} in {enterprise.id!r}")
    return wanted


_EVENT_STREAM = {"content": {"text/event-stream": {"schema": {"type": "string"}}}}


# Not ``response_class=EventSourceResponse``: FastAPI then runs the route's own
# per-event machinery, which the chunked writes below replace.
@router.get(
    "/api/stream",
    response_class=Response,
    responses={200: {**_EVENT_STREAM, "description": "Server-sent events"}, 404: {}},
)
async def stream(
    request: Request,
    console: ConsoleDep,
    caller: CallerDep,
    view: Annotated[View, Depends(stream_view)],
) -> EventSourceResponse:
    """Server-sent events of one view (``?view=``): ``event: summaries|reading|alarm|
    gateway|stale|resync``, ``data: <json>``.

    The first message is the comment ``: connected`` (sent once subscribed, so nothing
    published after it is missed); a ``: ping`` comment follows every
    :data:`SSE_PING_S` of silence. A slow browser loses the oldest items (the feed is
    drop-oldest), never slows the pipeline; the next write then starts with
    ``event: resync`` and ``data: {"dropped": n}``, and the page re-reads its state
    from the API. Items of enterprises the caller does not see are never sent (the feed
    filters by ``Caller.sees``). The stream ends when its session does (logout, expiry,
    a new password, the user removed): checked at most every
    :data:`SESSION_RECHECK_MS`, before anything is written.
    """
    return _FeedStream(_frames(request, console, caller, view))


class _FeedStream(EventSourceResponse):
    """The stream's response: its generator is closed when the response ends, however
    it ends (the client gone while a write waited included), so the feed forgets the
    subscriber at once."""

    def __init__(self, frames: AsyncGenerator[bytes, None]) -> None:
        super().__init__(frames, headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})
        self._frames = frames

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await super().__call__(scope, receive, send)
        finally:
            await self._frames.aclose()


async def _frames(
    request: Request, console: Console, caller: Caller, view: View
) -> AsyncGenerator[bytes, None]:
    """What is queued for the stream, written as one chunk per wake-up: in a flood a
    browser gets hundreds of events in one write instead of one write each (FastAPI's
    generator streams cost a validated model, two memory-stream hops and a write per
    event, which kept 200 desks thousands of alarms behind)."""
    checked_ms = console.clock.now_ms()
    with console.feed.subscribe(view, caller.sees) as channel:
        log.info("stream_opened", view=view.kind, subscribers=console.feed.subscriber_count)
        try:
            yield f"retry: {SSE_RETRY_MS}\n: connected\n\n".encode()
            told_dropped = 0
            while True:
                try:
                    first = await asyncio.wait_for(channel.get(), SSE_PING_S)
                except TimeoutError:
                    events = []
                else:
                    events = [first, *channel.drain()]
                now_ms = console.clock.now_ms()
                if now_ms - checked_ms >= SESSION_RECHECK_MS:
                    if not session_alive(request, console):
                        log.info("stream_session_ended", user=caller.username)
                        return
                    checked_ms = now_ms
                if not events:
                    yield b": ping\n\n"
                    continue
                chunk = []
                if channel.dropped != told_dropped:
                    missed = {"dropped": channel.dropped - told_dropped}
                    chunk.append(f"event: resync\ndata: {json.dumps(missed)}\n\n".encode())
                    told_dropped = channel.dropped
                for event in events:
                    if event.kind in FEED_KINDS:
                        chunk.append(event.frame)
                    else:
                        log.warning("feed_item_dropped", kind=event.kind)
                if chunk:
                    yield b"".join(chunk)
        finally:
            log.info("stream_closed")
