"""One owner of the line: OS-level locks on the journal and on every tool.

A ``viaform run`` or ``viaform daemon`` calls :func:`claim_line` before any driver
connects. It takes ``fcntl.flock(LOCK_EX | LOCK_NB)`` on

* ``<journal>.owner``, beside the journal (the journal's real path), and
* one lock file per tool in the lock directory (``$VIAFORM_LOCK_DIR``, default
  ``/tmp/viaform-locks``, created mode 1777 so every user of the tool PC shares it),
  named after the tool's *address* (:func:`tool_address`), so two tools files that
  name the same oven conflict even with different journals.

The locks live as long as the process keeps the claim (a module-level registry keeps
it even if the caller drops the object) and the kernel drops them when the process
dies, SIGKILL included: a crashed run never leaves the line locked. flock belongs to
the open file description, so two claims in one process conflict as well.

Each lock file, once locked, holds its owner as one JSON line (pid, command, since,
journal, url); it is emptied on release. Content is believed only while the file is
locked by a live pid: a SIGKILLed owner's leftover text is never reported.

A manual command that changes a tool takes that tool's lock for its own duration
(:func:`manual_claim`); read-only commands take nothing. :func:`tool_owner` says who
holds a tool now.

Addresses are compared after normalisation: case, VISA board numbers, a
``socket://`` or ``rfc2217://`` URL versus ``host:port``, symlinked device paths
(``/dev/serial/by-id/…``) and the loopback spellings (``localhost``, ``127.0.0.1``,
``::1``: all one ``loopback`` host) do not matter. Other host names are not resolved
(no DNS at claim time): a tool named by name in one tools file and by IP in another
is two tools to these locks — name each tool the same way everywhere.
"""

from __future__ import annotations

import errno
import fcntl
import hashlib
import ipaddress
import json
import os
import re
import threading
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from sequencer.line.config import ToolsConfig

ENV_LOCK_DIR = "VIAFORM_LOCK_DIR"
DEFAULT_LOCK_DIR = Path("/tmp/viaform-locks")
#: how long a reader waits for a locked file's owner to write its name (wall s)
OWNER_WAIT_S = 0.5
_POLL_S = 0.01


class ClaimError(Exception):
    """A lock could not be taken or made (its directory is missing or not writable)."""


@dataclass(frozen=True)
class Owner:
    """Who holds a lock: as its holder wrote it into the lock file."""

    pid: int | None
    command: str
    since: str = ""
    journal: str = ""
    url: str | None = None

    @property
    def is_daemon(self) -> bool:
        return self.command.split()[:2] == ["viaform", "daemon"]

    @property
    def is_run(self) -> bool:
        return self.command.split()[:2] == ["viaform", "run"]

    def describe(self) -> str:
        """``viaform run L1 (pid 4242, since 2026-12-01 12:01:02, journal /abs/j.db)``."""
        parts = [f"pid {self.pid}" if self.pid is not None else "pid unknown"]
        if self.since:
            parts.append(f"since {self.since}")
        if self.journal:
            parts.append(f"journal {self.journal}")
        if self.url:
            parts.append(f"at {self.url}")
        return f"{self.command} ({', '.join(parts)})"


UNKNOWN_OWNER = Owner(pid=None, command="another process")


class LineOwned(ClaimError):
    """Another process owns the line (or this tool); ``str`` is one line naming it."""

    def __init__(self, owner: Owner, subject: str = "the line") -> None:
        self.owner, self.subject = owner, subject
        super().__init__(f"{subject} is owned by {owner.describe()}: refused; nothing was sent")


# ---------------------------------------------------------------- addresses
_VISA_SOCKET = re.compile(r"^TCPIP\d*::(\[[^\]]+\]|[^:]+)::(\d+)::SOCKET$", re.IGNORECASE)
_VISA_INSTR = re.compile(r"^TCPIP\d*::(\[[^\]]+\]|[^:]+)(?:::([^:]+))?::INSTR$", re.IGNORECASE)
_VISA_ASRL = re.compile(r"^ASRL(/[^:]+)::INSTR$", re.IGNORECASE)
_NET_URL = re.compile(r"^(?:socket|rfc2217)://(\[[^\]]+\]|[^:/?]+):(\d+)", re.IGNORECASE)


def normal_host(host: str) -> str:
    """Lower case, no brackets or trailing dot; every loopback spelling → ``loopback``."""
    h = host.strip().strip("[]").rstrip(".").lower()
    if h in ("localhost", "localhost.localdomain", "0.0.0.0", "::"):
        return "loopback"
    try:
        ip = ipaddress.ip_address(h)
    except ValueError:
        return h
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return "loopback" if ip.is_loopback else str(ip)


