"""Byte-exact protocol replay of the SCPI drivers (in the style of PyMeasure's expected_protocol).

A fake transport (the real :class:`LineTransport` base, fake bytes underneath) asserts every
byte the driver writes and hands back canned replies, so these tests pin the wire
protocol: settings, validation before sending, the error-queue check after every command,
no retry of starts, one retry of queries after a lost connection, reply parsing.

Every command goes out as one line with its own error check behind the sentinel,
``*ESE?;:<command>;:SYST:ERR?`` (one round trip when the tool accepts it).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest

from drivers.errors import CommsError, InterlockError, ToolError, ToolRejected, ValidationError
from drivers.etcher import EtcherState, EtchStatusLine, PlasmaEtcher
from drivers.exposure import Control, ExposureResult, ExposureState, ExposureTool
from drivers.identity import Identity
from drivers.scpi import JobStatus, ScpiInstrument
from drivers.transport import CommsTimeout, ConnectionLost, LineTransport

Reply = bytes | BaseException | None
EXPOSURE_IDN = b"VIAFAB,LX-365,SN1001,1.0\n"
ETCHER_IDN = b"VIAFAB,PE-200,SN2001,2.1\r\n"
OK = b'0,"No error"\n'


class ReplayTransport(LineTransport):
    """Each write must equal the next scripted request; its reply is then readable.

    A reply may be an exception (raised by the read), None (nothing comes back) or
    several lines (a late reply followed by the real one).
    """

    def __init__(self, script: list[tuple[bytes, Reply]]) -> None:
        super().__init__("replay", timeout_s=0.2, tool="test")
        self.script = list(script)
        self.opened = 0
        self.written: list[bytes] = []
        self._reply: Reply = None
        self._open = True  # starts connected: the tests below are about the exchanges

    def _open_raw(self) -> None:
        self.opened += 1

    def _close_raw(self) -> None:
        self._reply = None

    def _has_handle(self) -> bool:
        return False

    def _peer_gone(self) -> bool:
        return False

    def _write(self, data: bytes) -> None:
        self.written.append(data)
        assert self.script, f"unexpected write {data!r}"
        expected, self._reply = self.script.pop(0)
        assert data == expected, f"wrote {data!r}, expected {expected!r}"

    def _readline(self, deadline: float) -> bytes:
        reply = self._reply
        if not reply:
            raise CommsTimeout("no reply", tool="test")
        if isinstance(reply, BaseException):
            self._reply = None
            raise reply
        line, _, self._reply = reply.partition(b"\n")  # a reply may hold several lines
        return line + b"\n"


@contextmanager
def expected_protocol(cls: type[Any], script: list[tuple[bytes, Reply]]) -> Iterator[Any]:
    transport = ReplayTransport(script)
    yield cls(transport)
    assert transport.script == [], f"not sent: {transport.script!r}"


def checked(command: bytes) -> bytes:
    """The wire line of a command: behind the sentinel, with its error check."""
    line = command.rstrip(b"\n")
    return b"*ESE?;" + (line if line.startswith(b"*") else b":" + line) + b";:SYST:ERR?\n"


def ok(command: bytes) -> list[tuple[bytes, Reply]]:
    """A command that the tool accepts: one line, the sentinel's and an empty queue's reply."""
    return [(checked(command), b'0;0,"No error"\n')]


def refused(command: bytes) -> tuple[bytes, Reply]:
    """A command that fails: the line stops there, only the sentinel answers."""
    return (checked(command), b"0\n")


# ------------------------------------------------------------------------ settings
def test_setting_write_and_its_error_check_are_one_line() -> None:
    script = [(b'*ESE?;:EXP:DOSE 320.0;:SYST:ERR?\n', b'0;0,"No error"\n')]
    with expected_protocol(ExposureTool, script) as tool:
        tool.set("dose", 320)
    assert len(tool.transport.written) == 1


def test_setting_descriptor_reads_and_writes_through_the_table() -> None:
    script = [(b"EXP:FOC?\n", b"-1.5\n"), *ok(b"DEV:TIME 90\n")]
    with expected_protocol(ExposureTool, script) as tool:
        assert tool.focus == -1.5
        tool.develop_time = 90


def test_integer_and_boolean_settings_use_their_wire_forms() -> None:
    script = [*ok(b"ETCH:TIME 180\n"), *ok(b"ETCH:ENDP 1\n"), (b"ETCH:ENDP?\n", b"0\r\n")]
    with expected_protocol(PlasmaEtcher, script) as tool:
        tool.set("etch_time", 180.0)
        tool.set("endpoint", "ON")
        assert tool.get("endpoint") is False


@pytest.mark.parametrize(
    ("name", "value"),
    [("dose", 9.99), ("dose", 2000.01), ("focus", -10.5), ("develop_time", 29),
     ("develop_time", 90.5), ("dose", "lots"), ("dose", True), ("dose", float("nan")),
     ("fields", 10), ("intensity", 900.0)],
)
def test_out_of_range_values_are_refused_before_anything_is_sent(name: str, value: Any) -> None:
    with expected_protocol(ExposureTool, []) as tool, pytest.raises(ValidationError) as err:
        tool.set(name, value)
    assert err.value.parameter == name
    assert err.value.value is value or err.value.value == value or value != value
    assert tool.transport.written == []


def test_validation_error_names_the_allowed_range() -> None:
    with expected_protocol(ExposureTool, []) as tool, pytest.raises(ValidationError) as err:
        tool.set("dose", 5000)
    assert "10.0 to 2000.0 mJ/cm2" in err.value.allowed


def test_unknown_setting_is_refused() -> None:
    with expected_protocol(ExposureTool, []) as tool, pytest.raises(ValidationError):
        tool.set("brightness", 1)


def test_reticle_must_come_from_the_catalog() -> None:
    script = [(b"RET:CAT?\n", b"VIA-200,VIA-150\n"), (b"RET:CAT?\n", b"VIA-200,VIA-150\n"),
              *ok(b"RET:SEL VIA-150\n")]
    with expected_protocol(ExposureTool, script) as tool:
        with pytest.raises(ValidationError, match="VIA-200, VIA-150"):
            tool.set("reticle", "VIA-999")
        tool.set("reticle", "VIA-150")


# ------------------------------------------------------------------ the error queue
def test_tool_refusal_raises_its_own_code_and_text_and_drains_the_queue() -> None:
    script = [refused(b"EXP:DOSE 320.0"), (b"SYST:ERR?\n", b'-221,"Settings conflict"\n'),
              (b"SYST:ERR?\n", OK)]
    with expected_protocol(ExposureTool, script) as tool, pytest.raises(ToolRejected) as err:
        tool.set("dose", 320.0)
    assert (err.value.code, err.value.text) == (-221, "Settings conflict")
    assert not isinstance(err.value, InterlockError)


def test_the_newest_of_several_queued_errors_is_raised() -> None:
    script = [refused(b"WAF:LOAD W-01"), (b"SYST:ERR?\n", b'+202,"Lamp fault"\n'),
              (b"SYST:ERR?\n", b'-221,"Settings conflict"\n'), (b"SYST:ERR?\n", OK)]
    with expected_protocol(ExposureTool, script) as tool, pytest.raises(ToolRejected) as err:
        tool.load("W-01")
    assert err.value.code == -221


def test_an_error_queued_before_an_accepted_command_is_drained_and_the_newest_raised() -> None:
    """The line's own SYST:ERR? returns the oldest entry; the rest is drained as before."""
    script = [(checked(b"EXP:FOC 1.0"), b'0;+202,"Lamp fault"\n'),
              (b"SYST:ERR?\n", b'+203,"Alignment failed"\n'), (b"SYST:ERR?\n", OK)]
    with expected_protocol(ExposureTool, script) as tool, pytest.raises(ToolRejected) as err:
        tool.set("focus", 1.0)
    assert (err.value.code, err.value.text) == (203, "Alignment failed")


