"""The GEM face's logic without a socket: the tables' id rules, the report model's E5
acknowledge codes, EC ranges, the clock's TIME forms, the spool's order and bounds,
remote-command validation (over the tests' in-memory line)."""

from __future__ import annotations

import asyncio
import concurrent.futures
import threading
from collections.abc import Coroutine, Mapping
from pathlib import Path
from typing import Any

import pytest

from sequencer.faces.gem import gem300_tables, tables
from sequencer.faces.gem.commands import (
    HCACK_CANNOT,
    HCACK_LATER,
    HCACK_NO_CMD,
    HCACK_PARAM,
    RemoteCommands,
)
from sequencer.faces.gem.persist import GemStore
from sequencer.faces.gem.reports import Reports
from sequencer.faces.gem.rows import CollectionEvent
from sequencer.faces.gem.sender import Link, Outbox
from sequencer.faces.gem.variables import Constants, clock_text, parse_clock
from tests.daemon_fake.fake_line import FakeLine

TOOLS = ["exposure", "oven", "etcher"]
RECIPES = Path(__file__).resolve().parents[2] / "configs" / "recipes"


def test_every_id_is_unique_and_the_gem300_ranges_are_refused_to_the_e30_rows(
        monkeypatch: pytest.MonkeyPatch) -> None:
    t = tables.build(TOOLS + ["oven2"])  # a second oven gets its own SVs and ALIDs
    assert "oven2.ChamberTemperature" in t.by_name and "oven2.TOOL_HELD" in t.alarm_by_name
    assert t.by_name["oven2.State"].vid != t.by_name["oven.State"].vid
    assert not any(v in r for v in t.variables for r in tables.RESERVED
                   if v not in {x.vid for x in gem300_tables.VARIABLES})
    monkeypatch.setattr(gem300_tables, "EVENTS", (CollectionEvent(200, "Mine"),))
    with pytest.raises(ValueError, match="outside its part's range"):
        tables.build(TOOLS)
    monkeypatch.setattr(gem300_tables, "EVENTS", (CollectionEvent(3000, "EquipmentOffline"),))
    with pytest.raises(ValueError, match="names used twice"):
        tables.build(TOOLS)


def test_substrate_and_job_events_come_from_the_state_machines_tables() -> None:
    t = tables.build(TOOLS)
    assert "Substrate.complete.IN_PROCESS.PROCESSED" in t.event_by_name
    assert "Job.finish.PROCESSING.PROCESS_COMPLETE" in t.event_by_name
    assert tables.SUBSTRATE_EVENTS[("STOPPED", "IN_PROCESS")] == \
        "Substrate.release.STOPPED.IN_PROCESS"


def test_reports_answer_e5_codes_and_a_refused_message_changes_nothing(tmp_path: Path) -> None:
    t = tables.build(TOOLS)
    store = GemStore(tmp_path / "j.db")
    r = Reports(t, store)
    vid, ceid = t.by_name["SubstID"].vid, t.event_by_name["StepStarted"].ceid
    assert r.define([(1, [vid]), (2, [999999])]) == 4  # VID unknown
    assert r.reports == {}
    assert r.define([(1, [vid])]) == 0 and r.define([(1, [vid])]) == 3  # already defined
    assert r.link([(ceid, [1]), (424242, [1])]) == 4 and r.links == {}  # CEID unknown
    assert r.link([(ceid, [7])]) == 5  # RPTID unknown
    assert r.link([(ceid, [1])]) == 0 and r.link([(ceid, [1])]) == 3  # already linked
    assert r.enable(True, [424242]) == 1 and r.enabled == set()
    assert r.enable(True, []) == 0 and ceid in r.enabled
    assert r.define([(1, [])]) == 0 and r.links == {}  # deleting a report unlinks it
    again = Reports(t, store)
    again.restore()
    assert again.enabled == r.enabled and again.reports == {}
    store.close()


def test_an_s2f15_with_one_value_out_of_range_is_eac_3_and_changes_nothing(
        tmp_path: Path) -> None:
    t = tables.build(TOOLS)
    store = GemStore(tmp_path / "j.db")
    c = Constants(t, store, FakeLine())
    q, fmt = t.by_name["QueueTimeCureToEtchS"].vid, t.by_name["TimeFormat"].vid
    assert c.check({q: 7200.0, fmt: 9})[0] == 3
    assert c.check({q: "many"})[0] == 3 and c.check({424242: 1})[0] == 1
    eac, parsed = c.check({q: 7200, fmt: 0})
    assert eac == 0 and parsed == {q: 7200.0, fmt: 0}
    c.save(parsed)
    assert Constants(t, store, FakeLine()).values[q] == 7200.0
    assert Constants(t, store, FakeLine()).restored() == {"q_cure_etch_s": 7200.0}
    store.close()


