"""Settings: one TOML file (``--config``), every key overridable from the environment.

``HAZWATCH_<SECTION>__<KEY>`` overrides ``[section] key``; deeper tables nest with
more ``__`` (``HAZWATCH_STORAGE__INFLUXDB__TOKEN``); top-level keys drop the section
(``HAZWATCH_REGISTRY``). Relative paths are relative to the config file. Secrets are
``SecretStr`` and never printed.

The keys of docs/contract.md §4 are the contract; ``[ingest]``, ``[detectors]`` and
``[alerting]`` add tuning with safe defaults.
"""

from __future__ import annotations

import ipaddress
import json
import os
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal, Self
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)

from hazwatch.alertpolicy import AlertingSettings
from hazwatch.errors import ConfigError
from hazwatch.models import AlarmType, Priority
from hazwatch.uplink_settings import UplinkSettings, resolve_queue_paths, unique_names

ENV_PREFIX = "HAZWATCH_"


def url_without_userinfo(url: str) -> str:
    """A URL as it may be shown or logged: without ``user:secret@``.

    >>> url_without_userinfo("http://admin:s3cret@influx:8086/api")
    'http://influx:8086/api'
    """
    scheme, sep, rest = url.partition("://")
    netloc, slash, path = rest.partition("/")
    return f"{scheme}{sep}{netloc.rpartition('@')[2]}{slash}{path}"


