"""``hazwatch uplink status``: what each configured uplink has waiting, sent and failed.

Reads each uplink's queue file read-only, so it works while the service runs (WAL
readers never block the writer) and after it stopped. Exit status 1 when an uplink
is failing or lagging beyond its ``lag_alarm_s``: usable from a cron job or a
monitoring check. It checks the uplinks' templates too, as ``check-config`` does.
"""

from __future__ import annotations

import sqlite3
from dataclasses import asdict
from pathlib import Path
from typing import Any

from hazwatch.clock import Clock
from hazwatch.models import Registry, ms_to_iso
from hazwatch.uplink_settings import UplinkSettings
from uplink.queue import QueueStatus, read_status
from uplink.service import build_requests


def uplink_status(
    uplinks: tuple[UplinkSettings, ...], registry: Registry, clock: Clock
) -> tuple[list[dict[str, Any]], bool]:
    """One dict per uplink, and whether all of them are well."""
    report: list[dict[str, Any]] = []
    well = True
    now_ms = clock.now_ms()
    for uplink in uplinks:
        build_requests(uplink, registry, clock)  # a bad template: ConfigError
        assert uplink.queue_path is not None
        entry: dict[str, Any] = {
            "name": uplink.name,
            "upstream": uplink.origin,
            "queue": str(uplink.queue_path),
        }
        status = _read(uplink.queue_path)
        if status is None:
            entry["state"] = "not started"
        else:
            lag_s = (
                0.0
                if status.oldest_queued_ms is None
                else (now_ms - status.oldest_queued_ms) / 1000
            )
            failing = status.failing_since_ms is not None
            lagging = lag_s > uplink.lag_alarm_s
            entry.update(asdict(status))
            entry["lag_s"] = round(lag_s, 1)
            entry["state"] = "failing" if failing else "lagging" if lagging else "ok"
            well = well and not failing and not lagging
        report.append(entry)
    return report, well


def _read(path: Path) -> QueueStatus | None:
    if not path.exists():
        return None
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        return read_status(conn)
    finally:
        conn.close()


def describe(entry: dict[str, Any]) -> str:
    """The report of one uplink, for a terminal."""
    lines = [f"uplink {entry['name']} → {entry['upstream']}: {entry['state']}"]
    lines.append(f"  queue:        {entry['queue']}")
    if entry["state"] == "not started":
        return "\n".join(lines)

    def when(ms: int | None) -> str:
        return "never" if ms is None else ms_to_iso(ms)

    lines.append(
        f"  waiting:      {entry['readings']:,} readings, {entry['alarms']:,} alarm changes"
        + (f"; the oldest for {entry['lag_s']:,.0f} s" if entry["oldest_queued_ms"] else "")
    )
    lines.append(f"  sent:         {entry['sent']:,} records; dropped unsent: {entry['dropped']:,}")
    lines.append(f"  last success: {when(entry['last_ok_ms'])}")
    if entry["last_error"]:
        lines.append(f"  last failure: {when(entry['last_error_ms'])}: {entry['last_error']}")
    if entry["failing_since_ms"] is not None:
        lines.append(f"  failing since {when(entry['failing_since_ms'])}")
    return "\n".join(lines)
