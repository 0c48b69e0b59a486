"""Recipe, flow and lot files of any kind: inspect, check, load.

The top of the loaders: it dispatches on a file's top-level key to the rules in
``recipe_check`` (recipes, flows) and ``lots``, which never import it back
(arrows: recipe_files → lots → recipe_check → recipe_fields → recipes). ``load_*``
raise ``RecipeError`` carrying every problem; ``check_file`` returns them.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sequencer.process.lots import parse_lot
from sequencer.process.recipe_check import (
    default_recipes_dir,
    name_problem,
    parse_flow,
    parse_recipe,
)
from sequencer.process.recipe_fields import read_document
from sequencer.process.recipes import Flow, Problem, Recipe, RecipeError


def inspect_file(path: Path | str,
                 recipes_dir: Path | str | None = None) -> tuple[Any, list[Problem]]:
    """(the loaded object or None, every problem) for any recipe, flow or lot file.

    A flow's recipes are looked up in ``recipes_dir``, else next to the flow file.
    """
    path = Path(path)
    kind, body, problems = read_document(path)
    if kind is None:
        return None, problems
    if kind == "lot":
        lot, lot_problems = parse_lot(body, path, recipes_dir)
        return lot, problems + lot_problems
    if kind == "flow":
        flow, flow_problems = parse_flow(body, Path(recipes_dir or path.parent))
        problems += flow_problems
        if flow is not None:
            problems += name_problem(flow, path, "flow")
        return (None if problems else flow), problems
    rec, rec_problems = parse_recipe(kind, body, kind, None)
    problems += rec_problems + name_problem(rec, path, kind)
    return (None if problems else rec), problems


def check_file(path: Path | str) -> list[Problem]:
    """Every problem in the file; an empty list means it is good."""
    return inspect_file(path)[1]


def load_recipe(path: Path | str) -> Recipe | Flow:
    obj, problems = inspect_file(path)
    if problems or obj is None or not isinstance(obj, Recipe | Flow):
        raise RecipeError(str(path), problems or [Problem("file", "not a recipe or flow")])
    return obj


def load_flow(name_or_path: Path | str, recipes_dir: Path | str | None = None) -> Flow:
    """A flow by name (found in ``recipes_dir``, default configs/recipes) or by file path."""
    given = Path(name_or_path)
    if given.suffix in (".yaml", ".yml") or given.is_file():
        path = given
    else:
        path = Path(recipes_dir or default_recipes_dir()) / f"{name_or_path}.yaml"
    obj, problems = inspect_file(path, recipes_dir)
    if not problems and not isinstance(obj, Flow):
        problems = [Problem("file", f"{path} is not a flow")]
    if problems:
        raise RecipeError(str(path), problems)
    return obj
