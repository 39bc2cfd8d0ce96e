"""The console in headless Chromium at province scale: time to render each
page and the age of the values it shows, before and after the per-view stream.

A console serves a registry of ``--enterprises`` × ``--points`` (interval 10 s) while a
feeder puts ``--rate`` readings a second into it the way the service does after each
stored batch (``LatestValues.update`` and the live feed), with a few hundred open
alarms, and 1 % of the enterprises silent (their values five minutes old: stale). Each
page is opened in a fresh headless Chromium (Selenium, ``/usr/bin/chromedriver``):

- render: from ``driver.get`` to the page showing everything it should (the overview:
  a tile per enterprise; the old page: a row per point with its value; the desk: its
  rows; the enterprise page: its points' values);
- script call: how long the page then takes to answer ``return 1`` (a busy page answers
  late: so does its user);
- ages: ``--settle`` seconds later, the age of every value shown (its reading's time
  against now; the overview shows no value but each tile's summary, so the summary's
  age), median and max, and how many are shown as stale.

``--before DIR`` also runs the page of another checkout (``git archive main | tar -x
-C DIR``): the old single page, whose stream sends every reading, side by side.

    python bench/console_browser.py                      # 1,000 × 100 at 10,000/s
    python bench/console_browser.py --before /tmp/hz-main --record

The console runs in a child process (``serve``), with ``PYTHONPATH`` at the code under
test; the browser and this script are apart from it. Keep runs short: the development
machine is shared.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import random
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import uvicorn
from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import WebDriverWait

ROOT = Path(__file__).resolve().parent.parent
# bench/ingest.py would hide the ingest package; the code under test is PYTHONPATH's when
# it names a tree (the code before), else this one.
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != ROOT / "bench"]
if not os.environ.get("PYTHONPATH"):
    sys.path.insert(0, str(ROOT))

import dashboards.feed as feeds  # noqa: E402
from alerting.journal import Journal  # noqa: E402
from alerting.service import AlarmService  # noqa: E402
from dashboards.app import create_app  # noqa: E402
from dashboards.deps import Console  # noqa: E402
from hazwatch.bus import Broadcast  # noqa: E402
from hazwatch.clock import SystemClock  # noqa: E402
from hazwatch.metrics import Metrics  # noqa: E402
from hazwatch.models import AlarmType, Condition, Quality, Reading  # noqa: E402
from hazwatch.registry import load_registry  # noqa: E402
from hazwatch.settings import IngestSettings  # noqa: E402
from ingest.gateways import GatewayTracker  # noqa: E402
from ingest.latest import LatestValues  # noqa: E402
from ingest.rejects import RejectLog  # noqa: E402
from ingest.sqlite import SqliteSink  # noqa: E402
from ingest.validation import ReadingValidator  # noqa: E402
from tests.servers import free_port  # noqa: E402

RESULTS = ROOT / "bench" / "RESULTS.md"
CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"
INSTALLATIONS = 4
INTERVAL_S = 10
STALE_EVERY = 100
"""Every 100th enterprise is silent: its values are five minutes old."""
STALE_AGE_MS = 300_000
ALARMED_EVERY = 3
"""One enterprise in three has an open alarm."""
FEED_TICK_S = 0.1
USER, PASSWORD = "bench", "bench-operator-password"
COMMAND_TIMEOUT_S = 120
"""Longest wait for one browser command (the old page can take minutes to answer)."""


# --- the console under test (child process) ------------------------------------------


def write_registry(root: Path, enterprises: int, points: int) -> Path:
    (root / "enterprises").mkdir(parents=True, exist_ok=True)
    (root / "points").mkdir(exist_ok=True)
    per_installation = max(1, points // INSTALLATIONS)
    for e in range(1, enterprises + 1):
        eid = f"E{e:04d}"
        installations = "".join(
            f'[[installations]]\nid = "I{i}"\nname = "Unit {i}"\ngrade = {1 + i % 4}\n'
            f'points = "points/{eid}.csv"\n'
            for i in range(1, INSTALLATIONS + 1)
        )
        (root / "enterprises" / f"{eid}.toml").write_text(
            f'id = "{eid}"\nname = "Enterprise {e:04d} Chemical Co."\ngrid = "G{e % 20:02d}"\n'
            f"{installations}"
        )
        rows = ["installation,tag,name,kind,unit,min,max,l,h,hh,interval_s"]
        for n in range(points):
            inst = 1 + min(n // per_installation, INSTALLATIONS - 1)
            rows.append(f"I{inst},T{n:03d},Point {n},temperature,degC,0,100,10,80,90,{INTERVAL_S}")
        (root / "points" / f"{eid}.csv").write_text("\n".join(rows) + "\n")
    return root


async def _serve(args: argparse.Namespace) -> None:
    work = Path(args.work)
    t0 = time.monotonic()
    registry = load_registry(write_registry(work / "registry", args.enterprises, args.points))
    print(f"registry loaded in {time.monotonic() - t0:.1f} s", flush=True)
    metrics = Metrics()
    clock = SystemClock()
    limits = IngestSettings()
    journal = Journal(work / "journal.db", [])
    latest = LatestValues()
    gateways = GatewayTracker(metrics)

    def dropped(name: str) -> None:
        metrics.channel_dropped.labels(name).inc()

    per_view = hasattr(feeds, "LiveFeed")
    if per_view:
        feed: Any = feeds.LiveFeed(
            registry,
            clock,
            latest,
            gateways,
            open_alarms=lambda: journal.list_alarms(active=True, limit=100_000),
            maxsize=2000,
            on_drop=dropped,
        )
    else:  # the code before: one stream of everything
        feed = Broadcast("console_feed", 2000, on_drop=dropped)
    service = AlarmService(
        journal, [], metrics, clock, on_event=lambda event: feed.publish(feeds.alarm_item(event))
    )
    sink = SqliteSink(work / "readings.db", registry, metrics)
    validator = ReadingValidator(registry, limits, metrics)
    logins: dict[str, Any] = {}
    if "users" in Console.__dataclass_fields__:  # login: an operator who sees everything
        from dashboards.users import ConsoleDb  # noqa: PLC0415 - absent from the code before

        users = ConsoleDb(work / "console.db")
        users.add(USER, PASSWORD, "operator", lang="en", now_ms=clock.now_ms())
        logins = {"users": users, "timezone": "UTC"}
    console = Console(
        registry=registry,
        alarms=service,
        sink=sink,
        latest=latest,
        rejects=RejectLog(limits, metrics),
        unknown_tags=validator.unknown_tags,
        gateways=gateways,
        metrics=metrics,
        feed=feed,
        health=lambda: {"console": "ok"},
        clock=clock,
        **logins,
    )
    journal.open()
    await sink.__aenter__()

    points = registry.points()
    random.Random(10).shuffle(points)  # each enterprise's points spread over the 10 s cycle
    silent = {f"E{e:04d}" for e in range(STALE_EVERY, args.enterprises + 1, STALE_EVERY)}
    now = clock.now_ms()
    rng = random.Random(19)
    latest.update(
        Reading(
            p.enterprise,
            "gw",
            p.tag,
            50.0,
            now - (STALE_AGE_MS if p.enterprise in silent else rng.randrange(INTERVAL_S * 1000)),
            Quality.GOOD,
        )
        for p in points
    )
    conditions = []
    for e in range(1, args.enterprises + 1, ALARMED_EVERY):
        eid = f"E{e:04d}"
        alarm_type = (AlarmType.HH, AlarmType.H, AlarmType.L)[e % 3]
        conditions.append(
            Condition(
                enterprise=eid,
                installation="I1",
                tag="T000",
                type=alarm_type,
                active=True,
                value=91.0,
                limit=90.0,
                ts_ms=now,
                message=f"{eid} T000 {alarm_type.value}",
            )
        )
    service.handle(conditions)
    print(f"{len(conditions)} alarms raised", flush=True)

    stats = {"readings": 0, "started": time.monotonic(), "late_ticks": 0}
    loop = asyncio.get_running_loop()

    async def feeder() -> None:
        per_tick = max(1, round(args.rate * FEED_TICK_S))
        i = 0
        due = loop.time()
        while True:
            due += FEED_TICK_S
            ts = clock.now_ms()
            batch = []
            for _ in range(per_tick):
                p = points[i]
                i = (i + 1) % len(points)
                if p.enterprise not in silent:
                    batch.append(
                        Reading(p.enterprise, "gw", p.tag, 40.0 + (i % 200) / 10, ts, Quality.GOOD)
                    )
            latest.update(batch)
            if per_view:
                feed.readings(batch)
            elif feed.subscriber_count:  # what the old wiring did
                for r in batch:
                    feed.publish(feeds.reading_item(r, registry.point(r.enterprise, r.tag)))
            stats["readings"] += len(batch)
            delay = due - loop.time()
            if delay < 0:
                stats["late_ticks"] += 1
            await asyncio.sleep(max(0.0, delay))

    server = uvicorn.Server(
        uvicorn.Config(
            create_app(console),
            host="127.0.0.1",
            port=args.port,
            log_level="warning",
            lifespan="on",
            access_log=False,
        )
    )
    stop = asyncio.Event()
    loop.add_signal_handler(signal.SIGTERM, stop.set)
    tasks = [asyncio.ensure_future(server.serve()), asyncio.ensure_future(feeder())]
    if per_view:
        tasks.append(asyncio.ensure_future(feed.run()))
    while not server.started:  # noqa: ASYNC110 - uvicorn offers a flag, not an event
        await asyncio.sleep(0.05)
    stats["started"] = time.monotonic()
    stats["readings"] = 0
    print("READY", flush=True)
    await stop.wait()
    elapsed = time.monotonic() - stats["started"]
    drops = sum(
        s.value
        for fam in metrics.channel_dropped.collect()
        for s in fam.samples
        if s.name.endswith("_total")
    )
    (work / "feeder.json").write_text(
        json.dumps(
            {
                "rate": stats["readings"] / elapsed if elapsed else 0.0,
                "late_ticks": stats["late_ticks"],
                "elapsed_s": elapsed,
                "dropped": drops,
            }
        )
    )
    server.should_exit = True
    for task in tasks[1:]:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)


# --- measuring (this process) --------------------------------------------------------

READY_JS = {
    # arguments[0]: how many tiles or rows the page shows when complete
    "overview-new": "return document.body.dataset.tiles === String(arguments[0])",
    "overview-old": "return document.querySelectorAll('tr.point').length >= arguments[0]",
    "desk": (
        "return document.body.dataset.ready === '1' &&"
        " document.querySelectorAll('#desk-rows tr').length > 0"
    ),
    "enterprise": (
        "return document.body.dataset.ready === '1' &&"
        " document.querySelectorAll('tr[data-tag]').length === arguments[0]"
    ),
}
AGES_JS = {
    # seconds since each value shown was read (median/max computed here, not in the page)
    # tiles show no value: only whether the enterprise has stale values (age null)
    "overview-new": (
        "return [...document.querySelectorAll('.tile')].map("
        "  (t) => [null, Number(t.dataset.stale) > 0]);"
    ),
    "overview-old": (
        "return [...document.querySelectorAll('tr.point td.time')].map("
        "  (c) => [(Date.now() - Date.parse(c.title.replace(' ', 'T'))) / 1000, false]);"
    ),
    "desk": "return [];",
    "enterprise": (
        "return [...document.querySelectorAll('tr[data-tag]')].map((r) => ["
        "  (Date.now() - Date.parse(r.querySelector('td.time').textContent)) / 1000,"
        "  r.classList.contains('stale')]);"
    ),
}


@dataclass
class PageRun:
    code: str
    page: str
    render_s: float | None
    answer_s: float | None
    ages: list[float] = field(default_factory=list)
    shown: int = 0
    stale_shown: int = 0
    marks: dict[str, float] = field(default_factory=dict)
    """The page's performance marks, seconds after navigation started (first of each)."""
    note: str = ""


