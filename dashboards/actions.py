"""The console's alarm actions beyond one acknowledgement: the flood's mass
acknowledgement, shelving, the disposal loop (feedback, verification), suppressions for
maintenance, and dead notifications.

Same style as ``dashboards/api.py``: ``Annotated`` dependencies, in/out models from
``dashboards/schemas.py``, JSON errors — 404 unknown alarm or suppression, 409 a step
the alarm's state does not allow (the message names the state), 422 bad input (shelving
beyond ``[alerting] shelve_max_min``, a point or installation not in the registry, an
end in the past). Who acts is the caller (``dashboards.auth.CallerDep``): an alarm or
suppression of an enterprise the caller does not see is 404 like one that does not
exist; a step the caller's role may not take is 403. Every step is audited.
"""

from __future__ import annotations

import functools
from typing import Annotated

import structlog
from fastapi import APIRouter, HTTPException, Path, Query, Request, status

from dashboards.api import visible_alarm
from dashboards.auth import Caller, CallerDep, audit, require
from dashboards.deps import Console, ConsoleDep, JournalDep
from dashboards.schemas import (
    BulkAckIn,
    BulkAckOut,
    BulkRefusal,
    DeadNotificationOut,
    FeedbackIn,
    ShelveIn,
    SuppressionIn,
    SuppressionOut,
    UnshelveIn,
    VerifyIn,
)
from dashboards.timerange import TimeParamError, parse_instant
from hazwatch.errors import AlarmNotFound, JournalError, JournalUnavailable
from hazwatch.models import ID_PATTERN, Alarm, AlarmEvent

log = structlog.get_logger(__name__)

router = APIRouter()

AlarmId = Annotated[str, Path(pattern=ID_PATTERN, description="Alarm id")]
MAX_SUPPRESSION_DAYS = 30
_STEP_RESPONSES: dict[int | str, dict[str, str]] = {
    404: {"description": "no such alarm"},
    409: {"description": "the alarm's state does not allow this step (named in detail)"},
    422: {"description": "bad input"},
    503: {"description": "the alarm journal cannot write (disk full, I/O): retry"},
}


def _act(
    request: Request,
    console: Console,
    caller: Caller,
    alarm_id: str,
    action: str,
    *,
    step: object,
    detail: dict[str, object],
) -> Alarm:
    """Run one step for ``caller``: 404 for an alarm it does not see, 403 for a step its
    role may not take; the journal's refusals as 404 / 409; audited when done."""
    visible_alarm(console.alarms.journal, caller, alarm_id)
    require(caller, "shelve" if action == "unshelve" else action)
    try:
        event = step() if callable(step) else step
    except AlarmNotFound as exc:
        raise HTTPException(status.HTTP_404_NOT_FOUND, detail=str(exc)) from exc
    except JournalUnavailable:
        raise  # 503 with the cause (dashboards.app), not a refused step
    except JournalError as exc:
        raise HTTPException(status.HTTP_409_CONFLICT, detail=str(exc)) from exc
    assert isinstance(event, AlarmEvent)
    log.info("alarm_action_via_console", action=action, alarm_id=alarm_id, state=event.alarm.state)
    audit(request, console, caller.username, action, alarm_id, detail=detail)
    return event.alarm


@router.post(
    "/api/alarms/ack",
    responses={
        403: {"description": "the caller's role may not acknowledge"},
        503: {"description": "the alarm journal cannot write (disk full, I/O): retry"},
    },
)
async def acknowledge_alarms(
    *, body: BulkAckIn, request: Request, console: ConsoleDep, caller: CallerDep
) -> BulkAckOut:
    """Acknowledge up to 100 alarms at once (``schemas.MAX_BULK_ACK``), in a flood: the
    reason is required, and is each acknowledgement's comment. Each alarm is
    acknowledged, announced and audited as one step of its own (:func:`_act`); one the
    caller does not see or that does not exist (404), or whose state refuses (409), is
    listed in ``refused`` and the others go on."""
    require(caller, "ack")
    done: list[Alarm] = []
    refused: list[BulkRefusal] = []
    detail: dict[str, object] = {"comment": body.reason, "bulk": len(body.ids)}
    for alarm_id in dict.fromkeys(body.ids):  # each once, in the order given
        step = functools.partial(console.alarms.acknowledge, alarm_id, body.reason, caller.username)
        try:
            done.append(_act(request, console, caller, alarm_id, "ack", step=step, detail=detail))
        except HTTPException as exc:  # 404 / 409; a journal that cannot write raises on (503)
            refused.append(BulkRefusal(id=alarm_id, status=exc.status_code, detail=exc.detail))
    log.info("alarms_acknowledged_via_console", acknowledged=len(done), refused=len(refused))
    return BulkAckOut(acknowledged=done, refused=refused)


