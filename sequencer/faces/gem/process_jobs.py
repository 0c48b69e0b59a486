"""E40 process jobs: S16F11 PRJobCreateEnh, S16F5 PRJobCommand, S16F17 PRJobDequeue,
S16F21 PRGetSpace.

A process job names one carrier and slots of it (MF 13, carrier format: a lot is one
cassette) and a PPID (a flow name). At creation it is checked as a lot would be: the
carrier known, verified and not held, each slot holding a wafer no other job takes,
and ``parse_lot`` on (PRJOBID, PPID, the slots' wafers) — the same rules as
``viaform lot submit`` (ids, the flow and its recipes, the cure's batch size). Every
problem comes back as an ERRCODE/ERRTEXT pair (E5 ERRCODE: 3 unknown object instance,
7 invalid attribute value, 10 validation error, 11 object id in use, 14 unsupported
option, 17 command not valid for the current state).

It becomes the line's lot (lot id = PRJOBID) when its control job executes it
(``control_jobs``): at once if PRPROCESSSTART, else on PRJobStart. From then on its
state is the lot's, and PAUSE/RESUME/ABORT/STOP go to the line (the line has no E40 stop
apart from abort: both let the running step finish, then end the lot). A job not yet
run can be canceled (CANCEL, or dequeued) while its control job has not started, and
stopped or aborted with no lot ever made. Recipe tuning (PRRECIPEMETHOD 2) and pause
events are refused, not ignored.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

from sequencer.faces.gem.context import GemContext
from sequencer.faces.gem.material import PJ_STATE_CODES, Material, ProcessJobRecord
from sequencer.faces.gem.tables import DVS
from sequencer.faces.gem.terminal import ascii_text
from sequencer.process.lots import parse_lot, valid_id
from sequencer.process.recipes import Lot
from sequencer.states.job import FINAL, ProcessJob

log = logging.getLogger("viaform.gem")
MAX_PROCESS_JOBS = 50  # unfinished process jobs the equipment keeps (PRJOBSPACE)
MF_CARRIER = 13
ERR_UNKNOWN_INSTANCE, ERR_INVALID_VALUE, ERR_VALIDATION = 3, 7, 10
ERR_IN_USE, ERR_UNSUPPORTED, ERR_INVALID_STATE = 11, 14, 17
JOB_STATE_VID = {v.name: v.vid for v in DVS}["JobState"]
_RUNNING = {"PAUSE": frozenset({"PROCESSING"}), "RESUME": frozenset({"PAUSING", "PAUSED"}),
            "ABORT": frozenset({"QUEUED", "SETTING_UP", "WAITING_FOR_START", "PROCESSING",
                                "PAUSING", "PAUSED", "STOPPING"})}
_RUNNING["STOP"] = _RUNNING["ABORT"]

Errors = list[tuple[int, str]]


def _errors(errors: Errors) -> list[dict[str, object]]:
    return [{"ERRCODE": code, "ERRTEXT": text[:120]} for code, text in errors]


class ProcessJobs:
    """The S16 process job callbacks over the shared ``Material``."""

    def __init__(self, handler: Any, ctx: GemContext, material: Material) -> None:
        self.handler, self.ctx, self.m = handler, ctx, material
        #: called (under the lock) when a job ended outside the line's events: the control
        #: jobs' ``settle`` once ``control_jobs`` is installed
        self.after_end: Callable[[], None] = lambda: None
        for function, callback in ((11, self._s16f11), (5, self._s16f5), (17, self._s16f17),
                                   (21, self._s16f21)):
            handler.register_stream_function(16, function, callback)

    def _decode(self, message: Any) -> Any:
        return self.handler.settings.streams_functions.decode(message).get()

    def _ack(self, function: int, pj_id: str, errors: Errors) -> Any:
        return self.handler.stream_function(16, function)(
            {"PRJOBID": pj_id, "STATUS": {"ACKA": not errors, "ERRORS": _errors(errors)}})

    # ---- create ----------------------------------------------------------------------
    def lot_of(self, pj: ProcessJobRecord) -> tuple[Lot | None, Errors]:
        """The lot the job would run, checked now (the flow file may have changed)."""
        c = self.m.carriers.get(pj.carrier_id)
        if c is None:
            return None, [(ERR_UNKNOWN_INSTANCE, f"no carrier {pj.carrier_id!r} at a load "
                                                 f"port")]
        errors: Errors = []
        if c.held or c.canceled:
            why = f"held: {c.hold_reason}" if c.held else "canceled"
            errors.append((ERR_INVALID_STATE, f"carrier {c.carrier_id} is {why}"))
        elif c.id_status != "ID_VERIFICATION_OK":
            errors.append((ERR_INVALID_STATE, f"carrier {c.carrier_id}: ID {c.id_status}"))
        elif c.accessing_status in ("CARRIER_COMPLETE", "CARRIER_STOPPED"):
            errors.append((ERR_INVALID_STATE, f"carrier {c.carrier_id} is done "
                                              f"({c.accessing_status}): a new "
                                              f"ProceedWithCarrier brings it back"))
        missing = [s for s in pj.slots if s not in c.content]
        if missing:
            errors.append((ERR_INVALID_VALUE, f"carrier {c.carrier_id} has no wafer in slot"
                                              f"{'s' * (len(missing) > 1)} "
                                              f"{', '.join(map(str, missing))}"))
        taken = {s: o.pj_id for o in self.m.active_pjs() if o.pj_id != pj.pj_id
                 and o.carrier_id == pj.carrier_id for s in o.slots}
        errors += [(ERR_IN_USE, f"slot {s} is process job {taken[s]}'s") for s in pj.slots
                   if s in taken]
        running = {w.wafer_id: v.lot_id for v in self.ctx.line.lots() if v.state not in FINAL
                   for w in v.wafers}
        errors += [(ERR_IN_USE, f"wafer {c.content[s]} (slot {s}) is in unfinished lot "
                                f"{running[c.content[s]]}") for s in pj.slots
                   if c.content.get(s) in running]
        wafers = [{"slot": s, "id": c.content[s]} for s in pj.slots if s in c.content]
        lot, problems = parse_lot({"lot_id": pj.pj_id, "flow": pj.ppid, "wafers": wafers},
                                  None, self.m.recipes_dir)
        errors += [(ERR_VALIDATION, str(p).replace("lot.flow", "PPID", 1)) for p in problems]
        return (None if errors else lot), errors

    def _s16f11(self, _: Any, message: Any) -> Any:
        req = self._decode(message)
        pj_id = str(req["PRJOBID"])
        if self.ctx.remote_refusal() is not None:
            return self._ack(12, pj_id, [(ERR_INVALID_STATE, "not ONLINE REMOTE")])
        with self.m.lock:
            errors = self._create(pj_id, req)
        self.ctx.audit("host", "gem.e40.create", {"prjob": pj_id, "errors": [
            t for _, t in errors]})
        return self._ack(12, pj_id, errors)

    def _create(self, pj_id: str, req: dict[str, Any]) -> Errors:
        errors: Errors = []
        carriers, recipe = req["CARRIERS"], req["RECIPE"]
        if not valid_id(pj_id):
            errors.append((ERR_INVALID_VALUE, f"PRJOBID {pj_id!r}: it becomes the lot id "
                                              f"(1-32 of A-Z a-z 0-9 _ . -)"))
        if pj_id in self.m.pjs or any(v.lot_id == pj_id for v in self.ctx.line.lots()):
            errors.append((ERR_IN_USE, f"process job or lot {pj_id} exists already"))
        if req["MF"] != MF_CARRIER:
            errors.append((ERR_UNSUPPORTED, f"MF {req['MF']}: only carriers (13)"))
        if len(carriers) != 1:
            errors.append((ERR_UNSUPPORTED, f"{len(carriers)} carriers: a process job here "
                                            f"takes one carrier (a lot is one cassette)"))
        if recipe["PRRECIPEMETHOD"] != 1 or recipe["PARAMETERS"]:
            errors.append((ERR_UNSUPPORTED, "recipe variable tuning is not supported "
                                            "(PRRECIPEMETHOD 1, no parameters)"))
        if req["PRPAUSEEVENT"]:
            errors.append((ERR_UNSUPPORTED, "pause events are not supported"))
        if len(self.m.active_pjs()) >= MAX_PROCESS_JOBS:
            errors.append((ERR_UNSUPPORTED, f"no space: {MAX_PROCESS_JOBS} process jobs"))
        if errors or len(carriers) != 1:
            return errors
        slots = [int(s) for s in carriers[0]["SLOTID"]]
        pj = ProcessJobRecord(pj_id, str(carriers[0]["CARRIERID"]), slots,
                              str(recipe["RCPSPEC"]), bool(req["PRPROCESSSTART"]))
        if not slots:
            return [(ERR_INVALID_VALUE, "no slots: name the carrier's slots to process")]
        _, errors = self.lot_of(pj)
        if errors:
            self.ctx.emit("PRJob.Refused", self.m.pj_values(
                pj, reason="; ".join(t for _, t in errors)))
            return errors
        self.m.pjs[pj_id] = pj
        self.m.save_pj(pj)
        self.ctx.emit("PRJob.Created", self.m.pj_values(pj))
        return []

    # ---- running it ------------------------------------------------------------------
    def submit(self, pj: ProcessJobRecord) -> None:
        """Hand the job's lot to the line (under the lock; the submit runs on the loop)."""
        lot, errors = self.lot_of(pj)
        if lot is None:  # something changed since it was created (a program, the carrier)
            self.end_unstarted(pj, "ABORTED", "; ".join(t for _, t in errors), tell=True)
            return
        pj.submitted = True
        self.m.save_pj(pj)
        c = self.m.carriers[pj.carrier_id]
        if c.accessing_status == "NOT_ACCESSED":
            c.access_begin()
            self.m.save_carrier(c)

        def done(fut: Any) -> None:
            exc = fut.exception()
            if exc is not None:
                with self.m.lock:
                    pj.submitted = False
                    self.end_unstarted(pj, "ABORTED", f"the line refused the lot: {exc}",
                                       tell=True)
                    self.after_end()
        self.ctx.call(self.ctx.line.submit_lot(lot)).add_done_callback(done)

    def moved(self, pj: ProcessJobRecord, state: str) -> None:
        """The job is in ``state`` now: kept, and told to the host (S16F9 PRJobEvent, the
        PREVENTID being the E40 code of the state entered)."""
        pj.state = state
        self.m.save_pj(pj)
        now = time.time()
        self.ctx.send_to_host(self.handler.stream_function(16, 9)({
            "PREVENTID": PJ_STATE_CODES.get(state, 0),
            "TIMESTAMP": time.strftime("%Y%m%d%H%M%S", time.localtime(now))
                         + f"{int(now * 100) % 100:02d}",
            "PRJOBID": pj.pj_id, "VARIABLES": [{"VID": JOB_STATE_VID, "V": state}]}))

    def end_unstarted(self, pj: ProcessJobRecord, state: str, reason: str,
                      tell: bool = False) -> None:
        """A job that never became a lot ends (STOPPED or ABORTED) with its reason; with
        ``tell`` (the host had been told it would run) the reason goes as S10 text too."""
        pj.reason = reason
        self.moved(pj, state)
        self.ctx.emit("PRJob.Canceled", self.m.pj_values(pj))
        if tell:
            self.ctx.terminal_to_host(ascii_text(f"process job {pj.pj_id} ended: {reason}"))

    def wait_for_start(self, pj: ProcessJobRecord) -> None:
        job = ProcessJob(pj.pj_id, state=pj.state, listener=lambda _, s, d: self.moved(pj, d))
        job.setup()
        job.ready()
        self.ctx.emit("PRJob.WaitingForStart", self.m.pj_values(pj))

    def to_line(self, pj: ProcessJobRecord, command: str) -> None:
        """PAUSE/RESUME/ABORT/STOP of a job the line runs (it waits for the running step:
        handed to the loop; a failure is told to the host as terminal text)."""
        line = self.ctx.line
        call = (line.pause(pj.pj_id) if command == "PAUSE" else
                line.resume(pj.pj_id) if command == "RESUME" else line.abort(pj.pj_id))

        def done(fut: Any) -> None:
            if fut.exception() is not None:
                log.warning("process job command failed", extra={"prjob": pj.pj_id})
                self.ctx.terminal_to_host(f"process job {pj.pj_id} {command}: "
                                          f"{fut.exception()}")
        self.ctx.call(call).add_done_callback(done)

    def command(self, pj_id: str, command: str) -> Errors:
        """One PRJobCommand, checked against the job's state (under the lock)."""
        pj = self.m.pjs.get(pj_id)
        if pj is None:
            return [(ERR_UNKNOWN_INSTANCE, f"no process job {pj_id!r}")]
        if pj.submitted:
            if command in _RUNNING and pj.state in _RUNNING[command]:
                self.to_line(pj, command)
                return []
            return [(ERR_INVALID_STATE, f"{command} is not valid for {pj_id} in {pj.state}")]
        cj = self.m.cjs.get(pj.cj_id) if pj.cj_id else None
        if command == "START" and pj.state == "WAITING_FOR_START" and (
                cj is None or cj.state == "EXECUTING"):
            self.submit(pj)
            return []
        if command in ("CANCEL", "DEQUEUE") and pj.state == "QUEUED" and (
                cj is None or cj.state == "QUEUED"):
            self.remove(pj, "canceled by the host")
            return []
        if command in ("STOP", "ABORT") and pj.state not in FINAL:
            self.end_unstarted(pj, "STOPPED" if command == "STOP" else "ABORTED",
                               f"{command} before it ran")
            return []
        return [(ERR_INVALID_STATE, f"{command} is not valid for {pj_id} in {pj.state}"
                                    f"{' (its control job is ' + cj.state + ')' if cj else ''}")]

    def remove(self, pj: ProcessJobRecord, reason: str) -> None:
        pj.reason = reason
        self.ctx.emit("PRJob.Dequeued", self.m.pj_values(pj))
        cj = self.m.cjs.get(pj.cj_id) if pj.cj_id else None
        if cj is not None and pj.pj_id in cj.process_jobs:
            cj.process_jobs.remove(pj.pj_id)
            self.m.save_cj(cj)
        self.m.drop_pj(pj.pj_id)

    def _s16f5(self, _: Any, message: Any) -> Any:
        req = self._decode(message)
        pj_id, command = str(req["PRJOBID"]), str(req["PRCMDNAME"]).upper()
        if self.ctx.remote_refusal() is not None:
            return self._ack(6, pj_id, [(ERR_INVALID_STATE, "not ONLINE REMOTE")])
        if command not in ("START", "PAUSE", "RESUME", "STOP", "ABORT", "CANCEL"):
            return self._ack(6, pj_id, [(ERR_UNSUPPORTED, f"unknown command {command!r}")])
        with self.m.lock:
            errors = self.command(pj_id, command)
            self.after_end()  # a job handed over or ended here may end its control job
        self.ctx.audit("host", f"gem.e40.{command.lower()}", {"prjob": pj_id, "errors": [
            t for _, t in errors]})
        return self._ack(6, pj_id, errors)

    def _s16f17(self, _: Any, message: Any) -> Any:
        pj_ids = [str(p) for p in self._decode(message)]
        errors: Errors = []
        done: list[str] = []
        if self.ctx.remote_refusal() is not None:
            errors.append((ERR_INVALID_STATE, "not ONLINE REMOTE"))
        else:
            with self.m.lock:
                for pj_id in pj_ids:
                    why = self.command(pj_id, "DEQUEUE")
                    errors += why
                    if not why:
                        done.append(pj_id)
                self.after_end()
        return self.handler.stream_function(16, 18)(
            {"PRJOBID": done, "STATUS": {"ACKA": not errors, "ERRORS": _errors(errors)}})

    def space(self) -> int:
        """How many more process jobs may be created (PRJOBSPACE)."""
        with self.m.lock:
            return max(0, MAX_PROCESS_JOBS - len(self.m.active_pjs()))

    def _s16f21(self, _: Any, message: Any) -> Any:
        return self.handler.stream_function(16, 22)(self.space())
