"""The CLI's HTTP client of the daemon (docs/daemon.md, "CLI client commands").

Where the daemon is: ``--daemon URL``, else ``$VIAFORM_DAEMON``, else ``daemon: {url: …}``
in tools.yaml, else ``http://127.0.0.1:8750``. ``none`` (flag or variable) means "no
daemon: straight to the tool". An address given by flag or variable must answer; the
configured or default one is probed first, and when nothing answers there the tool
commands go straight to the tool (``viaform tool``) or read the journal (``wafer show``).
Every request sends ``X-Viaform-User: $USER``, ``X-Viaform-Client: viaform-cli`` (the
daemon accepts a state-changing request with neither ``Origin`` nor ``Referer`` only with
a token or this header) and, when ``$VIAFORM_TOKEN`` is set,
``Authorization: Bearer $VIAFORM_TOKEN``. A failed probe is no leave to change a tool:
``viaform tool`` then checks who owns the tool (sequencer/line/ownership.py) before a change.

A refusal is printed as the daemon's ``detail`` (and each of its ``problems``, one per
line) on stderr; the exit code is 2 for an invalid request (422), else 1.
"""

from __future__ import annotations

import getpass
import os
from pathlib import Path
from typing import Annotated, Any, NoReturn

import httpx
import typer
import yaml

from sequencer.line.config import default_tools_path

ENV_DAEMON = "VIAFORM_DAEMON"
ENV_TOKEN = "VIAFORM_TOKEN"
DEFAULT_URL = "http://127.0.0.1:8750"
PROBE_TIMEOUT_S = 0.5
#: the CLI's own header, sent on every request (the daemon's CSRF check knows it)
CLIENT_HEADER = "X-Viaform-Client"
CLIENT_VALUE = "viaform-cli"
TIMEOUT_S = 15.0
#: tests put an ``httpx.MockTransport`` here; None = the network
TRANSPORT: httpx.BaseTransport | None = None

DaemonOpt = Annotated[str | None, typer.Option(
    "--daemon", help=f"daemon URL ('none': straight to the tool); default ${ENV_DAEMON}, "
                     f"tools.yaml daemon.url, {DEFAULT_URL}")]


class DaemonError(Exception):
    """The daemon answered with an error status; ``detail`` and ``problems`` are its body."""

    def __init__(self, status: int, detail: str, problems: list[dict[str, str]]) -> None:
        super().__init__(detail)
        self.status, self.detail, self.problems = status, detail, problems


class NoDaemon(Exception):
    """Nothing answers at the daemon's address."""


def daemon_section(tools_path: Path | str | None) -> dict[str, Any]:
    """The ``daemon:`` mapping of a tools file ({} if absent or unreadable)."""
    try:
        raw = yaml.safe_load(Path(tools_path or default_tools_path()).read_text())
    except (OSError, yaml.YAMLError):
        return {}
    section = raw.get("daemon") if isinstance(raw, dict) else None
    return dict(section) if isinstance(section, dict) else {}


def resolve(flag: str | None, config: Path | None) -> tuple[str | None, bool]:
    """(url or None for "no daemon", whether it was asked for explicitly)."""
    for value in (flag, os.environ.get(ENV_DAEMON)):
        if value:
            return (None if value.strip().lower() == "none" else value.rstrip("/")), True
    url = daemon_section(config).get("url")
    return (str(url).rstrip("/") if url else DEFAULT_URL), False


class Client:
    """A few JSON requests to one daemon."""

    def __init__(self, url: str, *, token: str | None = None, user: str | None = None,
                 transport: httpx.BaseTransport | None = None) -> None:
        headers = {"X-Viaform-User": user or _user(), CLIENT_HEADER: CLIENT_VALUE}
        token = token if token is not None else os.environ.get(ENV_TOKEN)
        if token:
            headers["Authorization"] = f"Bearer {token}"
        self.url = url
        self.http = httpx.Client(base_url=url, headers=headers, timeout=TIMEOUT_S,
                                 transport=transport)

    def request(self, method: str, path: str, *, json: Any = None,
                params: dict[str, Any] | None = None) -> Any:
        try:
            resp = self.http.request(method, path, json=json, params=params)
        except httpx.TransportError as exc:
            raise NoDaemon(f"no daemon answers at {self.url} ({exc})") from None
        if resp.status_code >= 400:
            try:
                body = resp.json()
            except ValueError:
                body = {"detail": resp.text or resp.reason_phrase}
            raise DaemonError(resp.status_code, str(body.get("detail", "")),
                              list(body.get("problems") or []))
        return resp.json() if "json" in resp.headers.get("content-type", "") else resp.text

    def get(self, path: str, **params: Any) -> Any:
        return self.request("GET", path, params={k: v for k, v in params.items()
                                                 if v is not None} or None)

    def post(self, path: str, body: Any = None) -> Any:
        return self.request("POST", path, json=body)

    def reachable(self) -> bool:
        """Something answers HTTP at the address (an auth error counts: a daemon runs)."""
        try:
            self.http.get("/health", timeout=PROBE_TIMEOUT_S)
        except httpx.HTTPError:
            return False
        return True

    def close(self) -> None:
        self.http.close()


def _user() -> str:
    try:
        return os.environ.get("USER") or getpass.getuser()
    except Exception:  # no user name on this system
        return "unknown"


def connect(flag: str | None, config: Path | None, *, required: bool) -> Client | None:
    """The daemon's client, or None when none runs (and ``required`` is False)."""
    url, explicit = resolve(flag, config)
    if url is None:
        if required:
            fail("this command needs the daemon, and --daemon/$VIAFORM_DAEMON says none")
        return None
    client = Client(url, transport=TRANSPORT)
    if explicit or client.reachable():
        return client
    client.close()
    if required:
        fail(f"no daemon answers at {url}; start one with `viaform daemon`, or point "
             f"--daemon / ${ENV_DAEMON} at it")
    return None


def fail(message: str, code: int = 1) -> NoReturn:
    typer.echo(f"viaform: {message}", err=True)
    raise typer.Exit(code)


def fail_from(exc: DaemonError | NoDaemon) -> NoReturn:
    """Print the daemon's refusal (detail, then each problem) and exit (2 for a 422)."""
    if isinstance(exc, NoDaemon):
        fail(str(exc))
    lines = [exc.detail] + [f"  {p.get('place', '?')}: {p.get('message', '')}"
                            for p in exc.problems]
    typer.echo("\n".join(lines), err=True)
    raise typer.Exit(2 if exc.status == 422 else 1)


def call(client: Client, method: str, path: str, body: Any = None, **params: Any) -> Any:
    """One request; a refusal becomes the CLI's message and exit code."""
    try:
        if method == "GET":
            return client.get(path, **params)
        return client.post(path, body)
    except (DaemonError, NoDaemon) as exc:
        fail_from(exc)
