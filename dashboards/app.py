"""The operator console: the API routes, the pages, and their static files.

``create_app(console)`` is all the wiring calls. Every API route needs a logged-in
caller (``dashboards.auth``); pages without a session redirect to ``/login``. Every
response carries the security headers of :data:`SECURITY_HEADERS` (a CSP without inline
script, no framing, no MIME sniffing); no CORS headers are ever sent, so other origins
cannot read the API. An unexpected error answers ``500 {"detail": "internal error"}``
and is logged here, never shown to the client.
The interactive API docs are off: they load their scripts from a CDN, and the
monitoring centre's network is closed. ``/openapi.json`` stays (logged in).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import structlog
from fastapi import Depends, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.openapi.utils import get_openapi
from fastapi.responses import FileResponse, JSONResponse, RedirectResponse
from fastapi.staticfiles import StaticFiles
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from dashboards import actions, admin, api, auth, views
from dashboards.auth import CallerDep, LoginRequired, LoginThrottle, get_page_caller
from dashboards.deps import Console
from hazwatch.errors import JournalUnavailable

log = structlog.get_logger(__name__)

STATIC_DIR = Path(__file__).resolve().parent / "static"
_INPUT_SHOWN = 80
PAGES = {
    "/": "index.html",
    "/desk": "desk.html",
    "/alarms/{alarm_id}": "alarm.html",
    "/map": "map.html",
    "/enterprises/{eid}": "plant.html",
    "/installations/{eid}/{iid}": "plant.html",
    "/kpis": "kpis.html",
}
"""Page path -> its HTML file; the page's script reads the ids from its own URL."""


def security_headers(tiles_origin: str = "") -> dict[str, str]:
    """Everything a page needs comes from this origin (no inline script, no CDN); the
    risk map's tiles may come from ``[console] map_tiles_url``'s origin (images only)."""
    images = f"'self' data: {tiles_origin}".strip()
    return {
        "Content-Security-Policy": (
            f"default-src 'self'; img-src {images}; object-src 'none'; "
            "base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
        ),
        "X-Content-Type-Options": "nosniff",
        "X-Frame-Options": "DENY",
        "Referrer-Policy": "no-referrer",
        "Cross-Origin-Opener-Policy": "same-origin",
    }


SECURITY_HEADERS = security_headers()
"""The headers of every response when no tile server is configured."""
_PAGE_HEADERS = {"Cache-Control": "no-cache"}


class SecurityHeaders:
    """Pure ASGI middleware (it leaves the SSE stream's body alone): adds the security
    headers (:func:`security_headers`) to every HTTP response, and turns an unexpected
    error into ``500 {"detail": "internal error"}`` (with them)."""

    def __init__(self, app: ASGIApp, headers: dict[str, str] = SECURITY_HEADERS) -> None:
        self.app = app
        self.encoded = [(k.lower().encode(), v.encode()) for k, v in headers.items()]

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        started = False

        async def send_with_headers(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
                message["headers"] = [*message.get("headers", []), *self.encoded]
            await send(message)

        try:
            await self.app(scope, receive, send_with_headers)
        except Exception as exc:
            # Logged here with the route; the client gets one line, never the trace.
            log.exception(
                "console_request_failed",
                method=scope.get("method"),
                path=scope.get("path"),
                error=type(exc).__name__,
            )
            if started:
                raise
            response = JSONResponse(status_code=500, content={"detail": "internal error"})
            await response(scope, receive, send_with_headers)


def add_page(app: FastAPI, path: str, filename: str) -> None:
    """Serve ``static/<filename>`` at ``path`` to logged-in callers; others are sent to
    ``/login`` (the page's own API calls are checked again, route by route)."""

    async def page() -> FileResponse:
        return FileResponse(STATIC_DIR / filename, headers=_PAGE_HEADERS)

    app.add_api_route(
        path,
        page,
        methods=["GET"],
        include_in_schema=False,
        dependencies=[Depends(get_page_caller)],
        name=f"page:{path}",
    )


def create_app(console: Console) -> FastAPI:
    """The console's FastAPI application, reading everything from ``console``."""
    app = FastAPI(
        title="hazwatch console",
        summary="Live readings and alarms of major hazard installations",
        docs_url=None,
        redoc_url=None,
        openapi_url=None,  # served below, to logged-in callers only
    )
    app.state.console = console
    app.state.login_throttle = LoginThrottle()
    app.include_router(auth.router)
    app.include_router(api.router)
    app.include_router(actions.router)
    app.include_router(views.router)
    app.include_router(admin.router)
    app.add_exception_handler(RequestValidationError, _validation_error)  # type: ignore[arg-type]
    app.add_exception_handler(JournalUnavailable, _journal_unavailable)  # type: ignore[arg-type]
    app.add_exception_handler(LoginRequired, _to_login)
    app.add_middleware(SecurityHeaders, headers=security_headers(_origin(console.map_tiles_url)))
    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")

    @app.get("/login", include_in_schema=False)
    async def login_page() -> FileResponse:
        return FileResponse(STATIC_DIR / "login.html", headers=_PAGE_HEADERS)

    @app.get("/favicon.ico", include_in_schema=False)
    async def favicon() -> FileResponse:
        # Browsers ask for it on every page that names no icon (the login page too).
        return FileResponse(STATIC_DIR / "favicon.svg", media_type="image/svg+xml")

    @app.get("/openapi.json", include_in_schema=False)
    async def openapi(caller: CallerDep) -> dict[str, Any]:
        del caller
        return _openapi(app)

    for path, filename in PAGES.items():
        add_page(app, path, filename)
    return app


def _origin(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}" if parts.scheme and parts.netloc else ""


def _openapi(app: FastAPI) -> dict[str, Any]:
    """The schema, with the 422 body the app sends: ``{"detail": "<one line>"}``
    (:func:`_validation_error`), not FastAPI's default list of errors."""
    if app.openapi_schema is None:
        schema = get_openapi(
            title=app.title, version=app.version, summary=app.summary, routes=app.routes
        )
        schemas = schema.get("components", {}).get("schemas", {})
        if "HTTPValidationError" in schemas:
            schemas["HTTPValidationError"] = {
                "title": "HTTPValidationError",
                "type": "object",
                "properties": {"detail": {"title": "Detail", "type": "string"}},
                "required": ["detail"],
            }
            schemas.pop("ValidationError", None)
        app.openapi_schema = schema
    return app.openapi_schema


async def _to_login(request: Request, exc: Exception) -> RedirectResponse:
    del exc
    target = request.url.path
    return RedirectResponse(f"/login?next={target}", status_code=303)


async def _validation_error(request: Request, exc: RequestValidationError) -> JSONResponse:
    """422 with one readable ``detail``: where, what was expected, what came."""
    del request
    problems = []
    for error in exc.errors():
        where = ".".join(str(part) for part in error.get("loc", ()))
        problem = f"{where}: {error.get('msg', 'invalid')}"
        if "input" in error and error.get("type") != "missing":
            shown = repr(error["input"])
            if len(shown) > _INPUT_SHOWN:
                shown = shown[:_INPUT_SHOWN] + "..."
            problem += f" (got {shown})"
        problems.append(problem)
    return JSONResponse(status_code=422, content={"detail": "; ".join(problems)})


async def _journal_unavailable(request: Request, exc: JournalUnavailable) -> JSONResponse:
    """503 with the cause (a full disk, an I/O error): the request may be retried."""
    del request
    return JSONResponse(
        status_code=503, content={"detail": f"the alarm journal is unavailable: {exc}"}
    )
