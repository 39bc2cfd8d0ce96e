"""The ``[alerting]`` settings: who is told, through which channels, who is chased.

Part of :class:`~hazwatch.settings.Settings` (``[alerting]`` of the config file), kept
here because it is most of the configuration. docs/alerting.md explains every key
with a worked example; the defaults below make sense out of the box:

- **routes** (first match wins): which roles hear of an alarm at once, and the
  escalation tiers (督办) on unacknowledged time and on overdue feedback;
- **roles**: ``principal``, ``technical``, ``operations``, ``duty`` (the enterprise's
  ``[contacts.*]``), ``grid_officer`` and ``regulator`` (its grid in ``grids.toml``),
  ``operators`` (the platform's own, ``[[alerting.operators]]``);
- **channels for people**: ``console`` (prints, for the demo), ``email``, ``sms``,
  ``dingtalk``, ``wecom`` — and the feeds every event goes to (``webhooks``, the MQTT
  alarm topic);
- **feedback** deadlines per priority, **flood** control, **delivery** retries.

A route naming an unknown role or channel, or a channel that is not configured, is a
``ConfigError`` naming the key (``alerting.routes.2.notify: ...``) at start.
"""

from __future__ import annotations

from typing import Literal, Self

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator, model_validator

from hazwatch.models import AlarmType, Contact, Priority, Robots

ROLES = ("principal", "technical", "operations", "duty", "grid_officer", "regulator", "operators")
"""Who a route can notify: the enterprise's contacts, its grid's people, the platform's."""
PEOPLE_CHANNELS = ("console", "email", "sms", "dingtalk", "wecom")
"""Channels that reach people (routed, escalated, flood-controlled)."""

_A = AlarmType


