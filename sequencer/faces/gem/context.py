"""What a GEM module sees of the daemon: ``GemContext`` (the face implements it).

Threads: secsgem runs every stream/function callback on its one dispatcher thread;
the line (``LineControl``) lives on the daemon's event loop. A callback never touches
the line's async methods directly: it hands a coroutine to ``call`` and, if it must
answer with the outcome, waits on the returned future for a short, bounded time (the
daemon's own calls answer in milliseconds; a callback that waits for a reply from the
host stalls every other message for up to T3). Query methods of ``line`` (plain
``def``) answer from memory and may be called from the dispatcher thread.

``emit`` and ``alarm`` never block: the report is built at once (the values are the
event's, the SVs the current ones) and queued to a sender thread, or spooled in the
journal while no host is connected (E30 spooling), so it may be called from the
event loop or from the dispatcher thread alike.
"""

from __future__ import annotations

import concurrent.futures
from collections.abc import Callable, Coroutine, Mapping
from contextlib import AbstractContextManager
from typing import Any, Protocol, TypeVar

from sequencer.faces.http.contract import LineControl, LineEvent

T = TypeVar("T")
JSON = None | bool | int | float | str | list[Any] | dict[str, Any]


class StateStore(Protocol):
    """GEM state in the journal file (table ``gem_state``), keyed by a dotted name.

    ``put`` is on the disk when it returns (synchronous=FULL); ``atomic()`` groups
    several ``put`` into one transaction (a crash leaves all or none). Keys used by
    the E30 part start with ``e30.``; a module uses a prefix of its own (``e87.``, …).
    """

    def get(self, key: str) -> JSON | None: ...

    def put(self, key: str, value: JSON) -> None: ...

    def delete(self, key: str) -> None: ...

    def keys(self, prefix: str) -> list[str]: ...

    def atomic(self) -> AbstractContextManager[None]: ...


class GemContext(Protocol):
    """The seam between a GEM module and the line; implemented by ``face.GemFace``."""

    @property
    def line(self) -> LineControl: ...

    @property
    def store(self) -> StateStore: ...

    def call(self, coro: Coroutine[Any, Any, T]) -> concurrent.futures.Future[T]:
        """Run ``coro`` on the daemon's event loop (from any thread)."""

    def emit(self, event_name: str, values: Mapping[str, object]) -> None:
        """Fire the collection event named ``event_name`` (a row of the CE table), with
        ``values`` = DV name → value; a DV the event carries but ``values`` lacks is sent
        empty. Spooled when the host is away. ``KeyError`` for an unknown name."""

    def alarm(self, name: str, set: bool, text: str | None = None) -> None:
        """Set or clear the alarm named ``name`` (a row of the alarm table): S5F1 if the
        host enabled it, and its set/clear collection event. ``text`` is the detail for
        the event's AlarmText DV (ALTX stays the row's fixed text)."""

    def remote_refusal(self) -> int | None:
        """``None`` in ONLINE REMOTE; else the HCACK to answer a remote command with
        (2, cannot perform now: ONLINE LOCAL, HOST OFFLINE or EQUIPMENT OFFLINE)."""

    def audit(self, who: str, action: str, detail: Mapping[str, object]) -> None:
        """One entry in the daemon's audit log (tool ``gem``), outcome ok."""

    def terminal_to_host(self, text: str) -> None:
        """Send ``text`` to the host as S10F1 (terminal 0) from a worker; never blocks.
        Dropped with a log line when no host is communicating."""

    def note_message(self, source: str, text: str) -> None:
        """One terminal message in the journal's S10 log (``viaform gem messages``);
        ``terminal_to_host`` notes its own (source ``equipment``), a host's S10F3/F5 is
        noted by the GEM300 part's terminal module (source ``host``)."""

    def send_to_host(self, message: Any) -> None:
        """Queue a primary message (a secsgem function object, e.g. S16F9) for the host:
        sent in order with the reports by the sender thread; never blocks. Spooled while
        no host communicates only if its stream is enabled for spooling (S2F43)."""

    def publish(self, kind: str, data: Mapping[str, object]) -> None:
        """Show an event of the GEM face's own on the daemon's event stream (SSE
        ``/events``, the operator's screen), e.g. a host's terminal message; from any
        thread, never blocks."""

    def on_line_event(self, listener: Callable[[LineEvent], None]) -> None:
        """Call ``listener`` with every line event, after the face's own reports of it
        (on the daemon's loop, in the pump: it must not block or await)."""


#: ``extensions.EXTENSIONS`` entries: ``install(handler, ctx)`` (handler: the secsgem
#: ``GemEquipment``; typed ``Any`` here so a module need not import equipment.py)
Extension = Callable[[Any, GemContext], None]