class _Section(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class MqttSettings(_Section):
    url: str = "mqtt://127.0.0.1:1883"
    client_id: str = "hazwatch-ingest"
    username: str = ""
    password: SecretStr = SecretStr("")
    keepalive_s: int = Field(default=30, ge=5, le=3600)
    disconnect_alarm_s: float = Field(default=30, gt=0)
    """The ingest's connection down this long: the ``broker_disconnected`` SYSTEM alarm."""
    # TLS (an mqtts:// url): one context for every client, built by hazwatch.tls
    ca_file: Path | None = None
    """CA certificate(s), PEM, that the broker's certificate must chain to (default:
    the system's CAs)."""
    cert_file: Path | None = None
    """This client's certificate, PEM, for brokers that require one (mutual TLS)."""
    key_file: Path | None = None
    """Its private key, PEM (unless ``cert_file`` holds it too)."""
    tls_insecure: bool = False
    """Accept a broker certificate that does not name the url's host (the chain is
    still checked) — for a broker reached by an address its certificate lacks."""

    @field_validator("ca_file", "cert_file", "key_file", mode="before")
    @classmethod
    def _empty_is_none(cls, path: object) -> object:
        return None if path == "" else path

    @model_validator(mode="after")
    def _tls_needs_mqtts(self) -> Self:
        tls_keys = ("ca_file", "cert_file", "key_file", "tls_insecure")
        set_keys = [k for k in tls_keys if getattr(self, k)]
        if set_keys and not self.tls:
            raise ValueError(f"{', '.join(set_keys)} need an mqtts:// url, got {self.url!r}")
        if self.key_file is not None and self.cert_file is None:
            raise ValueError("key_file needs cert_file (the certificate it belongs to)")
        return self

    @field_validator("url")
    @classmethod
    def _known_scheme(cls, url: str) -> str:
        parts = urlsplit(url)
        if parts.scheme not in {"mqtt", "mqtts"} or not parts.hostname:
            raise ValueError(f"expected mqtt://host[:port] or mqtts://host[:port], got {url!r}")
        return url

    @property
    def host(self) -> str:
        return urlsplit(self.url).hostname or "127.0.0.1"

    @property
    def port(self) -> int:
        parts = urlsplit(self.url)
        return parts.port or (8883 if parts.scheme == "mqtts" else 1883)

    @property
    def tls(self) -> bool:
        return urlsplit(self.url).scheme == "mqtts"


class InfluxSettings(_Section):
    url: str = "http://127.0.0.1:8086"
    api: Literal["v1", "v2", "v3"] = "v1"
    database: str = "hazwatch"
    org: str = ""
    token: SecretStr = SecretStr("")
    username: str = ""
    password: SecretStr = SecretStr("")
    timeout_s: float = Field(default=10.0, gt=0)
    gzip: bool = False
    """Compress writes (gzip level 1: ~10x fewer bytes). Off by default: on loopback it
    made a 5,000-point request ~35 % slower; worth it over a network link."""


class StorageSettings(_Section):
    backend: Literal["sqlite", "influxdb"] = "sqlite"
    path: Path = Path("var/readings.db")
    influxdb: InfluxSettings = InfluxSettings()


class JournalSettings(_Section):
    path: Path = Path("var/journal.db")


class ConsoleSettings(_Section):
    listen: str = "127.0.0.1:8000"
    map_tiles_url: str = ""
    """The risk map's tile server, ``https://host/{z}/{x}/{y}.png`` (Leaflet's template);
    empty: grid areas and enterprises on a plain background (offline)."""
    kpi_flood_alarms: int = Field(default=10, ge=1)
    """Alarm KPIs: more annunciations than this in 10 minutes is a flood (ISA-18.2)."""
    kpi_chatter_count: int = Field(default=3, ge=2)
    kpi_chatter_window_s: float = Field(default=60, gt=0)
    kpi_standing_h: float = Field(default=24, gt=0)

    @field_validator("map_tiles_url")
    @classmethod
    def _tiles(cls, url: str) -> str:
        parts = urlsplit(url)
        if url and (parts.scheme not in ("http", "https") or not parts.hostname or " " in url):
            raise ValueError(f"expected http(s)://host/...{{z}}/{{x}}/{{y}}..., got {url!r}")
        return url

    """Any address; one that is not loopback needs at least one user in ``db``
    (``hazwatch user add``), or start-up stops with one line saying so."""
    db: Path = Path("var/console.db")
    """Console users, sessions and the hash-chained audit log (SQLite)."""
    timezone: str = "Asia/Shanghai"
    """The site's time zone (IANA name): the console shows times in it."""

    @field_validator("listen")
    @classmethod
    def _host_port(cls, listen: str) -> str:
        host, sep, port = listen.rpartition(":")
        if not sep or not host or not port.isdigit() or not 0 <= int(port) <= 65535:
            raise ValueError(f"expected host:port such as 127.0.0.1:8000, got {listen!r}")
        return listen

    @field_validator("timezone")
    @classmethod
    def _zone(cls, zone: str) -> str:
        try:
            ZoneInfo(zone)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise ValueError(
                f"expected an IANA time zone such as Asia/Shanghai, got {zone!r}"
            ) from exc
        return zone

    @property
    def host(self) -> str:
        return self.listen.rpartition(":")[0].strip("[]")

    @property
    def port(self) -> int:
        return int(self.listen.rpartition(":")[2])

    @property
    def loopback(self) -> bool:
        """Only this machine can connect (127.0.0.0/8, ::1 or localhost)."""
        return is_loopback(self.host)


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class MappingRule(_Section):
    """One ``[[ingest.codecs.map]]`` rule: where a gateway format's names land (docs/gateways.md).

    ``match`` holds globs on the format's own fields (``{"group": "PlantA*"}``); the
    templates fill enterprise, gateway and tag from those fields (``"{edge_node}"``).
    Rules are tried in order, the kind's defaults last; a field a matching rule leaves
    out comes from the next matching rule."""

    match: dict[str, str] = {}
    enterprise: str | None = None
    gateway: str | None = None
    tag: str | None = None


class CodecSettings(_Section):
    """One ``[[ingest.codecs]]`` entry: a payload format on some topics (docs/gateways.md)."""

    kind: str
    name: str = ""
    """Unique name, shown in metrics and errors (default: the kind)."""
    topics: tuple[str, ...] = ()
    """MQTT topic filters (default: the kind's own)."""
    map: tuple[MappingRule, ...] = ()
    tags: dict[str, str] = {}
    """Renames: the tag a rule produced → the registry's tag."""
    options: dict[str, Any] = {}
    """The kind's own options (docs/gateways.md)."""


class IngestSettings(_Section):
    codecs: tuple[CodecSettings, ...] = (CodecSettings(kind="hz-json"),)
    """The payload formats decoded (``[[ingest.codecs]]``); hz-json alone by default."""
    max_payload_bytes: int = Field(default=64 * 1024, gt=0)
    max_readings: int = Field(default=1000, gt=0)
    max_past_s: float = Field(default=7 * 24 * 3600, gt=0)
    max_future_s: float = Field(default=5 * 60, gt=0)
    batch_size: int = Field(default=500, gt=0)
    """Messages per spool commit (then acknowledged) at most. Batches are group commits:
    one is handed over as soon as the one before is handled (``ingest.source``)."""
    batch_readings: int = Field(default=5000, gt=0)
    """Readings per spool commit, about (whole messages): a batch of 500 messages of
    100 readings took long enough to hold an alarm behind it for half a second."""
    rejects_kept: int = Field(default=200, gt=0)
    reject_logs_per_minute: int = Field(default=10, ge=0)
    """Rejections written to the service log per gateway and minute; the rest are
    counted and said in one line (every one is in the list and the counter)."""
    spool_path: Path = Path("var/spool.db")
    """The durable spool (SQLite WAL): messages are acknowledged once they are in it."""
    spool_max_mb: float = Field(default=1024, gt=0)
    """Spooled readings kept at most (MiB of spooled data); when full the oldest go first."""
    lag_alarm_s: float = Field(default=60, gt=0)
    """A system alarm when the historian is this many seconds behind the spool."""
    write_batch: int = Field(default=10_000, gt=0)
    """Readings per sink write (one request to InfluxDB; ~1 MB of line protocol).
    Measured on the batch load (bench/ingest.py): influxd spent a quarter less CPU per
    point on 10,000-point requests than on 5,000, and the whole run was ~30 % faster."""
    write_lanes: int = Field(default=4, ge=1, le=8)
    """Sink writes in flight at once; a batch's messages are split by gateway, so each
    series is still written in order."""


class AnomalySettings(_Section):
    """``[detectors.anomaly]``: how a model's judgements become an ANOMALY alarm."""

    persistence: tuple[int, int] = (3, 5)
    """``[k, n]``: raised when k of the last n judged sample periods had T² or SPE over
    its limit; cleared when all of the last n were under ``clear_fraction`` of both."""
    clear_fraction: float = Field(default=0.8, gt=0, le=1)
    priority: Priority = Priority.MEDIUM

    @field_validator("persistence")
    @classmethod
    def _k_of_n(cls, value: tuple[int, int]) -> tuple[int, int]:
        k, n = value
        if not 1 <= k <= n <= 100:
            raise ValueError(f"expected [k, n] with 1 <= k <= n <= 100, got {list(value)}")
        return value


class DetectorSettings(_Section):
    stale_factor: float = Field(default=3.0, gt=0)
    """A point is STALE after ``stale_factor × interval_s`` without a reading."""
    tick_s: float = Field(default=1.0, gt=0)
    suspended_standby: float = Field(default=5.0, ge=0)
    """SUSPENDED_LOAD: the standby draw (in the power point's unit, usually kW) that a
    suspended enterprise may exceed only for ``suspended_delay_s``."""
    suspended_delay_s: float = Field(default=600.0, ge=0)
    chatter_flips: int = Field(default=3, ge=2)
    """A point one of whose alarms is activated this many times within
    ``chatter_window_s`` is reported as chattering (ISA-18.2: 3 in 60 s)."""
    chatter_window_s: float = Field(default=60.0, gt=0)
    disabled: tuple[AlarmType, ...] = ()
    """Alarm types this deployment does not raise (e.g. ``["TREND"]``). Scenario tests
    use it to prove a check fails when the rule behind an expected alarm is gone.
    Disabling GATEWAY_OFFLINE does not bring back the STALE alarms it stands for."""
    models: tuple[Path, ...] = ()
    """Model files of normal operation (``hazwatch learn``): ANOMALY for their
    installations. Relative to the config file."""
    anomaly: AnomalySettings = AnomalySettings()


class Settings(_Section):
    """All settings. Build with :func:`load_settings`, which applies the environment."""

    registry: Path = Path("registry")
    mqtt: MqttSettings = MqttSettings()
    storage: StorageSettings = StorageSettings()
    journal: JournalSettings = JournalSettings()
    console: ConsoleSettings = ConsoleSettings()
    ingest: IngestSettings = IngestSettings()
    detectors: DetectorSettings = DetectorSettings()
    alerting: AlertingSettings = AlertingSettings()
    uplink: tuple[UplinkSettings, ...] = ()
    """``[[uplink]]``: forwarding to supervising platforms (docs/uplink.md)."""

    @field_validator("uplink")
    @classmethod
    def _unique_uplinks(cls, uplinks: tuple[UplinkSettings, ...]) -> tuple[UplinkSettings, ...]:
        return unique_names(uplinks)


def load_settings(
    path: Path | None = None,
    *,
    overrides: Mapping[str, Any] | None = None,
    environ: Mapping[str, str] | None = None,
) -> Settings:
    """Read ``path`` (TOML), apply ``HAZWATCH_*`` variables and ``overrides``, validate.

    ``overrides`` are dotted keys (``"storage.backend"``) that win over both; the CLI
    and tests use them. ``environ`` replaces ``os.environ`` (tests pass their own).
    Relative paths in the
    result are resolved against the config file's directory (or the working
    directory when there is no file). Raises ``ConfigError`` with the file and key.
    """
    data: dict[str, Any] = {}
    base = Path.cwd()
    source = "defaults"
    if path is not None:
        source = str(path)
        try:
            data = tomllib.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError as exc:
            raise ConfigError(f"{path}: config file not found") from exc
        except (OSError, UnicodeDecodeError) as exc:
            raise ConfigError(f"{path}: cannot read: {exc}") from exc
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"{path}: not valid TOML: {exc}") from exc
        base = path.resolve().parent
    env = os.environ if environ is None else environ
    for name, raw in sorted(env.items()):
        if name.startswith(ENV_PREFIX):
            keys = name[len(ENV_PREFIX) :].lower().split("__")
            _set_nested(data, keys, _env_value(raw), name)
    for dotted, value in (overrides or {}).items():
        _set_nested(data, dotted.split("."), value, dotted)
    try:
        settings = Settings.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(f"{source}: {_describe(exc)}") from exc
    return _resolve_paths(settings, base)


