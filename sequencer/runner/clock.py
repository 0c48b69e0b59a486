"""The sequencer's scaled clock: tool seconds on a wall clock that survives a restart.

``now()`` is ``time.time() * time_scale``: an absolute, persistent scale, so a
develop-end time written to the journal before a crash is still comparable with
``now()`` after the restart (queue times keep running while the PC is down).
At ``time_scale`` 1.0 (real tools) it is plain epoch seconds.
"""

from __future__ import annotations

import asyncio
import time


class SeqClock:
    """Tool time for the sequencer: ``time_scale`` tool seconds per wall second."""

    def __init__(self, time_scale: float = 1.0) -> None:
        if not time_scale > 0:
            raise ValueError(f"time_scale must be > 0, got {time_scale!r}")
        self.time_scale = float(time_scale)

    def now(self) -> float:
        """Tool seconds (scaled epoch)."""
        return time.time() * self.time_scale

    def wall(self) -> float:
        """Wall seconds (epoch), for the wall-clock makespan."""
        return time.time()

    def to_wall(self, sim_s: float) -> float:
        return max(0.0, sim_s) / self.time_scale

    async def sleep(self, sim_s: float) -> None:
        """Sleep ``sim_s`` tool seconds."""
        await asyncio.sleep(self.to_wall(sim_s))
