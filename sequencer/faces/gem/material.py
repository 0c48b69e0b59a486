"""The GEM300 objects the host creates (E87 carriers and load ports, E40 process jobs,
E94 control jobs), kept together, persisted, and heard as collection events.

One ``Material`` is shared by ``carriers``, ``process_jobs`` and ``control_jobs``. Its
``lock`` is held for every change: the host's messages arrive on secsgem's dispatcher
thread, the line's progress on the daemon's loop (``control_jobs.Watcher``). Every
change is written to the GEM store at once (``e87.carrier.<id>``, ``e87.port.<n>``,
``e40.pj.<id>``, ``e94.cj.<id>``, ``e94.queue``) and read back at start, so a restart
finds each object in the state it had, as the journal keeps the lots.

A process job is the line's lot once its control job runs it (``submitted``): its lot
id is the PRJOBID, its wafers the carrier's slots it names, its flow the PPID. Until
then it lives only here.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any, TypeVar

from sequencer.faces.gem.context import GemContext
from sequencer.faces.gem.gem300_tables import PORT_COUNT, carrier_event, cj_event
from sequencer.states.carrier import Carrier, LoadPort
from sequencer.states.control_job import ACTIVE, ControlJob
from sequencer.states.job import FINAL

T = TypeVar("T")
PORTS = tuple(range(1, PORT_COUNT + 1))  # the line's load ports (E87 PTN)
#: E40 process job state codes (PRJobState; the PREVENTID of an S16F9)
PJ_STATE_CODES = {"QUEUED": 0, "SETTING_UP": 1, "WAITING_FOR_START": 2, "PROCESSING": 3,
                  "PROCESS_COMPLETE": 4, "PAUSING": 6, "PAUSED": 7, "STOPPING": 8,
                  "ABORTING": 9, "STOPPED": 10, "ABORTED": 11}


@dataclass
class ProcessJobRecord:
    """One E40 process job: material (one carrier, its slots), PPID, start method."""

    pj_id: str
    carrier_id: str
    slots: list[int]
    ppid: str
    auto_start: bool
    state: str = "QUEUED"
    submitted: bool = False  # the line has the lot (its state is the lot's from then on)
    cj_id: str | None = None
    reason: str = ""  # why it ended without running, or why the line refused it


_PJ_FIELDS = {f.name for f in fields(ProcessJobRecord)}


class Material:
    """Carriers, load ports, process jobs and control jobs, with their persistence."""

    def __init__(self, ctx: GemContext, lots_dir: Path, recipes_dir: Path) -> None:
        self.ctx, self.lots_dir, self.recipes_dir = ctx, lots_dir, recipes_dir
        self.lock = threading.RLock()
        store = ctx.store
        self.ports = {n: LoadPort(n, self._mode(store.get(f"e87.port.{n}")),
                                  listener=self._port_changed) for n in PORTS}
        self.carriers = {c.carrier_id: c for c in self._load(
            "e87.carrier.", lambda raw: Carrier.from_json(raw, listener=self._carrier_changed))}
        self.pjs = {p.pj_id: p for p in self._load("e40.pj.", lambda raw: ProcessJobRecord(
            **{k: v for k, v in raw.items() if k in _PJ_FIELDS}))}
        self.cjs = {j.cj_id: j for j in self._load(
            "e94.cj.", lambda raw: ControlJob.from_json(raw, listener=self._cj_changed))}
        queue = store.get("e94.queue")
        self.queue: list[str] = [q for q in queue if q in self.cjs] \
            if isinstance(queue, list) else []

    def _load(self, prefix: str, build: Callable[[dict[str, Any]], T]) -> list[T]:
        """Every object journaled under ``prefix``, rebuilt."""
        raws = (self.ctx.store.get(key) for key in self.ctx.store.keys(prefix))
        return [build(raw) for raw in raws if isinstance(raw, dict)]

    @staticmethod
    def _mode(raw: object) -> str:
        return str(raw) if raw in ("MANUAL", "AUTO") else "MANUAL"

    # ---- persistence -------------------------------------------------------------------
    def save_carrier(self, c: Carrier) -> None:
        self.ctx.store.put(f"e87.carrier.{c.carrier_id}", c.to_json())

    def drop_carrier(self, carrier_id: str) -> None:
        self.carriers.pop(carrier_id, None)
        self.ctx.store.delete(f"e87.carrier.{carrier_id}")

    def save_pj(self, pj: ProcessJobRecord) -> None:
        self.ctx.store.put(f"e40.pj.{pj.pj_id}", asdict(pj))

    def drop_pj(self, pj_id: str) -> None:
        self.pjs.pop(pj_id, None)
        self.ctx.store.delete(f"e40.pj.{pj_id}")

    def save_cj(self, cj: ControlJob) -> None:
        with self.ctx.store.atomic():
            self.ctx.store.put(f"e94.cj.{cj.cj_id}", cj.to_json())
            self.ctx.store.put("e94.queue", list(self.queue))

    def drop_cj(self, cj_id: str) -> None:
        self.cjs.pop(cj_id, None)
        if cj_id in self.queue:
            self.queue.remove(cj_id)
        with self.ctx.store.atomic():
            self.ctx.store.delete(f"e94.cj.{cj_id}")
            self.ctx.store.put("e94.queue", list(self.queue))

    # ---- events ------------------------------------------------------------------------
    def carrier_values(self, c: Carrier, previous: str = "",
                       reason: str | None = None) -> dict[str, object]:
        return {"CarrierID": c.carrier_id, "PortID": c.port, "LotID": c.lot_id or "",
                "CarrierIDStatus": c.id_status, "CarrierSlotMapStatus": c.slot_map_status,
                "CarrierAccessingStatus": c.accessing_status,
                "CarrierPreviousState": previous,
                "SlotMap": "".join(str(s) for s in c.slot_map),
                "Reason": c.hold_reason if reason is None else reason}

    def carrier_event(self, name: str, c: Carrier, reason: str | None = None) -> None:
        self.ctx.emit(name, self.carrier_values(c, reason=reason))

    def _carrier_changed(self, c: Carrier, machine: str, source: str, dest: str) -> None:
        self.ctx.emit(carrier_event(machine, source, dest),
                      self.carrier_values(c, previous=source))

    def _port_changed(self, port: LoadPort, source: str, dest: str) -> None:
        self.ctx.store.put(f"e87.port.{port.port}", dest)
        self.ctx.emit(f"LoadPort.AccessMode.{dest}", {"PortID": port.port, "AccessMode": dest})

    def cj_values(self, cj: ControlJob, previous: str = "",
                  reason: str = "") -> dict[str, object]:
        return {"CtrlJobID": cj.cj_id, "CtrlJobState": cj.state,
                "CtrlJobPreviousState": previous, "CtrlJobCompletion": cj.completion,
                "CtrlJobProcessJobs": ",".join(cj.process_jobs), "Reason": reason}

    def _cj_changed(self, cj: ControlJob, source: str, dest: str, trigger: str) -> None:
        self.ctx.emit(cj_event(source, dest), self.cj_values(cj, previous=source))

    def pj_values(self, pj: ProcessJobRecord, reason: str | None = None) -> dict[str, object]:
        return {"PRJobID": pj.pj_id, "PRJobCarrier": pj.carrier_id,
                "PRJobSlots": ",".join(str(s) for s in pj.slots), "PPID": pj.ppid,
                "Reason": pj.reason if reason is None else reason}

    def new_carrier(self, carrier_id: str, port: int, lot_id: str | None,
                    content: Mapping[int, str]) -> Carrier:
        c = Carrier(carrier_id, port, lot_id, content, listener=self._carrier_changed)
        self.carriers[carrier_id] = c
        return c

    def new_cj(self, cj_id: str, pjs: list[str], carriers: list[str],
               auto_start: bool) -> ControlJob:
        cj = ControlJob(cj_id, pjs, carriers, auto_start=auto_start, listener=self._cj_changed)
        self.cjs[cj_id] = cj
        self.queue.append(cj_id)
        return cj

    def active_pjs(self) -> list[ProcessJobRecord]:
        return [p for p in self.pjs.values() if p.state not in FINAL]


def provide_svs(handler: Any, m: Material, space: Callable[[], int]) -> None:
    """The GEM300 status variables (``gem300_tables``), read from ``m`` under its lock."""
    def ids(pick: Callable[[], list[str]]) -> Callable[[], object]:
        def get() -> object:
            with m.lock:
                return ",".join(pick())
        return get

    handler.provide("CarriersAtPorts", ids(lambda: [
        c.carrier_id for c in m.carriers.values() if not c.canceled
        and c.accessing_status not in ("CARRIER_COMPLETE", "CARRIER_STOPPED")]))
    handler.provide("CarriersHeld", ids(lambda: [c.carrier_id for c in m.carriers.values()
                                                 if c.held]))
    for n, port in m.ports.items():
        handler.provide(f"LoadPort{n}AccessMode",
                        lambda port=port: 1 if port.access_mode == "AUTO" else 0)
    handler.provide("CtrlJobQueue", ids(lambda: list(m.queue)))
    handler.provide("CtrlJobsActive", ids(lambda: [j.cj_id for j in m.cjs.values()
                                                   if j.state in ACTIVE]))
    handler.provide("PRJobSpace", space)
    handler.provide("PRJobsActive", ids(lambda: [p.pj_id for p in m.active_pjs()]))
