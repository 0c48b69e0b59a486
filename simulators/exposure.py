"""LX-365 exposure cell simulator: states, settings, jobs, alarms, the world port.

The tool as its manual (`/work/shared/tools/exposure-tool.md`) describes it,
on the shared SCPI core. The model is event-driven: each running operation
knows its end time, and :meth:`ExposureSim.update` completes operations in
order up to ``clock.now()``, so one update may cover many tool seconds
exactly. The resin physics is :mod:`simulators.exposure_model`. Every choice
the manual leaves open is in `docs/sim-exposure.md`. All state changes happen
under ``world.lock`` (commands, ticks, fault listeners and material handling).
"""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from simulators import exposure_model as model
from simulators.clock import ScaledClock
from simulators.exposure_model import Job, Operation, State
from simulators.faults import Faults
from simulators.scpi import (
    ScpiError,
    ScpiInstrument,
    no_args,
    nr1,
    nr2,
    one_arg,
    parse_id,
    parse_int,
    parse_real,
)
from simulators.world import World

TOOL = "exposure"
UNLOADABLE = (State.READY, State.EXPOSED, State.COMPLETE, State.ALARM)

#: ALARm? names in the manual's order; fault name -> alarm name; alarm -> the code it queues
ALARMS = ("DOOR_OPEN", "LAMP_LOW", "LAMP_FAIL", "SHUTTER_FAULT", "VACUUM_LOSS")
FAULT_ALARMS = {
    "door_open": "DOOR_OPEN",
    "lamp_low": "LAMP_LOW",
    "lamp_fail": "LAMP_FAIL",
    "shutter_fault": "SHUTTER_FAULT",
    "vacuum_loss": "VACUUM_LOSS",
}
WARNINGS = ("LAMP_LOW",)  # does not stop work, queues nothing
ALARM_CODES = {"DOOR_OPEN": 201, "LAMP_FAIL": 202, "SHUTTER_FAULT": 202, "VACUUM_LOSS": 201}
#: alarms whose cause stops a running operation of that state (and refuses its start)
STOPS: dict[State, frozenset[str]] = {
    State.LOADING: frozenset({"DOOR_OPEN", "LAMP_FAIL", "VACUUM_LOSS"}),
    State.EXPOSING: frozenset({"DOOR_OPEN", "LAMP_FAIL", "VACUUM_LOSS", "SHUTTER_FAULT"}),
    State.DEVELOPING: frozenset({"DOOR_OPEN", "LAMP_FAIL", "VACUUM_LOSS"}),
    State.UNLOADING: frozenset({"DOOR_OPEN"}),  # refuses the start only
}
ABORTED_BY_ALARM = (State.LOADING, State.EXPOSING, State.DEVELOPING)


@dataclass(frozen=True)
class Setting:
    """One row of the manual's settings table."""

    header: str
    attr: str
    default: Any
    parse: Callable[[str], Any]
    fmt: Callable[[Any], str]
    states: tuple[State, ...] = (State.IDLE, State.READY)


def _reticle(arg: str) -> str:
    name = arg.strip().strip('"').upper()
    if name not in model.RETICLES:
        raise ScpiError(-224)
    return name


SETTINGS = (
    Setting("RETicle:SELect", "reticle", "VIA-200", _reticle, str),
    Setting("EXPosure:DOSE", "dose", 300.0, lambda a: round(parse_real(a, 10.0, 2000.0), 1), nr2),
    Setting("EXPosure:FOCus", "focus", 0.0, lambda a: round(parse_real(a, -10.0, 10.0), 1), nr2),
    Setting(
        "DEVelop:TIME",
        "develop_time",
        90,
        lambda a: parse_int(a, 30, 180),
        nr1,
        (State.IDLE, State.READY, State.EXPOSED),
    ),
)