class _Section(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


def _known_roles(roles: tuple[str, ...]) -> tuple[str, ...]:
    unknown = [r for r in roles if r not in ROLES]
    if unknown:
        raise ValueError(f"unknown role {unknown[0]!r} (expected one of {', '.join(ROLES)})")
    return roles


class Tier(_Section):
    """One escalation tier: after ``after_min`` minutes, ``notify`` these roles."""

    after_min: float = Field(ge=0)
    notify: tuple[str, ...] = Field(min_length=1)

    _roles = field_validator("notify")(_known_roles)


class Route(_Section):
    """Which alarms (all listed criteria must match; an empty list matches anything)
    go to whom, and how they are chased."""

    name: str = Field(min_length=1)
    types: tuple[AlarmType, ...] = ()
    priorities: tuple[Priority, ...] = ()
    grades: tuple[int, ...] = ()
    """Major hazard grade of the alarm's installation, 1 (highest) .. 4."""
    notify: tuple[str, ...] = Field(min_length=1)
    """Told at once."""
    channels: tuple[str, ...] = ()
    """Channels for people; empty: every one configured."""
    escalate: tuple[Tier, ...] = ()
    """Tiers on unacknowledged time, counted from the alarm's (re)activation."""
    remind_every_min: float | None = Field(default=None, gt=0)
    """Reminders to everyone told so far, while the alarm is unacknowledged."""
    overdue: tuple[Tier, ...] = ()
    """Tiers on missing feedback, counted from the feedback deadline."""

    _roles = field_validator("notify")(_known_roles)

    @field_validator("channels")
    @classmethod
    def _known_channels(cls, channels: tuple[str, ...]) -> tuple[str, ...]:
        unknown = [c for c in channels if c not in PEOPLE_CHANNELS]
        if unknown:
            raise ValueError(
                f"unknown channel {unknown[0]!r} (expected one of {', '.join(PEOPLE_CHANNELS)})"
            )
        return channels

    @field_validator("escalate", "overdue")
    @classmethod
    def _in_order(cls, tiers: tuple[Tier, ...]) -> tuple[Tier, ...]:
        times = [t.after_min for t in tiers]
        if times != sorted(times):
            raise ValueError(f"tiers must be in increasing after_min order, got {times}")
        return tiers


_CRITICAL = (
    Tier(after_min=5, notify=("principal", "grid_officer")),
    Tier(after_min=15, notify=("regulator",)),
)
_OVERDUE = (
    Tier(after_min=0, notify=("principal", "grid_officer")),
    Tier(after_min=24 * 60, notify=("regulator",)),
)

DEFAULT_ROUTES = (
    Route(
        name="major hazard, critical",
        types=(_A.HH, _A.LL, _A.SUSPENDED_LOAD),
        grades=(1, 2),
        notify=("duty", "principal", "grid_officer"),
        escalate=_CRITICAL,
        remind_every_min=5,
        overdue=_OVERDUE,
    ),
    Route(
        name="critical",
        types=(_A.HH, _A.LL, _A.SUSPENDED_LOAD),
        notify=("duty", "operations"),
        escalate=_CRITICAL,
        remind_every_min=5,
        overdue=_OVERDUE,
    ),
    Route(
        name="process warning",
        types=(_A.H, _A.L, _A.ROC, _A.TREND),
        notify=("duty",),
        escalate=(Tier(after_min=15, notify=("operations",)),),
        remind_every_min=15,
        overdue=(Tier(after_min=0, notify=("operations", "principal")),),
    ),
    Route(
        name="instrument and link",
        types=(_A.FAULT, _A.STUCK, _A.STALE, _A.GATEWAY_OFFLINE),
        notify=("technical",),
        escalate=(
            Tier(after_min=60, notify=("operations",)),
            Tier(after_min=240, notify=("grid_officer",)),
        ),
    ),
    Route(
        name="platform",
        types=(_A.SYSTEM,),
        notify=("operators",),
        escalate=(Tier(after_min=15, notify=("operators",)),),
        remind_every_min=30,
    ),
    Route(name="everything else", notify=("duty",)),
)
"""The routes when the config lists none (docs/alerting.md shows them as TOML)."""


class FeedbackSettings(_Section):
    due_min: dict[Priority, float] = {Priority.CRITICAL: 24 * 60, Priority.HIGH: 72 * 60}
    """Feedback deadline per priority, from the alarm's raise (交办). Priorities not
    listed owe no feedback: they close when cleared and acknowledged."""
    verifiers: tuple[str, ...] = ("grid_officer",)
    """Told when feedback arrives, to verify it (核查)."""

    _roles = field_validator("verifiers")(_known_roles)

    @field_validator("due_min")
    @classmethod
    def _positive(cls, due: dict[Priority, float]) -> dict[Priority, float]:
        for priority, minutes in due.items():
            if not minutes > 0:
                raise ValueError(f"{priority}: expected minutes > 0, got {minutes}")
        return due


class FloodSettings(_Section):
    """Per recipient (a person's address, or a group robot) and enterprise, the first
    ``digest_after`` notifications within ``window_s`` go one by one, later ones as one
    digest when the window ends; no recipient gets more than ``max_per_minute``
    messages a minute. Critical alarms bypass both."""

    digest_after: int = Field(default=3, ge=1)
    window_s: float = Field(default=60, gt=0)
    max_per_minute: int = Field(default=10, ge=1)
    """DingTalk throttles a robot for 10 minutes past 20 messages a minute."""


class EmailSettings(_Section):
    """SMTP submission (aiosmtplib). Enabled when ``host`` is set."""

    host: str = ""
    port: int = Field(default=587, ge=1, le=65535)
    security: Literal["starttls", "tls", "none"] = "starttls"
    """``starttls`` (port 587), ``tls`` (implicit, port 465), ``none`` (a local relay)."""
    username: str = ""
    password: SecretStr = SecretStr("")
    sender: str = "hazwatch@localhost"
    timeout_s: float = Field(default=10, gt=0)
    ca_file: str = ""
    """A CA bundle to trust for the relay's certificate (a private CA); empty: the system's."""


class SmsSettings(_Section):
    """An HTTP SMS gateway. Enabled when ``url`` is set. ``body`` is a template:
    ``{phone}``, ``{text}``, ``{key}`` (idempotency key) are replaced, JSON-escaped when
    ``content_type`` is JSON, form-escaped otherwise."""

    url: str = ""
    method: Literal["POST", "PUT"] = "POST"
    content_type: str = "application/json"
    body: str = '{"to": "{phone}", "text": "{text}", "id": "{key}"}'
    headers: dict[str, SecretStr] = {}
    """E.g. ``{Authorization = "Bearer ..."}`` — better in the environment."""
    max_chars: int = Field(default=300, ge=70)


class WebhookTarget(_Section):
    url: str
    secret: SecretStr = SecretStr("")
    """HMAC-SHA256 key: the body is signed in ``X-Hazwatch-Signature``."""


class AlertingSettings(_Section):
    webhooks: tuple[str | WebhookTarget, ...] = ()
    """URLs (or ``{url, secret}`` tables) that receive every alarm event as a JSON POST."""
    webhook_timeout_s: float = Field(default=5.0, gt=0)
    language: Literal["zh-CN", "en"] = "zh-CN"
    """Of the messages to people."""
    timezone: str = "Asia/Shanghai"
    """Times in messages are local to this zone (IANA name)."""
    console_url: str = ""
    """The console's address in messages; empty: ``http://<console.listen>/``."""
    allow_private: tuple[str, ...] = ()
    """Hosts or networks (CIDR) that webhook, robot and SMS URLs may point at although
    private, loopback or link-local (SSRF guard); e.g. ``["10.20.0.0/16"]``."""
    console_notifier: bool = False
    """Print every message to people on standard output (the demo)."""
    email: EmailSettings = EmailSettings()
    sms: SmsSettings = SmsSettings()
    operators: tuple[Contact, ...] = ()
    """The platform's own operators: SYSTEM alarms go to them."""
    robots: Robots = Robots()
    """The platform operators' group robots."""
    routes: tuple[Route, ...] = DEFAULT_ROUTES
    feedback: FeedbackSettings = FeedbackSettings()
    flood: FloodSettings = FloodSettings()
    max_attempts: int = Field(default=24, ge=1)
    """Delivery attempts of one notification before it is dead-lettered (with the
    backoff of 1 s doubling to 5 min: about an hour and a half)."""
    channel_alarm_s: float = Field(default=120, gt=0)
    """A channel failing this long raises a SYSTEM alarm (through the other channels)."""
    shelve_max_min: float = Field(default=8 * 60, gt=0)
    """The longest an operator may shelve an alarm."""

    @model_validator(mode="after")
    def _channels_configured(self) -> Self:
        enabled = self.people_channels
        for n, route in enumerate(self.routes):
            for channel in route.channels:
                if channel not in enabled:
                    raise ValueError(
                        f"routes.{n}.channels: channel {channel!r} is not configured "
                        f"({_HOW_TO_ENABLE[channel]})"
                    )
        return self

    @property
    def people_channels(self) -> tuple[str, ...]:
        """The channels for people this configuration enables, in a fixed order."""
        on = {
            "console": self.console_notifier,
            "email": bool(self.email.host),
            "sms": bool(self.sms.url),
            "dingtalk": True,  # robots come from the registry (and [alerting.robots])
            "wecom": True,
        }
        return tuple(c for c in PEOPLE_CHANNELS if on[c])


_HOW_TO_ENABLE = {
    "console": "set [alerting] console_notifier = true",
    "email": "[alerting.email] host is empty",
    "sms": "[alerting.sms] url is empty",
    "dingtalk": "",
    "wecom": "",
}
