"""Remote commands (S2F41 / S2F49): START, PAUSE, RESUME, ABORT, STOP — validated before
the HCACK is answered.

secsgem 0.3 answers HCACK 4 before the command's callback runs, so a bad parameter
could never be refused; here the whole command is checked first and the answer says
what happened (E5 HCACK): 0 done, 1 no such command, 2 cannot be done now (not ONLINE
REMOTE, a tool held, the lot's state), 3 a bad parameter (CPACK per parameter: 1 name
unknown, 2 illegal value, 3 illegal format), 4 accepted, runs later. A refused command
changes nothing.

START creates the lot exactly as ``POST /lots`` and ``viaform lot submit`` do: the same
``parse_lot`` on the same mapping, then ``LineControl.submit_lot`` (run on the daemon's
loop and waited for, briefly: it only queues). PAUSE/RESUME/ABORT/STOP are checked against
the lot's state, answered 4, then run on the loop (they wait for the running step); a
failure there is logged and told to the host as S10 text. The line has no E40 stop apart
from abort (both let the running step finish, then end the lot): STOP is ABORT here.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import structlog

from sequencer.faces.gem.context import GemContext
from sequencer.faces.http.contract import LineError, LotView
from sequencer.process.lots import parse_lot
from sequencer.states.job import FINAL

log = structlog.get_logger("viaform.gem")
HCACK_DONE, HCACK_NO_CMD, HCACK_CANNOT, HCACK_PARAM, HCACK_LATER = 0, 1, 2, 3, 4
CPACK_NAME, CPACK_VALUE, CPACK_FORMAT = 1, 2, 3
SUBMIT_WAIT_S = 10.0  # the dispatcher waits this long for the engine to queue a lot


@dataclass
class Answer:
    hcack: int
    params: list[tuple[str, int]] = field(default_factory=list)  # (CPNAME, CPACK)
    why: str = ""


@dataclass(frozen=True)
class Command:
    """One remote command: the parameters it takes and the lot states it applies to."""

    name: str
    params: tuple[str, ...]
    states: frozenset[str] | None = None  # None: START (no lot yet)


_ACTIVE = frozenset({"QUEUED", "SETTING_UP", "WAITING_FOR_START", "PROCESSING",
                     "PAUSING", "PAUSED", "STOPPING"})
COMMANDS: dict[str, Command] = {c.name: c for c in (
    Command("START", ("LOTID", "PPID", "WAFERIDS")),
    Command("PAUSE", ("LOTID",), frozenset({"PROCESSING"})),
    Command("RESUME", ("LOTID",), frozenset({"PAUSING", "PAUSED"})),
    Command("ABORT", ("LOTID",), _ACTIVE),
    Command("STOP", ("LOTID",), _ACTIVE),
)}


class RemoteCommands:
    def __init__(self, ctx: GemContext, recipes_dir: Path | str | None) -> None:
        self.ctx = ctx
        self.recipes_dir = recipes_dir

    def run(self, rcmd: str, params: Sequence[tuple[str, object]], who: str = "host") -> Answer:
        """Check, then do (or queue) one command; on secsgem's dispatcher thread. Every
        command is audited (tool ``gem``) with its answer, refused ones too."""
        answer = self._run(rcmd, params)
        self.ctx.audit(who, f"remote {rcmd}", {
            **{str(n): str(v) for n, v in params}, "hcack": answer.hcack, "why": answer.why})
        return answer

    def _run(self, rcmd: str, params: Sequence[tuple[str, object]]) -> Answer:
        command = COMMANDS.get(rcmd.upper())
        if command is None:
            return Answer(HCACK_NO_CMD, why=f"unknown command {rcmd!r}")
        refusal = self.ctx.remote_refusal()
        if refusal is not None:
            return Answer(refusal, why="not ONLINE REMOTE")
        values: dict[str, object] = {}
        bad: list[tuple[str, int]] = []
        for name, value in params:
            key = name.upper()
            if key not in command.params:
                bad.append((name, CPACK_NAME))
            elif key in values:
                bad.append((name, CPACK_FORMAT))
            else:
                values[key] = value
        bad += [(p, CPACK_FORMAT) for p in command.params if p not in values]
        if bad:
            return Answer(HCACK_PARAM, bad, "parameters")
        return self._start(values) if command.states is None else self._lot(command, values)

    # ---- START ------------------------------------------------------------------------
    def _start(self, values: Mapping[str, object]) -> Answer:
        lot_id, ppid, ids = values["LOTID"], values["PPID"], _wafer_ids(values["WAFERIDS"])
        bad = [name for name, ok in (("LOTID", isinstance(lot_id, str)),
                                     ("PPID", isinstance(ppid, str)), ("WAFERIDS", bool(ids)))
               if not ok]
        if bad or not isinstance(lot_id, str) or ids is None:
            return Answer(HCACK_PARAM, [(n, CPACK_FORMAT) for n in bad], "parameter formats")
        held = [t for t in self.ctx.line.tools() if self.ctx.line.tool_status(t).held]
        if held:
            return Answer(HCACK_CANNOT, why=f"held: {', '.join(held)}")
        raw = {"lot_id": lot_id, "flow": ppid,
               "wafers": [{"slot": i + 1, "id": w} for i, w in enumerate(ids)]}
        lot, problems = parse_lot(raw, None, self.recipes_dir)
        if lot is None:
            names = sorted({_param(p.place) for p in problems})
            why = "; ".join(f"{p.place}: {p.message}" for p in problems)
            self.ctx.terminal_to_host(f"START {lot_id}: {why}"[:500])
            return Answer(HCACK_PARAM, [(n, CPACK_VALUE) for n in names], why)
        try:
            self._wait(self.ctx.line.submit_lot(lot))
        except LineError as exc:
            text = str(exc)
            name = "WAFERIDS" if "wafer" in text.lower() else "LOTID"
            return Answer(HCACK_PARAM, [(name, CPACK_VALUE)], text)
        except TimeoutError:
            log.error("gem: START %s: the engine did not answer in %.0f s", lot_id,
                      SUBMIT_WAIT_S)
            return Answer(HCACK_CANNOT, why="the engine did not answer")
        log.info("gem: lot %s started by the host (%s, %d wafers)", lot_id, ppid, len(ids))
        return Answer(HCACK_LATER, why="queued")

    def _wait(self, coro: Coroutine[Any, Any, Any]) -> Any:
        return self.ctx.call(coro).result(SUBMIT_WAIT_S)

    # ---- lot commands -------------------------------------------------------------------
    def _lot(self, command: Command, values: Mapping[str, object]) -> Answer:
        lot_id = values["LOTID"]
        if not isinstance(lot_id, str):
            return Answer(HCACK_PARAM, [("LOTID", CPACK_FORMAT)], "LOTID is not text")
        try:
            view = self.ctx.line.lot(lot_id)
        except LineError:
            return Answer(HCACK_PARAM, [("LOTID", CPACK_VALUE)], f"no lot {lot_id}")
        assert command.states is not None
        if view.state not in command.states or view.state in FINAL:
            return Answer(HCACK_CANNOT, why=f"lot {lot_id} is {view.state}")
        action: Callable[[str], Coroutine[Any, Any, LotView]] = {
            "PAUSE": self.ctx.line.pause, "RESUME": self.ctx.line.resume,
            "ABORT": self.ctx.line.abort, "STOP": self.ctx.line.abort}[command.name]
        future = self.ctx.call(action(lot_id))
        future.add_done_callback(lambda f: self._done(command.name, lot_id, f))
        return Answer(HCACK_LATER, why="running")

    def _done(self, name: str, lot_id: str, future: Any) -> None:
        try:
            future.result()
        except (LineError, asyncio.CancelledError) as exc:
            log.warning("gem: %s %s failed: %s", name, lot_id, exc)
            self.ctx.terminal_to_host(f"{name} {lot_id} not done: {exc}"[:500])


def _wafer_ids(value: object) -> list[str] | None:
    """WAFERIDS: comma-separated text (S2F41) or a list of text (S2F49), in slot order."""
    if isinstance(value, str):
        ids = [w.strip() for w in value.split(",")]
    elif isinstance(value, list) and all(isinstance(w, str) for w in value):
        ids = [str(w).strip() for w in value]
    else:
        return None
    return ids if ids and all(ids) else None


def _param(place: str) -> str:
    """The START parameter a ``parse_lot`` problem is about."""
    if place.startswith("lot.flow"):
        return "PPID"
    if place.startswith("lot.wafers"):
        return "WAFERIDS"
    return "LOTID"
