"""`viaform wafer …`: an operator's confirmation of a move, and a wafer's record.

    viaform wafer moved W01 [W02 …] --to oven     confirm that wafers were moved
    viaform wafer pending                         moves the sequencer waits for
    viaform wafer show W01                        state, results and history
                                                  (from the daemon, else the journal)
    viaform wafer plot W01 [--out F.png]          its oven profile and OES trace (PNG)
    viaform wafer release W01 [W02 …] --reason T  held wafers go on to their next step
    viaform wafer scrap W01 [W02 …] --reason T    held wafers end REJECTED

Release and scrap are an engineer's disposition of held (STOPPED) wafers: through the
daemon when one runs (its engineer-only routes, audited there); with no daemon, written
into the journal file itself (one transaction, all or nothing) and audited in the same
file's audit table. A ``viaform run`` on that journal keeps what it has in memory: it
never rewrites a final wafer's row, and the next ``viaform run`` of the lot resumes a
released wafer. A released wafer whose lot's job had finished (PROCESS_COMPLETE or
STOPPED: every wafer was final) re-opens that job (QUEUED, journaled).
"""

from __future__ import annotations

import getpass
import json
import time
from pathlib import Path
from typing import Annotated, Any

import typer

from sequencer.faces.cli.client import DaemonError, DaemonOpt, NoDaemon, call, connect, fail_from
from sequencer.faces.cli.plot import wafer_plot
from sequencer.line.config import ConfigError, load_tools
from sequencer.line.operator_moves import LOCATIONS, MoveBook
from sequencer.runner.clock import SeqClock
from sequencer.states.substrate import Substrate, dispose, disposition_refusal, held_from
from sequencer.store.journal import Journal, JournalError, written_time_scale

app = typer.Typer(help="Wafers: confirm moves (real tools), show a wafer's record, plot its "
                       "traces.", no_args_is_help=True)
app.command("plot")(wafer_plot)  # sequencer/faces/cli/plot.py

ConfigOpt = Annotated[Path | None, typer.Option("--config", help="tools.yaml")]
DbOpt = Annotated[Path | None, typer.Option("--db", help="journal (default: from tools.yaml)")]


def _fail(message: str, code: int = 1) -> typer.Exit:
    typer.echo(f"viaform wafer: {message}", err=True)
    return typer.Exit(code)


def _locations(config: Path | None) -> tuple[str, ...]:
    """The stocker and every tool of tools.yaml (the classic three if it cannot be read)."""
    try:
        tools = tuple(load_tools(config).kinds)
    except ConfigError:
        tools = ()
    return tuple(dict.fromkeys((*LOCATIONS, *tools)))


def _journal_path(config: Path | None, db: Path | None) -> Path:
    if db is not None:
        path = db
    else:
        try:
            path = load_tools(config).journal
        except ConfigError as exc:
            raise _fail(str(exc), 2) from None
    if not path.exists():
        raise _fail(f"no journal at {path}: nothing has run there yet", 2)
    return path


@app.command()
def moved(
    wafers: Annotated[list[str], typer.Argument(help="wafer id(s)")],
    to: Annotated[str, typer.Option("--to", help=f"where to: {', '.join(LOCATIONS)} or another "
                                                 f"tool's name")],
    by: Annotated[str | None, typer.Option("--by", help="who moved them")] = None,
    config: ConfigOpt = None,
    db: DbOpt = None,
) -> None:
    """Confirm that wafers were moved (operator handling on real tools)."""
    known = _locations(config)
    if to not in known:
        raise _fail(f"--to {to!r}: choose from {', '.join(known)}", 2)
    book = MoveBook(_journal_path(config, db))
    try:
        book.confirm(wafers, to, by or getpass.getuser())
    except ValueError as exc:
        raise _fail(str(exc), 2) from None
    finally:
        book.close()
    typer.echo(f"confirmed: {', '.join(wafers)} now at {to}")


@app.command()
def pending(config: ConfigOpt = None, db: DbOpt = None, as_json: Annotated[
        bool, typer.Option("--json", help="machine-readable")] = False) -> None:
    """The moves the sequencer is waiting for."""
    book = MoveBook(_journal_path(config, db))
    try:
        rows = book.pending()
    finally:
        book.close()
    if as_json:
        typer.echo(json.dumps([{"wafer": w, "to": d, "requested_at": t} for w, d, t in rows]))
        return
    if not rows:
        typer.echo("no moves pending")
    for wafer_id, dest, _ in rows:
        typer.echo(f"move {wafer_id} to {dest}  (then: viaform wafer moved {wafer_id} --to {dest})")