def test_a_failed_command_with_an_empty_queue_is_a_reply_error_and_drops_the_link() -> None:
    script = [refused(b"EXP:FOC 1.0"), (b"SYST:ERR?\n", OK)]
    with expected_protocol(ExposureTool, script) as tool, pytest.raises(CommsError):
        tool.set("focus", 1.0)
    assert not tool.transport.is_open


@pytest.mark.parametrize(("cls", "code"), [(ExposureTool, b"+201"), (PlasmaEtcher, b"+301")])
def test_interlock_codes_raise_interlock_error(cls: type[Any], code: bytes) -> None:
    start = b"EXP:STAR" if cls is ExposureTool else b"ETCH:STAR"
    script = [refused(start), (b"SYST:ERR?\n", code + b',"Interlock open"\n'),
              (b"SYST:ERR?\n", OK)]
    with expected_protocol(cls, script) as tool, pytest.raises(InterlockError) as err:
        tool.start_exposure() if cls is ExposureTool else tool.start_etch()
    assert err.value.code == int(code)


@pytest.mark.parametrize(("method", "line"), [("clear_alarms", b"ALAR:CLE\n"),
                                              ("abort", b"ABOR\n"), ("unload", b"WAF:UNL\n")])
def test_an_alarm_the_tool_queued_on_its_own_is_not_blamed_on_the_next_command(
    method: str, line: bytes
) -> None:
    """A lamp failure queues +202 by itself; the host's ALARm:CLEar after it must not raise."""
    script = [(b"SYST:ERR?\n", b'202,"Lamp fault"\n'), (b"SYST:ERR?\n", OK), *ok(line)]
    with expected_protocol(ExposureTool, script) as tool:
        getattr(tool, method)()


