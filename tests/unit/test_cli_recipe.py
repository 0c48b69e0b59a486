"""`viaform recipe check|show` as a user runs it (typer's own CliRunner)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from typer.testing import CliRunner

from sequencer.faces.cli import app as viaform
from sequencer.faces.cli.recipe import app

CONFIGS = Path(__file__).resolve().parents[2] / "configs"
RECIPES = CONFIGS / "recipes"
runner = CliRunner()


@pytest.fixture
def rdir(tmp_path: Path) -> Path:
    d = tmp_path / "recipes"
    shutil.copytree(RECIPES, d)
    return d


def test_good_files_print_one_summary_line_each_and_exit_0() -> None:
    files = sorted(RECIPES.glob("*.yaml")) + sorted((CONFIGS / "lots").glob("*.yaml"))
    result = runner.invoke(app, ["check", *map(str, files)])
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert len(lines) == len(files)
    assert all(": OK — " in line for line in lines)
    assert f"{RECIPES / 'CURE-PBO-320.yaml'}: OK — cure CURE-PBO-320, 2 segments, max 320 °C, " \
           "~3.5 h" in lines
    assert any(line.endswith("lot DEMO-A, 25 wafers in slots 1–25, flow FLOW-A (variant A)")
               for line in lines)


def test_registered_as_viaform_recipe() -> None:
    result = runner.invoke(viaform, ["recipe", "check", str(RECIPES / "FLOW-A.yaml")])
    assert result.exit_code == 0
    assert "OK — flow FLOW-A (variant A)" in result.output


def test_every_problem_of_every_file_and_exit_1(rdir: Path) -> None:
    bad = rdir / "CURE-PBO-320.yaml"
    text = bad.read_text().replace("hold_min: 60", "hold_min: 200")
    bad.write_text(text.replace("batch_size: 25", "batch_size: 0"))
    flow = rdir / "FLOW-A.yaml"
    good = rdir / "ETCH-OPEN-01.yaml"
    result = runner.invoke(app, ["check", str(bad), str(good), str(flow)])
    assert result.exit_code == 1
    lines = result.output.splitlines()
    assert f"{bad}: cure.segments[1].hold_min: 200 is above 120 (allowed 30–120 min)" in lines
    assert f"{bad}: cure.batch_size: 0 is below 1 (allowed 1–25 wafers)" in lines
    assert any(line.startswith(f"{good}: OK — etch ETCH-OPEN-01") for line in lines)
    assert f"{flow}: flow.steps[1](CURE-PBO-320).cure.segments[1].hold_min: 200 is above 120 " \
           "(allowed 30–120 min)" in lines
    assert len(lines) == 5


@pytest.mark.parametrize("text", ["cure: [unclosed\n", "\x00\x01binary: {", "just text\n"])
def test_invalid_yaml_is_a_problem_not_a_traceback(tmp_path: Path, text: str) -> None:
    path = tmp_path / "x.yaml"
    path.write_text(text)
    result = runner.invoke(app, ["check", str(path)])
    assert result.exit_code == 1
    assert result.output.startswith(f"{path}: file: ")
    assert "Traceback" not in result.output and isinstance(result.exception, SystemExit)


def test_missing_file_is_a_problem(tmp_path: Path) -> None:
    missing = tmp_path / "none.yaml"
    result = runner.invoke(app, ["check", str(missing)])
    assert (result.exit_code, result.output) == (1, f"{missing}: file: no such file\n")


def test_flow_a_with_a_through_hole_dose_says_why(rdir: Path) -> None:
    exp = rdir / "EXP-CONCAVE-01.yaml"
    exp.write_text(exp.read_text().replace("318.0", "420.0"))
    result = runner.invoke(app, ["check", str(rdir / "FLOW-A.yaml")])
    assert result.exit_code == 1
    assert "exposure.dose_mj_cm2: 420 is at or above the dose-to-clear 400" in result.output
    assert "through-hole" in result.output


def test_show_prints_what_each_tool_gets() -> None:
    result = runner.invoke(app, ["show", str(CONFIGS / "lots" / "demo.yaml")])
    assert result.exit_code == 0, result.output
    assert "ETCH:TIME 180 s" in result.output
    assert "high limit 345 °C" in result.output
    assert "dose 318 mJ/cm²" in result.output


def test_show_refuses_a_bad_file(tmp_path: Path) -> None:
    path = tmp_path / "x.yaml"
    path.write_text("lot: {lot_id: 'a b'}\n")
    result = runner.invoke(app, ["show", str(path)])
    assert result.exit_code == 1 and "lot.lot_id" in result.output


def test_recipes_dir_option(rdir: Path, tmp_path: Path) -> None:
    lot = tmp_path / "elsewhere.yaml"
    lot.write_text("lot: {lot_id: X1, flow: FLOW-B, wafers: [{slot: 3, id: X-3}]}\n")
    (rdir / "EXP-OPEN-01.yaml").unlink()
    result = runner.invoke(app, ["check", "--recipes-dir", str(rdir), str(lot)])
    assert result.exit_code == 1
    assert "lot.flow(FLOW-B).flow.steps[0].recipe: unknown recipe 'EXP-OPEN-01'" in result.output
    result = runner.invoke(app, ["check", "--recipes-dir", str(RECIPES), str(lot)])
    assert result.exit_code == 0 and "lot X1, 1 wafer in slots 3–3" in result.output
