"""Operator handling: a move waits for `viaform wafer moved`, from another process or not at all."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from typer.testing import CliRunner

from sequencer.faces.cli import app
from sequencer.line.handling import HandlingError
from sequencer.line.operator_moves import MoveBook, OperatorHandling


def test_move_completes_when_the_operator_confirms_through_the_cli(tmp_path: Path) -> None:
    db = tmp_path / "journal.db"
    handling = OperatorHandling(db, timeout_s=10, poll_s=0.01)

    async def scenario() -> None:
        task = asyncio.create_task(handling.move(["W01", "W02"], "oven"))
        await asyncio.sleep(0.05)
        assert not task.done(), "the move must wait for the operator"
        listed = CliRunner().invoke(app, ["wafer", "pending", "--db", str(db)])
        assert "move W01 to oven" in listed.output and "move W02 to oven" in listed.output
        result = CliRunner().invoke(
            app, ["wafer", "moved", "W01", "W02", "--to", "oven", "--db", str(db), "--by", "kim"]
        )
        assert result.exit_code == 0, result.output
        await asyncio.wait_for(task, 2)

    asyncio.run(scenario())
    assert MoveBook(db).pending() == []


def test_unconfirmed_move_times_out_with_the_reason(tmp_path: Path) -> None:
    handling = OperatorHandling(tmp_path / "j.db", timeout_s=0.1, poll_s=0.01)
    with pytest.raises(HandlingError, match="no operator confirmation .* W07 were moved to etcher"):
        asyncio.run(handling.move(["W07"], "etcher"))


def test_confirming_a_move_nobody_asked_for_is_refused_and_changes_nothing(tmp_path: Path) -> None:
    db = tmp_path / "j.db"
    book = MoveBook(db)
    book.request(["W01"], "oven")
    result = CliRunner().invoke(
        app, ["wafer", "moved", "W01", "W09", "--to", "oven", "--db", str(db)]
    )
    assert result.exit_code == 2
    assert "no open request to move W09 to oven" in result.output
    assert [w for w, _, _ in book.pending()] == ["W01"], "W01 must stay unconfirmed"


def test_bad_destination_and_missing_journal_are_clear(tmp_path: Path) -> None:
    runner = CliRunner()
    bad = runner.invoke(app, ["wafer", "moved", "W01", "--to", "moon", "--db", str(tmp_path)])
    assert bad.exit_code == 2 and "--to 'moon'" in bad.output
    missing = runner.invoke(
        app, ["wafer", "moved", "W01", "--to", "oven", "--db", str(tmp_path / "none.db")]
    )
    assert missing.exit_code == 2 and "no journal at" in missing.output
