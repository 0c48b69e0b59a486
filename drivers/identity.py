"""What a tool says it is: the four fields of an IEEE 488.2 ``*IDN?`` reply.

Its own module so the Modbus oven driver can return one without importing the
SCPI layer (and pyvisa with it).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Identity:
    maker: str
    model: str
    serial: str
    firmware: str
