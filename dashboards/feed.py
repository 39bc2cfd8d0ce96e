"""The live feed: what ``/api/stream`` sends, routed per view, and how old each value is.

A province is 1,000 enterprises × 100 points at 10,000 readings a second; a page shows
one of a few views of it, so each SSE client subscribes to its view and gets only that
(docs/contract.md, "Live stream views"):

- ``overview``: ``summaries`` items, lists of per-enterprise summaries (open alarms by
  priority, risk colour, stale points and the oldest one's age, gateways offline): every
  enterprise at connect, then once a second those that changed (none: nothing sent);
- ``desk``: ``alarm`` items;
- ``enterprise:E001``: ``reading``, ``alarm``, ``gateway`` and ``stale`` items of E001;
- ``installation:E001/MH01``: the same, of MH01's points (gateways: E001's);
- ``all`` (the default): ``reading``, ``alarm``, ``gateway`` of everything.

The caller's grants filter here, in the data layer: a subscriber carries a ``sees``
predicate (``Caller.sees``) and gets no item of an enterprise outside it.

Items are ``(kind, data)``; ``/api/stream`` sends each as ``event: <kind>`` and
``data: <json>``. The builders below fix the JSON of each kind in one place:

- ``reading``: ``{"enterprise", "installation", "tag", "value", "ts", "quality",
  "limit_state", "interval_s", "age_s", "stale"}`` (``limit_state`` as in
  ``/api/enterprises/{eid}``).
- ``alarm``: the alarm JSON of docs/contract.md §5, after each state change.
- ``gateway``: ``{"enterprise", "gateway", "state", "last_seen", "last_seq",
  "seq_gaps", "seq_repeats", "messages"}``.
- ``stale``: ``{"enterprise", "installation", "tag", "ts", "interval_s", "age_s",
  "stale": true}``, once when a point's last value goes stale.
- ``summaries``: ``{"summaries": [...]}``, each as :meth:`LiveFeed.summary` makes it.

**Stale.** A value older than ``stale_factor`` (3) × its point's ``interval_s``, by the
reading's own time on the server's clock, is stale; points without ``interval_s`` never
are. Reading items say whether they arrived stale, ``stale`` items say when a shown
value became so, summaries count them: a page never shows an old value as current.

A subscriber's channel is bounded and drops its oldest item when full (counted by
``on_drop``, the ``hazwatch_channel_dropped_total`` metric): a slow browser never slows
the pipeline. Its stream then sends a ``resync`` item, and the page re-reads its state
from the API (``/api/stream``); a second with drops raises the SYSTEM condition
``console_feed_overflow``, cleared after :data:`OVERFLOW_QUIET_MS` without one
(docs/operations.md). Nothing is built for a view nobody watches: a reading item is
made only when a subscriber wants its enterprise.

Wiring example::

    feed = LiveFeed(registry, clock, latest, gateways, open_alarms=..., on_drop=...,
                    on_system=alarms.submit)
    service = AlarmService(..., on_event=lambda e: feed.publish(alarm_item(e)))
    feed.readings(stored_batch)          # after each stored batch
    await feed.run()                     # once a second: summaries, stale items, overflow
"""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Literal

import structlog

from dashboards.status import limit_state, risk_of
from hazwatch.bus import Channel
from hazwatch.clock import Clock
from hazwatch.models import (
    ID_PATTERN,
    Alarm,
    AlarmEvent,
    Condition,
    Point,
    Priority,
    Reading,
    Registry,
    ms_to_iso,
    system_condition,
)
from ingest.gateways import GatewayInfo, GatewayTracker
from ingest.latest import LatestValues

log = structlog.get_logger(__name__)