def test_errors_drains_the_queue_oldest_first() -> None:
    script = [(b"SYST:ERR?\n", b'-113,"Undefined header"\n'),
              (b"SYST:ERR?\n", b'-350,"Queue overflow"\n'), (b"SYST:ERR?\n", OK)]
    with expected_protocol(ExposureTool, script) as tool:
        assert tool.errors() == [(-113, "Undefined header"), (-350, "Queue overflow")]


# --------------------------------------------------------------- retries and links
@pytest.mark.parametrize("method", ["load", "unload", "start_exposure", "start_develop"])
def test_start_commands_are_never_retried(method: str) -> None:
    line = {"load": b"WAF:LOAD W-01\n", "unload": b"WAF:UNL\n",
            "start_exposure": b"EXP:STAR\n", "start_develop": b"DEV:STAR\n"}[method]
    # unload first reads out what the tool queued on its own (see the test below)
    before = [(b"SYST:ERR?\n", OK)] if method == "unload" else []
    sent = (checked(line), BrokenPipeError(32, "Broken pipe"))
    with expected_protocol(ExposureTool, [*before, sent]) as tool:
        # The line goes out; the link breaks before its reply. No second attempt.
        with pytest.raises(CommsError):
            getattr(tool, method)(*(["W-01"] if method == "load" else []))
    assert tool.transport.written.count(checked(line)) == 1


def test_a_start_whose_write_fails_is_not_resent() -> None:
    transport = ReplayTransport([])

    def refuse(data: bytes) -> None:
        transport.written.append(data)
        raise ConnectionRefusedError(111, "Connection refused")

    transport._write = refuse  # type: ignore[method-assign]
    with pytest.raises(ConnectionLost):
        PlasmaEtcher(transport).start_etch()
    assert transport.written == [checked(b"ETCH:STAR")]


def test_a_query_is_retried_once_after_a_lost_connection_reconnecting_first() -> None:
    script = [(b"EXP:DOSE?\n", ConnectionResetError(104, "reset")),
              (b"*IDN?\n", EXPOSURE_IDN), (b"EXP:DOSE?\n", b"320.0\n")]
    with expected_protocol(ExposureTool, script) as tool:
        assert tool.dose == 320.0
    assert tool.transport.opened == 1


def test_a_query_that_times_out_is_not_retried() -> None:
    with expected_protocol(ExposureTool, [(b"SYST:STAT?\n", None)]) as tool:
        with pytest.raises(CommsTimeout):
            tool.state()
        assert not tool.transport.is_open  # a late reply can never be read as the next one


