"""One simulated world: every wafer's physical state, following it from tool to tool.

Tools change a wafer through the methods here (each simulator owns its own
physics and writes the outcome); material handling moves wafers between
locations with :meth:`World.transfer`, which asks the receiving and giving
tools (their :class:`Port`) whether the move is physically possible.

Locations: ``stocker`` (the lot's carrier, where new wafers start), and each tool by
its name on the line: an exposure cell's load position (or its chuck once loaded), an
oven's cassette, an etcher's load-lock / chamber (the classic line: ``exposure``,
``oven``, ``etcher``; more tools of a kind: ``etcher-2`` …).
"""

from __future__ import annotations

import threading
from dataclasses import asdict, dataclass, field
from typing import Any, Protocol

LOCATIONS = ("stocker", "exposure", "oven", "etcher")  # the classic line's; see World.locations


class TransferError(Exception):
    """A move that cannot physically happen (the reason says why)."""


class Port(Protocol):
    """A tool's side of material handling."""

    def can_place(self, wafer_ids: list[str]) -> str | None:
        """None if these wafers may be put in now, else the reason they may not."""

    def can_take(self, wafer_ids: list[str]) -> str | None:
        """None if these wafers may be taken out now, else the reason they may not."""

    def placed(self, wafer_ids: list[str]) -> None: ...

    def taken(self, wafer_ids: list[str]) -> None: ...


@dataclass
class WaferState:
    """What physically happened to one wafer. Thicknesses in um."""

    wafer_id: str
    location: str = "stocker"
    film_um: float = 10.0  # coated resin, as made
    # first process (exposure + develop)
    exposures: int = 0
    dose_mj_cm2: float | None = None  # dose of the last exposure
    developed: int = 0
    top_um: float | None = None  # resin surface thickness after develop (before cure)
    residual_pre_cure_um: float | None = None  # resin left at via bottoms after develop
    spread_max: float = 1.0  # worst via's residual / mean residual (clear-time spread)
    # cure
    degree_of_cure: float = 0.0  # alpha, 0..1
    cure_batches: list[int] = field(default_factory=list)
    shrink_fraction: float = 0.25  # full-cure shrink of the resin
    # second process (dry etch)
    etches: int = 0
    removed_um: float = 0.0  # resin removed at the via bottoms, all etches
    wiring_recess_um: float = 0.0  # flow B: concave portion etched into the wiring
    #: step (expose, cure, etch) → the tools that ran it on this wafer, in order
    ran: dict[str, list[str]] = field(default_factory=dict)
    # history: (sim_time_s, tool, event) tuples
    history: list[tuple[float, str, str]] = field(default_factory=list)

    def ran_on(self, step: str, tool: str) -> None:
        """``tool`` began ``step`` on this wafer (an exposure, a cure program, an etch)."""
        self.ran.setdefault(step, []).append(tool)

    @property
    def shrink(self) -> float:
        """Fraction the resin has shrunk so far (proportional to degree of cure)."""
        return self.shrink_fraction * self.degree_of_cure

    @property
    def residual_um(self) -> float | None:
        """Mean resin now left at the via bottoms (after shrink and etch)."""
        if self.residual_pre_cure_um is None:
            return None
        return max(0.0, self.residual_pre_cure_um * (1.0 - self.shrink) - self.removed_um)

    @property
    def depth_um(self) -> float | None:
        """Depth of the concave portions now (top minus residual, both shrunk)."""
        if self.top_um is None or self.residual_pre_cure_um is None:
            return None
        s = 1.0 - self.shrink
        return max(0.0, self.top_um * s - self.residual_pre_cure_um * s)

    @property
    def vias_open(self) -> bool:
        """True when even the worst via has no resin left at its bottom."""
        if self.residual_pre_cure_um is None:
            return False
        worst = self.residual_pre_cure_um * self.spread_max * (1.0 - self.shrink)
        return self.removed_um >= worst - 1e-9

    def to_json(self) -> dict[str, Any]:
        d = asdict(self)
        d.pop("history")
        d.update(
            residual_um=_r(self.residual_um),
            depth_um=_r(self.depth_um),
            vias_open=self.vias_open,
            history=[{"t": round(t, 1), "tool": tool, "event": ev} for t, tool, ev in self.history],
        )
        return d


def _r(x: float | None) -> float | None:
    return None if x is None else round(x, 4)


class World:
    """All wafers, their locations, and the tools' ports. Thread-safe."""

    def __init__(self, clock: Any) -> None:
        self.clock = clock
        self.lock = threading.RLock()
        self.wafers: dict[str, WaferState] = {}
        self.ports: dict[str, Port] = {}

    def register_port(self, location: str, port: Port) -> None:
        if not location or location == "stocker":
            raise ValueError(f"not a tool location: {location!r}")
        self.ports[location] = port

    def locations(self) -> tuple[str, ...]:
        """Where a wafer may be: the stocker and every tool (the classic three at least)."""
        return tuple(dict.fromkeys(("stocker", *LOCATIONS[1:], *self.ports)))

    def add_wafers(self, wafer_ids: list[str], film_um: float = 10.0) -> None:
        """Put new coated wafers in the stocker (an id already known is left as it is)."""
        with self.lock:
            for wid in wafer_ids:
                if wid not in self.wafers:
                    self.wafers[wid] = WaferState(wid, film_um=film_um)
                    self.log(wid, "world", f"created, film {film_um} um")

    def wafer(self, wafer_id: str) -> WaferState:
        with self.lock:
            return self.wafers[wafer_id]

    def at(self, location: str) -> list[str]:
        with self.lock:
            return [w.wafer_id for w in self.wafers.values() if w.location == location]

    def log(self, wafer_id: str, tool: str, event: str) -> None:
        with self.lock:
            self.wafers[wafer_id].history.append((self.clock.now(), tool, event))

    def transfer(self, wafer_ids: list[str], to: str) -> None:
        """Move wafers to ``to`` all together, or raise TransferError and move none."""
        if to not in self.locations():
            raise TransferError(f"unknown location {to!r}; known: "
                                f"{', '.join(self.locations())}")
        with self.lock:
            missing = [w for w in wafer_ids if w not in self.wafers]
            if missing:
                raise TransferError(f"unknown wafer(s): {', '.join(missing)}")
            by_source: dict[str, list[str]] = {}
            for wid in wafer_ids:
                src = self.wafers[wid].location
                if src != to:
                    by_source.setdefault(src, []).append(wid)
            if not by_source:
                return
            moving = [w for ids in by_source.values() for w in ids]
            for src, ids in by_source.items():
                port = self.ports.get(src)
                reason = port.can_take(ids) if port else None
                if reason:
                    raise TransferError(f"cannot take {', '.join(ids)} from {src}: {reason}")
            dest = self.ports.get(to)
            reason = dest.can_place(moving) if dest else None
            if reason:
                raise TransferError(f"cannot place {', '.join(moving)} in {to}: {reason}")
            for src, ids in by_source.items():
                if src in self.ports:
                    self.ports[src].taken(ids)
                for wid in ids:
                    self.wafers[wid].location = to
                    self.log(wid, "handling", f"{src} -> {to}")
            if dest:
                dest.placed(moving)

    def snapshot(self) -> dict[str, Any]:
        with self.lock:
            return {
                "sim_time_s": round(self.clock.now(), 1),
                "wafers": {wid: w.to_json() for wid, w in sorted(self.wafers.items())},
            }