def _driver() -> Any:
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for argument in (
        "--headless=new",
        "--no-sandbox",
        "--disable-dev-shm-usage",
        "--disable-gpu",
        "--window-size=1600,900",
        "--lang=en-US",
    ):
        options.add_argument(argument)
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    driver.set_script_timeout(COMMAND_TIMEOUT_S)
    driver.set_page_load_timeout(COMMAND_TIMEOUT_S)
    driver.command_executor.set_timeout(COMMAND_TIMEOUT_S + 10)
    return driver


def login(driver: Any, base: str) -> None:
    """Through the login page, when the console has one (not timed)."""
    driver.get(base + "/login")
    fields = driver.find_elements(By.ID, "username")
    if not fields:
        return  # the code before: no login
    fields[0].send_keys(USER)
    driver.find_element(By.ID, "password").send_keys(PASSWORD)
    driver.find_element(By.ID, "submit").click()
    WebDriverWait(driver, 60).until(lambda d: "/login" not in d.current_url)


def measure_page(
    base: str, code: str, page: str, path: str, kind: str, args: argparse.Namespace
) -> PageRun:
    """Every browser command is bounded (``--timeout`` + 30 s): a page too busy to answer
    is recorded as such, and its browser killed."""
    expected = {
        "overview-new": args.enterprises,
        "overview-old": args.enterprises * args.points,
        "enterprise": args.points,
    }.get(kind, 0)
    driver = _driver()
    run = PageRun(code, page, None, None)
    try:
        login(driver, base)
        start = time.monotonic()
        driver.get(base + path)
        while time.monotonic() - start < args.timeout:
            if driver.execute_script(READY_JS[kind], expected):
                run.render_s = time.monotonic() - start
                break
            time.sleep(0.1)
        else:
            run.note = f"not complete after {args.timeout:.0f} s"
        t1 = time.monotonic()
        driver.execute_script("return 1")
        run.answer_s = time.monotonic() - t1
        marks = driver.execute_script(
            "return performance.getEntriesByType('mark').map((m) => [m.name, m.startTime]);"
        )
        run.marks = {name: at / 1000 for name, at in marks if name not in run.marks}
        time.sleep(args.settle)
        raw = driver.execute_script(AGES_JS[kind])
        run.ages = [a for a, _ in raw if a is not None]
        run.shown = len(raw)
        run.stale_shown = sum(1 for _, stale in raw if stale)
        driver.save_screenshot(str(Path(args.work) / f"{code}-{page}.png"))
    except Exception as exc:
        run.note = (run.note + "; " if run.note else "") + (
            f"the page stopped answering the browser's commands ({type(exc).__name__})"
        )
    finally:
        with contextlib.suppress(Exception):
            driver.service.process.kill()  # quit() would wait on a hung page
    return run


