"""Detectors to alarms: the one path the live service and the backtest share.

Readings, gateway statuses and clock ticks go into the :class:`DetectorEngine`; the
conditions it reports go into the :class:`AlarmService`. "Now" is the injected
clock's: the service's own clock (wall, or a ``ScaledClock`` for fast runs), or in a
backtest a ``ManualClock`` set to each recorded message's receive time. Because
``hazwatch.app`` and ``simulators.backtest`` both drive this object, a backtest
raises what the service would, with no second copy of the wiring to drift.
"""

from __future__ import annotations

from collections.abc import Sequence

import structlog

from alerting.service import AlarmService
from detectors.engine import DetectorEngine
from detectors.normal_model import InstallationModel, check_models, read_model_file
from hazwatch.clock import Clock
from hazwatch.metrics import Metrics
from hazwatch.models import Condition, GatewayStatus, Reading, Registry
from hazwatch.settings import DetectorSettings

log = structlog.get_logger(__name__)


class DetectorFeed:
    """Feeds the engine and hands its condition changes to the alarm service.

    Each method returns the condition changes it handed over (empty: nothing changed).
    With ``journal_in_background`` (the live service) they are submitted to alerting,
    whose journal commits them in its own thread without holding the event loop; the
    backtest records them before going on.
    """

    def __init__(
        self,
        registry: Registry,
        settings: DetectorSettings,
        alarms: AlarmService,
        clock: Clock,
        metrics: Metrics | None = None,
        *,
        journal_in_background: bool = False,
    ) -> None:
        self.engine = DetectorEngine(
            registry,
            settings,
            clock.now_ms(),
            metrics=metrics,
            models=load_models(settings, registry),
        )
        self._alarms = alarms
        self._record = alarms.submit if journal_in_background else alarms.handle
        self._clock = clock

    def readings(self, readings: Sequence[Reading]) -> list[Condition]:
        """Readings that passed validation, received now."""
        return self._handle(self.engine.update(readings, self._clock.now_ms()))

    def gateway_status(self, status: GatewayStatus) -> list[Condition]:
        """A gateway's ``online``/``offline`` status: GATEWAY_OFFLINE raised or cleared."""
        return self._handle(self.engine.gateway_status(status, self._clock.now_ms()))

    def tick(self) -> list[Condition]:
        """Let time pass: staleness, gateway silence, the chattering window."""
        return self._handle(self.engine.tick(self._clock.now_ms()))

    def _handle(self, conditions: list[Condition]) -> list[Condition]:
        if conditions:
            self._record(conditions)
        return conditions


def load_models(settings: DetectorSettings, registry: Registry) -> list[InstallationModel]:
    """``[detectors] models``: read, checked against the registry (``ModelError`` —
    one line naming the file and the point — refuses the start)."""
    files = [read_model_file(path) for path in settings.models]
    for note in check_models(files, registry):
        log.info("model_registry_changed", note=note)
    return [model for f in files for model in f.models]
