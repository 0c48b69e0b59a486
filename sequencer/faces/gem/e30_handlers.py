"""The E30 stream/function handlers over ``model.E30Model``: a mixin of ``GemEquipment``.

Each ``_on_sXXfYY(handler, message)`` is found by secsgem's callback table by its name
and returns the reply function. Each decodes with ``self.decode`` (IllegalData → S9F7)
and answers from memory, except S2F41/S2F49 (``commands.RemoteCommands``, which may
wait briefly for the engine to queue a lot).
"""

from __future__ import annotations

from typing import Any

import structlog

from sequencer.faces.gem.commands import Answer
from sequencer.faces.gem.reports import pairs
from sequencer.faces.gem.rows import VarClass
from sequencer.faces.gem.variables import EAC_OK, encode, parse_clock

log = structlog.get_logger("viaform.gem")
RSDA_OK, RSDA_BUSY, RSDA_NO_DATA = 0, 1, 2
RSPACK_OK, RSPACK_REJECTED = 0, 1
STRACK_NOT_ALLOWED, STRACK_UNKNOWN_STREAM, STRACK_UNKNOWN_FUNCTION, STRACK_SECONDARY = 1, 2, 3, 4


class E30Handlers:
    """Mixed into ``GemEquipment`` (which gives ``model``, ``decode``, ``stream_function``)."""

    model: Any
    commands: Any
    decode: Any
    stream_function: Any
    settings: Any
    audit: Any  # (who, action, detail): the face's audit log
    wait: Any  # (coroutine) → its result, run on the daemon's loop, bounded

    def _rows(self, cls: VarClass) -> list[Any]:
        return [v for v in self.model.tables.variables.values() if v.cls is cls]

    # ---- S1: status -------------------------------------------------------------------
    def _on_s01f03(self, handler: Any, message: Any) -> Any:
        vids = [int(v) for v in self.decode(message).get()]
        svs = {v.vid for v in self._rows(VarClass.SV)}
        vids = vids or sorted(svs)
        return self.stream_function(1, 4)(
            [self.model.value(v) if v in svs else encode("L", []) for v in vids])

    def _on_s01f11(self, handler: Any, message: Any) -> Any:
        vids = [int(v) for v in self.decode(message).get()]
        rows = {v.vid: v for v in self._rows(VarClass.SV)}
        vids = vids or sorted(rows)
        return self.stream_function(1, 12)([
            {"SVID": v, "SVNAME": rows[v].name, "UNITS": rows[v].unit} if v in rows
            else {"SVID": v, "SVNAME": "", "UNITS": ""} for v in vids])

    def _on_s01f23(self, handler: Any, message: Any) -> Any:
        ceids = [int(c) for c in self.decode(message).get()]
        tables = self.model.tables
        ceids = ceids or sorted(tables.events)
        out = []
        for ceid in ceids:
            ce = tables.events.get(ceid)
            vids = [tables.by_name[n].vid for n in ce.dvs] if ce else []
            out.append({"CEID": ceid, "CENAME": ce.name if ce else "", "VID": vids})
        return self.stream_function(1, 24)(out)

    # ---- S2: ECs, clock ---------------------------------------------------------------
    def _on_s02f13(self, handler: Any, message: Any) -> Any:
        ecids = [int(e) for e in self.decode(message).get()]
        rows = self.model.constants.rows
        ecids = ecids or sorted(rows)
        return self.stream_function(2, 14)([
            encode(rows[e].fmt, self.model.constants.values.get(e)) if e in rows
            else encode("L", []) for e in ecids])

    def _on_s02f15(self, handler: Any, message: Any) -> Any:
        changes = {int(item["ECID"]): item["ECV"] for item in self.decode(message).get()}
        eac, parsed = self.model.constants.check(changes)
        if eac == EAC_OK:
            self.apply_constants(parsed, "host")
        else:
            log.warning("gem: S2F15 refused (EAC %d): %s", eac, changes)
            self.audit("host", "set EC refused", {"changes": str(changes), "eac": eac})
        return self.stream_function(2, 16)(eac)

    def apply_constants(self, parsed: dict[int, float | str], who: str) -> None:
        """Journal, audit, apply to the line (waited for briefly), fire the event."""
        constants = self.model.constants
        constants.save(parsed)
        for ecid, value in parsed.items():
            if constants.row(ecid).name == "EstablishCommunicationsTimeout":
                self.settings.establish_communication_timeout = int(value)
            name = constants.line_name.get(ecid)
            if name is not None:
                self.wait(self.model.line.set_constant(name, float(value), who))
            self.audit(who, "set EC", {"ecid": ecid, "name": constants.row(ecid).name,
                                       "value": value})
            self.model.fire("EquipmentConstantChanged", {"ECID": ecid, "ECValue": str(value)})

    def _on_s02f29(self, handler: Any, message: Any) -> Any:
        ecids = [int(e) for e in self.decode(message).get()]
        rows = self.model.constants.rows
        ecids = ecids or sorted(rows)
        out = []
        for e in ecids:
            r = rows.get(e)
            if r is None:
                out.append({"ECID": e, "ECNAME": "", "ECMIN": "", "ECMAX": "", "ECDEF": "",
                            "UNITS": ""})
                continue
            out.append({"ECID": e, "ECNAME": r.name, "ECMIN": _text(r.minimum),
                        "ECMAX": _text(r.maximum),
                        "ECDEF": _text(r.default if r.default is not None
                                       else self.model.constants.values.get(e)),
                        "UNITS": r.unit})
        return self.stream_function(2, 30)(out)

    def _on_s02f17(self, handler: Any, message: Any) -> Any:
        return self.stream_function(2, 18)(self.model.clock())

    def _on_s02f31(self, handler: Any, message: Any) -> Any:
        unix = parse_clock(str(self.decode(message).get()))
        if unix is not None:
            self.model.set_clock(unix)
            self.audit("host", "set clock", {"time": self.model.clock()})
        return self.stream_function(2, 32)(0 if unix is not None else 1)

    # ---- S2: reports ------------------------------------------------------------------
    def _on_s02f33(self, handler: Any, message: Any) -> Any:
        data = pairs(self.decode(message).DATA.get(), "RPTID", "VID")
        with self.model.lock:
            return self.stream_function(2, 34)(self.model.reports.define(data))

    def _on_s02f35(self, handler: Any, message: Any) -> Any:
        data = pairs(self.decode(message).DATA.get(), "CEID", "RPTID")
        with self.model.lock:
            return self.stream_function(2, 36)(self.model.reports.link(data))

    def _on_s02f37(self, handler: Any, message: Any) -> Any:
        function = self.decode(message)
        with self.model.lock:
            erack = self.model.reports.enable(bool(function.CEED.get()),
                                              [int(c) for c in function.CEID.get()])
        return self.stream_function(2, 38)(erack)

    # ---- S2: remote commands (validated before the answer) ------------------------------
    def _on_s02f41(self, handler: Any, message: Any) -> Any:
        return self._remote(message, "CPVAL", 42)

    def _on_s02f49(self, handler: Any, message: Any) -> Any:
        return self._remote(message, "CEPVAL", 50)  # enhanced: a value may be a list

    def _remote(self, message: Any, value: str, reply: int) -> Any:
        function = self.decode(message)
        params = [(str(p["CPNAME"]), p[value]) for p in function.PARAMS.get()]
        answer: Answer = self.commands.run(str(function.RCMD.get()), params)
        return self.stream_function(2, reply)({"HCACK": answer.hcack, "PARAMS": [
            {"CPNAME": n, "CPACK": c} for n, c in answer.params]})

    # ---- S2F43 / S6F23: the spool -------------------------------------------------------
    def _on_s02f43(self, handler: Any, message: Any) -> Any:
        requested = {int(s["STRID"]): [int(f) for f in s["FCNID"]]
                     for s in self.decode(message).get()}
        errors = []
        for stream, functions in requested.items():
            known = {f._function for f in self.settings.streams_functions.stream(stream)}
            if stream == 1:
                errors.append({"STRID": stream, "STRACK": STRACK_NOT_ALLOWED, "FCNID": []})
            elif not known:
                errors.append({"STRID": stream, "STRACK": STRACK_UNKNOWN_STREAM, "FCNID": []})
            elif bad := [f for f in functions if f not in known]:
                errors.append({"STRID": stream, "STRACK": STRACK_UNKNOWN_FUNCTION,
                               "FCNID": bad})
            elif even := [f for f in functions if f % 2 == 0]:
                errors.append({"STRID": stream, "STRACK": STRACK_SECONDARY, "FCNID": even})
        if not errors:
            self.model.outbox.set_spooled(requested)
        return self.stream_function(2, 44)({"RSPACK": RSPACK_REJECTED if errors else RSPACK_OK,
                                            "DATA": errors})

    def _on_s06f23(self, handler: Any, message: Any) -> Any:
        rsdc = int(self.decode(message).get())
        if self.model.store.spool_count() == 0:
            return self.stream_function(6, 24)(RSDA_NO_DATA)
        if rsdc == 1:
            purged = self.model.outbox.purge()
            self.audit("host", "purge spool", {"messages": purged})
        else:
            self.model.outbox.transmit_spool()
        return self.stream_function(6, 24)(RSDA_OK)

    # ---- S5: alarms ---------------------------------------------------------------------
    def _alarm_item(self, alid: int) -> dict[str, Any]:
        row = self.model.tables.alarms[alid]
        on = 0x80 if alid in self.model.alarms_set else 0
        return {"ALCD": row.alcd | on, "ALID": alid, "ALTX": row.text}

    def _on_s05f03(self, handler: Any, message: Any) -> Any:
        function = self.decode(message)
        alid = function.ALID.get()
        on = bool(int(function.ALED.get()) & 0x80)
        with self.model.lock:
            ok = self.model.reports.enable_alarm(on, int(alid) if alid != [] else None)
        return self.stream_function(5, 4)(0 if ok else 1)

    def _on_s05f05(self, handler: Any, message: Any) -> Any:
        alids = [int(a) for a in self.decode(message).get()] or sorted(self.model.tables.alarms)
        return self.stream_function(5, 6)([
            self._alarm_item(a) if a in self.model.tables.alarms
            else {"ALCD": 0, "ALID": a, "ALTX": ""} for a in alids])

    def _on_s05f07(self, handler: Any, message: Any) -> Any:
        return self.stream_function(5, 8)([
            self._alarm_item(a) for a in sorted(self.model.reports.alarms_enabled)])

    # ---- S6: reports on request ---------------------------------------------------------
    def _on_s06f15(self, handler: Any, message: Any) -> Any:
        ceid = int(self.decode(message).get())
        with self.model.lock:
            reports = (self.model.reports.build(ceid, self.model.value)
                       if ceid in self.model.tables.events else [])
        return self.stream_function(6, 16)({"DATAID": 0, "CEID": ceid, "RPT": reports})

    def _on_s06f19(self, handler: Any, message: Any) -> Any:
        rptid = int(self.decode(message).get())
        with self.model.lock:
            values = self.model.reports.report(rptid, self.model.value)
        return self.stream_function(6, 20)(values or [])



def _text(value: object) -> str:
    return "" if value is None else str(value)
