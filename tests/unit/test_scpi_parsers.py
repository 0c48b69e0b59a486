"""Property tests of the SCPI reply parsers and value validators (no I/O)."""

from __future__ import annotations

import math
import re

import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from drivers.errors import CommsError, ValidationError
from drivers.etcher import PlasmaEtcher, cf4_fraction
from drivers.exposure import ExposureTool
from drivers.scpi_values import (
    Kind,
    ReplyError,
    Setting,
    check_wafer_id,
    parse_bool,
    parse_error,
    parse_int,
    parse_names,
    parse_real,
    parse_reals,
    short_form,
)

ID_CHARS = st.sampled_from("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_.-")
IDS = st.text(ID_CHARS, min_size=1, max_size=32).filter(lambda s: s != "NONE")
FINITE = st.floats(allow_nan=False, allow_infinity=False)
PARSERS = [parse_int, parse_real, parse_bool, parse_names, parse_reals, parse_error]
NUMERIC_SETTINGS = [s for cls in (ExposureTool, PlasmaEtcher) for s in cls.settings.values()
                    if s.kind in (Kind.REAL, Kind.INT) and not s.read_only]


@given(st.integers(min_value=-(10**12), max_value=10**12))
def test_nr1_round_trips(n: int) -> None:
    assert parse_int(str(n)) == n


@given(FINITE)
def test_reals_round_trip_in_nr2_and_nr3(x: float) -> None:
    assert parse_real(repr(x)) == x
    assert parse_real(f"{x:E}") == float(f"{x:E}")
    if abs(x) < 1e15:
        assert parse_real(f"{x:.1f}") == pytest.approx(x, abs=0.051)


@given(st.text(max_size=30))
def test_every_parser_either_parses_or_raises_a_comms_error(text: str) -> None:
    for parser in PARSERS:
        try:
            parser(text)
        except CommsError:
            pass


def garble(text: str) -> str:
    """The corruption a noisy line causes (the bundled simulator's rule): XOR 0x5A, 7 bits."""
    return "".join(chr((ord(c) ^ 0x5A) & 0x7F or 0x3F) for c in text)


@given(FINITE)
def test_a_garbled_number_never_parses_as_a_number(x: float) -> None:
    with pytest.raises(ReplyError):
        parse_real(garble(f"{x:.1f}"))


@given(st.lists(IDS, min_size=1, max_size=8))
def test_name_lists_round_trip(names: list[str]) -> None:
    assert parse_names(",".join(names)) == tuple(names)


def test_none_is_the_empty_list() -> None:
    assert parse_names("NONE") == () and parse_reals("") == []


@given(st.integers(-400, 400), st.text(st.characters(min_codepoint=32, max_codepoint=126)))
def test_error_entries_round_trip_with_doubled_quotes(code: int, text: str) -> None:
    wire = f'{code:+d},"{text.replace(chr(34), chr(34) * 2)}"'
    assert parse_error(wire) == (code, text)


@given(st.text(max_size=4).filter(lambda s: s not in ("0", "1")))
def test_booleans_are_exactly_one_or_zero(text: str) -> None:
    with pytest.raises(ReplyError):
        parse_bool(text)


@pytest.mark.parametrize("setting", NUMERIC_SETTINGS, ids=lambda s: s.name)
@given(data=st.data())
def test_values_in_range_are_sent_and_read_back_unchanged(setting: Setting, data) -> None:
    assert setting.lo is not None and setting.hi is not None
    if setting.kind is Kind.INT:
        value = data.draw(st.integers(int(setting.lo), int(setting.hi)))
    else:
        value = data.draw(st.floats(setting.lo, setting.hi))
    checked = setting.validate(value)
    header, arg = setting.write_line(checked).split(" ")
    assert header == short_form(setting.header)
    assert setting.parse(arg) == value


@pytest.mark.parametrize("setting", NUMERIC_SETTINGS, ids=lambda s: s.name)
@given(data=st.data())
def test_values_out_of_range_are_refused_naming_parameter_and_range(setting: Setting,
                                                                     data) -> None:
    assert setting.lo is not None and setting.hi is not None
    value = data.draw(st.one_of(st.floats(max_value=setting.lo, exclude_max=True),
                                st.floats(min_value=setting.hi, exclude_min=True)))
    with pytest.raises(ValidationError) as err:
        setting.validate(value)
    assert err.value.parameter == setting.name
    assert str(setting.hi) in err.value.allowed or f"{setting.hi:g}" in err.value.allowed


@given(IDS)
def test_valid_wafer_ids_pass(wafer: str) -> None:
    assert check_wafer_id(wafer) == wafer


@given(st.text(max_size=40))
def test_invalid_wafer_ids_are_refused(text: str) -> None:
    assume(not re.fullmatch(r"[A-Za-z0-9_.\-]{1,32}", text) or text == "NONE")
    with pytest.raises(ValidationError):
        check_wafer_id(text)


@given(st.floats(0, 200), st.floats(0, 30))
def test_cf4_fraction_is_a_fraction(o2: float, cf4: float) -> None:
    f = cf4_fraction(o2, cf4)
    assert 0.0 <= f <= 1.0 and not math.isnan(f)


@pytest.mark.parametrize(("header", "short"), [("EXPosure:DOSE", "EXP:DOSE"),
                                               ("SYSTem:ERRor[:NEXT]", "SYST:ERR"),
                                               ("FILM:THICKness", "FILM:THICK"),
                                               ("ETCH:ABORt", "ETCH:ABOR")])
def test_short_forms(header: str, short: str) -> None:
    assert short_form(header) == short


def test_boolean_setting_accepts_words_but_not_numbers_out_of_set() -> None:
    endpoint = Setting("ETCH:ENDPoint", Kind.BOOL, name="endpoint")
    assert endpoint.validate("off") is False and endpoint.validate(True) is True
    with pytest.raises(ValidationError):
        endpoint.validate(2)