def _device(path: str) -> str:
    return f"serial:{os.path.realpath(path)}" if path.startswith("/") else f"serial:{path}"


def tool_address(kind: str, entry: dict[str, Any]) -> str:
    """A tool's normalised address from its tools.yaml mapping, e.g. ``tcp:loopback:5020``,
    read as its ``kind`` reads it (``exposure-2`` is an exposure cell):

    exposure ``resource`` (VISA), etcher ``url`` (pyserial), oven ``host``/``port`` for
    tcp or ``serial_port`` for rtu; a form not understood is kept as written.
    """
    if kind == "oven":
        if str(entry.get("transport", "tcp")).lower() == "rtu":
            return _device(str(entry.get("serial_port")))
        host = normal_host(str(entry.get("host", "127.0.0.1")))
        return f"tcp:{host}:{int(entry.get('port', 502))}"
    if kind == "exposure":
        res = str(entry.get("resource", "")).strip()
        if m := _VISA_SOCKET.match(res):
            return f"tcp:{normal_host(m[1])}:{int(m[2])}"
        if m := _VISA_INSTR.match(res):
            return f"vxi11:{normal_host(m[1])}:{(m[2] or 'inst0').lower()}"
        if m := _VISA_ASRL.match(res):
            return _device(m[1])
        return f"visa:{res.upper()}"
    url = str(entry.get("url", "")).strip()
    if m := _NET_URL.match(url):
        return f"tcp:{normal_host(m[1])}:{int(m[2])}"
    return f"url:{url}" if "://" in url else _device(url)


# ---------------------------------------------------------------- lock files
def lock_dir() -> Path:
    """The shared lock directory, made (mode 1777: any user, sticky) if missing."""
    d = Path(os.environ.get(ENV_LOCK_DIR) or DEFAULT_LOCK_DIR)
    if not d.is_dir():
        try:
            d.mkdir(parents=True, exist_ok=True)
            os.chmod(d, 0o1777)
        except PermissionError:
            pass  # made by another user in the meantime, or not ours to change
        except OSError as exc:
            raise ClaimError(f"lock directory {d}: {exc.strerror or exc}; set "
                             f"${ENV_LOCK_DIR} to a writable directory") from None
    return d


def tool_lock_path(kind: str, entry: dict[str, Any]) -> Path:
    """``<lock dir>/<address, sanitised>-<hash>.lock`` (the hash keeps distinct ones apart)."""
    address = tool_address(kind, entry)
    safe = re.sub(r"[^A-Za-z0-9.-]+", "_", address).strip("_")[:80]
    digest = hashlib.sha1(address.encode()).hexdigest()[:8]
    return lock_dir() / f"{safe}-{digest}.lock"


def journal_lock_path(journal: Path | str) -> Path:
    """``<journal's real path>.owner``."""
    return Path(os.path.realpath(journal) + ".owner")


