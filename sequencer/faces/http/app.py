"""The daemon's app (FastAPI): the HTTP/JSON API, the operator's screen, other faces.

``create_app(line, auth, audit)`` wires the API (api.py) to anything that implements
``LineControl``. Every request first passes the gate (gate.py: a cross-site
state-changing request is refused with 403, then a route's token and role are
checked, 401/403, before its body is read; nothing changes), then is validated
(422 with every problem, nothing half-applied), then the line is asked.
The line's events are pumped, on the app's event loop, into the E10 tracker,
the metrics, the SSE fan-out and the other faces (``faces=``: the GEM interface).
OpenAPI: ``/openapi.json``, docs at ``/docs``.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import structlog
from fastapi import FastAPI

from sequencer.faces.http.api import api_router, require
from sequencer.faces.http.auth import AuthConfig
from sequencer.faces.http.contract import LineControl, LineEvent
from sequencer.faces.http.core import DaemonCore
from sequencer.faces.http.errors import install_error_handlers
from sequencer.faces.http.faces import DaemonFace, RoutedFace, RouteKit
from sequencer.faces.http.gate import Gate, document_security
from sequencer.faces.http.metrics import LineMetrics, Scrape
from sequencer.faces.screen.mount import mount_screen
from sequencer.store.audit import AuditLog

log = structlog.get_logger("viaform.daemon")


def create_app(line: LineControl, auth: AuthConfig, audit: AuditLog, *,
               recipes_dir: Path | str | None = None,
               clock: Callable[[], float] = time.time,
               faces: Sequence[DaemonFace] = (),
               journal: Path | None = None) -> FastAPI:
    """The daemon's app. ``journal``: the journal file the screen reads traces from."""
    core = DaemonCore(line, auth, audit, clock=clock, recipes_dir=recipes_dir,
                      journal=journal)
    e10, hub = core.e10, core.hub

    def scrape() -> Scrape:
        return Scrape(e10={t: (v.state, v.seconds) for t in e10.tools() for v in [e10.view(t)]},
                      lot_states=[lt.state for lt in line.lots()],
                      active_alarms=len(line.alarms(active_only=True)),
                      subscribers=hub.subscribers)
    metrics = LineMetrics(core.started, scrape)

    def fan_out(event: LineEvent) -> None:
        hub.publish(event)
        for face in faces:
            face.observe(event)

    async def pump() -> None:
        while True:
            try:
                async for event in line.events():
                    metrics.observe(event)
                    change = e10.observe(event)
                    fan_out(event)
                    if change is not None:
                        fan_out(LineEvent(kind="e10", t=change.t, tool=change.tool,
                                          data={"state": change.state,
                                                "previous": change.previous}))
            except asyncio.CancelledError:
                raise
            except Exception:  # the daemon never dies of a bad event
                log.exception("event pump failed; restarting")
                await asyncio.sleep(1.0)

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        hub.open()
        await line.start()
        active = [(a.id, a.tool) for a in line.alarms(active_only=True)]
        for tool in line.tools():
            e10.track(line.tool_status(tool), active)
        task = asyncio.create_task(pump())
        for face in faces:
            await face.start(line)
        log.info("daemon started", auth="open" if auth.open else "tokens")
        try:
            yield
        finally:
            hub.close()
            for face in faces:
                await face.stop()
            await line.stop()
            task.cancel()
            log.info("daemon stopped")

    app = FastAPI(title="viaform daemon", version="1", lifespan=lifespan,
                  description=__doc__)
    screen = mount_screen(app, core, faces)  # the operator's pages, /ui/… and /
    faces = [*faces, *screen.faces]  # the pump's closures see this list
    api = api_router(core, metrics)
    kit = RouteKit(require=lambda role: require(core, role), role_of=core.role_of,
                   publish=hub.publish)
    for face in faces:  # a face's own routes (the GEM controls), behind the same gate
        if isinstance(face, RoutedFace):  # added one by one: the gate matches plain routes
            api.routes.extend(face.routes(kit).routes)
    app.include_router(api)
    install_error_handlers(app)
    app.add_middleware(Gate, auth=auth, routes=api.routes, sessions=screen.sessions)
    generated = app.openapi

    def openapi() -> dict[str, Any]:
        doc = generated()
        document_security(doc, api.routes, auth.open)
        return doc

    # FastAPI's documented way to extend the schema: replace the method on the app
    app.openapi = openapi  # type: ignore[method-assign]
    return app
