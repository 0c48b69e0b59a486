"""The schema of ``tools.yaml``: every key viaform reads, its type and its bounds.

Every model forbids unknown keys, so a misspelt key (``timout_s``, ``jornal``,
``exposre``) is refused instead of silently falling back to a default. The
keys are the ones the code reads: the drivers' ``from_config``
(drivers/exposure.py, drivers/etcher.py, drivers/oven.py), the steps' ``poll_s``,
the simulators' ``sim:`` sections (``sim_ports`` in sequencer/line/simhost.py), the
control port (``sim_control``) and the daemon's ``daemon:`` section
(sequencer/faces/cli/client.py) and its ``gem:`` section (sequencer/faces/gem/config.py,
where these defaults are the ones read). Defaults here are only documentation: the loader
keeps each tool's mapping as written, and the readers apply their own defaults.
A key added to the code must be added here, or a tools file using it is refused.

Several tools of a kind: any further top-level key whose mapping has ``kind: exposure |
oven | etcher`` is a tool of that kind, named by its key, read through that kind's model
(``KIND_MODELS``); the three keys ``exposure``, ``oven``, ``etcher`` keep their meaning
with the kind implied by the name. ``sequencer.line.config`` splits the document so.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

Port = Annotated[int, Field(ge=1, le=65535)]
ListenPort = Annotated[int, Field(ge=0, le=65535)]  # 0: any free port (the simulators)
Seconds = Annotated[float, Field(gt=0, allow_inf_nan=False)]
Baud = Annotated[int, Field(gt=0)]
Text = Annotated[str, Field(min_length=1)]


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid")


class SimAddress(_Section):
    """``sim:`` of a tool: where `viaform sim` serves its simulator (tests use ``pty``)."""

    host: Text = "127.0.0.1"
    port: ListenPort | None = None


class EtcherSim(SimAddress):
    pty: bool = True  # also serve the RS-232 side on a pty


class OvenSim(SimAddress):
    rtu_pty: bool = True  # also serve Modbus RTU on a pty


Kind = Literal["exposure", "oven", "etcher"]


class Exposure(_Section):
    """LX-365 exposure cell, SCPI over TCP through pyvisa."""

    kind: Literal["exposure"] | None = None  # implied by the key ``exposure``
    resource: Text  # e.g. TCPIP0::127.0.0.1::5025::SOCKET
    timeout_s: Seconds = 2.0  # wall seconds for one command/reply
    poll_s: Seconds = 0.5  # tool seconds between state polls
    sim: SimAddress | None = None


class Etcher(_Section):
    """PE-200 plasma etcher, SCPI over RS-232 (a pyserial URL or device path)."""

    kind: Literal["etcher"] | None = None  # implied by the key ``etcher``
    url: Text
    baudrate: Baud = 9600
    timeout_s: Seconds = 2.0
    poll_s: Seconds = 0.5
    pty: str | None = None  # the simulator's pty path (written by tools_config_for; tests)
    sim: EtcherSim | None = None


class Oven(_Section):
    """CV-25 cure oven, Modbus TCP or RTU."""

    kind: Literal["oven"] | None = None  # implied by the key ``oven``
    transport: Literal["tcp", "rtu"] = "tcp"
    host: Text = "127.0.0.1"
    port: Port = 502
    unit: Annotated[int, Field(ge=1, le=247)] = 1
    serial_port: str | None = None
    baudrate: Baud = 19200
    timeout_s: Seconds = 2.0
    poll_s: Seconds = 5.0
    sim: OvenSim | None = None

    @model_validator(mode="after")
    def _rtu_needs_a_port(self) -> Oven:
        if self.transport == "rtu" and not self.serial_port:
            raise ValueError("transport rtu needs serial_port (a serial device path)")
        return self


class SimControl(_Section):
    """The simulators' control port (world, faults, transfers); 0 only for `viaform sim`."""

    host: Text = "127.0.0.1"
    port: ListenPort = 5030


class Daemon(_Section):
    """Where clients find the daemon (``url``) and where it listens (``bind``)."""

    url: Annotated[str, Field(pattern=r"^https?://\S+$")] | None = None
    bind: Annotated[str, Field(pattern=r"^(\[[0-9A-Fa-f:.]+\]|[^\s:\[\]]*):\d{1,5}$")] | None = None


class GemTimers(_Section):
    """HSMS timers (E37 §10; the standard defaults), seconds."""

    t3: Annotated[float, Field(ge=1, le=120)] = 45.0  # reply
    t5: Annotated[float, Field(ge=1, le=240)] = 10.0  # connect separation
    t6: Annotated[float, Field(ge=1, le=240)] = 5.0  # control transaction
    t7: Annotated[float, Field(ge=1, le=240)] = 10.0  # not selected
    t8: Annotated[float, Field(ge=1, le=120)] = 5.0  # network intercharacter


class Gem(_Section):
    """The SECS/GEM equipment interface ``viaform daemon`` serves (docs/gem.md)."""

    enabled: bool = False
    port: ListenPort = 5000  # HSMS passive; 0: any free port (tests)
    bind: Text = "127.0.0.1"  # beyond loopback it needs allow_hosts
    device_id: Annotated[int, Field(ge=0, le=32767)] = 0
    mdln: Annotated[str, Field(max_length=20)] = "viaform"
    softrev: Annotated[str, Field(max_length=20)] = "1"
    initial_control_state: Literal["EQUIPMENT_OFFLINE", "ATTEMPT_ONLINE", "HOST_OFFLINE",
                                   "ONLINE_LOCAL", "ONLINE_REMOTE"] = "EQUIPMENT_OFFLINE"
    allow_hosts: list[Text] | None = None  # host addresses; others are dropped at connect
    max_message_bytes: Annotated[int, Field(ge=1024, le=64 * 1024 * 1024)] = 4 * 1024 * 1024
    timers: GemTimers | None = None


class ToolsFile(_Section):
    """The whole tools.yaml."""

    time_scale: Annotated[float, Field(gt=0, allow_inf_nan=False)] = 1.0
    journal: Text = "var/viaform.db"  # relative to this file's directory
    handling: Literal["sim", "operator"] = "sim"
    handling_timeout_s: Seconds = 3600.0
    sim_control: SimControl | None = None
    daemon: Daemon | None = None
    gem: Gem | None = None
    exposure: Exposure | None = None
    etcher: Etcher | None = None
    oven: Oven | None = None


#: a tool's kind → the schema of its entry (an entry with ``kind:`` under any other key)
KIND_MODELS: dict[str, type[_Section]] = {"exposure": Exposure, "etcher": Etcher, "oven": Oven}
KINDS = tuple(KIND_MODELS)


class ExtraTool(_Section):
    """The one key every further tool's entry must have first: which kind of tool it is."""

    kind: Kind


def known_keys(path: tuple[str, ...], kinds: dict[str, str] | None = None) -> list[str]:
    """The keys the schema allows in the mapping at ``path`` ([] if it is not a mapping);
    ``kinds`` names the further tools (key → kind), read through their kind's model."""
    model: type[BaseModel] = ToolsFile
    if path and kinds and path[0] in kinds and kinds[path[0]] in KIND_MODELS:
        model, path = KIND_MODELS[kinds[path[0]]], path[1:]
    for key in path:
        field = model.model_fields.get(key)
        sub = _model_of(field.annotation) if field else None
        if sub is None:
            return []
        model = sub
    return list(model.model_fields)


def _model_of(annotation: object) -> type[BaseModel] | None:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for arg in getattr(annotation, "__args__", ()):
        found = _model_of(arg)
        if found is not None:
            return found
    return None
