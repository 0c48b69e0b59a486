"""Cure one batch in the CV-25 oven (the wafers' resin, with the concave portions in it).

oven idle and cool → move the wafers in → (queue-time check) → upload the program
with a batch number the journal allocates (the driver verifies the read-back) →
lock the door → START → poll the status every poll period, recording the
temperature profile, until COMPLETE (time at temperature = time within ±3 °C of
the final target) or ABORTED (alarm, wafers held, alarms acknowledged) → move out.
The oven does not know wafer ids; the batch number ties the run to the wafers.
"""

from __future__ import annotations

import math
from typing import Any

from drivers.errors import ToolError
from sequencer.process.recipes import CureRecipe
from sequencer.runner.protocols import OvenProto, state_name
from sequencer.runner.steps import (
    SequencerConfig,
    StepContext,
    StepFailed,
    ToolAlarm,
    ToolDown,
    ToolHandle,
    ToolHeld,
    WaitTimeout,
    apply_fate,
    bind,
    due,
    log,
)
from sequencer.runner.steps.cure_watch import PROFILE_COLUMNS, CureWatch, alarm_names
from sequencer.runner.steps.live import LiveReadings
from sequencer.runner.steps.start import send_start
from sequencer.runner.tool_alarms import describe, holding
from sequencer.states.substrate import Substrate
from sequencer.store.manual_record import manual_note

PHASES = ("", "in", "upload", "start", "cured", "out")
_READY = {"IDLE", "COMPLETE", "ABORTED"}


def high_limit(recipe: CureRecipe) -> float:
    if recipe.high_limit_c is not None:
        return float(recipe.high_limit_c)
    return max(s.target_c for s in recipe.segments) + 25.0


#: O2 in air (ppm), what the chamber holds at START; the CV-25's purge floor (manual)
O2_AIR_PPM, O2_FLOOR_PPM = 209_000.0, 2.0
PURGE_TIMEOUT_S = 3600.0  # the manual: a purge that has not reached the limit ABORTs


def purge_s(recipe: CureRecipe, cfg: SequencerConfig) -> float:
    """The O2 purge from air to the recipe's limit at its N2 flow (PROCESS.md's
    c(t) = c0·e^(−Q·t/V) above the floor), at most the manual's 60 min."""
    limit, flow = float(recipe.o2_limit_ppm), float(recipe.n2_flow_slm)
    if limit <= O2_FLOOR_PPM or flow <= 0:
        return PURGE_TIMEOUT_S
    tau_s = 60.0 * cfg.oven_volume_l / flow
    return min(PURGE_TIMEOUT_S, tau_s * math.log((O2_AIR_PPM - O2_FLOOR_PPM)
                                                 / (limit - O2_FLOOR_PPM)))


def expected_cure_s(recipe: CureRecipe, ctx_config: SequencerConfig,
                    start_c: float | None = None) -> float:
    """Expected program duration (tool s) from START with the chamber at ``start_c``
    (default: ambient): the purge (heaters off: the chamber cools toward ambient with
    the oven's time constant meanwhile), each segment's ramp at its rate and its soak,
    then cooling to the unload temperature. The chamber follows a ramping setpoint, so
    a soak begins as its ramp ends (measured on the simulator: within one poll)."""
    cfg, amb = ctx_config, ctx_config.ambient_c
    t = purge_s(recipe, cfg)
    temp = amb + ((start_c if start_c is not None else amb) - amb) * math.exp(
        -t / cfg.oven_tau_s)
    for seg in recipe.segments:
        t += abs(seg.target_c - temp) / seg.ramp_c_per_min * 60.0 + seg.hold_min * 60.0
        temp = seg.target_c
    if temp > recipe.unload_c > amb:
        t += cfg.oven_tau_s * math.log((temp - amb) / (recipe.unload_c - amb))
    return t


