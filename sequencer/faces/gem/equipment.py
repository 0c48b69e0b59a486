"""The secsgem equipment handler viaform serves: ``GemEquipment``.

secsgem 0.3's ``GemEquipmentHandler`` brings the HSMS protocol, the communication
state machine (S1F13/14) and the control state machine; viaform subclasses it (the
library's documented way: "inherit from this class and override required functions")
and serves its own tables (``tables``) in place of the library's dictionaries:
the ``_on_sXXfYY`` methods the handler's callback table finds by name are overridden
in the capability modules this class mixes in, and ``install_extensions`` lets each
module of ``extensions.EXTENSIONS`` register more through
``register_stream_function`` and ``settings.streams_functions.update``.

Callbacks run on secsgem's one dispatcher thread: each answers from memory, or hands
the work to the daemon's loop (``GemContext.call``) and waits a bounded time.
"""

from __future__ import annotations

import logging
from typing import Any

import secsgem.gem  # type: ignore[import-untyped]  # secsgem 0.3 ships no types
import secsgem.hsms  # type: ignore[import-untyped]

from sequencer.faces.gem.context import Extension, GemContext


class GemEquipment(secsgem.gem.GemEquipmentHandler):
    """viaform's GEM equipment; ``mdln``/``softrev`` as tools.yaml's ``gem:`` says."""

    def __init__(self, settings: secsgem.hsms.HsmsSettings, mdln: str, softrev: str,
                 initial_control_state: str = "ATTEMPT_ONLINE",
                 initial_online_control_state: str = "REMOTE") -> None:
        super().__init__(settings, initial_control_state, initial_online_control_state)
        self._mdln, self._softrev = mdln, softrev
        self.log = logging.getLogger("viaform.gem")

    def install_extensions(self, ctx: GemContext, extensions: tuple[Extension, ...]) -> None:
        """Run each extension's ``install(handler, ctx)``, before the port listens."""
        for install in extensions:
            install(self, ctx)

    def register(self, stream: int, function: int, callback: Any) -> None:
        """``register_stream_function`` (public): ``callback(handler, message)`` returns
        the reply function or None."""
        self.register_stream_function(stream, function, callback)
