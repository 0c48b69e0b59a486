"""Manual commands on the engine: the driver method of the command's name, on the tool's
own worker thread (so it queues behind the step's calls, never beside them), with the
drivers' errors turned into the line's (``LineError``: 409 / 422 / 503) and the reply
into JSON (dataclasses → objects, enums → names)."""

from __future__ import annotations

import dataclasses
import enum
import time
from collections.abc import Callable, Mapping
from typing import Any

from drivers.errors import CommsError, ToolError, ValidationError
from drivers.errors import ToolRejected as DriverRejected
from sequencer.faces.http.commands import COMMANDS
from sequencer.faces.http.contract import (
    Conflict,
    LineError,
    ToolRejected,
    ToolUnreachable,
)

SCALARS = (str, int, float, bool, type(None))


class Invalid(LineError):
    """The tool's driver refused the value before sending it (the manual's range)."""

    status = 422


def jsonable(value: Any) -> Any:
    """A driver's reply as JSON: dataclasses as objects, enums and flags as names."""
    if isinstance(value, enum.Flag) and not isinstance(value, enum.IntEnum):
        names = getattr(value, "names", None)
        return list(names()) if callable(names) else str(value.name)
    if isinstance(value, enum.Enum):
        return value.name
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: jsonable(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, Mapping):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [jsonable(v) for v in value]
    if isinstance(value, SCALARS):
        return value
    return str(value)


def reply_of(value: Any) -> Any:
    """``ManualReply.reply``: a scalar, an object, or a list of scalars (a list of pairs,
    such as the error queue's ``(code, text)``, becomes ``"code text"`` lines)."""
    out = jsonable(value)
    if isinstance(out, list):
        return [v if isinstance(v, SCALARS) else
                " ".join(str(x) for x in v) if isinstance(v, list) else str(v) for v in out]
    return out


async def run_manual(handle: Any, command: str, args: Mapping[str, Any],
                     emit: Callable[[str, float, str], None]) -> Any:
    """Run one checked command (``line.check_command``) on ``handle``'s driver; the reply
    as JSON. ``emit(command, duration_s, outcome)`` hears it for the metrics."""
    if handle.comms != "OK":
        raise ToolUnreachable(f"{handle.name}: connection {handle.comms.lower()}; "
                              f"the daemon is reconnecting")
    spec = COMMANDS[command]
    driver = handle.driver
    if command in ("get", "set"):
        settings = getattr(driver, "settings", {})
        if args["name"] not in settings:
            raise Invalid(f"{handle.name}: unknown setting {args['name']!r}; settings: "
                          f"{', '.join(settings)}")
    call_args = [args[name] for name, _ in spec.args]
    start, outcome = time.perf_counter(), "error"
    try:
        value = await handle.worker.call(getattr(driver, command), *call_args)
        outcome = "ok"
    except ValidationError as exc:
        outcome = "invalid"
        raise Invalid(str(exc)) from None
    except DriverRejected as exc:
        outcome = "rejected"
        raise ToolRejected(str(exc), exc.code) from None
    except CommsError as exc:
        raise ToolUnreachable(str(exc)) from None
    except ToolError as exc:
        raise Conflict(str(exc)) from None
    except (TypeError, ValueError) as exc:  # a value of a type the driver cannot take
        outcome = "invalid"
        raise Invalid(f"{handle.name} {command}: {exc}") from None
    finally:
        emit(command, time.perf_counter() - start, outcome)
    if command in ("status",) and hasattr(handle, "note"):
        handle.note(command, value)
    return reply_of(value)
