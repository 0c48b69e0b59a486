"""The secsgem equipment handler viaform serves: ``GemEquipment``.

secsgem 0.3's ``GemEquipmentHandler`` brings the HSMS protocol, the communication
state machine (S1F13/14) and the control state machine; viaform subclasses it (the
library's documented way: "inherit from this class and override required functions")
and serves its own tables (``tables``) instead of the library's dictionaries: the
``_on_sXXfYY`` methods its callback table finds by name are overridden here and in
``e30_handlers`` (reports, alarms, spool, remote commands), and ``install_extensions``
lets each module of ``extensions.EXTENSIONS`` register more through
``register_stream_function`` and ``settings.streams_functions.update``.

What this class changes in secsgem's behaviour, and why:

- **dispatch** (``_handle_stream_function``): an S/F nobody handles gets S9F3 (unknown
  stream) or S9F5 (unknown function), a body that does not decode S9F7 (E5 §9);
  secsgem sent S9F5 for both and dropped a bad body without an answer. In
  EQUIPMENT/HOST OFFLINE every primary but S1F13/S1F17 gets SxF0 (E30 §4.2.2).
- **control state**: E30 transition 6 (HOST OFFLINE → EQUIPMENT OFFLINE, the operator's
  off-line switch), which secsgem's machine lacks, is added; the initial state is the
  journaled one (else tools.yaml's); every
  change is journaled (``e30.control``) and fires its collection event; a dropped
  connection takes ONLINE to HOST OFFLINE (secsgem never wires ``on_connection_closed``,
  so after a drop S1F17 answered ONLACK 2 for ever) — except while the daemon stops,
  so a restart comes back in the state it was in.
- its own report/CE threads (``trigger_collection_events`` spawns one per event and
  sends from it) are replaced by ``fire`` and the sender thread (``sender.Outbox``).

Callbacks run on secsgem's one dispatcher thread: each answers from memory, or hands
the work to the daemon's loop (``GemContext.call``) and waits a bounded time.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import secsgem.common  # type: ignore[import-untyped]  # secsgem 0.3 ships no types
import secsgem.gem  # type: ignore[import-untyped]
import structlog
from secsgem.gem.communication_state_machine import (  # type: ignore[import-untyped]
    CommunicationState,
)
from secsgem.gem.control_state_machine import ControlState  # type: ignore[import-untyped]

from sequencer.faces.gem.context import Extension, GemContext
from sequencer.faces.gem.e30_handlers import E30Handlers
from sequencer.faces.gem.model import E30Model
from sequencer.faces.gem.persist import GemStore

log = structlog.get_logger("viaform.gem")

#: secsgem's control states → E30 ControlState SV value and the event each fires
CONTROL: dict[Any, tuple[int, str]] = {
    ControlState.EQUIPMENT_OFFLINE: (1, "EquipmentOffline"),
    ControlState.ATTEMPT_ONLINE: (2, ""),
    ControlState.HOST_OFFLINE: (3, "HostOffline"),
    ControlState.ONLINE_LOCAL: (4, "ControlStateLocal"),
    ControlState.ONLINE_REMOTE: (5, "ControlStateRemote"),
}
ANSWERED_OFFLINE = frozenset({(1, 13), (1, 17)})
HOST_TO_EQUIPMENT_OFFLINE = "operator_offline_from_host_offline"


class IllegalData(ValueError):
    """A message body that does not decode as its S/F's structure (answered S9F7)."""


def initial_state(saved: object, configured: str) -> tuple[str, str]:
    """secsgem's (initial control state, online substate) from the journal or tools.yaml."""
    name = saved.get("state") if isinstance(saved, dict) else None
    online = saved.get("online") if isinstance(saved, dict) else None
    state = str(name) if isinstance(name, str) else configured
    sub = str(online) if online in ("LOCAL", "REMOTE") else "REMOTE"
    if state.startswith("ONLINE_"):
        return "ONLINE", state.removeprefix("ONLINE_")
    if state not in ("EQUIPMENT_OFFLINE", "ATTEMPT_ONLINE", "HOST_OFFLINE"):
        state = "EQUIPMENT_OFFLINE"
    return state, sub


