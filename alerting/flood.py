"""Flood control for messages to people: digests and a rate limit, critical ones exempt.

Every alarm is journalled and every row stays in the outbox; what this decides is how
the due rows of one channel go out *now* — one by one, as one digest, or held until a
given time (the row's next attempt moves; no attempt is counted). Per recipient (a
person's address, a group robot, the console) and enterprise:

- the first ``digest_after`` messages within ``window_s`` go one by one;
- later ones are held until the window ends, then go as ONE digest listing them;
- per recipient, no more than ``max_per_minute`` messages in any 60 s: past it, rows
  are held for the next free slot and then go as a digest;
- critical rows always go at once, one by one (they count towards the minute).

The state is in memory: after a restart the counts start afresh (held rows stay held,
their time is in the journal). Pure: time is passed in.

>>> from hazwatch.alertpolicy import FloodSettings
>>> gate = FloodGate(FloodSettings(digest_after=2, window_s=60, max_per_minute=10))
>>> rows = [Row(n, "E001/duty", "E001", rank=2) for n in range(5)]
>>> plan = gate.plan(rows, now_ms=0)
>>> [r.id for r in plan.singles], plan.holds
([0, 1], {60000: [2, 3, 4]})
>>> gate.plan(rows[2:], now_ms=60_000).digests
[('E001/duty', 'E001')]
"""

from __future__ import annotations

from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field

from hazwatch.alertpolicy import FloodSettings

MINUTE_MS = 60_000
DIGEST_MAX = 1000
"""Rows in one digest message at most (the rest go in the next one)."""


@dataclass(frozen=True, slots=True)
class Row:
    """What flood control needs of an outbox row."""

    id: int
    recipient: str
    enterprise: str
    rank: int
    """0: critical."""


@dataclass
class Plan:
    singles: list[Row] = field(default_factory=list)
    """Rows to send now, one message each."""
    digests: list[tuple[str, str]] = field(default_factory=list)
    """(recipient, enterprise) whose due rows — all of them, not only those handed in
    (a channel reads its due rows in batches) — go now as one digest each."""
    holds: dict[int, list[int]] = field(default_factory=dict)
    """until_ms → row ids to hold until then."""

    def hold(self, until_ms: int, rows: Sequence[Row]) -> None:
        self.holds.setdefault(until_ms, []).extend(r.id for r in rows)


@dataclass
class _Stream:
    singles: deque[int] = field(default_factory=deque)
    """When single messages of this recipient and enterprise went, within the window."""
    hold_until: int | None = None


class FloodGate:
    """One per channel."""

    def __init__(self, settings: FloodSettings) -> None:
        self._after = settings.digest_after
        self._window_ms = round(settings.window_s * 1000)
        self._per_minute = settings.max_per_minute
        self._sent: dict[str, deque[int]] = {}
        self._streams: dict[tuple[str, str], _Stream] = {}

    def plan(self, rows: Sequence[Row], now_ms: int) -> Plan:
        plan = Plan()
        groups: dict[tuple[str, str], list[Row]] = {}
        for row in rows:
            if row.rank == 0:
                plan.singles.append(row)
                self._log(row.recipient, now_ms)
            else:
                groups.setdefault((row.recipient, row.enterprise), []).append(row)
        for key, group in groups.items():
            self._plan_stream(key, group, now_ms, plan)
        return plan

    def _plan_stream(self, key: tuple[str, str], rows: list[Row], now_ms: int, plan: Plan) -> None:
        recipient = key[0]
        stream = self._streams.setdefault(key, _Stream())
        while stream.singles and stream.singles[0] <= now_ms - self._window_ms:
            stream.singles.popleft()
        if stream.hold_until is not None and now_ms < stream.hold_until:
            plan.hold(stream.hold_until, rows)
            return
        if stream.hold_until is not None:  # the window (or the wait for a slot) is over
            if self._room(recipient, now_ms) == 0:
                stream.hold_until = self._next_slot(recipient)
                plan.hold(stream.hold_until, rows)
                return
            plan.digests.append(key)
            self._log(recipient, now_ms)
            stream.hold_until = None
            stream.singles.clear()
            return
        for n, row in enumerate(rows):
            if len(stream.singles) >= self._after:
                stream.hold_until = stream.singles[0] + self._window_ms
            elif self._room(recipient, now_ms) == 0:
                stream.hold_until = self._next_slot(recipient)
            else:
                plan.singles.append(row)
                stream.singles.append(now_ms)
                self._log(recipient, now_ms)
                continue
            plan.hold(stream.hold_until, rows[n:])
            return

    def _room(self, recipient: str, now_ms: int) -> int:
        sent = self._sent.setdefault(recipient, deque())
        while sent and sent[0] <= now_ms - MINUTE_MS:
            sent.popleft()
        return max(0, self._per_minute - len(sent))

    def _next_slot(self, recipient: str) -> int:
        return self._sent[recipient][0] + MINUTE_MS

    def _log(self, recipient: str, now_ms: int) -> None:
        self._sent.setdefault(recipient, deque()).append(now_ms)