def _wait_ready(proc: subprocess.Popen[str], timeout: float) -> None:
    assert proc.stdout is not None
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        if not line:
            raise RuntimeError(f"the console stopped (exit {proc.poll()})")
        print(f"  console: {line.rstrip()}", flush=True)
        if line.strip() == "READY":
            return
    raise RuntimeError("the console did not start")


def run_code(
    code: str, tree: Path, pages: list[tuple[str, str, str]], args: argparse.Namespace
) -> tuple[list[PageRun], dict[str, Any]]:
    port = free_port()
    work = Path(args.work) / code
    work.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "PYTHONPATH": str(tree)}
    cmd = [sys.executable, str(Path(__file__).resolve()), "serve", "--work", str(work)]
    cmd += ["--port", str(port), "--enterprises", str(args.enterprises)]
    cmd += ["--points", str(args.points), "--rate", str(args.rate)]
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, text=True, cwd=tree)
    runs = []
    try:
        _wait_ready(proc, 600)
        base = f"http://127.0.0.1:{port}"
        for page, path, kind in pages:
            print(f"  {code} {page} ...", flush=True)
            run = measure_page(base, code, page, path, kind, args)
            runs.append(run)
            print(f"  {_row(run)} {run.marks}", flush=True)
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(60)
        except subprocess.TimeoutExpired:
            proc.kill()
    feeder = (
        json.loads((work / "feeder.json").read_text()) if (work / "feeder.json").exists() else {}
    )
    return runs, feeder


