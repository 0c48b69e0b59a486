"""What the sequencer needs from each tool: the subset of the driver API it uses.

Structural (``typing.Protocol``): the real drivers in ``drivers/`` satisfy them,
and so do the plain fakes in the unit tests. Enum results are compared by name
(see :func:`state_name`), so a fake may return plain strings.

The steps call these methods through a tool's handle, bound:
``await h.q(h.driver.apply_recipe, o2, …)`` (``sequencer.runner.steps.ToolHandle``), so the
type checker holds every call, its arguments and its result, to the Protocol here.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal, Protocol

Location = str  # "stocker" or a tool's name (its load position, chamber or cassette)
#: the LX-365 settings a recipe writes (``EXPosure:DOSE`` … ``RETicle:SELect``)
ExposureSetting = Literal["dose", "focus", "develop_time", "reticle"]


def state_name(state: Any) -> str:
    """``"READY"`` for a StrEnum, an IntEnum (the oven's) or a plain string."""
    name = getattr(state, "name", None)
    return str(name if isinstance(name, str) else state)


class ToolDriver(Protocol):
    """What every tool's driver has: the handle reconnects and reads through it."""

    @property
    def name(self) -> str: ...

    def connect(self) -> object: ...  # the SCPI drivers return the tool's *IDN?

    def close(self) -> None: ...

    def state(self) -> Any: ...

    def status(self) -> Any: ...

    def alarms(self) -> tuple[str, ...]: ...

    def clear_alarms(self) -> None: ...


class ScpiJobTool(ToolDriver, Protocol):
    """The part the exposure cell and the etcher share (job records, boot id, settings)."""

    def load(self, wafer_id: str) -> None: ...

    def unload(self) -> None: ...

    def abort(self) -> None: ...

    def get(self, name: str) -> Any: ...

    def get_many(self, names: Sequence[str]) -> dict[str, Any]: ...

    def last_job(self) -> Any: ...

    def records(self, wafer_id: str | None = None) -> Any: ...  # drivers.scpi.JobRecords

    def condition(self) -> tuple[Any, tuple[str, ...]]: ...  # (state, alarms), one line

    def job_count(self, wafer_id: str) -> int: ...

    def boot_id(self) -> int: ...


class ExposureProto(ScpiJobTool, Protocol):
    def remote(self) -> None: ...

    def set(self, name: ExposureSetting, value: float | int | str) -> None: ...

    def set_many(self, values: Mapping[ExposureSetting, float | int | str]) -> None: ...

    def start_exposure(self) -> None: ...

    def start_develop(self) -> None: ...

    def result(self) -> Any: ...  # ExposureResult(depth_um, residual_um, cd_um)


class EtcherProto(ScpiJobTool, Protocol):
    def apply_recipe(self, o2: float, cf4: float, pressure: float, rf_power: float,
                     etch_time: int, overetch: int, endpoint: bool, target: float) -> None: ...

    def start_etch(self) -> None: ...

    def etch_status(self) -> Any: ...  # EtchStatusLine(state, elapsed_s, endpoint_s)

    def etch_watch(self) -> tuple[Any, Any]: ...  # (etch_status(), readings()), one line

    def result(self) -> Any: ...  # EtchResult(removed_um, all_open)

    def oes_trace(self) -> list[float]: ...

    def readings(self) -> Any: ...  # EtcherReadings(pressure_mtorr, rf_forward_w, …, oes_o)


class OvenProto(ToolDriver, Protocol):
    def readings(self) -> Any: ...  # input registers alone: what a cure's poll needs

    def upload(self, program: Any) -> None: ...

    def start(self) -> None: ...

    def abort(self) -> None: ...

    def ack_alarms(self) -> None: ...

    def lock_door(self, locked: bool) -> None: ...

    def batch_no(self) -> int: ...


class MaterialHandling(Protocol):
    """Moves wafers between locations. A move of wafers already at ``to`` is a no-op
    (recovery re-issues a move whose outcome was not journaled)."""

    async def move(self, wafer_ids: list[str], to: Location) -> None: ...


@dataclass
class ToolSet:
    """The tools the sequencer drives, by name, with each one's kind, plus how to build an
    oven program.

    ``drivers`` maps a tool's name (its tools.yaml key: ``etcher``, ``etcher-2`` …) to its
    driver, in the line's order; ``kinds`` maps it to ``exposure`` | ``oven`` | ``etcher``.
    ``make_program(segments, o2_limit_ppm, n2_flow_slm, high_limit_c, unload_c, batch_no)``
    builds the driver's ``OvenProgram`` (``drivers.oven.OvenProgram`` in production);
    ``segments`` is a tuple of ``(target_c, ramp_c_per_min, soak_min)``.
    """

    drivers: dict[str, ToolDriver]
    kinds: dict[str, str]
    make_program: Any = None

    @classmethod
    def of_three(cls, exposure: ExposureProto, oven: OvenProto, etcher: EtcherProto,
                 make_program: Any = None) -> ToolSet:
        """The classic line: one tool of each kind, each named by its kind."""
        return cls({"exposure": exposure, "oven": oven, "etcher": etcher},
                   {"exposure": "exposure", "oven": "oven", "etcher": "etcher"}, make_program)
