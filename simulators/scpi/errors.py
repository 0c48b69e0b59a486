"""SCPI error codes and the ESR bit each class sets (LX-365 manual, 'Error queue')."""

from __future__ import annotations

STANDARD_TEXTS: dict[int, str] = {
    -100: "Command error",
    -102: "Syntax error",
    -108: "Parameter not allowed",
    -109: "Missing parameter",
    -113: "Undefined header",
    -221: "Settings conflict",
    -222: "Data out of range",
    -224: "Illegal parameter value",
    -241: "Hardware missing",
    -350: "Queue overflow",
}

ESR_OPC = 1 << 0
ESR_QUERY_ERROR = 1 << 2
ESR_DEVICE_ERROR = 1 << 3
ESR_EXECUTION_ERROR = 1 << 4
ESR_COMMAND_ERROR = 1 << 5
ESR_POWER_ON = 1 << 7


def esr_bit_for(code: int) -> int:
    """The ESR bit a code sets.

    -1xx → command error (bit 5), -2xx → execution error (bit 4),
    +2xx/+3xx/-3xx → device error (bit 3).
    """
    if -199 <= code <= -100:
        return ESR_COMMAND_ERROR
    if -299 <= code <= -200:
        return ESR_EXECUTION_ERROR
    if -399 <= code <= -300 or code >= 200:
        return ESR_DEVICE_ERROR
    if -499 <= code <= -400:
        return ESR_QUERY_ERROR
    return 0


class ScpiError(Exception):
    """Raised by a command handler: the core queues ``code`` and stops the line."""

    def __init__(self, code: int, text: str | None = None) -> None:
        self.code = code
        self.text = text
        super().__init__(f"{code},{text or STANDARD_TEXTS.get(code, '')}")
