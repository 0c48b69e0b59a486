"""Loading ``configs/tools.yaml``: where each tool is, timeouts, the time scale."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

DEFAULT_TOOLS = Path("configs/tools.yaml")
TOOLS = ("exposure", "oven", "etcher")


class ConfigError(ValueError):
    """A tools file that is missing, unreadable or wrong; the message says where."""


@dataclass
class ToolsConfig:
    """The whole ``tools.yaml``; ``entries[tool]`` is that tool's mapping, as written."""

    path: Path
    time_scale: float
    journal: Path
    entries: dict[str, dict[str, Any]]
    sim_control: dict[str, Any] = field(default_factory=dict)
    handling: str = "sim"  # "sim": the simulators move wafers; "operator": confirmed by hand
    handling_timeout_s: float = 3600.0  # wall seconds an operator move may take

    def entry(self, tool: str) -> dict[str, Any]:
        if tool not in self.entries:
            raise ConfigError(f"{self.path}: no entry for tool {tool!r}")
        return self.entries[tool]


def default_tools_path() -> Path:
    """``$VIAFORM_TOOLS`` if set, else ``configs/tools.yaml`` here, else the packaged copy."""
    env = os.environ.get("VIAFORM_TOOLS")
    if env:
        return Path(env)
    if DEFAULT_TOOLS.exists():
        return DEFAULT_TOOLS
    return Path(__file__).resolve().parent.parent / DEFAULT_TOOLS


def load_tools(path: Path | str | None = None) -> ToolsConfig:
    p = Path(path) if path else default_tools_path()
    try:
        raw = yaml.safe_load(p.read_text())
    except FileNotFoundError:
        raise ConfigError(f"{p}: no such tools file") from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"{p}: not valid YAML: {exc}") from None
    if not isinstance(raw, dict):
        raise ConfigError(f"{p}: expected a mapping at the top")
    try:
        scale = float(raw.get("time_scale", 1.0))
    except (TypeError, ValueError):
        raise ConfigError(f"{p}: time_scale: {raw.get('time_scale')!r} is not a number") from None
    if not scale > 0:
        raise ConfigError(f"{p}: time_scale: {scale} must be > 0")
    entries = {t: dict(raw[t]) for t in TOOLS if isinstance(raw.get(t), dict)}
    handling = str(raw.get("handling", "sim"))
    if handling not in ("sim", "operator"):
        raise ConfigError(f"{p}: handling: {handling!r} must be 'sim' or 'operator'")
    return ToolsConfig(
        path=p,
        time_scale=scale,
        journal=Path(raw.get("journal", "var/viaform.db")),
        entries=entries,
        sim_control=dict(raw.get("sim_control") or {"host": "127.0.0.1", "port": 5030}),
        handling=handling,
        handling_timeout_s=float(raw.get("handling_timeout_s", 3600.0)),
    )
