"""Helpers for typed GNN hyperparameters (torch-free, imported by plugin modules at import time).

A model's hyperparameters are a frozen dataclass (see `crystalbench.harness.params`)
whose fields carry their documentation::

    @dataclass(frozen=True)
    class MyParams:
        epochs: int = param(300, "maximum training epochs")
        pooling: Literal["mean", "sum", "atom-sum"] = param("mean", "readout over atoms")

        def __post_init__(self) -> None:
            check_training(self)

`check_training` validates the fields the shared training loop reads, so every
GNN rejects ``epochs = 0`` or ``lr = -1`` with the same message before any work.
"""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING, Any, TypeVar

from crystalbench.harness.params import POOLING_CHOICES, resolve_params

if TYPE_CHECKING:  # pragma: no cover
    from crystalbench.harness.specs import ModelContext

__all__ = ["param", "params_of", "check_training", "check_positive", "POOLINGS"]

T = TypeVar("T")

# The GNN readouts (`crystalbench.gnn.heads`): mean or sum of the atom vectors before the output network, or
# "atom-sum", the paper's eq. 13 (output network per atom, then summed). Torch-free, for `ModelSpec.poolings`.
POOLINGS: tuple[str, ...] = POOLING_CHOICES


def param(default: T, doc: str) -> T:
    """A dataclass field with a default and its documentation (field metadata "doc", shown by `params_table`)."""
    return dataclasses.field(default=default, metadata={"doc": doc})


def params_of(ctx: ModelContext, name: str, cls: type[T]) -> T:
    """The model's typed hyperparameters: `ctx.params` as the harness resolved them.

    A `ModelContext` built by hand (tests, scripts) may carry only `hparams`, or
    params of another class: they are then resolved into `cls` by the harness
    rules (`resolve_params`: defaults overridden by those values, unknown keys
    rejected, types and choices checked).
    """
    if isinstance(ctx.params, cls):
        return ctx.params
    source: dict[str, Any]
    if ctx.params is None:
        source = dict(ctx.hparams)
    elif dataclasses.is_dataclass(ctx.params) and not isinstance(ctx.params, type):
        source = {f.name: getattr(ctx.params, f.name) for f in dataclasses.fields(ctx.params)}
    else:
        source = dict(ctx.params)
    resolved: T = resolve_params(name, cls, source, strict_layers=(0,))
    return resolved


def _fail(params: Any, problems: list[str]) -> None:
    if problems:
        raise ValueError(f"invalid {type(params).__name__}: " + "; ".join(problems))


def check_positive(params: Any, *names: str, allow_zero: bool = False) -> None:
    """Raise ValueError unless every named numeric field is > 0 (>= 0 with `allow_zero`)."""
    problems = []
    for name in names:
        value = getattr(params, name)
        ok = value >= 0 if allow_zero else value > 0
        if not ok:  # NaN fails too
            problems.append(f"{name} must be {'>= 0' if allow_zero else '> 0'}, got {value!r}")
    _fail(params, problems)


def check_training(params: Any) -> None:
    """Validate the shared training fields a params dataclass has.

    epochs, batch_size, lr, weight_decay, patience, momentum, lr_milestone
    (which must fall inside the run when the scheduler is multistep),
    dropout and the precise-BN settings; optimizer/scheduler choices are `Literal` fields, checked by the
    harness's params resolution.
    """
    have = {f.name for f in dataclasses.fields(params)}
    problems = []
    for name in ("epochs", "batch_size"):
        if name in have and getattr(params, name) < 1:
            problems.append(f"{name} must be >= 1, got {getattr(params, name)!r}")
    if "lr" in have and not params.lr > 0:
        problems.append(f"lr must be > 0, got {params.lr!r}")
    if "weight_decay" in have and not params.weight_decay >= 0:
        problems.append(f"weight_decay must be >= 0, got {params.weight_decay!r}")
    if "patience" in have and params.patience is not None and params.patience < 0:
        problems.append(f"patience must be >= 0 (0 or None: no early stopping), got {params.patience!r}")
    if "momentum" in have and not 0.0 <= params.momentum < 1.0:
        problems.append(f"momentum must be in [0, 1), got {params.momentum!r}")
    if "lr_milestone" in have and params.lr_milestone < 1:
        problems.append(f"lr_milestone must be >= 1, got {params.lr_milestone!r}")
    if (
        "lr_milestone" in have and "epochs" in have and getattr(params, "scheduler", None) == "multistep"
        and params.lr_milestone >= params.epochs
    ):  # the step would never happen: a silent no-op
        problems.append(
            f"scheduler = multistep steps the lr at epoch {params.lr_milestone}, after the last of {params.epochs} "
            "epochs; lower lr_milestone or use scheduler = none"
        )
    if "dropout" in have and not 0.0 <= params.dropout < 1.0:
        problems.append(f"dropout must be in [0, 1), got {params.dropout!r}")
    if "precise_bn_batches" in have and params.precise_bn_batches < 1:
        problems.append(f"precise_bn_batches must be >= 1, got {params.precise_bn_batches!r}")
    tolerance = getattr(params, "precise_bn_tolerance", None)
    if tolerance is not None and not tolerance >= 0:
        problems.append(f"precise_bn_tolerance must be >= 0 (0: every epoch), got {tolerance!r}")
    _fail(params, problems)
