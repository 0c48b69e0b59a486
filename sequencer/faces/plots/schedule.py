"""A lot's schedule from the journal's command records: a bar per wafer step or oven batch.

A bar is one stay of a set of wafers on a tool: it opens at the handling MOVE that took
them to the tool (or at the tool's first command for them, when the journal has no such
move, as with operator handling) and closes at the MOVE that took them away (else at
the outcome of the tool's last command for them). Tools are the journal's own names,
in the order each was first used: no list of tools is assumed.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from sequencer.store.history import History

HANDLING = "handling"  # the journal's "tool" name of a material move


class UnknownLot(LookupError):
    """The journal has no lot of that id."""


@dataclass
class Bar:
    tool: str
    wafer_ids: tuple[str, ...]
    start_s: float  # tool seconds from the lot's first record
    end_s: float
    batch_no: int | None = None  # an oven batch
    ok: bool = True  # every command of the stay had an OK outcome

    @property
    def label(self) -> str:
        if self.batch_no is not None:
            return f"batch {self.batch_no}"
        return self.wafer_ids[0] if len(self.wafer_ids) == 1 else f"{len(self.wafer_ids)} wafers"


@dataclass
class LotSchedule:
    lot_id: str
    tools: list[str] = field(default_factory=list)
    bars: list[Bar] = field(default_factory=list)

    @property
    def makespan_s(self) -> float:
        return max((b.end_s for b in self.bars), default=0.0)


def lot_schedule(history: History, lot_id: str) -> LotSchedule:
    """The bars of ``lot_id`` (:class:`UnknownLot` if the journal does not know it)."""
    wafers = {w for w, *_ in history.wafers(lot_id)}
    if not wafers:
        raise UnknownLot(f"no lot {lot_id!r} in {history.path}")
    rows = [c for c in history.commands() if wafers.intersection(c.wafer_ids)]
    sched = LotSchedule(lot_id)
    if not rows:
        return sched
    scale, t0 = history.scale, rows[0].t

    def tool_s(t: float) -> float:  # History gives unix time; the journal keeps tool seconds
        return (t - t0) * scale

    moved_in: dict[tuple[str, tuple[str, ...]], float] = {}
    open_bars: dict[str, Bar] = {}
    for c in rows:
        end = tool_s(c.outcome_t if c.outcome_t is not None else c.t)
        if c.tool == HANDLING:
            dest = str(c.args.get("to", ""))
            for tool, bar in list(open_bars.items()):
                if tool != dest and set(bar.wafer_ids) <= set(c.wafer_ids):
                    bar.end_s = end
                    del open_bars[tool]
            moved_in[(dest, c.wafer_ids)] = tool_s(c.t)
            continue
        bar_or_none = open_bars.get(c.tool)
        if bar_or_none is not None and bar_or_none.wafer_ids == c.wafer_ids:
            bar = bar_or_none
        else:
            if c.tool not in sched.tools:
                sched.tools.append(c.tool)
            bar = Bar(c.tool, c.wafer_ids, moved_in.pop((c.tool, c.wafer_ids), tool_s(c.t)),
                      end)
            open_bars[c.tool] = bar
            sched.bars.append(bar)
        bar.end_s = max(bar.end_s, end)
        bar.ok = bar.ok and c.outcome == "OK"
        if "batch_no" in c.before and bar.batch_no is None:
            bar.batch_no = int(c.before["batch_no"])
    return sched

