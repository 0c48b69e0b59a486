"""Polling follows a step's expected end: sparse while the end is far (never past the end
window), dense across the window, every period for a step later than its window."""

from __future__ import annotations

import pytest

from sequencer.runner.steps.polling import (
    DENSE_FRACTION,
    EARLY,
    LATE,
    SPARSE_POLLS,
    WINDOW_POLLS,
    next_poll_s,
)

POLL, EXPECTED = 20.0, 300.0
DENSE = POLL * DENSE_FRACTION
WINDOW = EXPECTED * (1 - EARLY)


@pytest.mark.parametrize(("elapsed", "wait"), [
    (0.0, SPARSE_POLLS * POLL),  # far from the end: sparsely
    (WINDOW - 30.0, 30.0),  # the sparse poll that would pass the window's start stops there
    (WINDOW, DENSE),  # in the window: densely
    (EXPECTED, DENSE),
    (EXPECTED * (1 + LATE) + POLL - 0.1, DENSE),
    (EXPECTED * (1 + LATE) + POLL + 0.1, POLL),  # later than the window: every period
])
def test_the_next_poll_follows_the_expected_end(elapsed: float, wait: float) -> None:
    assert next_poll_s(POLL, elapsed, EXPECTED) == pytest.approx(wait)


def test_no_poll_waits_past_the_end_window_or_longer_than_the_sparse_period() -> None:
    for tenth in range(0, 6000):
        elapsed = tenth / 10
        wait = next_poll_s(POLL, elapsed, EXPECTED)
        assert DENSE <= wait <= SPARSE_POLLS * POLL
        if elapsed < WINDOW - DENSE:
            assert elapsed + wait <= WINDOW + 1e-9


def test_a_step_shorter_than_a_dense_period_is_polled_densely() -> None:
    assert next_poll_s(POLL, 0.0, 2.0) == pytest.approx(DENSE)


def test_a_wait_whose_polls_are_records_keeps_its_period_while_the_end_is_far() -> None:
    """The cure: every poll is a point of the profile and a look for an excursion."""
    assert next_poll_s(POLL, 0.0, EXPECTED, sparse=False) == pytest.approx(POLL)
    assert next_poll_s(POLL, EXPECTED, EXPECTED, sparse=False) == pytest.approx(DENSE)


def test_a_long_wait_whose_polls_are_records_has_a_window_of_a_few_periods() -> None:
    """A 3.5 h cure polled every 40 s: dense only within WINDOW_POLLS periods of its
    expected end (the ±15 % would be ±31 min), every period before and after; a sparse
    wait of the same length keeps the ±15 %."""
    poll, cure = 40.0, 12600.0
    dense = poll * DENSE_FRACTION
    edge = WINDOW_POLLS * poll
    assert next_poll_s(poll, cure * (1 - EARLY), cure, sparse=False) == pytest.approx(poll)
    assert next_poll_s(poll, cure - edge, cure, sparse=False) == pytest.approx(dense)
    assert next_poll_s(poll, cure + edge + poll - 1, cure, sparse=False) == pytest.approx(dense)
    assert next_poll_s(poll, cure + edge + poll + 1, cure, sparse=False) == pytest.approx(poll)
    assert next_poll_s(poll, cure * (1 - EARLY), cure) == pytest.approx(dense)
    polls, t = 0, 0.0
    while t < cure:
        t += next_poll_s(poll, t, cure, sparse=False)
        polls += 1
    assert polls <= cure / poll + 2 * WINDOW_POLLS / DENSE_FRACTION  # 315 + 32, not 504