class GemEquipment(E30Handlers, secsgem.gem.GemEquipmentHandler):
    """viaform's GEM equipment over ``model`` (tables, reports, ECs, the sender)."""

    def __init__(self, settings: Any, model: E30Model, store: GemStore,
                 configured_state: str, ctx: GemContext, wait_s: float = 10.0) -> None:
        state, sub = initial_state(store.get("e30.control"), configured_state)
        super().__init__(settings, state, sub)
        cs = self._control_state  # E30 transition 6, which secsgem's machine lacks
        cs._transitions.append(secsgem.common.Transition(
            HOST_TO_EQUIPMENT_OFFLINE, cs.host_offline, cs.equipment_offline))
        self.model = model
        self.store = store
        settings.establish_communication_timeout = int(  # the journaled EC, if set
            model.constants.get("EstablishCommunicationsTimeout"))
        self._mdln, self._softrev = model.mdln, model.softrev
        self.stopping = False
        self.previous_control = CONTROL.get(self._control_state.current, (0, ""))[0]
        for st in (self._control_state.equipment_offline, self._control_state.attempt_online,
                   self._control_state.host_offline, self._control_state.online_local,
                   self._control_state.online_remote):
            st.events.enter.register(self._control_entered)
        self._current_control = CONTROL.get(self._control_state.current, (0, ""))[0]
        self.protocol.events.disconnected += self._disconnected
        self.providers: dict[str, Callable[[], object]] = {}
        self.ctx = ctx
        self.audit = ctx.audit
        self.wait_s = wait_s
        self.commands: Any = None  # commands.RemoteCommands, set by the face

    def wait(self, coro: Any) -> Any:
        """Run ``coro`` on the daemon's loop and wait for it, at most ``wait_s``."""
        return self.ctx.call(coro).result(self.wait_s)

    # ---- extensions -------------------------------------------------------------------
    def install_extensions(self, ctx: GemContext, extensions: tuple[Extension, ...]) -> None:
        """Run each extension's ``install(handler, ctx)``, before the port listens."""
        for install in extensions:
            install(self, ctx)

    def provide(self, name: str, getter: Callable[[], object]) -> None:
        """An extension's SV (a row of its tables): ``getter()`` gives its value now."""
        self.providers[name] = getter

    def decode(self, message: Any) -> Any:
        """The message's function object; ``IllegalData`` (→ S9F7) if it does not decode."""
        try:
            return self.settings.streams_functions.decode(message)
        except Exception as exc:
            raise IllegalData(str(exc)) from None

    # ---- state ---------------------------------------------------------------------------
    @property
    def communicating(self) -> bool:
        return bool(self._communication_state.current == CommunicationState.COMMUNICATING)

    @property
    def control(self) -> Any:
        return self._control_state.current

    def control_value(self) -> int:
        return CONTROL.get(self._control_state.current, (0, ""))[0]

    @property
    def online(self) -> bool:
        return self.control in (ControlState.ONLINE_LOCAL, ControlState.ONLINE_REMOTE)

    def _control_entered(self, _: object) -> None:
        value, event = CONTROL.get(self._control_state.current, (0, ""))
        if value == self._current_control:
            return
        self.previous_control, self._current_control = self._current_control, value
        if not self.stopping:
            name = self._control_state.current.name
            sub = "LOCAL" if self._control_state.current == ControlState.ONLINE_LOCAL else (
                "REMOTE" if self._control_state.current == ControlState.ONLINE_REMOTE
                else self._control_state._online_control_state)
            self.store.put("e30.control", {"state": name, "online": sub})
            # every open screen redraws its header (a host's S1F15/S1F17, another page's switch)
            self.ctx.publish("gem_control", {"state": name, "online": sub})
        log.info("gem: control state %s", self._control_state.current.name)
        if event:
            self.model.fire(event, {})

    def _disconnected(self, _: object) -> None:
        if self.stopping:
            return
        self.on_connection_closed(None)

    def on_connection_closed(self, connection: object) -> None:
        """A dropped host: communication fails; ONLINE goes to HOST OFFLINE (E30 t10).
        A connection that never established communications (refused, garbage, T7)
        changes nothing."""
        was_communicating = self.communicating
        secsgem.gem.GemHandler.on_connection_closed(self, connection)
        if was_communicating and self.online:
            self._control_state.remote_offline()

    def trigger_collection_events(self, ceids: Any) -> None:
        """secsgem's own events (its CE ids) are not served; ``model.fire`` is."""

    # ---- the operator's side of the control state (on a worker thread: S1F1 waits) ------
    def operator(self, action: str) -> str:
        """``online``/``offline``/``local``/``remote``: the E30 operator switches; the
        resulting state's name. ``ValueError`` if the switch does not apply now."""
        cs = self._control_state
        moves: dict[str, tuple[tuple[Any, ...], Callable[[], None]]] = {
            "online": ((ControlState.EQUIPMENT_OFFLINE,), cs.switch_online),
            "offline": ((ControlState.ONLINE_LOCAL, ControlState.ONLINE_REMOTE,
                         ControlState.HOST_OFFLINE), self._switch_offline),
            "local": ((ControlState.ONLINE_REMOTE,), cs.switch_online_local),
            "remote": ((ControlState.ONLINE_LOCAL,), cs.switch_online_remote),
        }
        sources, move = moves[action]
        if cs.current not in sources:
            raise ValueError(f"gem {action}: the control state is {cs.current.name}")
        move()
        return str(cs.current.name)

    def _switch_offline(self) -> None:
        cs = self._control_state
        if cs.current == ControlState.HOST_OFFLINE:
            cs._perform_transition(HOST_TO_EQUIPMENT_OFFLINE)
        else:
            cs.switch_offline()

    # ---- dispatch ------------------------------------------------------------------------
    def _known_streams(self) -> set[int]:
        names = set(self._callback_handler) | {n[4:] for n in dir(self) if n.startswith("_on_s")}
        return {int(n[1:3]) for n in names if len(n) == 6 and n[0] == "s" and n[3] == "f"}

    def _handle_stream_function(self, message: Any) -> None:
        header = message.header
        stream, function = header.stream, header.function
        name = self._generate_sf_callback_name(stream, function)
        primary = function % 2 == 1
        if name not in self._callback_handler:
            if primary:
                fn = 3 if stream not in self._known_streams() else 5
                log.warning("gem: S%dF%d not handled: S9F%d", stream, function, fn)
                self.send_stream_function(self.stream_function(9, fn)(header.encode()))
            return
        if primary and not self.online and (stream, function) not in ANSWERED_OFFLINE:
            if header.require_response:
                self.send_response(self.stream_function(stream, 0)(), header.system)
            return
        try:
            result = getattr(self._callback_handler, name)(self, message)
        except IllegalData as exc:
            log.warning("gem: S%dF%d body does not decode (%s): S9F7", stream, function, exc)
            self.send_stream_function(self.stream_function(9, 7)(header.encode()))
            return
        except Exception:
            log.exception("gem: S%dF%d handler failed: SxF0", stream, function)
            self.send_response(self.stream_function(stream, 0)(), header.system)
            return
        if result is not None:
            self.send_response(result, header.system)

    def fire(self, event: str, values: Mapping[str, object]) -> None:
        self.model.fire(event, values)