@app.command()
def show(
    wafer_id: Annotated[str, typer.Argument(help="wafer id")],
    daemon: DaemonOpt = None,
    config: ConfigOpt = None,
    db: DbOpt = None,
    as_json: Annotated[bool, typer.Option("--json", help="machine-readable")] = False,
) -> None:
    """A wafer's state, results and full history (from the daemon, else the journal)."""
    client = connect(daemon, config, required=False)
    view = call(client, "GET", f"/wafers/{wafer_id}") if client is not None else \
        _from_journal(wafer_id, config, db)
    if as_json:
        typer.echo(json.dumps(view, indent=2))
        return
    reason = f" — {view['reason']}" if view.get("reason") else ""
    typer.echo(f"wafer {view['wafer_id']} (lot {view['lot_id']}, slot {view['slot']}): "
               f"{view['state']} at {view['location']}{reason}")
    ran = [(k.split(".")[0], v) for k, v in view.get("data", {}).items() if k.endswith(".tool")]
    if ran:
        typer.echo("  ran on: " + ", ".join(f"{step} {tool}" for step, tool in ran))
    for key, value in view.get("data", {}).items():
        typer.echo(f"  {key}: {value}")
    for h in view["history"]:
        when = time.strftime("%H:%M:%S", time.localtime(h["t"]))
        step = f" [{h['step']}]" if h["step"] else ""
        typer.echo(f"  {when} {h['state']:<16} {h['location']:<9}{step} {h['note']}")


def _from_journal(wafer_id: str, config: Path | None, db: Path | None) -> dict[str, Any]:
    from sequencer.store.history import History

    path = _journal_path(config, db)
    try:
        cfg = load_tools(config)
        scale, kinds = cfg.time_scale, cfg.kinds
    except ConfigError:
        scale, kinds = 1.0, {}
    hist = History(path, scale, kinds)
    try:
        row = hist.wafer(wafer_id)
        if row is None:
            raise _fail(f"no wafer {wafer_id!r} in {path}", 1)
        lot_id, slot, state, data = row
        results = {f"{step}.{k}": v for step, r in hist.results(wafer_id).items()
                   for k, v in r.items() if not isinstance(v, list | dict)}
        return {"wafer_id": wafer_id, "lot_id": lot_id, "slot": slot, "state": state,
                "location": data.get("location", "?"), "reason": data.get("reason") or None,
                "data": results, "history": [vars(h) for h in hist.wafer_history(wafer_id)]}
    finally:
        hist.close()


ReasonOpt = Annotated[str, typer.Option("--reason", help="why (journaled and audited)")]
WafersArg = Annotated[list[str], typer.Argument(help="held wafer id(s)")]
#: final lot states a released wafer reopens (an ABORTED lot stays aborted)
_JOB_REOPENED = ("PROCESS_COMPLETE", "STOPPED")


@app.command()
def release(wafers: WafersArg, reason: ReasonOpt, daemon: DaemonOpt = None,
            config: ConfigOpt = None, db: DbOpt = None) -> None:
    """Held (STOPPED) wafers go on to the next step they have not done (engineer)."""
    _dispose_cmd("release", wafers, reason, daemon, config, db)


@app.command()
def scrap(wafers: WafersArg, reason: ReasonOpt, daemon: DaemonOpt = None,
          config: ConfigOpt = None, db: DbOpt = None) -> None:
    """Held (STOPPED) wafers end REJECTED (engineer)."""
    _dispose_cmd("scrap", wafers, reason, daemon, config, db)


def _next_step(data: dict[str, Any]) -> str:
    if not data.get("developed"):
        return "expose+develop"
    if not data.get("cured"):
        return "cure"
    return "etch" if not data.get("etched") else "none"