def _program(ctx: StepContext, r: CureRecipe, batch_no: int) -> Any:
    segs = tuple((float(s.target_c), float(s.ramp_c_per_min), int(s.hold_min))
                 for s in r.segments)
    kw: dict[str, Any] = {
        "o2_limit_ppm": int(r.o2_limit_ppm), "n2_flow_slm": float(r.n2_flow_slm),
        "high_limit_c": high_limit(r), "unload_c": float(r.unload_c), "batch_no": batch_no}
    if ctx.make_program is not None:
        return ctx.make_program(segs, **kw)
    from drivers.oven import OvenProgram, Segment  # the production program type

    return OvenProgram(segments=tuple(Segment(*s) for s in segs), **kw)


def develop_cure_breach(ctx: StepContext, w: Substrate) -> str | None:
    if w.data.develop_end is None:
        return "held for disposition: not developed, may not be cured"
    waited = ctx.clock.now() - w.data.develop_end
    if waited > ctx.config.q_develop_cure_s:
        return (f"held for disposition: develop→cure queue time {waited / 3600:.2f} h "
                f"> {ctx.config.q_develop_cure_s / 3600:.2f} h")
    return None


Oven = ToolHandle[OvenProto]


def _held_reason(oven: str, names: tuple[str, ...], when: str) -> str:
    return (f"{oven} held {when}: {describe('oven', names)}; a person acknowledges it with "
            f"`viaform alarms --ack ID` once seen to (only then is ACK ALARMS sent)")


async def _hold_if_alarmed(oven: Oven, seen: tuple[str, ...], when: str) -> None:
    """ToolHeld if the oven shows (or showed during the batch: ``seen``) an alarm that
    holds it for a person. Warnings (DEVIATION) are logged only."""
    live = alarm_names(getattr(await oven.q(oven.driver.status), "alarms", ()))
    names = tuple(dict.fromkeys((*live, *seen)))
    held = holding("oven", names)
    if held:
        raise ToolHeld(oven.name, held, _held_reason(oven.name, held, when))
    if names:
        log.warning("oven warning", tool=oven.name, alarms=list(names), when=when)


async def _oven_ready(ctx: StepContext, h: Oven, unload_c: float, *,
                      before_batch: bool = True) -> None:
    """Idle (or finished) and at or below the unload temperature, door unlocked.

    ``before_batch``: an alarm that holds the oven (a latched high-limit trip …) raises
    ToolHeld at once, before any wafer goes in. After a failure (False) the wafers must
    come out first: the alarm is left for :func:`_hold_if_alarmed` once they are held.
    """
    deadline = ctx.clock.now() + ctx.config.tool_down_s + ctx.config.oven_tau_s * 2
    while True:
        st = await h.q(h.driver.status)
        name = state_name(st.state)
        held = holding("oven", alarm_names(getattr(st, "alarms", ())))
        if before_batch and held:
            raise ToolHeld(h.name, held, _held_reason(h.name, held, "before a batch"))
        if name in _READY and float(st.chamber_c) <= unload_c:
            if getattr(st, "door_locked", False):
                await h.q(h.driver.lock_door, False)
            return
        if ctx.clock.now() > deadline:
            raise ToolDown(h.name, f"not idle and cool: {name}, {st.chamber_c} °C")
        await ctx.clock.sleep(h.poll_s)