def _env_value(raw: str) -> Any:
    """Lists and tables come as JSON (``HAZWATCH_ALERTING__WEBHOOKS='["http://..."]'``)."""
    if raw.startswith(("[", "{")):
        try:
            return json.loads(raw)
        except json.JSONDecodeError:
            return raw
    return raw


def _set_nested(data: dict[str, Any], keys: list[str], value: Any, origin: str) -> None:
    node: dict[str, Any] | list[Any] = data
    for part in keys[:-1]:
        child = _child(node, part, origin)
        if not isinstance(child, dict | list):
            raise ConfigError(f"{origin}: {part!r} is a value, not a section")
        node = child
    if isinstance(node, list):
        node[_index(node, keys[-1], origin)] = value
    else:
        node[keys[-1]] = value


def _child(node: dict[str, Any] | list[Any], part: str, origin: str) -> Any:
    """A section, or an entry of a ``[[table]]`` list by number: the secret of the
    first uplink is ``HAZWATCH_UPLINK__0__SIGNATURE__SECRET``."""
    if isinstance(node, list):
        return node[_index(node, part, origin)]
    return node.setdefault(part, {})


def _index(entries: list[Any], part: str, origin: str) -> int:
    if not part.isdigit() or int(part) >= len(entries):
        raise ConfigError(f"{origin}: {part!r} is not an entry number (0 to {len(entries) - 1})")
    return int(part)


