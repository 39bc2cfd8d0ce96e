"""Is the broker there? An ingest cut off from it for long is a SYSTEM alarm.

While the ingest's connection is down nothing is lost — gateways' messages wait in
the broker for hazwatch's persistent session, and the gateways buffer what the broker
does not take — but nothing is judged either: no reading reaches the detectors, so
no alarm can be raised. A warning in the log is not enough for that. So a connection
that stays down (lost, or never made since the start) for ``[mqtt]
disconnect_alarm_s`` raises the ``broker_disconnected`` SYSTEM alarm, and the next
successful subscribe clears it. A short outage (a broker restart of a few seconds)
raises nothing: the alarm is for an outage an operator has to look at.

A connection of its own (a Sparkplug host's, :mod:`ingest.session`) reports under
``broker_disconnected:<its name>``.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import structlog

from hazwatch.clock import Clock
from hazwatch.models import Condition, system_condition

log = structlog.get_logger(__name__)

DISCONNECTED_TAG = "broker_disconnected"


class BrokerWatch:
    """``lost()`` whenever the connection is down, ``connected()`` once subscribed."""

    def __init__(
        self,
        broker: str,
        alarm_after_s: float,
        clock: Clock,
        on_system: Callable[[list[Condition]], object] | None,
        *,
        name: str = "",
    ) -> None:
        self.tag = f"{DISCONNECTED_TAG}:{name}" if name else DISCONNECTED_TAG
        self._broker = broker
        self._alarm_after_s = alarm_after_s
        self._clock = clock
        self._on_system = on_system
        self._timer: asyncio.TimerHandle | None = None
        self._since_ms = 0
        self.raised = False
        """The alarm is active (raised, not yet cleared)."""

    def lost(self) -> None:
        """The connection is down: the alarm goes off unless it is back in time."""
        if self._timer is not None or self.raised:
            return  # the outage is already being timed
        self._since_ms = self._clock.now_ms()
        self._timer = asyncio.get_running_loop().call_later(self._alarm_after_s, self._raise)

    def connected(self) -> None:
        """Subscribed again: the outage is over."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if self.raised:
            self.raised = False
            down_s = (self._clock.now_ms() - self._since_ms) / 1000
            log.info("mqtt_broker_back", broker=self._broker, down_s=round(down_s, 1))
            self._report(
                active=False,
                value=down_s,
                message=f"connected to the broker {self._broker} again after {down_s:.0f} s",
            )

    def close(self) -> None:
        """Stopping: no alarm for an outage nobody is waiting out any more."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _raise(self) -> None:
        self._timer = None
        self.raised = True
        down_s = (self._clock.now_ms() - self._since_ms) / 1000
        log.error("mqtt_broker_unreachable", broker=self._broker, down_s=round(down_s, 1))
        self._report(
            active=True,
            value=down_s,
            message=(
                f"no connection to the broker {self._broker} for {self._alarm_after_s:g} s: "
                "no reading is received or judged (gateways' messages wait in the broker)"
            ),
        )

    def _report(self, *, active: bool, value: float, message: str) -> None:
        if self._on_system is not None:
            self._on_system(
                [
                    system_condition(
                        self.tag,
                        active=active,
                        ts_ms=self._clock.now_ms(),
                        message=message,
                        value=value,
                        limit=self._alarm_after_s,
                    )
                ]
            )
