"""`viaform recipe`: check recipe, flow and lot files before they reach a tool.

``check`` prints every problem of every file as ``FILE: place: message`` and
exits 1 if any file has one; a good file gets one summary line. ``show`` prints
what a flow (or a lot's flow) will program into each tool, with the model's
expectations.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from sequencer.process.recipe_fields import fmt
from sequencer.process.recipe_files import inspect_file
from sequencer.process.recipes import CureRecipe, EtchRecipe, ExposureRecipe, Flow, Lot

app = typer.Typer(help="Check and show recipes, flows and lots.", no_args_is_help=True)
RecipesDir = Annotated[Path | None, typer.Option(
    "--recipes-dir", help="where flows' recipes and lots' flows are found "
                          "(default: beside the file, see docs/recipes.md)")]


def _exposure(r: ExposureRecipe) -> str:
    if r.dose_mj_cm2 >= r.dose_to_clear():
        what = "opens the resin (flow B)"
    else:
        what = f"residual ~{r.expected_residual_um():.2f} um before cure (flow A)"
    return (f"exposure {r.name}, {fmt(r.dose_mj_cm2)} mJ/cm² on {fmt(r.film_um)} um "
            f"(E0 {fmt(r.dose_to_clear())}), {what}")


def _cure(r: CureRecipe) -> str:
    n = len(r.segments)
    return (f"cure {r.name}, {n} segment{'s' if n != 1 else ''}, max {fmt(r.max_target_c())} °C, "
            f"~{r.estimated_minutes() / 60:.1f} h")


def _etch(r: EtchRecipe) -> str:
    main = f"fixed main etch {r.main_etch_s} s" if r.main_etch_s is not None else "main etch " \
        f"= residual ÷ {fmt(r.rate_nm_per_min)} nm/min"
    return (f"etch {r.name}, O2/CF4 {fmt(r.o2_sccm)}/{fmt(r.cf4_sccm)} sccm, "
            f"{fmt(r.rf_power_w)} W, {fmt(r.pressure_mtorr)} mTorr, {main}, "
            f"overetch {r.overetch_pct} %")


def _flow(f: Flow) -> str:
    chain = " → ".join(r.name for r in (f.exposure, f.cure, f.etch))
    if f.variant == "A":
        tail = (f"residual after cure ~{f.residual_after_cure_um():.2f} um, "
                f"main etch ~{f.main_etch_s()} s")
    else:
        tail = f"through-hole at exposure, recess etch {f.main_etch_s()} s"
    return f"flow {f.name} (variant {f.variant}): {chain}, {tail}"


def _lot(lot: Lot) -> str:
    slots = [w.slot for w in lot.wafers]
    n = len(lot.wafers)
    return (f"lot {lot.lot_id}, {n} wafer{'s' if n != 1 else ''} in slots "
            f"{min(slots)}–{max(slots)}, "
            f"flow {lot.flow.name} (variant {lot.flow.variant})")


SUMMARIES: dict[type, Any] = {ExposureRecipe: _exposure, CureRecipe: _cure, EtchRecipe: _etch,
                              Flow: _flow, Lot: _lot}


def summary(obj: object) -> str:
    """One line saying what a good file holds."""
    return SUMMARIES[type(obj)](obj)


@app.command()
def check(files: Annotated[list[Path], typer.Argument(help="recipe, flow or lot files")],
          recipes_dir: RecipesDir = None) -> None:
    """Print every problem of every file; exit 1 if any file has one."""
    failed = False
    for path in files:
        obj, problems = inspect_file(path, recipes_dir)
        for problem in problems:
            typer.echo(f"{path}: {problem}")
        if problems or obj is None:
            failed = True
        else:
            typer.echo(f"{path}: OK — {summary(obj)}")
    raise typer.Exit(1 if failed else 0)


def flow_settings(flow: Flow) -> list[tuple[str, str]]:
    """(tool, settings) lines: what each step will program, with the model's numbers."""
    e, c, t = flow.exposure, flow.cure, flow.etch
    segs = ", ".join(f"{fmt(s.ramp_c_per_min)} °C/min → {fmt(s.target_c)} °C hold {s.hold_min} min"
                     for s in c.segments)
    residual = flow.residual_after_cure_um()
    return [
        ("exposure", f"{e.name}: dose {fmt(e.dose_mj_cm2)} mJ/cm², focus {fmt(e.focus_um)} um, "
                     f"develop {e.develop_s} s, reticle {e.reticle}; expected depth "
                     f"{e.expected_depth_um():.2f} um, residual {e.expected_residual_um():.2f} um"),
        ("oven", f"{c.name}: {segs}; O2 ≤ {c.o2_limit_ppm} ppm, N2 {fmt(c.n2_flow_slm)} slm, "
                 f"high limit {fmt(c.high_limit())} °C, unload < {fmt(c.unload_c)} °C, "
                 f"~{c.estimated_minutes():.0f} min"),
        ("etcher", f"{t.name}: O2 {fmt(t.o2_sccm)} / CF4 {fmt(t.cf4_sccm)} sccm, "
                   f"{fmt(t.pressure_mtorr)} mTorr, {fmt(t.rf_power_w)} W, ETCH:TIME "
                   f"{t.etch_time_s_for(residual)} s, overetch {t.overetch_pct} %, endpoint "
                   f"{'ON' if t.endpoint else 'OFF'}, target {flow.etch_target_um():.2f} um; "
                   f"resin on the field after etch ~"
                   f"{flow.top_after_cure_um() - t.resin_removed_um(flow.main_etch_s()):.2f} um"),
    ]


@app.command()
def show(file: Annotated[Path, typer.Argument(help="a flow or lot file")],
         recipes_dir: RecipesDir = None) -> None:
    """Print what each tool will be given for a flow (or a lot's flow)."""
    obj, problems = inspect_file(file, recipes_dir)
    for problem in problems:
        typer.echo(f"{file}: {problem}")
    if problems or obj is None:
        raise typer.Exit(1)
    typer.echo(f"{file}: {summary(obj)}")
    flow = obj.flow if isinstance(obj, Lot) else obj
    if isinstance(flow, Flow):
        for tool, text in flow_settings(flow):
            typer.echo(f"  {tool:<8} {text}")
