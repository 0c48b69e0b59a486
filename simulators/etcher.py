"""PE-200 single-wafer plasma etcher simulator (manual: tools/plasma-etcher.md).

An exact event-driven model: every phase's end (load, pump-down, stabilisation,
main etch or OES endpoint, overetch, vent) and every alarm time is computed in
tool time, and :meth:`EtcherSim.update` processes them in order up to
``clock.now()``, however far that is. Physics lives in :mod:`etcher_model`, the
SCPI commands and settings in :mod:`etcher_scpi`, the manual's figures in :mod:`etcher_spec`.
Fault changes are applied at the moment they happen: the fault listener first
advances the model under the old faults, then applies the new ones.
"""

from __future__ import annotations

import math
import random
from typing import Any

from .etcher_model import (
    BASE,
    CHAMBER_V,
    PUMP_S,
    Chamber,
    ClearProfile,
    Conditions,
    EtchRun,
    etch_rate_nm_min,
    oes_levels,
    pump_down_s,
    wiring_rate_nm_min,
)
from .etcher_scpi import SETTINGS, EtcherScpi
from .etcher_spec import (
    ALARMS,
    IDN,
    JITTER,
    JOB_STATES,
    LOAD_S,
    PENDING,
    REFL_FAULT,
    REFL_HOLD_S,
    REFL_LIMIT,
    REFL_NORMAL,
    REFL_TAU,
    RF_STATES,
    STAB_LIMIT_S,
    STAB_S,
    VENT_S,
    Job,
)
from .faults import TOOL_FAULTS, Faults
from .scpi import nr2
from .world import WaferState, World


class EtcherSim(EtcherScpi):
    """The PE-200: state machine, alarms, and the world's ``etcher`` port (SCPI: the base)."""

    def __init__(
        self,
        world: World,
        clock: Any,
        faults: Faults,
        rng_seed: int | None = None,
        name: str = "etcher",
    ) -> None:
        self.location = name  # its name on the line: the world's location of its load lock
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
        world.register_port(name, self)
        faults.subscribe(self._on_fault)

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
        if name == "power_cycle" and on:
            with self.world.lock:
                self.power_cycle()
            return
        self.update()  # advances under the old faults, then applies the new ones

    # ================================================================ power cycle
    def on_power_off(self) -> None:
        """RF, gas and pumps stop now; an etch under way keeps what it removed so far."""
        self.update()
        if self.state in JOB_STATES:
            self._abort_job(self._t, "power off")

    def on_power_on(self) -> None:
        """The manual's power-on; a wafer still in the chamber is sensed (docs/sim-etcher.md).

        No records (jobs, counts, label, results, OES trace), defaults, RF and gas off, throttle
        open, the chamber venting. A wafer inside brings the tool up in ALARM, to be unloaded
        (``WAFer:UNLoad``) before anything else; ``ALARm?`` names nothing.
        """
        t = self._t
        self.settings = {s.key: s.default for s in SETTINGS}
        self.jobs, self._counts, self._run = [], {}, None
        self._result_removed, self._result_wafer, self._open_at_start = 0.0, None, False
        self.alarms, self._seen, self._refl_since = {}, frozenset(), t
        self.label, self._after_pump, self._prev = None, "READY", "IDLE"
        self._phase_start, self._phase_end, self._vacuum = t, None, False
        if self.wafer is None:
            self.state, self._aborted = "IDLE", False
        else:
            self.state, self._aborted = "ALARM", True
            self._log("power on with the wafer in the chamber: ALARM until unloaded")
        self._reaim(t)
        self._sync_faults(t)  # an alarm whose cause is present at power-on is raised again

    def _next_event(self) -> tuple[float, str] | None:
        events: list[tuple[float, str]] = []
        if self._phase_end is not None:
            events.append((self._phase_end, "phase"))
        t_rf = self._rf_alarm_time()
        if t_rf is not None:
            events.append((t_rf, "rf"))
        return min(events) if events else None

    def _refl_frac(self) -> float:
        if self.state not in RF_STATES or "rf_reflected" not in self._seen:
            return REFL_NORMAL
        assert self._run is not None
        since = max(self._run.rf_on, self._refl_since)
        return REFL_FAULT - (REFL_FAULT - REFL_NORMAL) * math.exp(-(self._t - since) / REFL_TAU)

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

    def _resume(self, t: float) -> None:
        """Back to the state before the alarm; a lost vacuum is pumped again first."""
        prev = self._prev
        if prev in ("READY", "COMPLETE") and self.chamber.pressure.value(t) > BASE:
            self._after_pump = prev
            prev = "PUMPING"
        self._enter(prev, t)

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
            self.world.log(self.wafer.wafer_id, self.location, event)

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
        if self.world.at(self.location):
            return f"a wafer is already at the {self.location}"
        return None

    def can_take(self, wafer_ids: list[str]) -> str | None:
        if self.wafer is not None and self.wafer.wafer_id in wafer_ids:
            return f"{self.wafer.wafer_id} is inside the etcher (state {self.state})"
        return None

    def placed(self, wafer_ids: list[str]) -> None:
        """A wafer arrived at the load position; WAFer:LOAD takes it in."""

    def taken(self, wafer_ids: list[str]) -> None:
        """A wafer left the load position."""
