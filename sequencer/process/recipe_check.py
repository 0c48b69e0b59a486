"""Validating recipes and flows: every rule, every problem, each with its place.

Nothing stops at the first problem: a file is read whole and all that is wrong
with it comes back as a list of ``Problem``s. Reading whole files of any kind
(``check_file``, ``load_recipe``, ``load_flow``) is ``recipe_files``'s, above this
module and ``lots``. The rules are listed, with their reasons, in ``docs/recipes.md``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, TypeVar

from sequencer.process.recipe_fields import Field, fmt, read_document, read_fields
from sequencer.process.recipes import (
    DEFAULT_RECIPES_DIR,
    ETCH_TIME_MAX_S,
    ETCH_TIME_MIN_S,
    CureRecipe,
    CureSegment,
    EtchRecipe,
    ExposureRecipe,
    Flow,
    Problem,
    Recipe,
)

A_WINDOW_TOP = 0.95  # flow A: dose below 0.95·E0, so a controllable residual stays
MAX_CF4_FRACTION = 0.25  # PE-200 refuses more
HIGH_LIMIT_GAP_C = 15.0  # CV-25 START needs every target below high limit − 15 °C
PROCESS_ORDER = ("exposure", "cure", "etch")

EXPOSURE_FIELDS = (
    Field("name", str),
    Field("film_um", float, 5, 20, "um"),
    Field("dose_mj_cm2", float, 10, 2000, "mJ/cm²"),
    Field("focus_um", float, -10, 10, "um"),
    Field("develop_s", int, 30, 180, "s"),
    Field("reticle", str),
)
CURE_FIELDS = (
    Field("name", str),
    Field("batch_size", int, 1, 25, "wafers"),
    Field("o2_limit_ppm", int, 10, 100, "ppm"),
    Field("segments", list, 1, 8, "segments"),
    Field("unload_c", float, 50, 150, "°C", step=0.1),
    Field("high_limit_c", float, 50, 400, "°C", required=False, nullable=True, step=0.1),
    Field("n2_flow_slm", float, 20, 100, "slm", step=0.1),
    Field("shrink_fraction", float, 0, 0.5, required=False),
)
# A segment's ranges depend on its role: the last one is the cure soak itself.
SEGMENT_FIELDS = {
    False: (Field("ramp_c_per_min", float, 1, 10, "°C/min", step=0.1),
            Field("target_c", float, 20, 400, "°C", step=0.1),
            Field("hold_min", int, 10, 60, "min")),
    True: (Field("ramp_c_per_min", float, 1, 5, "°C/min", step=0.1),
           Field("target_c", float, 230, 375, "°C", step=0.1),
           Field("hold_min", int, 30, 120, "min")),
}
ETCH_FIELDS = (
    Field("name", str),
    Field("o2_sccm", float, 20, 200, "sccm"),
    Field("cf4_sccm", float, 0, 30, "sccm"),
    Field("pressure_mtorr", float, 50, 1000, "mTorr"),
    Field("rf_power_w", float, 100, 1000, "W"),
    Field("rate_nm_per_min", float, 10, 5000, "nm/min"),
    Field("overetch_pct", int, 10, 100, "%"),
    Field("endpoint", bool),
    Field("max_main_factor", float, 1.0, 1.5, "× expected", required=False),
    Field("main_etch_s", int, ETCH_TIME_MIN_S, ETCH_TIME_MAX_S, "s", required=False,
          nullable=True),
)
FLOW_FIELDS = (Field("name", str), Field("variant", str), Field("steps", list))
STEP_FIELDS = (Field("process", str), Field("recipe", str))


def _ok(bad: set[str], *keys: str) -> bool:
    return not bad.intersection(keys)


# --- one recipe ------------------------------------------------------------------------
def dose_problem(rec: ExposureRecipe, variant: str | None) -> str | None:
    """Why this dose does not suit the variant (None: both windows are tried)."""
    dose, e0, eth = rec.dose_mj_cm2, rec.dose_to_clear(), rec.threshold_dose()
    film = f"for {fmt(rec.film_um)} um of film"
    a_top = A_WINDOW_TOP * e0
    if variant == "B":
        if dose < e0:
            return (f"{fmt(dose)} is below the dose-to-clear {fmt(e0)} {film}: flow B's first "
                    f"process must open the resin fully (dose ≥ {fmt(e0)})")
        return None
    if variant == "A" and dose >= e0:
        return (f"{fmt(dose)} is at or above the dose-to-clear {fmt(e0)} {film}: that is a "
                f"through-hole made by the first process, not a concave portion; flow A needs "
                f"{fmt(eth)} < dose < {fmt(a_top)}")
    if dose <= eth:
        return (f"{fmt(dose)} is at or below the threshold dose {fmt(eth)} {film}: no concave "
                f"portion forms (flow A needs {fmt(eth)} < dose < {fmt(a_top)})")
    if a_top <= dose < e0:
        return (f"{fmt(dose)} is at or above 0.95·E0 = {fmt(a_top)} {film}: the residual "
                f"(~{rec.expected_residual_um():.2f} um) is too thin to control in flow A and "
                f"the resin is not open for flow B (dose ≥ {fmt(e0)})")
    return None


def parse_exposure(raw: object, place: str = "exposure",
                   variant: str | None = None) -> tuple[ExposureRecipe | None, list[Problem]]:
    """The recipe (None when a key is missing or mistyped) and every problem."""
    problems: list[Problem] = []
    vals, bad = read_fields(raw, EXPOSURE_FIELDS, place, problems)
    rec = ExposureRecipe(**{"name": "?", **vals})
    if _ok(bad, "film_um", "dose_mj_cm2"):
        msg = dose_problem(rec, variant)
        if msg:
            problems.append(Problem(f"{place}.dose_mj_cm2", msg))
    return (None if bad else rec), problems


def _parse_segments(raw: list[Any], place: str,
                    problems: list[Problem]) -> tuple[tuple[CureSegment, ...], bool]:
    """The segments (in order) and whether every one of them parsed."""
    segments: list[CureSegment] = []
    complete = True
    targets: list[tuple[int, float]] = []
    for i, seg in enumerate(raw):
        final = i == len(raw) - 1
        vals, bad = read_fields(seg, SEGMENT_FIELDS[final], f"{place}[{i}]", problems)
        if bad:
            complete = False
            continue
        segments.append(CureSegment(**vals))
        if not final:
            targets.append((i, vals["target_c"]))
        elif complete:
            for j, t in targets:
                if t >= vals["target_c"]:
                    problems.append(Problem(
                        f"{place}[{j}].target_c",
                        f"{fmt(t)} is not below the final segment's {fmt(vals['target_c'])} °C "
                        f"(the final segment is the cure soak, the hottest)"))
    return tuple(segments), complete


def parse_cure(raw: object, place: str = "cure") -> tuple[CureRecipe | None, list[Problem]]:
    problems: list[Problem] = []
    vals, bad = read_fields(raw, CURE_FIELDS, place, problems)
    seg_raw = vals.pop("segments", [])
    segments, complete = _parse_segments(seg_raw, f"{place}.segments", problems)
    if not seg_raw:
        bad.add("segments")
    rec = CureRecipe(**{"name": "?", **vals, "segments": segments or CureRecipe.segments})
    if complete and _ok(bad, "segments", "high_limit_c"):
        hottest = rec.max_target_c()
        limit = rec.high_limit()
        if limit <= hottest + HIGH_LIMIT_GAP_C:
            problems.append(Problem(
                f"{place}.high_limit_c",
                f"{fmt(limit)} is not above highest target + {fmt(HIGH_LIMIT_GAP_C)} = "
                f"{fmt(hottest + HIGH_LIMIT_GAP_C)} °C (the CV-25 refuses START unless every "
                f"target is below high limit − {fmt(HIGH_LIMIT_GAP_C)} °C)"))
        elif rec.high_limit_c is None and limit > 400:
            problems.append(Problem(f"{place}.high_limit_c",
                                    f"the default {fmt(limit)} °C is above the CV-25's 400 °C"))
    return (rec if complete and not bad else None), problems


def parse_etch(raw: object, place: str = "etch") -> tuple[EtchRecipe | None, list[Problem]]:
    problems: list[Problem] = []
    vals, bad = read_fields(raw, ETCH_FIELDS, place, problems)
    rec = EtchRecipe(**{"name": "?", **vals})
    if _ok(bad, "o2_sccm", "cf4_sccm") and rec.cf4_fraction() > MAX_CF4_FRACTION:
        problems.append(Problem(
            f"{place}.cf4_sccm",
            f"CF4 fraction {rec.cf4_fraction():.1%} (CF4 / (O2 + CF4)) is above 25 % "
            f"(the PE-200 refuses it)"))
    return (None if bad else rec), problems


#: a recipe file's kind → its parser (``parse_exposure`` also takes the flow's variant)
PARSERS: dict[str, Callable[[object, str], tuple[Recipe | None, list[Problem]]]] = {
    "exposure": parse_exposure, "cure": parse_cure, "etch": parse_etch}


def parse_recipe(kind: str, body: object, place: str,
                  variant: str | None) -> tuple[Recipe | None, list[Problem]]:
    if kind == "exposure":
        return parse_exposure(body, place, variant)
    return PARSERS[kind](body, place)


def name_problem(obj: Recipe | Flow | None, path: Path, kind: str) -> list[Problem]:
    obj_name = obj.name if obj is not None else path.stem
    if obj_name != path.stem:
        return [Problem(f"{kind}.name", f"{obj_name!r} does not match the file name "
                                        f"{path.name!r} (flows find recipes by file name)")]
    return []


# --- flows -----------------------------------------------------------------------------
def order_problems(processes: list[tuple[int, str]]) -> list[Problem]:
    """Why a sequence of steps is not exactly exposure → cure → etch."""
    names = [p for _, p in processes]
    if names == list(PROCESS_ORDER):
        return []
    out: list[Problem] = []
    for proc, why in (("exposure", "the concave portions are formed by the first process "
                                   "(exposure + develop)"),
                      ("cure", "the resin with its concave portions must be cured between the "
                               "first process and the second"),
                      ("etch", "the bottoms are removed by the second process (dry etch)")):
        seen = [i for i, p in processes if p == proc]
        if not seen:
            out.append(Problem("flow.steps", f"no {proc} step: {why}"))
        for i in seen[1:]:
            out.append(Problem(f"flow.steps[{i}].process",
                               f"a second {proc} step: the second process must differ from "
                               f"the first, and each stage runs once (exposure → cure → etch)"))
    first = {p: i for i, p in reversed(processes)}
    for early, late, why in (("etch", "cure", "the bottoms are removed after the resin is "
                                              "cured"),
                             ("cure", "exposure", "the concave portions are formed before "
                                                  "the cure"),
                             ("etch", "exposure", "the second process follows the first")):
        if early in first and late in first and first[early] < first[late]:
            out.append(Problem(f"flow.steps[{first[early]}].process",
                               f"{early} before {late}: {why}"))
    if not out:
        out.append(Problem("flow.steps", f"must be exactly exposure → cure → etch, got "
                                         f"{' → '.join(names)}"))
    return out


def _variant_problems(flow: Flow, places: dict[str, str]) -> list[Problem]:
    """Rules across the three recipes; ``places`` maps a process to its step prefix."""
    out: list[Problem] = []
    etch, etch_at = flow.etch, places["etch"] + "etch"
    top = flow.top_after_cure_um()
    if flow.variant == "A":
        if etch.main_etch_s is not None:
            out.append(Problem(f"{etch_at}.main_etch_s", "a fixed main etch is for flow B; "
                               "flow A derives it from the residual (leave it out)"))
            return out
        residual = flow.residual_after_cure_um()
        raw_s = residual * 1000.0 / etch.rate_nm_per_min * 60.0
        if raw_s > ETCH_TIME_MAX_S:
            out.append(Problem("flow", f"the expected main etch, {raw_s:.0f} s for ~"
                               f"{residual:.2f} um at {fmt(etch.rate_nm_per_min)} nm/min, is "
                               f"above the PE-200's {ETCH_TIME_MAX_S} s: the bottoms would not "
                               f"clear"))
        main_s = min(raw_s, ETCH_TIME_MAX_S)
    else:
        if etch.main_etch_s is None:
            out.append(Problem(f"{etch_at}.main_etch_s", "missing: flow B etches a fixed time "
                               "into the wiring (there is no residual to clear)"))
        if etch.endpoint:
            out.append(Problem(f"{etch_at}.endpoint", "must be false in flow B: the resin is "
                               "already open, there are no bottoms for the OES to see clear"))
        main_s = etch.main_etch_s or 0
    removed = etch.resin_removed_um(main_s)
    if removed >= top:
        out.append(Problem("flow", f"the unmasked etch removes ~{removed:.2f} um, all of the "
                           f"~{top:.2f} um of cured resin on the field"))
    return out


def parse_flow(raw: object, recipes_dir: Path) -> tuple[Flow | None, list[Problem]]:
    """The flow and its recipes (looked up in ``recipes_dir``), or None with the problems."""
    problems: list[Problem] = []
    vals, bad = read_fields(raw, FLOW_FIELDS, "flow", problems)
    variant = vals.get("variant")
    if "variant" not in bad and variant not in ("A", "B"):
        problems.append(Problem("flow.variant", f"{variant!r} is not A or B"))
        variant = None
    processes: list[tuple[int, str]] = []
    found: dict[str, Recipe] = {}
    places: dict[str, str] = {}
    for i, step in enumerate(vals.get("steps", [])):
        svals, sbad = read_fields(step, STEP_FIELDS, f"flow.steps[{i}]", problems)
        proc = svals.get("process")
        if "process" not in sbad:
            if proc not in PROCESS_ORDER:
                problems.append(Problem(f"flow.steps[{i}].process",
                                        f"{proc!r} is not one of {', '.join(PROCESS_ORDER)}"))
                proc = None
            else:
                processes.append((i, proc))
        if "recipe" in sbad:
            continue
        name = svals["recipe"]
        rec, rprobs = _step_recipe(name, proc, recipes_dir, f"flow.steps[{i}]", variant)
        problems.extend(rprobs)
        if rec is not None and proc and proc not in found:
            found[proc], places[proc] = rec, f"flow.steps[{i}]({name})."
    order = order_problems(processes) if "steps" not in bad else []
    problems.extend(order)
    if order or variant is None or len(found) != 3 or "name" in bad:
        return None, problems
    flow = Flow(vals["name"], variant, _found(found, "exposure", ExposureRecipe),
                _found(found, "cure", CureRecipe), _found(found, "etch", EtchRecipe))
    problems.extend(_variant_problems(flow, places))
    return (None if problems else flow), problems


_R = TypeVar("_R", ExposureRecipe, CureRecipe, EtchRecipe)


def _found(found: Mapping[str, Recipe], proc: str, kind: type[_R]) -> _R:
    """The recipe found for ``proc``, as its class: ``_step_recipe`` parses a step's file as
    the step's process (a kind that differs is a problem there), so this never raises."""
    rec = found[proc]
    if not isinstance(rec, kind):
        raise TypeError(f"the {proc} step holds a {type(rec).__name__}")
    return rec


