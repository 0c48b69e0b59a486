"""Cure excursions: what the oven reports at every poll of a batch, against the recipe.

Four kinds, each detected once per batch (a CURE_EXCURSION alarm at that moment, with
the batch's wafer ids) and then measured to the end of the program — worst value, how
long, at what chamber temperature — for the wafers' reason:

- **O2** — oxygen above the recipe's ``o2_limit_ppm`` once heating has begun (RUNNING,
  PAUSED, COOLING: after the purge, which itself waits for the limit). One reading is
  enough: the limit is already the recipe's tolerance, and the oven's own O2_HIGH bit
  uses the same limit (register 102).
- **N2** — nitrogen flow below 80 % of ``n2_flow_slm`` for ≥ 60 s while the oven flows
  it (PURGING … COOLING). The oven's own N2_FLOW_LOW is < 50 % for 30 s, which only
  sees a supply that has all but gone; 80 % catches a sagging supply while the purge
  still dilutes what leaks in. 60 s (12 polls at 5 s) rides over the mass-flow
  controller's start-up (τ ≈ 5 s) and a regulator's hiccup: the chamber's gas volume
  turns over in ~1.6 min at 50 slm, so a shorter dip cannot let air in.
- **BAND** — the chamber more than ±5 °C off the working setpoint for ≥ 60 s during a
  soak (phase soak). The controller starts a soak only once the chamber is within
  ±3 °C of target (CV-25 manual, program behaviour), so ±5 °C leaves 2 °C for the PI's
  settling and the thermocouple; the tool's own DEVIATION (15 °C for 60 s) is reported
  only, and 15 °C is a cure outside the recipe. 60 s matches the tool's own dwell.
- **SENSOR** — the chamber thermocouple broke (the oven aborts on it anyway).

An oven alarm bit counts for its kind whatever the measurement says (O2_HIGH → O2,
N2_FLOW_LOW → N2, DEVIATION → BAND, SENSOR_BREAK → SENSOR) and is named in the reason.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from sequencer.runner.protocols import state_name
from sequencer.states.substrate import Substrate

PROFILE_COLUMNS = ("t_s", "chamber_c", "wafer_c", "setpoint_c", "o2_ppm", "n2_slm",
                   "alarms", "state", "segment", "phase")

N2_FRACTION = 0.8
N2_MIN_S = 60.0
BAND_C = 5.0
BAND_MIN_S = 60.0
O2_FULL_SCALE = 0xFFFF  # input register 3 is a u16: air (209 000 ppm) reads 65535

_HEATING = frozenset({"RUNNING", "PAUSED", "COOLING"})
_N2_ON = frozenset({"PURGING", "RUNNING", "PAUSED", "COOLING"})
_ALARM_KIND = {"O2_HIGH": "O2", "N2_FLOW_LOW": "N2", "DEVIATION": "BAND",
               "SENSOR_BREAK": "SENSOR"}


def alarm_names(alarms: Any) -> tuple[str, ...]:
    """The alarm names of an ``OvenAlarm`` word (or of a tuple of names, as fakes give)."""
    if not alarms:
        return ()
    names = alarms.names() if hasattr(alarms, "names") else alarms
    return tuple(str(n) for n in names)


def _duration(s: float) -> str:
    return f"{s / 60:.0f} min" if s >= 60 else f"{s:.0f} s"


@dataclass
class _Kind:
    """One excursion kind over a batch. ``worse(a, b)`` is True if ``a`` is worse."""

    name: str
    min_s: float
    high_is_worse: bool
    found: bool = False  # detected (alarm raised)
    run_s: float = 0.0  # length of the current out-of-limit run
    counted: bool = False  # the current run is long enough and counted in out_s
    out_s: float = 0.0  # time out of limit, over the runs that counted
    last_t: float | None = None  # time of the previous out-of-limit reading
    worst: float | None = None
    worst_chamber: float | None = None
    worst_setpoint: float | None = None
    alarms: list[str] = field(default_factory=list)

    def step(self, t: float, out: bool, value: float | None, chamber: float | None,
             setpoint: float | None, alarm: str | None) -> bool:
        """One reading; True the first time the kind is detected."""
        if alarm and alarm not in self.alarms:
            self.alarms.append(alarm)
        out = out or alarm is not None
        if not out:
            self.run_s, self.counted, self.last_t = 0.0, False, None
            return False
        dt = t - self.last_t if self.last_t is not None else 0.0
        self.last_t = t
        self.run_s += dt
        if value is not None and (self.worst is None or
                                  (value > self.worst) == self.high_is_worse):
            self.worst, self.worst_chamber, self.worst_setpoint = value, chamber, setpoint
        if self.counted:
            self.out_s += dt
        elif self.run_s >= self.min_s or alarm is not None:
            self.counted, self.out_s = True, self.out_s + self.run_s
        if self.counted and not self.found:
            self.found = True
            return True
        return False


class CureWatch:
    """The excursion watch of one batch: ``observe`` every status, ``summary`` at the end
    (``cure excursion: O2 30072 ppm (limit 20) for 21 min at 318 °C; …``, or "")."""

    def __init__(self, ctx: Any, wafers: list[Substrate], recipe: Any,
                 tool: str = "oven") -> None:
        self.ctx, self.wafers, self.recipe = ctx, wafers, recipe
        self.tool = tool  # the oven's name (the alarm names it)
        self.batch: int | None = None
        self.o2_limit = float(recipe.o2_limit_ppm)
        self.n2_sp = float(recipe.n2_flow_slm)
        self.kinds = {"O2": _Kind("O2", 0.0, True), "N2": _Kind("N2", N2_MIN_S, False),
                      "BAND": _Kind("BAND", BAND_MIN_S, True),
                      "SENSOR": _Kind("SENSOR", 0.0, True)}
        self._seen: dict[str, None] = {}
        self._segment: dict[str, int | None] = {}
        self.detected: list[dict[str, Any]] = []  # each kind when first detected (t_s, text)

    @staticmethod
    def row(t: float, st: Any) -> list[Any]:
        """One profile row, in ``PROFILE_COLUMNS`` order."""
        phase = getattr(st, "phase", None)
        seg = getattr(st, "segment", None)
        return [t, st.chamber_c, getattr(st, "wafer_c", None), getattr(st, "setpoint_c", None),
                getattr(st, "o2_ppm", None), getattr(st, "n2_flow_slm", None),
                list(alarm_names(getattr(st, "alarms", ()))), state_name(st.state),
                seg, state_name(phase) if phase is not None else None]

    def seen_alarms(self) -> tuple[str, ...]:
        """Every oven alarm reported during the batch, in the order first seen."""
        return tuple(self._seen)

    def observe(self, t: float, st: Any) -> None:
        state = state_name(st.state)
        names = alarm_names(getattr(st, "alarms", ()))
        self._seen.update(dict.fromkeys(names))
        # an alarm bit counts where its measure would (O2_HIGH at the end of a failed
        # purge is that purge's failure, not an excursion of a cure that never heated)
        where = {"O2": state in _HEATING, "N2": state in _N2_ON,
                 "BAND": state == "RUNNING", "SENSOR": True}
        by_kind = {_ALARM_KIND[n]: n for n in names
                   if n in _ALARM_KIND and where[_ALARM_KIND[n]]}
        chamber = _num(getattr(st, "chamber_c", None))
        sp = _num(getattr(st, "setpoint_c", None))
        o2 = _num(getattr(st, "o2_ppm", None))
        n2 = _num(getattr(st, "n2_flow_slm", None))
        phase = getattr(st, "phase", None)
        soaking = state == "RUNNING" and phase is not None and state_name(phase) == "SOAK"
        dev = abs(chamber - sp) if chamber is not None and sp is not None else None
        checks = {
            "O2": (state in _HEATING and o2 is not None and o2 > self.o2_limit, o2),
            "N2": (state in _N2_ON and n2 is not None and n2 < N2_FRACTION * self.n2_sp, n2),
            "BAND": (soaking and dev is not None and dev > BAND_C, dev),
            "SENSOR": (False, None),
        }
        for name, (out, value) in checks.items():
            k = self.kinds[name]
            if name == "BAND" and out:
                self._segment["BAND"] = getattr(st, "segment", None)
            if k.step(t, out, value, chamber, sp, by_kind.get(name)):
                self.detected.append({"t_s": round(t, 1), "kind": name,
                                      "text": self._describe(k)})
                self._detected(k)

    def _detected(self, k: _Kind) -> None:
        ids = [w.wafer_id for w in self.wafers]
        self.ctx.alarms.raise_(self.tool, "CURE_EXCURSION", f"cure batch {self.batch}: "
                               f"{self._describe(k)} (detected; the program runs on, the "
                               f"batch will be held)",
                               lot_id=self.wafers[0].lot_id, wafer_ids=ids)
        text = self.summary()
        for w in self.wafers:  # journaled now: a restart mid-cure still holds the batch
            w.data.cure_excursion = text
            self.ctx.save(w)

    def _describe(self, k: _Kind) -> str:
        at = f" at {k.worst_chamber:.0f} °C" if k.worst_chamber is not None else ""
        alarm = f" (oven alarm {', '.join(k.alarms)})" if k.alarms else ""
        dur = _duration(k.out_s)
        if k.name == "O2" and k.worst is not None:
            full = "≥ " if k.worst >= O2_FULL_SCALE else ""  # a u16 register saturates
            return (f"O2 {full}{k.worst:.0f} ppm (limit {self.o2_limit:.0f}) for "
                    f"{dur}{at}{alarm}")
        if k.name == "N2" and k.worst is not None:
            return (f"N2 flow {k.worst:.1f} slm (setpoint {self.n2_sp:g}, below "
                    f"{N2_FRACTION:.0%} for ≥ {N2_MIN_S:.0f} s) for {dur}{at}{alarm}")
        if k.name == "BAND" and k.worst is not None and k.worst_setpoint is not None:
            seg = self._segment.get("BAND")
            soak = f"soak {seg + 1}" if isinstance(seg, int) else "soak"
            return (f"chamber {k.worst:.1f} °C off setpoint {k.worst_setpoint:.0f} °C "
                    f"(band ±{BAND_C:g} °C) for {dur} in {soak}{alarm}")
        return f"oven alarm {', '.join(k.alarms) or k.name} for {dur}{at}"

    def record(self) -> dict[str, Any]:
        """The watch's trace for the journal (``cure_watch``, beside ``oven_profile``): the
        limits it judged by and each excursion as it was detected, for the plots."""
        return {"o2_limit_ppm": self.o2_limit, "n2_flow_slm": self.n2_sp,
                "excursions": self.detected}

    def summary(self) -> str:
        parts = [self._describe(k) for k in self.kinds.values() if k.found]
        return f"cure excursion: {'; '.join(parts)}" if parts else ""


def _num(x: Any) -> float | None:
    try:
        return None if x is None else float(x)
    except (TypeError, ValueError):
        return None
