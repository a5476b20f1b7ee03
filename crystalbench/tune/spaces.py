"""Search spaces of `bench tune`: named dimensions over a model's typed hyperparameters.

A space is data (`SearchSpace` of `Choice` and `Range` dimensions) loaded from
`--space`: ``paper`` (Gong et al. 2023, Table S2 for the CGCNN family or S3 for
the ALIGNN family, in our models' parameter names) or a TOML ``[params]`` table.
Every candidate value is checked against the model's typed parameters when the
space is loaded, so a typo is one error line before any trial runs. The study
driver (`crystalbench.tune.study`) asks Optuna for points of it (`suggest`) or
walks its grid (`grid_points`).
"""

from __future__ import annotations

import dataclasses
import itertools
import math
import random
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from crystalbench.contract.errors import BadInputError
from crystalbench.contract.params import resolve_params
from crystalbench.contract.specs import ModelSpec
from crystalbench.contract.store import digest, read_input_text

__all__ = ["Choice", "Range", "SearchSpace", "PAPER_SPACES", "load_space", "grid_points", "suggest"]


@dataclass(frozen=True)
class Choice:
    """A categorical dimension: one of these values."""

    values: tuple[Any, ...]


@dataclass(frozen=True)
class Range:
    """A numeric dimension from `low` to `high` (ints when both are ints), log-uniform when `log`."""

    low: float
    high: float
    log: bool = False

    @property
    def integer(self) -> bool:
        return isinstance(self.low, int) and isinstance(self.high, int)


@dataclass(frozen=True)
class SearchSpace:
    """Named dimensions over a model's typed hyperparameters."""

    name: str
    dims: Mapping[str, Choice | Range]

    @property
    def digest(self) -> str:
        return digest({k: dataclasses.asdict(v) | {"kind": type(v).__name__} for k, v in sorted(self.dims.items())}, 12)

    @property
    def grid_size(self) -> int | None:
        """Points of the full grid (None when a dimension is a range)."""
        if any(isinstance(d, Range) for d in self.dims.values()):
            return None
        return math.prod([len(d.values) for d in self.dims.values() if isinstance(d, Choice)])


# Gong et al. 2023, Tables S2 (CGCNN family) and S3 (ALIGNN family), in our models' parameter names.
PAPER_SPACES: dict[str, dict[str, tuple[Any, ...]]] = {
    "S2": {"atom_fea_len": (32, 64), "h_fea_len": (64, 128), "n_h": (1, 2, 3), "lr": (1e-3, 1e-2)},
    "S3": {"edge_input_features": (40, 80), "hidden_features": (64, 128, 256), "triplet_input_features": (20, 40),
           "lr": (1e-3, 1e-2)},
}


def _fields(spec: ModelSpec) -> set[str]:
    return {f.name for f in dataclasses.fields(spec.params_class)}


def _check_values(spec: ModelSpec, name: str, values: list[Any]) -> None:
    """Every candidate must be a valid value of the model's typed parameter (one error line otherwise)."""
    for v in values:
        resolve_params(spec.name, spec.params_class, {name: v}, strict_layers=(0,))


def load_space(arg: str, spec: ModelSpec) -> SearchSpace:
    """`paper` (Table S2 or S3, chosen by the model's parameters) or a TOML file with a `[params]` table.

    TOML values: a list is a categorical choice (`lr = [1e-3, 1e-2]`); a table
    `{low = 1e-4, high = 1e-2, log = true}` a range. Keys must be the model's
    hyperparameters and values of their types.
    """
    have = _fields(spec)
    if arg == "paper":
        for label, paper_dims in PAPER_SPACES.items():
            if set(paper_dims) <= have:
                return SearchSpace(f"paper-{label}", {k: Choice(v) for k, v in paper_dims.items()})
        raise BadInputError(f"--space paper: model {spec.name!r} has neither the CGCNN (Table S2) nor the ALIGNN "
                            "(Table S3) hyperparameters; give a TOML space")
    path = Path(arg)
    try:
        raw = tomllib.loads(read_input_text(path, "--space"))
    except BadInputError as exc:
        raise BadInputError(f"--space {arg}: not 'paper' and not a readable TOML file ({exc})") from None
    except (tomllib.TOMLDecodeError, RecursionError) as exc:
        raise BadInputError(f"--space {arg}: not 'paper' and not a readable TOML file ({exc})") from None
    table = raw.get("params")
    if not isinstance(table, dict) or not table:
        raise BadInputError(f"--space {arg}: needs a non-empty [params] table")
    dims: dict[str, Choice | Range] = {}
    for key, value in table.items():
        if key not in have:
            raise BadInputError(f"--space {arg}: {key!r} is not a hyperparameter of {spec.name!r} "
                                f"(see `bench list models --json`)")
        dims[key] = _dimension(arg, spec, key, value)
    return SearchSpace(path.stem, dims)


def _dimension(arg: str, spec: ModelSpec, key: str, value: Any) -> Choice | Range:
    """One `[params]` entry of a TOML space: a list of values or a `{low, high, log}` table."""
    if isinstance(value, list):
        if not value:
            raise BadInputError(f"--space {arg}: {key} has no values")
        _check_values(spec, key, value)
        return Choice(tuple(value))
    if isinstance(value, dict) and {"low", "high"} <= set(value) and set(value) <= {"low", "high", "log"}:
        low, high = value["low"], value["high"]
        if not all(isinstance(x, (int, float)) and not isinstance(x, bool) for x in (low, high)) or low >= high:
            raise BadInputError(f"--space {arg}: {key} needs numbers low < high")
        if value.get("log") and low <= 0:
            raise BadInputError(f"--space {arg}: {key} with log = true needs low > 0")
        _check_values(spec, key, [low, high])
        return Range(low, high, bool(value.get("log", False)))
    raise BadInputError(f"--space {arg}: {key} must be a list of values or {{low, high, log}}")


def grid_points(space: SearchSpace, seed: int) -> list[dict[str, Any]]:
    """Every point of a finite space, in a seeded order (so a partial grid is not biased to the first values)."""
    names = list(space.dims)
    points = [dict(zip(names, combo, strict=True))
              for combo in itertools.product(*(space.dims[n].values for n in names))]  # type: ignore[union-attr]
    random.Random(seed).shuffle(points)
    return points


def suggest(trial: Any, space: SearchSpace) -> dict[str, Any]:
    """The parameters of an Optuna `trial`, one value per dimension of `space`."""
    out = {}
    for name, d in space.dims.items():
        if isinstance(d, Choice):
            out[name] = trial.suggest_categorical(name, list(d.values))
        elif d.integer:
            out[name] = trial.suggest_int(name, int(d.low), int(d.high), log=d.log)
        else:
            out[name] = trial.suggest_float(name, float(d.low), float(d.high), log=d.log)
    return out
