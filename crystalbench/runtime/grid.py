"""What a grid asks for (`GridRequest`) and the rules that turn its settings into one job's parameters.

Kept apart from the runner that plans and runs grids: the stage that records a
job (`stages.recipe_differences`) resolves the model's own recipe with the same
rules (`resolve_job_params`), and it must not import the runner, which imports
the stages (an import loop; see pyproject's import-linter contracts).
"""

from __future__ import annotations

import dataclasses
import difflib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from crystalbench.contract.errors import BadInputError
from crystalbench.contract.params import params_to_dict, resolve_params
from crystalbench.contract.specs import ModelSpec, TaskSpec

if TYPE_CHECKING:
    from crystalbench.runtime.registry import Registry

__all__ = ["GridRequest", "resolve_job_params", "check_config", "check_seeds", "epochs_note", "model_fields",
           "SEED_MAX"]


@dataclass
class GridRequest:
    """What the user asked for: the grid's axes plus the settings that become job parameters."""

    models: list[str]
    tasks: list[str]
    protocol: str | None = None
    seeds: list[int] = field(default_factory=lambda: [0])
    folds: list[int] | None = None
    epochs: int | None = None
    pooling: str | None = None
    descriptors: str | None = None
    config: Mapping[str, Any] = field(default_factory=dict)
    split_file: Path | None = None
    rerun: bool = False
    extra_tasks: Mapping[str, TaskSpec] = field(default_factory=dict)
    # how worker processes re-create `extra_tasks` (their specs hold closures): `executors.base.TaskRecipe`
    # values (typed loosely: the executors import the stages, which import this module)
    task_recipes: Mapping[str, Any] = field(default_factory=dict)
    # say when a job replaces records of the same model and task with other inputs; off for
    # tuning trials, which differ from each other by design
    explain_changes: bool = True


def model_fields(spec: ModelSpec) -> set[str]:
    """The settings a model takes: its typed hyperparameters, plus `pooling` when it offers poolings."""
    return {f.name for f in dataclasses.fields(spec.params_class)} | ({"pooling"} if spec.poolings else set())


def check_config(reg: Registry, config: Mapping[str, Any], models: list[ModelSpec]) -> None:
    """Config typos are errors: a top-level key no model has, a [table] naming no model."""
    every = {f for spec in reg.models.values() for f in model_fields(spec)}
    for key, value in config.items():
        if isinstance(value, Mapping):
            if key not in reg.models:
                close = difflib.get_close_matches(key, list(reg.models), n=3)
                hint = f"; did you mean {', '.join(repr(c) for c in close)}?" if close else ""
                raise BadInputError(f"config: [{key}] is not a model{hint} (see `bench list models`)")
            continue
        if key not in every:
            close = difflib.get_close_matches(key, sorted(every), n=3)
            hint = f"; did you mean {', '.join(repr(c) for c in close)}?" if close else ""
            raise BadInputError(f"config: top-level key {key!r} is not a hyperparameter of any model{hint}")
    for spec in models:
        section = config.get(spec.name)
        if isinstance(section, Mapping):
            resolve_params(spec.name, spec.params_class, section, strict_layers=(0,))


def resolve_job_params(spec: ModelSpec, task: TaskSpec, req: GridRequest) -> dict[str, Any]:
    """defaults < config top-level keys < [model] table < CLI flags; pooling chosen here and only here."""
    top = {k: v for k, v in req.config.items() if not isinstance(v, Mapping)}
    section = dict(req.config.get(spec.name) or {})
    flags: dict[str, Any] = {}
    if req.epochs is not None and "epochs" in model_fields(spec):
        flags["epochs"] = req.epochs
    if spec.poolings:
        pooling = req.pooling or section.get("pooling") or top.get("pooling") or spec.default_pooling or (
            "sum" if task.extensive else "mean"
        )
        if pooling not in spec.poolings:
            raise BadInputError(f"model {spec.name!r} supports pooling {', '.join(spec.poolings)}, not {pooling!r}")
        flags["pooling"] = pooling
    top.pop("pooling", None)
    section_params = {k: v for k, v in section.items() if k != "pooling" or "pooling" in model_fields(spec)}
    params = resolve_params(spec.name, spec.params_class, top, section_params, flags, strict_layers=(1,))
    out = params_to_dict(params)
    if spec.poolings and "pooling" not in out:
        out["pooling"] = flags["pooling"]
    return out


SEED_MAX = 2**32 - 1  # numpy's seed range: a seed outside it fails only when the split is drawn


def check_seeds(seeds: Sequence[int]) -> None:
    """A seed numpy cannot take is a bad argument, refused before anything runs (not a traceback mid-grid)."""
    for seed in seeds:
        if isinstance(seed, bool) or not isinstance(seed, int) or not 0 <= seed <= SEED_MAX:
            raise BadInputError(f"--seed {seed}: a seed is an integer from 0 to {SEED_MAX}")


def epochs_note(reg: Registry, models: Sequence[str], epochs: int | None) -> str | None:
    """`--epochs` must change something: an error when no model of the grid trains for epochs, and a
    note naming the models it does not apply to in a mixed grid (`-m dummy -m rf -m cgcnn --epochs 150`
    is the usual way to shorten a grid's GNN runs, so it is allowed)."""
    if epochs is None:
        return None
    names = list(dict.fromkeys(reg.model(m).name for m in models))
    without = [m for m in names if "epochs" not in model_fields(reg.model(m))]
    if not without:
        return None
    if len(without) == len(names):
        raise BadInputError(f"--epochs {epochs}: {', '.join(without)} train(s) for no epochs, so the flag would "
                            "change nothing (drop it)")
    return f"--epochs {epochs} applies to {', '.join(m for m in names if m not in without)}; " \
           f"{', '.join(without)} train(s) for no epochs"