async def cure_batch(ctx: StepContext, h: Oven, wafers: list[Substrate],
                     recipe: CureRecipe) -> list[Substrate]:
    """Run (or resume) one batch on the oven ``h``. Returns the wafers cured; the others
    are held with the reason. ToolDown passes (the scheduler holds what is left)."""
    h.current_lot = wafers[0].lot_id
    watch = CureWatch(ctx, wafers, recipe, h.name)
    with bind(lot_id=wafers[0].lot_id, tool=h.name, step="cure"):
        ctx.begin(wafers, "cure", h.name)
        try:
            done = await _run(ctx, h, wafers, recipe, watch)
        except (ToolAlarm, WaitTimeout, StepFailed, ToolError) as exc:
            live = [w for w in wafers if not w.final]
            batch = live[0].data.cure_batch if live else "?"
            reason = exc.reason if isinstance(exc, StepFailed) else \
                f"held for disposition: cure batch {batch} failed: {exc}"
            lost = await _program_lost(h, exc, batch)
            if lost:
                reason = f"held for disposition: {lost}"
            reason += manual_note(ctx.journal, h.name, [w.wafer_id for w in live],
                                  ctx.clock.time_scale)
            if watch.summary():
                reason += f"; before it, {watch.summary()}"
            ctx.alarms.raise_(h.name, "CURE_FAILED", reason, lot_id=wafers[0].lot_id,
                              wafer_ids=[w.wafer_id for w in live])
            await _unload_after_failure(ctx, h, live, recipe)
            for w in live:
                apply_fate(w, "hold", reason)
            ctx.end(live, "cure", h.name, ok=False)
            if lost:
                raise ToolHeld(h.name, ("REBOOTED",), f"{lost}; its wafers are held") from exc
            seen = (*watch.seen_alarms(), *getattr(exc, "alarms", ()))  # ToolAlarm's too
            await _hold_if_alarmed(h, tuple(dict.fromkeys(seen)),
                                   f"after cure batch {batch} failed (its wafers are held)")
            return []
        excursion = [w for w in done if w.data.cure_excursion]
        for w in excursion:  # held before the step ends: no etch worker may pick it
            apply_fate(w, "hold", f"held for disposition: {w.data.cure_excursion}")
        if excursion:
            ctx.end(excursion, "cure", h.name, ok=False)
            done = [w for w in done if not w.data.cure_excursion]
    ctx.end(done, "cure", h.name, ok=True)
    if excursion:
        await _hold_if_alarmed(h, watch.seen_alarms(),
                               f"after the excursion of cure batch "
                               f"{excursion[0].data.cure_batch} (its wafers are held)")
    return done


async def _program_lost(oven: Oven, exc: Exception, batch: Any) -> str | None:
    """Why the oven forgot the batch (IDLE mid-program with another batch number: a
    power cycle resets it to 0), or None."""
    if not isinstance(exc, ToolAlarm) or exc.state != "IDLE":
        return None
    try:
        seen = int(await oven.q(oven.driver.batch_no))
    except (ToolError, ToolDown):
        return None
    if seen == batch:
        return None
    return (f"the {oven.name} lost cure batch {batch} mid-program (it reports IDLE, batch {seen}: "
            f"a power cycle?)")


async def _unload_after_failure(ctx: StepContext, h: Oven, wafers: list[Substrate],
                                r: CureRecipe) -> None:
    """Abort a program still running, let the chamber cool, move the wafers out. No ACK
    ALARMS: a latched trip stays latched on the oven for a person to see."""
    st = state_name((await h.q(h.driver.status)).state)
    if st in ("PURGING", "RUNNING", "PAUSED"):
        iid = ctx.journal.intent(h.name, "ABORT", wafer_ids=[w.wafer_id for w in wafers])
        await h.q(h.driver.abort)
        ctx.journal.outcome(iid, "OK")
    inside = [w for w in wafers if w.data.location == h.name]
    if inside:
        await _oven_ready(ctx, h, float(r.unload_c), before_batch=False)
        await ctx.move(inside, "stocker")


async def _run(ctx: StepContext, h: Oven, wafers: list[Substrate], r: CureRecipe,
               watch: CureWatch) -> list[Substrate]:
    first = wafers[0]
    if due(first, "in", PHASES):
        await _oven_ready(ctx, h, float(r.unload_c))
        await ctx.move(wafers, h.name, phase="in")
    if due(first, "upload", PHASES):
        late = [(w, why) for w in wafers if (why := develop_cure_breach(ctx, w))]
        if late:
            await ctx.move([w for w, _ in late], "stocker")
            for w, why in late:
                apply_fate(w, "hold", why)
                ctx.end([w], "cure", h.name, ok=False)
            wafers = [w for w in wafers if not w.final]
            if not wafers:
                return []
            first = wafers[0]
        seen = int(await h.q(h.driver.batch_no))
        batch = ctx.journal.allocate_batch(seen, r.name, [w.wafer_id for w in wafers])
        await h.q(h.driver.upload, _program(ctx, r, batch))
        for w in wafers:
            w.data.cure_batch = batch
            w.data.cure_excursion = ""  # a new batch: an earlier (released) one is history
        await h.q(h.driver.lock_door, True)
        ctx.mark(wafers, "upload")
    batch = int(first.data.cure_batch or 0)
    if due(first, "start", PHASES):
        for w in wafers:
            w.data.cure_start = ctx.clock.now()
        await send_start(ctx, h, "START", wafers, h.driver.start, before={"batch_no": batch},
                         record={"recipe": r.name}, phase="start")
        ctx.journal.set_batch_state(batch, "STARTED")
    if due(first, "cured", PHASES):
        await _follow(ctx, h, wafers, r, batch, watch)
        ctx.mark(wafers, "cured")
    if due(first, "out", PHASES):
        await ctx.move(wafers, "stocker", phase="out")
    return wafers


