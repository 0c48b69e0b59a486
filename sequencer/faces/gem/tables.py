"""The GEM ids, as data: status variables, data values, equipment constants, collection
events and alarms. Nothing here talks to a host; ``equipment`` serves these rows.

Id ranges. The GEM300 part owns 3000-3999 (E87), 7000-7999 (process programs),
10000-10999 (terminal), 14000-14999 (E94) and 16000-16999 (E40 / S16 objects) for its
CEIDs, VIDs and ALIDs, in ``gem300_tables``; everything else is the E30 part's:

- SVs 1-99 (E30's required ones first), per-tool SVs 1000-2999 (``tool_variables``:
  ``TOOL_SV_BASE + index × TOOL_SV_STRIDE + offset``, index = the tool's position in
  ``line.tools()``, i.e. tools.yaml order), DVs 500-699, ECs 100-199 (per-tool poll
  periods 150 + index).
- CEIDs 1-99 control state / spooling / ECs, 100-199 E90 substrate transitions,
  200-299 E40 job transitions, 300-399 E10, steps, batches, alarms, tools.
- ALIDs 20000 + 100 × tool index + the offset of the alarm kind (``ALARM_KINDS``).

A substrate or job transition's CEID comes from the state machine's own transition
table (``sequencer/states``), so a transition added there gets its event here.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from sequencer.faces.gem import gem300_tables
from sequencer.faces.gem.rows import AlarmRow, CollectionEvent, Format, VarClass, Variable
from sequencer.states import job as e40
from sequencer.states import substrate as e90

__all__ = ["AlarmRow", "CollectionEvent", "Format", "Variable", "VarClass"]

SV, DV, EC = VarClass.SV, VarClass.DV, VarClass.EC
RESERVED: tuple[range, ...] = (range(3000, 4000), range(7000, 8000), range(10000, 11000),
                               range(14000, 15000), range(16000, 17000))

# --- status variables ----------------------------------------------------------------
E30_SVS: tuple[Variable, ...] = (
    Variable(1, "Clock", SV, "A"),
    Variable(2, "ControlState", SV, "U1"),  # E30: 1 eq. offline … 5 online remote
    Variable(3, "PreviousControlState", SV, "U1"),
    Variable(4, "EventsEnabled", SV, "L"),
    Variable(5, "AlarmsEnabled", SV, "L"),
    Variable(6, "AlarmsSet", SV, "L"),
    Variable(7, "SpoolCountActual", SV, "U4"),
    Variable(8, "SpoolCountTotal", SV, "U4"),
    Variable(9, "SpoolFullTime", SV, "A"),
    Variable(10, "SpoolStartTime", SV, "A"),
    Variable(11, "MDLN", SV, "A"),
    Variable(12, "SOFTREV", SV, "A"),
    Variable(13, "LotsActive", SV, "U4"),
    # the planner's ETAs: "LOTID=TIME,…" for each unfinished lot it has one for (TIME in
    # the TimeFormat EC's form)
    Variable(14, "LotETAs", SV, "A"),
)

TOOL_SV_BASE, TOOL_SV_STRIDE, MAX_TOOLS = 1000, 20, 100


@dataclass(frozen=True)
class ToolVariable:
    """A per-tool SV template: VID ``TOOL_SV_BASE + index × STRIDE + offset``, name
    ``<tool>.<suffix>`` (its value: ``variables.tool_value``)."""

    offset: int
    suffix: str
    fmt: Format
    unit: str = ""


TOOL_SVS: tuple[ToolVariable, ...] = (
    ToolVariable(0, "Kind", "A"),
    ToolVariable(1, "State", "A"),  # the tool's own state (IDLE, ETCHING, …)
    ToolVariable(2, "E10State", "A"),
    ToolVariable(3, "Connected", "BOOLEAN"),
    ToolVariable(4, "Held", "BOOLEAN"),
    ToolVariable(5, "CurrentLot", "A"),
    ToolVariable(6, "CurrentWafer", "A"),
    ToolVariable(7, "Step", "A"),
    ToolVariable(8, "ChamberTemperature", "F8", "degC"),
    ToolVariable(9, "O2", "F8", "ppm"),
    ToolVariable(10, "Pressure", "F8", "mTorr"),
    ToolVariable(11, "RFPower", "F8", "W"),
    ToolVariable(12, "Alarms", "A"),  # the tool's own alarm names, comma-separated
)


def tool_variables(tools: Iterable[str]) -> tuple[Variable, ...]:
    """Every per-tool SV of the line's tools, in ``line.tools()`` order."""
    rows = []
    for index, tool in enumerate(tools):
        if index >= MAX_TOOLS:
            raise ValueError(f"more than {MAX_TOOLS} tools: no SVIDs left for {tool}")
        base = TOOL_SV_BASE + index * TOOL_SV_STRIDE
        rows += [Variable(base + t.offset, f"{tool}.{t.suffix}", SV, t.fmt, t.unit)
                 for t in TOOL_SVS]
    return tuple(rows)


