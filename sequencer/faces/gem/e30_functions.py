"""The E30 messages secsgem 0.3 lacks, as its own function and data item classes.

S2F31/S2F32 (Date and Time Set Request / Acknowledge) and the TIACK data item; added to
a handler's ``settings.streams_functions`` by ``install`` (secsgem's documented way to
define a stream/function: a ``SecsStreamFunction`` subclass with ``_data_format``).
"""

from __future__ import annotations

from typing import Any

from secsgem.secs import variables  # type: ignore[import-untyped]
from secsgem.secs.data_items import TIME, DataItemBase  # type: ignore[import-untyped]
from secsgem.secs.functions.base import SecsStreamFunction  # type: ignore[import-untyped]


class TIACK(DataItemBase):
    """Time acknowledge (E5): 0 OK, 1 not done."""

    name = "TIACK"
    __type__ = variables.Binary
    __count__ = 1
    ACK = 0
    NOT_DONE = 1
    _values = {"ACK": 0, "NOT_DONE": 1}


class SecsS02F31(SecsStreamFunction):
    """Date and time set request."""

    _stream, _function = 2, 31
    _data_format = TIME
    _to_host, _to_equipment = False, True
    _has_reply, _is_reply_required, _is_multi_block = True, True, False


class SecsS02F32(SecsStreamFunction):
    """Date and time set acknowledge."""

    _stream, _function = 2, 32
    _data_format = TIACK
    _to_host, _to_equipment = True, False
    _has_reply, _is_reply_required, _is_multi_block = False, False, False


def install(settings: Any) -> None:
    """Make ``settings`` (a secsgem ``Settings``) know S2F31/S2F32 and TIACK."""
    settings.streams_functions.data_items.update(TIACK)
    settings.streams_functions.update(SecsS02F31)
    settings.streams_functions.update(SecsS02F32)
