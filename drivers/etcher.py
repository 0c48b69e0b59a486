"""PE-200 plasma etcher driver (manual: /work/shared/tools/plasma-etcher.md).

SCPI over RS-232 through pyserial (``/dev/ttyUSB0``, a pty path), or a terminal server
``socket://host:5026`` over our own TCP transport (picked by
:func:`drivers.serial_transport.line_transport`); we write LF, the tool answers CR LF.
No LOCAL/REMOTE state.

The CF4 rule: the tool refuses (-221) any ``GAS:O2``/``GAS:CF4`` write that would make
CF4 / (O2 + CF4) exceed 25 % against the *other* current flow. ``set()`` checks that
before sending (one extra query), and :meth:`PlasmaEtcher.apply_recipe` orders the two
writes so that no intermediate state trips it: when CF4 goes down it is written first,
otherwise O2 is written first. (Proof: if CF4 falls, CF4_new against O2_old is below the
currently valid CF4_old against O2_old; if CF4 rises, CF4_old against O2_new is below the
valid final CF4_new against O2_new.)
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from types import MappingProxyType
from typing import Any, Self

from drivers.errors import ValidationError
from drivers.scpi import JobRecords, JobStatus, ScpiInstrument, locked
from drivers.scpi_values import (
    Kind,
    Setting,
    parse_bool,
    parse_enum,
    parse_int,
    parse_names,
    parse_optional_name,
    parse_real,
    parse_reals,
    split_fields,
)
from drivers.serial_transport import line_transport

#: The highest CF4 fraction of the total flow the tool accepts.
CF4_MAX_FRACTION = 0.25


class EtcherState(StrEnum):
    IDLE = "IDLE"
    LOADING = "LOADING"
    PUMPING = "PUMPING"
    READY = "READY"
    STABILIZING = "STABILIZING"
    ETCHING = "ETCHING"
    OVERETCH = "OVERETCH"
    VENTING = "VENTING"
    COMPLETE = "COMPLETE"
    ALARM = "ALARM"


@dataclass(frozen=True)
class EtchJob:
    """``JOB:LAST?``; ``job_no`` 0 and status NONE when there is no job since power-on."""

    job_no: int
    wafer_id: str | None
    status: JobStatus
    age_s: float  # tool seconds since the job ended; -1 while running (or no job)

    @classmethod
    def parse(cls, text: str) -> EtchJob:
        job_no, wafer, status, age = split_fields(text, 4)
        return cls(parse_int(job_no), parse_optional_name(wafer),
                   parse_enum(JobStatus, status), parse_real(age))


@dataclass(frozen=True)
class EtchStatusLine:
    """``ETCH:STATus?`` for the current or last job; ``state`` None if the tool says NONE."""

    state: EtcherState | None
    elapsed_s: float
    endpoint_s: float | None  # None: no endpoint (yet), the tool's -1

    @classmethod
    def parse(cls, text: str) -> EtchStatusLine:
        state, elapsed, endpoint = split_fields(text, 3)
        end = parse_real(endpoint)
        return cls(None if state == "NONE" else parse_enum(EtcherState, state),
                   parse_real(elapsed), None if end < 0 else end)


@dataclass(frozen=True)
class EtchResult:
    removed_um: float
    all_open: bool


@dataclass(frozen=True)
class EtcherReadings:
    pressure_mtorr: float
    rf_forward_w: float
    rf_reflected_w: float
    o2_sccm: float
    cf4_sccm: float
    oes_co: float
    oes_o: float


@dataclass(frozen=True)
class EtcherStatus:
    state: EtcherState
    wafer_id: str | None
    alarms: tuple[str, ...]
    settings: Mapping[str, Any]
    readings: EtcherReadings
    last_job: EtchJob
    boot_id: int


def _flows(text: str) -> tuple[float, float]:
    o2, cf4 = split_fields(text, 2)
    return parse_real(o2), parse_real(cf4)


#: The readings query line (one consistent instant) and how to build EtcherReadings from it.
_READINGS = ("PRES?", "RF:FORW?", "RF:REFL?", "GAS:FLOW?", "OES:CO?", "OES:O?")
_READINGS_PARSERS = (parse_real, parse_real, parse_real, _flows, parse_real, parse_real)


def _readings(values: list[Any]) -> EtcherReadings:
    pressure, forward, reflected, (o2, cf4), co, o = values
    return EtcherReadings(pressure, forward, reflected, o2, cf4, co, o)


def cf4_fraction(o2: float, cf4: float) -> float:
    """CF4 / (O2 + CF4), 0 when both are 0 (the manual's definition)."""
    total = o2 + cf4
    return 0.0 if total == 0 else cf4 / total


class PlasmaEtcher(ScpiInstrument):
    """The PE-200. Settings are the table below; see :class:`ScpiInstrument` for the rest."""

    name = "etcher"
    model = "PE-200"
    state_enum = EtcherState
    abort_command = "ETCH:ABORt"

    o2 = Setting("GAS:O2", Kind.REAL, 0.0, 200.0, unit="sccm")
    cf4 = Setting("GAS:CF4", Kind.REAL, 0.0, 30.0, unit="sccm")
    pressure = Setting("PRESsure:SETpoint", Kind.REAL, 50.0, 1000.0, unit="mTorr")
    rf_power = Setting("RF:POWer", Kind.REAL, 50.0, 1000.0, unit="W")
    etch_time = Setting("ETCH:TIME", Kind.INT, 5, 1800, unit="s")
    overetch = Setting("ETCH:OVERetch", Kind.INT, 0, 100, unit="%")
    endpoint = Setting("ETCH:ENDPoint", Kind.BOOL)
    target = Setting("ETCH:TARGet", Kind.REAL, 0.0, 20.0, unit="um")

    @classmethod
    def from_config(cls, entry: Mapping[str, Any]) -> Self:
        """``entry``: tools.yaml's ``etcher`` mapping (``url``, ``baudrate``, ``timeout_s``)."""
        transport = line_transport(str(entry["url"]), baudrate=int(entry.get("baudrate", 9600)),
                                   timeout_s=float(entry.get("timeout_s", 2.0)), tool=cls.name)
        return cls(transport)

    # ------------------------------------------------------------- the CF4 rule
    def _gas_setpoints(self) -> tuple[float, float]:
        o2, cf4 = self._snapshot([(self.settings["o2"].query_line, parse_real),
                                  (self.settings["cf4"].query_line, parse_real)])
        return o2, cf4

    def _check_combination(self, values: Mapping[str, Any]) -> None:
        if "o2" not in values and "cf4" not in values:
            return
        o2, cf4 = self._gas_setpoints()
        o2, cf4 = values.get("o2", o2), values.get("cf4", cf4)
        if cf4_fraction(o2, cf4) > CF4_MAX_FRACTION:
            name = "cf4" if "cf4" in values else "o2"
            raise ValidationError(name, values[name],
                                  f"CF4/(O2+CF4) <= 25 % (would be O2 {o2} sccm, CF4 {cf4} sccm)",
                                  tool=self.name)

    @locked
    def apply_recipe(self, o2: float, cf4: float, pressure: float, rf_power: float,
                     etch_time: int, overetch: int, endpoint: bool, target: float) -> None:
        """Validate every value first (nothing is sent if one is wrong), then write them
        all on one line (``set_many``), gases in the order that never trips the CF4 ≤ 25 %
        check (the tool checks it at each write of the line, in order)."""
        wanted = {"o2": o2, "cf4": cf4, "pressure": pressure, "rf_power": rf_power,
                  "etch_time": etch_time, "overetch": overetch, "endpoint": endpoint,
                  "target": target}
        checked = {name: self._validated(name, value) for name, value in wanted.items()}
        if cf4_fraction(checked["o2"], checked["cf4"]) > CF4_MAX_FRACTION:
            raise ValidationError("cf4", cf4, f"CF4/(O2+CF4) <= 25 % with O2 = {o2} sccm",
                                  tool=self.name)
        _, cf4_now = self._gas_setpoints()
        gases = ["cf4", "o2"] if checked["cf4"] <= cf4_now else ["o2", "cf4"]
        order = [*gases, "pressure", "rf_power", "etch_time", "overetch", "endpoint", "target"]
        self._write_all({name: checked[name] for name in order})  # one line, in this order

    # ------------------------------------------------------------- process (never retried)
    @locked
    def start_etch(self) -> None:
        """READY → STABILIZING; -221 if not READY, +301 (InterlockError) with the door open."""
        self._command("ETCH:STAR")

    # ------------------------------------------------------------- records and readings
    @locked
    def etch_status(self) -> EtchStatusLine:
        return self._query("ETCH:STAT?", EtchStatusLine.parse)

    @locked
    def last_job(self) -> EtchJob:
        return self._query("JOB:LAST?", EtchJob.parse)

    @locked
    def records(self, wafer_id: str | None = None) -> JobRecords[EtchJob]:
        """Boot id, last job and (``wafer_id``) its job count, from one line."""
        return self._records(wafer_id, EtchJob.parse)

    @locked
    def result(self) -> EtchResult:
        removed, all_open = self._snapshot([("RES:REM?", parse_real), ("RES:OPEN?", parse_bool)])
        return EtchResult(removed, all_open)

    @locked
    def readings(self) -> EtcherReadings:
        return _readings(self._snapshot(list(zip(_READINGS, _READINGS_PARSERS, strict=True))))

    @locked
    def etch_watch(self) -> tuple[EtchStatusLine, EtcherReadings]:
        """``ETCH:STATus?`` and the readings from one line (one instant): an etch's poll."""
        fields: list[tuple[str, Any]] = [("ETCH:STAT?", EtchStatusLine.parse)]
        values = self._snapshot(fields + list(zip(_READINGS, _READINGS_PARSERS, strict=True)))
        return values[0], _readings(values[1:])

    @locked
    def oes_trace(self) -> list[float]:
        return self._query("OES:TRAC?", parse_reals)

    @locked
    def status(self) -> EtcherStatus:
        """Every field from one line of joined queries: one consistent snapshot."""
        names = list(self.settings)
        head: list[tuple[str, Any]] = [
            ("SYST:STAT?", lambda r: parse_enum(EtcherState, r)),
            ("WAF:ID?", parse_optional_name),
            ("ALAR?", parse_names),
            ("SYST:BOOT?", parse_int),
            ("JOB:LAST?", EtchJob.parse),
        ]
        fields = head + [(self.settings[n].query_line, self.settings[n].parse) for n in names]
        fields += list(zip(_READINGS, _READINGS_PARSERS, strict=True))
        values = self._snapshot(fields)
        state, wafer, alarms, boot, job = values[:5]
        settings = MappingProxyType(dict(zip(names, values[5:5 + len(names)], strict=True)))
        return EtcherStatus(state, wafer, alarms, settings,
                            _readings(values[5 + len(names):]), job, boot)