def _describe(exc: ValidationError) -> str:
    problems = []
    for err in exc.errors():
        where = ".".join(str(p) for p in err["loc"]) or "(top level)"
        msg = err["msg"].removeprefix("Value error, ")
        if err["type"] == "extra_forbidden":
            msg = "unknown key (check the spelling against docs/contract.md §4)"
        problems.append(f"{where}: {msg}")
    return "; ".join(problems)


def _resolve_paths(settings: Settings, base: Path) -> Settings:
    def resolve(p: Path) -> Path:
        return p if p.is_absolute() else base / p

    mqtt = settings.mqtt
    tls_files = {
        key: resolve(path)
        for key in ("ca_file", "cert_file", "key_file")
        if (path := getattr(mqtt, key)) is not None
    }
    return settings.model_copy(
        update={
            "mqtt": mqtt.model_copy(update=tls_files),
            "registry": resolve(settings.registry),
            "storage": settings.storage.model_copy(update={"path": resolve(settings.storage.path)}),
            "journal": settings.journal.model_copy(update={"path": resolve(settings.journal.path)}),
            "console": settings.console.model_copy(update={"db": resolve(settings.console.db)}),
            "ingest": settings.ingest.model_copy(
                update={"spool_path": resolve(settings.ingest.spool_path)}
            ),
            "detectors": settings.detectors.model_copy(
                update={"models": tuple(resolve(p) for p in settings.detectors.models)}
            ),
            "uplink": resolve_queue_paths(settings.uplink, resolve),
        }
    )
