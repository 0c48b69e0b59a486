"""LX-365 exposure cell driver (manual: /work/shared/tools/exposure-tool.md).

SCPI over a raw TCP socket (VISA resource ``TCPIP0::host::5025::SOCKET``, LF lines),
through our own :class:`~drivers.socket_transport.SocketTransport`.
``WAFer:LOAD``, ``WAFer:UNLoad``, ``EXPosure:STARt`` and ``DEVelop:STARt`` need REMOTE
control: the caller (the sequencer, once per session) calls :meth:`ExposureTool.remote`;
the driver never takes control behind the operator's back, so in LOCAL those commands
raise :class:`~drivers.errors.ToolRejected` with -221 as the manual says.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, Self

from drivers.scpi import JobRecords, JobStatus, ScpiInstrument, locked
from drivers.scpi_values import (
    Kind,
    ReplyError,
    Setting,
    parse_enum,
    parse_int,
    parse_names,
    parse_optional_name,
    parse_real,
    split_fields,
)
from drivers.socket_transport import SocketTransport


class ExposureState(StrEnum):
    IDLE = "IDLE"
    LOADING = "LOADING"
    READY = "READY"
    EXPOSING = "EXPOSING"
    EXPOSED = "EXPOSED"
    DEVELOPING = "DEVELOPING"
    MEASURING = "MEASURING"
    COMPLETE = "COMPLETE"
    UNLOADING = "UNLOADING"
    ALARM = "ALARM"


class Control(StrEnum):
    LOCAL = "LOCAL"
    REMOTE = "REMOTE"


@dataclass(frozen=True)
class ExposureJob:
    """``JOB:LAST?``; ``job_no`` 0 and status NONE when the tool has no job since power-on."""

    job_no: int
    wafer_id: str | None
    kind: str | None  # "EXPOSE" | "DEVELOP"
    status: JobStatus
    dose: float
    age_s: float  # tool seconds since the job ended; -1 while running

    @classmethod
    def parse(cls, text: str) -> ExposureJob:
        job_no, wafer, kind, status, dose, age = split_fields(text, 6)
        parsed_kind = parse_optional_name(kind)
        if parsed_kind not in (None, "EXPOSE", "DEVELOP"):
            raise ReplyError(f"JOB:LAST? kind is not EXPOSE/DEVELOP/NONE: {text!r}")
        return cls(parse_int(job_no), parse_optional_name(wafer), parsed_kind,
                   parse_enum(JobStatus, status), parse_real(dose), parse_real(age))


@dataclass(frozen=True)
class ExposureResult:
    depth_um: float
    residual_um: float
    cd_um: float


@dataclass(frozen=True)
class ExposureStatus:
    state: ExposureState
    control: Control
    wafer_id: str | None
    alarms: tuple[str, ...]
    dose: float
    focus: float
    develop_time_s: int
    reticle: str
    intensity: float
    film_um: float
    boot_id: int
    last_job: ExposureJob


class ExposureTool(ScpiInstrument):
    """The LX-365. Settings are the table below; see :class:`ScpiInstrument` for the rest."""

    name = "exposure"
    model = "LX-365"
    state_enum = ExposureState
    abort_command = "ABORt"

    dose = Setting("EXPosure:DOSE", Kind.REAL, 10.0, 2000.0, unit="mJ/cm2")
    focus = Setting("EXPosure:FOCus", Kind.REAL, -10.0, 10.0, unit="um")
    develop_time = Setting("DEVelop:TIME", Kind.INT, 30, 180, unit="s")
    reticle = Setting("RETicle:SELect", Kind.NAME, choices_query="RET:CAT?")
    fields = Setting("EXPosure:FIELds", Kind.INT, read_only=True)
    intensity = Setting("EXPosure:INTensity", Kind.REAL, read_only=True, unit="mW/cm2")
    film = Setting("FILM:THICKness", Kind.REAL, read_only=True, unit="um")

    @classmethod
    def from_config(cls, entry: Mapping[str, Any]) -> Self:
        """``entry``: the ``exposure`` mapping of tools.yaml (``resource``, ``timeout_s``)."""
        transport = SocketTransport.from_visa_resource(
            str(entry["resource"]), timeout_s=float(entry.get("timeout_s", 2.0)), tool=cls.name)
        return cls(transport)

    # ------------------------------------------------------------- control
    @locked
    def control(self) -> Control:
        return self._query("SYST:CONT?", lambda r: parse_enum(Control, r))

    @locked
    def remote(self) -> None:
        """Take remote control (needed for load, unload and the starts; survives drops)."""
        self._command("SYST:REM")

    @locked
    def local(self) -> None:
        self._command("SYST:LOC")

    # ------------------------------------------------------------- process (never retried)
    @locked
    def start_exposure(self) -> None:
        self._command("EXP:STAR")

    @locked
    def start_develop(self) -> None:
        self._command("DEV:STAR")

    # ------------------------------------------------------------- records and results
    @locked
    def last_job(self) -> ExposureJob:
        return self._query("JOB:LAST?", ExposureJob.parse)

    @locked
    def records(self, wafer_id: str | None = None) -> JobRecords[ExposureJob]:
        """Boot id, last job and (``wafer_id``) its job count, from one line."""
        return self._records(wafer_id, ExposureJob.parse)

    @locked
    def result(self) -> ExposureResult:
        """Depth, residual and CD; refused with -221 outside COMPLETE (raised at once)."""
        parts = self._query_refusable(["RES:DEPT?", "RES:RES?", "RES:CD?"])
        return ExposureResult(*self._parsed(parts, [parse_real] * 3))

    @locked
    def film_um(self) -> float:
        return self._query("FILM:THICK?", parse_real)

    @locked
    def reticles(self) -> tuple[str, ...]:
        return self._query("RET:CAT?", parse_names)

    @locked
    def status(self) -> ExposureStatus:
        """Every field from one line of joined queries: one consistent snapshot."""
        fields: list[tuple[str, Any]] = [
            ("SYST:STAT?", lambda r: parse_enum(ExposureState, r)),
            ("SYST:CONT?", lambda r: parse_enum(Control, r)),
            ("WAF:ID?", parse_optional_name),
            ("ALAR?", parse_names),
            (self.settings["dose"].query_line, parse_real),
            (self.settings["focus"].query_line, parse_real),
            (self.settings["develop_time"].query_line, parse_int),
            (self.settings["reticle"].query_line, self.settings["reticle"].parse),
            (self.settings["intensity"].query_line, parse_real),
            (self.settings["film"].query_line, parse_real),
            ("SYST:BOOT?", parse_int),
            ("JOB:LAST?", ExposureJob.parse),
        ]
        return ExposureStatus(*self._snapshot(fields))