# --- data values (valid in the reports of the events that carry them) ----------------
DVS: tuple[Variable, ...] = (
    Variable(500, "LotID", DV, "A"),
    Variable(501, "PPID", DV, "A"),
    Variable(502, "SubstID", DV, "A"),
    Variable(503, "Slot", DV, "U2"),
    Variable(504, "SubstState", DV, "A"),
    Variable(505, "SubstPreviousState", DV, "A"),
    Variable(506, "SubstLocation", DV, "A"),
    Variable(507, "JobState", DV, "A"),
    Variable(508, "JobPreviousState", DV, "A"),
    Variable(509, "ToolName", DV, "A"),
    Variable(510, "StepName", DV, "A"),
    Variable(511, "E10State", DV, "A"),
    Variable(512, "E10PreviousState", DV, "A"),
    Variable(513, "BatchNo", DV, "U4"),
    Variable(514, "BatchWafers", DV, "A"),  # comma-separated wafer ids
    Variable(515, "ALID", DV, "U4"),
    Variable(516, "AlarmText", DV, "A"),
    Variable(517, "ECID", DV, "U4"),
    Variable(518, "ECValue", DV, "A"),
    Variable(519, "Reason", DV, "A"),
    Variable(520, "StepOK", DV, "BOOLEAN"),
    Variable(530, "DepthUm", DV, "F8", "um"),
    Variable(531, "ResidualUm", DV, "F8", "um"),
    Variable(532, "ResidualAfterCureUm", DV, "F8", "um"),
    Variable(533, "EtchTimeS", DV, "F8", "s"),
    Variable(534, "RemovedUm", DV, "F8", "um"),
    Variable(535, "Open", DV, "BOOLEAN"),
    Variable(536, "Dose", DV, "F8", "mJ/cm2"),
    Variable(537, "TimeAtTempS", DV, "F8", "s"),
)
#: wafer result DV → the key of ``WaferView.data`` it reads
RESULTS: dict[str, str] = {
    "DepthUm": "depth_um", "ResidualUm": "residual_um",
    "ResidualAfterCureUm": "residual_after_cure_um", "EtchTimeS": "etch_time_s",
    "RemovedUm": "removed_um", "Open": "open", "Dose": "dose", "TimeAtTempS": "time_at_temp_s",
}

# --- equipment constants ---------------------------------------------------------------
#: the ECs the GEM face keeps itself, and the line's (``variables.LINE_CONSTANTS``: applied
#: with ``LineControl.set_constant``; their default is the line's value at start)
ECS: tuple[Variable, ...] = (
    Variable(100, "EstablishCommunicationsTimeout", EC, "U2", "s", 1, 120, 10),
    Variable(101, "TimeFormat", EC, "U1", "", 0, 1, 1),  # 0: 12-char, 1: 16-char TIME
    Variable(102, "MaxSpoolTransmit", EC, "U4", "", 0, 10000, 0),  # 0: all at once
    Variable(103, "SpoolMax", EC, "U4", "", 10, 100000, 10000),  # bound of the spool
    Variable(104, "OverWriteSpool", EC, "BOOLEAN", "", 0, 1, 0),
    Variable(111, "QueueTimeDevelopToCureS", EC, "F8", "s", 60, 7 * 86400, 24 * 3600),
    Variable(112, "QueueTimeCureToEtchS", EC, "F8", "s", 60, 14 * 86400, 72 * 3600),
    # caps the cure recipe's batch size (the oven's cassette holds 25)
    Variable(113, "MaxBatchSize", EC, "U1", "wafers", 1, 25, 25),
)
POLL_EC_BASE = 150  # PollPeriodS.<tool>: 150 + the tool's index (up to 50 tools)


