"""InfluxDB as the readings store, over plain HTTP (httpx), for InfluxDB 1.x, 2.x and 3.x.

Writes go to the endpoint of the configured ``api`` (always with an explicit
precision, spelled per endpoint — docs/architecture.md#measured-facts-influxdb)::

    v1  POST {url}/write?db=<database>&precision=ms           Basic auth, or Token
    v2  POST {url}/api/v2/write?org=&bucket=<database>&precision=ms   Token <token>
    v3  POST {url}/api/v3/write_lp?db=<database>&precision=millisecond  Bearer <token>

Queries (history, the database creation) use InfluxQL on ``{url}/query``, the one
query API every major version serves: 1.x natively; 3.x for its databases; 2.x only
for buckets that have a **DBRP mapping** (``influx v1 dbrp create --db <database>
--rp autogen --bucket-id <id> --default``) — without it history queries fail.

Status codes: 200/204 ok. Transient, raised as ``SinkUnavailable`` so the pipeline
retries with backoff and the MQTT acks wait: connection errors, timeouts, every other
``httpx.RequestError`` (an answer that cannot be decoded...), 5xx, 408, 429, and also
3xx (a proxy redirecting: httpx does not follow) and 401/403/404 (wrong token,
missing database or bucket): those are configuration the operator can fix, and the
readings are not at fault — refusing them would throw good data away. Every other
4xx (400 partial write, 413, 422...) is ``SinkRejected`` with InfluxDB's own error text.
"""

from __future__ import annotations

import asyncio
import gzip
from collections.abc import Sequence
from typing import Any, Self

import httpx
import structlog

from hazwatch.errors import SinkError, SinkRejected, SinkUnavailable
from hazwatch.metrics import Metrics
from hazwatch.models import Reading, Registry
from hazwatch.settings import InfluxSettings, url_without_userinfo
from ingest.lineprotocol import MEASUREMENT, LineEncoder, influxql_identifier, influxql_string
from ingest.sink import check_history_range, measured_write

log = structlog.get_logger(__name__)

ERROR_TEXT_CHARS = 500
POINTS_PER_REQUEST = 5000
"""InfluxData's advice for one write: 5,000 points (~0.5 MB of line protocol)."""
_TRANSIENT_4XX = frozenset({401, 403, 404, 408, 429})


def influx_credentials(settings: InfluxSettings) -> tuple[dict[str, str], httpx.BasicAuth | None]:
    """Headers and auth for every request to InfluxDB with these settings.

    v1 with a username: Basic auth rather than ``u=``/``p=`` query parameters, because
    URLs end up in logs (httpx logs every request URL at INFO).
    """
    token = settings.token.get_secret_value()
    if settings.api == "v1":
        if settings.username:
            return {}, httpx.BasicAuth(settings.username, settings.password.get_secret_value())
        return ({"Authorization": f"Token {token}"} if token else {}), None
    if settings.api == "v2":
        return {"Authorization": f"Token {token}"}, None
    return {"Authorization": f"Bearer {token}"}, None


