"""The operator console: the API routes, the one page, and its static files.

``create_app(console)`` is all the wiring calls; the console binds to 127.0.0.1 until
login exists (DESIGN.md §6), which the wiring enforces through ``[console] listen``.
The interactive API docs are off: they load their scripts from a CDN, and the
monitoring centre's network is closed. ``/openapi.json`` stays.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from pathlib import Path
from urllib.parse import urlsplit

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, JSONResponse
from fastapi.staticfiles import StaticFiles

from dashboards import actions, api, views
from dashboards.deps import Console
from hazwatch.errors import JournalUnavailable

STATIC_DIR = Path(__file__).resolve().parent / "static"
_INPUT_SHOWN = 80
PAGES = {
    "/map": "map.html",
    "/enterprises/{eid}": "enterprise.html",
    "/installations/{eid}/{iid}": "installation.html",
    "/kpis": "kpis.html",
}
"""Page path -> its HTML file; the page's script reads the ids from its own URL."""


def page_headers(tiles_origin: str = "") -> dict[str, str]:
    """Everything a page needs comes from this origin (no inline script, no CDN); the
    risk map's tiles may come from ``[console] map_tiles_url``'s origin."""
    images = f"'self' data: {tiles_origin}".strip()
    return {
        "Content-Security-Policy": (
            f"default-src 'self'; img-src {images}; object-src 'none'; "
            "base-uri 'none'; frame-ancestors 'none'"
        ),
        "X-Content-Type-Options": "nosniff",
        "Cache-Control": "no-cache",
    }


def create_app(console: Console) -> FastAPI:
    """The console's FastAPI application, reading everything from ``console``."""
    app = FastAPI(
        title="hazwatch console",
        summary="Live readings and alarms of major hazard installations",
        docs_url=None,
        redoc_url=None,
    )
    app.state.console = console
    app.include_router(api.router)
    app.include_router(actions.router)
    app.include_router(views.router)
    app.add_exception_handler(RequestValidationError, _validation_error)  # type: ignore[arg-type]
    app.add_exception_handler(JournalUnavailable, _journal_unavailable)  # type: ignore[arg-type]
    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")

    headers = page_headers(_origin(console.map_tiles_url))

    @app.get("/", include_in_schema=False)
    async def index() -> FileResponse:
        return FileResponse(STATIC_DIR / "index.html", headers=headers)

    for path, file in PAGES.items():
        app.add_api_route(path, _page(STATIC_DIR / file, headers), include_in_schema=False)

    @app.get("/desk", include_in_schema=False)
    async def desk() -> FileResponse:
        return FileResponse(STATIC_DIR / "desk.html", headers=headers)

    @app.get("/alarms/{alarm_id}", include_in_schema=False)
    async def alarm_page(alarm_id: api.AlarmId) -> FileResponse:
        del alarm_id  # the page reads it from its address
        return FileResponse(STATIC_DIR / "alarm.html", headers=headers)

    return app


def _page(file: Path, headers: dict[str, str]) -> Callable[[], Awaitable[FileResponse]]:
    async def page() -> FileResponse:
        return FileResponse(file, headers=headers)

    return page


def _origin(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}" if parts.scheme and parts.netloc else ""


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
