"""`viaform daemon`: the tool PC's sequencer daemon (HTTP/JSON API, docs/daemon.md).

    viaform daemon [--config tools.yaml] [--bind 127.0.0.1:8750] [--db PATH] [--tokens FILE]
                   [--recipes DIR]

Owns the tool connections and the journal (``--db``, default the tools file's
``journal:``; the audit log is a table in the same file), resumes the journal's
unfinished lots, and serves until SIGTERM/Ctrl-C, then stops gracefully and exits 0.
The bind address may also come from ``daemon: {bind: …}`` in tools.yaml. Beyond
loopback it refuses to start without tokens (exit 2). With ``gem.enabled`` it also serves
SECS/GEM (HSMS passive) on ``gem.bind``:``gem.port``, on the same engine (docs/gem.md);
beyond loopback only with ``gem.allow_hosts`` (else exit 2).
"""

from __future__ import annotations

import os
import socket
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, NoReturn

import typer

from sequencer.faces.logsetup import configure_logging
from sequencer.line.config import ConfigError, ToolsConfig, load_tools
from sequencer.line.ownership import ClaimError, LineClaim, claim_line
from sequencer.store.journal import Journal, JournalError, ensure_journal_dir

if TYPE_CHECKING:
    from sequencer.faces.http.faces import DaemonFace
    from sequencer.store.audit import AuditLog


def register(app: typer.Typer) -> None:
    @app.command()
    def daemon(
        config: Annotated[Path | None, typer.Option("--config", help="tools.yaml")] = None,
        bind: Annotated[str | None, typer.Option(
            "--bind", help="HOST:PORT (default: daemon.bind in tools.yaml, else "
                           "127.0.0.1:8750)")] = None,
        db: Annotated[Path | None, typer.Option("--db", help="journal (and audit) file")] = None,
        tokens: Annotated[Path | None, typer.Option(
            "--tokens", help="tokens file (else $VIAFORM_TOKENS_FILE / $VIAFORM_TOKENS)")] = None,
        recipes: Annotated[Path | None, typer.Option(
            "--recipes", help="recipes folder (default: configs/recipes)")] = None,
        verbose: Annotated[bool, typer.Option("-v", "--verbose", help="debug log")] = False,
    ) -> None:
        """Serve the line: lots, wafers, tools, alarms, events, audit (OpenAPI at /docs)."""
        import sequencer.faces.http.server as server
        from sequencer.faces.http.app import create_app
        from sequencer.faces.http.auth import AuthError, load_auth
        from sequencer.store.audit import AuditLog

        configure_logging(verbose)
        try:
            cfg = load_tools(config)
        except ConfigError as exc:
            _fail(str(exc))
        try:
            host, port = server.parse_bind(bind or str(cfg.daemon.get(
                "bind", server.DEFAULT_BIND)))
            auth = load_auth(tokens)
            auth.check_bind(host)
            sock = server.bind_socket(host, port)
        except (AuthError, server.BindError) as exc:
            _fail(str(exc))
        gem_sock = _gem_socket(cfg)  # HSMS, when gem.enabled (docs/gem.md)
        path = Path(os.path.abspath(db)) if db else cfg.journal  # --db: from the cwd
        typer.echo(f"viaform: journal {path}", err=True)
        try:
            ensure_journal_dir(path)
        except JournalError as exc:
            _fail(str(exc))
        shown = f"[{host}]" if ":" in host else host
        claim = _claim(cfg, path, f"http://{shown}:{sock.getsockname()[1]}")
        try:  # a bad journal is one line, before any tool is touched
            Journal(path).close()
        except JournalError as exc:
            claim.release()
            _fail(str(exc))
        from sequencer.faces.http.engine_line import EngineLine

        audit = AuditLog(path)
        line = EngineLine(cfg, path, recipes_dir=recipes)
        what = f"tools of {cfg.path}, journal {path}"
        typer.echo(f"viaform daemon ({what}) on http://{shown}:{sock.getsockname()[1]} "
                   f"({'open: loopback, no tokens' if auth.open else 'tokens'})", err=True)
        faces = [] if gem_sock is None else [_gem_face(cfg, gem_sock, path, audit, recipes)]
        try:
            app_ = create_app(line, auth, audit, recipes_dir=recipes, faces=faces, journal=path)
            code = server.serve(app_, sock, "debug" if verbose else "warning")
        finally:
            audit.close()
            claim.release()
        raise typer.Exit(code)


def _claim(cfg: ToolsConfig, journal: Path, url: str) -> LineClaim:
    """Own the journal and the tools (sequencer/line/ownership.py) before any tool is touched."""
    try:
        return claim_line(cfg, journal, "viaform daemon", url=url)
    except ClaimError as exc:
        _fail(str(exc))


def _gem_socket(cfg: ToolsConfig) -> socket.socket | None:
    """The HSMS listen socket if ``gem.enabled``: beyond loopback only with
    ``gem.allow_hosts``, else one line and exit 2 (as the HTTP API without tokens)."""
    from sequencer.faces.gem.config import GemConfigError, bind_listen, check_bind, gem_config

    gem = gem_config(cfg)
    if not gem.enabled:
        return None
    try:
        check_bind(gem, str(cfg.path))
        return bind_listen(gem)
    except GemConfigError as exc:
        _fail(str(exc))


def _gem_face(cfg: ToolsConfig, sock: socket.socket, journal: Path, audit: AuditLog,
              recipes: Path | None) -> DaemonFace:
    from sequencer.faces.gem.config import gem_config
    from sequencer.faces.gem.face import GemFace

    host, port = sock.getsockname()[:2]
    typer.echo(f"viaform daemon: SECS/GEM (HSMS passive) on {host}:{port}", err=True)
    return GemFace(gem_config(cfg), sock, journal, audit, recipes)


def _fail(message: str) -> NoReturn:
    typer.echo(f"viaform daemon: {message}", err=True)
    sys.exit(2)
