"""Past 1023 open files: the drivers answer, or refuse with the reason, never ValueError.

``select()`` cannot watch a descriptor above 1023, and pyserial and pymodbus wait with
it (``drivers.descriptors``). Before, with 1 100 files open, the SCPI drivers raised a
bare ``ValueError`` and the oven's said "connection lost" to a simulator that was up.
"""

from __future__ import annotations

import os
import resource
import subprocess
import sys
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from drivers.errors import CommsError
from drivers.etcher import PlasmaEtcher
from drivers.exposure import ExposureTool
from drivers.oven import CureOven

pytestmark = [pytest.mark.sim_tools("exposure", "oven", "etcher"), pytest.mark.timeout(60),
              pytest.mark.skipif(sys.platform == "win32", reason="POSIX descriptors")]


@pytest.fixture
def many_files_open() -> Iterator[Callable[[], None]]:
    """This process holds files until its next descriptor is above 1100; the fixture's
    value closes them."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < 2048:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(2048, hard), hard))
    held = [os.open(os.devnull, os.O_RDONLY) for _ in range(1100)]
    assert held[-1] > 1100

    def release() -> None:
        while held:
            os.close(held.pop())

    try:
        yield release
    finally:
        release()
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


def _ours(kind: str, entry: dict[str, Any]) -> bool:
    """Does our own code wait on this link (a SCPI socket), or a library's select()?"""
    return kind == "exposure" or kind == "etcher" and str(entry.get("url", "")).startswith(
        "socket://")


DRIVERS = {"exposure": ExposureTool, "etcher": PlasmaEtcher, "oven": CureOven}


@pytest.fixture(params=["socket", "rs232"])
def line_cfg(request: pytest.FixtureRequest,
             tools_cfg: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """The tools' entries, the etcher on its TCP port or on its RS-232 pty (pyserial)."""
    cfg = {k: dict(v) for k, v in tools_cfg.items()}
    if request.param == "rs232":
        if not cfg["etcher"].get("pty"):
            pytest.skip("no RS-232 pty for the etcher")  # pragma: no cover - real tools
        cfg["etcher"]["url"] = cfg["etcher"]["pty"]
    return cfg


def test_past_1023_files_each_driver_answers_or_says_why_then_answers_once_closed(
        line_cfg: dict[str, dict[str, Any]], many_files_open: Callable[[], None]) -> None:
    drivers = {k: cls.from_config(line_cfg[k]) for k, cls in DRIVERS.items()}
    try:
        for kind, drv in drivers.items():
            if _ours(kind, line_cfg[kind]):
                drv.connect()
                assert drv.state().name == "IDLE"  # a SCPI socket: poll() has no bound
            else:
                with pytest.raises(CommsError, match=r"descriptor \d{4}.*select\(\).*1023"):
                    drv.connect()
        assert not _ours("oven", line_cfg["oven"])  # a refusal above was checked
        many_files_open()
        for kind, drv in drivers.items():  # the same drivers, with descriptors free
            drv.close()
            drv.connect()
            assert drv.state().name == "IDLE", kind
    finally:
        for drv in drivers.values():
            drv.close()


def test_the_viaform_process_lowers_its_open_file_limit_to_1024() -> None:
    """The CLI's process keeps every descriptor select() can watch: its soft limit is
    lowered to 1024 (the hard limit kept), so it runs out of files before that."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY and hard <= 1024:
        pytest.skip("this host's hard limit is already at most 1024")  # pragma: no cover
    script = (
        "import resource, sys\n"
        "r = resource.RLIMIT_NOFILE\n"
        "resource.setrlimit(r, (4096 if resource.getrlimit(r)[1] >= 4096 else "
        "resource.getrlimit(r)[1], resource.getrlimit(r)[1]))\n"
        "import sequencer.faces.cli as cli\n"
        "cli.app = lambda: print(*resource.getrlimit(r))\n"
        "cli.main()\n")
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                         timeout=60, check=True).stdout.split()
    assert int(out[0]) == 1024
    assert int(out[1]) == hard
