"""The GEM modules installed on the equipment handler at start (owned by the GEM300 part).

Each entry is a module-level ``install(handler, ctx)`` callable: it registers its own
stream/function callbacks (``handler.register_stream_function``) and the custom
SECS-II functions secsgem lacks (``handler.settings.streams_functions.update``), and
keeps ``ctx`` (``context.GemContext``) for everything it needs of the line. ``install``
runs before the HSMS port listens, on the daemon's event loop thread; it must not block.

``install_gem300`` installs the whole GEM300 part: the S3/S14/S16/S10F5 functions
(``streams_functions``), S7 process programs on the line's recipes folder, S10 terminal
services, and the E87/E40/E94 objects sharing one ``material.Material`` (carriers are
the cassettes of the lots in the ``lots`` folder beside the recipes folder), following
their lots through the line's events.
"""

from __future__ import annotations

from typing import Any

from sequencer.faces.gem.carriers import Carriers
from sequencer.faces.gem.context import Extension, GemContext
from sequencer.faces.gem.control_jobs import ControlJobs
from sequencer.faces.gem.material import Material, provide_svs
from sequencer.faces.gem.process_jobs import ProcessJobs
from sequencer.faces.gem.programs import install_programs
from sequencer.faces.gem.streams_functions import register
from sequencer.faces.gem.terminal import install_terminal


def install_gem300(handler: Any, ctx: GemContext) -> None:
    register(handler.settings.streams_functions)
    recipes = ctx.line.recipes_dir()
    install_programs(handler, ctx, recipes)
    install_terminal(handler, ctx)
    material = Material(ctx, recipes.parent / "lots", recipes)
    Carriers(handler, ctx, material)
    jobs = ProcessJobs(handler, ctx, material)
    control = ControlJobs(handler, ctx, material, jobs)
    provide_svs(handler, material, jobs.space)
    ctx.on_line_event(control.follow)
    control.resync()


EXTENSIONS: tuple[Extension, ...] = (install_gem300,)
