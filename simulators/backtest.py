"""``hazwatch backtest``: the alarms a configuration raises on a recording, without MQTT.

For every gateway message of a recording, in order, the components of the live
service run as they do there (``hazwatch/app.py``, ``ingest/pipeline.py``):

1. detector ticks: ``engine.tick`` every ``[detectors] tick_s`` of *recording* time,
   counted from the recording's start, for each tick due up to the message's time;
2. the configured codec of its topic (``[[ingest.codecs]]``, :mod:`ingest.codecs`)
   decodes it, received at its recorded ``t``;
3. :class:`~ingest.validation.ReadingValidator` checks it with now = ``t``;
   rejections are counted by reason, unknown tags listed, gateways tracked (seq);
4. a gateway status, then the valid readings, go through
   :class:`~hazwatch.detection.DetectorFeed` — the service's own path from detectors
   to the :class:`~alerting.service.AlarmService` — on a ``ManualClock`` set to ``t``,
   with a real :class:`~alerting.journal.Journal` in a temporary directory (without
   fsync: it is thrown away) and no notifiers.

Not modelled: storage and the spool (nothing is written), notifications, the
console, operators (no acknowledgements: an alarm that clears and returns stays one
alarm, as it does live while nobody acknowledges it), the service's batching (live,
a batch's statuses reach the detectors before its readings; here each message is
handled whole, in order), and alarms active before the recording started (the
journal starts empty).

The alarm messages a live service published (``hz/v1/{enterprise}/alarms``) are kept
aside when the recording has them: :func:`simulators.comparison.compare` diffs the
backtest's alarms against them.
"""

from __future__ import annotations

import sys
import tempfile
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any, Self

from pydantic import ValidationError

from alerting.journal import Journal
from alerting.notifiers import ALARMS_FILTER
from alerting.service import AlarmService
from detectors.base import format_value
from hazwatch.clock import ManualClock
from hazwatch.detection import DetectorFeed
from hazwatch.metrics import Metrics
from hazwatch.models import Alarm, AlarmEvent, AlarmType, Condition, Registry, ms_to_iso
from hazwatch.settings import Settings
from ingest.codecs import build_routes
from ingest.gateways import GatewayInfo, GatewayTracker
from ingest.routes import topic_matches
from ingest.validation import ReadingValidator, UnknownTag
from simulators.comparison import Comparison
from simulators.recording import RecordedMessage


@dataclass(frozen=True, slots=True)
class ChatteringPoint:
    """A point that chattered at some time during the recording."""

    enterprise: str
    tag: str
    flips: int
    """The most activations of one alarm seen within one chattering window."""
    since_ms: int
    """When it first chattered (the oldest activation of that first window)."""
    type: str
    """The alarm type activated most often."""


@dataclass
class BacktestResult:
    started_ms: int
    first_ms: int | None = None
    last_ms: int | None = None
    messages: int = 0
    gateway_messages: int = 0
    readings: int = 0
    rejected: Counter[str] = field(default_factory=Counter)
    raised: Counter[AlarmType] = field(default_factory=Counter)
    """Raise events per type (an alarm that clears and returns is raised again)."""
    alarms: list[Alarm] = field(default_factory=list)
    """The journal's alarms at the end, oldest raised first."""
    chattering: list[ChatteringPoint] = field(default_factory=list)
    unknown_tags: list[UnknownTag] = field(default_factory=list)
    gateways: list[GatewayInfo] = field(default_factory=list)
    recorded_alarms: list[Alarm] = field(default_factory=list)
    """The last state of each alarm the live service published, oldest raised first."""
    unreadable_alarm_messages: int = 0
    first_raised_at: dict[str, str] = field(default_factory=dict)
    """Alarm id -> its first activation. ``raised_at`` is the activation happening now
    (a re-raise moves it, docs/contract.md); a scenario is judged by when each alarm
    first came, as the live runner does with the first message of each alarm."""


