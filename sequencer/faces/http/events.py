"""Fan-out of line events to the live event stream's subscribers (server-sent events).

Each subscriber has its own bounded queue. A subscriber that falls
``QUEUE_LIMIT`` events behind is dropped with a final ``overflow`` event rather
than slowing the line down; the client reconnects and re-reads the state.

An event is encoded once, however many streams carry it, and a stream sends what
has queued up meanwhile (a burst: a step's end, the wafer's change, the next step's
start) in one write: the same bytes on the wire, one send per burst and subscriber
instead of one per event. ``last_id`` is the id of the latest event published (the
operator's screen dates its shared fragments by it).

Shutdown: ``close()`` ends every stream, and ``sse_starlette``'s process-wide
``AppStatus.should_exit`` is set so a stream blocked in a send ends too (with
uvicorn off the main thread nothing else would, and shutdown would hang).
``open()`` resets that flag, which is never reset by sse-starlette itself.
"""

from __future__ import annotations

import asyncio
import itertools
import json
from collections.abc import AsyncIterator, Iterable

from sse_starlette.sse import AppStatus, ServerSentEvent

from sequencer.faces.http.contract import LineEvent

QUEUE_LIMIT = 1000
_CLOSE = object()


class _Subscriber:
    def __init__(self, kinds: frozenset[str] | None) -> None:
        self.kinds = kinds
        self.queue: asyncio.Queue[bytes | object] = asyncio.Queue(QUEUE_LIMIT + 1)
        self.dropped = False


class EventHub:
    """Publish from the event loop; each ``subscribe()`` is one SSE stream's source."""

    def __init__(self) -> None:
        self._subscribers: set[_Subscriber] = set()
        self._ids = itertools.count(1)
        self._closed = False
        self.last_id = 0

    def open(self) -> None:
        self._closed = False
        AppStatus.should_exit = False

    @property
    def subscribers(self) -> int:
        return len(self._subscribers)

    def publish(self, event: LineEvent) -> None:
        self.last_id = next(self._ids)
        message = ServerSentEvent(data=json.dumps(event.model_dump(mode="json")),
                                  event=event.kind, id=str(self.last_id)).encode()
        for sub in list(self._subscribers):
            if sub.kinds is not None and event.kind not in sub.kinds:
                continue
            if sub.queue.qsize() >= QUEUE_LIMIT:
                sub.dropped = True
                self._subscribers.discard(sub)
                sub.queue.put_nowait(_CLOSE)
                continue
            sub.queue.put_nowait(message)

    async def subscribe(self, kinds: Iterable[str] | None = None,
                        hello: ServerSentEvent | None = None
                        ) -> AsyncIterator[ServerSentEvent | bytes]:
        """The events (optionally only ``kinds``) from now on, until close or overflow;
        each item the encoded events that were waiting (one or more)."""
        sub = _Subscriber(frozenset(kinds) if kinds is not None else None)
        self._subscribers.add(sub)
        try:
            if hello is not None:
                yield hello
            closing = False
            while not self._closed and not closing:
                chunk = [await sub.queue.get()]
                while not sub.queue.empty():
                    chunk.append(sub.queue.get_nowait())
                if _CLOSE in chunk:
                    closing = True
                    chunk = chunk[:chunk.index(_CLOSE)]
                if chunk:
                    yield b"".join(m for m in chunk if isinstance(m, bytes))
            if sub.dropped:
                yield ServerSentEvent(data=json.dumps({"dropped_after": QUEUE_LIMIT}),
                                      event="overflow")
        finally:
            self._subscribers.discard(sub)

    def close(self) -> None:
        """End every stream (daemon shutdown)."""
        self._closed = True
        AppStatus.should_exit = True
        for sub in list(self._subscribers):
            sub.queue.put_nowait(_CLOSE)
