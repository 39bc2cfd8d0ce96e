"""Alarm-system KPIs of ISA-18.2 (§16, "monitoring and assessment"), from the journal.

What regulators assess an alarm system by (考核): how many alarms each operator
position receives per 10 minutes, how much of the time it is flooded, which alarms
are the most frequent, which chatter and which stand for days, and how fast people
acknowledge and give feedback. Everything here is a pure function of the journal's
transitions (``Journal.transitions_between``), so each figure can be checked on a
constructed timeline.

Definitions (docs/alerting.md, "Alarm KPIs"):

- An **annunciation** is a transition into ``active_unack`` by ``raised``,
  ``unshelved`` or ``unsuppressed``: the moment an operator is asked to act. Alarms
  raised while suppressed (maintenance) are not annunciated and do not count.
- An **operator position** is a grid: the monitoring centre watches grid by grid.
  An enterprise outside every grid counts under ``""``.
- **Alarm rate**: annunciations per position per 10-minute interval, intervals counted
  from the period's start (the last one may be shorter). **Flood**: an interval with
  more than ``flood_alarms`` annunciations (10 by default); **% of time in flood**: the
  flooded intervals' length over the period's.
- **Chattering**: ``chatter_count`` (3) or more annunciations of one alarm — the same
  enterprise, installation, tag and type — within ``chatter_window_s`` (60 s).
- **Long-standing (stale)**: an alarm whose condition stayed active (from its raise
  to its clear, or to the period's end) longer than ``standing_h`` (24 h) at some
  moment of the period.
- **Time to acknowledge**: from the annunciation that left an alarm unacknowledged to
  its acknowledgement; **time to feedback**: from the alarm's first raise to its
  enterprise's feedback (反馈). Both for alarms annunciated or raised in the period.

>>> t = [Transition("a1", "E1", "MH01", "T1", "HH", "critical", 0, "raised", "active_unack"),
...      Transition("a1", "E1", "MH01", "T1", "HH", "critical", 90_000, "acknowledged",
...                 "active_ack")]
>>> r = compute(t, {"E1": "G1"}, ["G1"], 0, 600_000)
>>> r["rate"][0]["alarms"], r["response"]["by_grid"][0]["mean_ack_s"]
(1, 90.0)
"""

from __future__ import annotations

import bisect
import math
from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

INTERVAL_MS = 600_000
"""ISA-18.2's measuring interval: 10 minutes."""
ANNUNCIATING = frozenset({"raised", "unshelved", "unsuppressed"})
_ACTIVE_UNACK = "active_unack"
_CLEARED_STATES = frozenset({"cleared", "cleared_unack"})


@dataclass(frozen=True, slots=True)
class Transition:
    """One row of the journal's transitions, with its alarm's identity."""

    alarm_id: str
    enterprise: str
    installation: str
    tag: str
    type: str
    priority: str
    at_ms: int
    kind: str
    to_state: str

    @property
    def key(self) -> tuple[str, str, str, str]:
        """Which alarm this is, across its activations (ISA-18.2 counts per alarm)."""
        return (self.enterprise, self.installation, self.tag, self.type)

    @property
    def annunciates(self) -> bool:
        return self.kind in ANNUNCIATING and self.to_state == _ACTIVE_UNACK


@dataclass(frozen=True, slots=True)
class KpiRules:
    """The thresholds; ``[console]`` ``kpi_*`` settings (docs/contract.md)."""

    flood_alarms: int = 10
    chatter_count: int = 3
    chatter_window_s: float = 60
    standing_h: float = 24
    top: int = 10


def _key_json(key: tuple[str, str, str, str]) -> dict[str, str]:
    enterprise, installation, tag, alarm_type = key
    return {"enterprise": enterprise, "installation": installation, "tag": tag, "type": alarm_type}


def _in(t: Transition, start_ms: int, end_ms: int) -> bool:
    return start_ms <= t.at_ms < end_ms


