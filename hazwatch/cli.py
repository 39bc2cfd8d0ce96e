"""The ``hazwatch`` command (docs/contract.md §6).

Every expected failure (bad config, bad registry, a port in use) ends with one
``error: ...`` line and exit status 2 — never a traceback.
"""

from __future__ import annotations

import argparse
import asyncio
import signal
import sys
import time
from collections.abc import Callable, Coroutine, Sequence
from pathlib import Path
from typing import Any

from hazwatch import logs
from hazwatch.errors import ConfigError, HazwatchError
from hazwatch.models import Registry, ms_to_iso
from hazwatch.registry import load_registry
from hazwatch.settings import Settings, load_settings

EXIT_USAGE = 2
EXIT_FAILED = 1
"""scenario run: an expectation failed; backtest --compare found differences; replay:
the broker refused messages; uplink status: an uplink is failing or lagging."""
EXIT_INTERRUPTED = 130
DEFAULT_BROKER = "mqtt://127.0.0.1:1883"
LOGINS_HELP = "gateways log in as themselves: a file `hazwatch gateway add --save-login` wrote"


def _positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from exc
    if not value > 0:
        raise argparse.ArgumentTypeError(f"expected a number > 0, got {text!r}")
    return value


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="hazwatch",
        description="Monitoring and alarm pipeline for major hazard installations "
        "and smart-electricity monitoring.",
    )
    parser.add_argument(
        "--log-level",
        choices=["debug", "info", "warning"],
        help="default: info; warning for scenario, record, replay, backtest and export, "
        "whose output is their report",
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    demo = commands.add_parser(
        "demo", help="everything in one process: embedded broker, SQLite, example sites"
    )
    demo.add_argument("--listen", default="127.0.0.1:8000", help="console address (host:port)")
    demo.add_argument(
        "--speed", type=_positive_float, default=5.0, help="scenario speed-up (default 5)"
    )

    _add_user_commands(commands)

    run = commands.add_parser("run", help="the service")
    run.add_argument("--config", type=Path, required=True, metavar="FILE")

    check = commands.add_parser("check-config", help="validate registry and settings")
    check.add_argument("--config", type=Path, required=True, metavar="FILE")

    simulate = commands.add_parser(
        "simulate", help="publish a scenario (--config, --scenario) or a load (--load) over MQTT"
    )
    simulate.add_argument("--config", type=Path, metavar="FILE")
    simulate.add_argument("--scenario", type=Path, metavar="FILE")
    simulate.add_argument("--speed", type=_positive_float, default=1.0)
    simulate.add_argument("--loop", action="store_true", help="repeat the timeline until Ctrl-C")
    simulate.add_argument(
        "--format", help="what the gateways speak (default: the scenario's; docs/gateways.md)"
    )
    simulate.add_argument("--logins", type=Path, metavar="FILE", help=LOGINS_HELP)
    load = simulate.add_argument_group("load", "a sustained benchmark load (simulators/load.py)")
    load.add_argument("--load", action="store_true", help="publish a load, not a scenario")
    load.add_argument("--gateways", type=_positive_int, default=20, metavar="N")
    load.add_argument(
        "--points", type=_positive_int, default=500, metavar="M", help="points per gateway"
    )
    load.add_argument(
        "--rate", type=_positive_float, default=1.0, metavar="HZ", help="samples per point per s"
    )
    load.add_argument("--duration", type=_positive_float, default=10.0, metavar="S")
    load.add_argument("--broker", default=DEFAULT_BROKER, metavar="URL")
    load.add_argument(
        "--singles", action="store_true", help="one reading per message on the tag topic"
    )
    load.add_argument(
        "--spread",
        action="store_true",
        help="gateways' samples spread over the period, not all at once",
    )
    load.add_argument(
        "--window", type=_positive_int, default=1000, help="unacknowledged messages at most"
    )
    load.add_argument("--json", action="store_true", help="print the result as one JSON line")

    scenario = commands.add_parser(
        "scenario", help="run scenarios and check the alarms they raise (docs/scenarios.md)"
    )
    scenario_commands = scenario.add_subparsers(dest="scenario_command", required=True)
    scenario_run = scenario_commands.add_parser(
        "run",
        help="publish a scenario, report each expected alarm PASS/FAIL and unexpected ones",
        description="Exit status: 0 pass, 1 fail, 2 usage or configuration error.",
    )
    scenario_run.add_argument(
        "scenario", metavar="SCENARIO", help="a scenario file, or a bundled one: tank_overfill"
    )
    scenario_run.add_argument(
        "--config", type=Path, metavar="FILE", help="default: the bundled example, embedded broker"
    )
    scenario_run.add_argument(
        "--speed", type=_positive_float, help="scenario seconds per second (embedded; default 25)"
    )
    scenario_run.add_argument("--seed", type=int, help="instead of the scenario's seed")
    scenario_run.add_argument(
        "--format",
        help="what the gateways speak: hz-json, sparkplug-b, neuron, ... (docs/gateways.md)",
    )
    scenario_run.add_argument(
        "--external",
        action="store_true",
        help="start nothing: publish to --config's broker for a service running there",
    )
    scenario_run.add_argument("--logins", type=Path, metavar="FILE", help=LOGINS_HELP)
    scenario_run.add_argument("--json", action="store_true", help="print the report as JSON")
    scenario_run.add_argument(
        "--backtest",
        action="store_true",
        help="no broker: the backtest's path at full speed (hours of scenario in seconds)",
    )
    scenario_run.add_argument(
        "--record", type=Path, metavar="FILE.jsonl", help="--backtest: write its messages here"
    )
    uplink = commands.add_parser("uplink", help="uplinks to supervising platforms (docs/uplink.md)")
    uplink_status = uplink.add_subparsers(dest="uplink_command", required=True).add_parser(
        "status",
        help="what each uplink has waiting, sent and failed",
        description="Exit status: 0 all well, 1 an uplink failing or lagging, 2 config error.",
    )
    uplink_status.add_argument("--config", type=Path, required=True, metavar="FILE")
    uplink_status.add_argument("--json", action="store_true", help="print the report as JSON")
    _add_recording_commands(commands)
    _add_gateway_command(commands)
    return parser


def _add_gateway_command(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """gateway add|remove|list: broker logins (hazwatch/logins.py)."""
    gateway = commands.add_parser(
        "gateway", help="gateway logins on the broker: Mosquitto's password file and ACL"
    )
    gateway.add_argument("action", choices=["add", "remove", "list"])
    gateway.add_argument("enterprise", nargs="?", metavar="ENTERPRISE")
    gateway.add_argument(
        "gateway", nargs="?", metavar="GATEWAY", help="omitted: one login for the enterprise"
    )
    gateway.add_argument(
        "--dir",
        type=Path,
        default=Path("deploy/mosquitto"),
        help="where passwd, logins.toml and acl live",
    )
    gateway.add_argument("--service-user", default="hazwatch", help="hazwatch's own broker user")
    gateway.add_argument(
        "--config",
        type=Path,
        metavar="FILE",
        help="refuse unknown enterprises; hazwatch's Sparkplug host ids come from it",
    )
    gateway.add_argument(
        "--password-stdin", action="store_true", help="read the password instead of making one"
    )
    gateway.add_argument(
        "--format", default="hz-json", help="what the gateway speaks (docs/gateways.md: Logins)"
    )
    for name, what in (
        ("group", "sparkplug-b: the group id (default: the enterprise id)"),
        ("app", "neuron: the north app's name (default: the enterprise id)"),
        ("host", "telegraf: the host (default: the gateway id)"),
        ("prefix", "thingsboard: the listener's mount_point (default: '{enterprise}/')"),
        ("topic", "field-map: the topic the device publishes"),
    ):
        gateway.add_argument(f"--{name}", help=what)
    gateway.add_argument(
        "--save-login",
        type=Path,
        metavar="FILE",
        help="also save login and password to FILE for simulators (--logins), not shown",
    )


def _add_recording_commands(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """record, replay, backtest, export (docs/recording.md)."""
    record = commands.add_parser("record", help="subscribe and write what arrives to a recording")
    record.add_argument("--broker", default=DEFAULT_BROKER, metavar="URL")
    record.add_argument("--out", type=Path, required=True, metavar="FILE.jsonl")
    record.add_argument(
        "--topic",
        action="append",
        metavar="FILTER",
        help="topic filter, repeatable (default: hz/v1/#)",
    )
    record.add_argument("--duration", type=_positive_float, metavar="S", help="stop after S s")
    record.add_argument("--count", type=_positive_int, metavar="N", help="stop after N messages")

    replay = commands.add_parser("replay", help="publish a recording's gateway messages again")
    replay.add_argument("recording", type=Path, metavar="FILE.jsonl")
    replay.add_argument("--broker", default=DEFAULT_BROKER, metavar="URL")
    replay.add_argument(
        "--config", type=Path, metavar="FILE", help="replay the topics of its [[ingest.codecs]]"
    )
    replay.add_argument(
        "--speed", type=_positive_float, default=1.0, help="divide the recorded spacing by X"
    )
    replay.add_argument(
        "--rewrite-ts",
        action="store_true",
        help="move the payloads' timestamps so the first message is at now",
    )
    replay.add_argument(
        "--window", type=_positive_int, default=1000, help="unacknowledged messages at most"
    )
    replay.add_argument("--logins", type=Path, metavar="FILE", help=LOGINS_HELP)

    backtest = commands.add_parser(
        "backtest", help="the alarms this configuration raises on a recording, without MQTT"
    )
    backtest.add_argument("--config", type=Path, required=True, metavar="FILE")
    backtest.add_argument("recording", type=Path, metavar="FILE.jsonl")
    backtest.add_argument("--json", action="store_true", help="print one JSON document")
    backtest.add_argument(
        "--compare",
        action="store_true",
        help="diff against the alarms the live run published in the recording (exit 1 if any)",
    )
    backtest.add_argument(
        "--tolerance",
        type=_positive_float,
        metavar="S",
        help="--compare: times may differ by this much (default: tick_s + 1 s)",
    )
    backtest.add_argument(
        "--model",
        type=Path,
        action="append",
        metavar="MODEL",
        help="judge with this model of normal operation (ANOMALY) instead of the config's",
    )

    learn = commands.add_parser(
        "learn", help="learn models of normal operation (ANOMALY) from recordings of it"
    )
    learn.add_argument("--config", type=Path, required=True, metavar="FILE")
    learn.add_argument("recordings", type=Path, nargs="+", metavar="RECORDING")
    learn.add_argument("--out", type=Path, required=True, metavar="MODEL")
    learn.add_argument(
        "--installation", action="append", metavar="E/I", help="only these (default: all)"
    )
    learn.add_argument("--exclude", action="append", metavar="TAG", help="leave this point out")
    learn.add_argument(
        "--period", type=_positive_float, metavar="S", help="sample period (default: see docs)"
    )
    learn.add_argument(
        "--variance", type=_positive_float, default=0.9, help="explained by the model (0.9)"
    )
    learn.add_argument(
        "--confidence", type=_positive_float, default=0.999, help="of the limits (0.999)"
    )

    export = commands.add_parser("export", help="stored readings of a time range as a recording")
    export.add_argument("--config", type=Path, required=True, metavar="FILE")
    export.add_argument("--start", required=True, metavar="TIME", help="RFC 3339 or epoch ms")
    export.add_argument("--end", required=True, metavar="TIME", help="RFC 3339 or epoch ms")
    export.add_argument("--out", type=Path, required=True, metavar="FILE.jsonl")


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"expected an integer, got {text!r}") from exc
    if value <= 0:
        raise argparse.ArgumentTypeError(f"expected an integer > 0, got {text!r}")
    return value


def _add_user_commands(commands: Any) -> None:
    config_help = "settings file naming [console] db (default: var/console.db)"
    user = commands.add_parser("user", help="console users (docs/contract.md, Console login)")
    user_commands = user.add_subparsers(dest="user_command", required=True)
    add = user_commands.add_parser("add", help="a new user; the password is asked for")
    add.add_argument("username")
    add.add_argument(
        "--role", required=True, choices=["admin", "operator", "grid_officer", "enterprise"]
    )
    add.add_argument(
        "--grid", action="append", default=[], help="a grid it sees (repeat); operator, officer"
    )
    add.add_argument(
        "--enterprise", action="append", default=[], help="an enterprise it sees (repeat)"
    )
    add.add_argument("--lang", choices=["zh-CN", "en"], default="zh-CN")
    passwd = user_commands.add_parser("passwd", help="a new password; ends the user's sessions")
    passwd.add_argument("username")
    remove = user_commands.add_parser("remove", help="delete a user and its sessions")
    remove.add_argument("username")
    listing = user_commands.add_parser("list", help="users, roles and grants")
    for sub in (add, passwd):
        sub.add_argument(
            "--password-stdin",
            action="store_true",
            help="read the password from the first line of stdin (for scripts), not a prompt",
        )
    for sub in (add, passwd, remove, listing):
        sub.add_argument("--config", type=Path, metavar="FILE", help=config_help)
    audit = commands.add_parser("audit", help="the console's hash-chained audit log")
    verify = audit.add_subparsers(dest="audit_command", required=True).add_parser(
        "verify", help="check the chain; names the first broken row"
    )
    verify.add_argument("--config", type=Path, metavar="FILE", help=config_help)


def main(argv: Sequence[str] | None = None) -> int:  # noqa: PLR0911 - a return per command
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command == "simulate" and not args.load and (not args.config or not args.scenario):
        parser.error("simulate needs --config and --scenario, or --load")
    recording_command = _RECORDING_COMMANDS.get(args.command)
    quiet = recording_command is not None or args.command in {"scenario", "uplink"}
    logs.configure(args.log_level or ("warning" if quiet else "info"))
    try:
        if recording_command is not None:
            return _interruptible(recording_command, args)
        if args.command == "check-config":
            return check_config(args.config)
        if args.command == "run":
            settings, registry = _load(args.config)
            return _run_until_signal(_serve(settings, registry))
        if args.command == "simulate" and args.load:
            return _simulate_load(args)
        if args.command == "simulate":
            return _run_until_signal(
                _simulate(
                    args.config, args.scenario, args.speed, args.loop, args.format, args.logins
                )
            )
        if args.command == "scenario":
            return _scenario_run(args)
        if args.command == "uplink":
            return _uplink_status(args.config, as_json=args.json)
        if args.command == "gateway":
            return _gateway(args)
        if args.command in {"user", "audit"}:
            from hazwatch.usercli import audit_command, user_command  # noqa: PLC0415

            return user_command(args) if args.command == "user" else audit_command(args)
        if args.command == "demo":
            from hazwatch.demo import run_demo  # noqa: PLC0415

            return _run_until_signal(run_demo(args.listen, args.speed))
    except HazwatchError as exc:
        print(f"error: {exc}", file=sys.stderr)  # noqa: T201
        return EXIT_USAGE
    raise AssertionError(args.command)  # argparse allows only the commands above


def _gateway(args: argparse.Namespace) -> int:
    from hazwatch import logins  # noqa: PLC0415

    known, host_ids = None, None
    if args.config:
        settings, registry = _load(args.config)
        known = registry.enterprises
        host_ids = [
            str(entry.options.get("host_id", "hazwatch"))
            for entry in settings.ingest.codecs
            if entry.kind == "sparkplug-b"
        ] or None
    password = sys.stdin.readline().rstrip("\n") if args.password_stdin else None
    params = {
        name: value
        for name in ("group", "app", "host", "prefix", "topic")
        if (value := getattr(args, name)) is not None
    }
    sys.stdout.write(
        logins.command(
            logins.GatewayCommand(
                args.action,
                args.enterprise,
                args.gateway,
                args.dir,
                format=args.format,
                params=params,
                service_user=args.service_user,
                password=password,
                known_enterprises=known,
                host_ids=host_ids,
                save_login=args.save_login,
            )
        )
    )
    return 0


def _load(config: Path) -> tuple[Settings, Registry]:
    from alerting.routing import Router  # noqa: PLC0415 - keeps `hazwatch --help` fast

    settings = load_settings(config)
    registry = load_registry(settings.registry)
    Router(settings.alerting, registry, [], source=str(config))  # routes against the registry
    return settings, registry


def check_config(config: Path) -> int:
    from alerting.routing import Router  # noqa: PLC0415 - keeps `hazwatch --help` fast

    settings, registry = _load(config)
    from hazwatch.tls import mqtt_ssl_context  # noqa: PLC0415

    mqtt_ssl_context(settings.mqtt)  # the TLS files load, or one error line names the key
    out = sys.stdout
    points = registry.points()
    without_limits = [p for p in points if not p.has_limits]
    installations = sum(len(e.installations) for e in registry.enterprises.values())
    out.write(f"config:        {config}\n")
    out.write(f"registry:      {settings.registry}\n")
    mqtt = settings.mqtt
    out.write(f"mqtt:          {mqtt.host}:{mqtt.port}")
    if mqtt.tls:
        out.write(f" (TLS; CA: {mqtt.ca_file or 'the system CAs'}")
        out.write(f"; client certificate {mqtt.cert_file}" if mqtt.cert_file else "")
        out.write("; host name not checked" if mqtt.tls_insecure else "")
        out.write(")")
    out.write("\n")
    storage = settings.storage
    if storage.backend == "influxdb":
        out.write(
            f"storage:       influxdb {storage.influxdb.api} at {storage.influxdb.url}, "
            f"database {storage.influxdb.database!r}\n"
        )
    else:
        out.write(f"storage:       sqlite at {storage.path}\n")
    from ingest.codecs import build_routes  # noqa: PLC0415 - only here: refuses bad entries

    routes = build_routes(settings.ingest)
    out.write(f"codecs:        {', '.join(c.name for c in routes.codecs)}\n")
    out.write(f"journal:       {settings.journal.path}\n")
    out.write(f"console:       http://{settings.console.listen}/\n")
    out.write(f"webhooks:      {len(settings.alerting.webhooks)}\n")
    people = Router(settings.alerting, registry, []).people_channels
    out.write(
        f"alerting:      {len(settings.alerting.routes)} route(s); people told by "
        f"{', '.join(people) or 'no channel (configure e-mail, SMS or a robot)'}\n"
    )
    out.write(_uplinks_checked(settings, registry) + "\n")
    out.write(
        f"enterprises:   {len(registry.enterprises)}\n"
        f"installations: {installations}\n"
        f"points:        {len(points)}\n"
        f"without limits: {len(without_limits)}\n"
    )
    for enterprise in registry.enterprises.values():
        n = sum(len(i.points) for i in enterprise.installations)
        out.write(
            f"  {enterprise.id:<10} {enterprise.name} — grid {enterprise.grid}, "
            f"{enterprise.status.value}, {len(enterprise.installations)} installation(s), "
            f"{n} point(s)\n"
        )
    if settings.detectors.models:  # read and checked against the registry, as at start
        from hazwatch.detection import load_models  # noqa: PLC0415

        names = ", ".join(m.name for m in load_models(settings.detectors, registry))
        out.write(f"models:        {names} (ANOMALY)\n")
    if without_limits:
        out.write("points without alarm limits (no HH/H/L/LL alarms will be raised):\n")
        for p in without_limits:
            out.write(f"  {p.enterprise}/{p.installation}/{p.tag}  {p.name} ({p.kind.value})\n")
    out.write("OK\n")
    return 0


def _uplinks_checked(settings: Settings, registry: Registry) -> str:
    """One line per uplink, its templates checked (a ``ConfigError`` names the key)."""
    from hazwatch.clock import SystemClock  # noqa: PLC0415
    from uplink.service import build_requests  # noqa: PLC0415

    lines = []
    for u in settings.uplink:
        build_requests(u, registry, SystemClock())
        lines.append(f"uplink:        {u.name} → {u.origin}, queue {u.queue_path}\n")
    return "".join(lines)


def _uplink_status(config: Path, *, as_json: bool) -> int:
    import orjson  # noqa: PLC0415

    from hazwatch.clock import SystemClock  # noqa: PLC0415
    from uplink.status import describe, uplink_status  # noqa: PLC0415

    settings, registry = _load(config)
    if not settings.uplink:
        raise ConfigError(f"{config}: no [[uplink]] entries")
    report, well = uplink_status(settings.uplink, registry, SystemClock())
    if as_json:
        print(orjson.dumps(report).decode())  # noqa: T201
    else:
        print("\n\n".join(describe(entry) for entry in report))  # noqa: T201
    return 0 if well else EXIT_FAILED


async def _serve(settings: Settings, registry: Registry) -> None:
    from hazwatch.app import serve  # noqa: PLC0415 - keeps check-config light

    await serve(settings, registry)


async def _simulate(  # noqa: PLR0917 - the command's options
    config: Path,
    scenario_file: Path,
    speed: float,
    loop: bool,
    fmt: str | None,
    logins: Path | None,
) -> None:
    from simulators.broker import Broker  # noqa: PLC0415
    from simulators.logins import GatewayLogins  # noqa: PLC0415
    from simulators.publisher import ScenarioPublisher  # noqa: PLC0415
    from simulators.scenario import load_scenario, with_format  # noqa: PLC0415

    settings, registry = _load(config)
    scenario = with_format(load_scenario(scenario_file, registry), fmt)
    publisher = ScenarioPublisher(
        Broker.from_settings(settings.mqtt),
        registry,
        scenario,
        speed=speed,
        loop=loop,
        logins=None if logins is None else GatewayLogins.load(logins),
    )
    async with publisher:
        await publisher.run()
    print(f"published {publisher.messages_published} messages")  # noqa: T201


def _simulate_load(args: argparse.Namespace) -> int:
    import orjson  # noqa: PLC0415

    from simulators.load import LoadSpec, run_load  # noqa: PLC0415

    spec = LoadSpec(
        gateways=args.gateways,
        points=args.points,
        rate=args.rate,
        duration=args.duration,
        singles=args.singles,
        window=args.window,
        spread=args.spread,
    )
    try:
        result = asyncio.run(run_load(spec, args.broker))
    except OSError as exc:
        raise HazwatchError(f"load: cannot publish to {args.broker}: {exc}") from exc
    if args.json:
        print(orjson.dumps(result.as_dict()).decode())  # noqa: T201
    else:
        figures = result.as_dict()
        print(  # noqa: T201
            f"published {figures['messages']:,} messages ({figures['readings']:,} readings) "
            f"in {figures['elapsed_s']} s: {figures['readings_per_s']:,} readings/s, "
            f"{figures['messages_per_s']:,} messages/s; generator CPU {figures['cpu_s']} s"
        )
    return 0


def _scenario_run(args: argparse.Namespace) -> int:
    """``hazwatch scenario run``: 0 when every expected alarm came in its window and no
    other did, 1 otherwise; a rich progress bar on a terminal, plain text (or JSON)
    otherwise."""
    import orjson  # noqa: PLC0415
    from rich.console import Console  # noqa: PLC0415

    from simulators.progress import ProgressBar  # noqa: PLC0415
    from simulators.runner import (  # noqa: PLC0415
        DEFAULT_SPEED,
        find_scenario,
        run_embedded,
        run_external,
    )

    if args.external and args.config is None:
        raise HazwatchError("--external needs --config: the running service's configuration")
    if args.backtest and (args.external or args.speed is not None):
        raise HazwatchError("--backtest runs without a broker or a clock: no --external, --speed")
    if args.record is not None and not args.backtest:
        raise HazwatchError("--record applies to --backtest runs")
    if args.external and args.speed not in (None, 1.0):
        raise HazwatchError(
            "--speed applies to embedded runs: a service running elsewhere keeps wall-clock "
            "time, and its time-driven alarms (STALE, STUCK, delays, ROC/TREND) would see "
            "compressed time"
        )
    file = find_scenario(args.scenario)
    console = Console(highlight=False, soft_wrap=True)
    # the duration is known once the runner has loaded the scenario
    progress = ProgressBar(file.stem, 1, unit="s of scenario time")

    def advance(t_s: float, duration_s: float) -> None:
        progress.update(t_s, total=duration_s)

    reports = []

    async def run() -> None:
        with progress:
            if args.backtest:
                from simulators.offline import run_offline  # noqa: PLC0415

                report = run_offline(
                    file, args.config, seed=args.seed, on_progress=advance, record=args.record
                )
            elif args.external:
                report = await run_external(
                    file,
                    args.config,
                    seed=args.seed,
                    fmt=args.format,
                    on_progress=advance,
                    logins=args.logins,
                )
            else:
                speed = args.speed or DEFAULT_SPEED
                report = await run_embedded(
                    file,
                    args.config,
                    speed=speed,
                    seed=args.seed,
                    fmt=args.format,
                    on_progress=advance,
                    logins=args.logins,
                )
        reports.append(report)

    _run_until_signal(run())
    if not reports:
        print("interrupted", file=sys.stderr)  # noqa: T201
        return EXIT_INTERRUPTED
    if args.json:
        print(orjson.dumps(reports[0].as_dict()).decode())  # noqa: T201
    else:
        for line in reports[0].lines():
            console.print(line)
    return 0 if reports[0].passed else EXIT_FAILED


# --- record, replay, backtest, export (docs/recording.md) -----------------------------


def record(args: argparse.Namespace) -> int:
    from simulators.broker import Broker  # noqa: PLC0415
    from simulators.record import DEFAULT_TOPICS, Recorder  # noqa: PLC0415

    topics = tuple(args.topic or DEFAULT_TOPICS)
    recorder = Recorder(
        Broker.from_url(args.broker),
        args.out,
        topics=topics,
        duration_s=args.duration,
        max_messages=args.count,
    )

    async def run() -> None:
        started = time.monotonic()
        async with recorder:
            _note(f"recording {' '.join(topics)} from {recorder.broker.url} to {args.out}")
            try:
                await recorder.run()
            finally:
                elapsed = time.monotonic() - started
                summary = (
                    f"recorded {recorder.messages:,} messages ({_size(recorder.bytes_written)}) "
                    f"in {elapsed:.1f} s to {args.out}"
                )
                if recorder.disconnects:
                    summary += (
                        f"; the connection was lost {recorder.disconnects} time(s): "
                        "what was published meanwhile is missing"
                    )
                print(summary)  # noqa: T201

    return _run_until_signal(run())


def replay(args: argparse.Namespace) -> int:
    from ingest.codecs import build_routes  # noqa: PLC0415
    from simulators.broker import Broker  # noqa: PLC0415
    from simulators.logins import GatewayLogins  # noqa: PLC0415
    from simulators.progress import ProgressBar, tracked  # noqa: PLC0415
    from simulators.recording import RecordingReader  # noqa: PLC0415
    from simulators.replay import Replayer  # noqa: PLC0415

    routes = build_routes(load_settings(args.config).ingest) if args.config else None
    replayer = Replayer(
        Broker.from_url(args.broker),
        speed=args.speed,
        rewrite_ts=args.rewrite_ts,
        window=args.window,
        routes=routes,
        logins=None if args.logins is None else GatewayLogins.load(args.logins),
    )

    async def run() -> None:
        started = time.monotonic()
        completed = False
        with RecordingReader(args.recording) as reader:
            try:
                with ProgressBar("replay", reader.size, in_bytes=True) as bar:
                    await replayer.run(tracked(reader, bar))
                completed = True
            finally:
                if completed or replayer.published:  # how far an interrupted replay got
                    print(  # noqa: T201
                        f"replayed {replayer.published:,} messages to {replayer.broker.url} at "
                        f"{args.speed:g}x in {time.monotonic() - started:.1f} s: "
                        f"{replayer.acknowledged:,} acknowledged, {replayer.refused:,} refused; "
                        f"{replayer.skipped:,} on other topics skipped"
                        + (
                            f"; {replayer.no_login:,} that no login in {args.logins} may "
                            "publish skipped"
                            if replayer.no_login
                            else ""
                        )
                    )

    _run_until_signal(run())
    if replayer.refused:
        _note(f"warning: the broker refused {replayer.refused:,} messages (not authorized?)")
        return EXIT_FAILED
    if replayer.no_login:
        _note(f"warning: {replayer.no_login:,} messages had no login to publish them")
        return EXIT_FAILED
    return 0


def backtest(args: argparse.Namespace) -> int:
    import orjson  # noqa: PLC0415

    from simulators.backtest import render_json, render_text, run_backtest  # noqa: PLC0415
    from simulators.comparison import compare  # noqa: PLC0415
    from simulators.progress import ProgressBar, tracked  # noqa: PLC0415
    from simulators.recording import RecordingReader  # noqa: PLC0415

    settings, registry = _load(args.config)
    if args.model:
        detectors = settings.detectors.model_copy(update={"models": tuple(args.model)})
        settings = settings.model_copy(update={"detectors": detectors})
    with (
        RecordingReader(args.recording) as reader,
        ProgressBar("backtest", reader.size, in_bytes=True) as bar,
    ):
        result = run_backtest(settings, registry, reader.header.started_ms, tracked(reader, bar))
    comparison = None
    if args.compare:
        tolerance_s = args.tolerance or settings.detectors.tick_s + 1
        comparison = compare(
            result.recorded_alarms, result.alarms, result.started_ms, round(tolerance_s * 1000)
        )
    if args.json:
        sys.stdout.write(
            orjson.dumps(render_json(result, comparison), option=orjson.OPT_INDENT_2).decode()
            + "\n"
        )
    else:
        sys.stdout.write(render_text(result, comparison))
    return EXIT_FAILED if comparison is not None and not comparison.identical else 0


def export(args: argparse.Namespace) -> int:
    from dashboards.timerange import TimeParamError, parse_instant  # noqa: PLC0415
    from simulators.export import export as export_readings  # noqa: PLC0415
    from simulators.progress import ProgressBar  # noqa: PLC0415

    settings = load_settings(args.config)
    try:
        start_ms = parse_instant(args.start, "--start")
        end_ms = parse_instant(args.end, "--end")
    except TimeParamError as exc:
        raise ConfigError(str(exc)) from exc
    with ProgressBar("export", end_ms - start_ms, in_bytes=False) as bar:
        result = export_readings(
            settings.storage,
            settings.ingest,
            start_ms=start_ms,
            end_ms=end_ms,
            out=args.out,
            on_progress=lambda ts_ms: bar.update(ts_ms - start_ms),
        )
    print(  # noqa: T201
        f"exported {result.readings:,} readings in {result.messages:,} messages "
        f"({ms_to_iso(start_ms)} .. {ms_to_iso(end_ms)}) from {settings.storage.backend} "
        f"to {args.out}"
    )
    return 0


def learn(args: argparse.Namespace) -> int:
    from detectors.normal_model import encode  # noqa: PLC0415
    from simulators.progress import ProgressBar  # noqa: PLC0415
    from simulators.training import LearnOptions, summary_lines  # noqa: PLC0415
    from simulators.training import learn as learn_models  # noqa: PLC0415

    settings, registry = _load(args.config)
    if args.out.exists():
        raise HazwatchError(f"{args.out}: already exists: choose another file name")
    options = LearnOptions(
        installations=tuple(args.installation or ()),
        exclude=tuple(args.exclude or ()),
        period_s=args.period,
        variance=args.variance,
        confidence=args.confidence,
    )
    total = sum(p.stat().st_size for p in args.recordings if p.is_file())
    with ProgressBar("learn", total, in_bytes=True) as bar:
        result = learn_models(settings, registry, args.recordings, options, bar.update)
    partial = args.out.with_name(args.out.name + ".partial")
    partial.write_bytes(encode(result.model_file))
    partial.replace(args.out)  # never a model file cut short
    print("\n".join(summary_lines(result, args.out)))  # noqa: T201
    return 0


_RECORDING_COMMANDS: dict[str, Callable[[argparse.Namespace], int]] = {
    "record": record,
    "replay": replay,
    "backtest": backtest,
    "export": export,
    "learn": learn,
}


def _interruptible(command: Callable[[argparse.Namespace], int], args: argparse.Namespace) -> int:
    """Ctrl-C in a synchronous command (backtest, export): one line, no traceback."""
    try:
        return command(args)
    except KeyboardInterrupt:
        _note("interrupted")
        return EXIT_INTERRUPTED


def _note(text: str) -> None:
    """A line for the person at the terminal, kept out of stdout (the result)."""
    print(text, file=sys.stderr)  # noqa: T201


def _size(n: int) -> str:
    return f"{n / 2**20:.1f} MiB" if n >= 2**20 else f"{n / 2**10:.1f} KiB"


def _run_until_signal(coro: Coroutine[Any, Any, None]) -> int:
    """Run ``coro``; SIGINT/SIGTERM cancel it so every resource closes cleanly."""

    async def runner() -> None:
        task = asyncio.ensure_future(coro)
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, task.cancel)
        try:
            await task
        except asyncio.CancelledError:
            if not task.cancelled():
                raise
        except BaseExceptionGroup as group:
            # A failing loop inside a TaskGroup: report our own errors as such.
            first = _first_leaf(group)
            if isinstance(first, HazwatchError):
                raise first from group
            raise

    asyncio.run(runner())
    return 0


def _first_leaf(group: BaseExceptionGroup[BaseException]) -> BaseException:
    inner = group.exceptions[0]
    return _first_leaf(inner) if isinstance(inner, BaseExceptionGroup) else inner


if __name__ == "__main__":
    sys.exit(main())
