"""E94 control jobs: S14F9 CreateObject (OBJTYPE ControlJob), S16F27 CJ commands, and
the watcher that moves jobs on as the line runs their lots.

A control job groups process jobs (ProcessingCtrlSpec: their PRJOBIDs, in order) and
the carriers they take (CarrierInputSpec); StartMethod true starts it by itself, false
waits for CJStart. Jobs wait in a queue (QUEUED); up to one per load port is selected
(SELECTED). A selected job whose carriers are all verified goes on to
WAITING_FOR_START or EXECUTING; one whose carrier is held stays SELECTED, and nothing
of it runs. EXECUTING hands each of its process jobs to the line (``ProcessJobs.submit``:
at once if PRPROCESSSTART, else on PRJobStart); it is COMPLETED when they have all ended
(its completion: see ``_complete_ended``), each carrier's access having ended first,
CARRIER_COMPLETE (every job of it PROCESS_COMPLETE) or CARRIER_STOPPED.

S16F27 CTLJOBCMD: 1 CJStart, 2 CJPause, 3 CJResume, 4 CJCancel (a QUEUED job; CPVAL
"RemoveJobs" removes its process jobs too, else they are kept), 5 CJDeselect, 6 CJStop,
7 CJAbort, 8 CJHOQ (a QUEUED job to the head of the queue). ACKA false with the reason
for a command the job's state does not allow; nothing changes then.

``follow`` hears every line event (``GemContext.on_line_event``, on the daemon's loop):
a job event of a process job's lot is that job's E40 transition (S16F9 to the host),
then ``settle`` completes what has ended. ``resync`` reads the lots once at start (a
restart: what the line did while the face was away).
"""

from __future__ import annotations

import logging
from typing import Any

from sequencer.faces.gem.context import GemContext
from sequencer.faces.gem.material import PORTS, Material
from sequencer.faces.gem.process_jobs import ProcessJobs
from sequencer.faces.http.contract import LineEvent, NotFound
from sequencer.states.control_job import ACTIVE, ControlJob
from sequencer.states.job import FINAL

log = logging.getLogger("viaform.gem")
OBJACK_OK, OBJACK_ERROR = 0, 1
ERR_UNKNOWN_TYPE, ERR_UNKNOWN_INSTANCE, ERR_UNKNOWN_ATTRIBUTE = 2, 3, 4
ERR_INVALID_VALUE, ERR_IN_USE, ERR_UNSUPPORTED, ERR_INVALID_STATE = 7, 11, 14, 17
CJ_ATTRIBUTES = ("ObjID", "ProcessingCtrlSpec", "CarrierInputSpec", "MtrlOutSpec",
                 "ProcessOrderMgmt", "StartMethod", "PauseEvent")
PENDING = "e94.pending"
CJ_COMMANDS = {1: "START", 2: "PAUSE", 3: "RESUME", 4: "CANCEL", 5: "DESELECT", 6: "STOP",
               7: "ABORT", 8: "HOQ"}

Errors = list[tuple[int, str]]


def _pj_ids(spec: object) -> list[str] | None:
    """ProcessingCtrlSpec: a list of PRJOBIDs, or of lists whose first item is one."""
    if not isinstance(spec, list):
        return None
    out = []
    for item in spec:
        pj = item[0] if isinstance(item, list) and item else item
        if not isinstance(pj, str):
            return None
        out.append(pj)
    return out


