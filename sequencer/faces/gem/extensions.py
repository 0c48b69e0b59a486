"""The GEM modules installed on the equipment handler at start (owned by the GEM300 part).

Each entry is a module-level ``install(handler, ctx)`` callable: it registers its own
stream/function callbacks (``handler.register_stream_function``) and the custom
SECS-II functions secsgem lacks (``handler.settings.streams_functions.update``), and
keeps ``ctx`` (``context.GemContext``) for everything it needs of the line. ``install``
runs before the HSMS port listens, on the daemon's event loop thread; it must not block.
"""

from __future__ import annotations

from sequencer.faces.gem.context import Extension

EXTENSIONS: tuple[Extension, ...] = ()
