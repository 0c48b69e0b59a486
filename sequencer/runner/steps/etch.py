"""Dry-etch one wafer on the PE-200 (the second process: open the via bottoms).

Main etch time: the recipe's (``main_etch_s_for``: residual after cure × … / rate
for flow A, the recipe's fixed time for flow B); with endpoint on, ``ETCH:TIME``
is the limit ``max_main_factor`` × expected and ``ETCH:TARGet`` the residual.
apply_recipe (IDLE) → move in → LOAD → READY → ETCH:STARt → COMPLETE (or ALARM)
→ removed / open / OES trace → UNLOAD → IDLE → move out. Durations from the
manual: load + pump 45 s, stabilise ≤ 30 s, etch + overetch, vent 30 s.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from functools import partial

from sequencer.process.recipes import EtchRecipe
from sequencer.runner.protocols import EtcherProto, state_name
from sequencer.runner.steps import (
    StepContext,
    StepFailed,
    ToolHandle,
    apply_fate,
    bind,
    due,
)
from sequencer.runner.steps.checks import check_job_records, check_readback
from sequencer.runner.steps.live import EtchWatch
from sequencer.runner.steps.safety import SAFE_PARAMS, ensure_idle, run_wafer_step
from sequencer.runner.steps.start import load_wafer, send_start, unload_and_out
from sequencer.states.substrate import Substrate

PHASES = ("", "recipe", "in", "load", "loaded", "start_etch", "etched", "unload", "unloaded",
          "out")
TIMING = {"load_s": 45.0, "stabilize_s": 30.0, "vent_s": 30.0}
_ACTIVE = {"STABILIZING", "ETCHING", "OVERETCH"}
_UNLOADABLE = {"READY", "COMPLETE", "ALARM"}
SAFE_PARAMS["etch"] = ("etcher", _ACTIVE, _UNLOADABLE, TIMING["vent_s"])


@dataclass(frozen=True)
class EtchPlan:
    """The etcher settings for one wafer (the fields ``apply_recipe`` takes, in the
    manual's units) and the expected main etch time. ``settings()`` is what is read back
    before ETCH:STARt; the whole plan goes in the START_ETCH record and the result."""

    o2: float  # sccm
    cf4: float  # sccm
    pressure: float  # mTorr
    rf_power: float  # W
    etch_time: int  # s: the main etch (the limit when endpoint is on)
    overetch: int  # %
    endpoint: bool
    target: float  # um of residual the endpoint looks for; 0 without endpoint
    expected_s: int  # the expected main etch, s

    def settings(self) -> dict[str, float | int | bool]:
        values = asdict(self)
        del values["expected_s"]
        return values

    def record(self) -> dict[str, float | int | bool]:
        return asdict(self)


def etch_plan(recipe: EtchRecipe, residual_after_cure_um: float) -> EtchPlan:
    """The etcher settings for one wafer, and the expected main etch time (s)."""
    endpoint = bool(recipe.endpoint)
    return EtchPlan(
        o2=recipe.o2_sccm, cf4=recipe.cf4_sccm, pressure=recipe.pressure_mtorr,
        rf_power=recipe.rf_power_w,
        etch_time=int(recipe.etch_time_s_for(residual_after_cure_um)),
        overetch=int(recipe.overetch_pct), endpoint=endpoint,
        target=round(min(20.0, max(0.0, residual_after_cure_um)), 3) if endpoint else 0.0,
        expected_s=int(recipe.main_etch_s_for(residual_after_cure_um)))


def queue_time_breach(ctx: StepContext, w: Substrate) -> str | None:
    """The reason ``w`` may not start etching (cure → etch queue time), or None."""
    if not w.data.cured or w.data.cure_end is None:
        return "held for disposition: not cured, may not be etched"
    waited = ctx.clock.now() - w.data.cure_end
    if waited > ctx.config.q_cure_etch_s:
        return (f"held for disposition: cure→etch queue time {waited / 3600:.2f} h "
                f"> {ctx.config.q_cure_etch_s / 3600:.2f} h")
    return None


async def etch_wafer(ctx: StepContext, h: ToolHandle[EtcherProto], w: Substrate,
                     recipe: EtchRecipe) -> bool:
    """Run (or resume) the step on the etcher ``h``. True when etched and open; False
    otherwise (the wafer is REJECTED, ABORTED or STOPPED with the reason). ToolDown
    passes."""
    h.current_lot = w.lot_id
    with bind(lot_id=w.lot_id, wafer_id=w.wafer_id, tool=h.name, step="etch"):
        if due(w, "load", PHASES) and (why := queue_time_breach(ctx, w)):
            apply_fate(w, "hold", why)
            return False
        if not await run_wafer_step(ctx, h, w, "etch", label="etch",
                                    begun=lambda: not due(w, "start_etch", PHASES),
                                    run=partial(_run, ctx, h, w, recipe)):
            return False
    if w.data.open:
        w.complete()
        return True
    w.reject(reason=f"not open after etch: removed {w.data.removed_um} um, "
                    f"residual after cure {w.data.residual_after_cure_um} um")
    return False


async def _run(ctx: StepContext, h: ToolHandle[EtcherProto], w: Substrate,
               r: EtchRecipe) -> None:
    plan = etch_plan(r, float(w.data.residual_after_cure_um or 0.0))
    if due(w, "recipe", PHASES):
        await ensure_idle(ctx, h)
        await check_job_records(ctx, h, w)
        await h.q(h.driver.apply_recipe, plan.o2, plan.cf4, plan.pressure, plan.rf_power,
                  plan.etch_time, plan.overetch, plan.endpoint, plan.target)
        w.data.etch_time_s = plan.expected_s
        ctx.mark([w], "recipe")
    if due(w, "in", PHASES):
        await ctx.move([w], h.name, phase="in")
    await load_wafer(ctx, h, w, PHASES, TIMING["load_s"], "load + pump-down")
    if due(w, "start_etch", PHASES):
        if why := queue_time_breach(ctx, w):
            raise StepFailed("hold", why)
        await check_readback(h, plan.settings())
        w.data.etch_start = ctx.clock.now()
        await send_start(ctx, h, "START_ETCH", [w], h.driver.start_etch, record=plan.record(),
                         phase="start_etch")
    if due(w, "etched", PHASES):
        expected = TIMING["stabilize_s"] + plan.etch_time * (1 + plan.overetch / 100)
        watch = EtchWatch(ctx, h, w, stabilize_s=TIMING["stabilize_s"],
                          main_s=plan.etch_time, overetch_pct=plan.overetch,
                          vent_s=TIMING["vent_s"], endpoint=plan.endpoint)
        line = await h.wait(watch.poll, {"COMPLETE"}, expected, "etch",
                            read=lambda v: state_name(v.state), fail={"ALARM", "IDLE"},
                            on_poll=watch.observe, sparse=False)  # each poll: an O point
        res = await h.q(h.driver.result)
        trace = list(await h.q(h.driver.oes_trace))
        w.data.removed_um = float(res.removed_um)
        w.data.open = bool(res.all_open)
        w.data.etched = True
        ctx.journal.result(w.wafer_id, "etch", {
            "tool": h.name, "removed_um": w.data.removed_um, "open": w.data.open,
            "elapsed_s": getattr(line, "elapsed_s", None),
            "endpoint_s": getattr(line, "endpoint_s", None), **plan.record()})
        ctx.journal.trace(w.wafer_id, "oes_co", trace)
        ctx.journal.trace(w.wafer_id, "oes_o", watch.o_trace)
        ctx.mark([w], "etched")
    await unload_and_out(ctx, h, w, PHASES, TIMING["vent_s"], "vent + unload")
