"""LX-365 exposure cell simulator: the operations model, alarms acting on it, the world port.

The tool as its manual (`/work/shared/tools/exposure-tool.md`) describes it, on the shared
SCPI core; its commands and settings are :mod:`simulators.exposure_scpi`, its alarm table
:mod:`simulators.exposure_alarms`. The model is event-driven: each running operation
knows its end time, and :meth:`ExposureSim.update` completes operations in
order up to ``clock.now()``, so one update may cover many tool seconds
exactly. The resin physics is :mod:`simulators.exposure_model`. Every choice
the manual leaves open is in `docs/sim-exposure.md`. All state changes happen
under ``world.lock`` (commands, ticks, fault listeners and material handling).
"""

from __future__ import annotations

import random
from collections import Counter
from typing import Any

from simulators import exposure_model as model
from simulators.clock import ScaledClock
from simulators.exposure_alarms import (
    ABORTED_BY_ALARM,
    ALARM_CODES,
    ALARMS,
    FAULT_ALARMS,
    STOPS,
    WARNINGS,
)
from simulators.exposure_model import Job, Operation, State
from simulators.exposure_scpi import ExposureScpi
from simulators.faults import Faults
from simulators.world import World

TOOL = "exposure"


class ExposureSim(ExposureScpi):
    """The LX-365 exposure cell; also the world's ``exposure`` port (load position + chuck)."""

    def __init__(
        self,
        world: World,
        clock: ScaledClock,
        faults: Faults,
        rng_seed: int | None = None,
        name: str = TOOL,
    ) -> None:
        self.location = name  # its name on the line: the world's location of its chuck
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
        present = world.at(name)
        self.load_pos = present[0] if present else None
        world.register_port(name, self)
        faults.subscribe(self._on_fault)

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
        if name == "power_cycle" and on:
            with self.world.lock:
                self.power_cycle()
        elif name in FAULT_ALARMS:
            self.update()  # at once, so an alarm acts at the moment its fault appears

    # ----------------------------------------------------------- power cycle
    def on_power_off(self) -> None:
        """Shutter closed, motion stopped: what a running operation did so far stays done."""
        self.update()
        if self.op is not None:
            self._abort("power off")  # partial dose / develop written to the world
        self.shutter_open = False

    def on_power_on(self) -> None:
        """The manual's power-on; a wafer still on the chuck is sensed (docs/sim-exposure.md).

        The records are gone (no jobs, counts 0, no wafer id, no results) but the wafer is
        not: the cell comes up in ALARM with it, as ``*RST`` does, and only ``WAFer:UNLoad``
        (after ``SYSTem:REMote``) gets it out. The per-field doses stay: they are the resin's.
        """
        self.control = "LOCAL"
        self._defaults()
        self.jobs, self.expose_counts = [], Counter()
        self.alarms, self.causes, self.alarm_meanwhile = set(), set(), False
        self.op, self.results, self.wafer_id, self.film_um = None, None, None, None
        self.before_alarm = State.IDLE
        if self.chuck is None:
            self.state, self.needs_unload = State.IDLE, False
        else:
            self.state, self.needs_unload = State.ALARM, True
            self._log("power on with the wafer on the chuck: ALARM until unloaded")
        self._sync_causes()  # an alarm whose cause is present at power-on is raised again

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

    def _begin(self, state: State, duration: float, **kw: Any) -> None:
        if state != State.MEASURING:  # measuring continues the develop operation
            self.alarm_meanwhile = False
        self.op = Operation(state, self._t, self._t + duration, **kw)
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
            self.world.log(self.chuck, self.location, event)

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
