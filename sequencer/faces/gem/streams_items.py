"""The SECS-II data items of E87/E40/E94 that secsgem 0.3 lacks, as secsgem data items.

Each is a ``secsgem.secs.data_items.DataItemBase`` subclass with the format E5 gives
it (a Dynamic item lists the formats it accepts, the first being what a plain Python
value is sent as). The functions in ``streams_carrier`` / ``streams_jobs`` /
``streams_terminal`` are written with these classes (secsgem's Python-list data
format), not in SFDL text: its SFDL parser looks names up in secsgem's own module only.

``any_value`` wraps a Python value for an item that may hold a list (CATTRDATA,
ATTRDATA, RCPPARVAL): secsgem's Dynamic cannot take a plain list (it tries
``Array()`` without a format), so lists go as ``Array(ANYVALUE, …)``, recursively.
"""

from __future__ import annotations

from typing import Any

from secsgem.secs import variables  # type: ignore[import-untyped]  # secsgem ships no types
from secsgem.secs.data_items import DataItemBase  # type: ignore[import-untyped]
from secsgem.secs.variables.dynamic import ANYVALUE  # type: ignore[import-untyped]

_UNSIGNED = [variables.U1, variables.U2, variables.U4, variables.U8]
_ANY = [variables.Array, variables.Boolean, *_UNSIGNED, variables.I1, variables.I2,
        variables.I4, variables.I8, variables.F4, variables.F8, variables.String,
        variables.Binary]


def any_value(value: Any) -> Any:
    """``value`` as secsgem can send it in an item that allows lists (see module doc)."""
    if isinstance(value, list | tuple):
        return variables.Array(ANYVALUE, [any_value(v) for v in value])
    return value


# --- E87 carriers (S3F17/F18, S3F27/F28) -------------------------------------------------
class CARRIERACTION(DataItemBase):
    """E87 carrier action: ProceedWithCarrier, CancelCarrier, CarrierReCreate, …"""

    name = "CARRIERACTION"
    __type__ = variables.String


class CARRIERSPEC(DataItemBase):
    """The carrier's object specifier (its CarrierID)."""

    name = "CARRIERSPEC"
    __type__ = variables.String


class CARRIERID(DataItemBase):
    name = "CARRIERID"
    __type__ = variables.String


class PTN(DataItemBase):
    """Load port number (E87: U1, 1-based)."""

    name = "PTN"
    __type__ = variables.Dynamic
    __allowedtypes__ = list(_UNSIGNED)


class CATTRID(DataItemBase):
    """Carrier attribute name (SlotMap, ContentMap, Capacity, SubstrateCount, Usage)."""

    name = "CATTRID"
    __type__ = variables.String


class CATTRDATA(DataItemBase):
    name = "CATTRDATA"
    __type__ = variables.Dynamic
    __allowedtypes__ = list(_ANY)


class CAACK(DataItemBase):
    """Carrier action acknowledge: 0 ok, 1 invalid command, 2 cannot perform now,
    3 invalid data or argument, 4 will be performed (completion by event),
    5 rejected (invalid state), 6 performed with errors."""

    name = "CAACK"
    __type__ = variables.U1
    __count__ = 1


class ACCESSMODE(DataItemBase):
    """Load port access mode: 0 manual, 1 auto."""

    name = "ACCESSMODE"
    __type__ = variables.U1
    __count__ = 1


# --- E40 process jobs (S16) ------------------------------------------------------------
class PRJOBID(DataItemBase):
    name = "PRJOBID"
    __type__ = variables.String


class MF(DataItemBase):
    """Material format: 13 carriers, 14 substrates (E40; sent as B or U1)."""

    name = "MF"
    __type__ = variables.Dynamic
    __allowedtypes__ = [variables.U1, variables.Binary]


class SLOTID(DataItemBase):
    name = "SLOTID"
    __type__ = variables.Dynamic
    __allowedtypes__ = list(_UNSIGNED)


class PRRECIPEMETHOD(DataItemBase):
    """1 recipe only, 2 recipe with variable tuning."""

    name = "PRRECIPEMETHOD"
    __type__ = variables.U1
    __count__ = 1


class RCPSPEC(DataItemBase):
    """The recipe specifier: here the PPID, a flow name."""

    name = "RCPSPEC"
    __type__ = variables.String


class RCPPARNM(DataItemBase):
    name = "RCPPARNM"
    __type__ = variables.String


class RCPPARVAL(DataItemBase):
    name = "RCPPARVAL"
    __type__ = variables.Dynamic
    __allowedtypes__ = list(_ANY)


class PRPROCESSSTART(DataItemBase):
    """True: the job starts by itself when its material is ready (else it waits for START)."""

    name = "PRPROCESSSTART"
    __type__ = variables.Boolean
    __count__ = 1


class PRPAUSEEVENT(DataItemBase):
    """A CEID at which the job is to pause."""

    name = "PRPAUSEEVENT"
    __type__ = variables.Dynamic
    __allowedtypes__ = [variables.U4, variables.U1, variables.U2, variables.U8,
                        variables.String]


class PRCMDNAME(DataItemBase):
    """START, PAUSE, RESUME, STOP, ABORT, CANCEL."""

    name = "PRCMDNAME"
    __type__ = variables.String


class PREVENTID(DataItemBase):
    """The process job event of an S16F9 (here: the E40 state code the job entered)."""

    name = "PREVENTID"
    __type__ = variables.U1
    __count__ = 1


class PRJOBSPACE(DataItemBase):
    """How many more process jobs the equipment can take."""

    name = "PRJOBSPACE"
    __type__ = variables.U2
    __count__ = 1


# --- E94 control jobs (S16F27/F28) -------------------------------------------------------
class CTLJOBID(DataItemBase):
    name = "CTLJOBID"
    __type__ = variables.String


class CTLJOBCMD(DataItemBase):
    """1 CJStart, 2 CJPause, 3 CJResume, 4 CJCancel, 5 CJDeselect, 6 CJStop, 7 CJAbort,
    8 CJHOQ."""

    name = "CTLJOBCMD"
    __type__ = variables.U1
    __count__ = 1


ITEMS: tuple[type[DataItemBase], ...] = (
    CARRIERACTION, CARRIERSPEC, CARRIERID, PTN, CATTRID, CATTRDATA, CAACK, ACCESSMODE,
    PRJOBID, MF, SLOTID, PRRECIPEMETHOD, RCPSPEC, RCPPARNM, RCPPARVAL, PRPROCESSSTART,
    PRPAUSEEVENT, PRCMDNAME, PREVENTID, PRJOBSPACE, CTLJOBID, CTLJOBCMD)