class ExposureSim(ScpiInstrument):
    """The LX-365 exposure cell; also the world's ``exposure`` port (load position + chuck)."""

    # the settings table's attributes (set from SETTINGS by _defaults)
    reticle: str
    dose: float
    focus: float
    develop_time: int

    error_texts = {
        201: "Interlock open",
        202: "Lamp fault",
        203: "Alignment failed",
        204: "No wafer",
    }

    def __init__(
        self, world: World, clock: ScaledClock, faults: Faults, rng_seed: int | None = None
    ) -> None:
        self.rng = random.Random(rng_seed)
        serial = f"LX365-{self.rng.randint(1000, 9999)}"
        super().__init__(f"VIAFAB,LX-365,{serial},2.4.1", clock)
        self.world = world
        self.faults = faults
        self.control = "LOCAL"
        self.state = State.IDLE
        self.before_alarm = State.IDLE
        self.needs_unload = False  # a job/operation on the chuck's wafer was aborted
        self.op: Operation | None = None
        self.load_pos: str | None = None  # world id at the load position
        self.chuck: str | None = None  # world id on the chuck
        self.wafer_id: str | None = None  # the id the host gave at WAFer:LOAD
        self.film_um: float | None = None
        self.results: tuple[float, float, float] | None = None  # depth, residual, cd
        self.jobs: list[Job] = []
        self.expose_counts: Counter[str] = Counter()
        self.alarms: set[str] = set()  # latched until ALARm:CLEar finds the cause gone
        self.causes: set[str] = set()  # alarm causes present now
        self.histories: dict[str, model.WaferHistory] = {}
        self.shutter_open = False
        self.alarm_meanwhile = False  # an alarm came during an operation it did not stop
        self._t = clock.now()
        self._updating = False
        self._defaults()
        self._register()
        present = world.at(TOOL)
        self.load_pos = present[0] if present else None
        world.register_port(TOOL, self)
        faults.subscribe(self._on_fault)

    # ----------------------------------------------------------- commands
    def _register(self) -> None:
        q = self._locked
        for s in SETTINGS:
            self.add(s.header, set=q(self._setter(s)), query=q(self._getter(s)))
        self.add("RETicle:CATalog", query=q(lambda a: (no_args(a), ",".join(model.RETICLES))[1]))
        self.add("EXPosure:FIELds", query=q(lambda a: (no_args(a), nr1(model.FIELDS))[1]))
        self.add("EXPosure:INTensity", query=q(lambda a: (no_args(a), nr2(self.intensity()))[1]))
        self.add("FILM:THICKness", query=q(self._film))
        self.add("SYSTem:STATe", query=q(lambda a: (no_args(a), self.state.value)[1]))
        self.add("SYSTem:CONTrol", query=q(lambda a: (no_args(a), self.control)[1]))
        self.add("SYSTem:REMote", set=q(lambda a: self._set_control(a, "REMOTE")))
        self.add("SYSTem:LOCal", set=q(lambda a: self._set_control(a, "LOCAL")))
        self.add("WAFer:ID", query=q(lambda a: (no_args(a), self.wafer_id or "NONE")[1]))
        self.add("WAFer:LOAD", set=q(self._load))
        self.add("WAFer:UNLoad", set=q(self._unload))
        self.add("EXPosure:STARt", set=q(self._start_exposure))
        self.add("DEVelop:STARt", set=q(self._start_develop))
        self.add("ABORt", set=q(self._abort_cmd))
        self.add("JOB:LAST", query=q(self._job_last))
        self.add("JOB:COUNt", query=q(lambda a: nr1(self.expose_counts[parse_id(one_arg(a))])))
        for i, header in enumerate(("RESult:DEPTh", "RESult:RESidual", "RESult:CD")):
            self.add(header, query=q(lambda a, i=i: self._result(a, i)))
        self.add("ALARm", query=q(self._alarm_list))
        self.add("ALARm:CLEar", set=q(self._alarm_clear))

    def _locked(self, fn: Callable[[list[str]], Any]) -> Callable[[list[str]], Any]:
        def run(args: list[str]) -> Any:
            with self.world.lock:
                return fn(args)

        return run

    def _setter(self, s: Setting) -> Callable[[list[str]], None]:
        def run(args: list[str]) -> None:
            arg = one_arg(args)
            if self.state not in s.states:
                raise ScpiError(-221)
            setattr(self, s.attr, s.parse(arg))

        return run

    def _getter(self, s: Setting) -> Callable[[list[str]], str]:
        return lambda args: (no_args(args), s.fmt(getattr(self, s.attr)))[1]

    def _defaults(self) -> None:
        for s in SETTINGS:
            setattr(self, s.attr, s.default)

    def _set_control(self, args: list[str], value: str) -> None:
        no_args(args)
        self.control = value

    def _film(self, args: list[str]) -> str:
        no_args(args)
        return "0.0" if self.chuck is None or self.film_um is None else nr2(self.film_um, 2)

    def intensity(self) -> float:
        if "LAMP_FAIL" in self.causes:
            return 0.0
        return model.lamp_intensity(self._t, self.faults.is_on("lamp_low"))

    def _may_start(self, states: tuple[State, ...], op: State) -> None:
        """The checks every start shares: REMOTE, the state, then an interlock still open."""
        if self.control != "REMOTE" or self.state not in states:
            raise ScpiError(-221)
        for name in ALARMS:
            if name in self.causes and name in STOPS[op]:
                raise ScpiError(ALARM_CODES[name])

    def _begin(self, state: State, duration: float, **kw: Any) -> None:
        if state != State.MEASURING:  # measuring continues the develop operation
            self.alarm_meanwhile = False
        self.op = Operation(state, self._t, self._t + duration, **kw)
        self.state = state

    def _load(self, args: list[str]) -> None:
        wafer_id = parse_id(one_arg(args))
        self._may_start((State.IDLE,), State.LOADING)
        if self.load_pos is None:
            raise ScpiError(204)
        self.chuck, self.load_pos, self.wafer_id = self.load_pos, None, wafer_id
        self.results, self.film_um, self.needs_unload = None, None, False
        self.histories.setdefault(self.chuck, model.WaferHistory())
        self._log(f"load as {wafer_id}")
        if wafer_id != self.chuck:
            self._log(f"id mismatch: host said {wafer_id}, the wafer is {self.chuck}")
        self._begin(State.LOADING, model.jitter(self.rng, model.LOAD_S))

    def _unload(self, args: list[str]) -> None:
        no_args(args)
        self._may_start(UNLOADABLE, State.UNLOADING)
        if self.chuck is None:
            raise ScpiError(204)
        if self.load_pos is not None:
            raise ScpiError(-221, "Settings conflict; load position occupied")
        self._log("unload")
        self._begin(State.UNLOADING, model.jitter(self.rng, model.UNLOAD_S))

    def _new_job(self, kind: str, dose: float) -> None:
        assert self.wafer_id is not None
        self.jobs.append(Job(len(self.jobs) + 1, self.wafer_id, kind, dose))

    def _start_exposure(self, args: list[str]) -> None:
        no_args(args)
        self._may_start((State.READY,), State.EXPOSING)
        assert self.chuck is not None
        dose, intensity = self.dose, self.intensity()
        self._new_job("EXPOSE", dose)
        self.expose_counts[self.wafer_id or ""] += 1
        hist = self.histories[self.chuck]
        hist.reticle, hist.focus_um, hist.last_dose = self.reticle, self.focus, dose
        with self.world.lock:
            ws = self.world.wafer(self.chuck)
            ws.exposures += 1
            ws.dose_mj_cm2 = dose
        self._log(f"exposure start, job {len(self.jobs)}, {dose} mJ/cm2, {self.reticle}")
        self.shutter_open = True
        shutter_s = dose / intensity
        self._begin(
            State.EXPOSING,
            model.exposure_duration(self.rng, dose, intensity),
            shutter_s=shutter_s,
        )

    def _start_develop(self, args: list[str]) -> None:
        no_args(args)
        self._may_start((State.EXPOSED,), State.DEVELOPING)
        self._new_job("DEVELOP", 0.0)
        self._log(f"develop start, job {len(self.jobs)}, {self.develop_time} s")
        self._begin(State.DEVELOPING, float(self.develop_time))

    def _abort_cmd(self, args: list[str]) -> None:
        no_args(args)
        if self.op is not None:
            self._abort("ABORt")

    def _job_last(self, args: list[str]) -> str:
        no_args(args)
        if not self.jobs:
            return "0,NONE,NONE,NONE,0.0,-1"
        j = self.jobs[-1]
        age = -1 if j.ended_at is None else int(self._t - j.ended_at)
        return f"{j.no},{j.wafer_id},{j.kind},{j.status},{nr2(j.dose)},{age}"

    def _result(self, args: list[str], index: int) -> str:
        no_args(args)
        if self.results is None:
            raise ScpiError(-221)
        return nr2(self.results[index], 2)

    def _alarm_list(self, args: list[str]) -> str:
        no_args(args)
        return ",".join(a for a in ALARMS if a in self.alarms) or "NONE"

    def _alarm_clear(self, args: list[str]) -> None:
        no_args(args)
        self.alarms &= self.causes
        if self.state != State.ALARM or self.alarms - set(WARNINGS):
            return
        if self.chuck is None:
            self.state = State.IDLE
        elif not self.needs_unload:
            self.state = self.before_alarm

    # ----------------------------------------------------------- IEEE 488.2 hooks
    def pending(self) -> bool:
        return self.op is not None

    def on_reset(self) -> None:
        with self.world.lock:
            self.update()
            if self.op is not None:
                self._abort("*RST")
            self.shutter_open = False
            self._defaults()
            if self.chuck is None:
                self.state = State.IDLE
            elif self.state != State.ALARM:
                self.before_alarm, self.state = self.state, State.ALARM

    # ----------------------------------------------------------- the model
    def update(self) -> None:
        """Complete every operation that ended by now, in order; then look at the faults."""
        with self.world.lock:
            if self._updating:
                return
            self._updating = True
            try:
                now = self.clock.now()
                while self.op is not None and self.op.end <= now:
                    self._t = self.op.end
                    self._finish(self.op)
                self._t = max(self._t, now)
                self._sync_causes()
            finally:
                self._updating = False

    def _on_fault(self, name: str, on: bool, params: dict[str, Any]) -> None:
        if name in FAULT_ALARMS:
            self.update()  # at once, so an alarm acts at the moment its fault appears

    def _sync_causes(self) -> None:
        causes = {a for f, a in FAULT_ALARMS.items() if self.faults.is_on(f)}
        if model.lamp_intensity(self._t, False) < model.LAMP_LOW_MW_CM2:
            causes.add("LAMP_LOW")
        new = [a for a in ALARMS if a in causes and a not in self.causes]
        self.causes = causes
        for name in new:
            self._raise(name)

    def _raise(self, name: str) -> None:
        """An alarm happens on its own: latch it, queue its code, act on the state."""
        self.alarms.add(name)
        if self.chuck:
            self._log(f"alarm {name}")
        if name in WARNINGS:
            return
        self.push_error(ALARM_CODES[name])
        if self.op is not None:
            if self.op.state in ABORTED_BY_ALARM and name in STOPS[self.op.state]:
                self._abort(name)
            else:  # the operation finishes first, then the tool enters ALARM
                self.alarm_meanwhile = True
            return
        if self.state != State.ALARM:
            self.before_alarm, self.state = self.state, State.ALARM

    def _settle(self, state: State) -> None:
        """An operation ended in ``state``; an alarm raised meanwhile turns it into ALARM."""
        self.op = None
        if self.alarm_meanwhile:
            self.before_alarm, self.state = state, State.ALARM
        else:
            self.state = state

    def _finish(self, op: Operation) -> None:
        if op.state == State.LOADING:
            self._finish_load()
        elif op.state == State.EXPOSING:
            self.shutter_open = False
            self.histories[self._chuck()].field_doses = [
                d + self.jobs[-1].dose for d in self.histories[self._chuck()].field_doses
            ]
            self._end_job("DONE", "exposure done")
            self._settle(State.EXPOSED)
        elif op.state == State.DEVELOPING:
            self._develop(op.end - op.start, "develop done")
            self._begin(State.MEASURING, model.jitter(self.rng, model.MEASURE_S))
        elif op.state == State.MEASURING:
            self._measure()
            self._end_job("DONE", "measure done")
            self._settle(State.COMPLETE)
        elif op.state == State.UNLOADING:
            self._log("unloaded to the load position")
            self.load_pos, self.chuck, self.wafer_id = self.chuck, None, None
            self.film_um, self.needs_unload = None, False
            self._settle(State.IDLE)

    def _finish_load(self) -> None:
        chuck = self._chuck()
        ws = self.world.wafer(chuck)
        self.film_um = model.measured(ws.top_um if ws.top_um is not None else ws.film_um, self.rng)
        if self.faults.is_on("alignment_fail"):
            self.faults.clear("alignment_fail")  # "the next load": one load fails, then it is gone
            self.push_error(203)
            self._log("alignment failed")
            self.op, self.needs_unload = None, True
            self.before_alarm, self.state = State.IDLE, State.ALARM
            return
        self._log(f"loaded, film {self.film_um:.2f} um")
        self._settle(State.READY)

    def _abort(self, why: str) -> None:
        """Stop the running operation now: shutter closed, job ABORTED, ALARM, unload needed."""
        op = self.op
        assert op is not None
        self.shutter_open = False
        if op.state == State.EXPOSING:
            hist = self.histories[self._chuck()]
            dose = self.jobs[-1].dose
            got = model.field_doses(dose, op.start, op.end - op.start, op.shutter_s, self._t)
            hist.field_doses = [a + b for a, b in zip(hist.field_doses, got, strict=True)]
            full = sum(1 for d in got if d >= dose)
            self._end_job(
                "ABORTED", f"exposure aborted by {why} after {full}/{model.FIELDS} fields"
            )
        elif op.state == State.DEVELOPING:
            self._develop(self._t - op.start, f"develop aborted by {why}")
            self._end_job("ABORTED", f"develop job aborted by {why}")
        elif op.state == State.MEASURING:
            self._end_job("ABORTED", f"measure aborted by {why}")
        else:
            self._log(f"{op.state.value.lower()} aborted by {why}")
        self.op, self.needs_unload, self.state = None, True, State.ALARM

    def _end_job(self, status: str, event: str) -> None:
        job = self.jobs[-1]
        job.status, job.ended_at = status, self._t
        self._log(f"job {job.no} {job.kind} {status}: {event}")

    def _develop(self, seconds: float, event: str) -> None:
        """Write what ``seconds`` of puddle develop did to the wafer into the world."""
        chuck = self._chuck()
        hist = self.histories[chuck]
        hist.develop_s += max(0.0, seconds)
        ws = self.world.wafer(chuck)
        out = model.develop(ws.film_um, hist, self.rng)
        ws.developed += 1
        ws.top_um, ws.residual_pre_cure_um = out.top_um, out.residual_um
        ws.spread_max = out.spread_max
        self._log(
            f"{event} after {seconds:.1f} s: top {out.top_um:.3f} um, residual "
            f"{out.residual_um:.3f} um, spread {out.spread_max:.3f}"
        )

    def _measure(self) -> None:
        chuck = self._chuck()
        ws = self.world.wafer(chuck)
        top, residual = ws.top_um or 0.0, ws.residual_pre_cure_um or 0.0
        depth = model.measured(max(0.0, top - residual), self.rng)
        res = model.measured(residual, self.rng)
        cd = model.critical_dimension(self.histories[chuck], ws.film_um, depth, self.rng)
        self.results = (depth, res, cd)

    def _chuck(self) -> str:
        assert self.chuck is not None
        return self.chuck

    def _log(self, event: str) -> None:
        if self.chuck is not None:
            self.world.log(self.chuck, TOOL, event)

    # ----------------------------------------------------------- world port
    def can_place(self, wafer_ids: list[str]) -> str | None:
        with self.world.lock:
            if len(wafer_ids) != 1:
                return "the load position holds one wafer"
            if self.load_pos is not None:
                return f"the load position holds {self.load_pos}"
            if self.state == State.UNLOADING:
                return "a wafer is being unloaded to the load position"
            return None

    def can_take(self, wafer_ids: list[str]) -> str | None:
        with self.world.lock:
            for wid in wafer_ids:
                if wid != self.load_pos:
                    where = "on the chuck" if wid == self.chuck else "not at the load position"
                    return f"{wid} is {where}"
            return None

    def placed(self, wafer_ids: list[str]) -> None:
        with self.world.lock:
            self.load_pos = wafer_ids[0]

    def taken(self, wafer_ids: list[str]) -> None:
        with self.world.lock:
            self.load_pos = None
