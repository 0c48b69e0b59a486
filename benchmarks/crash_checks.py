"""The crash campaign's verdicts (``bench_crash``), read where the truth is.

The tools' own records over plain clients: ``JOB:COUNt?``, ``SYSTem:STATe?`` and
``WAFer:ID?`` on the two SCPI tools over raw TCP sockets, the oven's program state,
heater contactor and cassette sensor over pymodbus, the simulated world (every wafer's
location, job counts and history) over the control port. The journal (read-only) is
asked only where a wafer is recorded, its final state and open alarms.
"""

from __future__ import annotations

import json
import os
import socket
import sqlite3
from pathlib import Path
from typing import Any

from pymodbus.client import ModbusTcpClient

from sequencer.line.sim_control import SimControlClient
from sequencer.states.substrate import FINAL

MIN_DEGREE_OF_CURE = 0.9  # CURE-PBO-320 reaches ~1.0; below 0.9 is not a complete cure
OVEN_STATES = ("IDLE", "PURGING", "RUNNING", "PAUSED", "COOLING", "COMPLETE", "ABORTED")
OVEN_BUSY = {"PURGING", "RUNNING", "PAUSED", "COOLING"}
Endpoints = dict[str, dict[str, Any]]


def base_env() -> dict[str, str]:
    """This process's environment without the crash hook's variables."""
    return {k: v for k, v in os.environ.items() if not k.startswith("VIAFORM_CRASH_")}


def tail(text: str, lines: int = 3) -> str:
    last = [ln for ln in text.strip().splitlines() if ln.strip()][-lines:]
    return (": " + " | ".join(s.strip() for s in last)) if last else ""


def scpi(endpoints: Endpoints, tool: str, line: str, timeout_s: float = 2.0) -> str:
    """One query line to a SCPI tool over a plain TCP socket; the reply line."""
    with socket.create_connection(tuple(endpoints[tool]["tcp"]), timeout=timeout_s) as sock:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        sock.sendall(line.encode() + b"\r\n")
        buf = b""
        while b"\n" not in buf:
            chunk = sock.recv(4096)
            if not chunk:
                raise ConnectionError(f"{tool} closed the connection")
            buf += chunk
    return buf.split(b"\n", 1)[0].decode().strip()


def oven_reading(endpoints: Endpoints) -> dict[str, Any]:
    """Program state (input register 4), heater contactor (DI 2), cassette (DI 4)."""
    host, port = endpoints["oven"]["tcp"]
    client = ModbusTcpClient(host, port=port, timeout=2)
    try:
        if not client.connect():
            raise ConnectionError("oven: Modbus TCP connect failed")
        regs = client.read_input_registers(4, count=1, device_id=1)
        dis = client.read_discrete_inputs(0, count=5, device_id=1)
        if regs.isError() or dis.isError():
            raise ConnectionError(f"oven: {regs if regs.isError() else dis}")
        state = regs.registers[0]
        return {"state": OVEN_STATES[state] if state < len(OVEN_STATES) else str(state),
                "contactor": bool(dis.bits[2]), "cassette": bool(dis.bits[4])}
    finally:
        client.close()


def _journal(db: Path) -> tuple[dict[str, tuple[str, dict[str, Any]]], set[str]]:
    """wafer → (state, data) and the tools held: an open (uncleared) alarm, or a TOOL_HELD
    alarm a person acknowledged after the run had ended, whose tool clear is still to be
    sent (the next run sends it at once: docs/operations.md)."""
    if not db.exists():
        return {}, set()
    with sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=5.0) as con:
        rows = con.execute("SELECT wafer_id, state, data FROM wafers").fetchall()
        try:
            alarmed = {t for (t,) in con.execute(
                "SELECT tool FROM alarms WHERE cleared_t IS NULL").fetchall()}
            cleared = {json.loads(a or "{}").get("alarm_id") for (a,) in con.execute(
                "SELECT args FROM commands WHERE command='CLEAR_ALARMS'").fetchall()}
            alarmed |= {t for t, i in con.execute(
                "SELECT tool, id FROM alarms WHERE kind='TOOL_HELD' AND cleared_t IS NOT NULL"
                ).fetchall() if i not in cleared}
        except sqlite3.OperationalError:
            alarmed = set()
    return {w: (st, json.loads(d or "{}")) for w, st, d in rows}, alarmed


def open_holds(db: Path, tool: str) -> list[int]:
    """Ids of the journal's unacknowledged TOOL_HELD alarms of ``tool``."""
    if not db.exists():
        return []
    try:
        with sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=5.0) as con:
            return [i for (i,) in con.execute(
                "SELECT id FROM alarms WHERE tool=? AND kind='TOOL_HELD' AND cleared_t IS NULL "
                "ORDER BY id", (tool,)).fetchall()]
    except sqlite3.OperationalError:  # the schema is not written yet
        return []