class Backtest:
    """``with Backtest(settings, registry, start_ms) as bt:`` ``bt.feed(m)`` per message,
    then ``bt.result()``. ``start_ms``: when the platform is taken to have started (the
    recording's ``started_ms``): the first tick is one ``tick_s`` later, and points
    never seen count as silent from then."""

    def __init__(self, settings: Settings, registry: Registry, start_ms: int) -> None:
        self.clock = ManualClock(start_ms)
        self.metrics = Metrics()
        self._result = BacktestResult(started_ms=start_ms)
        self._tmp = tempfile.TemporaryDirectory(prefix="hazwatch-backtest-")
        self._journal = Journal(Path(self._tmp.name) / "journal.db", [], durable=False)
        self._journal.open()
        alarms = AlarmService(
            self._journal, [], self.metrics, self.clock, on_event=self._count_raised
        )
        self._feed = DetectorFeed(registry, settings.detectors, alarms, self.clock, self.metrics)
        self._routes = build_routes(settings.ingest)
        self._validator = ReadingValidator(registry, settings.ingest, self.metrics)
        self._gateways = GatewayTracker(self.metrics)
        self._tick_ms = max(1, round(settings.detectors.tick_s * 1000))
        self._next_tick_ms = start_ms + self._tick_ms
        self._chattering: dict[tuple[str, str], ChatteringPoint] = {}
        self._recorded: dict[str, Alarm] = {}

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._journal.close()
        self._tmp.cleanup()

    def feed(self, message: RecordedMessage) -> None:
        result = self._result
        t = message.t
        result.messages += 1
        if result.first_ms is None:
            result.first_ms = t
        result.last_ms = t if result.last_ms is None else max(result.last_ms, t)
        self.advance(t)
        codec = self._routes.codec(message.topic)
        if codec is None:
            if topic_matches(ALARMS_FILTER, message.topic):
                self._keep_recorded_alarm(message.payload)
            return
        self.clock.set(t)
        result.gateway_messages += 1
        for part in codec.decode(message.topic, message.payload, t).parts():
            checked = self._validator.check(part, t)
            for rejection in checked.rejections:
                result.rejected[rejection.reason] += 1
            self._gateways.observe(checked)
            if checked.status is not None:
                self._note(self._feed.gateway_status(checked.status))
            if checked.readings:
                result.readings += len(checked.readings)
                self._note(self._feed.readings(checked.readings))

    def advance(self, t_ms: int) -> None:
        """The detector ticks due up to ``t_ms`` (each at its own time)."""
        while self._next_tick_ms <= t_ms:
            self.clock.set(self._next_tick_ms)
            self._note(self._feed.tick())
            self._next_tick_ms += self._tick_ms

    def result(self) -> BacktestResult:
        result = self._result
        result.alarms = sorted(self._journal.list_alarms(limit=sys.maxsize), key=_alarm_order)
        result.first_raised_at = {a.id: self._first_raised_at(a) for a in result.alarms}
        result.chattering = sorted(
            self._chattering.values(), key=lambda c: (c.since_ms, c.enterprise, c.tag)
        )
        result.unknown_tags = sorted(
            self._validator.unknown_tags(), key=lambda u: (u.enterprise, u.gateway, u.tag)
        )
        result.gateways = self._gateways.gateways()
        result.recorded_alarms = sorted(self._recorded.values(), key=_alarm_order)
        return result

    def _first_raised_at(self, alarm: Alarm) -> str:
        raises = [t for t in self._journal.transitions(alarm.id) if t["kind"] == "raised"]
        return alarm.raised_at if len(raises) < 2 else str(raises[0]["at"])

    def _note(self, conditions: list[Condition]) -> None:
        """After condition changes: which points chatter now (it can only start then)."""
        if not conditions:
            return
        for point in self._feed.engine.chattering():
            key = (point.enterprise, point.tag)
            seen = self._chattering.get(key)
            if seen is None:
                self._chattering[key] = ChatteringPoint(
                    *key, point.flips, point.since_ms, point.type
                )
            elif point.flips > seen.flips:
                self._chattering[key] = ChatteringPoint(
                    *key, point.flips, seen.since_ms, point.type
                )

    def _count_raised(self, event: AlarmEvent) -> None:
        if event.kind == "raised":
            self._result.raised[event.alarm.type] += 1

    def _keep_recorded_alarm(self, payload: bytes) -> None:
        try:
            alarm = Alarm.model_validate_json(payload)
        except ValidationError:
            self._result.unreadable_alarm_messages += 1
            return
        self._recorded[alarm.id] = alarm  # the last message of an alarm is its last state


def run_backtest(
    settings: Settings, registry: Registry, start_ms: int, messages: Iterable[RecordedMessage]
) -> BacktestResult:
    with Backtest(settings, registry, start_ms) as backtest:
        for message in messages:
            backtest.feed(message)
        return backtest.result()


def _alarm_order(alarm: Alarm) -> tuple[str, str, str, str, str]:
    return (alarm.raised_at, alarm.enterprise, alarm.installation, alarm.tag, alarm.type.value)


# --- what the command prints ----------------------------------------------------------

_COLUMNS = ("raised", "enterprise", "tag", "type", "priority", "value", "limit", "cleared")


def render_text(result: BacktestResult, comparison: Comparison | None = None) -> str:
    """The alarm table, then the summary: plain text, the same for the same input."""
    rows = [
        (
            a.raised_at,
            a.enterprise,
            a.tag,
            a.type.value,
            a.priority.value,
            "-" if a.value is None else format_value(a.value),
            "-" if a.limit is None else format_value(a.limit),
            a.cleared_at or "-",
        )
        for a in result.alarms
    ]
    lines: list[str] = []
    if rows:
        widths = [max(len(row[i]) for row in [_COLUMNS, *rows]) for i in range(len(_COLUMNS))]
        lines.extend(
            "  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip()
            for row in [_COLUMNS, *rows]
        )
        lines.append("")
    lines.extend(_summary_lines(result))
    if comparison is not None:
        lines.extend(_comparison_lines(comparison))
    return "\n".join(lines) + "\n"


