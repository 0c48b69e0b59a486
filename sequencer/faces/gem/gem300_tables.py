"""The GEM300 part's rows of the GEM tables (E87 carriers, E40 process jobs, E94 control
jobs, S7 process programs, S10 terminal services), merged into ``tables`` at import.

Owned by the GEM300 part. Ids come from its reserved ranges only (``tables.RESERVED``):
3000-3999 E87, 7000-7999 process programs, 10000-10999 terminal, 14000-14999 E94,
16000-16999 E40 / S16 process-job objects; ``tables`` refuses a row outside them.

The carrier and control-job state events come from the machines' own transition tables
(``sequencer/states/carrier.py``, ``control_job.py``), one CEID per (machine, source,
dest), so a transition added there gets its event here. The E40 transitions of a process
job once it runs are the E30 part's job events (the process job *is* the line's lot,
its LotID the PRJOBID); this part adds what happens before the lot exists (created,
dequeued, canceled) and its refusals. The E90 substrate events are the E30 part's.

DVs of the E30 part that these events also carry: ``LotID``, ``PPID``, ``Reason``.
"""

from __future__ import annotations

from sequencer.faces.gem.rows import AlarmRow, CollectionEvent, VarClass, Variable
from sequencer.states import carrier as e87
from sequencer.states import control_job as e94

DV, SV = VarClass.DV, VarClass.SV
PORT_COUNT = 2  # the line's load ports (material.PORTS)

VARIABLES: tuple[Variable, ...] = (
    # E87
    Variable(3100, "CarrierID", DV, "A"),
    Variable(3101, "PortID", DV, "U1"),
    Variable(3102, "CarrierIDStatus", DV, "A"),
    Variable(3103, "CarrierSlotMapStatus", DV, "A"),
    Variable(3104, "CarrierAccessingStatus", DV, "A"),
    Variable(3105, "SlotMap", DV, "A"),  # the carrier's, one digit per slot (E87 codes)
    Variable(3106, "CarrierPreviousState", DV, "A"),
    Variable(3107, "AccessMode", DV, "A"),  # MANUAL or AUTO
    # S7 process programs (E30 Process Program Change event)
    Variable(7100, "PPChangeName", DV, "A"),
    Variable(7101, "PPChangeStatus", DV, "U1"),  # 1 created, 2 edited, 3 deleted
    Variable(7102, "PPVersion", DV, "U4"),
    # S10 terminal services
    Variable(10100, "TerminalID", DV, "U1"),
    Variable(10101, "TerminalText", DV, "A"),
    # E94
    Variable(14100, "CtrlJobID", DV, "A"),
    Variable(14101, "CtrlJobState", DV, "A"),
    Variable(14102, "CtrlJobPreviousState", DV, "A"),
    Variable(14103, "CtrlJobCompletion", DV, "A"),  # normal, stopped, aborted
    Variable(14104, "CtrlJobProcessJobs", DV, "A"),  # comma-separated PRJOBIDs
    # E40 process job objects
    Variable(16100, "PRJobID", DV, "A"),
    Variable(16101, "PRJobCarrier", DV, "A"),
    Variable(16102, "PRJobSlots", DV, "A"),  # comma-separated slot numbers
    # status variables (material.provide_svs), lists as comma-separated ids
    Variable(3200, "CarriersAtPorts", SV, "A"),
    Variable(3201, "CarriersHeld", SV, "A"),
    *(Variable(3210 + n, f"LoadPort{n}AccessMode", SV, "U1")  # 0 manual, 1 auto
      for n in range(1, PORT_COUNT + 1)),
    Variable(14200, "CtrlJobQueue", SV, "A"),  # QUEUED, in queue order
    Variable(14201, "CtrlJobsActive", SV, "A"),  # SELECTED … PAUSED
    Variable(16200, "PRJobSpace", SV, "U2"),
    Variable(16201, "PRJobsActive", SV, "A"),  # not final
)

CARRIER_DVS = ("CarrierID", "PortID", "LotID", "CarrierIDStatus", "CarrierSlotMapStatus",
               "CarrierAccessingStatus", "CarrierPreviousState", "SlotMap", "Reason")