def _dispose_cmd(action: str, wafers: list[str], reason: str, daemon: str | None,
                 config: Path | None, db: Path | None) -> None:
    twice = sorted({w for w in wafers if wafers.count(w) > 1})
    if twice:
        raise _fail(f"{action}: given more than once: {', '.join(twice)}", 2)
    if not reason.strip():
        raise _fail(f"{action}: --reason must say why", 2)
    client = connect(daemon, config, required=False)
    if client is not None:
        try:
            views = client.post(f"/wafers/{action}", {"wafers": wafers, "reason": reason})
        except DaemonError as exc:
            if exc.status in (404, 409):  # the user's wafer list: not known / not held
                raise _fail(exc.detail, 2) from None
            fail_from(exc)
        except NoDaemon as exc:
            fail_from(exc)
        rows = [(v["wafer_id"], v["state"], _next_step(v.get("data", {}))) for v in views]
    else:
        rows = dispose_in_journal(_journal_path(config, db), wafers, action, reason,
                                  getpass.getuser(), _scale(config))
    for wid, state, nxt in rows:
        then = f" (next: {nxt})" if action == "release" else ""
        typer.echo(f"{action}d {wid}: {state}{then}".replace("scrapd", "scrapped"))


def _scale(config: Path | None) -> float:
    try:
        return load_tools(config).time_scale
    except ConfigError:
        return 1.0


class _Refusal(Exception):
    pass


def dispose_in_journal(path: Path, wafer_ids: list[str], action: str, reason: str,
                       who: str, time_scale: float = 1.0) -> list[tuple[str, str, str]]:
    """Release or scrap held wafers in the journal file (no daemon): (id, state, next step).

    All or nothing, in one ``BEGIN IMMEDIATE`` transaction (a run's writes wait for it):
    an unknown wafer, or one that :func:`disposition_refusal` refuses, exits 2 naming it
    and nothing changes. Audited (who, when, reason) in the journal file's audit table,
    refusals included, as the daemon audits its routes.
    """
    from sequencer.store.audit import AuditLog

    try:
        journal = Journal(path)
    except JournalError as exc:
        raise _fail(str(exc), 2) from None
    # in the journal's own time scale (a demo journal's is not the tools.yaml's)
    journal.now = SeqClock(written_time_scale(journal.db) or time_scale).now
    audit = AuditLog(path)
    args = {"wafers": wafer_ids, "reason": reason}
    try:
        try:
            rows = _dispose_rows(journal, wafer_ids, action, reason, who)
        except _Refusal as exc:
            audit.record(who, "local", "wafer", action, args, "refused", str(exc))
            raise _fail(str(exc), 2) from None
        audit.record(who, "local", "wafer", action, args, "ok",
                     ", ".join(f"{w} {st}" for w, st, _ in rows))
        return rows
    finally:
        audit.close()
        journal.close()


def _dispose_rows(journal: Journal, wafer_ids: list[str], action: str, reason: str,
                  who: str) -> list[tuple[str, str, str]]:
    def journaled(w: Substrate, src: str, dst: str, why: str) -> None:
        journal.wafer_transition(w.wafer_id, src, dst, why, w.data_dict())

    out: list[tuple[str, str, str]] = []
    with journal.atomic():
        ws: list[Substrate] = []
        for wid in wafer_ids:
            row = journal.db.execute("SELECT lot_id, slot, state, data FROM wafers "
                                     "WHERE wafer_id=?", (wid,)).fetchone()
            if row is None:
                raise _Refusal(f"no wafer {wid!r} in {journal.path}")
            w = Substrate(wid, row[0], int(row[1]), listener=journaled)
            w.restore(row[2], json.loads(row[3]))
            why = disposition_refusal(w, action)
            job = journal.lot_state(w.lot_id)
            if why is None and action == "release" and job in ("ABORTING", "ABORTED"):
                why = f"{wid}: lot {w.lot_id} is {job}: nothing resumes"
            if why is not None:
                raise _Refusal(why)
            ws.append(w)
        for w in ws:
            dispose(w, action, reason, who, held_from(journal.transitions(w.wafer_id)))
            out.append((w.wafer_id, w.state, _next_step(w.data_dict())))
        if action == "release":
            for lot_id in dict.fromkeys(w.lot_id for w in ws):
                job = journal.lot_state(lot_id)
                if job in _JOB_REOPENED:
                    journal.set_lot_state(lot_id, str(job), "QUEUED")
    return out
