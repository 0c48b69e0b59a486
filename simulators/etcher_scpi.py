"""The PE-200's SCPI face: the settings table, the commands and the readings.

:class:`EtcherScpi` is the base of :class:`simulators.etcher.EtcherSim`. Its handlers check
a command against the state and move the model through its ``_enter``/``_to_alarm``/
``_abort_job``; what happens in each phase, and when it ends, is the model's
(:mod:`simulators.etcher`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import partial
from typing import Any

from .etcher_model import DARK, cf4_fraction
from .etcher_spec import ALARMS, CF4_MAX, JOB_STATES, RF_STATES, SETTABLE, Job
from .scpi import (
    ScpiError,
    ScpiInstrument,
    no_args,
    nr1,
    nr2,
    one_arg,
    parse_bool,
    parse_id,
    parse_int,
    parse_real,
)


@dataclass(frozen=True)
class Setting:
    header: str
    key: str
    lo: float
    hi: float
    kind: str  # "real" (NR2, 1 decimal) | "int" (NR1) | "bool" (1/0)
    default: Any


SETTINGS = (
    Setting("GAS:O2", "o2", 0.0, 200.0, "real", 90.0),
    Setting("GAS:CF4", "cf4", 0.0, 30.0, "real", 10.0),
    Setting("PRESsure:SETpoint", "pressure", 50.0, 1000.0, "real", 200.0),
    Setting("RF:POWer", "power", 50.0, 1000.0, "real", 300.0),
    Setting("ETCH:TIME", "time", 5, 1800, "int", 180),
    Setting("ETCH:OVERetch", "overetch", 0, 100, "int", 30),
    Setting("ETCH:ENDPoint", "endpoint", 0, 1, "bool", False),
    Setting("ETCH:TARGet", "target", 0.0, 20.0, "real", 0.0),
)


class EtcherScpi(ScpiInstrument):
    """The PE-200's command table and handlers (base of ``EtcherSim``).

    The state it reads and changes (``state``, ``settings``, ``wafer``, ``jobs``, ...) is
    set up by ``EtcherSim.__init__``.
    """

    error_texts = {
        301: "Interlock open",
        302: "Pressure fault",
        303: "RF fault",
        304: "Gas fault",
        305: "No wafer",
    }

    # ================================================================ SCPI table
    def _register(self) -> None:
        for s in SETTINGS:
            self.add(s.header, set=partial(self._write, s), query=partial(self._read, s))
        q = self._query
        self.add("SYSTem:STATe", query=q(lambda: self.state))
        self.add("WAFer:ID", query=q(lambda: self.label or "NONE"))
        self.add("WAFer:LOAD", set=self._load)
        self.add("WAFer:UNLoad", set=self._unload)
        self.add("ETCH:STARt", set=self._start)
        self.add("ETCH:ABORt", set=self._abort)
        self.add("ETCH:STATus", query=q(self._status))
        self.add("JOB:LAST", query=q(self._job_last))
        self.add("JOB:COUNt", query=lambda a: nr1(self._counts.get(parse_id(one_arg(a)), 0)))
        self.add("PRESsure", query=q(lambda: nr2(self.chamber.pressure.value(self._t))))
        self.add("RF:FORWard", query=q(lambda: nr2(self._forward())))
        self.add("RF:REFLected", query=q(lambda: nr2(self._forward() * self._refl_frac())))
        self.add("GAS:FLOW", query=q(self._flows))
        self.add("OES:CO", query=q(lambda: nr2(self._oes()[0])))
        self.add("OES:O", query=q(lambda: nr2(self._oes()[1])))
        self.add("OES:TRACe", query=q(self._trace))
        self.add("RESult:REMoved", query=q(lambda: nr2(self._result_removed)))
        self.add("RESult:OPEN", query=q(self._result_open))
        self.add("ALARm", query=q(lambda: ",".join(self.alarms) or "NONE"))
        self.add("ALARm:CLEar", set=lambda a: (no_args(a), self._clear_alarms())[0])

    @staticmethod
    def _query(fn):
        """A query handler that takes no parameters."""
        return lambda args: (no_args(args), fn())[1]

    def _write(self, s: Setting, args: list[str]) -> None:
        arg = one_arg(args)
        if s.kind == "bool":
            value: Any = parse_bool(arg)
        elif s.kind == "int":
            value = parse_int(arg, int(s.lo), int(s.hi))
        else:
            value = parse_real(arg, s.lo, s.hi)
        if self.state not in SETTABLE:
            raise ScpiError(-221)
        if s.key in ("o2", "cf4"):
            flows = {"o2": self.settings["o2"], "cf4": self.settings["cf4"], s.key: value}
            if cf4_fraction(flows["o2"], flows["cf4"]) > CF4_MAX + 1e-9:
                raise ScpiError(-221)
        self.settings[s.key] = value

    def _read(self, s: Setting, args: list[str]) -> str:
        no_args(args)
        value = self.settings[s.key]
        if s.kind == "bool":
            return "1" if value else "0"
        return nr1(value) if s.kind == "int" else nr2(value)

    # ================================================================ commands
    def _load(self, args: list[str]) -> None:
        label = parse_id(one_arg(args))
        if self.state != "IDLE":
            raise ScpiError(-221)
        present = self.world.at(self.location)
        if not present:
            raise ScpiError(305)
        self.wafer, self.label = self.world.wafer(present[0]), label
        self._after_pump, self._aborted = "READY", False
        note = "" if label == self.wafer.wafer_id else f" (host calls it {label})"
        self._log(f"load{note}")
        self._enter("LOADING", self._t)

    def _unload(self, args: list[str]) -> None:
        no_args(args)
        if self.state not in ("COMPLETE", "READY", "ALARM"):
            raise ScpiError(-221)
        if self.wafer is None:
            raise ScpiError(305)
        self._enter("VENTING", self._t)

    def _start(self, args: list[str]) -> None:
        no_args(args)
        if "door_open" in self._seen:
            raise ScpiError(301)
        if self.state != "READY" or self.wafer is None or self.label is None:
            raise ScpiError(-221)
        job = Job(len(self.jobs) + 1, self.label, self._t)
        self.jobs.append(job)
        self._counts[self.label] = self._counts.get(self.label, 0) + 1
        with self.world.lock:
            self.wafer.etches += 1
            self.wafer.ran_on("etch", self.location)
        self._log(f"etch job {job.number} start: {self._recipe_text()}")
        self._enter("STABILIZING", self._t)

    def _abort(self, args: list[str]) -> None:
        no_args(args)
        if self.state not in JOB_STATES:
            raise ScpiError(-221)
        self._abort_job(self._t, "ETCH:ABORt")
        self._to_alarm(self._t)

    def on_reset(self) -> None:
        """*RST: abort a running job, defaults; IDLE without a wafer, ALARM with one."""
        t = self._t
        if self.state in JOB_STATES:
            self._abort_job(t, "*RST")
        self.settings = {s.key: s.default for s in SETTINGS}
        if self.wafer is None:
            self._enter("IDLE", t)
        else:
            self._to_alarm(t)

    def _clear_alarms(self) -> None:
        for name in list(self.alarms):
            if ALARMS[name][0] not in self._seen:
                del self.alarms[name]
        if self.state != "ALARM" or self.alarms:
            return
        if self.wafer is None:
            self._enter("IDLE", self._t)
        elif not self._aborted:
            self._resume(self._t)

    # ================================================================ readings
    def _forward(self) -> float:
        return self.settings["power"] if self.state in RF_STATES else 0.0

    def _flows(self) -> str:
        c = self.chamber
        return f"{nr2(c.o2.value(self._t))},{nr2(c.cf4.value(self._t))}"

    def _oes(self) -> tuple[float, float]:
        if self.state not in RF_STATES or self._run is None:
            return DARK, DARK
        x = self._t - self._run.rf_on
        return self._run.co(x), self._run.o(x)

    def _trace(self) -> str:
        return "" if self._run is None else ",".join(nr2(v) for v in self._run.trace(self._t))

    def _result_open(self) -> str:
        wafer = self._result_wafer
        return "1" if wafer is not None and wafer.vias_open else "0"

    def _status(self) -> str:
        job = self.jobs[-1] if self.jobs else None
        if job is None or job.run is None:
            return f"{self.state},0,-1"
        run = job.run
        now = self._t if run.rf_off is None else run.rf_off
        ep = job.endpoint_x
        shown = nr1(round(ep)) if ep is not None and run.rf_on + ep <= now + 1e-9 else "-1"
        return f"{self.state},{nr1(math.floor(now - run.rf_on + 1e-9))},{shown}"

    def _job_last(self) -> str:
        if not self.jobs:
            return "0,NONE,NONE,-1"
        job = self.jobs[-1]
        age = -1 if job.end is None else math.floor(self._t - job.end + 1e-9)
        return f"{job.number},{job.label},{job.status},{age}"
