"""A wafer's traces as the journal holds them: its oven batch's profile and its etch's OES.

What is read, and where the runner writes it (``sequencer/runner/steps``):

- ``batch-N`` / ``oven_profile`` (``cure.py``): a header row naming the columns
  (``cure_watch.PROFILE_COLUMNS``: t_s, chamber_c, wafer_c, setpoint_c, o2_ppm, n2_slm,
  alarms, state, segment, phase), then one row per status poll, ``t_s`` from the start of
  the program. Columns are found by name, so an older journal with fewer columns still reads.
- ``batch-N`` / ``cure_watch`` (``cure.py``, newer journals): the recipe's O2 limit and N2
  setpoint, and each excursion as the watch detected it (``t_s``, kind, text).
- ``<wafer>`` / ``oes_co``: the tool's own ``OES:TRACe?`` (CO 483.5 nm, one point every
  2 s from RF on, the last 600 at most: PE-200 manual, Readings).
- ``<wafer>`` / ``oes_o`` (``etch.py``, newer journals): ``[elapsed_s, O 777.4 nm counts]``
  at each poll of the etch (``ETCH:STATus?`` elapsed, then ``OES:O?``): the tool keeps no
  O trace of its own.
- the wafer's ``etch`` result: ``endpoint_s`` (None: no endpoint seen), ``elapsed_s``,
  ``etch_time``, ``overetch``, ``endpoint`` (the plan sent).

Times are tool seconds from the program's start (cure) or from RF on (etch).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from sequencer.store.history import History

#: PE-200 manual, Readings: ``OES:TRACe?`` is one point every 2 s, at most 600 points
OES_TRACE_STEP_S = 2.0
OES_TRACE_MAX = 600


class UnknownWafer(LookupError):
    """The journal has no wafer of that id."""


@dataclass(frozen=True)
class Band:
    """A soak: the chamber held at ``setpoint_c`` from ``t0_s`` to ``t1_s``."""

    t0_s: float
    t1_s: float
    segment: int | None
    setpoint_c: float | None


@dataclass(frozen=True)
class Excursion:
    """A moment worth marking: an excursion the watch detected, or an oven alarm bit first
    reported (``source`` ``watch`` or ``oven``)."""

    t_s: float
    kind: str
    text: str
    source: str


@dataclass(frozen=True)
class CureTrace:
    batch_no: int
    t_s: tuple[float, ...]
    chamber_c: tuple[float | None, ...]
    setpoint_c: tuple[float | None, ...]
    wafer_c: tuple[float | None, ...]
    o2_ppm: tuple[float | None, ...]
    n2_slm: tuple[float | None, ...]
    soaks: tuple[Band, ...]
    excursions: tuple[Excursion, ...]
    o2_limit_ppm: float | None = None
    n2_setpoint_slm: float | None = None


@dataclass(frozen=True)
class EtchTrace:
    co_t_s: tuple[float, ...]
    co_counts: tuple[float, ...]
    o_t_s: tuple[float, ...]
    o_counts: tuple[float, ...]
    endpoint_s: float | None  # the OES endpoint, seconds from RF on (None: none seen)
    main_end_s: float | None  # where the main etch ended (endpoint, or ETCH:TIME)
    elapsed_s: float | None  # RF time of the whole etch, main + overetch


@dataclass(frozen=True)
class WaferTraces:
    wafer_id: str
    lot_id: str
    state: str
    cure: CureTrace | None
    etch: EtchTrace | None


def wafer_traces(history: History, wafer_id: str) -> WaferTraces:
    """The traces of ``wafer_id`` (each None if the journal has none); :class:`UnknownWafer`."""
    row = history.wafer(wafer_id)
    if row is None:
        raise UnknownWafer(f"no wafer {wafer_id!r} in {history.path}")
    lot_id, _, state, data = row
    results = history.results(wafer_id)
    batch = data.get("cure_batch") or results.get("cure", {}).get("batch_no")
    cure = cure_trace(history, int(batch)) if batch else None
    return WaferTraces(wafer_id, lot_id, state, cure,
                       etch_trace(history, wafer_id, results.get("etch", {})))


def _last(traces: list[tuple[str, Any]], kind: str) -> Any:
    found = [data for k, data in traces if k == kind]
    return found[-1] if found else None


def _num(x: Any) -> float | None:
    try:
        value = None if x is None else float(x)
    except (TypeError, ValueError):
        return None
    return value if value is None or math.isfinite(value) else None


def cure_trace(history: History, batch_no: int) -> CureTrace | None:
    """Batch ``batch_no``'s profile, soaks and excursions, or None if none was journaled."""
    traces = history.traces(f"batch-{batch_no}")
    profile = _last(traces, "oven_profile")
    if not profile or len(profile) < 2:
        return None
    header, rows = [str(c) for c in profile[0]], profile[1:]

    def col(name: str) -> tuple[Any, ...]:
        i = header.index(name) if name in header else None
        return tuple(None if i is None or i >= len(r) else r[i] for r in rows)

    t = tuple(float(x) for x in col("t_s"))
    watch = _last(traces, "cure_watch") or {}
    excursions = [Excursion(float(e["t_s"]), str(e["kind"]), str(e["text"]), "watch")
                  for e in watch.get("excursions", [])]
    excursions += _alarm_onsets(t, col("alarms"))
    def nums(name: str) -> tuple[float | None, ...]:
        return tuple(_num(v) for v in col(name))

    return CureTrace(
        batch_no, t, chamber_c=nums("chamber_c"), setpoint_c=nums("setpoint_c"),
        wafer_c=nums("wafer_c"), o2_ppm=nums("o2_ppm"), n2_slm=nums("n2_slm"),
        soaks=_soaks(t, col("phase"), col("segment"), col("setpoint_c")),
        excursions=tuple(sorted(excursions, key=lambda e: e.t_s)),
        o2_limit_ppm=_num(watch.get("o2_limit_ppm")),
        n2_setpoint_slm=_num(watch.get("n2_flow_slm")))


