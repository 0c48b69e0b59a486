"""Property tests of the shared SCPI core (parser, values, error queue, ESR), no sockets."""

from __future__ import annotations

import asyncio
import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from simulators.scpi import ScpiError, ScpiInstrument, nr1, nr2, parse_id, parse_int, parse_real
from simulators.scpi.errors import esr_bit_for
from simulators.scpi.parser import compile_header

FAST = settings(deadline=None, max_examples=60)  # per test: no global profile for other files


class FixedClock:
    def now(self) -> float:
        return 0.0


class Box(ScpiInstrument):
    """A minimal instrument: a few settings in the manual's notation."""

    def __init__(self) -> None:
        super().__init__("VIAFAB,TEST,1,1", FixedClock())
        self.values = {"dose": 300.0, "focus": 0.0, "time": 90}
        self.add("EXPosure:DOSE", set=self._set("dose", 10, 2000), query=self._get("dose"))
        self.add("EXPosure:FOCus", set=self._set("focus", -10, 10), query=self._get("focus"))
        self.add("DEVelop:TIME", set=self._set_int("time"), query=self._get("time"))
        self.add("SYSTem:STATe", query=lambda a: "IDLE")
        self.add("WAFer:ID", query=lambda a: "NONE")

    def _set(self, key: str, lo: float, hi: float):
        def run(args: list[str]) -> None:
            (arg,) = args or [""]
            self.values[key] = parse_real(arg, lo, hi)

        return run

    def _set_int(self, key: str):
        def run(args: list[str]) -> None:
            self.values[key] = parse_int(args[0], 30, 180)

        return run

    def _get(self, key: str):
        return lambda args: str(self.values[key])


def run(box: ScpiInstrument, line: str) -> str | None:
    return asyncio.run(box.execute(line))


def drain(box: ScpiInstrument) -> list[int]:
    codes = []
    while True:
        reply = run(box, "SYST:ERR?")
        assert reply is not None
        code = int(reply.split(",")[0])
        if code == 0:
            return codes
        codes.append(code)


# ------------------------------------------------------------------ headers
HEADERS = ["EXPosure:DOSE", "EXPosure:FOCus", "DEVelop:TIME", "SYSTem:STATe", "WAFer:ID"]


@st.composite
def spelled(draw: st.DrawFn, header: str) -> str:
    """The header in any legal spelling: long or short per node, any letter case."""
    parts = []
    for node in compile_header(header):
        word = draw(st.sampled_from([node.short, node.long]))
        parts.append("".join(c.lower() if draw(st.booleans()) else c for c in word))
    return ":".join(parts)


@FAST
@given(st.sampled_from(HEADERS).flatmap(lambda h: st.tuples(st.just(h), spelled(h))))
def test_long_short_and_case_reach_the_same_command(pair: tuple[str, str]) -> None:
    header, spelling = pair
    box = Box()
    expected = run(box, header.upper() + "?")
    assert run(box, spelling + "?") == expected
    assert run(box, ":" + spelling + "?") == expected
    assert drain(box) == []


@FAST
@given(st.sampled_from(["EXPO", "EXPOS", "DOS", "EXPOSUREX", "SYS", "EXP:DOSEE", "XYZ"]))
def test_a_partial_or_wrong_mnemonic_is_undefined(word: str) -> None:
    box = Box()
    assert run(box, word + "?") is None
    assert drain(box) == [-113]


def test_optional_node_may_be_left_out() -> None:
    box = Box()
    assert run(box, "SYST:ERR?") == '0,"No error"'
    assert run(box, "system:error:next?") == '0,"No error"'
    assert run(box, "SYST:ERR:NEXT?;:SYST:ERR?") == '0,"No error";0,"No error"'


# ------------------------------------------------------------------ ; path rules
def test_relative_header_after_semicolon_uses_previous_path() -> None:
    box = Box()
    assert run(box, "EXP:DOSE 500;FOC 2;DOSE?;FOC?") == "500.0;2.0"


def test_colon_after_semicolon_starts_at_root() -> None:
    box = Box()
    assert run(box, "EXP:DOSE 400;:DEV:TIME 60;:DEV:TIME?;:EXP:DOSE?") == "60;400.0"