def _summary_lines(r: BacktestResult) -> list[str]:
    span = "no messages"
    if r.first_ms is not None and r.last_ms is not None:
        seconds = format_value((r.last_ms - r.first_ms) / 1000)
        span = f"{ms_to_iso(r.first_ms)} .. {ms_to_iso(r.last_ms)} ({seconds} s)"
    other = r.messages - r.gateway_messages
    lines = [
        f"recording:  {span}",
        f"messages:   {r.messages} ({r.gateway_messages} from gateways, {other} other)",
        f"readings:   {r.readings} accepted",
        f"rejected:   {_counts(r.rejected)}",
    ]
    if r.unknown_tags:
        listed = ", ".join(
            f"{u.enterprise}/{u.gateway}/{u.tag} ({u.count})" for u in r.unknown_tags
        )
        lines.append(f"unknown tags: {listed}")
    seq = [g for g in r.gateways if g.seq_gaps or g.seq_repeats]
    if seq:
        listed = ", ".join(
            f"{g.enterprise}/{g.gateway} {g.seq_gaps} missing, {g.seq_repeats} repeated"
            for g in seq
        )
        lines.append(f"seq:        {listed}")
    by_type = Counter(a.type for a in r.alarms)
    lines.append(f"alarms:     {_counts(by_type)}")
    lines.append(f"raised:     {_counts(r.raised)}")
    if r.chattering:
        listed = ", ".join(
            f"{c.enterprise}/{c.tag} ({c.type} activated {c.flips} times "
            f"from {ms_to_iso(c.since_ms)})"
            for c in r.chattering
        )
        lines.append(f"chattering: {len(r.chattering)} point(s): {listed}")
    else:
        lines.append("chattering: none")
    return lines


def _counts(counter: Counter[str] | Counter[AlarmType]) -> str:
    total = sum(counter.values())
    if not total:
        return "0"
    listed = ", ".join(f"{key} {n}" for key, n in sorted((str(k), n) for k, n in counter.items()))
    return f"{total} ({listed})"


def _comparison_lines(c: Comparison) -> list[str]:
    tolerance = format_value(c.tolerance_ms / 1000)
    lines = [
        "",
        f"compare with the alarms the live run published (tolerance {tolerance} s):",
        f"  same:                  {c.same}",
        f"  different:             {len(c.different)}",
        f"  only in the recording: {len(c.only_recorded)}",
        f"  only in the backtest:  {len(c.only_backtest)}",
        f"  not compared:          {c.not_compared}",
    ]
    lines.extend(f"  different: {_name(d.backtest)}: {'; '.join(d.problems)}" for d in c.different)
    lines.extend(f"  only in the recording: {_name(a)}" for a in c.only_recorded)
    lines.extend(f"  only in the backtest: {_name(a)}" for a in c.only_backtest)
    lines.append("  result: " + ("identical" if c.identical else "DIFFERENT"))
    return lines


def _name(alarm: Alarm) -> str:
    where = f"{alarm.enterprise}/{alarm.installation}/{alarm.tag}"
    return f"{alarm.type.value} {where} raised {alarm.raised_at}"


def render_json(result: BacktestResult, comparison: Comparison | None = None) -> dict[str, Any]:
    """Everything :func:`render_text` shows, for scripts (alarm ids left out: they are
    random, and the output is the same for the same input)."""
    doc: dict[str, Any] = {
        "recording": {
            "started_ms": result.started_ms,
            "first_ms": result.first_ms,
            "last_ms": result.last_ms,
        },
        "messages": result.messages,
        "gateway_messages": result.gateway_messages,
        "readings": result.readings,
        "rejected": dict(sorted(result.rejected.items())),
        "unknown_tags": [
            {"enterprise": u.enterprise, "gateway": u.gateway, "tag": u.tag, "count": u.count}
            for u in result.unknown_tags
        ],
        "seq": [
            {
                "enterprise": g.enterprise,
                "gateway": g.gateway,
                "missing": g.seq_gaps,
                "repeated": g.seq_repeats,
            }
            for g in result.gateways
        ],
        "alarms": [a.model_dump(mode="json", exclude={"id"}) for a in result.alarms],
        "alarm_counts": dict(sorted(Counter(a.type.value for a in result.alarms).items())),
        "raised_counts": dict(sorted((t.value, n) for t, n in result.raised.items())),
        "chattering": [
            {
                "enterprise": c.enterprise,
                "tag": c.tag,
                "type": c.type,
                "flips": c.flips,
                "since": ms_to_iso(c.since_ms),
            }
            for c in result.chattering
        ],
    }
    if comparison is not None:
        doc["compare"] = {
            "tolerance_ms": comparison.tolerance_ms,
            "identical": comparison.identical,
            "same": comparison.same,
            "different": [
                {"alarm": _name(d.backtest), "problems": list(d.problems)}
                for d in comparison.different
            ],
            "only_recorded": [_name(a) for a in comparison.only_recorded],
            "only_backtest": [_name(a) for a in comparison.only_backtest],
            "not_compared": comparison.not_compared,
        }
    return doc
