"""Admin routes: console users, the audit log and the registry reload (role ``admin``;
403 for the others).

The same operations as ``hazwatch user ...`` (``hazwatch/usercli.py``) and ``kill -HUP``,
over HTTP for an admin at the console; every change is audited under the admin's name.
"""

from __future__ import annotations

import asyncio
from typing import Annotated, Any

from fastapi import APIRouter, BackgroundTasks, HTTPException, Path, Query, Request, status
from pydantic import BaseModel, ConfigDict, Field

from dashboards.auth import Caller, CallerDep, audit, require
from dashboards.deps import Console, ConsoleDep
from dashboards.users import MAX_PASSWORD, USERNAME_PATTERN, ConsoleDb, Lang, Role, User, UserError
from hazwatch.errors import HazwatchError
from hazwatch.models import ID_PATTERN, Registry

router = APIRouter()

GrantId = Annotated[str, Field(pattern=ID_PATTERN)]


class UserOut(BaseModel):
    username: str
    role: Role
    grids: list[str]
    enterprises: list[str]
    lang: Lang


class UserIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    username: str = Field(pattern=USERNAME_PATTERN)
    password: str = Field(max_length=MAX_PASSWORD)
    role: Role
    grids: list[GrantId] = Field(default=[], max_length=100)
    enterprises: list[GrantId] = Field(default=[], max_length=1000)
    lang: Lang = "zh-CN"


class AuditRowOut(BaseModel):
    id: int
    at_ms: int
    actor: str
    action: str
    target: str
    detail: Any
    address: str
    prev_hash: str
    hash: str


class RegistryReloadOut(BaseModel):
    enterprises: int
    installations: int
    points: int
    added: list[str]
    """Enterprises the new registry has and the running one has not."""
    removed: list[str]
    """... and the other way round."""


def _registry_counts(registry: Registry) -> tuple[int, int, int]:
    enterprises = registry.enterprises.values()
    return (
        len(enterprises),
        sum(len(e.installations) for e in enterprises),
        len(registry.points()),
    )


def _out(user: User) -> UserOut:
    return UserOut(
        username=user.username,
        role=user.role,
        grids=list(user.grids),
        enterprises=list(user.enterprises),
        lang=user.lang,
    )


def _users(console: Console, caller: Caller) -> ConsoleDb:
    require(caller, "admin")
    assert console.users is not None  # a caller exists, so the console has its users
    return console.users


@router.get("/api/users")
async def list_users(console: ConsoleDep, caller: CallerDep) -> list[UserOut]:
    """Every console user with its role and grants."""
    return [_out(u) for u in _users(console, caller).users()]


@router.post(
    "/api/users",
    status_code=status.HTTP_201_CREATED,
    responses={409: {"description": "the user exists"}, 422: {"description": "bad input"}},
)
async def add_user(
    body: UserIn, request: Request, console: ConsoleDep, caller: CallerDep
) -> UserOut:
    """A new user. Grants must name grids and enterprises of the registry."""
    users = _users(console, caller)
    registry = console.registry
    grids = {e.grid for e in registry.enterprises.values()} | set(registry.grids)
    for grid in body.grids:
        if grid not in grids:
            raise HTTPException(422, detail=f"grids: {grid!r} is not a grid of the registry")
    for eid in body.enterprises:
        if eid not in registry.enterprises:
            raise HTTPException(422, detail=f"enterprises: {eid!r} is not in the registry")
    if users.get(body.username) is not None:
        raise HTTPException(status.HTTP_409_CONFLICT, detail=f"user {body.username!r} exists")
    try:
        user = await asyncio.to_thread(  # argon2: tens of ms of CPU, off the event loop
            lambda: users.add(
                body.username,
                body.password,
                body.role,
                grids=tuple(body.grids),
                enterprises=tuple(body.enterprises),
                lang=body.lang,
                now_ms=console.clock.now_ms(),
            )
        )
    except UserError as exc:
        code = 409 if "exists" in str(exc) else 422
        raise HTTPException(code, detail=str(exc)) from exc
    detail = {"role": user.role, "grids": user.grids, "enterprises": user.enterprises}
    audit(request, console, caller.username, "user_add", user.username, detail=detail)
    return _out(user)


@router.delete(
    "/api/users/{username}",
    status_code=status.HTTP_204_NO_CONTENT,
    responses={404: {"description": "no such user"}, 409: {"description": "oneself"}},
)
async def remove_user(
    username: Annotated[str, Path(pattern=USERNAME_PATTERN)],
    request: Request,
    console: ConsoleDep,
    caller: CallerDep,
) -> None:
    """Delete a user and end its sessions. Not oneself (the last admin would lock
    everyone out)."""
    users = _users(console, caller)
    if username == caller.username:
        raise HTTPException(status.HTTP_409_CONFLICT, detail="an admin does not remove itself")
    if not users.remove(username):
        raise HTTPException(status.HTTP_404_NOT_FOUND, detail=f"no user {username!r}")
    audit(request, console, caller.username, "user_remove", username)


@router.get("/api/audit")
async def audit_rows(
    console: ConsoleDep, caller: CallerDep, limit: Annotated[int, Query(ge=1, le=1000)] = 100
) -> list[AuditRowOut]:
    """The newest rows of the audit log (``hazwatch audit verify`` checks the chain)."""
    _users(console, caller)
    assert console.audit is not None
    return [AuditRowOut.model_validate(r) for r in console.audit.rows(limit)]


@router.post(
    "/api/admin/registry/reload",
    status_code=status.HTTP_202_ACCEPTED,
    responses={
        422: {"description": "the registry's files do not load; nothing changed"},
        409: {"description": "this console reads the registry at start only"},
    },
)
async def reload_registry(
    request: Request, console: ConsoleDep, caller: CallerDep, background: BackgroundTasks
) -> RegistryReloadOut:
    """Read the registry's files again and, when they load with the checks of a start
    (limits, grids, contacts, the routes' people, the ANOMALY models' points), restart
    the pipeline on them once this answer is sent: the console is back within seconds
    and its pages reconnect. Files that do not load are 422 with the first problem
    (file, line, field), and the service goes on with the registry it has."""
    require(caller, "admin")
    reloader = console.registry_reloader
    if reloader is None:
        raise HTTPException(
            status.HTTP_409_CONFLICT,
            detail="this console reads the registry at start only: restart the service",
        )
    try:
        registry = await asyncio.to_thread(reloader.check_registry)
    except HazwatchError as exc:
        audit(
            request,
            console,
            caller.username,
            "registry_reload_refused",
            "registry",
            detail={"error": str(exc)},
        )
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, detail=str(exc)) from exc
    old, new = console.registry.enterprises.keys(), registry.enterprises.keys()
    enterprises, installations, points = _registry_counts(registry)
    answer = RegistryReloadOut(
        enterprises=enterprises,
        installations=installations,
        points=points,
        added=sorted(new - old),
        removed=sorted(old - new),
    )
    audit(
        request, console, caller.username, "registry_reload", "registry", detail=answer.model_dump()
    )
    background.add_task(reloader.reload, registry)
    return answer
