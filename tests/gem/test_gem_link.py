"""The HSMS link under trouble, on `viaform daemon` with a lot running on the simulators:

- the host drops mid-lot and comes back: every event produced meanwhile was spooled in
  the journal and is delivered on S6F23, in order; with what the host got before the
  drop, it is exactly the journal's transitions (nothing lost); the lot is unaffected;
  reconnecting again and again leaves the daemon's thread count bounded;
- garbage bytes, lengths that are not HSMS, oversized messages, unknown S/F, bodies
  that do not decode, a wrong device id, bad PType/SType and a second connection are
  answered or dropped as E37/E5 say; the daemon stays up and the lot completes.
"""

from __future__ import annotations

import os
from pathlib import Path

import httpx
import pytest

from simulators.runner import SimThread
from tests.hil.flowkit import assert_world_sound, wait_for, world_snapshot
from tests.hil.test_daemon_engine import lot_body, quick_flow

from .gemkit import (
    HEADERS,
    SCALE,
    RawHsms,
    T,
    V,
    define_reports,
    gem_daemon,
    gem_host,
    gem_tools_yaml,
    host_transitions,
    journal_transitions,
    lot_state,
)


def threads(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/task"))


@pytest.mark.timeout(120)
def test_a_host_dropped_mid_lot_gets_the_spooled_events_and_nothing_is_lost(
        tmp_path: Path) -> None:
    recipes, db = quick_flow(tmp_path), tmp_path / "journal.db"
    wafers = ["D01", "D02", "D03"]
    with SimThread(time_scale=SCALE, seed=8) as sims:
        tools = gem_tools_yaml(tmp_path, sims, db)
        with gem_daemon(tools, db, recipes, "drop") as d:
            with gem_host(d.gem_port) as first:
                define_reports(first, T)
                r = httpx.post(f"{d.url}/lots", json=lot_body("DL1", wafers), headers=HEADERS)
                assert r.status_code == 201, r.text
                wait_for(lambda: len(host_transitions(first)) >= 3, 30.0, "the lot to begin",
                         interval_s=0.01)
            before = host_transitions(first)
            wait_for(lambda: lot_state(d.url, "DL1") == "PROCESS_COMPLETE", 60.0, "DL1 done",
                     interval_s=0.05)
            status = httpx.get(f"{d.url}/gem").json()
            assert status["spooling"] and status["spooled"] > 0, status
            assert not status["communicating"]
            with gem_host(d.gem_port) as second:
                # HOST OFFLINE after the drop: every primary but S1F13/S1F17 gets SxF0 (E30)
                assert second.request(1, 3, [V["ControlState"]]) == "abort"
                assert second.request(1, 17) == 0  # ONLACK 0 after the drop: online again
                control, spooled = second.request(1, 3, [V["ControlState"],
                                                         V["SpoolCountActual"]])
                assert control == 5 and spooled >= status["spooled"]
                assert second.request(6, 23, 0) == 0  # transmit the spool
                wait_for(lambda: second.request(1, 3, [V["SpoolCountActual"]]) == [0], 15.0,
                         "the spool to empty", interval_s=0.05)
                after = host_transitions(second)
                assert second.request(6, 23, 0) == 2  # nothing left to send
            # what was in flight at the drop may come twice (spooling is at least once)
            overlap = max(k for k in range(min(len(before), len(after)) + 1)
                          if before[len(before) - k:] == after[:k])
            got = before + after[overlap:]
            assert got == journal_transitions(db, {"DL1", *wafers})
            assert_world_sound(world_snapshot(sims), wafers)
            counts = []
            for _ in range(6):
                with gem_host(d.gem_port) as h:
                    assert h.request(1, 1) is not None
                wait_for(lambda: not httpx.get(f"{d.url}/gem").json()["communicating"], 10.0,
                         "the drop to be seen", interval_s=0.02)
                counts.append(threads(d.proc.pid))
            assert max(counts[2:]) <= counts[1] + 2, counts  # a leak per reconnect would be +4


def _hsms_ok(raw: RawHsms) -> None:
    """Select, then establish communications as a host would (S1F13 both ways)."""
    raw.send(raw.frame(0xFFFF, 0, 0, 0, 1))
    (head, _) = raw.read() or ((), b"")
    assert head[4] == 2 and head[2] == 0, head  # Select.rsp, status 0
    raw.send(raw.frame(0, 1, 13, 0, 0, b"\x01\x00", wbit=True))  # S1F13 W, <L[0]>
    seen = set()
    for _ in range(4):  # the equipment's S1F14 reply and its own S1F13, in either order
        got = raw.read()
        assert got is not None
        (_, stream, function, _, _, system), _ = got
        if stream & 0x7F == 1 and function == 13:
            raw.send(raw.frame(0, 1, 14, 0, 0, b"\x01\x02\x21\x01\x00\x01\x00", system=system))
        seen.add(function)
        if seen >= {13, 14}:
            return
    raise AssertionError(f"no S1F13/S1F14 exchange: {seen}")


def _reply(raw: RawHsms, stream: int, function: int) -> tuple[tuple[int, ...], bytes]:
    for _ in range(10):
        got = raw.read()
        assert got is not None, f"closed while waiting for S{stream}F{function}"
        head, body = got
        if head[1] & 0x7F == stream and head[2] == function:
            return head, body
    raise AssertionError(f"no S{stream}F{function}")


@pytest.mark.timeout(90)
def test_bad_bytes_on_the_hsms_port_are_answered_or_dropped_and_the_lot_goes_on(
        tmp_path: Path) -> None:
    recipes, db = quick_flow(tmp_path), tmp_path / "journal.db"
    wafers = ["B01", "B02"]
    with SimThread(time_scale=SCALE, seed=9) as sims:
        tools = gem_tools_yaml(tmp_path, sims, db, max_message_bytes=65536,
                               timers={"t7": 2.0, "t8": 1.0})
        with gem_daemon(tools, db, recipes, "bad") as d:
            r = httpx.post(f"{d.url}/lots", json=lot_body("BL1", wafers), headers=HEADERS)
            assert r.status_code == 201, r.text
            # a length below 10 is not HSMS: dropped at once
            raw = RawHsms(d.gem_port)
            raw.send(b"\x00\x00\x00\x03abc")
            assert raw.closed(3.0)
            raw.close()
            # text on the port: a huge "length"; its body never comes: closed after T8
            raw = RawHsms(d.gem_port)
            raw.send(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
            assert raw.closed(5.0)
            raw.close()
            # connected, never selected: closed after T7
            raw = RawHsms(d.gem_port)
            assert raw.closed(6.0)
            raw.close()
            raw = RawHsms(d.gem_port)
            _hsms_ok(raw)
            second = RawHsms(d.gem_port)  # a second host while one is selected
            second.send(second.frame(0xFFFF, 0, 0, 0, 1))
            (head, _) = second.read() or ((), b"")
            assert head[4] == 2 and head[2] == 1, head  # Select.rsp: already active
            assert second.closed(3.0)
            second.close()
            raw.send(raw.frame(0, 0, 0, 1, 0))  # PType 1
            (head, _) = raw.read() or ((), b"")
            assert head[4] == 7 and head[1:3] == (1, 1), head  # Reject.req: PType 1, reason 1
            raw.send(raw.frame(0xFFFF, 0, 0, 0, 8))  # SType 8
            (head, _) = raw.read() or ((), b"")
            assert head[4] == 7 and head[1:3] == (8, 2), head  # Reject.req: SType 8, reason 2
            raw.send(raw.frame(7, 1, 1, 0, 0, wbit=True))  # another device id
            _, mhead = _reply(raw, 9, 1)
            assert mhead[-10:-8] == b"\x00\x07"  # S9F1 names the header it refused
            raw.send(raw.frame(0, 99, 1, 0, 0, wbit=True))
            _reply(raw, 9, 3)  # unknown stream
            raw.send(raw.frame(0, 1, 99, 0, 0, wbit=True))
            _reply(raw, 9, 5)  # unknown function
            raw.send(raw.frame(0, 1, 3, 0, 0, b"\x01\x01\x41", wbit=True))  # a cut-off item
            _reply(raw, 9, 7)  # illegal data
            raw.send(raw.frame(0, 1, 3, 0, 0, b"\x41\x05hello", wbit=True))  # not a list
            _reply(raw, 9, 7)
            big = b"\x21\x01\x00" * 30000  # 90 kB > max_message_bytes 64 kB
            frame = raw.frame(0, 1, 3, 0, 0, big, wbit=True)
            raw.send(frame[:40000])
            raw.send(frame[40000:])
            _reply(raw, 9, 11)  # data too long, and the session goes on:
            raw.send(raw.frame(0, 1, 1, 0, 0, wbit=True))
            _, body = _reply(raw, 1, 2)
            assert b"viaform-test" in body
            raw.close()
            wait_for(lambda: lot_state(d.url, "BL1") == "PROCESS_COMPLETE", 60.0, "BL1 done",
                     interval_s=0.05)
            with gem_host(d.gem_port) as host:  # and a real host is served as ever
                assert host.request(1, 1) == "abort"  # HOST OFFLINE since the raw host left
                assert host.request(1, 17) == 0
                assert host.request(1, 1) == ["viaform-test", "9"]
        assert_world_sound(world_snapshot(sims), wafers)