class InfluxSink:
    """Writes readings as §3.8 points; reads history back with InfluxQL.

    Usable as ``async with InfluxSink(...) as sink``. A client passed in is used and
    left open; otherwise the sink opens and closes its own. With ``api = "v1"`` the
    database is created on entry (``CREATE DATABASE`` is idempotent); if InfluxDB is
    down then, the sink logs it and creates the database before its first write.
    """

    name = "influxdb"

    def __init__(
        self,
        settings: InfluxSettings,
        registry: Registry,
        metrics: Metrics,
        client: httpx.AsyncClient | None = None,
    ) -> None:
        self._settings = settings
        self._metrics = metrics
        self._encoder = LineEncoder(registry)
        self._client = client
        self._owns_client = client is None
        self._database_ready = settings.api != "v1"
        base = settings.url.rstrip("/")
        self._where = url_without_userinfo(base)  # for logs
        self._query_url = f"{base}/query"
        self._ping_url = f"{base}/ping"
        db = settings.database
        self._headers, self._auth = influx_credentials(settings)
        if settings.api == "v1":
            self._write_url = f"{base}/write"
            self._write_params = {"db": db, "precision": "ms"}
        elif settings.api == "v2":
            self._write_url = f"{base}/api/v2/write"
            self._write_params = {"org": settings.org, "bucket": db, "precision": "ms"}
        else:
            self._write_url = f"{base}/api/v3/write_lp"
            self._write_params = {"db": db, "precision": "millisecond"}

    async def __aenter__(self) -> Self:
        if self._client is None:
            self._client = httpx.AsyncClient(timeout=self._settings.timeout_s)
        if not self._database_ready:
            try:
                await self._create_database()
            except SinkUnavailable as exc:
                log.warning("influx_database_not_created", influx=self._where, error=str(exc))
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._owns_client and self._client is not None:
            await self._client.aclose()
            self._client = None

    async def write(self, readings: Sequence[Reading]) -> None:
        """Write in requests of at most ``POINTS_PER_REQUEST`` points.

        A batch can hold 500 messages of 1,000 readings; as one body that would pass
        InfluxDB 1.x's 25 MB ``max-body-size``. If a later request fails, the earlier
        ones stay written; the retry writes them again, which changes nothing.
        """
        if readings:
            await self._write_lines(self._encoder.lines(readings))  # refused before sending

    async def write_lines(self, body: bytes, points: int) -> None:
        """Post line protocol as it is, in one request (the writer sizes the batches)."""
        if body:
            await self._post(body, points)

    async def _write_lines(self, lines: list[str]) -> None:
        for start in range(0, len(lines), POINTS_PER_REQUEST):
            chunk = lines[start : start + POINTS_PER_REQUEST]
            await self._post("\n".join(chunk).encode(), len(chunk))

    async def _post(self, body: bytes, points: int) -> None:
        if not self._database_ready:
            await self._create_database()
        headers = {"Content-Type": "text/plain; charset=utf-8"}
        if self._settings.gzip:
            headers["Content-Encoding"] = "gzip"
            # zlib releases the GIL: off the event loop
            body = await asyncio.to_thread(gzip.compress, body, compresslevel=1)
        with measured_write(self._metrics, self.name, points):
            response = await self._request(
                "POST", self._write_url, params=self._write_params, content=body, headers=headers
            )
            self._check(response, "write")

    async def history(
        self, enterprise: str, tag: str, start_ms: int, end_ms: int, step_ms: int
    ) -> list[tuple[int, float]]:
        check_history_range(start_ms, end_ms, step_ms)
        # Every input is escaped as an InfluxQL literal; "tag" must be quoted (a keyword).
        measurement = influxql_identifier(MEASUREMENT)
        query = (
            f'SELECT mean("value") FROM {measurement} '  # noqa: S608
            f'WHERE "enterprise" = {influxql_string(enterprise)} '
            f'AND "tag" = {influxql_string(tag)} '
            f"AND time >= {int(start_ms)}ms AND time < {int(end_ms)}ms "
            f"GROUP BY time({int(step_ms)}ms) fill(none)"
        )
        result = await self._select(query)
        if "database not found" in result.get("error", ""):
            return []  # nothing written yet
        if "error" in result:
            raise SinkRejected(f"InfluxDB refused the history query: {result['error']}")
        series = result.get("series") or []
        if not series:
            return []
        return [(int(ts), float(mean)) for ts, mean in series[0]["values"] if mean is not None]

    async def ping(self) -> bool:
        if self._client is None:
            return False
        try:
            response = await self._request("GET", self._ping_url)
        except SinkError:
            return False
        return response.status_code in (200, 204)

    async def _create_database(self) -> None:
        """``CREATE DATABASE`` (v1). Only an unreachable InfluxDB stops it (``SinkUnavailable``).

        Any refusal — e.g. a user without admin rights, who cannot create but may
        write to an existing database — is logged and the sink carries on: the first
        write tells whether the database exists (404 keeps the readings waiting).
        """
        name = self._settings.database
        query = f"CREATE DATABASE {influxql_identifier(name)}"
        response = await self._request("POST", self._query_url, data={"q": query})
        if response.status_code >= 500:
            self._check(response, "CREATE DATABASE")
        error = _result_error(response)
        if error is None:
            log.info("influx_database_ready", influx=self._where, database=name)
        else:
            log.warning("influx_database_not_created", influx=self._where, error=error)
        self._database_ready = True

    async def _select(self, query: str) -> dict[str, Any]:
        """Run one InfluxQL query; its result object (with ``error`` if it failed)."""
        params = {"q": query, "db": self._settings.database, "epoch": "ms"}
        response = await self._request("GET", self._query_url, params=params)
        self._check(response, "query")
        try:
            first: dict[str, Any] = response.json()["results"][0]
        except (ValueError, KeyError, IndexError, TypeError) as exc:
            raise SinkRejected(
                f"InfluxDB query: expected JSON with results[], got {response.text[:200]!r}",
                status=response.status_code,
            ) from exc
        return first

    async def _request(self, method: str, url: str, **kwargs: Any) -> httpx.Response:
        if self._client is None:
            raise RuntimeError("InfluxSink is not open: use `async with sink:`")
        headers = {**self._headers, **kwargs.pop("headers", {})}
        try:
            return await self._client.request(
                method, url, auth=self._auth, headers=headers, **kwargs
            )
        except httpx.TimeoutException as exc:
            raise SinkUnavailable(
                f"InfluxDB at {self._where} did not answer within {self._settings.timeout_s} s"
            ) from exc
        except httpx.TransportError as exc:
            raise SinkUnavailable(f"cannot reach InfluxDB at {self._where}: {exc!r}") from exc
        except httpx.RequestError as exc:  # an answer httpx cannot read (bad encoding...)
            raise SinkUnavailable(f"InfluxDB at {self._where}: unusable answer: {exc!r}") from exc

    def _check(self, response: httpx.Response, what: str) -> None:
        status = response.status_code
        if status in (200, 204):
            return
        text = response.text[:ERROR_TEXT_CHARS].strip()
        message = f"InfluxDB {what} at {self._where}: HTTP {status}: {text}"
        if status == 404 and self._settings.api == "v1" and "database not found" in text:
            self._database_ready = False  # dropped under us: create it again, then retry
        if status >= 500 or status in _TRANSIENT_4XX or 300 <= status < 400:
            raise SinkUnavailable(message)
        raise SinkRejected(message, status=status)


def _result_error(response: httpx.Response) -> str | None:
    """InfluxDB's error for a one-statement query, or ``None`` if it succeeded."""
    if response.status_code not in (200, 204):
        return f"HTTP {response.status_code}: {response.text[:ERROR_TEXT_CHARS].strip()}"
    try:
        error = response.json()["results"][0].get("error")
    except (ValueError, KeyError, IndexError, TypeError, AttributeError):
        return f"unexpected answer: {response.text[:200]!r}"
    return None if error is None else str(error)