@router.post("/api/alarms/{alarm_id}/shelve", responses=_STEP_RESPONSES)
async def shelve_alarm(
    alarm_id: AlarmId, body: ShelveIn, request: Request, console: ConsoleDep, caller: CallerDep
) -> Alarm:
    """Shelve an alarm (ISA-18.2) for ``minutes``: nobody is told or chased until it is
    unshelved — automatically when the time is up."""
    if body.minutes > console.shelve_max_min:
        raise HTTPException(
            status.HTTP_422_UNPROCESSABLE_CONTENT,
            detail=f"minutes: at most {console.shelve_max_min:g} ([alerting] shelve_max_min), "
            f"got {body.minutes:g}",
        )
    return _act(
        request,
        console,
        caller,
        alarm_id,
        "shelve",
        step=lambda: console.alarms.shelve(alarm_id, body.minutes, body.reason, caller.username),
        detail={"minutes": body.minutes, "reason": body.reason},
    )


@router.post("/api/alarms/{alarm_id}/unshelve", responses=_STEP_RESPONSES)
async def unshelve_alarm(
    alarm_id: AlarmId, body: UnshelveIn, request: Request, console: ConsoleDep, caller: CallerDep
) -> Alarm:
    """Take an alarm off the shelf before its time."""
    return _act(
        request,
        console,
        caller,
        alarm_id,
        "unshelve",
        step=lambda: console.alarms.unshelve(alarm_id, caller.username, body.comment),
        detail={"comment": body.comment},
    )


@router.post("/api/alarms/{alarm_id}/feedback", responses=_STEP_RESPONSES)
async def alarm_feedback(
    alarm_id: AlarmId, body: FeedbackIn, request: Request, console: ConsoleDep, caller: CallerDep
) -> Alarm:
    """The enterprise's disposal feedback (处置反馈): cause and measures taken."""
    return _act(
        request,
        console,
        caller,
        alarm_id,
        "feedback",
        step=lambda: console.alarms.feedback(alarm_id, body.cause, body.measures, caller.username),
        detail={"cause": body.cause, "measures": body.measures},
    )


@router.post("/api/alarms/{alarm_id}/verify", responses=_STEP_RESPONSES)
async def verify_alarm(
    alarm_id: AlarmId, body: VerifyIn, request: Request, console: ConsoleDep, caller: CallerDep
) -> Alarm:
    """Verify the feedback (核查): accepted closes the alarm (销号, once its condition has
    cleared and it is acknowledged); rejected asks the enterprise for new feedback."""
    return _act(
        request,
        console,
        caller,
        alarm_id,
        "verify",
        step=lambda: console.alarms.verify(alarm_id, body.accepted, body.comment, caller.username),
        detail={"accepted": body.accepted, "comment": body.comment},
    )


# --- suppressions ------------------------------------------------------------------


def _scope(console: Console, caller: Caller, body: SuppressionIn) -> tuple[str, str]:
    """(installation, tag) of a suppression, checked against the registry and what the
    caller sees (422, alike for both)."""
    enterprise = console.registry.enterprises.get(body.enterprise)
    if enterprise is None or not caller.sees(body.enterprise):
        raise _unprocessable(f"enterprise: {body.enterprise!r} is not in the registry")
    if (body.installation is None) == (body.tag is None):
        raise _unprocessable("give either installation (all its points) or tag (one point)")
    if body.tag is not None:
        point = console.registry.point(body.enterprise, body.tag)
        if point is None:
            raise _unprocessable(f"tag: no point {body.tag!r} in enterprise {body.enterprise!r}")
        return point.installation, body.tag
    if body.installation not in {i.id for i in enterprise.installations}:
        raise _unprocessable(
            f"installation: no installation {body.installation!r} in {body.enterprise!r}"
        )
    return body.installation or "", ""


def _unprocessable(detail: str) -> HTTPException:
    return HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, detail=detail)


