"""Expose + develop one wafer on the LX-365 (the first process: concave portions).

move in → settings (IDLE) → LOAD → READY → EXPOSURE:STARt → EXPOSED →
DEVELOP:STARt → COMPLETE → results → UNLOAD → IDLE → move out. Durations from
the manual: load 20 s, fields × (dose / intensity + 0.25 s), develop + 10 s
measure, unload 15 s.
"""

from __future__ import annotations

from functools import partial

from sequencer.process.recipes import ExposureRecipe
from sequencer.runner.protocols import ExposureProto
from sequencer.runner.steps import (
    StepContext,
    ToolHandle,
    bind,
    due,
)
from sequencer.runner.steps.checks import check_job_records, check_readback
from sequencer.runner.steps.live import LiveReadings
from sequencer.runner.steps.safety import SAFE_PARAMS, ensure_idle, run_wafer_step
from sequencer.runner.steps.start import load_wafer, send_start, unload_and_out
from sequencer.states.substrate import Substrate

PHASES = ("", "in", "setup", "load", "loaded", "start_exposure", "exposed", "start_develop",
          "developed", "unload", "unloaded", "out")
TIMING = {"load_s": 20.0, "unload_s": 15.0, "measure_s": 10.0, "fields": 52, "step_s": 0.25}
_ACTIVE = {"LOADING", "EXPOSING", "DEVELOPING", "MEASURING"}
_UNLOADABLE = {"READY", "EXPOSED", "COMPLETE", "ALARM"}
SAFE_PARAMS["expose"] = ("exposure", _ACTIVE, _UNLOADABLE, TIMING["unload_s"])


async def expose_wafer(ctx: StepContext, h: ToolHandle[ExposureProto], w: Substrate,
                       recipe: ExposureRecipe) -> bool:
    """Run (or resume) the step for ``w`` on the exposure cell ``h``. True when developed
    and back in the stocker; False when the wafer ended ABORTED/STOPPED (the reason is on
    it). ToolDown passes."""
    h.current_lot = w.lot_id
    with bind(lot_id=w.lot_id, wafer_id=w.wafer_id, tool=h.name, step="expose"):
        return await run_wafer_step(ctx, h, w, "expose", label="exposure",
                                    begun=lambda: not due(w, "start_exposure", PHASES),
                                    run=partial(_run, ctx, h, w, recipe))


async def _run(ctx: StepContext, h: ToolHandle[ExposureProto], w: Substrate,
               r: ExposureRecipe) -> None:
    intensity = 1000.0
    expected = (TIMING["load_s"] + TIMING["fields"] * (float(r.dose_mj_cm2) / intensity
                                                       + TIMING["step_s"])
                + float(r.develop_s) + TIMING["measure_s"] + TIMING["unload_s"])
    LiveReadings(ctx, h.name, "expose", [w]).publish(0.0, expected,
                                                     {"dose_mj_cm2": r.dose_mj_cm2})
    if due(w, "in", PHASES):
        await ensure_idle(ctx, h)
        await check_job_records(ctx, h, w)
        await ctx.move([w], h.name, phase="in")
    if due(w, "setup", PHASES):
        await ensure_idle(ctx, h)
        await h.q(h.driver.remote)
        await h.q(h.driver.set_many, {"dose": r.dose_mj_cm2, "focus": r.focus_um,
                                      "develop_time": int(r.develop_s), "reticle": r.reticle})
        w.data.dose = float(r.dose_mj_cm2)
        ctx.mark([w], "setup")
    await load_wafer(ctx, h, w, PHASES, TIMING["load_s"], "load")
    exposing = due(w, "start_exposure", PHASES)
    if exposing:
        await check_readback(h, {"dose": float(r.dose_mj_cm2), "focus": float(r.focus_um),
                                 "develop_time": int(r.develop_s), "reticle": r.reticle})
        await send_start(ctx, h, "START_EXPOSURE", [w], h.driver.start_exposure,
                         record={"dose": r.dose_mj_cm2}, phase="start_exposure")
    if due(w, "exposed", PHASES):
        st = await h.q(h.driver.status)
        intensity = float(getattr(st, "intensity", 0) or intensity)
        expose_s = TIMING["fields"] * (float(r.dose_mj_cm2) / intensity + TIMING["step_s"])
        await h.wait(h.driver.state, {"EXPOSED"}, expose_s, "exposure",
                     fail={"ALARM", "IDLE"}, just_started=exposing)
        ctx.mark([w], "exposed")
    developing = due(w, "start_develop", PHASES)
    if developing:
        await send_start(ctx, h, "START_DEVELOP", [w], h.driver.start_develop,
                         phase="start_develop")
    if due(w, "developed", PHASES):
        await h.wait(h.driver.state, {"COMPLETE"}, float(r.develop_s) + TIMING["measure_s"],
                     "develop", fail={"ALARM", "IDLE"}, just_started=developing)
        res = await h.q(h.driver.result)
        w.data.depth_um = float(res.depth_um)
        w.data.residual_um = float(res.residual_um)
        w.data.developed = True
        w.data.develop_end = ctx.clock.now()
        ctx.journal.result(w.wafer_id, "expose", {
            "tool": h.name, "dose": w.data.dose, "depth_um": w.data.depth_um,
            "residual_um": w.data.residual_um, "cd_um": getattr(res, "cd_um", None)})
        ctx.mark([w], "developed")
    await unload_and_out(ctx, h, w, PHASES, TIMING["unload_s"], "unload")
