"""PE-200 single-wafer plasma etcher simulator (manual: tools/plasma-etcher.md).

An exact event-driven model: every phase's end (load, pump-down, stabilisation,
main etch or OES endpoint, overetch, vent) and every alarm time is computed in
tool time, and :meth:`EtcherSim.update` processes them in order up to
``clock.now()``, however far that is. Physics lives in :mod:`etcher_model`.
Fault changes are applied at the moment they happen: the fault listener first
advances the model under the old faults, then applies the new ones.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass, field
from functools import partial
from typing import Any

from .etcher_model import (
    BASE,
    CHAMBER_V,
    DARK,
    PUMP_S,
    Chamber,
    ClearProfile,
    Conditions,
    EtchRun,
    cf4_fraction,
    etch_rate_nm_min,
    oes_levels,
    pump_down_s,
    wiring_rate_nm_min,
)
from .faults import TOOL_FAULTS, Faults
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
from .world import WaferState, World

IDN = "VIAFAB,PE-200,PE2-00417,2.1.0"
LOAD_S, STAB_S, STAB_LIMIT_S, VENT_S = 15.0, 10.0, 30.0, 30.0
JITTER = 0.05  # each duration is nominal × U(1 − 5 %, 1 + 5 %), inside the manual's ±10 %
REFL_NORMAL, REFL_FAULT, REFL_TAU = 0.015, 0.30, 0.25  # reflected / forward; ramp time constant
REFL_LIMIT, REFL_HOLD_S = 0.20, 5.0
CF4_MAX = 0.25

PENDING = ("LOADING", "PUMPING", "STABILIZING", "ETCHING", "OVERETCH", "VENTING")
JOB_STATES = ("STABILIZING", "ETCHING", "OVERETCH")
RF_STATES = ("ETCHING", "OVERETCH")
SETTABLE = ("IDLE", "READY", "COMPLETE")

#: alarm name → (the fault that causes it, the code it queues)
ALARMS: dict[str, tuple[str, int]] = {
    "DOOR_OPEN": ("door_open", 301),
    "VACUUM_LOSS": ("vacuum_loss", 302),
    "RF_REFLECTED": ("rf_reflected", 303),
    "GAS_FAULT": ("gas_fault", 304),
    "PUMP_FAULT": ("pump_fault", 302),
}


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


@dataclass
class Job:
    number: int
    label: str  # the id the host loaded the wafer as
    start: float
    status: str = "RUNNING"
    end: float | None = None
    run: EtchRun | None = None
    endpoint_x: float | None = None  # RF seconds to the OES endpoint, if found by ETCH:TIME
    history: list[str] = field(default_factory=list)


class EtcherSim(ScpiInstrument):
    """The PE-200: SCPI surface, state machine, alarms, and the world's ``etcher`` port."""

    error_texts = {
        301: "Interlock open",
        302: "Pressure fault",
        303: "RF fault",
        304: "Gas fault",
        305: "No wafer",
    }

    def __init__(
        self, world: World, clock: Any, faults: Faults, rng_seed: int | None = None
    ) -> None:
        super().__init__(IDN, clock)
        self.world, self.faults = world, faults
        self._rng = random.Random(rng_seed)
        self._t = clock.now()
        self.state, self._prev, self._after_pump = "IDLE", "IDLE", "READY"
        self._phase_start, self._phase_end = self._t, None
        self._stab_t10 = 0.0
        self.settings: dict[str, Any] = {s.key: s.default for s in SETTINGS}
        self.wafer: WaferState | None = None
        self.label: str | None = None
        self._vacuum = False
        self._aborted = False  # the wafer in the tool had its job aborted
        self.alarms: dict[str, int] = {}
        self._seen: frozenset[str] = frozenset()  # process faults the model has applied
        self._refl_since = 0.0
        self.chamber = Chamber(self._t)
        self.jobs: list[Job] = []
        self._counts: dict[str, int] = {}
        self._run: EtchRun | None = None  # the current or last RF period
        self._open_at_start = False
        self._result_removed = 0.0
        self._result_wafer: WaferState | None = None
        self._register()
        world.register_port("etcher", self)
        faults.subscribe(self._on_fault)

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
        present = self.world.at("etcher")
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

    def _resume(self, t: float) -> None:
        """Back to the state before the alarm; a lost vacuum is pumped again first."""
        prev = self._prev
        if prev in ("READY", "COMPLETE") and self.chamber.pressure.value(t) > BASE:
            self._after_pump = prev
            prev = "PUMPING"
        self._enter(prev, t)

    # ================================================================ readings
    def _forward(self) -> float:
        return self.settings["power"] if self.state in RF_STATES else 0.0

    def _refl_frac(self) -> float:
        if self.state not in RF_STATES or "rf_reflected" not in self._seen:
            return REFL_NORMAL
        assert self._run is not None
        since = max(self._run.rf_on, self._refl_since)
        return REFL_FAULT - (REFL_FAULT - REFL_NORMAL) * math.exp(-(self._t - since) / REFL_TAU)

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

    # ================================================================ the model
    def pending(self) -> bool:
        return self.state in PENDING

    def update(self) -> None:
        now = max(self.clock.now(), self._t)
        while True:
            event = self._next_event()
            if event is None or event[0] > now:
                break
            t, kind = event
            self._t = max(self._t, t)
            if kind == "rf":
                self._raise("RF_REFLECTED", t)
            else:
                self._end_phase(t)
        self._t = now
        self._sync_faults(now)

    def _on_fault(self, name: str, on: bool, params: dict) -> None:
        self.update()  # advances under the old faults, then applies the new ones

    def _next_event(self) -> tuple[float, str] | None:
        events: list[tuple[float, str]] = []
        if self._phase_end is not None:
            events.append((self._phase_end, "phase"))
        t_rf = self._rf_alarm_time()
        if t_rf is not None:
            events.append((t_rf, "rf"))
        return min(events) if events else None

    def _rf_alarm_time(self) -> float | None:
        """When reflected power will have been above 20 % of forward for 5 s."""
        if self.state not in RF_STATES or "rf_reflected" not in self._seen or not self._run:
            return None
        since = max(self._run.rf_on, self._refl_since)
        cross = REFL_TAU * math.log((REFL_FAULT - REFL_NORMAL) / (REFL_FAULT - REFL_LIMIT))
        return since + cross + REFL_HOLD_S

    def _sync_faults(self, t: float) -> None:
        seen = frozenset(n for n in self.faults.active if n in TOOL_FAULTS["etcher"])
        if seen == self._seen:
            return
        if "rf_reflected" in seen - self._seen:
            self._refl_since = t
        self._seen = seen
        if "door_open" in seen:
            self._vacuum = False
        self._reaim(t)
        if self.state == "STABILIZING":
            self._schedule_stab(t)
        self._check_alarms(t)

    def _jitter(self) -> float:
        return 1.0 + self._rng.uniform(-JITTER, JITTER)

    def _conditions(self) -> Conditions:
        s = self._seen
        return Conditions(
            vacuum=self._vacuum,
            venting=self.state == "VENTING",
            gas_on=self.state in JOB_STATES,
            door_open="door_open" in s,
            leak="vacuum_loss" in s,
            pump_dead="pump_fault" in s,
            gas_fault="gas_fault" in s,
        )

    def _reaim(self, t: float) -> None:
        st = self.settings
        self.chamber.apply(t, self._conditions(), st["o2"], st["cf4"], st["pressure"])

    def _enter(self, state: str, t: float) -> None:
        self.state, self._phase_start, self._phase_end = state, t, None
        if state == "PUMPING":
            self._vacuum = True
            self.chamber.pump_tau = CHAMBER_V / PUMP_S * self._jitter()
        elif state == "VENTING":
            self._vacuum = False
        self._reaim(t)
        if state == "LOADING":
            self._phase_end = t + LOAD_S * self._jitter()
        elif state == "PUMPING":
            p = self.chamber.pressure.value(t)
            self._phase_end = t + pump_down_s(p, BASE, self.chamber.pressure.tau)
        elif state == "STABILIZING":
            self._stab_t10 = t + STAB_S * self._jitter()
            self._schedule_stab(t)
        elif state == "ETCHING":
            self._rf_on(t)
        elif state == "VENTING":
            self._phase_end = t + VENT_S * self._jitter()
        self._check_alarms(t)

    def _end_phase(self, t: float) -> None:
        s = self.state
        if s == "LOADING":
            self._enter("PUMPING", t)
        elif s == "PUMPING":
            self._log(f"pumped down to {nr2(self.chamber.pressure.value(t))} mTorr")
            target, self._after_pump = self._after_pump, "READY"
            self._enter(target, t)
        elif s == "STABILIZING":
            self._stabilized(t)
        elif s == "ETCHING":
            assert self._run is not None
            main = t - self._run.rf_on
            self._enter("OVERETCH", t)
            if self.state == "OVERETCH":  # no alarm on the way in
                self._phase_end = t + main * self.settings["overetch"] / 100.0
        elif s == "OVERETCH":
            self._rf_off(t)
            job = self.jobs[-1]
            job.status, job.end = "DONE", t
            self._enter("COMPLETE", t)
            if self.state == "COMPLETE" and not self._seen:
                self.chamber.pumped_out(t)
        elif s == "VENTING":
            self._log("vented; wafer at the load position")
            self.wafer, self.label, self._aborted = None, None, False
            self._enter("IDLE", t)
            if self.alarms:
                self._to_alarm(t)

    def _schedule_stab(self, t: float) -> None:
        st, limit = self.settings, self._phase_start + STAB_LIMIT_S
        ready = self.chamber.settle_time(
            max(t, self._stab_t10), limit, st["o2"], st["cf4"], st["pressure"]
        )
        self._phase_end = limit if ready is None else ready

    def _stabilized(self, t: float) -> None:
        st = self.settings
        p_ok, f_ok = self.chamber.settled(t, st["o2"], st["cf4"], st["pressure"])
        if p_ok and f_ok:
            self._enter("ETCHING", t)
            return
        for ok, name, code in ((f_ok, "GAS_FAULT", 304), (p_ok, "VACUUM_LOSS", 302)):
            if not ok:
                self.push_error(code)
                if ALARMS[name][0] in self._seen:
                    self.alarms.setdefault(name, code)
        self._abort_job(t, "not stable after 30 s")
        self._to_alarm(t)

    def _rf_on(self, t: float) -> None:
        assert self.wafer is not None
        st, w = self.settings, self.wafer
        rate = etch_rate_nm_min(st["power"], st["pressure"], st["o2"], st["cf4"], w.degree_of_cure)
        r0 = None if w.residual_pre_cure_um is None else w.residual_pre_cure_um * (1 - w.shrink)
        co0, o0 = oes_levels(st["power"], st["o2"], st["cf4"], rate)
        run = EtchRun(t, rate / 60_000.0, w.removed_um, ClearProfile(r0, w.spread_max), co0, o0)
        self._run = self.jobs[-1].run = run
        self._open_at_start = w.vias_open
        arm = 0.5 * st["target"] / run.rate_um_s if run.rate_um_s > 0 else 0.0
        ep = run.endpoint(arm, st["time"])
        self.jobs[-1].endpoint_x = ep
        main = ep if st["endpoint"] and ep is not None else st["time"]
        self._phase_end = t + main

    def _rf_off(self, t: float) -> None:
        """RF off: the wafer has lost what this run removed; write it to the world."""
        run, w = self._run, self.wafer
        assert run is not None and w is not None
        run.rf_off = t
        x = t - run.rf_on
        removed = run.removed(x)
        st = self.settings
        with self.world.lock:
            w.removed_um += removed
            recess = 0.0
            if self._open_at_start:
                recess = wiring_rate_nm_min(st["power"], st["o2"], st["cf4"]) * x / 60_000.0
                w.wiring_recess_um += recess
        self._result_removed, self._result_wafer = removed, w
        ep = self.jobs[-1].endpoint_x
        self._log(
            f"RF off after {x:.1f} s: removed {removed:.3f} um, endpoint "
            f"{'-' if ep is None else f'{ep:.1f} s'}, recess +{recess:.3f} um, "
            f"vias open {w.vias_open}"
        )

    def _abort_job(self, t: float, why: str) -> None:
        if self.state in RF_STATES:
            self._rf_off(t)
        job = self.jobs[-1]
        job.status, job.end = "ABORTED", t
        self._aborted = True
        self._log(f"etch job {job.number} aborted: {why}")

    def _to_alarm(self, t: float) -> None:
        if self.state != "ALARM":
            self._prev = self.state
            self.state, self._phase_end = "ALARM", None
            self._reaim(t)

    def _check_alarms(self, t: float) -> None:
        """Raise every alarm whose cause is present and can be seen in this state."""
        s = self._seen
        if "door_open" in s:
            self._raise("DOOR_OPEN", t)
        if "pump_fault" in s:
            self._raise("PUMP_FAULT", t)
        if "vacuum_loss" in s and self._vacuum and self.state != "STABILIZING":
            self._raise("VACUUM_LOSS", t)
        if "gas_fault" in s and self.state in RF_STATES:
            self._raise("GAS_FAULT", t)

    def _raise(self, name: str, t: float) -> None:
        if name in self.alarms:
            return
        code = ALARMS[name][1]
        self.alarms[name] = code
        self.push_error(code)
        self._log(f"alarm {name} (+{code}) in {self.state}")
        if self.state in JOB_STATES:
            self._abort_job(t, name)
        self._to_alarm(t)

    # ================================================================ helpers
    def _log(self, event: str) -> None:
        if self.wafer is not None:
            self.world.log(self.wafer.wafer_id, "etcher", event)

    def _recipe_text(self) -> str:
        st = self.settings
        return (
            f"O2 {st['o2']} CF4 {st['cf4']} sccm, {st['pressure']} mTorr, {st['power']} W, "
            f"{st['time']} s, overetch {st['overetch']} %, endpoint {int(st['endpoint'])}, "
            f"target {st['target']} um"
        )

    # ================================================================ world port
    def can_place(self, wafer_ids: list[str]) -> str | None:
        if len(wafer_ids) != 1:
            return "the PE-200 load lock takes one wafer at a time"
        if self.world.at("etcher"):
            return "a wafer is already at the etcher"
        return None

    def can_take(self, wafer_ids: list[str]) -> str | None:
        if self.wafer is not None and self.wafer.wafer_id in wafer_ids:
            return f"{self.wafer.wafer_id} is inside the etcher (state {self.state})"
        return None

    def placed(self, wafer_ids: list[str]) -> None:
        """A wafer arrived at the load position; WAFer:LOAD takes it in."""

    def taken(self, wafer_ids: list[str]) -> None:
        """A wafer left the load position."""