def _step_recipe(name: str, proc: str | None, recipes_dir: Path, at: str,
                 variant: str | None) -> tuple[Recipe | None, list[Problem]]:
    path = recipes_dir / f"{name}.yaml"
    if not path.is_file():
        return None, [Problem(f"{at}.recipe", f"unknown recipe {name!r}: no {path}")]
    kind, body, problems = read_document(path)
    prefix = f"{at}({name})."
    if kind is None or problems:
        return None, [p.under(prefix) for p in problems]
    if kind not in PARSERS:
        return None, [Problem(f"{at}.recipe", f"{name} is a {kind}, not a recipe")]
    if proc is not None and kind != proc:
        return None, [Problem(f"{at}.recipe", f"{name} is a {kind} recipe; this step is "
                                              f"{proc}")]
    rec, problems = parse_recipe(kind, body, kind, variant)
    problems += name_problem(rec, path, kind)
    return rec, [p.under(prefix) for p in problems]


# --- files -----------------------------------------------------------------------------
def default_recipes_dir() -> Path:
    """``configs/recipes`` here, else the copy next to the package."""
    if DEFAULT_RECIPES_DIR.is_dir():
        return DEFAULT_RECIPES_DIR
    return Path(__file__).resolve().parent.parent / DEFAULT_RECIPES_DIR
