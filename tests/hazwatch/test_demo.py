"""`hazwatch demo` as a user runs it: a subprocess, the embedded broker, the console."""

from __future__ import annotations

import contextlib
import http.cookiejar
import re
import signal
import subprocess
import sys
import time
import urllib.request
from typing import Any

import orjson

from tests.servers import free_port

DEMO_TIMEOUT_S = 60
LOOP_TIMEOUT_S = 60
"""The demo's HH is escalated 18 s after it is raised; the desk then takes 3 s a step."""


_session = urllib.request.build_opener(
    urllib.request.HTTPCookieProcessor(http.cookiejar.CookieJar())
)


def get_json(url: str) -> Any:
    with _session.open(url, timeout=2) as response:
        return orjson.loads(response.read())


def read_banner(proc: subprocess.Popen[str]) -> str:
    """The demo's message up to "Press Ctrl-C" (it prints the logins made for the run)."""
    assert proc.stdout is not None
    lines = []
    for line in proc.stdout:
        lines.append(line)
        if line.startswith("Press Ctrl-C"):
            break
    return "".join(lines)


def log_in(base: str, banner: str, name: str) -> None:
    found = re.search(rf"^    {name} +(\S+) ", banner, re.MULTILINE)
    assert found, banner
    body = orjson.dumps({"username": name, "password": found.group(1)})
    request = urllib.request.Request(
        f"{base}/api/login", data=body, headers={"Content-Type": "application/json"}
    )
    with _session.open(request, timeout=5) as response:
        assert orjson.loads(response.read())["role"] == "operator"


def test_demo_shows_live_values_an_hh_alarm_an_escalation_and_a_closed_loop() -> None:
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "hazwatch.cli",
            "demo",
            "--listen",
            f"127.0.0.1:{port}",
            "--speed",
            "10",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    banner = ""
    try:
        banner = read_banner(proc)  # the console listens once this is printed
        for name in ("admin", "operator", "officer", "e001"):
            assert re.search(rf"^    {name} +\S+ ", banner, re.MULTILINE), banner
        log_in(base, banner, "operator")
        deadline = time.monotonic() + DEMO_TIMEOUT_S
        hh: list[dict[str, Any]] = []
        while not hh:  # another process: poll its API until the alarm is there
            assert proc.poll() is None, proc.communicate()
            assert time.monotonic() < deadline, "no HH alarm within the deadline"
            with contextlib.suppress(OSError):  # not listening yet
                hh = [a for a in get_json(f"{base}/api/alarms") if a["type"] == "HH"]
            time.sleep(0.2)
        assert hh[0]["enterprise"] == "E001"
        assert hh[0]["tag"] == "TK101_LT"
        detail = get_json(f"{base}/api/enterprises/E001")
        values = [
            point["last"]
            for installation in detail["installations"]
            for point in installation["points"]
        ]
        assert sum(v is not None for v in values) == len(values)  # every point is live
        with _session.open(f"{base}/", timeout=2) as page:
            assert b"hazwatch" in page.read()
        # the demo desk plays the loop once: escalated, acknowledged, fed back, verified
        alarm_id = hh[0]["id"]
        deadline = time.monotonic() + LOOP_TIMEOUT_S
        while get_json(f"{base}/api/alarms/{alarm_id}")["disposal"] != "closed":
            assert proc.poll() is None, proc.communicate()
            assert time.monotonic() < deadline, get_json(f"{base}/api/alarms/{alarm_id}")
            time.sleep(0.5)
        closed = get_json(f"{base}/api/alarms/{alarm_id}")
        kinds = [t["kind"] for t in closed["transitions"]]
        assert kinds[0] == "raised"
        assert kinds[-2:] == ["feedback", "verified"]
        assert "escalated" in kinds
        assert closed["escalation"] >= 1
        assert closed["verification"]["by"] == "Grid officer Zhang"
    finally:
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=30)
        out = banner + out
    assert f"console:   http://127.0.0.1:{port}/" in out
    # the console notifier printed who was told what
    assert "hazwatch → duty room (Duty room), principal (Principal Wang), grid officer" in out
    assert "ESCALATION (督办), tier 1: unacknowledged for 0.3 min" in out
    assert "Feedback from E001 duty room: cause: transfer into TK101" in out
    assert ">>> demo desk: the grid officer verifies and closes the alarm" in out
    assert proc.returncode == 0, err
    assert "Traceback" not in err
