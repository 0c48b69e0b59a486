"""`viaform run` / `viaform demo` (being written)."""

from __future__ import annotations

import typer


def register(app: typer.Typer) -> None:
    """Add the top-level `run` and `demo` commands to ``app``."""