def test_a_garbled_reply_is_a_comms_error_and_drops_the_link() -> None:
    with expected_protocol(ExposureTool, [(b"EXP:DOSE?\n", b"ikh*j\n")]) as tool:
        with pytest.raises(CommsError, match="not a number"):
            tool.get("dose")
        assert not tool.transport.is_open


def test_connect_probes_idn_and_checks_the_model() -> None:
    transport = ReplayTransport([(b"*IDN?\n", ETCHER_IDN)])
    with pytest.raises(ToolError, match="not a LX-365"):
        ExposureTool(transport).connect()
    transport = ReplayTransport([(b"*IDN?\n", EXPOSURE_IDN)])
    assert ExposureTool(transport).connect() == Identity("VIAFAB", "LX-365", "SN1001", "1.0")


def test_a_late_reply_is_not_taken_for_the_probes_answer() -> None:
    transport = ReplayTransport([(b"*IDN?\n", b"320.0\n" + EXPOSURE_IDN)])
    assert ExposureTool(transport).connect().model == "LX-365"


# -------------------------------------------------------------- refusable queries
def test_result_is_one_line_behind_the_sentinel() -> None:
    script = [(b"*ESE?;:RES:DEPT?;:RES:RES?;:RES:CD?\n", b"0;10.2;0.3;31.5\n")]
    with expected_protocol(ExposureTool, script) as tool:
        assert tool.result() == ExposureResult(10.2, 0.3, 31.5)


def test_a_refused_result_raises_at_once_with_the_tools_code() -> None:
    script = [(b"*ESE?;:RES:DEPT?;:RES:RES?;:RES:CD?\n", b"0\n"),
              (b"SYST:ERR?\n", b'-221,"Settings conflict"\n'), (b"SYST:ERR?\n", OK)]
    with expected_protocol(ExposureTool, script) as tool, pytest.raises(ToolRejected) as err:
        tool.result()
    assert err.value.code == -221


def test_raw_returns_the_reply_and_raises_a_refused_query() -> None:
    script = [(b"*ESE?;:syst:stat?\n", b"0;IDLE\n"), *ok(b"*CLS\n"),
              (b"*ESE?;:RES:CD?\n", b"0\n"), (b"SYST:ERR?\n", b'-221,"Settings conflict"\n'),
              (b"SYST:ERR?\n", OK)]
    with expected_protocol(ExposureTool, script) as tool:
        assert tool.raw("syst:stat?") == "IDLE"
        assert tool.raw("*CLS") is None
        with pytest.raises(ToolRejected):
            tool.raw(":RES:CD?")


# ------------------------------------------------------------------ typed replies
def test_exposure_status_is_one_snapshot_line() -> None:
    line = (b"SYST:STAT?;:SYST:CONT?;:WAF:ID?;:ALAR?;:EXP:DOSE?;:EXP:FOC?;:DEV:TIME?;"
            b":RET:SEL?;:EXP:INT?;:FILM:THICK?;:SYST:BOOT?;:JOB:LAST?\n")
    reply = (b"READY;REMOTE;W-01;LAMP_LOW;320.0;0.0;90;VIA-200;987.5;10.1;4711;"
             b"3,W-01,EXPOSE,DONE,320.0,12.5\n")
    with expected_protocol(ExposureTool, [(line, reply)]) as tool:
        status = tool.status()
    assert status.state is ExposureState.READY and status.control is Control.REMOTE
    assert status.alarms == ("LAMP_LOW",) and status.develop_time_s == 90
    assert status.last_job.status is JobStatus.DONE and status.last_job.kind == "EXPOSE"


def test_no_job_and_no_wafer_parse_to_none() -> None:
    script = [(b"JOB:LAST?\n", b"0,NONE,NONE,NONE,0.0,-1\n"), (b"WAF:ID?\n", b"NONE\n"),
              (b"ALAR?\n", b"NONE\n")]
    with expected_protocol(ExposureTool, script) as tool:
        job = tool.last_job()
        assert (job.job_no, job.wafer_id, job.kind, job.status) == (0, None, None, JobStatus.NONE)
        assert tool.wafer_id() is None
        assert tool.alarms() == ()


