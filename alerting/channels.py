"""The one place notifiers are built from the configuration.

Feeds first (``webhook1``..., ``mqtt``, ``historian``), then the channels for people that the config
and the registry enable (``console``, ``email``, ``sms``, ``dingtalk``, ``wecom``);
the :class:`~alerting.routing.Router` is built over the same names, so the journal's
outbox rows and the notifiers always agree. Every HTTP channel shares the injected
client and one SSRF guard (``[alerting] allow_private``); a webhook URL that is not
http(s) is a ``ConfigError`` naming the key.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TextIO

import httpx

from alerting.mail import EmailNotifier
from alerting.notifiers import (
    ConsoleNotifier,
    HistorianNotifier,
    MqttAlarmNotifier,
    Notifier,
    WebhookNotifier,
)
from alerting.robots import RobotNotifier
from alerting.routing import Router
from alerting.sms import SmsNotifier
from alerting.targets import TargetGuard
from hazwatch.alertpolicy import WebhookTarget
from hazwatch.errors import ConfigError
from hazwatch.models import Registry
from hazwatch.settings import Settings


@dataclass
class Channels:
    notifiers: list[Notifier]
    router: Router
    mqtt: MqttAlarmNotifier | None
    """The one notifier that is an async context manager (enter it before use)."""


def build_channels(
    settings: Settings,
    registry: Registry,
    http: httpx.AsyncClient,
    *,
    out: TextIO | None = None,
    mqtt: bool = True,
    historian: HistorianNotifier | None = None,
    source: str = "config",
) -> Channels:
    """Notifiers and router for ``settings``. ``out``: where the console notifier prints;
    ``mqtt``: publish on the alarm topic (tests without a broker leave it out);
    ``historian``: the alarm history into InfluxDB (the wiring's, with an InfluxDB
    sink)."""
    a = settings.alerting
    guard = TargetGuard(a.allow_private)
    feeds: list[Notifier] = []
    for n, entry in enumerate(a.webhooks, start=1):
        target = entry if isinstance(entry, WebhookTarget) else WebhookTarget(url=entry)
        try:
            feeds.append(
                WebhookNotifier(
                    target.url,
                    http,
                    name=f"webhook{n}",
                    secret=target.secret.get_secret_value(),
                    guard=guard,
                )
            )
        except ValueError as exc:
            raise ConfigError(f"{source}: alerting.webhooks.{n - 1}: {exc}") from exc
    mqtt_notifier = MqttAlarmNotifier(settings.mqtt) if mqtt else None
    if mqtt_notifier is not None:
        feeds.append(mqtt_notifier)
    if historian is not None:
        feeds.append(historian)
    router = Router(a, registry, [f.name for f in feeds], source=source)
    directory = router.directory
    people: dict[str, Notifier] = {
        "console": ConsoleNotifier(out, a.language),
        "email": EmailNotifier(a.email, directory),
        "sms": SmsNotifier(a.sms, http, directory, guard),
        "dingtalk": RobotNotifier("dingtalk", http, directory, guard),
        "wecom": RobotNotifier("wecom", http, directory, guard),
    }
    notifiers = feeds + [people[name] for name in router.people_channels]
    return Channels(notifiers=notifiers, router=router, mqtt=mqtt_notifier)
