"""Plain-Python fakes of the three tools and material handling for the sequencer's unit tests.

Each fake runs its manual's state sequence on the sequencer's scaled clock (so
durations are tool seconds) and can be scripted: an alarm in a given state,
a CommsError on a given call (``"before"`` = nothing happened, ``"after"`` =
the command ran and the reply was lost), a tool that stays down, a reboot.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from types import SimpleNamespace
from typing import Any

from drivers.errors import CommsError, ToolRejected
from sequencer.process.recipes import (
    CureRecipe,
    CureSegment,
    EtchRecipe,
    ExposureRecipe,
    Flow,
    Lot,
    LotWafer,
)
from sequencer.runner.clock import SeqClock
from sequencer.runner.protocols import ToolSet
from sequencer.runner.steps import SequencerConfig

SCALE = 5000.0


def fast_config(**kw: Any) -> SequencerConfig:
    base = dict(poll_s={"exposure": 5.0, "etcher": 5.0, "oven": 30.0}, margin_s=60.0,
                tool_down_s=300.0, reconnect_attempts=3, reconnect_backoff_wall=0.001,
                reconnect_backoff_max_wall=0.005)
    base.update(kw)
    return SequencerConfig(**base)


def flow(batch_size: int = 25, cure: str = "CURE-T", endpoint: bool = False) -> Flow:
    segs = (CureSegment(10.0, 150.0, 10), CureSegment(10.0, 320.0, 20))
    return Flow("FLOW-T", "A", ExposureRecipe("EXP-T"),
                CureRecipe(cure, batch_size=batch_size, segments=segs),
                EtchRecipe("ETCH-T", endpoint=endpoint))


def lot(lot_id: str, n: int, fl: Flow | None = None) -> Lot:
    return Lot(lot_id, fl or flow(), tuple(LotWafer(i + 1, f"{lot_id}-{i + 1:02d}")
                                         for i in range(n)))


class Crash(BaseException):
    """The sequencer's PC dies here (raised through everything, like a power cut)."""


class _Faulty:
    """Comms faults: ``fail[method] = "before" | "after"`` (once); ``down`` = every call.
    ``crash[method] = "before" | "after"``: raise :class:`Crash` (the host dies)."""

    name = ""

    def __init__(self, clock: SeqClock) -> None:
        self.clock = clock
        self.fail: dict[str, str] = {}
        self.crash: dict[str, str] = {}
        self.down = False
        self.calls: list[str] = []
        self.connects = 0

    def _enter(self, method: str) -> str | None:
        if self.down:
            raise CommsError("link down", tool=self.name)
        self.calls.append(method)
        if self.crash.get(method) == "before":
            del self.crash[method]
            raise Crash(method)
        when = self.fail.pop(method, None)
        if when == "before":
            raise CommsError(f"{method}: timeout", tool=self.name)
        if self.crash.get(method) == "after":
            del self.crash[method]
            return "crash"
        return when

    def connect(self) -> None:
        if self.down:
            raise CommsError("refused", tool=self.name)
        self.connects += 1

    def close(self) -> None:
        pass

    def now(self) -> float:
        return self.clock.now()


