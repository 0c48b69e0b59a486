"""Recipes, flows and lots as frozen dataclasses, with the process models they imply.

The numbers here are PROCESS.md's models (contrast curve, cure shrink, etch rate);
the rules that decide whether a recipe is acceptable live in ``recipe_check`` and
``lots``, which also read the YAML files. Everything a file holds is validated
before one of these objects exists, so code that receives a ``Flow`` can trust it.

The models import none of the loaders (the loaders import them): load files with
``recipe_files.load_recipe`` / ``load_flow`` / ``check_file`` and ``lots.load_lot``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

# --- models from PROCESS.md (est.) ---------------------------------------------------
E0_PER_UM = 40.0  # dose-to-clear, mJ/cm² per um of film (400 for 10 um)
GAMMA = 2.0  # contrast
DARK_LOSS = 0.05  # unexposed resin lost in the developer
ETCH_TIME_MIN_S = 5  # PE-200 ETCH:TIME range
ETCH_TIME_MAX_S = 1800
PURGE_MIN_EST = 15.0  # N2 purge to the O2 limit before heating (est.)
OVEN_TAU_MIN = 15.0  # chamber time constant, used for the cool-down estimate (est.)
AMBIENT_C = 25.0
HIGH_LIMIT_MARGIN_C = 25.0  # default high limit = highest target + this

DEFAULT_RECIPES_DIR = Path("configs/recipes")
Variant = Literal["A", "B"]


@dataclass(frozen=True)
class Problem:
    """One thing wrong with a file: ``place`` is a path like ``cure.segments[1].hold_min``."""

    place: str
    message: str

    def __str__(self) -> str:
        return f"{self.place}: {self.message}"

    def under(self, prefix: str) -> Problem:
        """The same problem seen from a file that refers to this one."""
        return Problem(f"{prefix}{self.place}", self.message)


class RecipeError(ValueError):
    """A recipe, flow or lot file with problems; ``problems`` lists every one of them."""

    def __init__(self, source: str | list[Problem], problems: list[Problem] | None = None) -> None:
        if not isinstance(source, str):  # RecipeError(problems) also works
            problems, source = source, "recipe"
        self.source = source
        self.problems = list(problems or [])
        lines = "\n".join(f"  {p}" for p in self.problems)
        super().__init__(f"{source}: {len(self.problems)} problem(s)\n{lines}")


@dataclass(frozen=True)
class ExposureRecipe:
    """LX-365 settings for the first process (expose + develop)."""

    name: str
    film_um: float = 10.0
    dose_mj_cm2: float = 318.0
    focus_um: float = 0.0
    develop_s: int = 90
    reticle: str = "VIA-200"

    def dose_to_clear(self) -> float:
        """E0: the dose that clears the film to the bottom (grows with film thickness)."""
        return E0_PER_UM * self.film_um

    def threshold_dose(self) -> float:
        """E_th: below it the developer removes nothing more than the dark loss."""
        return self.dose_to_clear() * 10 ** (-1 / GAMMA)

    def remaining_fraction(self) -> float:
        """r of the contrast curve at this recipe's dose: 1 below E_th, 0 at/above E0."""
        e0, dose = self.dose_to_clear(), self.dose_mj_cm2
        if dose >= e0:
            return 0.0
        if dose <= self.threshold_dose():
            return 1.0
        return GAMMA * math.log10(e0 / dose)

    def expected_residual_um(self) -> float:
        """Resin left at the bottom of the concave portions after develop (before cure)."""
        return self.film_um * self.remaining_fraction()

    def expected_top_um(self) -> float:
        """Unexposed resin after develop (dark loss), before cure."""
        return self.film_um * (1 - DARK_LOSS)

    def expected_depth_um(self) -> float:
        """Depth of the concave portions after develop (before cure)."""
        return self.expected_top_um() - self.expected_residual_um()


@dataclass(frozen=True)
class CureSegment:
    """One oven program segment: ramp at ``ramp_c_per_min`` to ``target_c``, soak ``hold_min``."""

    ramp_c_per_min: float
    target_c: float
    hold_min: int


DEFAULT_SEGMENTS = (CureSegment(5.0, 150.0, 30), CureSegment(3.0, 320.0, 60))


