"""The one exception hierarchy every driver raises."""

from __future__ import annotations


class ToolError(Exception):
    """Anything that went wrong talking to a tool. ``tool`` names which."""

    def __init__(self, message: str, *, tool: str = "") -> None:
        super().__init__(f"{tool}: {message}" if tool else message)
        self.tool = tool


class CommsError(ToolError):
    """The transport failed: refused, timed out, dropped, or an unparseable reply."""


class ToolRejected(ToolError):
    """The tool refused a command: an SCPI error-queue entry or a Modbus exception."""

    def __init__(self, code: int, text: str, *, tool: str = "", command: str = "") -> None:
        what = f" (to {command!r})" if command else ""
        super().__init__(f"tool error {code:+d}, {text!r}{what}", tool=tool)
        self.code = code
        self.text = text
        self.command = command


class InterlockError(ToolRejected):
    """The tool refused because an interlock is open (door, vacuum, ...)."""


class ValidationError(ToolError, ValueError):
    """A value outside the manual's range, caught before anything was sent."""

    def __init__(self, parameter: str, value: object, allowed: str, *, tool: str = "") -> None:
        super().__init__(f"{parameter} = {value!r} is out of range; allowed: {allowed}", tool=tool)
        self.parameter = parameter
        self.value = value
        self.allowed = allowed
