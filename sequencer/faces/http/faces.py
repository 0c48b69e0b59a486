"""Other faces the daemon serves beside its HTTP API, on the same engine and event loop.

The SECS/GEM equipment interface (``sequencer/faces/gem``) is one. ``create_app(…,
faces=[…])`` starts each face after the line has started (``start``), hands it every
line event the pump sees, the daemon's own ``e10`` events included (``observe``), and
stops it before the line stops (``stop``), so a face never outlives the engine it talks to.

``observe`` runs on the event loop, in the pump: it must not block or await. A face that
has I/O to do for an event (sending an S6F11) queues the event and returns.

A face that also serves HTTP routes (the GEM face's operator controls) is a
``RoutedFace``: ``create_app`` includes ``routes(kit)`` in the API before the gate is
built, so the gate checks their tokens and roles as it does the API's own; ``kit`` gives
the role dependency (``kit.require(Role.TECHNICIAN)``) and the audit role name.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

from fastapi import APIRouter, Request

from sequencer.faces.http.auth import Principal, Role
from sequencer.faces.http.contract import LineControl, LineEvent


@runtime_checkable
class DaemonFace(Protocol):
    async def start(self, line: LineControl) -> None:
        """Begin serving (bind, listen); the line has started and its state is current."""

    def observe(self, event: LineEvent) -> None:
        """One line event, in the order the pump saw it; never blocks."""

    async def stop(self) -> None:
        """Stop serving and release what ``start`` took (threads, sockets)."""


def _no_stream(event: LineEvent) -> None:
    """A kit made without a daemon's event stream: a face's own events go nowhere."""


@dataclass(frozen=True)
class RouteKit:
    """What a face's routes take from the HTTP layer. ``publish`` puts an event of the
    face's own (a host's terminal message) on the daemon's event stream (SSE ``/events``,
    the operator's screen); call it on the event loop. The other faces do not see it."""

    require: Callable[[Role], Callable[[Request], Awaitable[Principal]]]
    role_of: Callable[[Principal], str]  # the role name the audit log records
    publish: Callable[[LineEvent], None] = _no_stream


@runtime_checkable
class RoutedFace(DaemonFace, Protocol):
    def routes(self, kit: RouteKit) -> APIRouter:
        """The face's routes (declaring their roles through ``kit.require``)."""
