"""The SECS-II data items of E87/E40/E94 that secsgem 0.3 lacks, as secsgem data items.

Each is a ``secsgem.secs.data_items.DataItemBase`` subclass, made by ``_item`` from one
line (name, what it is, its SECS format: one type, or the list a Dynamic item accepts,
the first being what a plain Python value is sent as; a count of 1 for a single value).
The functions of ``streams_functions`` are written with these classes (secsgem's
Python-list data format), not in SFDL text: its SFDL parser looks names up in secsgem's
own module only.

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


def _item(name: str, doc: str, fmt: Any, count: int = -1) -> Any:
    """One data item class (secsgem's metaclass adds ``fmt`` to its bases)."""
    attrs: dict[str, Any] = {"__doc__": doc, "name": name}
    if isinstance(fmt, list):
        attrs.update(__type__=variables.Dynamic, __allowedtypes__=list(fmt))
    else:
        attrs["__type__"] = fmt
    if count > 0:
        attrs["__count__"] = count
    return type(name, (DataItemBase,), attrs)


_A, _U1, _BOOL = variables.String, variables.U1, variables.Boolean
# --- E87 carriers (S3F17/F18, S3F27/F28) -------------------------------------------------
CARRIERACTION = _item("CARRIERACTION", "E87 carrier action: ProceedWithCarrier, "
                      "CancelCarrier, CarrierReCreate, …", _A)
CARRIERSPEC = _item("CARRIERSPEC", "The carrier's object specifier (its CarrierID).", _A)
CARRIERID = _item("CARRIERID", "A carrier's id.", _A)
PTN = _item("PTN", "Load port number (E87: U1, 1-based).", list(_UNSIGNED))
CATTRID = _item("CATTRID", "Carrier attribute name (SlotMap, ContentMap, Capacity, "
                "SubstrateCount, Usage).", _A)
CATTRDATA = _item("CATTRDATA", "Carrier attribute value.", list(_ANY))
CAACK = _item("CAACK", "Carrier action acknowledge: 0 ok, 1 invalid command, 2 cannot "
              "perform now, 3 invalid data or argument, 4 will be performed (completion by "
              "event), 5 rejected (invalid state), 6 performed with errors.", _U1, 1)
ACCESSMODE = _item("ACCESSMODE", "Load port access mode: 0 manual, 1 auto.", _U1, 1)
# --- E40 process jobs (S16) ------------------------------------------------------------
PRJOBID = _item("PRJOBID", "A process job's id.", _A)
MF = _item("MF", "Material format: 13 carriers, 14 substrates (E40; sent as B or U1).",
           [variables.U1, variables.Binary])
SLOTID = _item("SLOTID", "A slot of a carrier, 1-based.", list(_UNSIGNED))
PRRECIPEMETHOD = _item("PRRECIPEMETHOD", "1 recipe only, 2 recipe with variable tuning.",
                       _U1, 1)
RCPSPEC = _item("RCPSPEC", "The recipe specifier: here the PPID, a flow name.", _A)
RCPPARNM = _item("RCPPARNM", "A recipe variable's name.", _A)
RCPPARVAL = _item("RCPPARVAL", "A recipe variable's value.", list(_ANY))
PRPROCESSSTART = _item("PRPROCESSSTART", "True: the job starts by itself when its "
                       "material is ready (else it waits for PRJobStart).", _BOOL, 1)
PRPAUSEEVENT = _item("PRPAUSEEVENT", "A CEID at which the job is to pause.",
                     [variables.U4, variables.U1, variables.U2, variables.U8, _A])
PRCMDNAME = _item("PRCMDNAME", "START, PAUSE, RESUME, STOP, ABORT, CANCEL.", _A)
PREVENTID = _item("PREVENTID", "The process job event of an S16F9 (here: the E40 state "
                  "code the job entered).", _U1, 1)
PRJOBSPACE = _item("PRJOBSPACE", "How many more process jobs the equipment can take.",
                   variables.U2, 1)
# --- E94 control jobs (S16F27/F28) -------------------------------------------------------
CTLJOBID = _item("CTLJOBID", "A control job's id.", _A)
CTLJOBCMD = _item("CTLJOBCMD", "1 CJStart, 2 CJPause, 3 CJResume, 4 CJCancel, 5 CJDeselect, "
                  "6 CJStop, 7 CJAbort, 8 CJHOQ.", _U1, 1)

ITEMS: tuple[Any, ...] = (
    CARRIERACTION, CARRIERSPEC, CARRIERID, PTN, CATTRID, CATTRDATA, CAACK, ACCESSMODE,
    PRJOBID, MF, SLOTID, PRRECIPEMETHOD, RCPSPEC, RCPPARNM, RCPPARVAL, PRPROCESSSTART,
    PRPAUSEEVENT, PRCMDNAME, PREVENTID, PRJOBSPACE, CTLJOBID, CTLJOBCMD)