@dataclass(frozen=True)
class CureRecipe:
    """CV-25 program for one batch; ``high_limit_c`` None means highest target + 25 °C."""

    name: str
    batch_size: int = 25
    o2_limit_ppm: int = 20
    segments: tuple[CureSegment, ...] = DEFAULT_SEGMENTS
    unload_c: float = 100.0
    high_limit_c: float | None = None
    n2_flow_slm: float = 50.0
    shrink_fraction: float = 0.25  # expected resin shrink of a full cure (PROCESS.md est.)

    def max_target_c(self) -> float:
        return max(s.target_c for s in self.segments)

    def high_limit(self) -> float:
        """The high limit to program: the recipe's, or highest target + 25 °C."""
        if self.high_limit_c is not None:
            return self.high_limit_c
        return self.max_target_c() + HIGH_LIMIT_MARGIN_C

    def estimated_minutes(self, ambient_c: float = AMBIENT_C) -> float:
        """Purge + ramps + soaks + cool to unload (Newton cooling, τ = 15 min). Est."""
        total, temp = PURGE_MIN_EST, ambient_c
        for seg in self.segments:
            total += abs(seg.target_c - temp) / seg.ramp_c_per_min + seg.hold_min
            temp = seg.target_c
        if temp > self.unload_c > ambient_c:
            total += OVEN_TAU_MIN * math.log((temp - ambient_c) / (self.unload_c - ambient_c))
        return total


@dataclass(frozen=True)
class EtchRecipe:
    """PE-200 settings for the second process; ``rate_nm_per_min`` is the expected resin rate."""

    name: str
    o2_sccm: float = 90
    cf4_sccm: float = 10
    pressure_mtorr: float = 200
    rf_power_w: float = 300
    rate_nm_per_min: float = 500
    overetch_pct: int = 30
    endpoint: bool = False
    max_main_factor: float = 1.5
    main_etch_s: int | None = None  # flow B: fixed main etch time (wiring recess)

    def cf4_fraction(self) -> float:
        """CF4 / (O2 + CF4), 0 when both are 0 (as the PE-200 computes it)."""
        total = self.o2_sccm + self.cf4_sccm
        return self.cf4_sccm / total if total else 0.0

    def main_etch_s_for(self, residual_after_cure_um: float) -> int:
        """Main etch seconds: the fixed ``main_etch_s`` if set, else residual ÷ rate.

        Rounded up, clamped to the PE-200's ETCH:TIME range 5–1800 s.
        """
        if self.main_etch_s is not None:
            return self.main_etch_s
        seconds = residual_after_cure_um * 1000.0 / self.rate_nm_per_min * 60.0
        return _clamp_etch(math.ceil(round(seconds, 6)))

    def main_etch_limit_s_for(self, residual_after_cure_um: float) -> int:
        """The longest main etch allowed: expected × ``max_main_factor`` (clamped)."""
        if self.main_etch_s is not None:
            return self.main_etch_s
        expected = self.main_etch_s_for(residual_after_cure_um)
        return _clamp_etch(math.floor(expected * self.max_main_factor))

    def etch_time_s_for(self, residual_after_cure_um: float) -> int:
        """What to program as ETCH:TIME: the limit with endpoint on, the expected time off."""
        if self.endpoint:
            return self.main_etch_limit_s_for(residual_after_cure_um)
        return self.main_etch_s_for(residual_after_cure_um)

    def resin_removed_um(self, main_s: float) -> float:
        """Resin the unmasked etch takes off everywhere: main + overetch at the rate."""
        return self.rate_nm_per_min / 1000.0 * main_s / 60.0 * (1 + self.overetch_pct / 100.0)


def _clamp_etch(seconds: int) -> int:
    return max(ETCH_TIME_MIN_S, min(ETCH_TIME_MAX_S, seconds))


@dataclass(frozen=True)
class Flow:
    """The three steps of one wafer, in the only order allowed: exposure → cure → etch."""

    name: str
    variant: Variant
    exposure: ExposureRecipe
    cure: CureRecipe
    etch: EtchRecipe

    def residual_after_cure_um(self) -> float:
        """Expected resin at the via bottoms when the etch starts (0 in flow B)."""
        return self.exposure.expected_residual_um() * (1 - self.cure.shrink_fraction)

    def top_after_cure_um(self) -> float:
        """Expected resin thickness on the field (unexposed areas) after cure."""
        return self.exposure.expected_top_um() * (1 - self.cure.shrink_fraction)

    def main_etch_s(self) -> int:
        """Expected main etch for this flow (flow B: the recipe's fixed time)."""
        return self.etch.main_etch_s_for(self.residual_after_cure_um())

    def etch_target_um(self) -> float:
        """What to program as the PE-200's ETCH:TARGet (expected residual; 0 in flow B)."""
        return round(self.residual_after_cure_um(), 2) if self.variant == "A" else 0.0


@dataclass(frozen=True)
class LotWafer:
    slot: int
    wafer_id: str


@dataclass(frozen=True)
class Lot:
    lot_id: str
    flow: Flow
    wafers: tuple[LotWafer, ...]
    path: Path | None = None

    @property
    def wafer_ids(self) -> tuple[str, ...]:
        return tuple(w.wafer_id for w in self.wafers)


Recipe = ExposureRecipe | CureRecipe | EtchRecipe
