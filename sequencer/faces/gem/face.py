"""``GemFace``: the SECS/GEM interface as a daemon face, and the ``GemContext`` it gives.

``viaform daemon`` builds it when ``gem.enabled`` (tools.yaml) with the HSMS listen
socket already bound; ``create_app`` starts it after the line (``start``), feeds it
every line event (``observe``, on the event loop: it builds the reports and queues
them, never blocks) and stops it before the line (``stop``).

Start order, so that the first host message is answered from restored state: the
journal's GEM state (reports, links, enables, ECs, control state, spool) is read, the
ECs the line applies are re-applied, the line's active alarms are marked set, the
extensions are installed, the sender starts, and only then does the port accept.

Stop: the handler is marked stopping (the host's drop that follows is not journaled as
a control-state change), the sender finishes what is queued (bounded), the port and the
session are closed (our connection never hangs in ``disable``), the store is closed.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import socket
import sys
import time
from collections.abc import Callable, Coroutine, Mapping
from pathlib import Path
from typing import Any, TypeVar

import structlog
from fastapi import APIRouter

from sequencer.faces.gem import e30_functions
from sequencer.faces.gem.commands import RemoteCommands
from sequencer.faces.gem.config import timers
from sequencer.faces.gem.context import JSON, StateStore
from sequencer.faces.gem.equipment import GemEquipment
from sequencer.faces.gem.extensions import EXTENSIONS
from sequencer.faces.gem.hsms_server import GemHsmsSettings
from sequencer.faces.gem.http_routes import gem_routes
from sequencer.faces.gem.line_events import Translator
from sequencer.faces.gem.model import E30Model
from sequencer.faces.gem.persist import GemStore
from sequencer.faces.gem.sender import Link, Outbox
from sequencer.faces.gem.tables import build
from sequencer.faces.gem.terminal import ascii_text
from sequencer.faces.http.contract import LineControl, LineEvent
from sequencer.faces.http.e10 import E10Tracker
from sequencer.faces.http.faces import RouteKit
from sequencer.line.tools_schema import Gem
from sequencer.store.audit import AuditLog

log = structlog.get_logger("viaform.gem")
T = TypeVar("T")
MESSAGES_KEY = "terminal.messages"  # the S10 log both directions append to (GEM300 too)
MAX_MESSAGES = 200
ENGINE_WAIT_S = 10.0
#: CPython hands the GIL to a waiting thread after this long (default 5 ms): an event report
#: crosses three threads (engine → loop → sender), each may wait that long for the GIL
SWITCH_INTERVAL_S = 0.001


class GemFace:
    def __init__(self, gem: Gem, listen: socket.socket, journal: Path | str, audit: AuditLog,
                 recipes_dir: Path | str | None = None) -> None:
        self.gem = gem
        self.listen = listen
        self.journal = journal
        self.audit_log = audit
        self.recipes_dir = recipes_dir
        self._line: LineControl | None = None
        self._store: GemStore | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self.handler: GemEquipment | None = None
        self.model: E30Model | None = None
        self.outbox: Outbox | None = None
        self._e10 = E10Tracker()
        self._translator: Translator | None = None
        self._listeners: list[Callable[[LineEvent], None]] = []  # GemContext.on_line_event
        self._publish: Callable[[LineEvent], None] | None = None  # RouteKit.publish

    # ---- GemContext ---------------------------------------------------------------------
    @property
    def line(self) -> LineControl:
        assert self._line is not None, "start() first"
        return self._line

    @property
    def store(self) -> StateStore:
        assert self._store is not None, "start() first"
        return self._store

    def call(self, coro: Coroutine[Any, Any, T]) -> concurrent.futures.Future[T]:
        assert self._loop is not None, "start() first"
        return asyncio.run_coroutine_threadsafe(coro, self._loop)

    def emit(self, event_name: str, values: Mapping[str, object]) -> None:
        self._model().fire(event_name, values)

    def alarm(self, name: str, set: bool, text: str | None = None) -> None:
        self._model().alarm(name, set, text)

    def remote_refusal(self) -> int | None:
        h = self._handler()
        return None if h.control_value() == 5 else 2

    def audit(self, who: str, action: str, detail: Mapping[str, object]) -> None:
        self.audit_log.record(who, "host" if who == "host" else "gem", "gem", action,
                              dict(detail), "ok", None)

    def terminal_to_host(self, text: str) -> None:
        text = ascii_text(text)  # secsgem's TEXT takes no "–", "°", "→" (they raised here)
        self.note_message("equipment", text)
        self._box().put(self._handler().stream_function(10, 1)({"TID": 0, "TEXT": text}))

    def send_to_host(self, message: Any) -> None:
        self._box().put(message)

    def on_line_event(self, listener: Callable[[LineEvent], None]) -> None:
        self._listeners.append(listener)

    def publish(self, kind: str, data: Mapping[str, object]) -> None:
        if self._publish is not None and self._loop is not None and not self._loop.is_closed():
            event = LineEvent(kind=kind, t=time.time(), data=dict(data))
            self._loop.call_soon_threadsafe(self._publish, event)

    def note_message(self, source: str, text: str) -> None:
        """One terminal message (either way) in the journal's S10 log."""
        store = self.store
        with store.atomic():
            messages = store.get(MESSAGES_KEY)
            log_: list[JSON] = list(messages) if isinstance(messages, list) else []
            log_.append({"t": time.time(), "from": source, "text": text})
            store.put(MESSAGES_KEY, log_[-MAX_MESSAGES:])

    # ---- DaemonFace -----------------------------------------------------------------------
    async def start(self, line: LineControl) -> None:
        logging.getLogger("communication").setLevel(logging.WARNING)  # secsgem dumps at INFO
        sys.setswitchinterval(SWITCH_INTERVAL_S)
        self._line, self._loop = line, asyncio.get_running_loop()
        store = self._store = await asyncio.to_thread(GemStore, self.journal)
        tables = build(line.tools())
        active = [(a.id, a.tool) for a in line.alarms(active_only=True)]
        for tool in line.tools():
            self._e10.track(line.tool_status(tool), active)
        model = self.model = E30Model(tables, store, line, self._e10.state, self.gem.mdln,
                                      self.gem.softrev)
        t = timers(self.gem)
        settings = GemHsmsSettings(self.listen, self.gem.allow_hosts,
                                   self.gem.max_message_bytes, session_id=self.gem.device_id,
                                   t3=t.t3, t5=t.t5, t6=t.t6, t7=t.t7, t8=t.t8)
        e30_functions.install(settings)
        handler = self.handler = GemEquipment(settings, model, store,
                                              self.gem.initial_control_state, self,
                                              ENGINE_WAIT_S)
        handler.commands = RemoteCommands(self, self.recipes_dir)
        outbox = self.outbox = Outbox(
            Link(lambda: handler.communicating, lambda: handler.online,
                 handler.send_and_waitfor_response, handler.stream_function,
                 handler.protocol.post, t.t3),
            store, limit=lambda: int(model.constants.get("SpoolMax")),
            overwrite=lambda: bool(model.constants.get("OverWriteSpool")),
            batch=lambda: int(model.constants.get("MaxSpoolTransmit")),
            on_spooling=lambda on: model.fire(
                "SpoolingActivated" if on else "SpoolingDeactivated", {}))
        model.attach(handler, outbox)
        self._translator = Translator(line)
        for name, _ in self._translator.restore_alarms():
            model.alarms_set.add(tables.alarm_by_name[name].alid)
        for name, value in model.constants.restored().items():
            await line.set_constant(name, value, "gem (journaled EC)")
        handler.install_extensions(self, EXTENSIONS)
        outbox.start()
        handler.enable()
        host, port = self.listen.getsockname()[:2]
        log.info("gem: HSMS passive on %s:%d, device id %d, %s", host, port,
                 self.gem.device_id, handler.control.name)

    def observe(self, event: LineEvent) -> None:
        if self.model is None or self._translator is None:
            return
        if event.kind != "e10":
            self._e10.observe(event)
        meaning = self._translator.translate(event)
        for name, on, text, values in meaning.alarms:
            self.model.alarm(name, on, text, values)
        for name, values in meaning.events:
            self.model.fire(name, values)
        for listener in self._listeners:
            listener(event)

    async def stop(self) -> None:
        if self.handler is None:
            return
        self.handler.stopping = True
        await asyncio.to_thread(self._shutdown)

    def _shutdown(self) -> None:
        assert self.handler is not None
        if self.outbox is not None:
            self.outbox.stop()
        self.handler.disable()
        if self._store is not None:
            self._store.close()
        log.info("gem: stopped")

    # ---- the operator's controls (HTTP routes, `viaform gem …`) -------------------------
    async def operate(self, action: str) -> str:
        """online/offline/local/remote; ``ValueError`` if it does not apply now. On a
        worker thread: going online asks the host S1F1 and waits for it (up to T3)."""
        return await asyncio.to_thread(self._handler().operator, action)

    async def switch(self, action: str, who: str, role: str) -> str:
        """The operator's E30 switch (``viaform gem …``, ``POST /gem/{action}``, the
        screen's header): audited (tool ``gem``) with the state before, refusals too;
        the new control state, or ``ValueError`` saying why it does not apply now."""
        before = self.status()["control_state"]
        entry = self.audit_log.begin(who, role, "gem", action, {"from": before})
        try:
            state = await self.operate(action)
        except ValueError as exc:
            self.audit_log.finish(entry, "refused", str(exc))
            raise
        self.audit_log.finish(entry, "ok", state)
        return state

    def status(self) -> dict[str, Any]:
        h, box = self._handler(), self._box()
        conn = h.protocol._connection  # our PassiveServer (hsms_server.py)
        return {"enabled": True, "control_state": h.control.name,
                "communicating": h.communicating, "host": conn.peer if h.communicating else None,
                "sessions": conn.sessions, "port": self.listen.getsockname()[1],
                "device_id": self.gem.device_id, "spooling": box.state.active,
                "spooled": self.store_count(), "sent": box.sent}

    def store_count(self) -> int:
        assert self._store is not None
        return self._store.spool_count()

    def messages(self) -> list[dict[str, Any]]:
        saved = self.store.get(MESSAGES_KEY)
        return [m for m in saved if isinstance(m, dict)] if isinstance(saved, list) else []

    def routes(self, kit: RouteKit) -> APIRouter:
        self._publish = kit.publish
        return gem_routes(self, kit)

    def _handler(self) -> GemEquipment:
        assert self.handler is not None, "start() first"
        return self.handler

    def _model(self) -> E30Model:
        assert self.model is not None, "start() first"
        return self.model

    def _box(self) -> Outbox:
        assert self.outbox is not None, "start() first"
        return self.outbox
