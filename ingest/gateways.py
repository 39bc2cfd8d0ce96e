"""What the platform knows about each gateway: alive?, online?, losing messages?

Fed every decoded message (rejected ones too: a gateway that sends garbage is still
alive). Three things are tracked per gateway:

- ``last_seen_ms`` (receive time of its newest message; the gauge
  ``hazwatch_gateway_last_seen_seconds``) and ``messages``;
- ``state`` from its retained ``status`` topic (``online``/``offline``, the MQTT will),
  ``unknown`` until one arrives; ``metrics.gateways_online`` counts the online ones;
- ``seq``: gaps are the numbers missing between the last seq and a new, higher one
  (messages lost between gateway and platform); repeats are messages whose seq is
  not above the last (redeliveries, or a gateway replaying). A repeat does not move
  the baseline. A gateway that restarts announces itself ``online`` and may count
  from 0 again, so an ``online`` status resets the baseline.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Literal

from prometheus_client import Gauge

from hazwatch.metrics import Metrics
from hazwatch.models import GatewayState
from ingest.codec import Decoded

GatewayStateName = Literal["online", "offline", "unknown"]


@dataclass(slots=True)
class GatewayInfo:
    enterprise: str
    gateway: str
    state: GatewayStateName = "unknown"
    last_seen_ms: int | None = None
    last_seq: int | None = None
    seq_gaps: int = 0
    seq_repeats: int = 0
    messages: int = 0


class GatewayTracker:
    def __init__(self, metrics: Metrics) -> None:
        self._metrics = metrics
        self._gateways: dict[tuple[str, str], GatewayInfo] = {}
        self._last_seen: dict[tuple[str, str], Gauge] = {}  # labelled children, looked up once
        self._online = 0

    def observe(self, decoded: Decoded) -> None:
        """Account one message; messages whose topic named no gateway are ignored."""
        if decoded.enterprise is None or decoded.gateway is None:
            return
        key = (decoded.enterprise, decoded.gateway)
        info = self._gateways.get(key)
        if info is None:
            info = self._gateways[key] = GatewayInfo(decoded.enterprise, decoded.gateway)
            self._last_seen[key] = self._metrics.gateway_last_seen.labels(*key)
        info.messages += 1
        if info.last_seen_ms is None or decoded.received_ms > info.last_seen_ms:
            info.last_seen_ms = decoded.received_ms
            self._last_seen[key].set(decoded.received_ms / 1000)
        if decoded.status is not None:
            self._set_state(info, decoded.status.state)
        if decoded.seq is not None:
            self._count_seq(info, decoded.seq)

    def gateways(self, enterprise: str | None = None) -> list[GatewayInfo]:
        """Copies (callers cannot change the tracker), sorted by enterprise and gateway."""
        return [
            dataclasses.replace(info)
            for key, info in sorted(self._gateways.items())
            if enterprise is None or key[0] == enterprise
        ]

    def _set_state(self, info: GatewayInfo, state: GatewayState) -> None:
        was_online = info.state == "online"
        info.state = "online" if state is GatewayState.ONLINE else "offline"
        if state is GatewayState.ONLINE:
            info.last_seq = None  # a (re)started gateway may count from the start again
        self._online += (info.state == "online") - was_online
        self._metrics.gateways_online.set(self._online)

    def _count_seq(self, info: GatewayInfo, seq: int) -> None:
        labels = (info.enterprise, info.gateway)
        if info.last_seq is None:
            info.last_seq = seq
        elif seq > info.last_seq:
            missing = seq - info.last_seq - 1
            if missing:
                info.seq_gaps += missing
                self._metrics.seq_gaps.labels(*labels).inc(missing)
            info.last_seq = seq
        else:
            info.seq_repeats += 1
            self._metrics.seq_repeats.labels(*labels).inc()
