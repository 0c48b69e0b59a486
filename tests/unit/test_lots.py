"""Lot files: the demo lots, the id and slot rules, and the lot's flow."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from sequencer.process.lots import load_lot, parse_lot, valid_id
from sequencer.process.recipe_files import check_file
from sequencer.process.recipes import LotWafer, RecipeError

CONFIGS = Path(__file__).resolve().parents[2] / "configs"


@pytest.fixture
def configs(tmp_path: Path) -> Path:
    """A private copy of configs/ (recipes next to lots, as shipped)."""
    shutil.copytree(CONFIGS / "recipes", tmp_path / "recipes")
    (tmp_path / "lots").mkdir()
    return tmp_path


def lot_body(n: int = 3, **over: object) -> dict:
    body = {"lot_id": "L-1", "flow": "FLOW-A",
            "wafers": [{"slot": i, "id": f"W{i:02d}"} for i in range(1, n + 1)]}
    return body | over


def problems_of(configs: Path, body: dict) -> list:
    path = configs / "lots" / "t.yaml"
    path.write_text(yaml.safe_dump({"lot": body}))
    return check_file(path)


def test_demo_lot_a() -> None:
    lot = load_lot(CONFIGS / "lots" / "demo.yaml")
    assert lot.lot_id == "DEMO-A" and lot.flow.name == "FLOW-A" and lot.flow.variant == "A"
    assert lot.wafers == tuple(LotWafer(i, f"A{i:02d}") for i in range(1, 26))
    assert lot.path == CONFIGS / "lots" / "demo.yaml"


def test_demo_lot_b() -> None:
    lot = load_lot(CONFIGS / "lots" / "demo-b.yaml")
    assert lot.flow.variant == "B" and 1 <= len(lot.wafers) <= 25
    assert check_file(CONFIGS / "lots" / "demo-b.yaml") == []


def test_flow_found_next_to_the_lots_folder(configs: Path) -> None:
    assert problems_of(configs, lot_body()) == []
    lot = load_lot(configs / "lots" / "t.yaml")
    assert lot.wafer_ids == ("W01", "W02", "W03")


@pytest.mark.parametrize(("over", "place", "needle"), [
    ({"lot_id": "bad id"}, "lot.lot_id", "not a tool id"),
    ({"lot_id": "L" * 33}, "lot.lot_id", "not a tool id"),
    ({"wafers": []}, "lot.wafers", "below 1"),
    ({"wafers": [{"slot": 1, "id": "A"}, {"slot": 1, "id": "B"}]}, "lot.wafers[1].slot",
     "already used"),
    ({"wafers": [{"slot": 1, "id": "A"}, {"slot": 2, "id": "A"}]}, "lot.wafers[1].id",
     "already"),
    ({"wafers": [{"slot": 26, "id": "A"}]}, "lot.wafers[0].slot", "above 25"),
    ({"wafers": [{"slot": 0, "id": "A"}]}, "lot.wafers[0].slot", "below 1"),
    ({"wafers": [{"slot": 1, "id": 7}]}, "lot.wafers[0].id", "not a string"),
    ({"wafers": [{"slot": 1, "id": "W/1"}]}, "lot.wafers[0].id", "not a tool id"),
    ({"wafers": [{"slot": 1, "wafer": "W1"}]}, "lot.wafers[0].wafer", "unknown key"),
    ({"flow": "FLOW-NONE"}, "lot.flow", "unknown flow"),
    ({"flow": "CURE-PBO-320"}, "lot.flow", "not a flow"),
])
def test_lot_rules(configs: Path, over: dict, place: str, needle: str) -> None:
    problems = problems_of(configs, lot_body(**over))
    assert any(p.place == place and needle in p.message for p in problems), problems


def test_too_many_wafers(configs: Path) -> None:
    wafers = [{"slot": (i % 25) + 1, "id": f"W{i}"} for i in range(26)]
    problems = problems_of(configs, lot_body(wafers=wafers))
    assert any(p.place == "lot.wafers" and "above 25" in p.message for p in problems)


def test_lot_larger_than_the_cure_batch(configs: Path) -> None:
    cure = configs / "recipes" / "CURE-PBO-320.yaml"
    cure.write_text(cure.read_text().replace("batch_size: 25", "batch_size: 2"))
    problems = problems_of(configs, lot_body(3))
    assert any(p.place == "lot.wafers" and "cure batch of 2" in p.message for p in problems)


def test_flow_problems_are_reported_through_the_lot(configs: Path) -> None:
    exp = configs / "recipes" / "EXP-CONCAVE-01.yaml"
    exp.write_text(exp.read_text().replace("318.0", "450.0"))
    assert problems_of(configs, lot_body())  # writes lots/t.yaml
    with pytest.raises(RecipeError) as err:
        load_lot(configs / "lots" / "t.yaml")
    assert [p.place for p in err.value.problems] == [
        "lot.flow(FLOW-A).flow.steps[0](EXP-CONCAVE-01).exposure.dose_mj_cm2"]


def test_every_lot_problem_is_collected(configs: Path) -> None:
    body = lot_body(lot_id="bad id", flow="FLOW-NONE",
                    wafers=[{"slot": 1, "id": "A"}, {"slot": 1, "id": "A"}], extra=1)
    places = {p.place for p in problems_of(configs, body)}
    assert places == {"lot.lot_id", "lot.flow", "lot.wafers[1].slot", "lot.wafers[1].id",
                      "lot.extra"}


def test_load_lot_refuses_a_recipe_file() -> None:
    with pytest.raises(RecipeError, match="not a lot"):
        load_lot(CONFIGS / "recipes" / "FLOW-A.yaml")


ID_CHARS = st.sampled_from("ABCXYZabcxyz0189_.-")


@settings(max_examples=60, deadline=None)
@given(good=st.text(ID_CHARS, min_size=1, max_size=32),
       bad=st.text(min_size=1, max_size=40))
def test_ids_follow_the_tools_rule(good: str, bad: str) -> None:
    assert valid_id(good)
    expected = len(bad) <= 32 and all(c.isascii() and (c.isalnum() or c in "_.-") for c in bad)
    assert valid_id(bad) == expected
    _, problems = parse_lot(lot_body(1, wafers=[{"slot": 1, "id": bad}]),
                            recipes_dir=CONFIGS / "recipes")
    assert any(p.place == "lot.wafers[0].id" for p in problems) != expected


@settings(max_examples=30, deadline=None)
@given(slots=st.lists(st.integers(1, 25), min_size=1, max_size=25, unique=True))
def test_any_set_of_unique_slots_is_accepted(slots: list[int]) -> None:
    body = lot_body(wafers=[{"slot": s, "id": f"W{s}"} for s in slots])
    lot, problems = parse_lot(body, recipes_dir=CONFIGS / "recipes")
    assert problems == [] and lot is not None
    assert [w.slot for w in lot.wafers] == slots