class _ScpiFake(_Faulty):
    """A timed state machine: ``durations[state]`` then ``nxt[state]``."""

    durations: dict[str, float] = {}
    nxt: dict[str, str] = {}

    def __init__(self, clock: SeqClock) -> None:
        super().__init__(clock)
        self._state, self._until = "IDLE", 0.0
        self.wafer: str | None = None
        self.boot = 7
        self.job_no = 0
        self.jobs: list[tuple[int, str, str, str]] = []  # (no, wafer, kind, status)
        self.counts: dict[str, int] = {}
        self.alarm_in: dict[str, str] = {}  # state -> alarm raised half-way through it
        self.active_alarms: tuple[str, ...] = ()
        self.sticky_alarm = False

    def _go(self, state: str) -> None:
        self._state = state
        self._until = self.now() + self.durations.get(state, 0.0)

    def _tick(self) -> None:
        while True:
            st = self._state
            if st in self.alarm_in and self.now() >= self._until - self.durations[st] / 2:
                self.active_alarms = (self.alarm_in.pop(st),)
                self._state = "ALARM"
                if self.jobs and self.jobs[-1][3] == "RUNNING":
                    no, w, k, _ = self.jobs[-1]
                    self.jobs[-1] = (no, w, k, "ABORTED")
                return
            if st in self.nxt and self.now() >= self._until:
                if self.jobs and self.jobs[-1][3] == "RUNNING" and st in self.job_ends:
                    no, w, k, _ = self.jobs[-1]
                    self.jobs[-1] = (no, w, k, "DONE")
                self._go(self.nxt[st])
                if self._state == "IDLE":
                    self.wafer = None
                    if self.sticky_alarm and self.active_alarms:
                        self._state = "ALARM"  # the cause is still there
                continue
            return

    job_ends: set[str] = set()

    def _cmd(self, method: str, allowed: set[str], fn: Any) -> None:
        when = self._enter(method)
        self._tick()
        if self._state not in allowed or when == "refuse":
            raise ToolRejected(-221, "Settings conflict", tool=self.name, command=method)
        fn()
        if when == "after":
            raise CommsError(f"{method}: reply lost", tool=self.name)
        if when == "alarm_after":  # made, then an alarm's own code read as its error
            raise ToolRejected(202, "Lamp fault", tool=self.name, command=method)
        if when == "crash":
            raise Crash(method)

    def _job(self, kind: str) -> None:
        self.job_no += 1
        self.jobs.append((self.job_no, self.wafer or "", kind, "RUNNING"))
        if kind != "DEVELOP":
            self.counts[self.wafer or ""] = self.counts.get(self.wafer or "", 0) + 1

    # queries
    def state(self) -> str:
        self._enter("state")
        self._tick()
        return self._state

    def alarms(self) -> tuple[str, ...]:
        self._enter("alarms")
        return self.active_alarms

    def clear_alarms(self) -> None:
        self._enter("clear_alarms")
        self._tick()
        if self.sticky_alarm:
            return
        self.active_alarms = ()
        if self._state == "ALARM" and self.wafer is None:
            self._go("IDLE")

    def condition(self) -> tuple[str, tuple[str, ...]]:
        return self.state(), self.alarms()

    def boot_id(self) -> int:
        self._enter("boot_id")
        return self.boot

    def job_count(self, wafer_id: str) -> int:
        self._enter("job_count")
        return self.counts.get(wafer_id, 0)

    def records(self, wafer_id: str | None = None) -> Any:
        """As the drivers' JobRecords: boot id, last job, the wafer's count (one call)."""
        self._enter("records")
        last = self.last_job()  # type: ignore[attr-defined]  # each tool's own
        count = None if wafer_id is None else self.counts.get(wafer_id, 0)
        return SimpleNamespace(boot=self.boot, last=last, count=count)

    def get_many(self, names: list[str]) -> dict[str, Any]:
        self._enter("get_many")
        return {name: self.get(name) for name in names}  # type: ignore[attr-defined]

    def status(self) -> Any:
        self._enter("status")
        self._tick()
        return SimpleNamespace(state=self._state, wafer_id=self.wafer, intensity=1000.0,
                               alarms=self.active_alarms, boot_id=self.boot)

    def reboot(self) -> None:
        """Power cycle: job records gone, new boot id, state IDLE (wafer stays physically)."""
        self.boot += 1
        self.job_no, self.jobs, self.counts = 0, [], {}
        self._go("IDLE")

    # commands
    def load(self, wafer_id: str) -> None:
        def go() -> None:
            self.wafer = wafer_id
            self._go("LOADING")
        self._cmd("load", {"IDLE"}, go)

    def unload(self) -> None:
        self._cmd("unload", self.unloadable, lambda: self._go(self.unload_state))

    def abort(self) -> None:
        def go() -> None:
            if self.jobs and self.jobs[-1][3] == "RUNNING":
                no, w, k, _ = self.jobs[-1]
                self.jobs[-1] = (no, w, k, "ABORTED")
            self._state = "ALARM"
        self._cmd("abort", set(self.nxt) | {"ALARM", "READY"}, go)

    unloadable: set[str] = set()
    unload_state = "UNLOADING"


