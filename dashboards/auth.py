"""Who is calling: login, sessions, CSRF, roles and grants (docs/contract.md "Console login").

Every API route declares ``caller: CallerDep``: without a live ``hz_session`` cookie it
answers 401; a state-changing request (POST, PUT, PATCH, DELETE) must also carry the
session's CSRF token in ``X-CSRF-Token`` (403 otherwise). Pages declare
``PageCallerDep``: without a session the browser is sent to ``/login``.

What a caller sees is :attr:`Caller.enterprises` (``None``: everything), resolved at each
request from the user's grants and the registry, so a registry reload moves a grid
officer's enterprises with the grid. The query helpers take it and answer 404 for an id
outside it, exactly as for an id that does not exist.

Roles (what each may do beyond reading what it sees):

========================  ============================================================
``admin``                 users, dead-notification retry (``admin``); sees everything
``operator``              ack, shelve, verify, comment, suppress; its grids, or all
``grid_officer``          ack, verify, comment; the enterprises of its grids
``enterprise``            ack, feedback, comment; its own enterprise(s)
========================  ============================================================
"""

from __future__ import annotations

import asyncio
import hmac
import time
from collections import OrderedDict, deque
from dataclasses import dataclass
from typing import Annotated, Any, Literal

import structlog
from fastapi import APIRouter, Depends, HTTPException, Request, Response, status
from pydantic import BaseModel, ConfigDict, Field

from dashboards.deps import Console, ConsoleDep
from dashboards.users import LANGS, MAX_PASSWORD, Lang, Role, User
from hazwatch.settings import is_loopback

log = structlog.get_logger(__name__)

COOKIE = "hz_session"
CSRF_HEADER = "X-CSRF-Token"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})

Action = Literal["ack", "shelve", "feedback", "verify", "comment", "suppress", "admin"]
_MAY: dict[str, frozenset[str]] = {
    "admin": frozenset({"admin"}),
    "operator": frozenset({"ack", "shelve", "verify", "comment", "suppress"}),
    "grid_officer": frozenset({"ack", "verify", "comment"}),
    "enterprise": frozenset({"ack", "feedback", "comment"}),
}


@dataclass(frozen=True)
class Caller:
    """The logged-in user of one request."""

    username: str
    role: Role
    enterprises: frozenset[str] | None
    """The enterprises this caller sees; ``None``: all of them."""
    lang: Lang = "zh-CN"

    def sees(self, enterprise_id: str) -> bool:
        return self.enterprises is None or enterprise_id in self.enterprises

    def may(self, action: str) -> bool:
        return action in _MAY.get(self.role, frozenset())

    @property
    def sees_all(self) -> bool:
        return self.enterprises is None


def caller_of(user: User, console: Console) -> Caller:
    """Resolve a user's grants against the registry as it is now."""
    registry = console.registry
    enterprises: frozenset[str] | None
    unscoped_operator = user.role == "operator" and not user.grids and not user.enterprises
    if user.role == "admin" or unscoped_operator:
        enterprises = None
    else:
        grids = set(user.grids)
        enterprises = frozenset(
            {eid for eid, e in registry.enterprises.items() if e.grid in grids}
            | set(user.enterprises)
        )
    return Caller(username=user.username, role=user.role, enterprises=enterprises, lang=user.lang)


# --- throttling ----------------------------------------------------------------------


class LoginThrottle:
    """Failed logins per account and per address in a sliding window; past the limit,
    further attempts are refused (429) until the oldest failure leaves the window.

    Bounded: at most ``max_keys`` keys are remembered (least recently failed forgotten
    first, counted in ``forgotten``)."""

    def __init__(
        self,
        *,
        per_account: int = 5,
        per_address: int = 20,
        window_s: float = 900.0,
        max_keys: int = 10_000,
    ) -> None:
        self.per_account = per_account
        self.per_address = per_address
        self.window_s = window_s
        self.max_keys = max_keys
        self.forgotten = 0
        self._failures: OrderedDict[str, deque[float]] = OrderedDict()

    def _recent(self, key: str, now: float) -> deque[float]:
        times = self._failures.get(key)
        if times is None:
            return deque()
        while times and times[0] <= now - self.window_s:
            times.popleft()
        return times

    def retry_after(self, username: str, address: str, now: float) -> float:
        """Seconds until an attempt is allowed; 0: allowed now."""
        waits = [0.0]
        for key, limit in ((f"u:{username}", self.per_account), (f"a:{address}", self.per_address)):
            times = self._recent(key, now)
            if len(times) >= limit:
                waits.append(times[0] + self.window_s - now)
        return max(waits)

    def failed(self, username: str, address: str, now: float) -> None:
        for key in (f"u:{username}", f"a:{address}"):
            times = self._failures.pop(key, None) or deque()
            times.append(now)
            self._failures[key] = times
        while len(self._failures) > self.max_keys:
            self._failures.popitem(last=False)
            self.forgotten += 1

    def succeeded(self, username: str) -> None:
        self._failures.pop(f"u:{username}", None)


