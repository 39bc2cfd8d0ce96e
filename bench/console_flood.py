"""The console under an alarm flood with 200 browsers connected:
p99 API latency, SSE delivery, and the ingest rate with and without the console's load,
side by side in one run.

One ``hazwatch run`` (Mosquitto, SQLite storage) ingests a steady load from the load
generator (``--gateways`` × ``--points`` at 1 Hz) for two phases of ``--phase`` seconds:

- **A, alone**: no stream client; halfway, a flood of ``--alarms`` HH alarms (a value
  above HH on that many points of 50 enterprises, published at once);
- **B, with the console's load**: ``--clients`` SSE clients connected (mostly the desk,
  some the overview, some one flood enterprise's page), then the same flood on other
  points.

Measured per phase: the ingest rate (``hazwatch_sink_written_points_total`` over the
phase), the latency of the API (a separate process asking ``/api/alarms``,
``/api/enterprises``, ``/api/enterprises/{id}`` and ``/healthz`` in turn, p50/p99/max), and
in B the delivery: for every flood alarm each desk client received, the time from the
reading that raised it (its ``raised_at``, the publish time) to the client (p50/p99/max),
how many of the flood's alarms each desk client got, and the feed's drops.

    python bench/console_flood.py --record

The clients are httpx streams in one asyncio process (not browsers: they parse the SSE
lines, nothing more), the prober another process, the service a third. The machine is
shared by 7 helpers: one short run, a few minutes.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != ROOT / "bench"]
sys.path.insert(0, str(ROOT))

from bench.harness import PY, publish_one, stop_process  # noqa: E402
from simulators.load import LoadSpec, write_load_registry  # noqa: E402
from tests.servers import Mosquitto, free_port  # noqa: E402

RESULTS = ROOT / "bench" / "RESULTS.md"
FLOOD_ENTERPRISES = 50
USER, PASSWORD = "bench", "bench-operator-password"
PROBE_PATHS = (
    "/api/alarms?active=true&limit=100",
    "/api/enterprises",
    "/api/enterprises/FL01",
    "/healthz",
)


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))] if ordered else 0.0


# --- the service -----------------------------------------------------------------------


def write_config(work: Path, mqtt: Mosquitto, spec: LoadSpec, alarms: int) -> tuple[Path, int, int]:
    registry = write_load_registry(work / "registry", spec)
    per = -(-alarms // FLOOD_ENTERPRISES)
    for n in range(1, FLOOD_ENTERPRISES + 1):
        eid = f"FL{n:02d}"
        (registry / "enterprises" / f"{eid}.toml").write_text(
            f'id = "{eid}"\nname = "Flood {n}"\ngrid = "G{n % 5}"\n'
            f'[[installations]]\nid = "U1"\nname = "Unit"\ngrade = 2\npoints = "points/{eid}.csv"\n'
        )
        rows = ["installation,tag,name,kind,min,max,l,h,hh,interval_s"]  # HH only: 1 alarm
        rows += [
            f"U1,{ph}{k:03d},Flood {ph}{k},other,0,100,10,,90,600"
            for ph in "AB"
            for k in range(per)
        ]
        (registry / "points" / f"{eid}.csv").write_text("\n".join(rows) + "\n")
    port = free_port()
    config = work / "hazwatch.toml"
    config.write_text(
        f'registry = "{registry}"\n'
        f'[mqtt]\nurl = "{mqtt.url}"\nclient_id = "hazwatch-flood"\n'
        f'[storage]\nbackend = "sqlite"\npath = "{work}/readings.db"\n'
        f'[journal]\npath = "{work}/journal.db"\n'
        f'[ingest]\nspool_path = "{work}/spool.db"\n'
        f'[console]\nlisten = "127.0.0.1:{port}"\ndb = "{work}/console.db"\n'
    )
    subprocess.run(
        [
            PY,
            "-m",
            "hazwatch.cli",
            "user",
            "add",
            USER,
            "--role",
            "operator",
            "--lang",
            "en",
            "--password-stdin",
            "--config",
            str(config),
        ],
        input=f"{PASSWORD}\n".encode(),
        cwd=ROOT,
        check=True,
        capture_output=True,
    )
    return config, port, per


def session(base: str) -> dict[str, str]:
    """The cookie of a logged-in operator (every API route needs one)."""
    response = httpx.post(
        f"{base}/api/login", json={"username": USER, "password": PASSWORD}, timeout=60
    )
    response.raise_for_status()
    return {"hz_session": response.cookies["hz_session"]}


def metric(base: str, name: str, cookies: dict[str, str]) -> float:
    text = httpx.get(f"{base}/metrics", cookies=cookies, timeout=30).text
    return sum(
        float(line.rsplit(" ", 1)[1])
        for line in text.splitlines()
        if line.startswith(name) and not line.startswith("#")
    )


def flood(mqtt: Mosquitto, phase: str, per: int) -> float:
    """A value above HH on ``per`` points of every flood enterprise, at once."""
    ts = int(time.time() * 1000)
    for n in range(1, FLOOD_ENTERPRISES + 1):
        readings = [{"tag": f"{phase}{k:03d}", "v": 95.0} for k in range(per)]
        for i in range(0, len(readings), 100):
            body = json.dumps({"ts": ts, "readings": readings[i : i + 100]}).encode()
            publish_one(mqtt.port, f"hz/v1/FL{n:02d}/gw/data", body)
    return ts / 1000


# --- the clients (child process) ---------------------------------------------------------


async def _client(
    base: str,
    cookies: dict[str, str],
    view: str,
    flood_phase: str,
    got: dict[str, float],
    resyncs: list[int],
    ready: asyncio.Event,
    stop: asyncio.Event,
) -> None:
    """``got``: flood alarm id -> seconds from its reading to here; ``resyncs[0]``: the
    ``resync`` events (the client fell behind: a page re-reads the list then)."""
    async with (
        httpx.AsyncClient(timeout=httpx.Timeout(10, read=None), cookies=cookies) as http,
        http.stream("GET", f"{base}/api/stream", params={"view": view}) as response,
    ):
        event = ""
        async for line in response.aiter_lines():
            if line.startswith(": connected"):
                ready.set()
            elif line.startswith("event: "):
                event = line[7:]
                resyncs[0] += event == "resync"
            elif line.startswith("data: ") and event == "alarm":
                alarm = json.loads(line[6:])
                if alarm["tag"].startswith(flood_phase) and alarm["state"] == "active_unack":
                    got.setdefault(alarm["id"], time.time() - _epoch(alarm["raised_at"]))
            if stop.is_set():
                return


def _epoch(iso: str) -> float:
    return datetime.fromisoformat(iso).timestamp()


async def _clients(args: argparse.Namespace) -> None:
    views = (
        ["desk"] * args.desk
        + ["overview"] * args.overview
        + [f"enterprise:FL{1 + i % FLOOD_ENTERPRISES:02d}" for i in range(args.enterprise)]
    )
    cookies = {"hz_session": args.session}
    stop = asyncio.Event()
    readies = [asyncio.Event() for _ in views]
    got: list[dict[str, float]] = [{} for _ in views]
    resyncs = [[0] for _ in views]
    tasks = [
        asyncio.create_task(_client(args.base, cookies, v, "B", g, n, r, stop))
        for v, g, n, r in zip(views, got, resyncs, readies, strict=True)
    ]
    await asyncio.wait_for(asyncio.gather(*(r.wait() for r in readies)), 120)
    print("CONNECTED", flush=True)
    await asyncio.get_running_loop().run_in_executor(None, sys.stdin.readline)  # until told
    stop.set()
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    desk = [g for v, g in zip(views, got, strict=True) if v == "desk"]
    desk_resyncs = [n[0] for v, n in zip(views, resyncs, strict=True) if v == "desk"]
    result = json.dumps({"desk": desk, "desk_resyncs": desk_resyncs, "clients": len(views)})
    await asyncio.to_thread(Path(args.out).write_text, result)


# --- the prober (child process) ----------------------------------------------------------


def _probe(args: argparse.Namespace) -> None:
    latencies: dict[str, list[float]] = {p: [] for p in PROBE_PATHS}
    errors = 0
    deadline = time.monotonic() + args.duration
    cookies = {"hz_session": args.session}
    with httpx.Client(base_url=args.base, timeout=30, cookies=cookies) as http:
        while time.monotonic() < deadline:
            for path in PROBE_PATHS:
                t0 = time.perf_counter()
                response = http.get(path)
                latencies[path].append(time.perf_counter() - t0)
                errors += response.status_code >= 500
    Path(args.out).write_text(json.dumps({"latencies": latencies, "errors": errors}))


def start_probe(
    base: str, cookies: dict[str, str], duration: float, out: Path
) -> subprocess.Popen[bytes]:
    cmd = [PY, __file__, "probe", "--base", base, "--duration", str(duration), "--out", str(out)]
    cmd += ["--session", cookies["hz_session"]]
    return subprocess.Popen(cmd)


# --- the run -----------------------------------------------------------------------------


def phase(
    name: str,
    base: str,
    cookies: dict[str, str],
    mqtt: Mosquitto,
    per: int,
    args: argparse.Namespace,
    work: Path,
) -> dict[str, Any]:
    out = work / f"probe-{name}.json"
    written0, t0 = metric(base, "hazwatch_sink_written_points_total", cookies), time.monotonic()
    dropped0 = metric(base, "hazwatch_channel_dropped_total", cookies)
    prober = start_probe(base, cookies, args.phase, out)
    time.sleep(args.phase / 2)
    flooded_at = flood(mqtt, name, per)
    prober.wait(args.phase * 3)
    written, elapsed = (
        metric(base, "hazwatch_sink_written_points_total", cookies),
        time.monotonic() - t0,
    )
    probe = json.loads(out.read_text())
    every = [x for xs in probe["latencies"].values() for x in xs]
    return {
        "rate": (written - written0) / elapsed,
        "requests": len(every),
        "errors": probe["errors"],
        "p50": percentile(every, 0.5),
        "p99": percentile(every, 0.99),
        "max": max(every, default=0.0),
        "per_path": {p: percentile(xs, 0.99) for p, xs in probe["latencies"].items()},
        "flooded_at": flooded_at,
        "dropped": metric(base, "hazwatch_channel_dropped_total", cookies) - dropped0,
    }


def run(args: argparse.Namespace, work: Path) -> str:
    spec = LoadSpec(args.gateways, args.points, 1.0, 3 * args.phase + 120, spread=True)
    mqtt = Mosquitto(work / "mosquitto")
    mqtt.start()
    service = generator = clients = None
    try:
        config, port, per = write_config(work, mqtt, spec, args.alarms)
        log = (work / "hazwatch.log").open("ab")
        cmd = [PY, "-m", "hazwatch.cli", "--log-level", "warning", "run", "--config", str(config)]
        service = subprocess.Popen(cmd, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT)
        base = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 180
        while True:
            try:
                with urllib.request.urlopen(f"{base}/healthz", timeout=5) as r:
                    if r.status == 200:
                        break
            except OSError:
                pass
            if time.monotonic() > deadline or service.poll() is not None:
                raise RuntimeError(f"hazwatch did not start: see {work / 'hazwatch.log'}")
            time.sleep(0.5)
        gen = [PY, "-m", "hazwatch.cli", "simulate", "--load", "--json", "--broker", mqtt.url]
        gen += ["--gateways", str(spec.gateways), "--points", str(spec.points), "--rate", "1"]
        gen += ["--duration", str(spec.duration), "--spread"]
        generator = subprocess.Popen(gen, cwd=ROOT, stdout=subprocess.DEVNULL)
        time.sleep(10)  # the load settles
        cookies = session(base)
        alone = phase("A", base, cookies, mqtt, per, args, work)
        out = work / "clients.json"
        cmd = [PY, __file__, "clients", "--base", base, "--out", str(out)]
        cmd += ["--session", cookies["hz_session"]]
        cmd += ["--desk", str(args.desk), "--overview", str(args.overview)]
        cmd += ["--enterprise", str(args.enterprise)]
        clients = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        assert clients.stdout is not None
        assert clients.stdin is not None
        if clients.stdout.readline().strip() != "CONNECTED":
            raise RuntimeError("the stream clients did not connect")
        loaded = phase("B", base, cookies, mqtt, per, args, work)
        time.sleep(5)  # the last deliveries
        clients.stdin.write("\n")
        clients.stdin.flush()
        clients.wait(120)
        delivered = json.loads(out.read_text())
        events = metric(base, 'hazwatch_alarm_events_total{kind="raised"}', cookies)
    finally:
        for proc in (clients, generator, service):
            if proc is not None:
                stop_process(proc)  # type: ignore[arg-type]
        mqtt.stop()
    return report(args, alone, loaded, delivered, per * FLOOD_ENTERPRISES, events)


def report(
    args: argparse.Namespace,
    alone: dict[str, Any],
    loaded: dict[str, Any],
    delivered: dict[str, Any],
    flood_size: int,
    raised: float,
) -> str:
    desk = delivered["desk"]
    delays = [d for client in desk for d in client.values()]
    counts = [len(client) for client in desk]
    stamp = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    ms = lambda s: f"{1000 * s:.0f} ms"  # noqa: E731
    lines = [
        (
            f"## Console under a {flood_size:,}-alarm flood with {delivered['clients']} "
            f"stream clients — {stamp}"
        ),
        "",
        f"`python bench/console_flood.py {' '.join(sys.argv[1:])}`",
        "",
        (
            f"`hazwatch run` (Mosquitto, SQLite storage) ingesting {args.gateways} gateways × "
            f"{args.points} points at 1 Hz (spread); two phases of {args.phase:.0f} s, a flood of "
            f"{flood_size:,} HH alarms (50 enterprises) halfway through each. B: {args.desk} "
            f"desk, {args.overview} overview and {args.enterprise} enterprise-page SSE clients "
            "(httpx, one process), connected before B starts. API: one client asking "
            f"{', '.join(f'`{p}`' for p in PROBE_PATHS)} in turn. One short run; "
            f"load average {os.getloadavg()[0]:.2f} when it ended."
        ),
        "",
        (
            "| phase | ingest (stored/s) | API requests | API p50 | API p99 | API max | 5xx "
            "| stream items dropped |"
        ),
        "|---|---|---|---|---|---|---|---|",
    ]
    for name, r in (
        ("A: no stream client", alone),
        (f"B: {delivered['clients']} stream clients", loaded),
    ):
        lines.append(
            f"| {name} | {r['rate']:,.0f} | {r['requests']} | {ms(r['p50'])} | {ms(r['p99'])} | "
            f"{ms(r['max'])} | {r['errors']} | {r['dropped']:,.0f} |"
        )
    lines += [
        "",
        (
            f"- Ingest with the console's load: {loaded['rate'] / alone['rate']:.2f} × the "
            "rate without it."
        ),
        "- API p99 per path, A → B: "
        + "; ".join(
            f"`{p}` {ms(alone['per_path'][p])} → {ms(loaded['per_path'][p])}" for p in PROBE_PATHS
        )
        + ".",
        f"- Alarms raised by the service over the run: {raised:,.0f} (both floods).",
    ]
    if delays:
        lines.append(
            f"- SSE delivery in B (reading published → alarm received by a desk client), over "
            f"{len(delays):,} deliveries: p50 {ms(percentile(delays, 0.5))}, p99 "
            f"{ms(percentile(delays, 0.99))}, max {ms(max(delays))}; flood alarms received per "
            f"desk client: min {min(counts):,}, median {statistics.median(counts):,.0f}, max "
            f"{max(counts):,} of {flood_size:,}."
        )
    resyncs = delivered.get("desk_resyncs", [])
    if resyncs:
        told = sum(1 for got, n in zip(counts, resyncs, strict=True) if got == flood_size or n)
        lines.append(
            f"- `resync` events per desk client (it fell behind; a page re-reads the list): "
            f"min {min(resyncs):,}, median {statistics.median(resyncs):,.0f}, max "
            f"{max(resyncs):,}; desk clients that got every flood alarm or were told to "
            f"re-read: {told} of {len(resyncs)}."
        )
    lines.append("")
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    sub = parser.add_subparsers(dest="mode")
    clients = sub.add_parser("clients", help="(internal) the stream clients")
    probe = sub.add_parser("probe", help="(internal) the API prober")
    for p in (clients, probe):
        p.add_argument("--base", required=True)
        p.add_argument("--out", required=True)
        p.add_argument("--session", required=True, help="the hz_session cookie")
    probe.add_argument("--duration", type=float, required=True)
    for p in (parser, clients):
        p.add_argument("--desk", type=int, default=150)
        p.add_argument("--overview", type=int, default=30)
        p.add_argument("--enterprise", type=int, default=20)
    parser.add_argument("--gateways", type=int, default=20)
    parser.add_argument("--points", type=int, default=500)
    parser.add_argument("--alarms", type=int, default=5000)
    parser.add_argument("--phase", type=float, default=40.0)
    parser.add_argument("--record", action="store_true", help=f"append to {RESULTS}")
    args = parser.parse_args()
    if args.mode == "clients":
        asyncio.run(_clients(args))
        return 0
    if args.mode == "probe":
        _probe(args)
        return 0
    with tempfile.TemporaryDirectory(prefix="hz-flood-") as tmp:
        text = run(args, Path(tmp))
    print(text)
    if args.record:
        with RESULTS.open("a") as f:
            f.write("\n" + text)
    return 0


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    sys.exit(main())
