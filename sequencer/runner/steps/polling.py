"""When a wait polls its tool next: polling follows the step's expected end.

A wait (``ToolHandle.wait``) knows when its step should end: the manual's duration, the
same figure its time limit and the planner are built from. So it polls

- **sparsely** while the end is far: every ``SPARSE_POLLS`` poll periods, never past
  the start of the end window. An alarm mid-step is still seen within that long
  (at the simulators' time scale 2000 with ``poll_s`` 20 tool s: 80 tool s, 40 ms wall;
  at time scale 1 with the default 0.5 s: 2 s); the tools make themselves safe on an
  alarm on their own, the sequencer's poll only has to notice it;
- **densely** across the end window, from ``EARLY`` before to ``LATE`` after the
  expected end (the tools' durations spread about ±10 % around the manual's figures),
  every ``DENSE_FRACTION`` of a period (at least ``DENSE_MIN_S``), so an end is seen
  within a dense period of when it comes, not up to a period late;
- every period again for a step later than its window (slow, or stuck until its limit).

A wait that begins right after its own start (``ToolHandle.wait(just_started=True)``:
after LOAD, EXPOSURE:STARt, DEVELOP:STARt, UNLOAD) makes its first poll where the
schedule's second would be, not at once: a reading a moment after the start could only
say busy. A resumed wait (a restart) polls at once.

So a step is seen ending sooner and costs fewer polls than one every period. A wait
whose every poll is also a record is never sparse (``sparse=False`` keeps its period
while the end is far): the oven's cure, where each poll is a point of the batch's
temperature profile and a look for an excursion (``steps.cure``), and the main etch,
where each poll is a point of the O 777.4 nm trace the PE-200 keeps none of
(``steps.live.EtchWatch``). Sparse polls are for the rest: loads, exposures, develops,
unloads, vents.

A wait that is never sparse sees an end outside its window within one period anyway,
so its window is no wider than ``WINDOW_POLLS`` periods each side. That matters for a
long step: a 3.5 h cure's ±15 % was ±31 min of polls at a quarter period (at time scale
1 with the oven's 5 s: ~3000 polls a batch); the cure's expected end, from the recipe
and the chamber's physics (``steps.cure.expected_cure_s``), is within ~0.3 % of
the oven's.
A sparse wait keeps the full window: an end before it would be seen up to
``SPARSE_POLLS`` periods late.
"""

from __future__ import annotations

SPARSE_POLLS = 4.0  # poll periods between polls while the end is far
DENSE_FRACTION = 0.25  # of a poll period, across the end window
DENSE_MIN_S = 0.5  # tool s: no denser than this
EARLY, LATE = 0.15, 0.15  # the end window, as fractions of the expected duration
#: a wait that is never sparse has an end window of at most this many periods each side
WINDOW_POLLS = 4.0


def next_poll_s(poll_s: float, elapsed_s: float, expected_s: float, *,
                sparse: bool = True) -> float:
    """Tool seconds from now to the next poll of a step ``elapsed_s`` into its expected
    ``expected_s`` (see the module docstring; ``sparse`` False: every period while the
    end is far)."""
    dense = max(DENSE_MIN_S, poll_s * DENSE_FRACTION)
    early, late = expected_s * EARLY, expected_s * LATE
    if not sparse:  # an end outside the window is still seen within a period
        early, late = min(early, WINDOW_POLLS * poll_s), min(late, WINDOW_POLLS * poll_s)
    window = expected_s - early
    if elapsed_s < window - dense:
        far = SPARSE_POLLS * poll_s if sparse else poll_s
        return max(dense, min(far, window - elapsed_s))
    if elapsed_s <= expected_s + late + poll_s:
        return dense
    return poll_s