class FakeExposure(_ScpiFake):
    name = "exposure"
    durations = {"LOADING": 20.0, "EXPOSING": 30.0, "DEVELOPING": 90.0, "MEASURING": 10.0,
                 "UNLOADING": 15.0}
    nxt = {"LOADING": "READY", "EXPOSING": "EXPOSED", "DEVELOPING": "MEASURING",
           "MEASURING": "COMPLETE", "UNLOADING": "IDLE"}
    job_ends = {"EXPOSING", "MEASURING"}
    unloadable = {"READY", "EXPOSED", "COMPLETE", "ALARM"}

    def __init__(self, clock: SeqClock) -> None:
        super().__init__(clock)
        self.settings: dict[str, Any] = {}
        self.residual = 2.0

    def remote(self) -> None:
        self._enter("remote")

    def set(self, name: str, value: Any) -> None:
        self._cmd("set", {"IDLE", "READY"}, lambda: self.settings.__setitem__(name, value))

    def set_many(self, values: dict[str, Any]) -> None:
        self._cmd("set", {"IDLE", "READY"}, lambda: self.settings.update(values))

    def get(self, name: str) -> Any:
        self._enter("get")
        return self.settings.get(name)

    def start_exposure(self) -> None:
        self._cmd("start_exposure", {"READY"}, lambda: (self._job("EXPOSE"),
                                                         self._go("EXPOSING")))

    def start_develop(self) -> None:
        self._cmd("start_develop", {"EXPOSED"}, lambda: (self._job("DEVELOP"),
                                                          self._go("DEVELOPING")))

    def last_job(self) -> Any:
        self._enter("last_job")
        self._tick()
        if not self.jobs:
            return SimpleNamespace(job_no=0, wafer_id=None, kind=None, status="NONE")
        no, w, k, s = self.jobs[-1]
        return SimpleNamespace(job_no=no, wafer_id=w, kind=k, status=s)

    def result(self) -> Any:
        self._enter("result")
        return SimpleNamespace(depth_um=7.5, residual_um=self.residual, cd_um=20.0)


class FakeEtcher(_ScpiFake):
    name = "etcher"
    durations = {"LOADING": 15.0, "PUMPING": 30.0, "STABILIZING": 10.0, "ETCHING": 180.0,
                 "OVERETCH": 54.0, "VENTING": 30.0}
    nxt = {"LOADING": "PUMPING", "PUMPING": "READY", "STABILIZING": "ETCHING",
           "ETCHING": "OVERETCH", "OVERETCH": "COMPLETE", "VENTING": "IDLE"}
    job_ends = {"OVERETCH"}
    unloadable = {"READY", "COMPLETE", "ALARM"}
    unload_state = "VENTING"

    def __init__(self, clock: SeqClock) -> None:
        super().__init__(clock)
        self.recipe: dict[str, Any] = {}
        self.not_open: set[str] = set()
        self.etched: list[str] = []

    def apply_recipe(self, o2: float, cf4: float, pressure: float, rf_power: float,
                     etch_time: int, overetch: int, endpoint: bool, target: float) -> None:
        def go() -> None:
            self.recipe = dict(o2=o2, cf4=cf4, pressure=pressure, rf_power=rf_power,
                               etch_time=etch_time, overetch=overetch, endpoint=endpoint,
                               target=target)
            self.durations = {**type(self).durations, "ETCHING": float(etch_time),
                              "OVERETCH": etch_time * overetch / 100}
        self._cmd("apply_recipe", {"IDLE", "READY", "COMPLETE"}, go)

    def get(self, name: str) -> Any:
        self._enter("get")
        return self.recipe.get(name)

    def start_etch(self) -> None:
        def go() -> None:
            self._job("ETCH")
            self.etched.append(self.wafer or "")
            self._go("STABILIZING")
        self._cmd("start_etch", {"READY"}, go)

    def etch_status(self) -> Any:
        self._enter("etch_status")
        self._tick()
        return SimpleNamespace(state=self._state, elapsed_s=0.0, endpoint_s=None)

    def last_job(self) -> Any:
        self._enter("last_job")
        if not self.jobs:
            return SimpleNamespace(job_no=0, wafer_id=None, status="NONE")
        no, w, _, s = self.jobs[-1]
        return SimpleNamespace(job_no=no, wafer_id=w, status=s)

    def result(self) -> Any:
        self._enter("result")
        return SimpleNamespace(removed_um=1.6, all_open=self.jobs[-1][1] not in self.not_open)

    def oes_trace(self) -> list[float]:
        self._enter("oes_trace")
        return [1000.0, 1000.0, 400.0]

    def etch_watch(self) -> tuple[Any, Any]:
        return self.etch_status(), self.readings()

    def readings(self) -> Any:
        self._enter("readings")
        rf = self._state in ("ETCHING", "OVERETCH")
        return SimpleNamespace(pressure_mtorr=200.0, rf_forward_w=300.0 if rf else 0.0,
                               rf_reflected_w=0.0, o2_sccm=90.0, cf4_sccm=10.0,
                               oes_co=1000.0 if rf else 0.0, oes_o=500.0 if rf else 0.0)


