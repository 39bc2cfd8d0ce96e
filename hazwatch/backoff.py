"""Jittered exponential backoff, the one retry pacing every stage uses.

Retry ``n`` waits ``min(max, initial·2ⁿ⁻¹)`` scaled by a random factor in [0.5, 1)
("equal jitter"), so many failures at once do not retry at once, and a dead peer is
never hammered in a hot loop. Used by the MQTT source's reconnects, the sink
writer's retries and the alarm outbox.

>>> import random
>>> b = Backoff(initial_ms=100, max_ms=5_000)
>>> rng = random.Random(1)
>>> 50 <= b.delay_ms(1, rng) <= 100, 2_500 <= b.delay_ms(30, rng) <= 5_000
(True, True)
"""

from __future__ import annotations

import random
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Backoff:
    initial_ms: int = 1_000
    max_ms: int = 300_000

    def __post_init__(self) -> None:
        if not 0 < self.initial_ms <= self.max_ms:
            raise ValueError(
                f"backoff needs 0 < initial_ms <= max_ms, got {self.initial_ms}, {self.max_ms}"
            )

    def delay_ms(self, attempt: int, rng: random.Random | None = None) -> int:
        """The wait after failed attempt number ``attempt`` (1-based)."""
        ceiling = min(self.max_ms, self.initial_ms * 2 ** min(max(attempt, 1) - 1, 40))
        fraction = (rng or _RNG).random()
        return max(1, int(ceiling * (0.5 + 0.5 * fraction)))

    def delay_s(self, attempt: int, rng: random.Random | None = None) -> float:
        return self.delay_ms(attempt, rng) / 1000


_RNG = random.Random()  # noqa: S311 - jitter, not secrets
