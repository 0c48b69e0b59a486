"""The wafer page's two plots as SVG: the ``plots`` face's matplotlib figures, drawn here.

Traces are read from the journal file read-only (``History``) and drawn off the event
loop (``run_in_threadpool``), one drawing at a time (matplotlib's font and text
caches are shared). A wafer whose record can no longer change (processed, rejected,
aborted, lost, skipped; not a held wafer, which may be released) keeps its SVGs in a
cache of ``CACHE_WAFERS`` wafers.
"""

from __future__ import annotations

import io
import threading
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import matplotlib
from starlette.concurrency import run_in_threadpool

from sequencer.faces.plots.figures import cure_figure, etch_figure
from sequencer.faces.plots.traces import UnknownWafer, WaferTraces, wafer_traces
from sequencer.store.history import History

Which = Literal["cure", "etch"]
SETTLED = frozenset({"PROCESSED", "REJECTED", "ABORTED", "LOST", "SKIPPED"})
CACHE_WAFERS = 200


@dataclass(frozen=True)
class Drawn:
    """One wafer's plots: SVG bytes, or None where the journal has no such trace."""

    state: str
    cure: bytes | None
    etch: bytes | None

    def svg(self, which: Which) -> bytes | None:
        return self.cure if which == "cure" else self.etch


def _svg(traces: WaferTraces, which: Which) -> bytes | None:
    if which == "cure":
        if traces.cure is None:
            return None
        fig = cure_figure(traces.cure, title=f"{traces.wafer_id}: oven batch "
                                             f"{traces.cure.batch_no}, temperature profile")
    else:
        if traces.etch is None:
            return None
        fig = etch_figure(traces.etch, title=f"{traces.wafer_id}: etch OES trace")
    buf = io.BytesIO()
    with matplotlib.rc_context({"path.simplify": False}):  # every recorded point is drawn
        fig.savefig(buf, format="svg", metadata={"Date": None})
    return buf.getvalue()


class Plots:
    """``await plots.drawn(wafer_id)``: the wafer's plots (None: no such wafer, or no
    journal to read)."""

    def __init__(self, journal: Path | None) -> None:
        self.journal = journal
        self._cache: OrderedDict[str, Drawn] = OrderedDict()
        self._lock = threading.Lock()  # one matplotlib drawing at a time

    def _draw(self, wafer_id: str) -> Drawn | None:
        if self.journal is None or not self.journal.exists():
            return None
        history = History(self.journal)
        try:
            traces = wafer_traces(history, wafer_id)
        except UnknownWafer:
            return None
        finally:
            history.close()
        with self._lock:
            return Drawn(traces.state, _svg(traces, "cure"), _svg(traces, "etch"))

    async def drawn(self, wafer_id: str) -> Drawn | None:
        if wafer_id in self._cache:
            self._cache.move_to_end(wafer_id)
            return self._cache[wafer_id]
        drawn = await run_in_threadpool(self._draw, wafer_id)
        if drawn is not None and drawn.state in SETTLED:
            self._cache[wafer_id] = drawn
            while len(self._cache) > CACHE_WAFERS:
                self._cache.popitem(last=False)
        return drawn