def alarm_rate(
    transitions: Iterable[Transition],
    grid_of: Mapping[str, str],
    positions: Sequence[str],
    start_ms: int,
    end_ms: int,
    *,
    rules: KpiRules = KpiRules(),
) -> list[dict[str, Any]]:
    """Per position: annunciations, mean and max per 10 minutes, % of time in flood."""
    if end_ms <= start_ms:
        raise ValueError(f"the period must end after it starts ({start_ms} >= {end_ms})")
    intervals = math.ceil((end_ms - start_ms) / INTERVAL_MS)
    counts: dict[str, list[int]] = {p: [0] * intervals for p in positions}
    for t in transitions:
        if t.annunciates and _in(t, start_ms, end_ms):
            position = grid_of.get(t.enterprise, "")
            per = counts.setdefault(position, [0] * intervals)
            per[(t.at_ms - start_ms) // INTERVAL_MS] += 1
    period = end_ms - start_ms
    rows = []
    for position, per in sorted(counts.items()):
        flooded_ms = sum(
            min(start_ms + (i + 1) * INTERVAL_MS, end_ms) - (start_ms + i * INTERVAL_MS)
            for i, n in enumerate(per)
            if n > rules.flood_alarms
        )
        total = sum(per)
        rows.append(
            {
                "position": position,
                "alarms": total,
                "per_10min_mean": round(total * INTERVAL_MS / period, 3),
                "per_10min_max": max(per),
                "flood_pct": round(100 * flooded_ms / period, 2),
            }
        )
    return rows


def top_alarms(
    transitions: Iterable[Transition], start_ms: int, end_ms: int, n: int = 10
) -> list[dict[str, Any]]:
    """The ``n`` alarms annunciated most often in the period, with their share of all."""
    counts = Counter(t.key for t in transitions if t.annunciates and _in(t, start_ms, end_ms))
    total = sum(counts.values())
    ranked = sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))[:n]
    return [
        {**_key_json(key), "count": count, "share_pct": round(100 * count / total, 2)}
        for key, count in ranked
    ]


def chattering(
    transitions: Iterable[Transition], start_ms: int, end_ms: int, rules: KpiRules = KpiRules()
) -> list[dict[str, Any]]:
    """Alarms annunciated ``chatter_count`` times or more within ``chatter_window_s``:
    each with its annunciations in the period and the most within one window."""
    window_ms = rules.chatter_window_s * 1000
    times: dict[tuple[str, str, str, str], list[int]] = defaultdict(list)
    for t in transitions:
        if t.annunciates and _in(t, start_ms, end_ms):
            times[t.key].append(t.at_ms)
    rows: list[dict[str, Any]] = []
    for key, at in times.items():
        at.sort()
        # the most annunciations in any window [at[i], at[i] + window] (inclusive)
        most = max(bisect.bisect_right(at, a + window_ms) - i for i, a in enumerate(at))
        if most >= rules.chatter_count:
            rows.append({**_key_json(key), "count": len(at), "max_in_window": most})
    rows.sort(key=lambda r: (-r["max_in_window"], -r["count"], r["enterprise"], r["tag"]))
    return rows


def standing(
    transitions: Iterable[Transition], start_ms: int, end_ms: int, rules: KpiRules = KpiRules()
) -> list[dict[str, Any]]:
    """Alarms whose condition stayed active longer than ``standing_h`` within the period:
    raised before the period's end and cleared (if at all) after its start."""
    limit_ms = rules.standing_h * 3_600_000
    by_alarm: dict[str, list[Transition]] = defaultdict(list)
    for tr in transitions:
        by_alarm[tr.alarm_id].append(tr)
    rows: list[dict[str, Any]] = []
    for alarm_id, ts in by_alarm.items():
        ts.sort(key=lambda tr: tr.at_ms)
        raised_at: int | None = None
        for i in range(len(ts) + 1):
            t: Transition | None = ts[i] if i < len(ts) else None  # None: the period's end
            if t is not None and t.kind == "raised" and raised_at is None:
                raised_at = t.at_ms
                continue
            ends = t is None or t.kind == "cleared" or t.to_state in _CLEARED_STATES
            if raised_at is None or not ends:
                continue
            cleared = end_ms if t is None else min(t.at_ms, end_ms)
            if raised_at < end_ms and cleared > start_ms and cleared - raised_at > limit_ms:
                rows.append(
                    {
                        **_key_json(ts[0].key),
                        "alarm_id": alarm_id,
                        "raised_ms": raised_at,
                        "active_h": round((cleared - raised_at) / 3_600_000, 2),
                        "still_active": t is None,
                    }
                )
            raised_at = None
    rows.sort(key=lambda r: (-r["active_h"], r["alarm_id"]))
    return rows