def _first(history: list[dict[str, Any]], tool: str, *words: str) -> float | None:
    for h in history:
        if h["tool"] == tool and all(w in h["event"] for w in words):
            return float(h["t"])
    return None


def _wafer_problems(wid: str, w: dict[str, Any] | None, jobs: dict[str, int],
                    journal: dict[str, tuple[str, dict[str, Any]]]) -> list[str]:
    if w is None:
        return [f"{wid}: lost (not in the simulated world)"]
    bad = []
    for tool, count in jobs.items():
        if count > 1:
            bad.append(f"{wid}: {tool} JOB:COUNt? {count}")
    for key in ("exposures", "developed", "etches"):
        if w[key] > 1:
            bad.append(f"{wid}: {key} {w[key]} in the world")
    hist = w["history"]
    etch = _first(hist, "etcher", "etch job", "start")
    if etch is not None or w["etches"] or jobs.get("etcher", 0):
        cured = _first(hist, "oven", "cure complete")
        if cured is None or etch is None or cured > etch:
            bad.append(f"{wid}: etched without a complete cure before it")
        elif w["degree_of_cure"] < MIN_DEGREE_OF_CURE:
            bad.append(f"{wid}: etched at degree of cure {w['degree_of_cure']:.2f}")
    state, data = journal.get(wid, ("MISSING", {}))
    if state not in FINAL:
        bad.append(f"{wid}: journal state {state}, not final")
    elif state != "PROCESSED" and not data.get("reason"):
        bad.append(f"{wid}: {state} without a reason")
    where = w["location"]
    if where != "stocker" and data.get("location") != where:
        bad.append(f"{wid}: left in the {where}, journal says {data.get('location', '?')}")
    return bad


def _tool_problems(endpoints: Endpoints, world: dict[str, Any],
                   journal: dict[str, tuple[str, dict[str, Any]]], alarmed: set[str]) -> list[str]:
    """Each tool safe, or holding only wafers the journal records there, or held (alarm)."""
    bad = []
    for tool in ("exposure", "etcher", "oven"):
        inside = sorted(w for w, s in world["wafers"].items() if s["location"] == tool)
        if tool == "oven":
            o = oven_reading(endpoints)
            busy = o["state"] in OVEN_BUSY or o["contactor"]
            safe = not busy and not o["cassette"]
            seen = f"{o['state']}, heaters {'on' if o['contactor'] else 'off'}, " \
                   f"cassette {'in' if o['cassette'] else 'out'}"
        else:
            state = scpi(endpoints, tool, "SYST:STAT?")
            on = scpi(endpoints, tool, "WAF:ID?")
            safe = state == "IDLE" and on == "NONE"
            seen = f"{state}, wafer {on}"
        if safe and not inside:
            continue
        unrecorded = [w for w in inside if journal.get(w, ("", {}))[1].get("location") != tool]
        if unrecorded:
            bad.append(f"{tool} not safe ({seen}) with {', '.join(unrecorded)} "
                       "not recorded there")
        elif not inside and tool not in alarmed:
            bad.append(f"{tool} not safe ({seen}) and not held (no open alarm)")
    return bad


def check(endpoints: Endpoints, db: Path, wafers: list[str]) -> tuple[list[str], dict[str, str]]:
    """Every invariant for one crash point; (problems, wafer → journaled E90 state)."""
    control = SimControlClient(*endpoints["control"]["tcp"])
    try:
        world = control.world()
    finally:
        control.close()
    journal, alarmed = _journal(db)
    bad = []
    for wid in wafers:
        jobs = {tool: int(scpi(endpoints, tool, f"JOB:COUN? {wid}"))
                for tool in ("exposure", "etcher")}
        bad += _wafer_problems(wid, world["wafers"].get(wid), jobs, journal)
    bad += _tool_problems(endpoints, world, journal, alarmed)
    return bad, {w: journal.get(w, ("MISSING", {}))[0] for w in wafers}


#: commands that make a tool safe after a failure (the wafer taken off it, back home)
MAKE_SAFE_COMMANDS = {"MAKE_SAFE", "ABORT", "UNLOAD", "MOVE", "CLEAR_ALARMS"}


def make_safe_window(points: list[Any]) -> list[Any]:
    """The writes of a fault run that make a tool safe: from the first alarm write or
    MAKE_SAFE/ABORT intent to the next write that is other work (an intent for another
    command, e.g. the next wafer's LOAD, or the lot's own state)."""
    def command(p: Any) -> str:
        parts = p.detail.split()
        return parts[1] if len(parts) > 1 else ""

    start = next((i for i, p in enumerate(points) if p.kind == "alarm" or (
        p.kind == "intent" and command(p) in ("MAKE_SAFE", "ABORT"))), None)
    if start is None:
        return []
    window = []
    for p in points[start:]:
        if p.kind == "lot" or (p.kind == "intent" and command(p) not in MAKE_SAFE_COMMANDS):
            break
        window.append(p)
    return window
