"""The SECS-II stream/functions of E87, E40, E94 and S10F5 that secsgem 0.3 lacks.

secsgem 0.3 has S7F1-F6, S7F17-F20 and S10F1-F4 (used as they are); it has no S3, no
S16 and no S14F9/F10, and no S10F5/F6. Each function here is a
``secsgem.secs.functions.SecsStreamFunction`` subclass made from one row of ``TABLE``
(stream, function, data format in secsgem's Python-list form, direction, reply
flags): a list of one element is a SECS list of any length of that element, a list
whose first element is a string is a named structure. ``register`` adds them (and
their data items, ``streams_items``) to a handler's ``settings.streams_functions``,
which secsgem's own ``decode`` then uses; the host side of a test registers the same.

The formats follow E5 §10 (S3, S14, S16) and E87/E40/E94 for the items inside::

    S3F17  L,5 DATAID CARRIERACTION CARRIERSPEC PTN  L,n (L,2 CATTRID CATTRDATA)
    S3F18  L,2 CAACK  L,n (L,2 ERRCODE ERRTEXT)
    S3F27  L,2 ACCESSMODE  L,n PTN
    S3F28  L,2 CAACK  L,n (L,3 PTN ERRCODE ERRTEXT)
    S14F9  L,3 OBJSPEC OBJTYPE  L,n (L,2 ATTRID ATTRDATA)
    S14F10 L,3 OBJSPEC  L,n (L,2 ATTRID ATTRDATA)  L,2 OBJACK L,n (L,2 ERRCODE ERRTEXT)
    S16F5  L,4 DATAID PRJOBID PRCMDNAME  L,n (L,2 CPNAME CPVAL)
    S16F6  L,2 PRJOBID  L,2 ACKA L,n (L,2 ERRCODE ERRTEXT)            (S16F12 the same)
    S16F9  L,4 PREVENTID TIMESTAMP PRJOBID  L,n (L,2 VID V)            S16F10 header only
    S16F11 L,7 DATAID PRJOBID MF  L,n (L,2 CARRIERID L,m SLOTID)
               L,3 PRRECIPEMETHOD RCPSPEC L,m (L,2 RCPPARNM RCPPARVAL)
               PRPROCESSSTART  L,n PRPAUSEEVENT
    S16F17 L,n PRJOBID        S16F18 L,2 L,n PRJOBID  L,2 ACKA L,n (L,2 ERRCODE ERRTEXT)
    S16F21 header only        S16F22 PRJOBSPACE
    S16F27 L,3 CTLJOBID CTLJOBCMD  L,2 CPNAME CPVAL
    S16F28 L,2 ACKA  L,2 ERRCODE ERRTEXT
    S10F5  L,2 TID  L,n TEXT  S10F6 ACKC10
    S3F0, S16F0 abort transaction, header only (E5; secsgem has S7F0, S10F0, S14F0)
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from secsgem.secs.data_items import (  # type: ignore[import-untyped]
    ACKA,
    ACKC10,
    ATTRDATA,
    ATTRID,
    CPNAME,
    CPVAL,
    DATAID,
    ERRCODE,
    ERRTEXT,
    OBJACK,
    OBJSPEC,
    OBJTYPE,
    TEXT,
    TID,
    TIMESTAMP,
    VID,
    V,
)
from secsgem.secs.functions import SecsStreamFunction  # type: ignore[import-untyped]

from sequencer.faces.gem.streams_items import (
    ACCESSMODE,
    CAACK,
    CARRIERACTION,
    CARRIERID,
    CARRIERSPEC,
    CATTRDATA,
    CATTRID,
    CTLJOBCMD,
    CTLJOBID,
    ITEMS,
    MF,
    PRCMDNAME,
    PREVENTID,
    PRJOBID,
    PRJOBSPACE,
    PRPAUSEEVENT,
    PRPROCESSSTART,
    PRRECIPEMETHOD,
    PTN,
    RCPPARNM,
    RCPPARVAL,
    RCPSPEC,
    SLOTID,
)

_ERRORS = [["ERRORS", ERRCODE, ERRTEXT]]
_STATUS = ["STATUS", ACKA, _ERRORS]


@dataclass(frozen=True)
class Row:
    """One function: ``to_host`` True for equipment → host (an abort, F0, goes either
    way), ``reply`` = W-bit set."""

    stream: int
    function: int
    data_format: Any
    to_host: bool
    reply: bool
    doc: str
    multi_block: bool = False


TABLE: tuple[Row, ...] = (
    # SxF0 abort transaction (E5), header only: the answer to a primary of these streams
    # that cannot be handled now (e.g. the equipment is offline)
    Row(3, 0, None, True, False, "Abort transaction"),
    Row(16, 0, None, True, False, "Abort transaction"),
    Row(3, 17, [DATAID, CARRIERACTION, CARRIERSPEC, PTN, [["ATTRIBUTES", CATTRID, CATTRDATA]]],
        False, True, "Carrier action request", True),
    Row(3, 18, [CAACK, _ERRORS], True, False, "Carrier action acknowledge"),
    Row(3, 27, [ACCESSMODE, [PTN]], False, True, "Change access"),
    Row(3, 28, [CAACK, [["ERRORS", PTN, ERRCODE, ERRTEXT]]], True, False,
        "Change access acknowledge"),
    Row(14, 9, [OBJSPEC, OBJTYPE, [["ATTRIBUTES", ATTRID, ATTRDATA]]], False, True,
        "Create object request", True),
    Row(14, 10, [OBJSPEC, [["ATTRIBUTES", ATTRID, ATTRDATA]], ["STATUS", OBJACK, _ERRORS]],
        True, False, "Create object acknowledge", True),
    Row(16, 5, [DATAID, PRJOBID, PRCMDNAME, [["PARAMETERS", CPNAME, CPVAL]]], False, True,
        "Process job command request"),
    Row(16, 6, [PRJOBID, _STATUS], True, False, "Process job command acknowledge"),
    Row(16, 9, [PREVENTID, TIMESTAMP, PRJOBID, [["VARIABLES", VID, V]]], True, True,
        "Process job event notify"),
    Row(16, 10, None, False, False, "Process job event confirm"),
    Row(16, 11, [DATAID, PRJOBID, MF, [["CARRIERS", CARRIERID, [SLOTID]]],
                 ["RECIPE", PRRECIPEMETHOD, RCPSPEC, [["PARAMETERS", RCPPARNM, RCPPARVAL]]],
                 PRPROCESSSTART, [PRPAUSEEVENT]],
        False, True, "PRJobCreateEnh", True),
    Row(16, 12, [PRJOBID, _STATUS], True, False, "PRJobCreateEnh acknowledge"),
    Row(16, 17, [PRJOBID], False, True, "PRJobDequeue"),
    Row(16, 18, [[PRJOBID], _STATUS], True, False, "PRJobDequeue acknowledge"),
    Row(16, 21, None, False, True, "PRGetSpace"),
    Row(16, 22, PRJOBSPACE, True, False, "PRGetSpace data"),
    Row(16, 27, [CTLJOBID, CTLJOBCMD, ["PARAMETER", CPNAME, CPVAL]], False, True,
        "Control job command request"),
    Row(16, 28, [ACKA, ["STATUS", ERRCODE, ERRTEXT]], True, False,
        "Control job command acknowledge"),
    Row(10, 5, [TID, [TEXT]], False, True, "Terminal display, multi-block", True),
    Row(10, 6, ACKC10, True, False, "Terminal display, multi-block acknowledge"),
)


def _make(row: Row) -> type[SecsStreamFunction]:
    name = f"SecsS{row.stream:02d}F{row.function:02d}"
    attrs = {"__doc__": f"{row.doc} (S{row.stream}F{row.function}, viaform: secsgem 0.3 "
                        f"lacks it).", "_stream": row.stream, "_function": row.function,
             "_data_format": row.data_format, "_to_host": row.to_host,
             "_to_equipment": not row.to_host or row.function == 0, "_has_reply": row.reply,
             "_is_reply_required": row.reply, "_is_multi_block": row.multi_block}
    return type(name, (SecsStreamFunction,), attrs)


#: (stream, function) → its class
FUNCTIONS: dict[tuple[int, int], type[SecsStreamFunction]] = {
    (r.stream, r.function): _make(r) for r in TABLE}


def register(streams_functions: Any) -> None:
    """Add every function and data item here to a secsgem ``StreamsFunctions`` (a
    handler's ``settings.streams_functions``); secsgem's own ones are left alone."""
    for item in ITEMS:
        streams_functions.data_items.update(item)
    for (stream, function), cls in FUNCTIONS.items():
        existing = streams_functions.function(stream, function)
        if existing is cls:
            continue
        if existing is not None:
            raise ValueError(f"S{stream}F{function} is already defined: secsgem has it now")
        streams_functions.update(cls)