def test_common_command_does_not_change_the_path() -> None:
    box = Box()
    assert run(box, "EXP:DOSE 450;*CLS;DOSE?") == "450.0"


def test_relative_root_header_after_semicolon_is_undefined_and_stops_the_line() -> None:
    box = Box()
    # EXP:DOSE 500 runs; "EXP:FOC" is relative to EXP -> EXP:EXP:FOC -> -113; the rest never runs
    assert run(box, "EXP:DOSE 500;EXP:FOC 3;:EXP:FOC 4") is None
    assert box.values == {"dose": 500.0, "focus": 0.0, "time": 90}
    assert drain(box) == [-113]


def test_failed_query_sends_nothing_and_earlier_replies_are_sent() -> None:
    box = Box()
    assert run(box, "EXP:DOSE?;:BOGUS?;:EXP:FOC?") == "300.0"
    assert drain(box) == [-113]


@FAST
@given(st.lists(st.sampled_from(["EXP:DOSE?", "DEV:TIME?", "*IDN?", "SYST:STAT?"]), min_size=1))
def test_replies_of_one_line_are_joined_in_order(queries: list[str]) -> None:
    box = Box()
    singles = [run(box, q) for q in queries]
    line = ";".join(q if q.startswith("*") else ":" + q for q in queries)
    assert run(box, line) == ";".join(s for s in singles if s is not None)


# ------------------------------------------------------------------ numbers
@FAST
@given(st.floats(min_value=10.0, max_value=2000.0, allow_nan=False), st.integers(0, 4))
def test_numeric_forms_parse_to_the_same_value(value: float, form: int) -> None:
    text = [f"{value:.6f}", f"{value:.6E}", f"+{value:.4f}", f"{value:e}", f"{value / 100:.8f}E2"][
        form
    ]
    assert parse_real(text, 0.0, 1e6) == pytest.approx(float(text))
    assert parse_real(text, 0.0, 1e6) == pytest.approx(value, rel=1e-5)


@FAST
@given(st.floats(allow_nan=False, allow_infinity=False, min_value=-1e6, max_value=1e6))
def test_out_of_range_is_222_in_range_is_accepted(value: float) -> None:
    text = repr(value)
    if 10.0 <= value <= 2000.0:
        assert parse_real(text, 10.0, 2000.0) == value
    else:
        with pytest.raises(ScpiError) as exc:
            parse_real(text, 10.0, 2000.0)
        assert exc.value.code == -222


@FAST
@given(st.sampled_from(["abc", "1,0", "--5", "1e", "0x10", "", "1.2.3", "NaN", "inf", "5 mJ"]))
def test_not_a_number_is_224(text: str) -> None:
    with pytest.raises(ScpiError) as exc:
        parse_real(text, -1e9, 1e9)
    assert exc.value.code == -224


@FAST
@given(st.integers(30, 180))
def test_integer_settings_accept_integral_exponent_forms(n: int) -> None:
    assert parse_int(f"{n / 10}E1", 30, 180) == n
    assert parse_int(f"+{n}", 30, 180) == n
    with pytest.raises(ScpiError) as exc:
        parse_int(f"{n}.5", 0, 1000)
    assert exc.value.code == -224


def test_numbers_through_the_instrument() -> None:
    box = Box()
    assert run(box, "EXP:DOSE 3.2E2;DOSE?") == "320.0"
    assert run(box, "EXP:DOSE +320.0;DOSE?") == "320.0"
    assert run(box, "EXP:DOSE 2001") is None
    assert run(box, "EXP:DOSE?") == "320.0"  # unchanged after -222
    assert run(box, "DEV:TIME 9.0E1;TIME?") == "90"
    assert drain(box) == [-222]


# ------------------------------------------------------------------ ids
ID = st.text(
    alphabet=st.sampled_from("ABCXYZabcxyz0189_.-"),
    min_size=1,
    max_size=32,
)