FEED_KINDS = frozenset({"reading", "alarm", "gateway", "stale", "summaries"})
STALE_FACTOR = 3.0
"""A value older than this × its point's ``interval_s`` is stale (``[detectors]
stale_factor``, the same factor as the STALE alarm)."""
SUMMARY_PERIOD_S = 1.0
"""Summaries and stale items are computed once a second: at most one summary a second
per enterprise."""
OPEN_ALARMS_LIMIT = 100_000
OVERFLOW_TAG = "console_feed_overflow"
OVERFLOW_QUIET_MS = 60_000
"""The overflow condition clears after this long without a dropped item."""

_ID = ID_PATTERN.removeprefix("^").removesuffix("$")
VIEW_PATTERN = rf"^(all|overview|desk|enterprise:{_ID}|installation:{_ID}/{_ID})$"
"""``view`` of ``/api/stream``: ``all``, ``overview``, ``desk``, ``enterprise:E001``,
``installation:E001/MH01``."""
_VIEW_RE = re.compile(VIEW_PATTERN)

FeedItem = tuple[str, dict[str, Any]]
"""One live-feed item: ``(kind, JSON-ready data)``, kind in :data:`FEED_KINDS`."""


class FeedEvent:
    """An item as subscribers receive it: its JSON and its SSE frame are built once,
    however many streams send it (200 browsers in an alarm flood)."""

    __slots__ = ("_frame", "_raw", "data", "kind")

    def __init__(self, kind: str, data: dict[str, Any]) -> None:
        self.kind = kind
        self.data = data
        self._raw: str | None = None
        self._frame: bytes | None = None

    @property
    def raw(self) -> str:
        if self._raw is None:
            self._raw = json.dumps(self.data, ensure_ascii=False, separators=(",", ":"))
        return self._raw

    @property
    def frame(self) -> bytes:
        """The SSE event, ``event: <kind>`` and ``data: <json>`` (one line: JSON
        escapes newlines), ready to write.

        >>> FeedEvent("alarm", {"id": "A1", "note": "two\\nlines"}).frame
        b'event: alarm\\ndata: {"id":"A1","note":"two\\\\nlines"}\\n\\n'
        """
        if self._frame is None:
            self._frame = f"event: {self.kind}\ndata: {self.raw}\n\n".encode()
        return self._frame

    def __repr__(self) -> str:
        return f"FeedEvent({self.kind!r}, {self.data!r})"


ViewKind = Literal["all", "overview", "desk", "enterprise", "installation"]
Sees = Callable[[str], bool]
_UNACKED = frozenset({"active_unack", "cleared_unack"})
_OPEN_ALARMS_CLOSED = "cleared"  # an alarm is open until its state is cleared (the journal's rule)


def _everyone(enterprise: str) -> bool:
    del enterprise
    return True


@dataclass(frozen=True, slots=True)
class View:
    """What one stream carries; :meth:`parse` reads the ``view`` query parameter.

    >>> View.parse("installation:E001/MH01")
    View(kind='installation', enterprise='E001', installation='MH01')
    >>> View.parse("overview").enterprise is None
    True
    """

    kind: ViewKind
    enterprise: str | None = None
    installation: str | None = None

    @classmethod
    def parse(cls, text: str) -> View:
        if not _VIEW_RE.fullmatch(text):
            raise ValueError(
                "view: expected all, overview, desk, enterprise:<id> or "
                f"installation:<enterprise>/<installation>, got {text[:80]!r}"
            )
        kind, _, rest = text.partition(":")
        if kind == "enterprise":
            return cls("enterprise", rest)
        if kind == "installation":
            enterprise, _, installation = rest.partition("/")
            return cls("installation", enterprise, installation)
        simple: dict[str, ViewKind] = {"all": "all", "overview": "overview", "desk": "desk"}
        return cls(simple[kind])


ALL = View("all")


# --- items ---------------------------------------------------------------------------


def _age_s(now_ms: int, ts_ms: int) -> float:
    return round((now_ms - ts_ms) / 1000, 1)