class FakeOven(_Faulty):
    """The program takes ``duration`` tool s: purge 10 %, at the final target from
    40 % to 80 %, cooling after that; ``abort_at`` (fraction) aborts it."""

    name = "oven"

    def __init__(self, clock: SeqClock, duration: float = 3600.0) -> None:
        super().__init__(clock)
        self.duration = duration
        self.program: Any = None
        self.batch = 0
        self.t0: float | None = None
        self.final: str | None = None  # COMPLETE / ABORTED once ended
        self.door_locked = False
        self.abort_at: float | None = None
        self.starts: list[int] = []
        self.alarm_word: tuple[str, ...] = ()

    def _frac(self) -> float:
        return 0.0 if self.t0 is None else (self.now() - self.t0) / self.duration

    def _st(self) -> str:
        if self.t0 is None:
            return self.final or "IDLE"
        f = self._frac()
        if self.abort_at is not None and f >= self.abort_at:
            self.t0, self.final, self.abort_at = None, "ABORTED", None
            self.alarm_word = ("OVER_TEMPERATURE",)
            return "ABORTED"
        if f >= 1.0:
            self.t0, self.final, self.door_locked = None, "COMPLETE", False
            return "COMPLETE"
        return "PURGING" if f < 0.1 else "RUNNING" if f < 0.8 else "COOLING"

    def readings(self) -> Any:  # the CV-25's input registers: every cure poll
        self._enter("readings")
        return self._snapshot()

    def status(self) -> Any:
        self._enter("status")
        return self._snapshot()

    def _snapshot(self) -> Any:
        st = self._st()
        target = self.program.segments[-1][0] if self.program else 25.0
        f = self._frac()
        chamber = target if 0.4 <= f < 0.8 else (90.0 if st in ("COMPLETE", "ABORTED") else
                                                 25.0 + (target - 25.0) * min(f / 0.4, 1) * 0.9)
        return SimpleNamespace(state=st, chamber_c=chamber, wafer_c=chamber, setpoint_c=target,
                               o2_ppm=5, alarms=self.alarm_word, door_locked=self.door_locked)

    def alarms(self) -> tuple[str, ...]:
        self._enter("alarms")
        return self.alarm_word

    def clear_alarms(self) -> None:
        self.ack_alarms()

    def ack_alarms(self) -> None:
        self._enter("ack_alarms")
        self.alarm_word = ()

    def upload(self, program: Any) -> None:
        self._enter("upload")
        if self._st() not in ("IDLE", "COMPLETE", "ABORTED"):
            raise ToolRejected(4, "device failure", tool="oven")
        self.program = program

    def lock_door(self, locked: bool) -> None:
        self._enter("lock_door")
        self.door_locked = locked

    def start(self) -> None:
        when = self._enter("start")
        if self._st() not in ("IDLE", "COMPLETE", "ABORTED") or not self.door_locked:
            raise ToolRejected(4, "device failure", tool="oven")
        self.batch = self.program.batch_no
        self.starts.append(self.batch)
        self.t0, self.final = self.now(), None
        if when == "after":
            raise CommsError("start: reply lost", tool="oven")
        if when == "crash":
            raise Crash("start")

    def abort(self) -> None:
        self._enter("abort")
        self.t0, self.final = None, "ABORTED"

    def batch_no(self) -> int:
        self._enter("batch_no")
        return self.batch


@dataclass
class FakeHandling:
    """Moves succeed; every move is recorded as (t, wafer_ids, to)."""

    clock: SeqClock
    moves: list[tuple[float, tuple[str, ...], str]] = field(default_factory=list)
    where: dict[str, str] = field(default_factory=dict)

    async def move(self, wafer_ids: list[str], to: str) -> None:
        self.moves.append((self.clock.now(), tuple(wafer_ids), to))
        for w in wafer_ids:
            self.where[w] = to


def make_program(segments: tuple[Any, ...], **kw: Any) -> Any:
    return SimpleNamespace(segments=segments, **kw)


@dataclass
class Line:
    clock: SeqClock
    exposure: FakeExposure
    oven: FakeOven
    etcher: FakeEtcher
    handling: FakeHandling

    @property
    def tools(self) -> ToolSet:
        return ToolSet.of_three(self.exposure, self.oven, self.etcher, make_program=make_program)


def line(scale: float = SCALE, cure_s: float = 1500.0) -> Line:
    clock = SeqClock(scale)
    return Line(clock, FakeExposure(clock), FakeOven(clock, cure_s), FakeEtcher(clock),
                FakeHandling(clock))
