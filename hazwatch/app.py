"""The wiring: every stage built from ``Settings`` and run in one TaskGroup.

::

    MqttSource ─► IngestPipeline ─► sink (SQLite / InfluxDB)
                        │
                        └─► DetectorEngine ─► AlarmService ─► journal + outbox ─► notifiers
                                                   │      │   (routing)      (feeds, people)
                                                   │      └─► follow-up: escalation timers
                                                   └─► console feed (SSE, drop-oldest)

Stages never import each other; they meet here, through callbacks (detectors and
alerting in :class:`~hazwatch.detection.DetectorFeed`, which the backtest drives
too). ``Hazwatch`` is
an async context manager (resources) with one ``run()`` (loops, each restarted on
its own when it raises: :mod:`hazwatch.supervisor`), so tests and the demo embed the
whole service in their own event loop. :func:`serve` is ``hazwatch run``: one
``Hazwatch`` after another on the same console socket, built again when the registry is
reloaded (SIGHUP, or an admin at the console).
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import signal
import socket
import threading
from collections.abc import Generator
from contextlib import AsyncExitStack
from typing import Any, Self

import httpx
import structlog
import uvicorn

from alerting.channels import build_channels
from alerting.journal import Journal
from alerting.kpis import KpiRules
from alerting.lifecycle import ACTIVE
from alerting.messages import MessageBuilder
from alerting.notifiers import HistorianNotifier
from alerting.routing import QUIET, Router
from alerting.service import AlarmService
from dashboards.app import create_app
from dashboards.deps import Console
from dashboards.feed import LiveFeed, alarm_item, gateway_item
from dashboards.users import ConsoleDb
from hazwatch.clock import Clock, SystemClock
from hazwatch.detection import DetectorFeed, load_models
from hazwatch.errors import (
    ConfigError,
    HazwatchError,
    NotifierError,
    SinkError,
    SinkRejected,
)
from hazwatch.metrics import Metrics
from hazwatch.models import AlarmEvent, Condition, GatewayStatus, Reading, Registry
from hazwatch.registry import load_registry
from hazwatch.settings import ConsoleSettings, Settings
from hazwatch.supervisor import Loop, TaskSupervisor
from hazwatch.tls import mqtt_ssl_context
from ingest.codecs import build_codecs, plan_connections
from ingest.gateways import GatewayTracker
from ingest.latest import LatestValues
from ingest.lineprotocol import LineEncoder, alarm_line
from ingest.pipeline import IngestPipeline
from ingest.rejects import RejectLog
from ingest.sessionwatch import SessionWatch
from ingest.sink import LineSink, ReadingSink, build_sink
from ingest.source import MqttSource
from ingest.spool import Spool
from ingest.validation import ReadingValidator
from ingest.writer import SinkWriter
from uplink.service import Uplinks

log = structlog.get_logger(__name__)

STORAGE_CHECK_S = 5.0
FEED_BUFFER = 2000
CONSOLE_SHUTDOWN_S = 2
RESTORE_LIMIT = 100_000


def bind_console(console: ConsoleSettings) -> socket.socket:
    """Bind before serving, so the port is known (and taken) at once, even port 0."""
    host, port = console.host, console.port
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        raise ConfigError(
            f"console.listen: cannot listen on {host}:{port}: {exc.strerror}"
        ) from exc
    sock.listen(128)
    sock.setblocking(False)  # noqa: FBT003 - the socket API's own spelling
    return sock


async def serve(
    settings: Settings,
    registry: Registry,
    *,
    started: asyncio.Queue[Hazwatch] | None = None,
) -> None:
    """``hazwatch run``: the service until cancelled, built again on the new registry
    after a reload (SIGHUP, or ``POST /api/admin/registry/reload``).

    A reload is a restart of the pipeline inside the process, through the paths a
    restart takes (nothing is acknowledged to the broker before the spool has it, and
    the detectors start from the journal's active alarms). The console's socket stays
    open meanwhile, so browsers wait in its backlog rather than being refused; metrics
    go on counting. Should the service not start on the new registry, it starts again
    on the previous one. ``started`` receives each service once it runs (tests)."""
    metrics = Metrics()
    listener = bind_console(settings.console)
    previous: Registry | None = None
    sighup = threading.current_thread() is threading.main_thread()
    loop = asyncio.get_running_loop()
    try:
        while True:
            service = Hazwatch(
                settings, registry, metrics=metrics, console_listener=listener, reloadable=True
            )
            try:
                await service.__aenter__()
            except HazwatchError as exc:
                if previous is None:
                    raise
                log.error("registry_reload_failed", error=str(exc))  # noqa: TRY400 - no bug
                registry, previous = previous, None
                continue
            try:
                if sighup:
                    loop.add_signal_handler(signal.SIGHUP, service.reload_from_disk)
                if started is not None:
                    started.put_nowait(service)
                reloaded = await service.run()
            finally:
                if sighup:
                    loop.remove_signal_handler(signal.SIGHUP)
                await service.__aexit__(None, None, None)
            if reloaded is None:
                return
            registry, previous = reloaded, registry
    finally:
        listener.close()


class _ConsoleServer(uvicorn.Server):
    """uvicorn without its own signal handling: the service owns SIGINT/SIGTERM."""

    @contextlib.contextmanager
    def capture_signals(self) -> Generator[None, None, None]:
        yield


class Hazwatch:
    """The whole service. ``async with Hazwatch(...) as hw: await hw.run()``."""

    def __init__(
        self,
        settings: Settings,
        registry: Registry,
        *,
        clock: Clock | None = None,
        metrics: Metrics | None = None,
        console_listener: socket.socket | None = None,
        reloadable: bool = False,
    ) -> None:
        """``console_listener``: a bound, listening socket the console serves on (a copy of
        it: the socket stays open after this service ends); ``None``: bind
        ``[console] listen`` here. ``reloadable``: the console's admin may reload the
        registry, which ends :meth:`run` (:func:`serve` then builds the service again;
        an embedding that does not would stop)."""
        self.settings = settings
        self.registry = registry
        self.clock = clock or SystemClock()
        self.metrics = metrics or Metrics()
        self.gateways = GatewayTracker(self.metrics)
        self.latest = LatestValues()
        self.feed = LiveFeed(
            registry,
            self.clock,
            self.latest,
            self.gateways,
            open_alarms=lambda: self.journal.list_alarms(active=True, limit=RESTORE_LIMIT),
            maxsize=FEED_BUFFER,
            on_drop=lambda name: self.metrics.channel_dropped.labels(name).inc(),
            on_system=self._system_alarm,
            stale_factor=settings.detectors.stale_factor,
        )
        self._stack = AsyncExitStack()
        self._storage_ok = False
        self._console_listener = console_listener
        self._reloadable = reloadable
        self._console_socket: socket.socket | None = None
        self.console_port: int | None = None
        self._reload_to: Registry | None = None
        self._reloading = asyncio.Event()

    async def _write_alarm(self, event: AlarmEvent) -> None:
        """An alarm event as a point of measurement ``alarm`` (docs/contract.md §8)."""
        assert isinstance(self.sink, LineSink)
        try:
            line = alarm_line(event)
        except ValueError as exc:
            raise NotifierError(f"historian: {exc}", permanent=True) from exc
        try:
            await self.sink.write_lines(line.encode(), 1)
        except SinkError as exc:
            permanent = isinstance(exc, SinkRejected)
            raise NotifierError(f"historian: {exc}", permanent=permanent) from exc

    def _system_alarm(self, conditions: list[Condition]) -> None:
        """The feed's SYSTEM conditions, to the alarm service (made on entering)."""
        self.alarms.submit(conditions)

    # --- resources -------------------------------------------------------------

    async def __aenter__(self) -> Self:
        s = self.settings
        mqtt_ssl_context(s.mqtt)  # a TLS file that cannot be loaded stops start-up
        try:
            self.sink: ReadingSink = await self._stack.enter_async_context(
                build_sink(s.storage, self.registry, self.metrics)
            )
            http = await self._stack.enter_async_context(
                httpx.AsyncClient(timeout=s.alerting.webhook_timeout_s)
            )
            historian = (
                HistorianNotifier(self._write_alarm) if s.storage.backend == "influxdb" else None
            )
            channels = build_channels(s, self.registry, http, historian=historian)
            if channels.mqtt is not None:
                await self._stack.enter_async_context(channels.mqtt)
            notifiers = channels.notifiers
            self.journal = self._stack.enter_context(
                Journal(s.journal.path, [n.name for n in notifiers], policy=channels.router)
            )
            a = s.alerting
            self._messages = MessageBuilder(
                self.registry,
                a.language,
                a.console_url or f"http://{s.console.listen}/",
                a.timezone,
            )
            self.alarms = AlarmService(
                self.journal,
                notifiers,
                self.metrics,
                self.clock,
                on_event=self._on_alarm_event,
                people=channels.router.people_channels,
                builder=self._messages,
                flood=a.flood,
                max_attempts=a.max_attempts,
                channel_alarm_s=a.channel_alarm_s,
            )
            self._stack.callback(self.alarms.close)  # before the journal closes
            self.detection = DetectorFeed(
                self.registry,
                s.detectors,
                self.alarms,
                self.clock,
                self.metrics,
                journal_in_background=True,  # the loop never waits for a journal fsync
            )
            self.engine = self.detection.engine
            self.uplinks = await self._stack.enter_async_context(
                Uplinks(
                    s.uplink,
                    self.registry,
                    self.metrics,
                    self.clock,
                    journal=self.journal,
                    on_system=self.alarms.submit,
                )
            )
            self._restore_detectors()
            self.rejects = RejectLog(s.ingest, self.metrics)
            self.validator = ReadingValidator(
                self.registry, s.ingest, self.metrics, on_system=self.alarms.submit
            )
            self.spool = await self._stack.enter_async_context(
                Spool(s.ingest.spool_path, round(s.ingest.spool_max_mb * 2**20), self.metrics)
            )
            encoder = LineEncoder(self.registry)
            self.writer = SinkWriter(
                spool=self.spool,
                sink=self.sink,
                encoder=encoder,
                rejects=self.rejects,
                metrics=self.metrics,
                clock=self.clock,
                batch_readings=s.ingest.write_batch,
                lanes=s.ingest.write_lanes,
                lag_alarm_s=s.ingest.lag_alarm_s,
                on_system=self.alarms.submit,
            )
            self.pipeline = IngestPipeline(
                validator=self.validator,
                encoder=encoder,
                spool=self.spool,
                rejects=self.rejects,
                gateways=self.gateways,
                latest=self.latest,
                metrics=self.metrics,
                clock=self.clock,
                downstream=self._on_readings,
                on_status=self._on_gateway_status,
                on_system=self.alarms.submit,
                gate=self._ingest_gate,
                # the delivered cursor moves once the journal holds what readings caused
                recorded=self.alarms.recorded,
            )
            codecs = build_codecs(s.ingest, clock=self.clock, metrics=self.metrics)
            session_watch = SessionWatch(
                s.mqtt, self.spool, self.metrics, self.clock.now_ms, self.alarms.submit
            )
            self.sources = [
                MqttSource(
                    plan.mqtt,
                    plan.routes,
                    self.pipeline.handle,
                    s.ingest,
                    self.metrics,
                    self.clock,
                    plan.duties,
                    # a persistent session can be lost; a clean one (a Sparkplug host's) cannot
                    on_session=None if plan.duties is not None else session_watch.connected,
                    on_system=self.alarms.submit,
                )
                for plan in plan_connections(codecs, s.mqtt)
            ]
            self.source = self.sources[0]  # hz-json's (a Sparkplug host has its own)
            self.console = Console(
                registry=self.registry,
                alarms=self.alarms,
                sink=self.sink,
                latest=self.latest,
                rejects=self.rejects,
                unknown_tags=self.validator.unknown_tags,
                gateways=self.gateways,
                metrics=self.metrics,
                feed=self.feed,
                health=self.health,
                clock=self.clock,
                dead_letters=self.spool.dead_letters,
                shelve_max_min=a.shelve_max_min,
                map_tiles_url=s.console.map_tiles_url,
                kpi_rules=KpiRules(
                    flood_alarms=s.console.kpi_flood_alarms,
                    chatter_count=s.console.kpi_chatter_count,
                    chatter_window_s=s.console.kpi_chatter_window_s,
                    standing_h=s.console.kpi_standing_h,
                ),
                users=self._open_console_db(),
                timezone=s.console.timezone,
                registry_reloader=self if self._reloadable else None,
            )
            self.supervisor = TaskSupervisor(self.metrics, self.clock, self.alarms.submit)
            self._console_socket = self._console_copy()
            if not a.console_url:  # the port is known now (it may have been 0)
                self._messages.console_url = self.console_url
        except BaseException:
            await self._stack.aclose()
            raise
        # Everything built so far (registry, detector state, caches) lives as long as
        # the service: keep the cyclic GC from walking it again in every full
        # collection (a pause in the ingest's hot path, docs/architecture.md#performance-goals).
        gc.freeze()
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._console_socket is not None:
            self._console_socket.close()
        await self._stack.aclose()
        gc.unfreeze()  # what this service froze can be collected once it is gone (a reload)

    def _restore_detectors(self) -> None:
        """Detectors start knowing which conditions the journal holds active, so an
        alarm whose value went back to normal while the service was down still clears,
        and an unchanged one is not raised again."""
        self.engine.restore(
            (alarm.enterprise, alarm.tag, alarm.type, alarm.installation)
            for alarm in self.journal.list_alarms(active=True, limit=RESTORE_LIMIT)
            if alarm.state in ACTIVE or (alarm.state in QUIET and alarm.cleared_at is None)
        )

    def _open_console_db(self) -> ConsoleDb:
        """Users and the audit log; a console others can reach needs a user first."""
        console = self.settings.console
        db = ConsoleDb(console.db)
        self._stack.callback(db.close)
        if db.user_count() == 0:
            if not console.loopback:
                raise ConfigError(
                    f"console.listen: {console.host} is reachable from other machines but "
                    f"{console.db} has no user; create one first: "
                    "hazwatch user add NAME --role admin"
                )
            log.warning(
                "console_has_no_users",
                db=str(console.db),
                hint="nobody can log in; create one: hazwatch user add NAME --role admin",
            )
        return db

    def _console_copy(self) -> socket.socket:
        """The console's listening socket for this service: a duplicate of the one given
        (uvicorn closes what it served on) or one bound now."""
        if self._console_listener is None:
            sock = bind_console(self.settings.console)
        else:
            sock = self._console_listener.dup()
            sock.setblocking(False)  # noqa: FBT003 - the socket API's own spelling
        self.console_port = int(sock.getsockname()[1])
        return sock

    # --- registry reload -------------------------------------------------------

    def check_registry(self) -> Registry:
        """The registry as its files are now, checked as ``hazwatch run`` checks it at
        start (the routes' contacts, the ANOMALY models' points); a ``HazwatchError``
        says what is wrong, and nothing changes."""
        s = self.settings
        registry = load_registry(s.registry)
        Router(s.alerting, registry, [], source=f"{s.registry} (reload)")
        load_models(s.detectors, registry)
        return registry

    def reload(self, registry: Registry) -> None:
        """Stop, so that :func:`serve` builds the service again on ``registry``."""
        self._reload_to = registry
        self._reloading.set()

    def reload_from_disk(self) -> None:
        """SIGHUP: :meth:`check_registry`, then :meth:`reload`; a registry that does not
        load is logged and the service goes on with the one it has."""
        try:
            registry = self.check_registry()
        except HazwatchError as exc:
            log.error("registry_reload_refused", error=str(exc))  # noqa: TRY400 - no bug
            return
        self.reload(registry)

    @property
    def console_url(self) -> str:
        host = self.settings.console.host
        return f"http://{'[' + host + ']' if ':' in host else host}:{self.console_port}/"

    # --- loops -----------------------------------------------------------------

    async def run(self) -> Registry | None:
        """Run every loop until cancelled; one that raises is restarted on its own
        (:mod:`hazwatch.supervisor`). Returns the registry to run on next when
        :meth:`reload` stopped it (its loops stopped as on SIGTERM)."""
        log.info(
            "hazwatch_started",
            console=self.console_url,
            mqtt=f"{self.settings.mqtt.host}:{self.settings.mqtt.port}",
            storage=self.sink.name,
            points=len(self.registry.points()),
        )
        loops: dict[str, Loop] = {
            "mqtt-source": self._ingest,
            "sink-writer": self.writer.run,
            "alarm-outbox": self.alarms.run_outbox,
            "alarm-followup": self.alarms.run_followup,
            "journal-retry": self.alarms.retry_held,
            "detector-tick": self._tick,
            "storage-check": self._watch_storage,
            "console": self._serve_console,
            "console-feed": self.feed.run,
        }
        if self.uplinks.forwarders:  # a loop that has nothing to do would "finish"
            loops["uplinks"] = self.uplinks.run
        supervised = asyncio.ensure_future(self.supervisor.run(loops))
        reloading = asyncio.ensure_future(self._reloading.wait())
        try:
            await asyncio.wait({supervised, reloading}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            reloading.cancel()
            if not supervised.done():
                supervised.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await supervised
        if not supervised.cancelled():
            supervised.result()  # the loops ended on their own: say why
        if self._reload_to is not None:
            log.info("registry_reloading", enterprises=len(self._reload_to.enterprises))
        return self._reload_to

    async def _ingest(self) -> None:
        """Detectors first get what a crash left undelivered in the spool, then MQTT."""
        await self.pipeline.replay()
        async with asyncio.TaskGroup() as tg:
            for n, source in enumerate(self.sources):
                tg.create_task(source.run(), name=f"mqtt-source-{n}")

    async def wait_subscribed(self) -> None:
        """Return once every MQTT connection of the ingest is subscribed."""
        await asyncio.gather(*(source.wait_connected() for source in self.sources))

    async def _serve_console(self) -> None:
        assert self._console_socket is not None
        config = uvicorn.Config(
            create_app(self.console),
            log_level="warning",
            lifespan="on",
            access_log=False,
            timeout_graceful_shutdown=CONSOLE_SHUTDOWN_S,
            # A TLS reverse proxy on this machine says the scheme (Secure cookies) and
            # the browser's address (login throttling, audit); nobody else is believed.
            proxy_headers=True,
            forwarded_allow_ips=["127.0.0.1", "::1"],
        )
        server = _ConsoleServer(config)
        serving = asyncio.ensure_future(server.serve(sockets=[self._console_socket]))
        try:
            await asyncio.shield(serving)
        except asyncio.CancelledError:
            # Cancelling uvicorn mid-flight breaks its lifespan task (a traceback at every
            # stop); asking it to exit lets it close connections and run shutdown.
            server.should_exit = True
            await serving
            raise

    async def _tick(self) -> None:
        """Time-driven detectors (staleness, gateway silence, the chattering count) run
        on a fixed schedule."""
        while True:
            await asyncio.sleep(self.settings.detectors.tick_s)
            self.detection.tick()
            now_ms = self.clock.now_ms()
            self.validator.check_quiet(now_ms)
            self.rejects.sweep(now_ms)

    async def _watch_storage(self) -> None:
        while True:
            self._storage_ok = await self.sink.ping()
            await asyncio.sleep(STORAGE_CHECK_S)

    def _ingest_gate(self) -> str | None:
        """Ingest acknowledges nothing while the alarm journal cannot write: the broker
        keeps the messages, and no alarm can be lost for them."""
        if not self.alarms.holding:
            return None
        return "the alarm journal cannot write: messages stay in the broker until it does"

    def health(self) -> dict[str, Any]:
        return {
            "mqtt": "ok" if all(s.connected for s in self.sources) else "disconnected",
            "storage": "ok" if self._storage_ok else "unreachable",
            "journal": "ok" if self.alarms.journal_ok else "failing",
            "historian": {
                "status": "ok"
                if self.writer.lag_s <= self.settings.ingest.lag_alarm_s
                else "lagging",
                "lag_s": round(self.writer.lag_s, 1),
                "spool_readings": self.spool.depth_readings,
            },
            **self.uplinks.health(),
        }

    # --- between stages ----------------------------------------------------------

    async def _on_readings(self, readings: list[Reading]) -> None:
        """Stored readings go to the detectors, the live feed, then the uplinks (which
        return once their share is durable). The spool's delivered cursor moves after
        that and after the journal committed their alarms (``alarms.recorded``)."""
        self.detection.readings(readings)
        self.feed.readings(readings)  # only to streams whose view shows them
        await self.uplinks.offer(readings)

    async def _on_gateway_status(self, status: GatewayStatus) -> None:
        """A gateway's online/offline status: GATEWAY_OFFLINE raised or cleared (its
        points' STALE suppressed behind it), and the console told.

        Returns once the journal holds what it caused: a status is not spooled, so no
        replay brings it back after a crash, and its MQTT message must not be
        acknowledged before (the broker redelivers it otherwise)."""
        if self.detection.gateway_status(status):
            await self.alarms.recorded()
        if not self.feed.subscriber_count:
            return
        for info in self.gateways.gateways(status.enterprise):
            if info.gateway == status.gateway:
                self.feed.publish(gateway_item(info))

    def _on_alarm_event(self, event: AlarmEvent) -> None:
        self.feed.publish(alarm_item(event))
        self.uplinks.alarms_changed()