@FAST
@given(ID)
def test_ids_bare_or_quoted_are_the_same(wafer_id: str) -> None:
    assert parse_id(wafer_id) == wafer_id
    assert parse_id(f'"{wafer_id}"') == wafer_id


@FAST
@given(
    st.one_of(
        ID.map(lambda s: s + " x"),
        ID.map(lambda s: s + "#"),
        st.text(alphabet="AB", min_size=33, max_size=40),
        st.just(""),
        st.just('""'),
        ID.map(lambda s: f"'{s}'"),
    )
)
def test_bad_ids_are_224(text: str) -> None:
    with pytest.raises(ScpiError) as exc:
        parse_id(text)
    assert exc.value.code == -224


def test_semicolon_inside_quotes_does_not_split() -> None:
    box = Box()
    box.add("JOB:COUNt", query=lambda a: parse_id(a[0]))
    assert run(box, 'JOB:COUN? "W;01"') is None  # one unit: the id is illegal, -224
    assert drain(box) == [-224]


def test_unbalanced_quote_is_a_syntax_error() -> None:
    box = Box()
    assert run(box, 'EXP:DOSE?;:WAF:ID? "abc') is None
    assert drain(box) == [-102]


# ------------------------------------------------------------------ error queue and ESR
@FAST
@given(st.lists(st.sampled_from([-102, -108, -113, -221, -222, -224, 201, 202, 204]), max_size=40))
def test_error_queue_depth_16_with_overflow_as_newest(codes: list[int]) -> None:
    box = Box()
    for code in codes:
        box.push_error(code)
    got = drain(box)
    if len(codes) <= 16:
        assert got == codes
    else:
        assert got == codes[:15] + [-350]


def test_error_text_format() -> None:
    box = Box()
    box.push_error(-222)
    assert run(box, "SYST:ERR?") == '-222,"Data out of range"'
    assert run(box, "SYST:ERR?") == '0,"No error"'


@FAST
@given(st.integers(-399, -100) | st.integers(200, 399))
def test_esr_bit_per_error_class(code: int) -> None:
    box = Box()
    run(box, "*ESR?")  # clear power-on
    box.push_error(code)
    esr = int(run(box, "*ESR?") or "-1")
    if code <= -300 or code >= 200:
        assert esr == 1 << 3
    elif code <= -200:
        assert esr == 1 << 4
    else:
        assert esr == 1 << 5
    assert esr_bit_for(code) == esr


def test_power_on_esr_bit_7_read_and_clear_and_stb() -> None:
    box = Box()
    assert run(box, "*ESR?") == "128"
    assert run(box, "*ESR?") == "0"
    assert run(box, "*STB?") == "0"
    run(box, "BOGUS")
    assert run(box, "*STB?") == "4"  # error queue not empty
    run(box, "*ESE 32")
    assert run(box, "*STB?") == "36"  # + ESB: ESR bit 5 is enabled
    assert run(box, "*ESE?") == "32"
    run(box, "*CLS")
    assert run(box, "*STB?;*ESR?") == "0;0"


def test_common_commands() -> None:
    box = Box()
    assert run(box, "*IDN?") == "VIAFAB,TEST,1,1"
    assert run(box, "*OPC?") == "1"
    assert run(box, "*TST?") == "0"
    run(box, "*ESR?")
    run(box, "*OPC")
    assert run(box, "*ESR?") == "1"
    assert re.fullmatch(r"\d+", run(box, "SYST:BOOT?") or "")
    assert run(box, "*IDN? extra") is None
    assert run(box, "*WAI?") is None
    assert drain(box) == [-108, -113]


@FAST
@given(st.integers(0, 10**9))
def test_nr1(n: int) -> None:
    assert nr1(n) == str(n)


@FAST
@given(st.floats(min_value=-1e5, max_value=1e5, allow_nan=False), st.integers(1, 3))
def test_nr2_has_the_resolution_and_no_minus_zero(x: float, decimals: int) -> None:
    text = nr2(x, decimals)
    assert re.fullmatch(rf"-?\d+\.\d{{{decimals}}}", text)
    assert text != "-" + "0." + "0" * decimals
    assert float(text) == pytest.approx(x, abs=10**-decimals)
