"""What the GEM300 tests share: the daemon on the simulators with a lot file in its lots
folder, a secsgem host that knows the GEM300 functions, and the host's side of E87,
E40 and E94 as plain calls. The daemon and the host are the E30 tests' own
(``tests/gem/gemkit``), not copies.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sequencer.faces.gem import tables
from sequencer.faces.gem.streams_functions import register
from sequencer.faces.gem.streams_items import any_value
from sequencer.states.carrier import slot_map_of
from simulators.runner import SimThread
from tests.gem.gemkit import (
    Daemon,
    RecordingHost,
    define_reports,
    gem_daemon,
    gem_host,
    gem_tools_yaml,
)
from tests.hil.flowkit import write_lot
from tests.hil.test_daemon_engine import quick_flow

TOOLS = ("exposure", "oven", "etcher")
TABLES = tables.build(TOOLS)
RPT_CARRIER, RPT_CJ = 3001, 14001


def ceid(name: str) -> int:
    return TABLES.event_by_name[name].ceid


def vid(name: str) -> int:
    return TABLES.by_name[name].vid


@dataclass
class Bench:
    daemon: Daemon
    host: RecordingHost
    db: Path
    recipes: Path
    prjob_events: list[tuple[str, int, str]]  # S16F9: (PRJOBID, PREVENTID, state), in order


@contextmanager
def bench(tmp_path: Path, sims: SimThread, lots: dict[str, list[str]],
          fresh: bool = True) -> Iterator[Bench]:
    """The daemon (FLOW-Q beside the configs' recipes, one lot file per entry of ``lots``:
    carrier/lot id → wafer ids in slots 1…) and a host with every event and alarm
    enabled, the E30 tests' substrate and job reports and ours for the carrier and
    control job events (``fresh`` False: the same journal again, its reports restored by
    the daemon)."""
    recipes = quick_flow(tmp_path)
    for lot_id, wafers in lots.items():
        write_lot(tmp_path, lot_id, "FLOW-Q", wafers)
    db = tmp_path / "journal.db"
    tools = gem_tools_yaml(tmp_path, sims, db)
    with gem_daemon(tools, db, recipes, "gem300") as daemon, gem_host(daemon.gem_port) as host:
        register(host.settings.streams_functions)
        prjob_events: list[tuple[str, int, str]] = []

        def on_s16f9(handler: Any, message: Any) -> Any:
            got = host.settings.streams_functions.decode(message).get()
            prjob_events.append((got["PRJOBID"], got["PREVENTID"],
                                 got["VARIABLES"][0]["V"]))
            return host.stream_function(16, 10)()
        host.register_stream_function(16, 9, on_s16f9)
        if not fresh:
            assert host.request(1, 17) in (0, 2)  # online again (request online, or already)
            host.request(6, 23, 1)  # purge what was spooled while no host was there
            yield Bench(daemon, host, db, recipes, prjob_events)
            return
        define_reports(host, TABLES)  # the E30 tests' substrate and job reports
        assert host.request(2, 33, {"DATAID": 5, "DATA": [
            {"RPTID": RPT_CARRIER, "VID": [vid(n) for n in ("CarrierID", "CarrierIDStatus",
                                                            "CarrierSlotMapStatus",
                                                            "CarrierAccessingStatus",
                                                            "Reason")]},
            {"RPTID": RPT_CJ, "VID": [vid(n) for n in ("CtrlJobID", "CtrlJobState",
                                                       "CtrlJobCompletion")]}]}) == 0
        links = [{"CEID": e.ceid, "RPTID": [RPT_CARRIER if e.name.startswith("Carrier.")
                                            else RPT_CJ]}
                 for e in TABLES.events.values() if e.name.startswith(("Carrier.",
                                                                       "ControlJob."))]
        assert host.request(2, 35, {"DATAID": 6, "DATA": links}) == 0
        yield Bench(daemon, host, db, recipes, prjob_events)


# ---- the host's side of E87 / E40 / E94 -----------------------------------------------
def proceed(host: RecordingHost, carrier: str, slots: list[int] | None,
            action: str = "ProceedWithCarrier", port: int = 1) -> dict[str, Any]:
    attrs = [] if slots is None else [{"CATTRID": "SlotMap",
                                       "CATTRDATA": any_value(slot_map_of(slots))}]
    got: dict[str, Any] = host.request(3, 17, {"DATAID": 0, "CARRIERACTION": action,
                                              "CARRIERSPEC": carrier, "PTN": port,
                                              "ATTRIBUTES": attrs})
    return got


def create_pj(host: RecordingHost, pj: str, carrier: str, slots: list[int], ppid: str,
              auto: bool = True) -> dict[str, Any]:
    got: dict[str, Any] = host.request(16, 11, {
        "DATAID": 0, "PRJOBID": pj, "MF": 13,
        "CARRIERS": [{"CARRIERID": carrier, "SLOTID": slots}],
        "RECIPE": {"PRRECIPEMETHOD": 1, "RCPSPEC": ppid, "PARAMETERS": []},
        "PRPROCESSSTART": auto, "PRPAUSEEVENT": []})
    return got


def create_cj(host: RecordingHost, cj: str, pjs: list[str], carriers: list[str],
              auto: bool = False) -> dict[str, Any]:
    got: dict[str, Any] = host.request(14, 9, {
        "OBJSPEC": "", "OBJTYPE": "ControlJob", "ATTRIBUTES": [
            {"ATTRID": "ObjID", "ATTRDATA": cj},
            {"ATTRID": "ProcessingCtrlSpec", "ATTRDATA": any_value([[p, [], []] for p in pjs])},
            {"ATTRID": "CarrierInputSpec", "ATTRDATA": any_value(carriers)},
            {"ATTRID": "StartMethod", "ATTRDATA": auto}]})
    return got


def cj_command(host: RecordingHost, cj: str, command: int, action: str = "") -> dict[str, Any]:
    got: dict[str, Any] = host.request(16, 27, {"CTLJOBID": cj, "CTLJOBCMD": command,
                                               "PARAMETER": {"CPNAME": "Action",
                                                             "CPVAL": action}})
    return got
