"""A scaled clock: ``time_scale`` simulated seconds per wall second.

All three simulators share one instance, so a process that takes 90 s of tool
time takes ``90 / time_scale`` wall seconds on every tool alike.
"""

from __future__ import annotations

import asyncio
import time


class ScaledClock:
    """Simulated time in seconds since the clock was made, advancing at ``time_scale``."""

    def __init__(self, time_scale: float = 1.0) -> None:
        if not time_scale > 0:
            raise ValueError(f"time_scale must be > 0, got {time_scale!r}")
        self.time_scale = float(time_scale)
        self._wall0 = time.monotonic()

    def now(self) -> float:
        """Simulated seconds since start."""
        return (time.monotonic() - self._wall0) * self.time_scale

    def to_wall(self, sim_seconds: float) -> float:
        """Wall seconds that ``sim_seconds`` of tool time take."""
        return sim_seconds / self.time_scale

    async def sleep(self, sim_seconds: float) -> None:
        """Sleep for ``sim_seconds`` of tool time."""
        await asyncio.sleep(max(0.0, sim_seconds) / self.time_scale)
