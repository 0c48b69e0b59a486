"""Material handling: how wafers get from one tool to the next.

The tools' remote interfaces do not move wafers; a robot or an operator does.
:class:`SimHandling` moves them in the simulated world through the simulators'
control port. (On real tools an operator confirms each move; see
``viaform wafer moved``.)
"""

from __future__ import annotations

import asyncio

import structlog

from sequencer.line.sim_control import SimControlClient, SimControlError

log = structlog.get_logger("viaform.handling")


class HandlingError(RuntimeError):
    """A move that could not be made; the message says why (nothing was moved)."""


class SimHandling:
    """Moves wafers in the simulated world (``World.transfer``), one move at a time.

    A move is physically checked by the simulated tools (an oven running a
    program will not take a cassette, a load position holds one wafer, ...).
    Moves that fail because a tool is briefly busy are retried for up to
    ``retry_s`` wall seconds before :class:`HandlingError` is raised.
    """

    def __init__(self, client: SimControlClient, retry_s: float = 5.0) -> None:
        self.client = client
        self.retry_s = retry_s
        self._lock = asyncio.Lock()

    async def add_wafers(self, wafer_ids: list[str], film_um: float = 10.0) -> None:
        """Put the lot's coated wafers in the stocker (known ids are left as they are)."""
        async with self._lock:
            await asyncio.to_thread(self.client.add_wafers, wafer_ids, film_um)

    async def move(self, wafer_ids: list[str], to: str) -> None:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.retry_s
        async with self._lock:
            while True:
                try:
                    await asyncio.to_thread(self.client.transfer, list(wafer_ids), to)
                    log.debug("handling.moved", wafers=wafer_ids, to=to)
                    return
                except SimControlError as exc:
                    if loop.time() >= deadline:
                        what = f"cannot move {', '.join(wafer_ids)} to {to}: {exc}"
                        raise HandlingError(what) from None
                await asyncio.sleep(0.05)

    async def world(self) -> dict:
        async with self._lock:
            return await asyncio.to_thread(self.client.world)

    def close(self) -> None:
        self.client.close()