def test_time_in_the_12_and_16_character_forms_round_trips() -> None:
    t = 1_800_000_000.25
    assert len(clock_text(0, t)) == 12 and len(clock_text(1, t)) == 16
    assert parse_clock(clock_text(1, t)) == pytest.approx(t, abs=0.01)
    assert parse_clock(clock_text(0, t)) == pytest.approx(int(t))
    assert parse_clock("2026-12-01") is None and parse_clock("20261399000000") is None


class _Message:
    def __init__(self, stream: int, function: int, n: int) -> None:
        self.stream, self.function, self.n = stream, function, n

    def encode(self) -> bytes:
        return bytes([self.n])

    def decode(self, body: bytes) -> None:
        self.n = body[0]


def test_the_spool_keeps_order_bounds_and_sends_on_request(tmp_path: Path) -> None:
    store = GemStore(tmp_path / "j.db")
    up = threading.Event()
    sent: list[int] = []
    spooling: list[bool] = []

    def send(m: _Message) -> object:
        sent.append(m.n)
        return object()

    link = Link(up.is_set, lambda: True, send, lambda s, f: lambda: _Message(s, f, 0))
    box = Outbox(link, store, limit=lambda: 3, overwrite=lambda: True, batch=lambda: 0,
                 on_spooling=spooling.append)
    box.start()
    for n in range(5):  # no host: spooled, the oldest two overwritten
        box.put(_Message(6, 11, n))
    box.put(_Message(2, 17, 9))  # not a spooled stream: dropped
    box.drain()
    assert store.spool_count() == 3 and box.state.total == 5 and spooling == [True]
    up.set()
    box.put(_Message(6, 11, 5))  # while spooling, new ones go behind (the spool is full)
    box.transmit_spool()
    box.drain()
    assert sent == [3, 4, 5] and spooling == [True, False] and store.spool_count() == 0
    box.stop()
    store.close()


class _Ctx:
    """The GemContext bits RemoteCommands uses, over the tests' in-memory line."""

    def __init__(self, line: FakeLine, loop: asyncio.AbstractEventLoop) -> None:
        self.line, self.loop = line, loop
        self.refusal: int | None = None
        self.texts: list[str] = []
        self.audits: list[tuple[str, str, Mapping[str, object]]] = []

    def call(self, coro: Coroutine[Any, Any, Any]) -> concurrent.futures.Future[Any]:
        return asyncio.run_coroutine_threadsafe(coro, self.loop)

    def remote_refusal(self) -> int | None:
        return self.refusal

    def terminal_to_host(self, text: str) -> None:
        self.texts.append(text)

    def audit(self, who: str, action: str, detail: Mapping[str, object]) -> None:
        self.audits.append((who, action, detail))


def test_remote_commands_are_validated_before_the_answer() -> None:
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    line = FakeLine()
    asyncio.run_coroutine_threadsafe(line.start(), loop).result(5)
    ctx = _Ctx(line, loop)
    rc = RemoteCommands(ctx, RECIPES)  # type: ignore[arg-type]
    start = [("LOTID", "U1"), ("PPID", "FLOW-A"), ("WAFERIDS", "U1-01,U1-02")]
    assert rc.run("FLY", []).hcack == HCACK_NO_CMD
    missing = rc.run("START", start[:2])
    assert missing.hcack == HCACK_PARAM and missing.params == [("WAFERIDS", 3)]
    bad = rc.run("START", [("LOTID", "U1"), ("PPID", "NOPE"), ("WAFERIDS", "U1-01")])
    assert bad.hcack == HCACK_PARAM and bad.params == [("PPID", 2)] and ctx.texts
    assert line.lots() == []  # refused: nothing created
    ctx.refusal = 2  # ONLINE LOCAL
    assert rc.run("START", start).hcack == HCACK_CANNOT and line.lots() == []
    ctx.refusal = None
    assert rc.run("START", start).hcack == HCACK_LATER
    assert [lt.lot_id for lt in line.lots()] == ["U1"]
    assert [w.wafer_id for w in line.lot("U1").wafers] == ["U1-01", "U1-02"]
    assert rc.run("START", start).params == [("LOTID", 2)]  # the lot id is in use
    assert rc.run("RESUME", [("LOTID", "U1")]).hcack == HCACK_CANNOT  # QUEUED: not paused
    assert rc.run("ABORT", [("LOTID", "NOPE")]).params == [("LOTID", 2)]
    assert [a[1] for a in ctx.audits].count("remote START") == 5
    loop.call_soon_threadsafe(loop.stop)
    thread.join(5)