def is_stale(point: Point | None, ts_ms: int, now_ms: int, factor: float = STALE_FACTOR) -> bool:
    """Older than ``factor`` × the point's ``interval_s`` at ``now_ms``.

    >>> from hazwatch.models import Point, PointKind
    >>> gas = Point(enterprise="E001", installation="MH01", tag="GD101", name="Gas",
    ...             kind=PointKind.GAS_LEL, interval_s=10)
    >>> is_stale(gas, ts_ms=0, now_ms=30_000), is_stale(gas, ts_ms=0, now_ms=30_001)
    (False, True)
    """
    if point is None or point.interval_s is None:
        return False
    return now_ms - ts_ms > factor * point.interval_s * 1000


def reading_item(
    reading: Reading, point: Point | None, now_ms: int | None = None, factor: float = STALE_FACTOR
) -> FeedItem:
    """``now_ms``: the server's time, for ``age_s`` and ``stale`` (``None``: the reading's)."""
    now = reading.ts_ms if now_ms is None else now_ms
    data: dict[str, Any] = {
        "enterprise": reading.enterprise,
        "installation": point.installation if point is not None else None,
        "tag": reading.tag,
        "value": reading.value,
        "ts": ms_to_iso(reading.ts_ms),
        "quality": reading.quality.value,
        "limit_state": limit_state(point, reading.value) if point is not None else None,
        "interval_s": point.interval_s if point is not None else None,
        "age_s": _age_s(now, reading.ts_ms),
        "stale": is_stale(point, reading.ts_ms, now, factor),
    }
    return ("reading", data)


def stale_item(point: Point, ts_ms: int, now_ms: int) -> FeedItem:
    data: dict[str, Any] = {
        "enterprise": point.enterprise,
        "installation": point.installation,
        "tag": point.tag,
        "ts": ms_to_iso(ts_ms),
        "interval_s": point.interval_s,
        "age_s": _age_s(now_ms, ts_ms),
        "stale": True,
    }
    return ("stale", data)


def alarm_item(event: AlarmEvent) -> FeedItem:
    return ("alarm", event.alarm.model_dump(mode="json"))


def gateway_item(info: GatewayInfo) -> FeedItem:
    data: dict[str, Any] = {
        "enterprise": info.enterprise,
        "gateway": info.gateway,
        "state": info.state,
        "last_seen": ms_to_iso(info.last_seen_ms) if info.last_seen_ms is not None else None,
        "last_seq": info.last_seq,
        "seq_gaps": info.seq_gaps,
        "seq_repeats": info.seq_repeats,
        "messages": info.messages,
    }
    return ("gateway", data)


# --- the feed ------------------------------------------------------------------------


@dataclass(eq=False, slots=True)
class _Subscriber:
    channel: Channel[FeedEvent]
    view: View
    sees: Sees

    def wants_installation(self, installation: str | None) -> bool:
        return self.view.installation is None or self.view.installation == installation


@dataclass(slots=True)
class _Watch:
    """An enterprise with enterprise/installation subscribers: its stale points told."""

    subscribers: set[_Subscriber]
    stale_told: set[str]