def _mean_s(values: list[int]) -> float | None:
    return round(sum(values) / len(values) / 1000, 3) if values else None


def response_times(
    transitions: Iterable[Transition],
    grid_of: Mapping[str, str],
    start_ms: int,
    end_ms: int,
) -> dict[str, list[dict[str, Any]]]:
    """Mean time to acknowledge and to feedback, per enterprise and per grid.

    Per enterprise and grid: ``acknowledged`` (annunciations in the period acknowledged
    by its end), ``unacknowledged`` (the others), ``mean_ack_s``; ``feedback`` (alarms
    first raised in the period with feedback by its end) and ``mean_feedback_s``.
    """
    by_alarm: dict[str, list[Transition]] = defaultdict(list)
    for t in transitions:
        if t.at_ms < end_ms:
            by_alarm[t.alarm_id].append(t)
    ack: dict[str, list[int]] = defaultdict(list)
    unacked: Counter[str] = Counter()
    feedback: dict[str, list[int]] = defaultdict(list)
    for ts in by_alarm.values():
        ts.sort(key=lambda t: t.at_ms)
        enterprise = ts[0].enterprise
        waiting_since: int | None = None
        first_raise: int | None = None
        for t in ts:
            if t.kind == "raised" and first_raise is None:
                first_raise = t.at_ms
            if t.annunciates and waiting_since is None:
                waiting_since = t.at_ms
            elif t.kind == "acknowledged" and waiting_since is not None:
                if waiting_since >= start_ms:
                    ack[enterprise].append(t.at_ms - waiting_since)
                waiting_since = None
            elif t.kind == "feedback" and first_raise is not None and first_raise >= start_ms:
                feedback[enterprise].append(t.at_ms - first_raise)
                first_raise = -1  # counted once
        if waiting_since is not None and waiting_since >= start_ms:
            unacked[enterprise] += 1
    enterprises = sorted(set(ack) | set(unacked) | set(feedback))

    def row(id_: str, members: list[str]) -> dict[str, Any]:
        acks = [d for e in members for d in ack[e]]
        fbs = [d for e in members for d in feedback[e]]
        return {
            "id": id_,
            "acknowledged": len(acks),
            "unacknowledged": sum(unacked[e] for e in members),
            "mean_ack_s": _mean_s(acks),
            "feedback": len(fbs),
            "mean_feedback_s": _mean_s(fbs),
        }

    grids: dict[str, list[str]] = defaultdict(list)
    for e in enterprises:
        grids[grid_of.get(e, "")].append(e)
    return {
        "by_enterprise": [row(e, [e]) for e in enterprises],
        "by_grid": [row(g, members) for g, members in sorted(grids.items())],
    }


def compute(
    transitions: Sequence[Transition],
    grid_of: Mapping[str, str],
    positions: Sequence[str],
    start_ms: int,
    end_ms: int,
    *,
    rules: KpiRules = KpiRules(),
) -> dict[str, Any]:
    """Every KPI of the period ``[start_ms, end_ms)``; JSON-ready."""
    return {
        "rate": alarm_rate(transitions, grid_of, positions, start_ms, end_ms, rules=rules),
        "top": top_alarms(transitions, start_ms, end_ms, rules.top),
        "chattering": chattering(transitions, start_ms, end_ms, rules),
        "standing": standing(transitions, start_ms, end_ms, rules),
        "response": response_times(transitions, grid_of, start_ms, end_ms),
        "rules": {
            "flood_alarms": rules.flood_alarms,
            "chatter_count": rules.chatter_count,
            "chatter_window_s": rules.chatter_window_s,
            "standing_h": rules.standing_h,
        },
    }