# --- dependencies --------------------------------------------------------------------


class LoginRequired(Exception):
    """A page was asked for without a session: the app redirects to ``/login``."""


def client_address(request: Request) -> str:
    return request.client.host if request.client is not None else ""


def _session_caller(request: Request, console: Console) -> Caller | None:
    cached = getattr(request.state, "caller", None)
    if isinstance(cached, Caller):
        return cached
    token = request.cookies.get(COOKIE)
    if not token or console.users is None or len(token) > 200:
        return None
    session = console.users.session(token, console.clock.now_ms())
    if session is None:
        return None
    caller = caller_of(session.user, console)
    request.state.caller = caller
    request.state.csrf = session.csrf
    request.state.session_token = token
    return caller


def get_caller(request: Request, console: ConsoleDep) -> Caller:
    """The caller of an API request: 401 without a live session; 403 when a
    state-changing request lacks the session's CSRF token."""
    caller = _session_caller(request, console)
    if caller is None:
        raise HTTPException(
            status.HTTP_401_UNAUTHORIZED,
            detail="log in first (POST /api/login)",
            headers={"WWW-Authenticate": "Cookie"},
        )
    if request.method not in SAFE_METHODS:
        sent = request.headers.get(CSRF_HEADER, "")
        if not sent or not _same(sent, request.state.csrf):
            raise HTTPException(
                status.HTTP_403_FORBIDDEN, detail=f"missing or wrong {CSRF_HEADER} header"
            )
    return caller


def get_optional_caller(request: Request, console: ConsoleDep) -> Caller | None:
    """The caller when there is a session, else None (GET routes with a public side)."""
    return _session_caller(request, console)


def from_this_machine(request: Request) -> bool:
    """A direct request from a loopback address: not through a proxy (no
    ``X-Forwarded-For``; uvicorn has replaced the address with it when a local proxy
    sent one)."""
    return is_loopback(client_address(request)) and "x-forwarded-for" not in request.headers


def session_alive(request: Request, console: Console) -> bool:
    """The request's session still exists (not logged out, expired or revoked)."""
    token = getattr(request.state, "session_token", None)
    return (
        token is not None
        and console.users is not None
        and console.users.session(token, console.clock.now_ms()) is not None
    )


def get_page_caller(request: Request, console: ConsoleDep) -> Caller:
    caller = _session_caller(request, console)
    if caller is None:
        raise LoginRequired
    return caller


def _same(a: str, b: str) -> bool:
    return hmac.compare_digest(a.encode(), b.encode())


CallerDep = Annotated[Caller, Depends(get_caller)]
OptionalCallerDep = Annotated[Caller | None, Depends(get_optional_caller)]
PageCallerDep = Annotated[Caller, Depends(get_page_caller)]


def require(caller: Caller, action: str) -> None:
    """403 unless the caller's role may ``action`` (call after the 404 check)."""
    if not caller.may(action):
        raise HTTPException(
            status.HTTP_403_FORBIDDEN, detail=f"the role {caller.role!r} may not {action}"
        )


def audit(
    request: Request,
    console: Console,
    actor: str,
    action: str,
    target: str = "",
    *,
    detail: dict[str, Any] | None = None,
) -> None:
    """Append to the audit log (``dashboards.audit``), if the console has one."""
    if console.audit is None:
        return
    console.audit.append(
        actor=actor,
        action=action,
        target=target,
        detail=detail,
        address=client_address(request),
        now_ms=console.clock.now_ms(),
    )


# --- routes --------------------------------------------------------------------------

router = APIRouter()


class LoginIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    username: str = Field(min_length=1, max_length=64)
    password: str = Field(min_length=1, max_length=MAX_PASSWORD)


class MeOut(BaseModel):
    username: str
    role: Role
    lang: Lang
    tz: str
    """The site's time zone (``[console] timezone``, IANA name): show times in it."""
    enterprises: list[str] | None
    """Sorted; ``null``: every enterprise."""
    csrf: str
    """Send it as ``X-CSRF-Token`` on every POST, PUT, PATCH and DELETE."""


class MeIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    lang: Lang


def _me(caller: Caller, csrf: str, console: Console) -> MeOut:
    return MeOut(
        username=caller.username,
        role=caller.role,
        lang=caller.lang,
        tz=console.timezone,
        enterprises=None if caller.enterprises is None else sorted(caller.enterprises),
        csrf=csrf,
    )


def _throttle(request: Request) -> LoginThrottle:
    throttle: LoginThrottle = request.app.state.login_throttle
    return throttle


@router.post(
    "/api/login",
    responses={
        401: {"description": "wrong username or password"},
        429: {"description": "too many failed logins for this account or address"},
    },
)
async def login(body: LoginIn, request: Request, response: Response, console: ConsoleDep) -> MeOut:
    """Log in: sets the ``hz_session`` cookie (HttpOnly, SameSite=Strict, Secure over
    TLS) and returns what ``GET /api/me`` returns, with the CSRF token."""
    throttle = _throttle(request)
    address = client_address(request)
    now = time.monotonic()
    wait = throttle.retry_after(body.username, address, now)
    if wait > 0:
        audit(request, console, body.username, "login_throttled")
        raise HTTPException(
            status.HTTP_429_TOO_MANY_REQUESTS,
            detail="too many failed logins; try again later",
            headers={"Retry-After": str(int(wait) + 1)},
        )
    users = console.users
    user = None
    if users is not None:
        # argon2 takes tens of milliseconds of CPU: off the event loop.
        user = await asyncio.to_thread(users.check_password, body.username, body.password)
    if user is None or users is None:
        throttle.failed(body.username, address, now)
        audit(request, console, body.username, "login_failed")
        raise HTTPException(status.HTTP_401_UNAUTHORIZED, detail="wrong username or password")
    throttle.succeeded(body.username)
    token, session = users.open_session(user.username, console.clock.now_ms())
    response.set_cookie(
        COOKIE,
        token,
        max_age=(session.expires_ms - console.clock.now_ms()) // 1000,
        path="/",
        secure=_over_tls(request),
        httponly=True,
        samesite="strict",
    )
    audit(request, console, user.username, "login")
    log.info("console_login", user=user.username, role=user.role)
    return _me(caller_of(user, console), session.csrf, console)


def _over_tls(request: Request) -> bool:
    """Served over TLS: uvicorn with a certificate, or a reverse proxy that says so
    (uvicorn applies ``X-Forwarded-Proto`` from ``--forwarded-allow-ips`` only)."""
    return request.url.scheme == "https"


@router.post("/api/logout", status_code=status.HTTP_204_NO_CONTENT)
async def logout(
    request: Request, response: Response, caller: CallerDep, console: ConsoleDep
) -> None:
    """End this session; the cookie is cleared."""
    assert console.users is not None
    console.users.close_session(request.state.session_token)
    response.delete_cookie(
        COOKIE, path="/", secure=_over_tls(request), httponly=True, samesite="strict"
    )
    audit(request, console, caller.username, "logout")


@router.get("/api/me")
async def me(request: Request, caller: CallerDep, console: ConsoleDep) -> MeOut:
    """Who is logged in, what they see (``enterprises``), the site's time zone and the
    CSRF token for state-changing requests."""
    return _me(caller, request.state.csrf, console)


@router.put("/api/me")
async def set_me(body: MeIn, request: Request, caller: CallerDep, console: ConsoleDep) -> MeOut:
    """Change the caller's language (``zh-CN`` or ``en``); kept with the user."""
    assert console.users is not None
    assert body.lang in LANGS
    console.users.set_lang(caller.username, body.lang)
    changed = Caller(
        username=caller.username, role=caller.role, enterprises=caller.enterprises, lang=body.lang
    )
    return _me(changed, request.state.csrf, console)