def poll_constants(tools: Iterable[str]) -> tuple[Variable, ...]:
    """One EC per tool: the tool seconds between its state polls during a step."""
    return tuple(Variable(POLL_EC_BASE + i, f"PollPeriodS.{tool}", EC, "F8", "s", 0.05, 60.0)
                 for i, tool in enumerate(list(tools)[:50]))

# --- collection events ---------------------------------------------------------------
_SUBST_DVS = ("SubstID", "LotID", "Slot", "SubstState", "SubstPreviousState",
              "SubstLocation", "Reason", *RESULTS)
_JOB_DVS = ("LotID", "PPID", "JobState", "JobPreviousState")
_STEP_DVS = ("ToolName", "StepName", "LotID", "SubstID", "StepOK", *RESULTS)
_ALARM_DVS = ("ALID", "AlarmText", "ToolName", "LotID")

CONTROL_EVENTS: tuple[CollectionEvent, ...] = (
    CollectionEvent(1, "EquipmentOffline"),
    CollectionEvent(2, "ControlStateLocal"),
    CollectionEvent(3, "ControlStateRemote"),
    CollectionEvent(4, "HostOffline"),
    CollectionEvent(5, "SpoolingActivated"),
    CollectionEvent(6, "SpoolingDeactivated"),
    CollectionEvent(7, "EquipmentConstantChanged", ("ECID", "ECValue")),
    CollectionEvent(8, "OperatorCommandIssued", ("Reason",)),
)


def _pairs(transitions: list[e90.TransitionConfigDict] | list[e40.TransitionConfigDict]
           ) -> list[tuple[str, str, str]]:
    """(trigger, source, dest) for every source of every transition, in table order."""
    out = []
    for t in transitions:
        sources = t["source"] if isinstance(t["source"], list) else [t["source"]]
        out += [(str(t["trigger"]), str(s), str(t["dest"])) for s in sources]
    return out


#: (src, dst) → CE name; the first row of a pair wins (the tables have no duplicates)
SUBSTRATE_EVENTS = {(s, d): f"Substrate.{trig}.{s}.{d}" for trig, s, d in
                    _pairs(e90.TRANSITIONS)}
JOB_EVENTS = {(s, d): f"Job.{trig}.{s}.{d}" for trig, s, d in _pairs(e40.TRANSITIONS)}
JOB_QUEUED = "Job.create.QUEUED"
SUBSTRATE_OTHER, JOB_OTHER = "Substrate.StateChanged", "Job.StateChanged"


def _transition_events() -> tuple[CollectionEvent, ...]:
    subst = [CollectionEvent(100 + i, name, _SUBST_DVS)
             for i, name in enumerate(SUBSTRATE_EVENTS.values())]
    subst.append(CollectionEvent(199, SUBSTRATE_OTHER, _SUBST_DVS))
    job = [CollectionEvent(200, JOB_QUEUED, _JOB_DVS)]
    job += [CollectionEvent(201 + i, name, _JOB_DVS)
            for i, name in enumerate(JOB_EVENTS.values())]
    job.append(CollectionEvent(299, JOB_OTHER, _JOB_DVS))
    return (*subst, *job)


LINE_EVENTS: tuple[CollectionEvent, ...] = (
    CollectionEvent(300, "E10StateChanged", ("ToolName", "E10State", "E10PreviousState")),
    CollectionEvent(310, "StepStarted", _STEP_DVS),
    CollectionEvent(311, "StepEnded", _STEP_DVS),
    CollectionEvent(320, "BatchStarted", ("ToolName", "BatchNo", "BatchWafers")),
    CollectionEvent(321, "BatchEnded", ("ToolName", "BatchNo", "BatchWafers")),
    CollectionEvent(330, "AlarmSet", _ALARM_DVS),
    CollectionEvent(331, "AlarmCleared", _ALARM_DVS),
    CollectionEvent(340, "ToolCommunicationChanged", ("ToolName", "Reason")),
    CollectionEvent(341, "ToolTaken", ("ToolName", "Reason")),
    CollectionEvent(342, "ToolGiven", ("ToolName", "Reason")),
)