CJ_DVS = ("CtrlJobID", "CtrlJobState", "CtrlJobPreviousState", "CtrlJobCompletion",
          "CtrlJobProcessJobs", "Reason")
PJ_DVS = ("PRJobID", "PRJobCarrier", "PRJobSlots", "PPID", "Reason")

_MACHINES = (("ID", e87.ID_TRANSITIONS), ("SlotMap", e87.MAP_TRANSITIONS),
             ("Access", e87.ACCESS_TRANSITIONS))
_MACHINE_OF = {"id": "ID", "slot_map": "SlotMap", "access": "Access"}


def _pairs(transitions: list[e87.TransitionConfigDict]) -> list[tuple[str, str]]:
    """(source, dest) of every source of every transition, in table order."""
    out: list[tuple[str, str]] = []
    for t in transitions:
        sources = t["source"] if isinstance(t["source"], list) else [t["source"]]
        out += [(str(s), str(t["dest"])) for s in sources]
    return out


def carrier_event(machine: str, source: str, dest: str) -> str:
    """The CE name of a carrier transition (``machine``: the listener's id/slot_map/access)."""
    return f"Carrier.{_MACHINE_OF[machine]}.{source}.{dest}"


def cj_event(source: str, dest: str) -> str:
    return f"ControlJob.{source}.{dest}"


def _carrier_events() -> list[CollectionEvent]:
    rows = [CollectionEvent(3000, "Carrier.Created", CARRIER_DVS),
            CollectionEvent(3001, "Carrier.Held", CARRIER_DVS),
            CollectionEvent(3002, "Carrier.Canceled", CARRIER_DVS),
            CollectionEvent(3003, "Carrier.ReCreated", CARRIER_DVS),
            CollectionEvent(3004, "Carrier.Removed", CARRIER_DVS)]
    for block, (machine, transitions) in enumerate(_MACHINES, start=1):
        rows += [CollectionEvent(3000 + 10 * block + i,
                                 f"Carrier.{machine}.{source}.{dest}", CARRIER_DVS)
                 for i, (source, dest) in enumerate(_pairs(transitions))]
    rows += [CollectionEvent(3050, "LoadPort.AccessMode.MANUAL", ("PortID", "AccessMode")),
             CollectionEvent(3051, "LoadPort.AccessMode.AUTO", ("PortID", "AccessMode"))]
    return rows


def _cj_events() -> list[CollectionEvent]:
    rows = [CollectionEvent(14000, "ControlJob.Created", CJ_DVS),
            CollectionEvent(14001, "ControlJob.Deleted", CJ_DVS),
            CollectionEvent(14002, "ControlJob.HeadOfQueue", CJ_DVS),
            CollectionEvent(14003, "ControlJob.Refused", CJ_DVS)]
    seen: set[tuple[str, str]] = set()
    for source, dest in _pairs(e94.TRANSITIONS):
        if (source, dest) not in seen:  # stop and abort share their (source, dest) pairs
            seen.add((source, dest))
            rows.append(CollectionEvent(14010 + len(seen) - 1, cj_event(source, dest), CJ_DVS))
    return rows


EVENTS: tuple[CollectionEvent, ...] = (
    *_carrier_events(),
    CollectionEvent(7000, "ProcessProgramChange", ("PPChangeName", "PPChangeStatus",
                                                   "PPVersion")),
    CollectionEvent(7001, "ProcessProgramRefused", ("PPChangeName", "Reason")),
    CollectionEvent(10000, "TerminalMessageReceived", ("TerminalID", "TerminalText")),
    CollectionEvent(10001, "TerminalMessageSent", ("TerminalID", "TerminalText")),
    *_cj_events(),
    CollectionEvent(16000, "PRJob.Created", PJ_DVS),
    CollectionEvent(16001, "PRJob.Dequeued", PJ_DVS),
    CollectionEvent(16002, "PRJob.Canceled", PJ_DVS),
    CollectionEvent(16003, "PRJob.Refused", PJ_DVS),
    CollectionEvent(16004, "PRJob.WaitingForStart", PJ_DVS),
)

ALARMS: tuple[AlarmRow, ...] = (
    AlarmRow(3500, "CarrierHeld", 4, "carrier held: its ID or slot map does not match the "
                                     "lot (cancel or re-create it)"),
)
