"""The equipment's outgoing primary messages (S6F11, S5F1, S10F1): one sender thread, the
E30 spool.

Nothing that produces a report ever sends it: ``Outbox.put`` queues the message and
returns (secsgem's send blocks while no host is connected, and waits up to T3 for the
reply). The sender thread writes them in order without waiting for each reply (up to
``WINDOW`` outstanding: a burst — a lot aborted, 25 wafers' step ends — is not paced by
the host's round trips); the acknowledgement thread takes the replies in the same order:

- host communicating and ONLINE, spool empty: sent; no reply within T3 (or the host left
  before replying) counts as a communication failure: the message is spooled and spooling
  starts. Messages written after it are spooled too if the host left; a host that stays
  but stopped answering may see those before the spooled one;
- not communicating, or spooling active: spooled (if its stream/function is enabled for
  spooling, S2F43; by default S5F1 and S6F11), else discarded with a log line;
- communicating but OFFLINE: discarded (E30: the equipment sends no reports offline).

The spool is the journal's ``gem_spool`` table, bounded (EC SpoolMax; full: the oldest are
overwritten if OverWriteSpool, else new ones are dropped and counted); S6F23 transmits
(up to MaxSpoolTransmit per request, 0 = all) or purges it. Spooling state
(``e30.spool``: active, start and full times, total count) is journaled with it, so a
restart keeps it.
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

import structlog

from sequencer.faces.gem.persist import GemStore

log = structlog.get_logger("viaform.gem")
DEFAULT_SPOOLED: dict[int, list[int]] = {5: [1], 6: [11]}  # stream → functions ([]: all)
WINDOW = 16  # messages written whose reply has not come yet, at most


@dataclass
class SpoolState:
    active: bool = False
    start: float | None = None  # unix time spooling began
    full: float | None = None  # unix time the spool first filled
    total: int = 0  # messages spooled (kept or dropped) since it began


Waiter = Callable[[float], Any]  # wait up to that long for the reply: it, or None


class Link:
    """What the sender needs of the handler: state, the sends, and decode/encode."""

    def __init__(self, communicating: Callable[[], bool], online: Callable[[], bool],
                 send: Callable[[Any], Any], function: Callable[[int, int], Any],
                 post: Callable[[Any], Waiter | None] | None = None, t3: float = 45.0) -> None:
        self.communicating = communicating
        self.online = online
        self.send = send  # send_and_waitfor_response: the reply, or None after T3
        self.function = function  # (stream, function) → secsgem's function class
        self.post = post or self._post_then_wait  # write now, wait for the reply later
        self.t3 = t3

    def _post_then_wait(self, message: Any) -> Waiter:
        reply = self.send(message)
        return lambda _timeout: reply


class Outbox:
    def __init__(self, link: Link, store: GemStore, limit: Callable[[], int],
                 overwrite: Callable[[], bool], batch: Callable[[], int],
                 on_spooling: Callable[[bool], None]) -> None:
        self.link = link
        self.store = store
        self.limit, self.overwrite, self.batch = limit, overwrite, batch
        self.on_spooling = on_spooling  # the SpoolingActivated/Deactivated events
        self._queue: queue.Queue[tuple[str, Any]] = queue.Queue()
        self._acks: queue.Queue[tuple[str, Any, Waiter | None]] = queue.Queue()
        self._window = threading.BoundedSemaphore(WINDOW)
        self._threads: list[threading.Thread] = []
        saved = store.get("e30.spool")
        self.state = SpoolState(**saved) if isinstance(saved, dict) else SpoolState()
        enabled = store.get("e30.spool_streams")
        self.spooled_streams: dict[int, list[int]] = (
            {int(k): [int(f) for f in v] for k, v in enabled.items()}
            if isinstance(enabled, dict) else dict(DEFAULT_SPOOLED))
        self.sent = 0  # messages sent to the host (tests, status)

    # ---- the producer side ------------------------------------------------------------
    def put(self, message: Any) -> None:
        """Queue a primary message (a secsgem function object); never blocks."""
        self._queue.put(("send", message))

    def transmit_spool(self) -> None:
        self._queue.put(("unspool", None))

    def start(self) -> None:
        self._threads = [threading.Thread(target=self._run, name="gem-sender", daemon=True),
                         threading.Thread(target=self._ack_run, name="gem-acks", daemon=True)]
        for t in self._threads:
            t.start()

    def stop(self, timeout_s: float = 5.0) -> None:
        """Stop after what is queued (sent or spooled); bounded by ``timeout_s``."""
        self._queue.put(("stop", None))
        deadline = time.monotonic() + timeout_s
        for t in self._threads:
            t.join(max(0.0, deadline - time.monotonic()))

    def drain(self) -> None:
        """Wait until everything put so far is sent and acknowledged, or spooled."""
        self._queue.join()
        self._acks.join()

    # ---- spool configuration (S2F43) and purge (S6F23) ----------------------------------
    def set_spooled(self, streams: dict[int, list[int]]) -> None:
        self.spooled_streams = streams
        self.store.put("e30.spool_streams", {str(k): v for k, v in streams.items()})

    def spoolable(self, stream: int, function: int) -> bool:
        functions = self.spooled_streams.get(stream)
        return functions is not None and (not functions or function in functions)

    def purge(self) -> int:
        n = self.store.purge_spool()
        self._set_active(False)
        return n

    # ---- the sender thread: writes in order, up to WINDOW replies outstanding -----------
    def _run(self) -> None:
        while True:
            kind, message = self._queue.get()
            try:
                if kind in ("stop", "unspool"):
                    self._acks.put((kind, None, None))  # in order behind what is in flight
                    if kind == "stop":
                        return
                else:
                    self._one(message)
            except Exception:
                log.exception("gem: sending failed")
            finally:
                self._queue.task_done()

    def _one(self, message: Any) -> None:
        stream, function = message.stream, message.function
        if not self.link.communicating() or self.state.active:
            self._acks.put(("spool", message, None))
        elif not self.link.online():
            log.info("gem: S%dF%d not sent: the control state is offline", stream, function)
        else:
            self._window.acquire()
            self._acks.put(("wait", message, self.link.post(message)))

    # ---- the acknowledgement thread: replies in order; what got none is spooled ---------
    def _ack_run(self) -> None:
        while True:
            kind, message, waiter = self._acks.get()
            try:
                if kind == "stop":
                    return
                if kind == "unspool":
                    self._unspool()
                elif kind == "spool":
                    self._spool(message)
                else:
                    self._acked(message, waiter)
            except Exception:
                log.exception("gem: sending failed")
            finally:
                self._acks.task_done()

    def _acked(self, message: Any, waiter: Waiter | None) -> None:
        try:
            reply = waiter(self.link.t3) if waiter is not None else None
        finally:
            self._window.release()
        if reply is not None:
            self.sent += 1
            return
        log.warning("gem: S%dF%d not acknowledged (no reply within T3, or the host left): "
                    "spooling", message.stream, message.function)
        self._spool(message)

    def _spool(self, message: Any) -> None:
        stream, function = message.stream, message.function
        if not self.spoolable(stream, function):
            log.warning("gem: S%dF%d discarded: no host, and not spooled (S2F43)",
                        stream, function)
            return
        if not self.state.active:
            self._set_active(True)
        kept = self.store.spool(stream, function, message.encode(), self.limit(),
                                self.overwrite())
        self.state.total += 1
        if not kept or self.store.spool_count() >= self.limit():
            self.state.full = self.state.full or time.time()
        if not kept:
            log.warning("gem: spool full (%d): S%dF%d dropped", self.limit(), stream, function)
        self._save()

    def _unspool(self) -> None:
        size = self.batch() or None
        rows = self.store.spooled(size)
        for spool_id, stream, function, body in rows:
            if not self.link.communicating():
                return
            message = self.link.function(stream, function)()
            message.decode(body)
            if self.link.send(message) is None:
                log.warning("gem: spooled S%dF%d not acknowledged: kept", stream, function)
                return
            self.store.unspool([spool_id])
            self.sent += 1
        if self.store.spool_count() == 0:
            self._set_active(False)

    def _set_active(self, active: bool) -> None:
        if active == self.state.active:
            self._save()
            return
        self.state = SpoolState(active=True, start=time.time()) if active else SpoolState()
        self._save()
        log.info("gem: spooling %s", "activated" if active else "deactivated")
        self.on_spooling(active)

    def _save(self) -> None:
        self.store.put("e30.spool", asdict(self.state))