def test_etcher_replies_end_in_cr_lf_and_parse_to_types() -> None:
    script = [(b"ETCH:STAT?\n", b"ETCHING,42.0,-1\r\n"),
              (b"OES:TRAC?\n", b"100.0,120.5,90.0\r\n"),
              (b"RES:REM?;:RES:OPEN?\n", b"10.4;1\r\n"),
              (b"SYST:STAT?\n", b"BOGUS\r\n")]
    with expected_protocol(PlasmaEtcher, script) as tool:
        assert tool.etch_status() == EtchStatusLine(EtcherState.ETCHING, 42.0, None)
        assert tool.oes_trace() == [100.0, 120.5, 90.0]
        assert tool.result().all_open is True
        with pytest.raises(CommsError):
            tool.state()


def test_wafer_ids_are_validated_before_sending() -> None:
    with expected_protocol(PlasmaEtcher, []) as tool:
        for bad in ["", "x" * 33, "W 01", 'W"1', "NONE", "W;*RST"]:
            with pytest.raises(ValidationError):
                tool.load(bad)


# ------------------------------------------------------------------ the CF4 rule
def gas_query(o2: bytes, cf4: bytes) -> tuple[bytes, bytes]:
    return (b"GAS:O2?;:GAS:CF4?\n", o2 + b";" + cf4 + b"\r\n")


RECIPE_TAIL = b";:PRES:SET 200.0;:RF:POW 300.0;:ETCH:TIME 180;:ETCH:OVER 30;:ETCH:ENDP 1;" \
    b":ETCH:TARG 8.0\n"


def test_apply_recipe_lowers_cf4_first_when_it_decreases() -> None:
    script = [gas_query(b"90.0", b"30.0"), *ok(b"GAS:CF4 5.0;:GAS:O2 20.0" + RECIPE_TAIL)]
    with expected_protocol(PlasmaEtcher, script) as tool:
        tool.apply_recipe(20.0, 5.0, 200.0, 300.0, 180, 30, True, 8.0)


def test_apply_recipe_raises_o2_first_when_cf4_increases() -> None:
    script = [gas_query(b"20.0", b"5.0"), *ok(b"GAS:O2 90.0;:GAS:CF4 30.0" + RECIPE_TAIL)]
    with expected_protocol(PlasmaEtcher, script) as tool:
        tool.apply_recipe(90.0, 30.0, 200.0, 300.0, 180, 30, True, 8.0)


def test_a_write_the_tool_refuses_mid_line_raises_its_error() -> None:
    line = b"GAS:O2 90.0;:GAS:CF4 30.0" + RECIPE_TAIL
    script = [gas_query(b"20.0", b"5.0"), refused(line),
              (b"SYST:ERR?\n", b'-221,"Settings conflict"\n'), (b"SYST:ERR?\n", OK)]
    with expected_protocol(PlasmaEtcher, script) as tool, pytest.raises(ToolRejected) as err:
        tool.apply_recipe(90.0, 30.0, 200.0, 300.0, 180, 30, True, 8.0)
    assert err.value.code == -221 and "ETCH:TARG 8.0" in str(err.value.command)


def test_exposure_settings_go_out_on_one_line_after_the_reticle_catalogue() -> None:
    script = [(b"RET:CAT?\n", b"VIA-200,VIA-150\n"),
              *ok(b"EXP:DOSE 320.0;:EXP:FOC -0.5;:DEV:TIME 90;:RET:SEL VIA-200\n")]
    with expected_protocol(ExposureTool, script) as tool:
        tool.set_many({"dose": 320.0, "focus": -0.5, "develop_time": 90, "reticle": "VIA-200"})
    with expected_protocol(ExposureTool, [(b"RET:CAT?\n", b"VIA-200\n")]) as tool, \
            pytest.raises(ValidationError):  # nothing sent when one value is wrong
        tool.set_many({"dose": 320.0, "reticle": "VIA-999"})


def test_apply_recipe_sends_nothing_when_any_value_is_wrong() -> None:
    with expected_protocol(PlasmaEtcher, []) as tool:
        with pytest.raises(ValidationError, match="rf_power"):
            tool.apply_recipe(90.0, 10.0, 200.0, 20.0, 180, 30, True, 8.0)
        with pytest.raises(ValidationError, match="25 %"):
            tool.apply_recipe(30.0, 20.0, 200.0, 300.0, 180, 30, True, 8.0)


