"""The SQLite journal: durable settings, intents/outcomes, batch numbers, records."""

from __future__ import annotations

from sequencer.store.journal import Journal


def test_wal_and_full_sync(tmp_path) -> None:
    """WAL; the commits' fsyncs (what FULL did) on the journal-sync thread instead:
    tests/unit/test_journal_sync.py."""
    j = Journal(tmp_path / "j.db")
    assert j.db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert j.db.execute("PRAGMA synchronous").fetchone()[0] == 1  # NORMAL + journal-sync
    assert j._sync is not None
    j.close()


def test_intent_without_outcome_survives_a_reopen(tmp_path) -> None:
    j = Journal(tmp_path / "j.db", now=lambda: 100.0)
    a = j.intent("etcher", "START_ETCH", wafer_ids=["W1"], lot_id="L",
                 before={"count": 0, "boot": 3})
    b = j.intent("etcher", "LOAD", wafer_ids=["W2"], lot_id="L")
    j.outcome(b, "OK")
    j.close()
    k = Journal(tmp_path / "j.db")
    (i,) = k.open_intents()
    assert (i.id, i.tool, i.command, i.wafer_ids, i.before) == (
        a, "etcher", "START_ETCH", ("W1",), {"count": 0, "boot": 3})
    k.outcome(a, "STARTED", "count 0 → 1")
    assert k.open_intents() == [] and k.get_intent(a).outcome == "STARTED"


def test_batch_numbers_are_unique_and_above_the_tool(tmp_path) -> None:
    j = Journal(tmp_path / "j.db")
    assert j.allocate_batch(0, "C", ["W1"]) == 1
    assert j.allocate_batch(0, "C", ["W2"]) == 2  # the tool never ran 1: still unique
    assert j.allocate_batch(40, "C", ["W3"]) == 41
    j.set_batch_state(41, "STARTED")
    assert j.batch(41) == ("C", ["W3"], "STARTED")


def test_lots_are_added_once_and_records_kept(tmp_path) -> None:
    j = Journal(tmp_path / "j.db")
    assert j.add_lot("L", "F", [(1, "W1"), (2, "W2")]) is True
    assert j.add_lot("L", "F", [(1, "W1")]) is False
    assert [r[:3] for r in j.wafer_rows("L")] == [("W1", 1, "NEEDS_PROCESSING"),
                                                  ("W2", 2, "NEEDS_PROCESSING")]
    j.set_lot_state("L", "QUEUED", "SETTING_UP")
    assert j.lot_state("L") == "SETTING_UP"
    j.result("W1", "expose", {"depth_um": 7.5})
    j.trace("batch-1", "oven_profile", [[0, 25.0]])
    j.alarm("oven", "CURE_FAILED", "over-temperature", "L", ["W1"])
    assert j.results("W1") == [("expose", {"depth_um": 7.5})]
    assert j.traces("batch-1") == [("oven_profile", [[0, 25.0]])]
    assert j.alarms() == [("oven", "CURE_FAILED", "over-temperature")]


def test_a_reader_converts_times_with_the_scale_the_journal_was_written_at(tmp_path) -> None:
    """`viaform wafer show --db` of a demo journal (tool seconds at 400×) without the demo's
    tools.yaml: the times are the journal's own, not 400× in the future."""
    import time

    from sequencer.runner.clock import SeqClock
    from sequencer.store.history import History

    clock = SeqClock(400.0)
    j = Journal(tmp_path / "j.db", now=clock.now, time_scale=clock.time_scale)
    j.add_lot("L", "F", [(1, "W1")])
    j.close()
    old = Journal(tmp_path / "old.db", now=clock.now)  # written before journals kept it
    old.add_lot("L", "F", [(1, "W1")])
    old.close()
    created = History(tmp_path / "j.db", time_scale=1.0).lots()[0].created
    assert abs(created - time.time()) < 60
    legacy = History(tmp_path / "old.db", time_scale=400.0).lots()[0].created
    assert abs(legacy - time.time()) < 60


def test_the_check_before_a_start_reads_one_tools_commands_through_an_index(tmp_path) -> None:
    """``commands(tool, command, wafer)`` runs before every start (the job-count check):
    an index on (tool, command) keeps it to that tool's commands of that kind, not a scan
    of the journal, which grows ~12 commands a wafer. A journal of an older version gets
    the index when it is opened."""
    db = tmp_path / "j.db"
    j = Journal(db)
    j.db.execute("DROP INDEX commands_by_tool")  # as a file written before the index
    with j.atomic():
        for n in range(50):
            for tool, cmd in (("exposure", "LOAD"), ("exposure", "START_EXPOSURE"),
                              ("etcher", "START_ETCH"), ("handling", "MOVE")):
                j.outcome(j.intent(tool, cmd, wafer_ids=[f"W{n:02d}"], lot_id="L"), "OK")
    j.close()
    j = Journal(db)
    plan = " ".join(str(r) for r in j.db.execute(
        "EXPLAIN QUERY PLAN SELECT * FROM commands WHERE tool=? AND command=? "
        "AND instr(wafer_ids, ?) ORDER BY id", ("exposure", "START_EXPOSURE", '"W07"')))
    assert "USING INDEX commands_by_tool" in plan, plan
    assert [c.wafer_ids for c in j.commands("exposure", "START_EXPOSURE", "W07")] == [("W07",)]
    j.close()