async def _follow(ctx: StepContext, h: Oven, wafers: list[Substrate], r: CureRecipe, batch: int,
                  watch: CureWatch) -> None:
    """Poll to COMPLETE, with the oven's input registers alone (``readings``: one Modbus
    request, where a full status is three; the alarm word carries door open, O2, N2 and
    over-temperature). Every reading goes into the profile (a header row naming the
    columns, then one row per poll: ``PROFILE_COLUMNS``) and through the excursion
    watch, which raises CURE_EXCURSION as each kind is detected and journals it on the
    wafers (``cure_excursion``) at once, so a restart mid-cure still holds the batch."""
    final_target = float(r.segments[-1].target_c)
    profile: list[list[Any]] = [list(PROFILE_COLUMNS)]
    at_temp = [0.0]
    t0 = ctx.clock.now()
    watch.batch = batch
    expected = expected_cure_s(r, ctx.config)
    live = LiveReadings(ctx, h.name, "cure", wafers)

    def record(st: Any) -> None:
        t = ctx.clock.now() - t0
        if len(profile) > 1 and abs(float(st.chamber_c) - final_target) <= ctx.config.band_c:
            at_temp[0] += t - profile[-1][0]
        profile.append(watch.row(round(t, 1), st))
        watch.observe(t, st)
        row = profile[-1]
        mark = (row[PROFILE_COLUMNS.index("state")], row[PROFILE_COLUMNS.index("segment")],
                row[PROFILE_COLUMNS.index("phase")])
        if live.due(mark):
            live.publish(t, expected, {**dict(zip(PROFILE_COLUMNS[1:], row[1:], strict=True)),
                                       "batch_no": batch}, mark=mark)

    try:
        await h.wait(h.driver.readings, {"COMPLETE"}, expected,
                     f"cure batch {batch}", read=lambda s: state_name(s.state),
                     fail={"ABORTED", "IDLE"}, on_poll=record, sparse=False)  # a profile
    finally:
        ctx.journal.trace(f"batch-{batch}", "oven_profile", profile)
        ctx.journal.trace(f"batch-{batch}", "cure_watch", watch.record())
    if int(await h.q(h.driver.batch_no)) != batch:
        raise StepFailed("hold", f"held for disposition: {h.name} reports another batch than "
                                 f"{batch}")
    ctx.journal.set_batch_state(batch, "COMPLETE")
    shrink = float(getattr(r, "shrink_fraction", 0.25))
    excursion = watch.summary()
    for w in wafers:
        w.data.cured = True  # the program ran to its end; an excursion still holds it
        w.data.cure_excursion = excursion or w.data.cure_excursion  # (kept over a restart)
        w.data.cure_end = ctx.clock.now()
        w.data.time_at_temp_s = round(at_temp[0], 1)
        if w.data.residual_um is not None:
            w.data.residual_after_cure_um = round(w.data.residual_um * (1 - shrink), 4)
        ctx.journal.result(w.wafer_id, "cure", {
            "tool": h.name, "batch_no": batch, "time_at_temp_s": w.data.time_at_temp_s,
            "residual_after_cure_um": w.data.residual_after_cure_um,
            "cure_excursion": w.data.cure_excursion})
