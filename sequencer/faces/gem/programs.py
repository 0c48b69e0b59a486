"""S7 process program management on the line's recipes folder (``program_library``).

- S7F1/F2 load inquire: PPGNT 0 OK, 2 no space (longer than a program may be),
  3 invalid PPID.
- S7F3/F4 download: checked by ``viaform recipe check``'s rules first. A good program
  is stored (a new version in the journal, the file in the folder) and fires
  ProcessProgramChange; a bad one gets ACKC7 1 (permission not granted: E5 has no
  "invalid program" code), every problem goes to the host as one S10F1 (one line
  each, in ASCII: ``terminal.ascii_text``), ProcessProgramRefused fires with them, the
  refusal is audited, and nothing is written.
- S7F5/F6 upload: the body exactly as stored, in the item format it came in (A or B;
  a file that was in the folder goes as B); an unknown PPID gets S7F6 as an empty
  list (E5).
- S7F17/F18 delete: all or nothing. ACKC7 4 names an unknown PPID; 1 for a program an
  unfinished lot uses (its flow, or a recipe of its flow: a restart must find it), a
  recipe a flow that stays uses, and the empty list ("delete all": not from the host).
- S7F19/F20 list.

Downloads and deletes change the equipment's programs and are allowed ONLINE LOCAL or
REMOTE (E30 lets the host manage programs in both; the handler answers nothing else
while offline). Everything runs on secsgem's dispatcher thread: file work of a few
small YAML files, no waiting on the line.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from secsgem.secs import variables  # type: ignore[import-untyped]  # secsgem ships no types
from secsgem.secs.functions import SecsS07F06  # type: ignore[import-untyped]

from sequencer.faces.gem.context import GemContext
from sequencer.faces.gem.program_library import DELETED, MAX_PROGRAM_BYTES, ProgramLibrary
from sequencer.faces.gem.terminal import ascii_text
from sequencer.process.lots import valid_id

ACKC7_OK, ACKC7_PERMISSION, ACKC7_LENGTH, ACKC7_NOT_FOUND = 0, 1, 2, 4
PPGNT_OK, PPGNT_NO_SPACE, PPGNT_INVALID_PPID = 0, 2, 3
WHO = "host"


class _NoProgram(SecsS07F06):
    """S7F6 for a PPID the equipment does not have: a zero-length list (E5)."""

    def encode(self) -> bytes:
        return b"\x01\x00"


def program_body(item: Any) -> tuple[bytes, str] | None:
    """(bytes, ``A``/``B``) of a decoded PPBODY; None for any other item format."""
    value = getattr(item, "value", item)
    if isinstance(value, variables.Binary):
        return bytes(value.get()), "B"
    if isinstance(value, variables.String):
        return str(value.get()).encode("latin-1"), "A"  # secsgem reads A as latin-1
    return None


class Programs:
    """The S7 callbacks over one ``ProgramLibrary``."""

    def __init__(self, handler: Any, ctx: GemContext, library: ProgramLibrary) -> None:
        self.handler, self.ctx, self.library = handler, ctx, library
        for function, callback in ((1, self._s7f1), (3, self._s7f3), (5, self._s7f5),
                                   (17, self._s7f17), (19, self._s7f19)):
            handler.register_stream_function(7, function, callback)

    def _decode(self, message: Any) -> Any:
        return self.handler.settings.streams_functions.decode(message)

    def _reply(self, stream: int, function: int, value: Any) -> Any:
        return self.handler.stream_function(stream, function)(value)

    def _s7f1(self, _: Any, message: Any) -> Any:
        req = self._decode(message)
        ppid, length = str(req.PPID.get()), int(req.LENGTH.get())
        if not valid_id(ppid):
            return self._reply(7, 2, PPGNT_INVALID_PPID)
        return self._reply(7, 2, PPGNT_NO_SPACE if length > MAX_PROGRAM_BYTES else PPGNT_OK)

    def _s7f3(self, _: Any, message: Any) -> Any:
        req = self._decode(message)
        ppid = str(req.PPID.get())
        got = program_body(req.PPBODY)
        if got is None:
            self._refuse(ppid, ["PPBODY: must be A or B (the program's YAML text)"])
            return self._reply(7, 4, ACKC7_PERMISSION)
        body, fmt = got
        problems = self.library.check(ppid, body)
        if problems:
            self._refuse(ppid, [str(p) for p in problems])
            return self._reply(7, 4, ACKC7_LENGTH if len(body) > MAX_PROGRAM_BYTES
                               else ACKC7_PERMISSION)
        version, status = self.library.store(ppid, body, fmt, WHO)
        self.ctx.audit(WHO, "gem.pp.store", {"ppid": ppid, "version": version,
                                             "bytes": len(body)})
        self.ctx.emit("ProcessProgramChange", {"PPChangeName": ppid, "PPChangeStatus": status,
                                               "PPVersion": version})
        return self._reply(7, 4, ACKC7_OK)

    def _refuse(self, ppid: str, problems: list[str]) -> None:
        """Never silent: the host reads every problem on its terminal, the event and the
        audit log carry them too."""
        n = len(problems)
        text = "\n".join([f"process program {ppid} refused, {n} problem{'s' * (n != 1)}:",
                          *problems])
        self.ctx.terminal_to_host(ascii_text(text))
        self.ctx.emit("ProcessProgramRefused", {"PPChangeName": ppid,
                                                "Reason": "; ".join(problems)})
        self.ctx.audit(WHO, "gem.pp.refused", {"ppid": ppid, "problems": problems})

    def _s7f5(self, _: Any, message: Any) -> Any:
        ppid = str(self._decode(message).get())
        body = self.library.body(ppid)
        if body is None:
            return _NoProgram()
        item = (variables.String(body.decode("latin-1")) if self.library.format_of(ppid) == "A"
                else variables.Binary(body))
        return self._reply(7, 6, {"PPID": ppid, "PPBODY": item})

    def _s7f17(self, _: Any, message: Any) -> Any:
        ppids = [str(p) for p in self._decode(message).get()]
        if not ppids:
            self._refuse("(all)", ["S7F17 with no PPID deletes every program: not from the "
                                   "host; name the programs"])
            return self._reply(7, 18, ACKC7_PERMISSION)
        known = set(self.library.names())
        unknown = [p for p in ppids if p not in known]
        if unknown:
            return self._reply(7, 18, ACKC7_NOT_FOUND)
        busy = [f"{p}: used by unfinished lot(s) {', '.join(lots)}"
                for p in ppids if (lots := self.library.in_use(p))]
        busy += [f"{p}: used by flow(s) {', '.join(flows)}" for p in ppids
                 if (flows := [f for f in self.library.flows_using(p) if f not in ppids])]
        if busy:
            self._refuse(", ".join(ppids), busy)
            return self._reply(7, 18, ACKC7_PERMISSION)
        for ppid in ppids:
            version = self.library.delete(ppid, WHO)
            self.ctx.audit(WHO, "gem.pp.delete", {"ppid": ppid, "version": version})
            self.ctx.emit("ProcessProgramChange", {"PPChangeName": ppid,
                                                   "PPChangeStatus": DELETED,
                                                   "PPVersion": version})
        return self._reply(7, 18, ACKC7_OK)

    def _s7f19(self, _: Any, message: Any) -> Any:
        return self._reply(7, 20, self.library.names())


def install_programs(handler: Any, ctx: GemContext, recipes_dir: Path) -> Programs:
    return Programs(handler, ctx, ProgramLibrary(recipes_dir, ctx))
