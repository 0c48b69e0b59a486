"""The scheduling policy as pure functions of a line state (no tools, no clock)."""

from __future__ import annotations

from dataclasses import replace

from hypothesis import given, settings
from hypothesis import strategies as st

from sequencer.runner import policy
from sequencer.runner.policy import Family, LineState, Wafer

H = 3600.0
FAMILIES = {"CURE-A": Family("CURE-A", 4, 3 * H), "CURE-B": Family("CURE-B", 4, 2 * H)}


def state(wafers: list[Wafer], **kw: object) -> LineState:
    base = {"now": 10 * H, "wafers": tuple(wafers), "families": FAMILIES, "cycle_s": 160.0,
            "q_develop_cure_s": 24 * H, "margin_s": 30.0, "oven_poll_s": 5.0,
            "oven_free": (10 * H,), "exposures_since": (), "exposure_open": True}
    base.update(kw)
    return LineState(**base)  # type: ignore[arg-type]


def developed(wid: str, family: str, at: float) -> Wafer:
    return Wafer(wid, family, developed=True, develop_end=at)


def test_families_never_share_a_batch_and_the_least_slack_goes_first() -> None:
    ws = [developed("B1", "CURE-B", 9 * H), developed("A1", "CURE-A", 8 * H),
          developed("B2", "CURE-B", 9.5 * H), developed("A2", "CURE-A", 9.6 * H)]
    d = policy.pick_batch(state(ws, exposure_open=False), 5.0)
    assert d.batch is not None and d.batch.family == "CURE-A"  # A1 has waited longest
    assert d.batch.wafer_ids == ("A1", "A2") and not d.late
    rest = [w._replace(taken=True) if w.family == "CURE-A" else w for w in ws]
    d2 = policy.pick_batch(state(rest, exposure_open=False), 5.0)
    assert d2.batch is not None and d2.batch.wafer_ids == ("B1", "B2")


def test_a_batch_waits_to_fill_unless_the_queue_time_would_break() -> None:
    coming = [Wafer(f"A{i}", "CURE-A") for i in range(3, 5)]
    early = [developed("A1", "CURE-A", 9.9 * H), developed("A2", "CURE-A", 10 * H)]
    assert policy.pick_batch(state(early + coming), 5.0).batch is None
    # the oldest's deadline is closer than the next wafer's arrival: a partial batch now
    late = [developed("A1", "CURE-A", 10 * H - 24 * H + 100.0), early[1]]
    d = policy.pick_batch(state(late + coming), 5.0)
    assert d.batch is not None and d.batch.wafer_ids == ("A1", "A2")
    assert d.batch.partial_for == late[0].develop_end + 24 * H  # type: ignore[operator]


def test_a_wafer_past_its_queue_time_is_returned_to_hold_never_batched() -> None:
    ws = [developed("A1", "CURE-A", 10 * H - 25 * H), developed("A2", "CURE-A", 10 * H)]
    d = policy.pick_batch(state(ws, exposure_open=False), 5.0)
    assert d.late == ("A1",) and d.batch is not None and d.batch.wafer_ids == ("A2",)


def test_the_exposure_waits_while_no_oven_could_start_its_wafer_in_time() -> None:
    todo = [Wafer("A9", "CURE-A")]
    assert policy.exposure_wait(state(todo)) == 0.0
    busy = (10 * H + 30 * H,)  # the only oven is busy past the queue time
    assert policy.exposure_wait(state(todo, oven_free=busy)) == policy.GATE_MAX_WAIT_S
    # a second oven that is free lets it go
    assert policy.exposure_wait(state(todo, oven_free=(*busy, 10 * H))) == 0.0


def test_each_tool_resumes_its_own_step_else_takes_the_next() -> None:
    ws = [Wafer("A1", "CURE-A", step="expose", tool="exposure-2"), Wafer("A2", "CURE-A"),
          Wafer("A3", "CURE-A", taken=True)]
    s = state(ws)
    assert policy.next_exposure(s, "exposure-2") == "A1"
    assert policy.next_exposure(s, "exposure") == "A2"
    cured = [Wafer("C1", "CURE-A", True, True, cure_end=5.0),
             Wafer("C2", "CURE-A", True, True, cure_end=3.0),
             Wafer("C3", "CURE-A", True, True, step="etch", tool="etcher-2", cure_end=9.0)]
    s2 = state(cured)
    assert policy.next_etch(s2, "etcher-2") == "C3"
    assert policy.next_etch(s2, "etcher") == "C2"  # first out of the oven first


def test_a_waiting_oven_is_told_when_a_partial_batch_falls_due() -> None:
    """No batch yet: the answer says when it changes with no other event (the oldest
    wafer's deadline less the margin, the poll and the next wafer's arrival)."""
    early = [developed("A1", "CURE-A", 9.9 * H), Wafer("A2", "CURE-A")]
    s = state(early)
    d = policy.pick_batch(s, 5.0)
    assert d.batch is None and d.wake_at is not None
    due = policy.pick_batch(state(early, now=d.wake_at), 5.0)
    assert due.batch is not None and due.batch.partial_for is not None
    assert policy.pick_batch(state(early, now=d.wake_at - 60.0), 5.0).batch is None


_ids, _families = st.uuids().map(str), st.sampled_from(sorted(FAMILIES))
_wafers = st.lists(st.builds(Wafer, wafer_id=_ids, family=_families) | st.builds(  # waiting
    Wafer, wafer_id=_ids, family=_families,
    developed=st.booleans(), cured=st.booleans(), etched=st.booleans(),
    step=st.sampled_from(["", "", "", "expose", "cure", "etch"]),
    tool=st.sampled_from(["exposure", "exposure-2", "etcher", "etcher-2"]),
    develop_end=st.none() | st.floats(-20 * H, 11 * H),
    cure_end=st.none() | st.floats(0, 11 * H), live=st.booleans(),
    may_run=st.booleans(), taken=st.booleans()), max_size=30)


def _answers(s: LineState) -> tuple[object, ...]:
    return (tuple(policy.next_exposure(s, t) for t in ("exposure", "exposure-2")),
            [w.wafer_id for w in policy.waiting_for_cure(s)], policy.exposure_wait(s),
            tuple(policy.still_to_come(s, f) for f in FAMILIES),
            policy.pick_batch(s, 5.0), policy.next_etch(s, None),
            tuple(policy.next_etch(s, t) for t in ("etcher", "etcher-2")))


@settings(max_examples=300, deadline=None)
@given(_wafers, st.booleans(), st.floats(0, 400), st.lists(st.floats(9 * H, 14 * H),
                                                           max_size=2))
def test_a_state_without_repeat_waiting_wafers_gets_the_same_answers(
        wafers: list[Wafer], open_: bool, since: float, ovens: list[float]) -> None:
    """The runner leaves out a waiting wafer behind another of its family (policy.queued):
    every rule answers the same without them."""
    full = state(wafers, exposure_open=open_, oven_free=tuple(ovens),
                 exposures_since=(10 * H - since,) if since else ())
    seen: set[str] = set()
    kept = []
    for w in wafers:
        if policy.queued(w):
            if w.family in seen:
                continue
            seen.add(w.family)
        kept.append(w)
    assert _answers(replace(full, wafers=tuple(kept))) == _answers(full)