class LiveFeed:
    """Routes live items to SSE subscribers by view and grants; builds the summaries."""

    def __init__(
        self,
        registry: Registry,
        clock: Clock,
        latest: LatestValues,
        gateways: GatewayTracker,
        *,
        open_alarms: Callable[[], Iterable[Alarm]] = list,
        maxsize: int = 2000,
        on_drop: Callable[[str], None] | None = None,
        on_system: Callable[[list[Condition]], object] | None = None,
        stale_factor: float = STALE_FACTOR,
        name: str = "console_feed",
    ) -> None:
        self.registry = registry
        self.clock = clock
        self.latest = latest
        self.gateways = gateways
        self.stale_factor = stale_factor
        self.name = name
        self._open_alarms_source = open_alarms
        self._maxsize = maxsize
        self._on_drop = on_drop
        self._on_system = on_system
        self._drops = 0  # items dropped by any subscriber's channel, ever
        self._drops_seen = 0  # ... as of the last tick
        self._overflow_since_ms: int | None = None
        self._last_drop_ms = 0
        self._all: set[_Subscriber] = set()
        self._desk: set[_Subscriber] = set()
        self._overview: set[_Subscriber] = set()
        self._watched: dict[str, _Watch] = {}
        # enterprise -> alarm id -> (priority, state) of its open alarms; None until read
        self._open: dict[str, dict[str, tuple[str, str]]] | None = None
        self._summaries: dict[str, dict[str, Any]] = {}  # last sent, per enterprise
        self._summary_keys: dict[str, tuple[Any, ...]] = {}
        self._limits: dict[str, tuple[int, list[tuple[str, float]]]] = {}
        self._limits_of: Registry | None = None

    # --- subscribing -------------------------------------------------------------

    @property
    def subscriber_count(self) -> int:
        watched = sum(len(w.subscribers) for w in self._watched.values())
        return len(self._all) + len(self._desk) + len(self._overview) + watched

    @contextmanager
    def subscribe(self, view: View = ALL, sees: Sees | None = None) -> Iterator[Channel[FeedEvent]]:
        """A channel of ``view``'s items that ``sees`` allows, until the block ends.

        An overview channel starts with one ``summaries`` item holding the current summary
        of every enterprise it sees."""
        sub = _Subscriber(Channel(self.name, self._maxsize, self._dropped), view, sees or _everyone)
        if view.kind == "overview":
            if not self._overview:
                self._refresh_summaries(send=False)
            snapshot = [s for eid, s in self._summaries.items() if sub.sees(eid)]
            sub.channel.put_nowait(FeedEvent("summaries", {"summaries": snapshot}))
        group = self._group(view)
        group.add(sub)
        try:
            yield sub.channel
        finally:
            group.discard(sub)
            if view.enterprise is not None and not group:
                self._watched.pop(view.enterprise, None)

    def _dropped(self, name: str) -> None:
        self._drops += 1
        if self._on_drop is not None:
            self._on_drop(name)

    def _group(self, view: View) -> set[_Subscriber]:
        if view.kind == "all":
            return self._all
        if view.kind == "desk":
            return self._desk
        if view.kind == "overview":
            return self._overview
        assert view.enterprise is not None
        watch = self._watched.get(view.enterprise)
        if watch is None:
            watch = self._watched[view.enterprise] = _Watch(set(), set())
        return watch.subscribers

    # --- publishing --------------------------------------------------------------

    def readings(self, readings: Sequence[Reading]) -> None:
        """Stored readings, to the subscribers of their enterprise (and of ``all``)."""
        if not self._watched and not self._all:
            return
        now_ms = self.clock.now_ms()
        for reading in readings:
            watch = self._watched.get(reading.enterprise)
            if watch is None and not self._all:
                continue
            point = self.registry.point(reading.enterprise, reading.tag)
            item = FeedEvent(*reading_item(reading, point, now_ms, self.stale_factor))
            installation = point.installation if point is not None else None
            if watch is not None:
                for sub in watch.subscribers:
                    if sub.wants_installation(installation) and sub.sees(reading.enterprise):
                        sub.channel.put_nowait(item)
            self._to_all(item, reading.enterprise)

    def publish(self, item: FeedItem) -> None:
        """One item, routed by its kind and ``data["enterprise"]``."""
        kind, data = item
        event = FeedEvent(kind, data)
        enterprise = data.get("enterprise")
        if not isinstance(enterprise, str):
            enterprise = ""
        if kind == "alarm":
            self._alarm_changed(enterprise, data)
            for sub in self._desk:
                if sub.sees(enterprise):
                    sub.channel.put_nowait(event)
        watch = self._watched.get(enterprise)
        if watch is not None and kind != "summaries":
            installation = data.get("installation")
            everywhere = kind == "gateway"  # a gateway serves the enterprise's installations
            for sub in watch.subscribers:
                if (everywhere or sub.wants_installation(installation)) and sub.sees(enterprise):
                    sub.channel.put_nowait(event)
        self._to_all(event, enterprise)

    def _to_all(self, item: FeedEvent, enterprise: str) -> None:
        for sub in self._all:
            if sub.sees(enterprise):
                sub.channel.put_nowait(item)

    def _alarm_changed(self, enterprise: str, data: dict[str, Any]) -> None:
        if self._open is None:
            return  # read from the journal when first needed, this change included
        alarm_id, state = data.get("id"), data.get("state")
        if not isinstance(alarm_id, str):
            return
        alarms = self._open.setdefault(enterprise, {})
        if state == _OPEN_ALARMS_CLOSED:
            alarms.pop(alarm_id, None)
        else:
            alarms[alarm_id] = (str(data.get("priority")), str(state))

    def _open_alarms(self) -> dict[str, dict[str, tuple[str, str]]]:
        if self._open is None:
            self._open = {}
            for alarm in self._open_alarms_source():
                self._open.setdefault(alarm.enterprise, {})[alarm.id] = (
                    alarm.priority.value,
                    alarm.state.value,
                )
        return self._open

    # --- the once-a-second work --------------------------------------------------

    async def run(self, period_s: float = SUMMARY_PERIOD_S) -> None:
        """Summaries and stale items, every ``period_s``, until cancelled."""
        while True:
            await asyncio.sleep(period_s)
            self.tick()

    def tick(self) -> None:
        """Changed summaries to the overview, newly stale points to their enterprise's
        subscribers, the overflow condition. Nothing is computed for a view nobody
        watches."""
        if self._overview:
            self._refresh_summaries(send=True)
        if self._watched:
            self._tell_stale()
        self._check_overflow()

    def _check_overflow(self) -> None:
        """``console_feed_overflow`` raised in a tick that saw items dropped, cleared
        :data:`OVERFLOW_QUIET_MS` after the last one."""
        now_ms = self.clock.now_ms()
        dropped = self._drops - self._drops_seen
        self._drops_seen = self._drops
        if dropped:
            self._last_drop_ms = now_ms
            if self._overflow_since_ms is None:
                self._overflow_since_ms = now_ms
                log.warning("console_feed_overflow", dropped=dropped, streams=self.subscriber_count)
                self._report(
                    active=True,
                    now_ms=now_ms,
                    dropped=dropped,
                    message=(
                        f"the console's live feed dropped {dropped} items: a browser cannot "
                        "keep up with what its page shows; the page re-reads its state"
                    ),
                )
        elif (
            self._overflow_since_ms is not None and now_ms - self._last_drop_ms >= OVERFLOW_QUIET_MS
        ):
            self._overflow_since_ms = None
            log.info("console_feed_overflow_over")
            self._report(
                active=False,
                now_ms=now_ms,
                dropped=0,
                message="every console stream keeps up with its page again",
            )

    def _report(self, *, active: bool, now_ms: int, dropped: int, message: str) -> None:
        if self._on_system is not None:
            condition = system_condition(
                OVERFLOW_TAG,
                active=active,
                ts_ms=now_ms,
                message=message,
                value=float(dropped),
                limit=None,
            )
            self._on_system([condition])

    def _tell_stale(self) -> None:
        now_ms = self.clock.now_ms()
        for eid, watch in self._watched.items():
            enterprise = self.registry.enterprises.get(eid)
            if enterprise is None:
                continue
            values = self.latest.enterprise(eid)
            stale_now: set[str] = set()
            for installation in enterprise.installations:
                for point in installation.points:
                    reading = values.get(point.tag)
                    if reading is None or not is_stale(
                        point, reading.ts_ms, now_ms, self.stale_factor
                    ):
                        continue
                    stale_now.add(point.tag)
                    if point.tag in watch.stale_told:
                        continue
                    item = FeedEvent(*stale_item(point, reading.ts_ms, now_ms))
                    for sub in watch.subscribers:
                        if sub.wants_installation(point.installation) and sub.sees(eid):
                            sub.channel.put_nowait(item)
            watch.stale_told = stale_now

    def _refresh_summaries(self, *, send: bool) -> None:
        now_ms = self.clock.now_ms()
        offline: dict[str, int] = {}
        for info in self.gateways.gateways():
            if info.state == "offline":
                offline[info.enterprise] = offline.get(info.enterprise, 0) + 1
        open_alarms = self._open_alarms()
        changed = []
        for eid in self.registry.enterprises:
            summary = self.summary(eid, now_ms, open_alarms.get(eid, {}), offline.get(eid, 0))
            key = tuple(v for k, v in summary.items() if k not in {"at", "worst_stale_s"})
            if self._summary_keys.get(eid) == key:
                continue
            self._summary_keys[eid] = key
            self._summaries[eid] = summary
            changed.append(summary)
        for gone in self._summaries.keys() - self.registry.enterprises.keys():
            del self._summaries[gone], self._summary_keys[gone]
        if not send or not changed:
            return
        # One item a second for all the changes: its JSON is made once for every
        # subscriber that sees them all, and per subscriber only for a narrower one.
        shared = FeedEvent("summaries", {"summaries": changed})
        for sub in self._overview:
            seen = [s for s in changed if sub.sees(s["enterprise"])]
            if len(seen) == len(changed):
                sub.channel.put_nowait(shared)
            elif seen:
                sub.channel.put_nowait(FeedEvent("summaries", {"summaries": seen}))

    def _stale_limits(self, eid: str) -> tuple[int, list[tuple[str, float]]]:
        """An enterprise's point count, and (tag, age after which it is stale) of its
        points with an interval; kept until the registry changes (summaries read them
        for every enterprise every second)."""
        if self._limits_of is not self.registry:
            self._limits = {}
            self._limits_of = self.registry
        cached = self._limits.get(eid)
        if cached is None:
            points = [p for i in self.registry.enterprises[eid].installations for p in i.points]
            factor_ms = self.stale_factor * 1000
            watched = [
                (p.tag, factor_ms * p.interval_s) for p in points if p.interval_s is not None
            ]
            cached = self._limits[eid] = (len(points), watched)
        return cached

    def summary(
        self,
        eid: str,
        now_ms: int,
        open_alarms: dict[str, tuple[str, str]],
        gateways_offline: int,
    ) -> dict[str, Any]:
        """One enterprise at ``now_ms``: its open alarms by priority, risk colour, stale
        points (the oldest value's time, and its age), gateways offline."""
        enterprise = self.registry.enterprises[eid]
        by_priority = dict.fromkeys((p.value for p in Priority), 0)
        unacked = 0
        for priority, state in open_alarms.values():
            by_priority[priority] = by_priority.get(priority, 0) + 1
            unacked += state in _UNACKED
        values = self.latest.enterprise(eid)
        points, watched = self._stale_limits(eid)
        stale = no_data = 0
        oldest: int | None = None
        for tag, max_age_ms in watched:
            reading = values.get(tag)
            if reading is None:
                no_data += 1
            elif now_ms - reading.ts_ms > max_age_ms:
                stale += 1
                if oldest is None or reading.ts_ms < oldest:
                    oldest = reading.ts_ms
        return {
            "enterprise": eid,
            "name": enterprise.name,
            "grid": enterprise.grid,
            "status": enterprise.status.value,
            "risk": risk_of(p for p, n in by_priority.items() if n),
            "alarms": by_priority,
            "open_alarm_count": len(open_alarms),
            "unacked": unacked,
            "point_count": points,
            "no_data": no_data,
            "stale_points": stale,
            "oldest_stale_ts": ms_to_iso(oldest) if oldest is not None else None,
            "worst_stale_s": _age_s(now_ms, oldest) if oldest is not None else None,
            "gateways_offline": gateways_offline,
            "at": ms_to_iso(now_ms),
        }