def test_a_single_gas_write_that_would_break_the_rule_is_refused_before_sending() -> None:
    script = [gas_query(b"90.0", b"10.0"), gas_query(b"90.0", b"10.0"), *ok(b"GAS:CF4 30.0\n")]
    with expected_protocol(PlasmaEtcher, script) as tool:
        with pytest.raises(ValidationError) as err:
            tool.set("o2", 20.0)
        assert err.value.parameter == "o2"
        tool.set("cf4", 30.0)


def test_subclass_settings_tables_are_separate() -> None:
    assert set(ExposureTool.settings) == {"dose", "focus", "develop_time", "reticle",
                                          "fields", "intensity", "film"}
    assert "dose" not in PlasmaEtcher.settings
    assert ScpiInstrument.settings == {}


# ------------------------------------------------------------ records and read-back
def test_job_records_are_one_line_with_the_wafers_count_when_named() -> None:
    script = [(b"SYST:BOOT?;:JOB:LAST?;:JOB:COUN? W-01\n",
               b"4711;3,W-01,EXPOSE,DONE,320.0,12.5;2\n"),
              (b"SYST:BOOT?;:JOB:LAST?\n", b"4711;0,NONE,NONE,NONE,0.0,-1\n")]
    with expected_protocol(ExposureTool, script) as tool:
        rec = tool.records("W-01")
        assert (rec.boot, rec.last.job_no, rec.last.kind, rec.count) == (4711, 3, "EXPOSE", 2)
        bare = tool.records()
        assert (bare.boot, bare.last.job_no, bare.count) == (4711, 0, None)


def test_etcher_records_parse_its_own_job_line_and_a_short_reply_is_out_of_step() -> None:
    script = [(b"SYST:BOOT?;:JOB:LAST?;:JOB:COUN? W-02\n", b"17;5,W-02,DONE,12.5;1\n"),
              (b"SYST:BOOT?;:JOB:LAST?;:JOB:COUN? W-02\n", b"17;5,W-02,DONE,12.5\n")]
    with expected_protocol(PlasmaEtcher, script) as tool:
        rec = tool.records("W-02")
        assert (rec.boot, rec.last.job_no, rec.last.status, rec.count) == (
            17, 5, JobStatus.DONE, 1)
        with pytest.raises(CommsError):  # a reply short of a part: never read on from it
            tool.records("W-02")


def test_records_refuse_an_illegal_wafer_id_before_sending() -> None:
    with expected_protocol(ExposureTool, []) as tool, pytest.raises(ValidationError):
        tool.records("W;01")


def test_settings_are_read_back_from_one_line() -> None:
    script = [(b"EXP:DOSE?;:EXP:FOC?;:DEV:TIME?;:RET:SEL?\n", b"320.0;-0.5;90;VIA-200\n")]
    with expected_protocol(ExposureTool, script) as tool:
        got = tool.get_many(["dose", "focus", "develop_time", "reticle"])
    assert got == {"dose": 320.0, "focus": -0.5, "develop_time": 90, "reticle": "VIA-200"}


def test_a_condition_and_an_etch_poll_are_one_line_each() -> None:
    script = [(b"SYST:STAT?;:ALAR?\n", b"ALARM;RF_FAULT,DOOR_OPEN\n"),
              (b"ETCH:STAT?;:PRES?;:RF:FORW?;:RF:REFL?;:GAS:FLOW?;:OES:CO?;:OES:O?\n",
               b"ETCHING,42.0,-1;200.1;299.5;1.2;90.0,10.0;1234.0;567.0\n")]
    with expected_protocol(PlasmaEtcher, script) as tool:
        state, alarms = tool.condition()
        assert state is EtcherState.ALARM and alarms == ("RF_FAULT", "DOOR_OPEN")
        line, readings = tool.etch_watch()
    assert line.state is EtcherState.ETCHING and line.elapsed_s == 42.0
    assert line.endpoint_s is None
    assert readings.rf_forward_w == 299.5 and readings.oes_o == 567.0
