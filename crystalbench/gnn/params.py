"""Typed GNN hyperparameters: the shared training recipe and field helpers (torch-free, imported at import time).

A torch model's hyperparameters are a frozen dataclass (see `crystalbench.contract.params`)
that extends `TrainingParams`, the recipe fields the shared training loop reads
(declared, typed and validated here once), and adds the model's own fields::

    @dataclass(frozen=True)
    class MyParams(TrainingParams):
        hidden: int = param(128, "hidden size")
        pooling: Literal["mean", "sum", "atom-sum"] = param("mean", "readout over atoms")
        epochs: int = param(500, "training epochs; the reference recipe's")   # a recipe default of its own

        def __post_init__(self) -> None:
            super().__post_init__()                     # the recipe fields: `check_training`
            check_positive(self, "hidden")

A model re-declares a recipe field only to give it its reference recipe's
default (and the citation in its doc); the type, the choices and the
validation stay here. Tables and records list a model's own fields first and
the recipe after them (`TrainingParams.params_last`, read by
`crystalbench.contract.params.ordered_fields`), whichever class declared a field.

`check_training` is the one set of rules for the training fields: the params
classes and `crystalbench.gnn.TrainConfig` both call it, so every GNN rejects
``epochs = 0`` or ``lr = -1`` with the same message before any work.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar, Literal, TypeVar

from crystalbench import POOLING_CHOICES, resolve_params

if TYPE_CHECKING:  # pragma: no cover
    from crystalbench import ModelContext

__all__ = [
    "param", "params_of", "check_training", "check_positive", "training_problems", "POOLINGS", "OPTIMIZERS",
    "SCHEDULERS", "Optimizer", "Scheduler", "TrainingParams", "BatchNormTrainingParams",
]

T = TypeVar("T")

# The GNN readouts (`crystalbench.gnn.heads`): mean or sum of the atom vectors before the output network, or
# "atom-sum", the paper's eq. 13 (output network per atom, then summed). Torch-free, for `ModelSpec.poolings`.
POOLINGS: tuple[str, ...] = POOLING_CHOICES

# The shared loop's optimizers and learning-rate schedules (`crystalbench.gnn.trainer.make_optimizer`).
Optimizer = Literal["adam", "adamw", "sgd"]
Scheduler = Literal["none", "onecycle", "multistep"]
OPTIMIZERS: tuple[str, ...] = ("adam", "adamw", "sgd")
SCHEDULERS: tuple[str, ...] = ("none", "onecycle", "multistep")


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


def training_problems(params: Any) -> list[str]:
    """What is wrong with the training fields `params` has (an empty list: nothing).

    The one set of rules for epochs, batch_size, lr, weight_decay, optimizer,
    scheduler, patience, momentum, lr_milestone (which must fall inside the run
    when the scheduler is multistep), dropout, grad_clip and the precise-BN
    settings, read by `check_training` (params dataclasses) and by `TrainConfig`.
    Fields a class does not have are skipped.
    """
    have = {f.name for f in dataclasses.fields(params)}

    def value(name: str) -> Any:
        return getattr(params, name)

    problems = []
    for name in ("epochs", "batch_size"):
        if name in have and value(name) < 1:
            problems.append(f"{name} must be >= 1, got {value(name)!r}")
    if "lr" in have and not value("lr") > 0:
        problems.append(f"lr must be > 0, got {value('lr')!r}")
    if "weight_decay" in have and not value("weight_decay") >= 0:
        problems.append(f"weight_decay must be >= 0, got {value('weight_decay')!r}")
    if "optimizer" in have and value("optimizer") not in OPTIMIZERS:
        problems.append(f"optimizer must be one of {', '.join(OPTIMIZERS)}, got {value('optimizer')!r}")
    if "scheduler" in have and value("scheduler") not in SCHEDULERS:
        problems.append(f"scheduler must be one of {', '.join(SCHEDULERS)}, got {value('scheduler')!r}")
    if "patience" in have and value("patience") is not None and value("patience") < 0:
        problems.append(f"patience must be >= 0 (0 or None: no early stopping), got {value('patience')!r}")
    if "momentum" in have and not 0.0 <= value("momentum") < 1.0:
        problems.append(f"momentum must be in [0, 1), got {value('momentum')!r}")
    if "lr_milestone" in have and value("lr_milestone") < 1:
        problems.append(f"lr_milestone must be >= 1, got {value('lr_milestone')!r}")
    if (
        "lr_milestone" in have and "epochs" in have and getattr(params, "scheduler", None) == "multistep"
        and value("lr_milestone") >= value("epochs")
    ):  # the step would never happen: a silent no-op
        problems.append(
            f"scheduler = multistep steps the lr at epoch {value('lr_milestone')}, after the last of {value('epochs')} "
            "epochs; lower lr_milestone or use scheduler = none"
        )
    if "dropout" in have and not 0.0 <= value("dropout") < 1.0:
        problems.append(f"dropout must be in [0, 1), got {value('dropout')!r}")
    if "grad_clip" in have and value("grad_clip") is not None and not value("grad_clip") > 0:
        problems.append(f"grad_clip must be > 0 (or None: no clipping), got {value('grad_clip')!r}")
    if "precise_bn_batches" in have and value("precise_bn_batches") < 1:
        problems.append(f"precise_bn_batches must be >= 1, got {value('precise_bn_batches')!r}")
    if "precise_bn_max_batches" in have and value("precise_bn_max_batches") is not None \
            and value("precise_bn_max_batches") < 1:
        problems.append(
            f"precise_bn_max_batches must be >= 1 (or None: always), got {value('precise_bn_max_batches')!r}"
        )
    tolerance = getattr(params, "precise_bn_tolerance", None)
    if tolerance is not None and not tolerance >= 0:
        problems.append(f"precise_bn_tolerance must be >= 0 (0: every epoch), got {tolerance!r}")
    return problems


def check_training(params: Any) -> None:
    """Raise ValueError naming every problem `training_problems` finds in `params`'s training fields.

    Optimizer/scheduler choices of a params dataclass are `Literal` fields, so
    the harness's params resolution has already refused other values with the
    list of choices; this check covers a dataclass built by hand.
    """
    _fail(params, training_problems(params))


@dataclass(frozen=True)
class TrainingParams:
    """The training recipe every torch model has, as typed hyperparameters (the fields `TrainConfig` reads).

    Defaults are the shared loop's (`TrainConfig`); a model's params class
    re-declares the fields whose reference recipe differs, with its source in
    the doc. Validated once, by `check_training`, when an instance is made.
    """

    # listed after a model's own fields in docs tables and records (`crystalbench.contract.params.ordered_fields`)
    params_last: ClassVar[bool] = True

    epochs: int = param(300, "training epochs")
    batch_size: int = param(64, "samples per optimisation step")
    optimizer: Optimizer = param("adam", "adam, adamw (decoupled weight decay) or sgd (with momentum)")
    scheduler: Scheduler = param("none", "constant lr, onecycle (per batch, peak lr) or multistep (x0.1 at lr_milestone)")
    lr: float = param(1e-3, "(peak) learning rate")
    weight_decay: float = param(0.0, "L2 penalty (decoupled for adamw)")
    momentum: float = param(0.9, "SGD momentum (optimizer = sgd only)")
    lr_milestone: int = param(100, "epoch of the x0.1 step (scheduler = multistep only)")
    patience: int | None = param(50, "early stopping after this many epochs without validation improvement; None: off")

    def __post_init__(self) -> None:
        check_training(self)


@dataclass(frozen=True)
class BatchNormTrainingParams(TrainingParams):
    """`TrainingParams` plus precise BatchNorm (`TrainConfig.precise_bn`): the recipe of a network with BatchNorm.

    Only networks with BatchNorm layers have these fields (CGCNN); for the
    others the shared loop's defaults apply and have no effect.
    """

    params_last: ClassVar[bool] = True

    precise_bn: bool = param(True, "recompute BatchNorm statistics before each validation (see TrainConfig)")
    precise_bn_batches: int = param(2, "training batches each recalibration averages over (1 was 9% worse on phonons, 4 no better)")
    precise_bn_tolerance: float | None = param(
        5.0, "recompute them only while the running averages drift this many std devs or more; 0: every epoch"
    )