def _open(path: Path) -> tuple[int, bool]:
    """(fd, writable). Created 0666 so another user can lock and name himself in it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    flags = os.O_CLOEXEC | os.O_NOFOLLOW
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT | flags, 0o666)
    except PermissionError:
        return os.open(path, os.O_RDONLY | flags), False
    try:
        if os.fstat(fd).st_uid == os.geteuid():
            os.fchmod(fd, 0o666)  # the umask took some bits away
    except OSError:
        pass
    return fd, True


def _try_lock(fd: int, how: int) -> bool:
    try:
        fcntl.flock(fd, how | fcntl.LOCK_NB)
    except OSError as exc:
        if exc.errno in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
            return False
        raise
    return True


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # another user's process
    return True


def _read_owner(path: Path) -> Owner | None:
    """The owner written in the file, if it names a live process."""
    try:
        data = json.loads(path.read_text().strip() or "null")
        owner = Owner(pid=int(data["pid"]), command=str(data["command"]),
                      since=str(data.get("since", "")), journal=str(data.get("journal", "")),
                      url=data.get("url"))
    except (OSError, ValueError, TypeError, KeyError):
        return None
    return owner if owner.pid is not None and _alive(owner.pid) else None


def _locked_by(path: Path, fd: int | None = None) -> Owner | None:
    """None if ``path`` can be locked now (taking it, on ``fd``, if one is given), else who
    holds it. A holder that has not written its name yet (or a passing probe) is waited
    for up to :data:`OWNER_WAIT_S`, then reported as :data:`UNKNOWN_OWNER`."""
    probe = fd is None
    if fd is None:
        try:
            fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC | os.O_NOFOLLOW)
        except FileNotFoundError:
            return None
    try:
        deadline = time.monotonic() + OWNER_WAIT_S
        while True:
            if _try_lock(fd, fcntl.LOCK_SH if probe else fcntl.LOCK_EX):
                return None
            owner = _read_owner(path)
            if owner is not None:
                return owner
            if time.monotonic() > deadline:
                return UNKNOWN_OWNER
            time.sleep(_POLL_S)
    finally:
        if probe:
            os.close(fd)  # also drops the probe's shared lock


@dataclass
class _Held:
    path: Path
    fd: int
    writable: bool


_REGISTRY: set[LineClaim] = set()
_REGISTRY_LOCK = threading.Lock()


class LineClaim:
    """Locks held for this process (see the module docstring); ``release()`` or ``with``."""

    def __init__(self, owner: Owner) -> None:
        self.owner = owner
        self.held: list[_Held] = []
        self.paths: dict[str, Path] = {}  # "journal" or tool name → its lock file

    def _take(self, what: str, path: Path, subject: str) -> None:
        try:
            fd, writable = _open(path)
        except OSError as exc:
            raise ClaimError(f"cannot open the lock {path}: {exc.strerror or exc}") from None
        try:
            holder = _locked_by(path, fd)
        except OSError as exc:
            os.close(fd)
            raise ClaimError(f"cannot lock {path}: {exc.strerror or exc}") from None
        if holder is not None:
            os.close(fd)
            raise LineOwned(holder, subject)
        self.held.append(_Held(path, fd, writable))
        self.paths[what] = path
        if writable:
            text = json.dumps({k: v for k, v in asdict(self.owner).items() if v is not None})
            os.ftruncate(fd, 0)
            os.pwrite(fd, (text + "\n").encode(), 0)

    def release(self) -> None:
        """Empty and unlock every lock file (idempotent)."""
        held, self.held = self.held, []
        for h in reversed(held):
            try:
                if h.writable:
                    os.ftruncate(h.fd, 0)
                fcntl.flock(h.fd, fcntl.LOCK_UN)
            except OSError:
                pass
            finally:
                os.close(h.fd)
        with _REGISTRY_LOCK:
            _REGISTRY.discard(self)

    def __enter__(self) -> LineClaim:
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()


def _owner(command: str, journal: str = "", url: str | None = None) -> Owner:
    return Owner(pid=os.getpid(), command=command, since=time.strftime("%Y-%m-%d %H:%M:%S"),
                 journal=journal, url=url)


def _start(claim: LineClaim, steps: list[tuple[str, Path, str]]) -> LineClaim:
    try:
        for what, path, subject in steps:
            claim._take(what, path, subject)
    except BaseException:
        claim.release()
        raise
    with _REGISTRY_LOCK:
        _REGISTRY.add(claim)
    return claim


def claim_line(cfg: ToolsConfig, journal: Path, command: str,
               url: str | None = None) -> LineClaim:
    """Own the journal and every tool of ``cfg`` (or raise :class:`LineOwned`, naming the
    owner; :class:`ClaimError` if a lock cannot even be made). All or nothing.

    ``command`` names the owner to others (``viaform run LOT…``, ``viaform daemon``);
    ``url`` is a daemon's address. Call it before any driver connects.
    """
    real = os.path.realpath(journal) if str(journal) != ":memory:" else ""
    steps: list[tuple[str, Path, str]] = []
    if real:
        steps.append(("journal", journal_lock_path(real), f"the journal {real}"))
    for tool in cfg.kinds:
        if tool in cfg.entries:
            entry, kind = cfg.entries[tool], cfg.kinds[tool]
            steps.append((tool, tool_lock_path(kind, entry),
                          f"the {tool} ({tool_address(kind, entry)})"))
    return _start(LineClaim(_owner(command, real, url)), steps)


def tool_owner(cfg: ToolsConfig, tool: str) -> Owner | None:
    """Who holds ``tool``'s lock now (None: nobody; this process's own claim counts)."""
    if tool not in cfg.entries:
        return None
    return _locked_by(tool_lock_path(cfg.kinds.get(tool, tool), cfg.entries[tool]))


def manual_claim(cfg: ToolsConfig, tool: str, command: str | None = None) -> LineClaim:
    """Take ``tool``'s lock for a manual change command: ``with manual_claim(cfg, tool):``.

    Raises :class:`LineOwned` at once if another process (a run, a daemon, another manual
    command) holds the tool; the lock is released when the ``with`` ends.
    """
    entry, kind = cfg.entry(tool), cfg.kinds.get(tool, tool)
    return _start(LineClaim(_owner(command or f"viaform tool {tool}")),
                  [(tool, tool_lock_path(kind, entry),
                    f"the {tool} ({tool_address(kind, entry)})")])
