"""Start the simulated line: the world, the clock, the tools, their transports, the control port.

:class:`SimStack` runs in an asyncio loop (``viaform sim`` runs it in the main
thread); :class:`SimThread` runs one on a background thread for tests and for
``viaform demo``.
"""

from __future__ import annotations

import asyncio
import importlib
import threading
from collections.abc import Awaitable, Callable, Iterable
from concurrent.futures import Future
from typing import Any, TypeVar

from .clock import ScaledClock
from .control import ControlServer
from .faults import Faults
from .world import World

T = TypeVar("T")

TOOLS = ("exposure", "oven", "etcher")  # the kinds, and the classic line's tool names
_CLASSES = {
    "exposure": ("simulators.exposure", "ExposureSim"),
    "oven": ("simulators.oven", "OvenSim"),
    "etcher": ("simulators.etcher", "EtcherSim"),
}


class SimStack:
    """The simulators of one line, on one world and one clock.

    ``line`` maps each tool's name to its kind (default: the classic three, each named by
    its kind); ``ports`` maps a tool's name (and "control") to a TCP port, 0 or absent =
    any free one; ``only`` starts only the tools named. Each endpoint says its ``kind``.
    """

    def __init__(
        self,
        time_scale: float = 1.0,
        *,
        host: str = "127.0.0.1",
        ports: dict[str, int] | None = None,
        only: Iterable[str] | None = None,
        seed: int | None = None,
        etcher_pty: bool = True,
        oven_rtu: bool = True,
        line: dict[str, str] | None = None,
    ) -> None:
        kinds = dict(line) if line is not None else {t: t for t in TOOLS}
        bad = {t: k for t, k in kinds.items() if k not in TOOLS}
        if bad:
            raise ValueError(f"unknown kind(s) {bad}; known: {', '.join(TOOLS)}")
        chosen = list(kinds if only is None else only)
        unknown = [t for t in chosen if t not in kinds]
        if unknown:
            raise ValueError(f"unknown tool(s) {unknown}; known: {', '.join(kinds)}")
        self.host = host
        self.kinds = {t: kinds[t] for t in chosen}
        self.ports = {"control": 0, **(ports or {})}
        self.clock = ScaledClock(time_scale)
        self.world = World(self.clock)
        self.faults = {t: Faults(t, kind=k) for t, k in self.kinds.items()}
        self.tools: dict[str, Any] = {}
        self.endpoints: dict[str, dict[str, Any]] = {}
        self._servers: list[Any] = []
        self._etcher_pty = etcher_pty
        self._oven_rtu = oven_rtu
        for i, (tool, kind) in enumerate(self.kinds.items()):
            module, name = _CLASSES[kind]
            cls = getattr(importlib.import_module(module), name)
            tool_seed = None if seed is None else seed + i
            self.tools[tool] = cls(self.world, self.clock, self.faults[tool], rng_seed=tool_seed,
                                   name=tool)
        self.control = ControlServer(self.world, self.faults, lambda: self.endpoints)

    async def start(self) -> dict[str, dict[str, Any]]:
        for tool, kind in self.kinds.items():
            port = self.ports.get(tool, 0)
            ep = await self._STARTS[kind](self, tool, port)
            self.endpoints[tool] = {**ep, "kind": kind}
        control = await self.control.start(self.host, self.ports["control"])
        self.endpoints["control"] = {"tcp": control}
        return self.endpoints

    async def _start_exposure(self, tool: str, port: int) -> dict[str, Any]:
        from .scpi import ScpiServer

        server = ScpiServer(self.tools[tool], self.faults[tool], name=tool)
        self._servers.append(server)
        return {"tcp": await server.start_tcp(self.host, port)}

    async def _start_etcher(self, tool: str, port: int) -> dict[str, Any]:
        from .scpi import ScpiServer

        server = ScpiServer(self.tools[tool], self.faults[tool], terminator="\r\n", name=tool)
        self._servers.append(server)
        ep: dict[str, Any] = {"tcp": await server.start_tcp(self.host, port)}
        if self._etcher_pty:
            ep["pty"] = await server.start_pty()
        return ep

    async def _start_oven(self, tool: str, port: int) -> dict[str, Any]:
        oven = self.tools[tool]
        self._servers.append(oven)
        return dict(await oven.start(self.host, port, rtu=self._oven_rtu))

    #: a kind → how its simulator is served (SCPI over TCP (+ a pty), Modbus TCP (+ RTU))
    _STARTS: dict[str, Callable[[SimStack, str, int], Awaitable[dict[str, Any]]]] = {
        "exposure": _start_exposure, "etcher": _start_etcher, "oven": _start_oven}

    async def stop(self) -> None:
        await self.control.stop()
        for server in reversed(self._servers):
            await server.stop()
        self._servers.clear()


class SimThread:
    """A :class:`SimStack` on its own event-loop thread; a context manager.

    Attributes mirror the stack's (``endpoints``, ``world``, ``clock``,
    ``faults``, ``tools``); touch the world or faults through :meth:`call` so
    the change happens on the simulators' thread.
    """

    def __init__(self, time_scale: float = 1.0, **kwargs: Any) -> None:
        self._kwargs = kwargs
        self._time_scale = time_scale
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._ready = threading.Event()
        self._error: BaseException | None = None
        self._stop: asyncio.Event | None = None
        self.stack: SimStack | None = None

    def __enter__(self) -> SimThread:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="viaform-sims", daemon=True)
        self._thread.start()
        if not self._ready.wait(15):
            raise RuntimeError("simulators did not start within 15 s")
        if self._error:
            raise RuntimeError(f"simulators failed to start: {self._error}") from self._error

    def _run(self) -> None:
        self._loop = asyncio.new_event_loop()
        try:
            self._loop.run_until_complete(self._main())
        finally:
            self._loop.close()

    async def _main(self) -> None:
        self._stop = asyncio.Event()
        try:
            self.stack = SimStack(self._time_scale, **self._kwargs)
            await self.stack.start()
        except BaseException as exc:  # reported to the starting thread
            self._error = exc
            self._ready.set()
            return
        self._ready.set()
        await self._stop.wait()
        await self.stack.stop()

    def stop(self) -> None:
        if self._loop and self._stop and self._thread and self._thread.is_alive():
            self._loop.call_soon_threadsafe(self._stop.set)
            self._thread.join(10)

    def call(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """Run ``fn(*args, **kwargs)`` on the simulators' thread and return its result."""
        assert self._loop is not None
        done: Future[T] = Future()

        def run() -> None:
            try:
                done.set_result(fn(*args, **kwargs))
            except BaseException as exc:
                done.set_exception(exc)

        self._loop.call_soon_threadsafe(run)
        return done.result(timeout=10)

    def __getattr__(self, name: str) -> Any:
        if name in ("endpoints", "world", "clock", "faults", "tools") and self.stack is not None:
            return getattr(self.stack, name)
        raise AttributeError(name)
