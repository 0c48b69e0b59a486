"""The ``gem:`` section of tools.yaml, read through its schema (``line.tools_schema.Gem``:
the defaults there are the ones used), and the start-up checks on it."""

from __future__ import annotations

import ipaddress
import socket

from sequencer.line.config import ToolsConfig
from sequencer.line.tools_schema import Gem, GemTimers


class GemConfigError(ValueError):
    """A ``gem:`` section the daemon refuses to start with (one line)."""


def gem_config(cfg: ToolsConfig) -> Gem:
    return Gem.model_validate(cfg.gem)


def timers(gem: Gem) -> GemTimers:
    return gem.timers or GemTimers()


def is_loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return host == "localhost"


def check_bind(gem: Gem, where: str) -> None:
    """Beyond loopback the port needs ``gem.allow_hosts`` (a GEM host is trusted by
    address); an entry that is not an IP address is refused too."""
    if not is_loopback(gem.bind) and not gem.allow_hosts:
        raise GemConfigError(f"{where}: gem.bind {gem.bind} is beyond loopback: set "
                             f"gem.allow_hosts (the host addresses allowed to connect)")
    for host in gem.allow_hosts or ():
        try:
            ipaddress.ip_address(host)
        except ValueError:
            raise GemConfigError(f"{where}: gem.allow_hosts: {host!r} is not an IP "
                                 f"address") from None


def bind_listen(gem: Gem) -> socket.socket:
    """The HSMS listen socket, bound now (a taken port is one line at start-up)."""
    family = socket.AF_INET6 if ":" in gem.bind else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((gem.bind, gem.port))
    except OSError as exc:
        sock.close()
        raise GemConfigError(f"cannot listen for HSMS on {gem.bind}:{gem.port}: "
                             f"{exc.strerror}") from None
    sock.listen(4)
    return sock