class ControlJobs:
    """S14F9 and S16F27 over the shared ``Material``; ``advance`` after every change."""

    def __init__(self, handler: Any, ctx: GemContext, material: Material,
                 jobs: ProcessJobs) -> None:
        self.handler, self.ctx, self.m, self.jobs = handler, ctx, material, jobs
        jobs.after_end = self.settle
        raw = ctx.store.get(PENDING)  # cj → "stop"/"abort" asked while its lots run
        self.pending: dict[str, str] = dict(raw) if isinstance(raw, dict) else {}
        handler.register_stream_function(14, 9, self._s14f9)
        handler.register_stream_function(16, 27, self._s16f27)

    # ---- S14F9 ------------------------------------------------------------------------
    def _s14f9(self, _: Any, message: Any) -> Any:
        req = self.handler.settings.streams_functions.decode(message).get()
        attrs = {str(a["ATTRID"]): a["ATTRDATA"] for a in req["ATTRIBUTES"]}
        cj_id = str(attrs.get("ObjID", ""))
        if self.ctx.remote_refusal() is not None:
            errors: Errors = [(ERR_INVALID_STATE, "not ONLINE REMOTE")]
        elif req["OBJTYPE"] != "ControlJob":
            errors = [(ERR_UNKNOWN_TYPE, f"OBJTYPE {req['OBJTYPE']!r}: only ControlJob")]
        else:
            with self.m.lock:
                errors = self.create(cj_id, attrs)
                if not errors:
                    self.settle()
            if errors:
                self.ctx.emit("ControlJob.Refused", {
                    "CtrlJobID": cj_id, "Reason": "; ".join(t for _, t in errors)})
        self.ctx.audit("host", "gem.e94.create", {"cj": cj_id, "errors": [
            t for _, t in errors]})
        return self.handler.stream_function(14, 10)({
            "OBJSPEC": cj_id, "ATTRIBUTES": [] if errors else [{"ATTRID": "ObjID",
                                                                "ATTRDATA": cj_id}],
            "STATUS": {"OBJACK": OBJACK_ERROR if errors else OBJACK_OK, "ERRORS": [
                {"ERRCODE": code, "ERRTEXT": text[:120]} for code, text in errors]}})

    def create(self, cj_id: str, attrs: dict[str, Any]) -> Errors:
        errors: Errors = [(ERR_UNKNOWN_ATTRIBUTE, f"unknown attribute {name!r}")
                          for name in attrs if name not in CJ_ATTRIBUTES]
        if not cj_id or len(cj_id) > 80:
            errors.append((ERR_INVALID_VALUE, "ObjID: the control job's id (1-80 characters)"))
        elif cj_id in self.m.cjs:
            errors.append((ERR_IN_USE, f"control job {cj_id} exists already"))
        pj_ids = _pj_ids(attrs.get("ProcessingCtrlSpec"))
        carriers = attrs.get("CarrierInputSpec")
        if not pj_ids:
            errors.append((ERR_INVALID_VALUE, "ProcessingCtrlSpec: the process jobs to run"))
        if not isinstance(carriers, list) or not all(isinstance(c, str) for c in carriers):
            errors.append((ERR_INVALID_VALUE, "CarrierInputSpec: a list of carrier ids"))
            carriers = []
        for name in ("MtrlOutSpec", "PauseEvent"):
            if attrs.get(name):
                errors.append((ERR_UNSUPPORTED, f"{name} is not supported (material goes "
                                                f"back to its own slots)"))
        start = attrs.get("StartMethod", False)
        if not isinstance(start, bool):
            errors.append((ERR_INVALID_VALUE, "StartMethod: true (auto) or false (user)"))
        for pj_id in pj_ids or []:
            pj = self.m.pjs.get(pj_id)
            if pj is None:
                errors.append((ERR_UNKNOWN_INSTANCE, f"no process job {pj_id!r}"))
            elif pj.cj_id is not None or pj.state != "QUEUED" or pj.submitted:
                where = f", in control job {pj.cj_id}" if pj.cj_id else ""
                errors.append((ERR_INVALID_STATE, f"process job {pj_id} is {pj.state}{where}"))
            elif pj.carrier_id not in carriers:
                errors.append((ERR_INVALID_VALUE, f"process job {pj_id}'s carrier "
                                                  f"{pj.carrier_id} is not in CarrierInputSpec"))
        for carrier in carriers:
            c = self.m.carriers.get(carrier)
            if c is None or c.canceled:
                errors.append((ERR_UNKNOWN_INSTANCE, f"no carrier {carrier!r} at a load port"))
        if errors:
            return errors
        cj = self.m.new_cj(cj_id, list(pj_ids or []), list(carriers), bool(start))
        for pj_id in cj.process_jobs:
            self.m.pjs[pj_id].cj_id = cj_id
            self.m.save_pj(self.m.pjs[pj_id])
        self.m.save_cj(cj)
        self.ctx.emit("ControlJob.Created", self.m.cj_values(cj))
        return []

    # ---- moving jobs on (under the lock) ----------------------------------------------
    def _ready(self, cj: ControlJob) -> bool:
        cs = [self.m.carriers.get(c) for c in cj.carriers]
        return all(c is not None and c.verified and not c.held for c in cs)

    def advance(self) -> None:
        """Select queued jobs while a load port's worth is free; start selected ones whose
        material is verified; hand an executing job's process jobs to the line."""
        active = [cj for cj in self.m.cjs.values() if cj.state in ACTIVE]
        for cj_id in list(self.m.queue):
            cj = self.m.cjs[cj_id]
            if len(active) >= len(PORTS):
                break
            self.m.queue.remove(cj_id)
            cj.select()
            active.append(cj)
            self.m.save_cj(cj)
        for cj in active:
            if cj.state == "SELECTED" and self._ready(cj):
                cj.begin()
                self.m.save_cj(cj)
            if cj.state == "EXECUTING":
                for pj_id in cj.process_jobs:
                    pj = self.m.pjs[pj_id]
                    if pj.state == "QUEUED" and not pj.submitted:
                        if pj.auto_start:
                            self.jobs.submit(pj)
                        else:
                            self.jobs.wait_for_start(pj)

    def follow(self, event: LineEvent) -> None:
        """One line event (on the loop, in the daemon's pump): a process job's lot changed
        state. A failure here is logged, never raised into the pump."""
        if event.kind != "job" or event.lot_id not in self.m.pjs:
            return
        state = event.new_state()
        try:
            with self.m.lock:
                pj = self.m.pjs[event.lot_id]
                if pj.submitted and state and state != pj.state:
                    self.jobs.moved(pj, state)
                    self.settle()
        except Exception:
            log.exception("GEM300: following %s to %s failed", event.lot_id, state)

    def resync(self) -> None:
        """At start: each submitted job's state is its lot's as the line has it now."""
        with self.m.lock:
            for pj in list(self.m.pjs.values()):
                if not pj.submitted or pj.state in FINAL:
                    continue
                try:
                    state = self.ctx.line.lot(pj.pj_id).state
                except NotFound:
                    continue
                if state != pj.state:
                    self.jobs.moved(pj, state)
            self.settle()

    def settle(self) -> None:
        """Complete what has ended, move the rest on (``advance``), and complete what
        ended as it was handed over (a process job the checks then refused)."""
        self._complete_ended()
        self.advance()
        self._complete_ended()

    def _complete_ended(self) -> None:
        """A job whose process jobs have all ended completes, after its carriers' access
        has ended. Its completion: what the host asked (CJStop, CJAbort), else normal if
        every process job is PROCESS_COMPLETE, aborted if one was aborted, else stopped."""
        for cj in list(self.m.cjs.values()):
            if cj.state not in ("EXECUTING", "PAUSED"):
                continue
            pjs = [self.m.pjs[p] for p in cj.process_jobs if p in self.m.pjs]
            if not all(p.state in FINAL for p in pjs):
                continue
            self._end_access(cj)  # the material is done before the job is (E87, then E94)
            asked = self.pending.pop(cj.cj_id, "")
            self.ctx.store.put(PENDING, self.pending)
            ends = {p.state for p in pjs}
            if not asked:
                asked = ("finish" if ends <= {"PROCESS_COMPLETE"} and cj.state == "EXECUTING"
                         else "abort" if "ABORTED" in ends or cj.state == "PAUSED" else "stop")
            if asked == "finish":
                cj.finish()
            elif asked == "stop":
                cj.stop()
            else:
                cj.abort()
            self.m.save_cj(cj)

    def _end_access(self, cj: ControlJob) -> None:
        for carrier in cj.carriers:
            c = self.m.carriers.get(carrier)
            if c is None or c.accessing_status != "IN_ACCESS":
                continue
            if any(p.carrier_id == carrier and p.state not in FINAL
                   for p in self.m.pjs.values()):
                continue  # another job still has material in it
            mine = [self.m.pjs[p] for p in cj.process_jobs
                    if p in self.m.pjs and self.m.pjs[p].carrier_id == carrier]
            if all(p.state == "PROCESS_COMPLETE" for p in mine):
                c.access_complete()
            else:
                c.access_stop()
            self.m.save_carrier(c)

    # ---- S16F27 -----------------------------------------------------------------------
    def _s16f27(self, _: Any, message: Any) -> Any:
        req = self.handler.settings.streams_functions.decode(message).get()
        cj_id, code = str(req["CTLJOBID"]), int(req["CTLJOBCMD"])
        action = str(req["PARAMETER"]["CPVAL"] or "")
        command = CJ_COMMANDS.get(code, "")
        if self.ctx.remote_refusal() is not None:
            errors: Errors = [(ERR_INVALID_STATE, "not ONLINE REMOTE")]
        elif not command:
            errors = [(ERR_UNSUPPORTED, f"CTLJOBCMD {code}: 1-8 (CJStart … CJHOQ)")]
        else:
            with self.m.lock:
                errors = self.command(cj_id, command, action)
                if not errors:
                    self.settle()
        self.ctx.audit("host", f"gem.e94.{command.lower() or code}", {
            "cj": cj_id, "errors": [t for _, t in errors]})
        first = errors[0] if errors else (0, "")
        return self.handler.stream_function(16, 28)({
            "ACKA": not errors, "STATUS": {"ERRCODE": first[0], "ERRTEXT": first[1][:120]}})

    def command(self, cj_id: str, command: str, action: str) -> Errors:
        cj = self.m.cjs.get(cj_id)
        if cj is None:
            return [(ERR_UNKNOWN_INSTANCE, f"no control job {cj_id!r}")]
        state = cj.state
        refused = [(ERR_INVALID_STATE, f"{command} is not valid for control job {cj_id} in "
                                       f"{state}")]
        pjs = [self.m.pjs[p] for p in cj.process_jobs if p in self.m.pjs]
        if command == "START" and state == "WAITING_FOR_START":
            cj.start()
        elif command == "PAUSE" and state == "EXECUTING":
            cj.pause()
            for pj in pjs:
                if pj.submitted and pj.state == "PROCESSING":
                    self.jobs.to_line(pj, "PAUSE")
        elif command == "RESUME" and state == "PAUSED":
            cj.resume()
            for pj in pjs:
                if pj.submitted and pj.state in ("PAUSING", "PAUSED"):
                    self.jobs.to_line(pj, "RESUME")
        elif command in ("STOP", "ABORT") and state in ACTIVE:
            self._end(cj, command.lower())
        elif command == "DESELECT" and state == "SELECTED":
            cj.deselect()
            self.m.queue.insert(0, cj_id)
        elif command in ("CANCEL", "HOQ") and state == "QUEUED":
            return self._queued(cj, command, action)
        else:
            return refused
        self.m.save_cj(cj)
        return []

    def _end(self, cj: ControlJob, how: str) -> None:
        """CJStop/CJAbort: the lots that run are aborted (the line lets the running step
        finish), the jobs that never ran end at once; COMPLETED when all have ended."""
        running = False
        for pj_id in cj.process_jobs:
            pj = self.m.pjs[pj_id]
            if pj.submitted and pj.state not in FINAL:
                self.jobs.to_line(pj, "ABORT")
                running = True
            elif not pj.submitted and pj.state not in FINAL:
                self.jobs.end_unstarted(pj, "STOPPED" if how == "stop" else "ABORTED",
                                        f"control job {cj.cj_id} {how}")
        if running:
            self.pending[cj.cj_id] = how
            self.ctx.store.put(PENDING, self.pending)
        else:
            self._end_access(cj)
            cj.stop() if how == "stop" else cj.abort()

    def _queued(self, cj: ControlJob, command: str, action: str) -> Errors:
        if command == "HOQ":
            self.m.queue.remove(cj.cj_id)
            self.m.queue.insert(0, cj.cj_id)
            self.m.save_cj(cj)
            self.ctx.emit("ControlJob.HeadOfQueue", self.m.cj_values(cj))
            return []
        for pj_id in cj.process_jobs:
            pj = self.m.pjs.get(pj_id)
            if pj is None:
                continue
            pj.cj_id = None
            self.m.save_pj(pj)
            if action == "RemoveJobs":
                self.jobs.remove(pj, f"control job {cj.cj_id} canceled")
        self.ctx.emit("ControlJob.Deleted", self.m.cj_values(cj, reason="canceled by the host"))
        self.m.drop_cj(cj.cj_id)
        return []

