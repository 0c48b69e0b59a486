"""``mount_screen(app, core)``: the screen's routes and static files on the daemon's app."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from fastapi import FastAPI
from starlette.staticfiles import StaticFiles

from sequencer.faces.http.core import DaemonCore
from sequencer.faces.screen.actions import actions_router
from sequencer.faces.screen.pages import pages_router
from sequencer.faces.screen.shell import Screen

STATIC = Path(__file__).resolve().parent / "static"


def mount_screen(app: FastAPI, core: DaemonCore, faces: Sequence[object] = ()) -> Screen:
    """Add the screen to ``app``; the returned ``Screen`` has the sessions (for the gate)
    and its own faces for the event pump (``screen.faces``). ``faces``: the daemon's other
    faces (the GEM face's E30 control state goes in the header)."""
    screen = Screen(core, faces)
    app.include_router(pages_router(screen))
    app.include_router(actions_router(screen))
    app.mount("/ui/static", StaticFiles(directory=STATIC), name="screen-static")
    return screen