def _fmt(v: float | None, digits: int = 1) -> str:
    return "—" if v is None else f"{v:.{digits}f} s"


def _row(run: PageRun) -> str:
    median = statistics.median(run.ages) if run.ages else None
    worst = max(run.ages) if run.ages else None
    shown = f"{run.shown:,}" if run.shown else "—"
    return (
        f"| {run.code} | {run.page} | {_fmt(run.render_s)} | {_fmt(run.answer_s, 2)} | "
        f"{_fmt(median)} | {_fmt(worst)} | {shown} | {run.stale_shown:,} | {run.note} |"
    )


def report(
    args: argparse.Namespace, results: list[tuple[str, list[PageRun], dict[str, Any]]], command: str
) -> str:
    stamp = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    lines = [
        f"## Console in the browser at province scale — {stamp}",
        "",
        f"`{command}`",
        "",
        (
            f"{args.enterprises:,} enterprises × {args.points} points (interval {INTERVAL_S} s), "
            f"{args.rate:,} readings/s fed into the console's feed, 1 enterprise in "
            f"{ALARMED_EVERY} with an open alarm, 1 in {STALE_EVERY} silent (its values "
            f"{STALE_AGE_MS // 1000} s old); headless Chromium, a fresh browser per page; ages "
            f"{args.settle:.0f} s after the page was complete. One short run each; load "
            f"average {os.getloadavg()[0]:.2f} when it ended."
        ),
        "",
        (
            "| code | page | render | script call after | value age median | max "
            "| values (tiles) shown | shown stale | note |"
        ),
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for _, runs, _ in results:
        lines += [_row(run) for run in runs]
    lines.append("")
    for _, runs, _ in results:
        for run in runs:
            if run.marks:
                marks = ", ".join(
                    f"{name} {at:.2f} s"
                    for name, at in sorted(run.marks.items(), key=lambda m: m[1])
                )
                lines.append(f"- {run.code} {run.page}: after navigation start, {marks}.")
    for code, _, feeder in results:
        if feeder:
            lines.append(
                f"- {code}: feeder kept {feeder['rate']:,.0f} readings/s "
                f"({feeder['late_ticks']} late 100 ms ticks), "
                f"{feeder['dropped']:,.0f} stream items dropped for slow browsers (counted)."
            )
    lines.append("")
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    sub = parser.add_subparsers(dest="mode")
    serve = sub.add_parser("serve", help="(internal) the console under test")
    for p in (parser, serve):
        p.add_argument("--enterprises", type=int, default=1000)
        p.add_argument("--points", type=int, default=100)
        p.add_argument("--rate", type=int, default=10_000)
    serve.add_argument("--work", required=True)
    serve.add_argument("--port", type=int, required=True)
    parser.add_argument("--before", type=Path, help="a checkout of the code before (old page)")
    parser.add_argument("--settle", type=float, default=10.0)
    parser.add_argument("--timeout", type=float, default=90.0)
    parser.add_argument("--work", default=None)
    parser.add_argument("--pages", nargs="+", default=["overview", "desk", "enterprise"])
    parser.add_argument("--record", action="store_true", help=f"append to {RESULTS}")
    args = parser.parse_args()
    if args.mode == "serve":
        asyncio.run(_serve(args))
        return 0
    with contextlib.ExitStack() as stack:
        if args.work is None:
            args.work = stack.enter_context(tempfile.TemporaryDirectory(prefix="hz-console-bench-"))
        results = []
        if args.before is not None:
            runs, feeder = run_code(
                "before", args.before.resolve(), [("overview", "/", "overview-old")], args
            )
            results.append(("before", runs, feeder))
        pages = [
            page
            for page in (
                ("overview", "/", "overview-new"),
                ("desk", "/desk", "desk"),
                ("enterprise", "/enterprises/E0001", "enterprise"),
            )
            if page[0] in args.pages
        ]
        runs, feeder = run_code("after", ROOT, pages, args)
        results.append(("after", runs, feeder))
        command = "python bench/console_browser.py " + " ".join(sys.argv[1:])
        text = report(args, results, command)
        print(text)
        if args.record:
            with RESULTS.open("a") as f:
                f.write("\n" + text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
