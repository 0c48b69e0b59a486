"""`viaform demo`: simulators started, a lot run end to end, the table and summary printed."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from sequencer.faces.cli import app


@pytest.mark.timeout(120)
def test_demo_runs_a_flow_b_lot_to_completion_and_prints_the_report() -> None:
    result = CliRunner().invoke(
        app, ["demo", "--lot", "configs/lots/demo-b.yaml", "--time-scale", "2000", "--plain"]
    )
    assert result.exit_code == 0, result.output
    out = result.output
    assert "lot      DEMO-B PROCESS_COMPLETE" in out
    for wafer in ("B01", "B02", "B03", "B04"):
        assert f"wafer    {wafer} PROCESSED" in out
    assert "wafers: 4 in, 4 out (processed), 0 rejected, 0 held" in out
    assert "oven batches: #1 (4 wafers)" in out
    assert "tool utilisation:" in out and "s wall" in out


def test_demo_refuses_a_bad_lot_file_before_starting_anything(tmp_path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("lot: {lot_id: 'no spaces allowed', flow: FLOW-A, wafers: []}\n")
    result = CliRunner().invoke(app, ["demo", "--lot", str(bad), "--plain"])
    assert result.exit_code == 2
    assert "is not a valid lot" in result.output
    assert "starting the simulators" not in result.output


def test_a_missing_lot_file_is_one_line_and_exit_2(tmp_path) -> None:
    missing = tmp_path / "nope.yaml"
    result = CliRunner().invoke(app, ["plan", str(missing)])
    assert result.exit_code == 2
    assert result.output.strip().splitlines() == [
        f"viaform: {missing} is not a valid lot: file: no such file"], result.output
