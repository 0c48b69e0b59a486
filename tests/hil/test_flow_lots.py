"""The whole line end to end: `viaform run` on the simulators over their real transports
(SCPI over TCP, SCPI over a serial `socket://` URL, Modbus TCP), checked against the
simulated world: every wafer exposed once, cured before its etch, etched once, open.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from simulators.runner import SimThread

from .flowkit import (
    LOTS,
    assert_accounted,
    assert_world_sound,
    journal_lots,
    lot_wafers,
    run_cli,
    world_snapshot,
    write_tools_yaml,
)

SCALE = 3000.0  # tool seconds per wall second: a 3.5 h cure takes ~4 s


def _run_lot(tmp_path: Path, lotfile: Path, timeout_s: float) -> tuple[dict, list[str], str]:
    with SimThread(time_scale=SCALE, seed=3) as sims:
        db = tmp_path / "journal.db"
        tools = write_tools_yaml(tmp_path / "tools.yaml", sims, db)
        res = run_cli([lotfile], tools, db, "run", timeout_s)
        assert res.code == 0, f"viaform run failed ({res.code}):\n{res.stdout}\n{res.stderr}"
        world = world_snapshot(sims)
    wafers = lot_wafers(lotfile)
    states = assert_accounted(db, wafers)
    assert {w: s for w, (s, _) in states.items()} == dict.fromkeys(wafers, "PROCESSED")
    assert set(journal_lots(db).values()) == {"PROCESS_COMPLETE"}
    return world, wafers, res.stdout


@pytest.mark.timeout(90)
def test_full_flow_a_lot_of_25(tmp_path: Path) -> None:
    world, wafers, out = _run_lot(tmp_path, LOTS / "demo.yaml", 75)
    assert len(wafers) == 25
    assert_world_sound(world, wafers)
    # one full oven batch, every wafer cured in it
    assert {tuple(world["wafers"][w]["cure_batches"]) for w in wafers} == {(1,)}
    assert "25 out (processed)" in out


@pytest.mark.timeout(60)
def test_flow_b_lot(tmp_path: Path) -> None:
    world, wafers, out = _run_lot(tmp_path, LOTS / "demo-b.yaml", 45)
    assert_world_sound(world, wafers)
    for w in wafers:
        ws = world["wafers"][w]
        # flow B: opened fully by the first process, then a concave portion in the wiring
        assert ws["residual_pre_cure_um"] == pytest.approx(0.0, abs=1e-6), w
        assert ws["wiring_recess_um"] > 0.0, w
    assert f"{len(wafers)} out (processed)" in out
