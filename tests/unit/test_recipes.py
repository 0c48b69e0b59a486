"""Recipes and flows: the shipped files, the models, and every validation rule."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from sequencer.process.recipe_check import (
    CURE_FIELDS,
    ETCH_FIELDS,
    EXPOSURE_FIELDS,
    SEGMENT_FIELDS,
    parse_cure,
    parse_etch,
    parse_exposure,
)
from sequencer.process.recipe_fields import Field
from sequencer.process.recipe_files import check_file, load_flow, load_recipe
from sequencer.process.recipes import (
    CureRecipe,
    CureSegment,
    EtchRecipe,
    ExposureRecipe,
    Flow,
    Problem,
    RecipeError,
)

CONFIGS = Path(__file__).resolve().parents[2] / "configs"
RECIPES = CONFIGS / "recipes"


def raw(kind: str) -> dict:
    """The body of a shipped default recipe, as a fresh dict."""
    names = {"exposure": "EXP-CONCAVE-01", "cure": "CURE-PBO-320", "etch": "ETCH-OPEN-01"}
    return yaml.safe_load((RECIPES / f"{names[kind]}.yaml").read_text())[kind]


def write(path: Path, doc: dict | str) -> Path:
    path.write_text(doc if isinstance(doc, str) else yaml.safe_dump(doc, allow_unicode=True))
    return path


@pytest.fixture
def rdir(tmp_path: Path) -> Path:
    """A private copy of the shipped recipes to break."""
    d = tmp_path / "recipes"
    shutil.copytree(RECIPES, d)
    return d


def flow_doc(variant: str, *steps: tuple[str, str], name: str = "FLOW-T") -> dict:
    return {"flow": {"name": name, "variant": variant,
                     "steps": [{"process": p, "recipe": r} for p, r in steps]}}


A_STEPS = (("exposure", "EXP-CONCAVE-01"), ("cure", "CURE-PBO-320"), ("etch", "ETCH-OPEN-01"))


def places(problems: list[Problem]) -> list[str]:
    return [p.place for p in problems]


# --- shipped files and models ------------------------------------------------------------
@pytest.mark.parametrize("path", sorted(RECIPES.glob("*.yaml")), ids=lambda p: p.name)
def test_every_shipped_recipe_is_clean(path: Path) -> None:
    assert check_file(path) == []


def test_shipped_defaults_are_the_process_defaults() -> None:
    assert load_recipe(RECIPES / "EXP-CONCAVE-01.yaml") == ExposureRecipe("EXP-CONCAVE-01")
    assert load_recipe(RECIPES / "CURE-PBO-320.yaml") == CureRecipe("CURE-PBO-320")
    assert load_recipe(RECIPES / "ETCH-OPEN-01.yaml") == EtchRecipe("ETCH-OPEN-01")


def test_flow_a_models() -> None:
    flow = load_flow("FLOW-A", RECIPES)
    assert (flow.variant, flow.exposure.name, flow.cure.name, flow.etch.name) == (
        "A", "EXP-CONCAVE-01", "CURE-PBO-320", "ETCH-OPEN-01")
    exp = flow.exposure
    assert exp.dose_to_clear() == pytest.approx(400.0)
    assert exp.threshold_dose() == pytest.approx(126.49, abs=0.01)
    assert exp.remaining_fraction() == pytest.approx(0.20, abs=0.005)
    assert exp.expected_residual_um() == pytest.approx(1.99, abs=0.01)
    assert flow.residual_after_cure_um() == pytest.approx(1.49, abs=0.01)
    assert flow.main_etch_s() == 180  # PROCESS.md: 180 s etch + 30 % overetch
    assert flow.etch_target_um() == pytest.approx(1.49)
    assert flow.cure.high_limit() == 345
    assert flow.cure.estimated_minutes() / 60 == pytest.approx(3.5, abs=0.1)


def test_flow_b_models() -> None:
    flow = load_flow(RECIPES / "FLOW-B.yaml")
    assert flow.variant == "B"
    assert flow.exposure.dose_mj_cm2 >= flow.exposure.dose_to_clear()
    assert flow.residual_after_cure_um() == 0.0
    assert flow.main_etch_s() == flow.etch.main_etch_s == 120
    assert flow.etch_target_um() == 0.0


def test_main_etch_is_clamped_to_the_etcher_range_and_limited_by_factor() -> None:
    etch = EtchRecipe("E", endpoint=True)
    assert etch.main_etch_s_for(0.001) == 5
    assert etch.main_etch_s_for(100.0) == 1800
    assert etch.main_etch_s_for(1.5) == 180
    assert etch.main_etch_limit_s_for(1.5) == 270
    assert etch.etch_time_s_for(1.5) == 270
    assert EtchRecipe("E").etch_time_s_for(1.5) == 180
    assert EtchRecipe("E", main_etch_s=60).main_etch_s_for(3.0) == 60


def test_contrast_curve_edges() -> None:
    assert ExposureRecipe("x", dose_mj_cm2=100).remaining_fraction() == 1.0
    assert ExposureRecipe("x", dose_mj_cm2=400).remaining_fraction() == 0.0
    assert ExposureRecipe("x", film_um=20, dose_mj_cm2=636).expected_residual_um() == (
        pytest.approx(2 * ExposureRecipe("x").expected_residual_um()))


# --- ranges (property tests) ---------------------------------------------------------------
RANGED = [("exposure", f) for f in EXPOSURE_FIELDS if f.lo is not None] + \
         [("cure", f) for f in CURE_FIELDS if f.lo is not None and f.kind is not list] + \
         [("etch", f) for f in ETCH_FIELDS if f.lo is not None]
PARSE = {"exposure": parse_exposure, "cure": parse_cure, "etch": parse_etch}


def _range_hits(problems: list[Problem], place: str) -> list[Problem]:
    """Range problems only (they say what is allowed), not the cross-field rules."""
    return [p for p in problems if p.place == place and "(allowed " in p.message]


def _value(f: Field, x: float) -> float | int:
    return int(x) if f.kind is int else round(x, 1)


@pytest.mark.parametrize(("kind", "field"), RANGED, ids=lambda v: getattr(v, "key", v))
@settings(max_examples=25, deadline=None)
@given(data=st.data())
def test_values_inside_a_range_pass(kind: str, field: Field, data: st.DataObject) -> None:
    x = data.draw(st.floats(field.lo, field.hi) if field.kind is float
                  else st.integers(int(field.lo), int(field.hi)))
    x = _value(field, x) if field.kind is float else x
    body = raw(kind) | {field.key: x}
    if field.key == "cf4_sccm":
        body["o2_sccm"] = 200
    _, problems = PARSE[kind](body)
    assert _range_hits(problems, f"{kind}.{field.key}") == []


@pytest.mark.parametrize(("kind", "field"), RANGED, ids=lambda v: getattr(v, "key", v))
@settings(max_examples=25, deadline=None)
@given(data=st.data())
def test_values_outside_a_range_fail_naming_place_and_bound(
        kind: str, field: Field, data: st.DataObject) -> None:
    above = data.draw(st.booleans())
    if field.kind is int:
        x = data.draw(st.integers(int(field.hi) + 1, 10**6) if above
                      else st.integers(-10**6, int(field.lo) - 1))
    else:
        span = max(1.0, field.hi - field.lo)
        x = data.draw(st.floats(field.hi + span * 0.01, field.hi + span * 100) if above
                      else st.floats(field.lo - span * 100, field.lo - span * 0.01))
        x = round(x, 1) if field.step else x
    _, problems = PARSE[kind](raw(kind) | {field.key: x})
    hits = _range_hits(problems, f"{kind}.{field.key}")
    bound = field.hi if above else field.lo
    word = "above" if above else "below"
    assert len(hits) == 1, problems
    assert f" is {word} {bound:g} " in hits[0].message


@settings(max_examples=40, deadline=None)
@given(final=st.booleans(), key=st.sampled_from(["ramp_c_per_min", "target_c", "hold_min"]),
       out=st.booleans(), data=st.data())
def test_segment_ranges_depend_on_the_segment_role(final: bool, key: str, out: bool,
                                                   data: st.DataObject) -> None:
    f = next(f for f in SEGMENT_FIELDS[final] if f.key == key)
    if out:
        x = data.draw(st.sampled_from([f.lo - 1, f.hi + 1]))
    else:
        x = data.draw(st.integers(int(f.lo), int(f.hi)))
    body = raw("cure")
    index = 1 if final else 0
    if key == "target_c" and not final:
        body["segments"][1]["target_c"] = 375  # keep the final hottest
        body["high_limit_c"] = 400
    body["segments"][index][key] = x
    _, problems = parse_cure(body)
    hits = _range_hits(problems, f"cure.segments[{index}].{key}")
    assert bool(hits) == out, problems


# --- cross-field rules ------------------------------------------------------------------------
@settings(max_examples=50, deadline=None)
@given(film=st.floats(5, 20), frac=st.floats(0.0, 1.5))
def test_standalone_dose_must_fit_flow_a_or_flow_b(film: float, frac: float) -> None:
    rec = ExposureRecipe("x", film_um=film, dose_mj_cm2=frac * 40 * film)
    body = raw("exposure") | {"film_um": film, "dose_mj_cm2": rec.dose_mj_cm2}
    dose = rec.dose_mj_cm2
    fits = rec.threshold_dose() < dose < 0.95 * rec.dose_to_clear() or dose >= rec.dose_to_clear()
    _, problems = parse_exposure(body)
    hits = [p for p in problems if p.place == "exposure.dose_mj_cm2" and "dose" in p.message]
    assert (not hits) == fits or not 10 <= dose <= 2000


def test_dose_rules_per_variant() -> None:
    _, a_open = parse_exposure(raw("exposure") | {"dose_mj_cm2": 400.0}, variant="A")
    assert "through-hole" in a_open[0].message and "dose-to-clear 400" in a_open[0].message
    _, a_thin = parse_exposure(raw("exposure") | {"dose_mj_cm2": 390.0}, variant="A")
    assert "0.95·E0" in a_thin[0].message
    _, a_low = parse_exposure(raw("exposure") | {"dose_mj_cm2": 126.0}, variant="A")
    assert "threshold dose" in a_low[0].message
    _, b_low = parse_exposure(raw("exposure") | {"dose_mj_cm2": 399.0}, variant="B")
    assert "open the resin fully" in b_low[0].message
    assert parse_exposure(raw("exposure") | {"dose_mj_cm2": 400.0}, variant="B")[1] == []


def test_cf4_fraction_above_25_percent_is_refused() -> None:
    assert parse_etch(raw("etch") | {"o2_sccm": 90, "cf4_sccm": 30})[1] == []
    _, problems = parse_etch(raw("etch") | {"o2_sccm": 60, "cf4_sccm": 30})
    assert places(problems) == ["etch.cf4_sccm"] and "25 %" in problems[0].message


def test_high_limit_must_clear_the_hottest_target_by_more_than_15() -> None:
    assert parse_cure(raw("cure") | {"high_limit_c": 335.1})[1] == []
    _, problems = parse_cure(raw("cure") | {"high_limit_c": 335})
    assert places(problems) == ["cure.high_limit_c"] and "refuses START" in problems[0].message


def test_intermediate_segment_must_be_below_the_final_one() -> None:
    body = raw("cure")
    body["segments"][0]["target_c"] = 320
    assert places(parse_cure(body)[1]) == ["cure.segments[0].target_c"]


def test_segment_count_and_oven_resolution() -> None:
    body = raw("cure")
    body["segments"] = [{"ramp_c_per_min": 5, "target_c": 100, "hold_min": 10}] * 8 + \
        [{"ramp_c_per_min": 3, "target_c": 320.05, "hold_min": 60}]
    problems = parse_cure(body)[1]
    assert "cure.segments" in places(problems)
    assert any(p.place == "cure.segments[8].target_c" and "0.1" in p.message for p in problems)
    assert any("below 1" in p.message for p in parse_cure(raw("cure") | {"segments": []})[1])


# --- structure: types, missing and unknown keys, YAML ---------------------------------------
def test_every_problem_is_collected_with_its_place(tmp_path: Path) -> None:
    body = raw("cure") | {"batch_size": 30, "o2_limit_ppm": "20", "n2_flow_slm": True,
                          "shrink_fractoin": 0.2}
    del body["unload_c"]
    body["segments"][1]["hold_min"] = 200
    path = write(tmp_path / "CURE-PBO-320.yaml", {"cure": body})
    got = {str(p) for p in check_file(path)}
    assert "cure.segments[1].hold_min: 200 is above 120 (allowed 30–120 min)" in got
    assert {p.split(":")[0] for p in got} == {
        "cure.batch_size", "cure.o2_limit_ppm", "cure.n2_flow_slm", "cure.shrink_fractoin",
        "cure.unload_c", "cure.segments[1].hold_min"}
    with pytest.raises(RecipeError) as err:
        load_recipe(path)
    assert len(err.value.problems) == 6
    assert "did you mean 'shrink_fraction'" in str(err.value)


@pytest.mark.parametrize(("text", "needle"), [
    ("exposure: {name: x\n  dose: [", "not valid YAML at line"),
    ("", "expected one top-level key"),
    ("- 1\n- 2\n", "expected one top-level key"),
    ("exposure:\n  name: A\n  name: B\n", "written twice"),
    ("exposure: {}\ncure: {}\n", "found 2"),
])
def test_unreadable_files_are_problems_not_tracebacks(tmp_path: Path, text: str,
                                                      needle: str) -> None:
    problems = check_file(write(tmp_path / "X.yaml", text))
    assert any(needle in p.message for p in problems), problems


def test_missing_file_and_wrong_name(tmp_path: Path) -> None:
    assert places(check_file(tmp_path / "nope.yaml")) == ["file"]
    path = write(tmp_path / "OTHER.yaml", {"exposure": raw("exposure")})
    assert places(check_file(path)) == ["exposure.name"]


def test_text_where_a_number_belongs_explains_yaml(tmp_path: Path) -> None:
    _, problems = parse_exposure(raw("exposure") | {"dose_mj_cm2": "3.2e2"})
    assert "decimal point" in problems[0].message


# --- flows -----------------------------------------------------------------------------------
def flow_problems(rdir: Path, doc: dict, name: str = "FLOW-T") -> list[Problem]:
    return check_file(write(rdir / f"{name}.yaml", doc))


@pytest.mark.parametrize(("steps", "place", "needle"), [
    ((A_STEPS[0], A_STEPS[2], A_STEPS[1]), "flow.steps[1].process", "etch before cure"),
    ((A_STEPS[0], A_STEPS[2]), "flow.steps", "no cure step"),
    ((A_STEPS[0], A_STEPS[0], A_STEPS[2]), "flow.steps[1].process", "must differ"),
    ((A_STEPS[0], A_STEPS[1], A_STEPS[2], A_STEPS[2]), "flow.steps[3].process", "must differ"),
    ((A_STEPS[1], A_STEPS[0], A_STEPS[2]), "flow.steps[0].process", "cure before exposure"),
    ((A_STEPS[0], A_STEPS[1], ("etch", "NOPE")), "flow.steps[2].recipe", "unknown recipe"),
    ((A_STEPS[0], A_STEPS[1], ("etch", "CURE-PBO-320")), "flow.steps[2].recipe",
     "is a cure recipe"),
    ((A_STEPS[0], A_STEPS[1], ("plasma", "ETCH-OPEN-01")), "flow.steps[2].process",
     "not one of"),
])
def test_flow_order_and_steps_are_enforced(rdir: Path, steps: tuple, place: str,
                                           needle: str) -> None:
    problems = flow_problems(rdir, flow_doc("A", *steps))
    assert any(p.place == place and needle in p.message for p in problems), problems


def test_flow_a_refuses_a_through_hole_exposure(rdir: Path) -> None:
    doc = flow_doc("A", ("exposure", "EXP-OPEN-01"), *A_STEPS[1:])
    problems = flow_problems(rdir, doc)
    assert places(problems) == ["flow.steps[0](EXP-OPEN-01).exposure.dose_mj_cm2"]
    assert "through-hole" in problems[0].message


def test_flow_b_rules(rdir: Path) -> None:
    doc = flow_doc("B", *A_STEPS)
    got = set(places(flow_problems(rdir, doc)))
    assert got == {"flow.steps[0](EXP-CONCAVE-01).exposure.dose_mj_cm2",
                   "flow.steps[2](ETCH-OPEN-01).etch.main_etch_s"}
    write(rdir / "ETCH-RECESS-01.yaml",
          {"etch": raw("etch") | {"name": "ETCH-RECESS-01", "endpoint": True, "main_etch_s": 60}})
    doc = flow_doc("B", ("exposure", "EXP-OPEN-01"), A_STEPS[1], ("etch", "ETCH-RECESS-01"))
    assert places(flow_problems(rdir, doc)) == ["flow.steps[2](ETCH-RECESS-01).etch.endpoint"]


def test_flow_a_refuses_a_fixed_main_etch_and_an_etch_that_strips_the_resin(rdir: Path) -> None:
    write(rdir / "ETCH-OPEN-01.yaml", {"etch": raw("etch") | {"main_etch_s": 100}})
    assert places(flow_problems(rdir, flow_doc("A", *A_STEPS))) == [
        "flow.steps[2](ETCH-OPEN-01).etch.main_etch_s"]
    write(rdir / "ETCH-OPEN-01.yaml", {"etch": raw("etch") | {"rate_nm_per_min": 10}})
    assert any("would not clear" in p.message for p in flow_problems(rdir, flow_doc("A", *A_STEPS)))
    write(rdir / "EXP-CONCAVE-01.yaml", {"exposure": raw("exposure") | {"dose_mj_cm2": 140.0}})
    write(rdir / "ETCH-OPEN-01.yaml", {"etch": raw("etch") | {"overetch_pct": 100}})
    problems = flow_problems(rdir, flow_doc("A", *A_STEPS))
    assert any(p.place == "flow" and "all of the" in p.message for p in problems), problems


def test_problems_inside_a_step_recipe_are_reported_with_the_step(rdir: Path) -> None:
    body = raw("cure")
    body["segments"][1]["hold_min"] = 200
    write(rdir / "CURE-PBO-320.yaml", {"cure": body})
    with pytest.raises(RecipeError) as err:
        load_flow("FLOW-A", rdir)
    assert [str(p) for p in err.value.problems] == [
        "flow.steps[1](CURE-PBO-320).cure.segments[1].hold_min: 200 is above 120 "
        "(allowed 30–120 min)"]


def test_flow_structure_problems(rdir: Path) -> None:
    doc = {"flow": {"name": "FLOW-T", "variant": "C", "steps": [{"process": "exposure"}],
                    "stepz": 1}}
    got = set(places(flow_problems(rdir, doc)))
    assert {"flow.variant", "flow.steps[0].recipe", "flow.stepz", "flow.steps"} <= got


def test_load_flow_unknown_name(rdir: Path) -> None:
    with pytest.raises(RecipeError, match="no such file"):
        load_flow("FLOW-NONE", rdir)
    assert isinstance(load_flow("FLOW-A", rdir), Flow)


def test_cure_segment_dataclass_round_trip() -> None:
    rec, problems = parse_cure(raw("cure"))
    assert problems == [] and rec.segments == (CureSegment(5, 150, 30), CureSegment(3, 320, 60))
