"""The LX-365's SCPI face: the settings table and every tool-specific command and query.

:class:`ExposureScpi` is the base of :class:`simulators.exposure.ExposureSim`. Its handlers
check a command against the state and the alarms and start operations through the model's
``_begin``/``_abort``; when operations end, and what they do to the wafer, is the model's
(:mod:`simulators.exposure`). Handlers run under ``world.lock``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from simulators import exposure_model as model
from simulators.exposure_alarms import ALARM_CODES, ALARMS, STOPS, WARNINGS
from simulators.exposure_model import Job, State
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

UNLOADABLE = (State.READY, State.EXPOSED, State.COMPLETE, State.ALARM)


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


class ExposureScpi(ScpiInstrument):
    """The LX-365's command table and handlers (base of ``ExposureSim``).

    The state it reads and changes (``state``, ``chuck``, ``jobs``, ...) is set up by
    ``ExposureSim.__init__``.
    """

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
            ws.ran_on("expose", self.location)
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
