"""The last value of every point, for the console's point lists and enterprise pages.

Kept in memory and updated after each stored batch. "Last" means the newest by the
reading's own time, not by arrival: a gateway that flushes its backlog after an
outage must not overwrite the current value with an old one.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from types import MappingProxyType

from hazwatch.models import Reading


class LatestValues:
    def __init__(self) -> None:
        # enterprise -> tag -> reading: no (enterprise, tag) tuple kept per point
        self._values: dict[str, dict[str, Reading]] = {}

    def update(self, readings: Iterable[Reading]) -> None:
        """Keep each reading that is at least as new as the one held for its point."""
        enterprise = None
        values: dict[str, Reading] = {}
        for reading in readings:
            if reading.enterprise != enterprise:  # a batch is mostly one enterprise
                enterprise = reading.enterprise
                values = self._values.setdefault(enterprise, {})
            held = values.get(reading.tag)
            if held is None or reading.ts_ms >= held.ts_ms:
                values[reading.tag] = reading

    def get(self, enterprise: str, tag: str) -> Reading | None:
        return self._values.get(enterprise, {}).get(tag)

    def enterprise(self, enterprise: str) -> Mapping[str, Reading]:
        """tag -> last reading of one enterprise (read-only; empty if none yet)."""
        return MappingProxyType(self._values.get(enterprise, {}))

    def __len__(self) -> int:
        return sum(map(len, self._values.values()))