@router.get("/api/suppressions")
async def list_suppressions(
    journal: JournalDep,
    caller: CallerDep,
    ended: Annotated[bool, Query(description="also those that ended")] = False,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> list[SuppressionOut]:
    """Suppressions (maintenance) of the enterprises the caller sees, newest first."""
    return [
        SuppressionOut.model_validate(s.as_dict())
        for s in journal.suppressions(ended=ended, limit=limit, enterprises=caller.enterprises)
    ]


@router.post(
    "/api/suppressions",
    status_code=status.HTTP_201_CREATED,
    responses={422: {"description": "bad input"}},
)
async def create_suppression(
    body: SuppressionIn, request: Request, console: ConsoleDep, caller: CallerDep
) -> SuppressionOut:
    """Suppress a point or an installation until ``end``: its alarms are still
    journalled, shown as ``suppressed``, and nobody is told."""
    installation, tag = _scope(console, caller, body)
    require(caller, "suppress")
    now_ms = console.clock.now_ms()
    try:
        end_ms = parse_instant(body.end, "end")
    except TimeParamError as exc:
        raise _unprocessable(str(exc)) from exc
    if end_ms <= now_ms:
        raise _unprocessable(f"end: must be in the future, got {body.end!r}")
    if end_ms > now_ms + MAX_SUPPRESSION_DAYS * 86_400_000:
        raise _unprocessable(f"end: at most {MAX_SUPPRESSION_DAYS} days ahead")
    found = console.alarms.suppress(
        enterprise=body.enterprise,
        installation=installation,
        tag=tag,
        reason=body.reason,
        end_ms=end_ms,
        user=caller.username,
    )
    log.info("suppression_created", id=found.id, enterprise=found.enterprise, tag=tag)
    audit(
        request,
        console,
        caller.username,
        "suppress",
        str(found.id),
        detail={
            "enterprise": found.enterprise,
            "installation": installation,
            "tag": tag,
            "reason": body.reason,
            "end": body.end,
        },
    )
    return SuppressionOut.model_validate(found.as_dict())


@router.delete(
    "/api/suppressions/{suppression_id}",
    responses={404: {"description": "no such suppression, or it has ended"}},
)
async def end_suppression(
    suppression_id: Annotated[int, Path(ge=1)],
    request: Request,
    console: ConsoleDep,
    caller: CallerDep,
) -> list[Alarm]:
    """End a suppression now; returns the alarms it held that are annunciated again."""
    gone = HTTPException(
        status.HTTP_404_NOT_FOUND, detail=f"no active suppression {suppression_id}"
    )
    found = console.alarms.journal.suppression(suppression_id)
    if found is None or not caller.sees(found.enterprise):
        raise gone
    require(caller, "suppress")
    try:
        events = console.alarms.end_suppression(suppression_id, caller.username)
    except KeyError as exc:
        raise gone from exc
    audit(request, console, caller.username, "end_suppression", str(suppression_id))
    return [e.alarm for e in events]


# --- dead notifications ----------------------------------------------------------------


@router.get("/api/notifications/dead")
async def dead_notifications(
    journal: JournalDep, caller: CallerDep, limit: Annotated[int, Query(ge=1, le=1000)] = 100
) -> list[DeadNotificationOut]:
    """Notifications that failed for good, newest first: refused by the receiver, out
    of attempts, or for someone no configured channel reaches. Of the alarms of the
    enterprises the caller sees."""
    return [
        DeadNotificationOut.model_validate(d)
        for d in journal.dead_letters(limit, enterprises=caller.enterprises)
    ]


@router.post(
    "/api/notifications/{notification_id}/retry",
    status_code=status.HTTP_202_ACCEPTED,
    responses={404: {"description": "no such dead notification"}},
)
async def retry_notification(
    notification_id: Annotated[int, Path(ge=1)],
    request: Request,
    console: ConsoleDep,
    caller: CallerDep,
) -> dict[str, int]:
    """Queue a dead notification again (after the receiver was mended). For admins and
    operators who see every enterprise (a receiver is shared by many)."""
    gone = HTTPException(
        status.HTTP_404_NOT_FOUND,
        detail=f"no dead notification {notification_id} that a channel can deliver",
    )
    if not caller.sees_all:
        raise gone
    if not (caller.may("admin") or caller.may("suppress")):
        require(caller, "admin")
    if not console.alarms.revive(notification_id):
        raise gone
    audit(request, console, caller.username, "retry_notification", str(notification_id))
    return {"id": notification_id}
