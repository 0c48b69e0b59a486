"""The SSE fan-out (faces/http/events.py): what a stream's client reads off the wire."""

from __future__ import annotations

import asyncio

from sse_starlette.sse import ServerSentEvent

from sequencer.faces.http.contract import LineEvent
from sequencer.faces.http.events import QUEUE_LIMIT, EventHub


def _wire(item: ServerSentEvent | bytes) -> bytes:
    return item if isinstance(item, bytes) else item.encode()


def test_a_burst_goes_out_as_one_write_in_order_with_its_ids_and_only_the_kinds_asked() -> None:
    async def run() -> list[bytes]:
        hub = EventHub()
        stream = hub.subscribe(["wafer", "job"], ServerSentEvent(data="{}", event="hello"))
        got = [_wire(await anext(stream))]  # hello; the subscriber is now registered
        for kind in ("wafer", "reading", "job", "wafer"):  # one burst, before it reads
            hub.publish(LineEvent(kind=kind, t=1.0, lot_id="L1"))
        got.append(_wire(await anext(stream)))
        assert hub.last_id == 4
        hub.close()
        got += [_wire(x) async for x in stream]
        return got

    hello, burst, *rest = asyncio.run(run())
    assert b"event: hello" in hello and rest == []
    messages = [m for m in burst.decode().split("\r\n\r\n") if m]
    assert [m.split("\r\n")[:2] for m in messages] == [
        ["id: 1", "event: wafer"], ["id: 3", "event: job"], ["id: 4", "event: wafer"]]
    assert all('"lot_id": "L1"' in m for m in messages)


def test_a_subscriber_that_falls_behind_is_dropped_with_an_overflow_event() -> None:
    async def run() -> list[bytes]:
        hub = EventHub()
        stream = hub.subscribe(None, ServerSentEvent(data="{}", event="hello"))
        await anext(stream)
        for _ in range(QUEUE_LIMIT + 5):
            hub.publish(LineEvent(kind="wafer", t=1.0))
        assert hub.subscribers == 0
        return [_wire(x) async for x in stream]

    *events, last = asyncio.run(run())
    assert sum(b.count(b"event: wafer") for b in events) == QUEUE_LIMIT
    assert b"event: overflow" in last