def _soaks(t: tuple[float, ...], phase: tuple[Any, ...], segment: tuple[Any, ...],
           setpoint: tuple[Any, ...]) -> tuple[Band, ...]:
    """Runs of polls in phase SOAK (a new band where the segment changes)."""
    bands: list[Band] = []
    start: int | None = None
    for i in range(len(t) + 1):
        soaking = i < len(t) and phase[i] == "SOAK"
        if start is not None and (not soaking or segment[i] != segment[start]):
            seg = segment[start]
            bands.append(Band(t[start], t[i - 1], seg if isinstance(seg, int) else None,
                              _num(setpoint[start])))
            start = None
        if soaking and start is None:
            start = i
    return tuple(bands)


def _alarm_onsets(t: tuple[float, ...], alarms: tuple[Any, ...]) -> list[Excursion]:
    """Each oven alarm bit at the first poll it is reported (again after it went away)."""
    out: list[Excursion] = []
    before: set[str] = set()
    for ti, names in zip(t, alarms, strict=True):
        now = {str(n) for n in names or ()}
        out += [Excursion(ti, n, f"oven alarm {n}", "oven") for n in sorted(now - before)]
        before = now
    return out


def etch_trace(history: History, wafer_id: str, result: dict[str, Any]) -> EtchTrace | None:
    """The etch's OES lines and endpoint, or None if the wafer has no OES trace."""
    traces = history.traces(wafer_id)
    co = _last(traces, "oes_co")
    if co is None:
        return None
    elapsed = _num(result.get("elapsed_s"))
    first = 0
    if len(co) >= OES_TRACE_MAX and elapsed is not None:  # the tool keeps the last 600
        first = max(0, int(elapsed // OES_TRACE_STEP_S) + 1 - len(co))
    o_rows = _last(traces, "oes_o") or []
    endpoint = _num(result.get("endpoint_s"))
    limit = _num(result.get("etch_time"))
    main_end = endpoint if result.get("endpoint") and endpoint is not None else limit
    return EtchTrace(
        co_t_s=tuple((first + k) * OES_TRACE_STEP_S for k in range(len(co))),
        co_counts=tuple(float(v) for v in co),
        o_t_s=tuple(float(r[0]) for r in o_rows), o_counts=tuple(float(r[1]) for r in o_rows),
        endpoint_s=endpoint, main_end_s=main_end, elapsed_s=elapsed)