# --- alarms ----------------------------------------------------------------------------
ALARM_BASE, ALARM_STRIDE = 20000, 100


@dataclass(frozen=True)
class AlarmKind:
    """A kind of alarm viaform raises (``sequencer/runner``), its ALID offset per tool."""

    offset: int
    kind: str
    alcd: int  # E5 ALCD category (see rows.AlarmRow)
    text: str


ALARM_KINDS: tuple[AlarmKind, ...] = (
    AlarmKind(1, "TOOL_HELD", 2, "tool held for a person: acknowledge once the cause is gone"),
    AlarmKind(2, "TOOL_DOWN", 5, "tool unreachable: work on it paused"),
    AlarmKind(3, "COMMS_LOST", 5, "communication with the tool lost during a step"),
    AlarmKind(4, "WORKER_FAILED", 5, "the tool's worker failed unexpectedly"),
    AlarmKind(5, "CURE_FAILED", 4, "cure batch failed: its wafers are held"),
    AlarmKind(6, "CURE_EXCURSION", 4, "cure profile excursion during the batch"),
    AlarmKind(7, "WAFER_ON_TOOL", 2, "a wafer was left on the tool"),
    AlarmKind(99, "OTHER", 7, "an alarm viaform raised of a kind not in this table"),
)


def alarm_rows(tools: Iterable[str]) -> tuple[AlarmRow, ...]:
    """One ALID per (tool, kind), named ``<tool>.<KIND>``, text ``<tool>: <text>``."""
    rows = []
    for index, tool in enumerate(tools):
        base = ALARM_BASE + index * ALARM_STRIDE
        rows += [AlarmRow(base + k.offset, f"{tool}.{k.kind}", k.alcd,
                          f"{tool}: {k.text}"[:120]) for k in ALARM_KINDS]
    return tuple(rows)


def alarm_name(tool: str, kind: str) -> str:
    """The alarm row name of an alarm event (``OTHER`` for a kind the table lacks)."""
    known = {k.kind for k in ALARM_KINDS}
    return f"{tool}.{kind if kind in known else 'OTHER'}"


# --- the whole tables, for a line ------------------------------------------------------
@dataclass(frozen=True)
class Tables:
    variables: dict[int, Variable]
    by_name: dict[str, Variable]
    events: dict[int, CollectionEvent]
    event_by_name: dict[str, CollectionEvent]
    alarms: dict[int, AlarmRow]
    alarm_by_name: dict[str, AlarmRow]


def _check(kind: str, ids: list[int], names: list[str], gem300: set[int]) -> None:
    seen: set[int] = set()
    for i in ids:
        if i in seen:
            raise ValueError(f"GEM {kind} id {i} used twice")
        seen.add(i)
        mine = not any(i in r for r in RESERVED)
        if (i in gem300) == mine:
            raise ValueError(f"GEM {kind} id {i} is outside its part's range")
    if len(set(names)) != len(names):
        raise ValueError(f"GEM {kind} names used twice: "
                         f"{sorted({n for n in names if names.count(n) > 1})}")


def build(tools: Iterable[str]) -> Tables:
    """The tables for a line with ``tools`` (the E30 rows + ``gem300_tables``), checked:
    ids unique, each in its part's range, names unique."""
    tools = list(tools)
    variables = [*E30_SVS, *tool_variables(tools), *DVS, *ECS, *poll_constants(tools),
                 *gem300_tables.VARIABLES]
    events = [*CONTROL_EVENTS, *_transition_events(), *LINE_EVENTS, *gem300_tables.EVENTS]
    alarms = [*alarm_rows(tools), *gem300_tables.ALARMS]
    _check("VID", [v.vid for v in variables], [v.name for v in variables],
           {v.vid for v in gem300_tables.VARIABLES})
    _check("CEID", [e.ceid for e in events], [e.name for e in events],
           {e.ceid for e in gem300_tables.EVENTS})
    _check("ALID", [a.alid for a in alarms], [a.name for a in alarms],
           {a.alid for a in gem300_tables.ALARMS})
    return Tables({v.vid: v for v in variables}, {v.name: v for v in variables},
                  {e.ceid: e for e in events}, {e.name: e for e in events},
                  {a.alid: a for a in alarms}, {a.name: a for a in alarms})
