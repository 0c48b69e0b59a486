"""The GEM300 part's logic without a host: the process program checks and versions, the
carrier attribute checks and lot lookup, the terminal's ASCII, the tables' coverage of
the state machines. A small in-memory context stands in for the daemon's GEM face."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from sequencer.faces.gem import gem300_tables, tables
from sequencer.faces.gem.carriers import find_lot, host_view, mismatches
from sequencer.faces.gem.program_library import ProgramLibrary
from sequencer.faces.gem.terminal import ascii_text
from sequencer.process.recipe_files import inspect_file
from sequencer.states import carrier as e87
from sequencer.states import control_job as e94
from sequencer.states.carrier import Carrier, slot_map_of

RECIPES = Path(__file__).resolve().parents[2] / "configs" / "recipes"


class MemoryStore:
    def __init__(self) -> None:
        self.data: dict[str, Any] = {}

    def get(self, key: str) -> Any:
        return self.data.get(key)

    def put(self, key: str, value: Any) -> None:
        self.data[key] = value

    def delete(self, key: str) -> None:
        self.data.pop(key, None)

    def keys(self, prefix: str) -> list[str]:
        return sorted(k for k in self.data if k.startswith(prefix))

    @contextmanager
    def atomic(self) -> Iterator[None]:
        yield


class Lots:
    def __init__(self, *lots: tuple[str, str, str]) -> None:
        self._lots = [SimpleNamespace(lot_id=i, flow=f, state=s) for i, f, s in lots]

    def lots(self) -> list[Any]:
        return self._lots


class Ctx:
    """Just what ProgramLibrary uses of a GemContext."""

    def __init__(self) -> None:
        self.store = MemoryStore()
        self.line = Lots()


@pytest.fixture
def library(tmp_path: Path) -> ProgramLibrary:
    folder = tmp_path / "recipes"
    shutil.copytree(RECIPES, folder)
    return ProgramLibrary(folder, Ctx())  # type: ignore[arg-type]


BAD = b"etch:\n  name: ETCH-X\n  o2_sccm: 50.0\n  cf4_sccm: 30.0\n  pressure_mtorr: 5000.0\n"


def test_a_bad_program_gets_every_problem_recipe_check_finds(library: ProgramLibrary,
                                                              tmp_path: Path) -> None:
    problems = library.check("ETCH-X", BAD)
    (tmp_path / "ETCH-X.yaml").write_bytes(BAD)
    assert problems == inspect_file(tmp_path / "ETCH-X.yaml", library.dir)[1]
    assert len(problems) >= 6  # missing keys, a range, the CF4 fraction …
    assert not (library.dir / "ETCH-X.yaml").exists() and library.versions("ETCH-X") == []


def test_what_is_not_a_program_is_refused(library: ProgramLibrary) -> None:
    lot = b"lot:\n  lot_id: L1\n  flow: FLOW-A\n  wafers: [{slot: 1, id: W1}]\n"
    assert [str(p) for p in library.check("L1", lot)] == [
        "lot: a lot file is not a process program (a program is a recipe or a flow)"]
    assert "not UTF-8" in str(library.check("X", b"\xff\xfe")[0])
    assert "is not a program name" in str(library.check("../evil", b"")[0])
    assert "bytes a program may have" in str(library.check("BIG", b"#" * 300_000)[0])


def test_a_recipe_change_is_checked_against_the_flows_that_use_it(
        library: ProgramLibrary) -> None:
    body = (RECIPES / "ETCH-OPEN-01.yaml").read_bytes() + b"  main_etch_s: 120\n"
    problems = [str(p) for p in library.check("ETCH-OPEN-01", body)]
    assert any(p.startswith("FLOW-A.yaml (uses ETCH-OPEN-01): ") for p in problems), problems


def test_versions_keep_the_folder_body_first_then_each_change(library: ProgramLibrary) -> None:
    before = (library.dir / "ETCH-OPEN-01.yaml").read_bytes()
    changed = before.replace(b"overetch_pct: 30", b"overetch_pct: 40")
    assert library.check("ETCH-OPEN-01", changed) == []
    assert library.store("ETCH-OPEN-01", changed, "A", "host") == (1, 2)  # edited
    assert library.body("ETCH-OPEN-01") == changed and library.format_of("ETCH-OPEN-01") == "A"
    versions = library.versions("ETCH-OPEN-01")
    assert [(v["version"], v["origin"]) for v in versions] == [(0, "folder"), (1, "host")]
    new = before.replace(b"ETCH-OPEN-01", b"ETCH-NEW")
    assert library.store("ETCH-NEW", new, "B", "host") == (0, 1)  # created
    assert "ETCH-NEW" in library.names()
    assert library.delete("ETCH-NEW", "host") == 1
    assert "ETCH-NEW" not in library.names() and library.body("ETCH-NEW") is None
    assert [v["deleted"] for v in library.versions("ETCH-NEW")] == [False, True]


def test_host_attributes_are_checked_for_form() -> None:
    view, errors = host_view([{"CATTRID": "SlotMap", "CATTRDATA": [3, 9]},
                              {"CATTRID": "Colour", "CATTRDATA": "red"},
                              {"CATTRID": "Capacity", "CATTRDATA": 13},
                              {"CATTRID": "Usage", "CATTRDATA": "PRODUCT"}])
    assert view == {"Usage": "PRODUCT"}
    assert [code for code, _ in errors] == [7, 4, 7]


def test_content_map_and_count_mismatches_are_named() -> None:
    c = Carrier("L1", 1, "L1", {1: "W1", 2: "W2"})
    content = [["L1", "W1"], ["L1", "W9"]] + [["", ""]] * 23
    assert mismatches(c, {"ContentMap": content, "SubstrateCount": 3,
                          "SlotMap": slot_map_of([1, 2])}) == [
        "slot 2: the host says substrate W9, lot L1 has W2",
        "SubstrateCount 3: lot L1 has 2 wafers"]


def test_a_carrier_is_the_cassette_of_a_lot_file(tmp_path: Path) -> None:
    lots = tmp_path / "lots"
    lots.mkdir()
    (lots / "a.yaml").write_text("lot:\n  lot_id: CAR1\n  flow: FLOW-A\n  wafers:\n"
                                 "    - {slot: 2, id: W2}\n")
    (lots / "b.yaml").write_text("lot:\n  lot_id: CAR2\n  flow: NO-FLOW\n  wafers:\n"
                                 "    - {slot: 1, id: W1}\n")
    lot, why = find_lot(lots, "CAR1", RECIPES)
    assert lot is not None and [(w.slot, w.wafer_id) for w in lot.wafers] == [(2, "W2")]
    assert find_lot(lots, "CAR9", RECIPES) == (None, f"no lot has a cassette with ID 'CAR9' "
                                                     f"(no lot file in {lots})")
    bad, why = find_lot(lots, "CAR2", RECIPES)
    assert bad is None and why.startswith("lot file b.yaml: lot.flow")


@given(st.text(max_size=80))
def test_terminal_text_is_always_ascii(text: str) -> None:
    out = ascii_text(text)
    assert out.isascii()
    if text.isascii():
        assert out == text


def test_the_line_s_symbols_are_spelled_out() -> None:
    assert ascii_text("50–1000 mTorr, 230 °C → etch ≥ 1.5×") == \
        "50-1000 mTorr, 230 degC -> etch >= 1.5x"


def test_every_carrier_and_control_job_transition_has_its_event() -> None:
    built = tables.build(["exposure", "oven", "etcher"])
    names = set(built.event_by_name)
    for machine, transitions in (("id", e87.ID_TRANSITIONS), ("slot_map", e87.MAP_TRANSITIONS),
                                 ("access", e87.ACCESS_TRANSITIONS)):
        for t in transitions:
            sources = t["source"] if isinstance(t["source"], list) else [t["source"]]
            for s in sources:
                assert gem300_tables.carrier_event(machine, str(s), str(t["dest"])) in names
    for t in e94.TRANSITIONS:
        sources = t["source"] if isinstance(t["source"], list) else [t["source"]]
        for s in sources:
            assert gem300_tables.cj_event(str(s), str(t["dest"])) in names
    for e in gem300_tables.EVENTS:  # every DV an event carries is a variable of the tables
        assert all(dv in built.by_name for dv in e.dvs), e


def test_a_program_an_unfinished_lot_uses_is_in_use() -> None:
    ctx = Ctx()
    ctx.line = Lots(("L1", "FLOW-A", "PROCESSING"), ("L2", "FLOW-B", "PROCESS_COMPLETE"))
    library = ProgramLibrary(RECIPES, ctx)  # type: ignore[arg-type]
    assert library.in_use("FLOW-A") == ["L1"]
    assert library.in_use("ETCH-OPEN-01") == ["L1"]  # a recipe of FLOW-A
    assert library.in_use("FLOW-B") == []  # its lot is finished
