"""LX-365 simulator transport: 4 connections, one instrument, comms faults (plain sockets)."""

from __future__ import annotations

import socket
import time

import pytest

from tests.hil import test_sim_exposure as base
from tests.hil.test_sim_exposure import Cell, Client, loaded

cell = base.cell  # the fixture

pytestmark = pytest.mark.timeout(30)


def _closed(sock: socket.socket) -> bool:
    """True if the peer has closed (or reset) the connection."""
    try:
        return sock.recv(1) == b""
    except ConnectionResetError:
        return True


def test_four_connections_share_one_instrument_and_a_fifth_is_closed(cell: Cell) -> None:
    clients = [cell.client() for _ in range(4)]
    clients[0].send("SYST:REM;:EXP:DOSE 444;:BOGUS")
    assert clients[3].query("SYST:CONT?;:EXP:DOSE?") == "REMOTE;444.0"
    assert clients[2].errors() == [-113]  # one error queue
    fifth = socket.create_connection(cell.addr, timeout=2)
    assert _closed(fifth)
    fifth.close()
    clients[1].close()
    time.sleep(0.05)
    again = cell.client()
    assert again.query("*IDN?").startswith("VIAFAB,LX-365")


def test_a_dropped_connection_changes_nothing(cell: Cell) -> None:
    a = cell.client()
    loaded(cell, a)
    a.send("EXP:DOSE 2000;:EXP:STAR")
    a.sock.close()  # mid-operation, without a word
    b = cell.client()
    assert b.query("SYST:STAT?;:SYST:CONT?;:WAF:ID?") == "EXPOSING;REMOTE;W01"
    b.wait_state("EXPOSED")
    assert b.query("JOB:LAST?").split(",")[:4] == ["1", "W01", "EXPOSE", "DONE"]


def test_drop_fault_closes_every_connection_and_keeps_the_tool(cell: Cell) -> None:
    a, b = cell.client(), cell.client()
    loaded(cell, a)
    cell.fault("drop")
    assert _closed(a.sock) and _closed(b.sock)
    c = cell.client()
    assert c.query("SYST:STAT?;:SYST:CONT?") == "READY;REMOTE"


def test_mute_fault_reads_and_discards(cell: Cell) -> None:
    c = cell.client(timeout=0.3)
    cell.fault("mute")
    c.send("EXP:DOSE 555")
    with pytest.raises(TimeoutError):
        c.query("EXP:DOSE?")
    cell.clear("mute")
    assert c.query("EXP:DOSE?") == "300.0"  # the muted command never ran


def test_garble_fault_corrupts_replies(cell: Cell) -> None:
    c = cell.client()
    good = c.query("*IDN?")
    cell.fault("garble")
    bad = c.query("*IDN?")
    assert bad != good and len(bad) == len(good)
    cell.clear("garble")
    assert c.query("*IDN?") == good


def test_slow_fault_delays_replies(cell: Cell) -> None:
    c = cell.client()
    cell.fault("slow", delay_s=0.2)
    t0 = time.monotonic()
    assert c.query("SYST:STAT?") == "IDLE"
    assert time.monotonic() - t0 >= 0.18
    cell.clear("slow")
    t0 = time.monotonic()
    c.query("SYST:STAT?")
    assert time.monotonic() - t0 < 0.15


def test_opc_query_waits_for_the_whole_operation(cell: Cell) -> None:
    c = cell.client()
    loaded(cell, c)
    c.send("EXP:DOSE 2000;:EXP:STAR")
    t0 = cell.now()
    assert c.query("*OPC?") == "1"
    assert c.query("SYST:STAT?") == "EXPOSED"
    assert cell.now() - t0 >= 0.9 * 52 * 2.2  # most of a 117 s exposure
    other = Client(cell.addr)
    assert other.query("SYST:STAT?") == "EXPOSED"
    other.close()
