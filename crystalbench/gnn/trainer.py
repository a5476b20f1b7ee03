"""The shared training loop for torch models (CGCNN, ALIGNN, ROOST, third-party GNNs).

Every torch model in the benchmark trains the same way, so that differences in a
leaderboard come from the architectures and not from the loops around them:

- subnormal floats flushed to zero on CPU during training and prediction
  (`flush_denormal`: a large speed-up, values change by < 1.2e-38);
- seeded and deterministic on CPU: same seed, same data -> bit-identical
  predictions, whatever the intra-op thread count and whichever job of the
  process it is (torch's deterministic algorithms are switched on for the
  duration of `fit_torch` / `predict_torch` on CPU, so scatter-style backward
  passes inside third-party networks accumulate in a fixed order). The
  network is built and trained under torch's RNG forked and seeded with
  `seed` (`crystalbench.contract.seeding.torch_rng`): a fit is reproducible on
  its own and never reseeds the process's RNGs, which the harness seeds once
  per job;
- regression targets standardized with training statistics (MSE loss), metrics
  and early stopping in the task's units; classification with cross-entropy;
- the model's reference recipe: optimizer (Adam, AdamW or SGD with momentum) and
  learning-rate schedule (constant, one-cycle per step, or step decay at an epoch),
  shuffled mini-batches of *items* turned into a batch by a model-supplied
  ``collate(list_of_items)``; the module is called as ``module(batch)``;
- index-based batching when ``collate`` also offers ``index(items)``
  (`IndexedCollate`, e.g. `crystalbench.gnn.collate_graphs`): the data set is
  collated once, lives on the device once, and batches are index selections
  of it (same batches, same values as calling ``collate`` per batch), with no
  host synchronisation per batch on a GPU (the loss is summed on the device and
  checked for NaN once per epoch there);
- early stopping on validation MAE (regression) or accuracy (classification)
  with ``patience``, and the best epoch's weights restored (in-memory copy);
- a clear `NonFiniteLossError` when the loss, a validation prediction or a
  final prediction becomes NaN/inf: garbage is never returned as a result.

A model plugin uses it in three lines::

    cfg = TrainConfig.from_params(ctx.params, task_type=ctx.task_type, device=ctx.device)
    result = fit_torch(lambda: MyNet(...), train_items, train.targets, collate, cfg=cfg,
                       val_items=val_items, y_val=val.targets, seed=seed, progress=progress)
    y = predict_torch(result, test_items, collate)

This module imports torch at import time: plugin modules import it inside
their fit methods so that listing models stays fast.
"""

from __future__ import annotations

import contextlib
import ctypes
import dataclasses
import functools
import math
import sys
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field, fields
from typing import Any, Protocol, runtime_checkable

import numpy as np
import torch
from torch import nn

from crystalbench import BadInputError, CrystalbenchError, Dataset, Progress, TaskType, report_epoch, torch_rng

from .params import BatchNormTrainingParams, training_problems

__all__ = [
    "TrainConfig",
    "FitResult",
    "TargetScaler",
    "NonFiniteLossError",
    "resolve_device",
    "make_optimizer",
    "to_device",
    "deterministic",
    "flush_denormal",
    "reuse_freed_memory",
    "fit_torch",
    "predict_torch",
    "output_dim",
    "IndexedCollate",
    "IndexedItems",
]



class NonFiniteLossError(CrystalbenchError):
    """Training diverged: the loss, a validation prediction or a prediction became NaN/inf."""


@runtime_checkable
class IndexedItems(Protocol):
    """A whole data set collated once (`IndexedCollate.index`); batches are cut out of it by index."""

    def __len__(self) -> int: ...

    def to(self, device: torch.device) -> IndexedItems:
        """The same items with their tensors on `device` (called once per fit)."""
        ...

    def prepare(self, module: nn.Module) -> IndexedItems:
        """Let the module precompute weight-free inputs once (return `self` when there is nothing to do)."""
        ...

    def batches(self, groups: Sequence[np.ndarray]) -> list[Any]:
        """One batch per group of item indices, each equal to ``collate([items[i] for i in group])``."""
        ...


@runtime_checkable
class IndexedCollate(Protocol):
    """A collate function that also offers index-based batching (opt-in fast path of `fit_torch`)."""

    def __call__(self, items: list[Any]) -> Any: ...

    def index(self, items: Sequence[Any]) -> IndexedItems: ...


def _sync_per_batch(device: torch.device) -> bool:
    """Whether to read the loss back per batch: free on CPU (exact batch in a NaN error), a stall on a GPU."""
    return device.type == "cpu"


class _Batches:
    """Where a fit's batches come from: an `IndexedItems` when `collate` offers one, else ``collate`` per batch."""

    def __init__(
        self, items: Sequence[Any], collate: Callable[[list[Any]], Any], device: torch.device, module: nn.Module
    ) -> None:
        self.items, self.collate, self.device = items, collate, device
        self.indexed: IndexedItems | None = None
        if isinstance(collate, IndexedCollate):
            self.indexed = collate.index(items).to(device).prepare(module)
        self._in_order: list[Any] | None = None

    def of(self, groups: Sequence[np.ndarray]) -> Iterable[Any]:
        if self.indexed is not None:
            return self.indexed.batches(groups)
        return (to_device(self.collate([self.items[i] for i in g]), self.device) for g in groups)

    def in_order(self, batch_size: int) -> Iterable[Any]:
        """All items in order, `batch_size` at a time (cut once and reused on the indexed path)."""
        n = len(self.items)
        groups = [np.arange(s, min(s + batch_size, n)) for s in range(0, n, batch_size)]
        if self.indexed is None:
            return self.of(groups)
        if self._in_order is None:
            self._in_order = list(self.of(groups))
        return self._in_order


@dataclass(frozen=True)
class TrainConfig(BatchNormTrainingParams):
    """Optimisation settings shared by all torch models: a model's `TrainingParams` plus how this run trains.

    The recipe fields (epochs ... patience, precise_bn*) are `TrainingParams`'s
    (`crystalbench.gnn.params`), validated by the same rules (`training_problems`);
    the defaults below are the loop's when a model's params do not set them.

    epochs: maximum number of epochs (``--epochs`` overrides).
    batch_size: samples per optimisation step (also used for prediction).
    lr / weight_decay: (peak) learning rate and weight decay (L2 penalty for Adam
        and SGD, decoupled for AdamW).
    optimizer: "adam", "adamw" (ALIGNN's recipe) or "sgd" (with `momentum`;
        CGCNN's reference implementation).
    scheduler: "none" (constant), "onecycle" (torch OneCycleLR stepped per batch
        over `epochs`, peak `lr`: ALIGNN's recipe) or "multistep" (lr x 0.1 from
        epoch `lr_milestone` on: CGCNN's reference implementation).
    patience: stop after this many epochs without validation improvement;
        None or 0 disables early stopping (all `epochs` run, best epoch kept).
    device: "cpu", "cuda", "cuda:1", ... (checked by `resolve_device`).
    grad_clip: max gradient norm, None for no clipping.
    precise_bn: before every evaluation, recompute BatchNorm running statistics
        with the current weights over up to `precise_bn_batches` training
        batches (Wu & Johnson 2021, "precise BN"). The default exponential
        running averages lag behind fast-changing weights on small data sets
        (a few batches per epoch) and then eval-mode predictions disagree with
        what was trained: we measured 78% vs 100% training accuracy for a
        small CGCNN, and R^2 0.20 instead of 0.85 for CGCNN on chain1d_short.
        No effect on modules without BatchNorm.
    precise_bn_batches: training batches the recalibration averages over (2:
        on 1000 matbench_phonons structures 1 batch gave a 9% worse validation
        MAE, 2 the same as 4; docs/speed.md).
    precise_bn_tolerance: recalibrate only where it pays. Each recalibration
        measures how far the running averages had drifted from the recalibrated
        statistics (largest mean shift over all BatchNorm channels, in standard
        deviations). Below this tolerance the next recalibration is skipped for
        1, 2, 4, then up to 8 epochs (validation then uses the running
        averages); at or above it, recalibration is back to every epoch. 0 or
        None: every epoch. Measured drift: 23-78 sigma on chain1d_short (where precise
        BN decides R^2 0.85 vs 0.20), 0.2-2.1 sigma on matbench_phonons (where it
        made no difference): the default 5 separates them.
    precise_bn_max_batches: recalibrate only when an epoch has at most this many
        training batches (None: always). The running averages remember about
        1/momentum = 10 batches: with fewer batches per epoch they mix weights
        of several epochs, which is where precise BN pays. But chain1d_short and
        matbench_phonons both have ~13 batches per epoch and only the chains need
        it: `precise_bn_tolerance` tells them apart, this count does not.
    task_type: "regression" (MSE on standardized targets) or "classification"
        (cross-entropy on integer class targets; the module returns logits).
    """

    device: str = "cpu"
    grad_clip: float | None = None
    precise_bn_max_batches: int | None = None
    task_type: str = TaskType.REGRESSION

    def __post_init__(self) -> None:
        problems = training_problems(self)  # the rules `TrainingParams` checks, one set for both
        if not TaskType.has(self.task_type):
            problems.append(f"task_type must be regression or classification, got {self.task_type!r}")
        if problems:
            raise BadInputError("invalid training settings: " + "; ".join(problems))

    @classmethod
    def from_params(cls, params: Any, *, task_type: str = TaskType.REGRESSION, device: str = "cpu") -> TrainConfig:
        """The training fields of a model's typed hyperparameters (a dataclass); other fields ignored."""
        names = {f.name for f in fields(cls)} - {"task_type", "device"}
        kw = {f.name: getattr(params, f.name) for f in dataclasses.fields(params) if f.name in names}
        return cls(**kw, device=device or "cpu", task_type=task_type)


class TargetScaler:
    """Standardize regression targets with training mean/std (std 0 -> 1)."""

    def __init__(self, y: np.ndarray) -> None:
        y = np.asarray(y, dtype=float)
        self.mean = float(y.mean())
        std = float(y.std())
        self.std = std if std > 1e-12 else 1.0

    def transform(self, y: np.ndarray) -> np.ndarray:
        return (np.asarray(y, dtype=float) - self.mean) / self.std

    def inverse(self, z: np.ndarray) -> np.ndarray:
        return np.asarray(z, dtype=float) * self.std + self.mean


@dataclass
class FitResult:
    """What `fit_torch` returns: the trained module (best weights) and its history.

    best_val: validation MAE (task units) or accuracy at `best_epoch` (1-based;
        with no validation set, the last epoch and NaN).
    history: one dict per epoch: epoch, train_loss, val, seconds.
    torch_threads: torch's intra-op thread count during training.
    precise_bn: whether BatchNorm statistics were recalibrated (`TrainConfig.precise_bn_max_batches`).
    precise_bn_passes: epochs in which they were (`TrainConfig.precise_bn_tolerance`).
    pruned: a tuning trial's pruner stopped training (each validation is reported
        through `harness.telemetry.report_epoch`; a no-op outside `bench tune`).
    """

    module: nn.Module
    cfg: TrainConfig
    target_scaler: TargetScaler | None
    best_epoch: int
    best_val: float
    epochs_run: int
    stopped_early: bool
    val_metric: str
    history: list[dict[str, float]] = field(default_factory=list)
    torch_threads: int = 1
    desc: str = "model"
    precise_bn: bool = False
    precise_bn_passes: int = 0
    pruned: bool = False  # stopped by `bench tune`'s pruner (see harness.telemetry)

    def summary(self) -> dict[str, Any]:
        """JSON-ready facts about the run (for a model's `fit_info`, recorded with results)."""
        return {
            "best_epoch": self.best_epoch,
            "epochs_run": self.epochs_run,
            "stopped_early": self.stopped_early,
            **({"pruned": True} if self.pruned else {}),
            f"best_val_{self.val_metric}": None if math.isnan(self.best_val) else round(self.best_val, 6),
            "train_seconds": round(sum(h["seconds"] for h in self.history), 2),
            "recipe": {
                "optimizer": self.cfg.optimizer,
                "scheduler": self.cfg.scheduler,
                "lr": self.cfg.lr,
                "epochs": self.cfg.epochs,
                "batch_size": self.cfg.batch_size,
                "early_stopping_patience": self.cfg.patience or None,
            },
            "precise_bn": self.precise_bn,
            **({"precise_bn_passes": self.precise_bn_passes} if self.precise_bn else {}),
            "torch_threads": self.torch_threads,
        }


def output_dim(task_type: str, n_classes: int | None, train: Dataset) -> int:
    """Outputs of a model's head: 1 for regression, the number of classes (logits) for classification."""
    if task_type != TaskType.CLASSIFICATION:
        return 1
    if n_classes:
        return int(n_classes)
    if train.classes:
        return len(train.classes)
    return int(np.max(train.targets)) + 1


def resolve_device(name: str) -> torch.device:
    """A torch device, with a clear error when CUDA is asked for but absent."""
    try:
        dev = torch.device(name)
    except RuntimeError as exc:
        raise BadInputError(f"unknown device {name!r}: {exc}") from None
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise BadInputError(f"device {name!r} requested but torch {torch.__version__} sees no CUDA device; use --device cpu")
    return dev


def to_device(batch: Any, device: torch.device) -> Any:
    """Move tensors inside a batch (tensor, tuple/list/dict, or object with .to) to `device`."""
    if isinstance(batch, torch.Tensor):
        return batch.to(device)
    if device.type == "cpu" and not isinstance(batch, (tuple, list, dict)):
        return batch
    if isinstance(batch, tuple) and hasattr(batch, "_fields"):  # namedtuple
        return type(batch)(*(to_device(b, device) for b in batch))
    if isinstance(batch, (tuple, list)):
        return type(batch)(to_device(b, device) for b in batch)
    if isinstance(batch, dict):
        return {k: to_device(v, device) for k, v in batch.items()}
    if hasattr(batch, "to"):
        return batch.to(device)
    return batch


@contextlib.contextmanager
def deterministic(device: torch.device) -> Iterator[None]:
    """On CPU, run the block with torch's deterministic algorithms (restored afterwards).

    Some CPU kernels accumulate in a thread-dependent order when more than one
    intra-op thread runs: notably the backward of advanced indexing
    (``x[index]`` -> ``index_put_(accumulate=True)``), which message-passing
    code (ours, alignn's, aviary's) uses to gather neighbour features. With
    deterministic algorithms on, those kernels accumulate in a fixed order, so
    the same seed gives bit-identical weights with any thread count. Ops
    without a deterministic implementation only warn. CUDA is left alone
    (its deterministic mode needs environment settings and is much slower).
    """
    if device.type != "cpu":
        yield
        return
    was_on = torch.are_deterministic_algorithms_enabled()
    was_warn_only = torch.is_deterministic_algorithms_warn_only_enabled()
    was_filling = torch.utils.deterministic.fill_uninitialized_memory  # type: ignore[attr-defined]
    torch.use_deterministic_algorithms(True, warn_only=True)
    # Deterministic mode also fills every new uninitialized tensor with NaN (a debugging
    # aid): 12% of a CGCNN epoch on CPU went to those fills. Our kernels write every
    # element they allocate, so the fill changes no result; switch it off.
    torch.utils.deterministic.fill_uninitialized_memory = False  # type: ignore[attr-defined]
    try:
        yield
    finally:
        torch.use_deterministic_algorithms(was_on, warn_only=was_warn_only)
        torch.utils.deterministic.fill_uninitialized_memory = was_filling  # type: ignore[attr-defined]


@contextlib.contextmanager
def flush_denormal(device: torch.device) -> Iterator[None]:
    """On CPU, treat subnormal floats (< 1.2e-38) as zero for the duration of the block.

    Gaussian edge features, sigmoid/softplus tails and their gradients produce
    subnormals, and x86 arithmetic on them is very slow: we measured CGCNN's
    forward+backward 1.45x faster with them flushed (docs/speed.md). Values change
    by less than 1.2e-38. Restored to torch's default (off) afterwards.
    """
    if device.type != "cpu" or not torch.set_flush_denormal(True):
        yield
        return
    try:
        yield
    finally:
        torch.set_flush_denormal(False)


# glibc malloc (Linux): M_TRIM_THRESHOLD / M_MMAP_THRESHOLD parameter numbers and their defaults (bytes)
_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD, _GLIBC_DEFAULT_THRESHOLD = -1, -3, 128 * 1024


@functools.cache
def _glibc() -> Any:
    """glibc (its `mallopt` and `malloc_trim`), or None on other platforms and C libraries."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        libc = ctypes.CDLL("libc.so.6")
        libc.mallopt.argtypes, libc.mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
        libc.malloc_trim  # noqa: B018 - fail here, not on exit, when it is missing
    except (OSError, AttributeError):  # musl, or no glibc: nothing to tune
        return None
    return libc


_reusing_depth = 0  # nested reuse_freed_memory blocks: only the outermost one restores glibc's defaults


@contextlib.contextmanager
def reuse_freed_memory(device: torch.device) -> Iterator[None]:
    """On CPU (Linux, glibc), let freed tensor memory be reused instead of returned to the OS, for the block.

    glibc serves every allocation above 128 KiB (it raises the limit only
    gradually) with a fresh mmap and unmaps it on free, so each new (edges x 128)
    activation of a message-passing network first takes a page fault per 4 KiB:
    a (6000, 128) float add took 1.7 ms instead of 0.3 ms, and a CGCNN epoch
    spent 15-30% of its time in the kernel's page-fault handler. Raising the mmap
    and trim thresholds makes freed blocks stay in the heap and be reused;
    results are unchanged and peak RSS was the same (docs/speed.md). Restored to
    glibc's defaults afterwards (and memory above them trimmed back), so code
    run after training, e.g. another library's benchmark, gets the stock allocator.
    """
    global _reusing_depth
    libc = _glibc() if device.type == "cpu" else None
    if libc is None:
        yield
        return
    if _reusing_depth == 0:
        libc.mallopt(_M_MMAP_THRESHOLD, 256 * 2**20)
        libc.mallopt(_M_TRIM_THRESHOLD, 512 * 2**20)
    _reusing_depth += 1
    try:
        yield
    finally:
        _reusing_depth -= 1
        if _reusing_depth == 0:
            libc.mallopt(_M_MMAP_THRESHOLD, _GLIBC_DEFAULT_THRESHOLD)
            libc.mallopt(_M_TRIM_THRESHOLD, _GLIBC_DEFAULT_THRESHOLD)
            libc.malloc_trim(0)


def _outputs(out: torch.Tensor, task_type: str) -> torch.Tensor:
    if task_type == TaskType.REGRESSION and out.ndim == 2 and out.shape[1] == 1:
        return out[:, 0]
    return out


def _run_inference(module: nn.Module, batches: Iterable[Any], task_type: str) -> np.ndarray:
    """Raw outputs (standardized values or logits) for all batches, in order (one device->host copy)."""
    module.eval()
    outs = []
    with torch.no_grad():
        for batch in batches:
            outs.append(_outputs(module(batch), task_type).detach())
    if not outs:
        return np.zeros((0,), dtype=float)
    return torch.cat(outs).to("cpu", torch.float64).numpy()


def _recalibrate_batchnorm(module: nn.Module, batches: Iterable[Any]) -> float:
    """Replace BatchNorm running stats by averages over `batches` (training batches) with the current weights.

    Returns how far the replaced running means were from the new ones: the
    largest |old - new| / sqrt(new var + eps) over all channels (0 without BatchNorm).
    """
    bns = [m for m in module.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm) and m.track_running_stats]
    if not bns:
        return 0.0
    momenta = [bn.momentum for bn in bns]
    old_means = [None if bn.running_mean is None else bn.running_mean.clone() for bn in bns]
    module.eval()  # dropout etc. off; only BatchNorm layers collect statistics
    for bn in bns:
        bn.reset_running_stats()
        bn.momentum = None  # cumulative average over the batches below
        bn.train()
    with torch.no_grad():
        for batch in batches:
            module(batch)
    for bn, mom in zip(bns, momenta):
        bn.momentum = mom
    module.eval()
    shifts = [
        ((old - bn.running_mean).abs() / (bn.running_var + bn.eps).sqrt()).max()
        for bn, old in zip(bns, old_means)
        if old is not None and bn.running_mean is not None and bn.running_var is not None
    ]
    return float(torch.stack(shifts).max()) if shifts else 0.0  # one host synchronisation per recalibration


class _RecalibrationSchedule:
    """When precise BN runs: every epoch while the running averages drift, with growing gaps while they do not.

    See `TrainConfig.precise_bn_tolerance`; a recalibration whose measured drift
    is below the tolerance doubles the gap to the next one (1, 2, 4, up to
    `MAX_GAP` skipped epochs), one at or above it resets the gap to 0.
    """

    MAX_GAP = 8

    def __init__(self, tolerance: float | None) -> None:
        self.tolerance = tolerance
        self.next_epoch, self.gap, self.passes = 1, 0, 0

    def due(self, epoch: int) -> bool:
        return self.tolerance is None or epoch >= self.next_epoch

    def record(self, epoch: int, drift: float) -> None:
        self.passes += 1
        if self.tolerance is None:
            return
        self.gap = min(max(1, 2 * self.gap), self.MAX_GAP) if drift < self.tolerance else 0
        self.next_epoch = epoch + self.gap + 1


def _fused_supported(params: Sequence[torch.Tensor]) -> bool | None:
    """Whether torch's fused optimizer kernels apply: float parameters on CPU or CUDA (else the default path)."""
    if not params:
        return None
    ok = all(p.is_floating_point() and p.device.type in ("cpu", "cuda") for p in params)
    return True if ok and len({p.device for p in params}) == 1 else None


def make_optimizer(
    module: nn.Module, cfg: TrainConfig, steps_per_epoch: int
) -> tuple[torch.optim.Optimizer, torch.optim.lr_scheduler.LRScheduler | None, bool]:
    """The optimizer and learning-rate schedule of `cfg`'s recipe, and whether the schedule steps per batch.

    One place builds them, so every model's recipe (and every tuning trial) is
    exactly what its params say and what its record shows.
    """
    params = list(module.parameters())
    # fused: one kernel per parameter tensor for the whole update instead of ~10
    # dispatched ops; on CPU the Adam step of a CGCNN went from 1.9 to 0.24 ms
    # (about 4% of an epoch). Same update up to float rounding, deterministic.
    fused = _fused_supported(params)
    opt: torch.optim.Optimizer
    if cfg.optimizer == "adamw":
        opt = torch.optim.AdamW(params, lr=cfg.lr, weight_decay=cfg.weight_decay, fused=fused)
    elif cfg.optimizer == "sgd":
        opt = torch.optim.SGD(params, lr=cfg.lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay, fused=fused)
    else:
        opt = torch.optim.Adam(params, lr=cfg.lr, weight_decay=cfg.weight_decay, fused=fused)
    if cfg.scheduler == "onecycle":
        sched = torch.optim.lr_scheduler.OneCycleLR(
            opt, max_lr=cfg.lr, epochs=cfg.epochs, steps_per_epoch=max(1, steps_per_epoch)
        )
        return opt, sched, True
    if cfg.scheduler == "multistep":
        return opt, torch.optim.lr_scheduler.MultiStepLR(opt, milestones=[cfg.lr_milestone], gamma=0.1), False
    return opt, None, False


def _check_targets(y: np.ndarray, cfg: TrainConfig, what: str, n_items: int) -> np.ndarray:
    y = np.asarray(y)
    if len(y) != n_items:
        raise BadInputError(f"{what}: {n_items} items but {len(y)} targets")
    if cfg.task_type == TaskType.CLASSIFICATION:
        if not np.issubdtype(y.dtype, np.integer):
            if not np.all(np.isfinite(y.astype(float))) or not np.all(y == np.round(y)):
                raise BadInputError(f"{what}: classification targets must be integer class indices")
        return y.astype(np.int64)
    y = y.astype(float)
    if not np.all(np.isfinite(y)):
        raise BadInputError(f"{what}: {int((~np.isfinite(y)).sum())} NaN/inf targets")
    return y


def fit_torch(
    build: nn.Module | Callable[[], nn.Module],
    train_items: Sequence[Any],
    y_train: np.ndarray,
    collate: Callable[[list[Any]], Any],
    *,
    cfg: TrainConfig,
    val_items: Sequence[Any] | None = None,
    y_val: np.ndarray | None = None,
    seed: int = 0,
    progress: bool = False,
    desc: str = "train",
) -> FitResult:
    """Train a module on items and return it with the best validation weights loaded.

    build: a zero-argument callable returning the module (preferred: it is called
        after seeding, so initial weights follow `seed`), or a module already built.
    train_items / val_items: per-sample objects (graphs, ...) indexed by position;
        ``collate(list_of_items)`` makes a batch and ``module(batch)`` returns
        (B,) or (B, 1) predictions (regression) or (B, n_classes) logits.
    y_train / y_val: targets in task units (regression) or class indices.
    progress: show per-epoch progress (a bar on a terminal, periodic log lines elsewhere).
    desc: a name shown in the progress display and error messages.
    """
    device = resolve_device(cfg.device)
    y_train = _check_targets(y_train, cfg, f"{desc}: training set", len(train_items))
    if len(train_items) == 0:
        raise BadInputError(f"{desc}: empty training set")
    has_val = val_items is not None and len(val_items) > 0
    y_val_checked: np.ndarray | None = None
    if has_val:
        assert val_items is not None
        if y_val is None:
            raise BadInputError(f"{desc}: val_items given without y_val")
        y_val_checked = _check_targets(y_val, cfg, f"{desc}: validation set", len(val_items))
    with deterministic(device), flush_denormal(device), reuse_freed_memory(device), torch_rng(seed, device):
        return _fit(build, train_items, y_train, collate, cfg, device, val_items if has_val else None,
                    y_val_checked, seed, progress, desc)


def _fit(
    build: nn.Module | Callable[[], nn.Module],
    train_items: Sequence[Any],
    y_train: np.ndarray,
    collate: Callable[[list[Any]], Any],
    cfg: TrainConfig,
    device: torch.device,
    val_items: Sequence[Any] | None,
    y_val: np.ndarray | None,
    seed: int,
    progress: bool,
    desc: str,
) -> FitResult:
    """The epoch loop: train, recalibrate BatchNorm where due, validate, stop early or when pruned."""
    run = _Training(build, train_items, y_train, collate, cfg, device, val_items, y_val, seed, desc)
    epoch = 0
    with Progress(cfg.epochs, desc, enabled=progress, unit="epoch") as bar:
        for epoch in range(1, cfg.epochs + 1):
            t0 = time.perf_counter()
            groups = run.batch_groups()
            train_loss = run.train_epoch(epoch, groups)
            run.recalibrate(epoch, groups)
            val = run.validate(epoch)
            run.history.append({"epoch": epoch, "train_loss": train_loss, "val": val,
                                "seconds": time.perf_counter() - t0})
            bar.update(1, postfix=run.postfix(train_loss, val))
            if run.has_val and cfg.patience and run.since_best >= cfg.patience:
                run.stopped_early = True
                break
            if run.has_val and report_epoch(epoch, val):  # a tuning trial the pruner stopped
                run.pruned = True
                break
    return run.result(epoch)


class _Training:
    """One fit's state, set up once and advanced one epoch at a time by `_fit`'s loop.

    Each stage of an epoch is a method, in the order the loop calls them; the
    order of random draws (initial weights in `build`, one permutation of the
    training set per epoch, dropout in the forward passes) is what makes a fit
    reproducible from its seed, so the stages never reorder them.
    """

    def __init__(
        self,
        build: nn.Module | Callable[[], nn.Module],
        train_items: Sequence[Any],
        y_train: np.ndarray,
        collate: Callable[[list[Any]], Any],
        cfg: TrainConfig,
        device: torch.device,
        val_items: Sequence[Any] | None,
        y_val: np.ndarray | None,
        seed: int,
        desc: str,
    ) -> None:
        module = build if isinstance(build, nn.Module) else build()  # first: initial weights follow the seed
        self.module = module.to(device)
        self.cfg, self.device, self.desc, self.y_val = cfg, device, desc, y_val
        self.classification = cfg.task_type == TaskType.CLASSIFICATION
        self.scaler = None if self.classification else TargetScaler(y_train)
        self.loss_fn: nn.Module
        if self.scaler is None:
            t_train = torch.as_tensor(y_train, dtype=torch.long)
            self.loss_fn = nn.CrossEntropyLoss()
        else:
            t_train = torch.as_tensor(self.scaler.transform(y_train), dtype=torch.float32)
            self.loss_fn = nn.MSELoss()
        self.t_train = t_train.to(device)
        self.rng = np.random.default_rng(seed)
        self.n = len(train_items)
        self.n_batches = max(1, math.ceil(self.n / cfg.batch_size))
        self.optimizer, self.scheduler, self.per_step = make_optimizer(self.module, cfg, self.n_batches)
        self.threads = int(torch.get_num_threads())
        self.train_src = _Batches(train_items, collate, device, self.module)
        self.val_src = _Batches(val_items, collate, device, self.module) if val_items is not None else None
        self.has_val = self.val_src is not None and y_val is not None
        self.sync_per_batch = _sync_per_batch(device)
        self.recalibrating = cfg.precise_bn and (
            cfg.precise_bn_max_batches is None or self.n_batches <= cfg.precise_bn_max_batches)
        self.schedule = _RecalibrationSchedule(cfg.precise_bn_tolerance)
        self.val_metric = "accuracy" if self.classification else "mae"
        self.best_val = -math.inf if self.classification else math.inf
        self.best_state: dict[str, torch.Tensor] | None = None
        self.best_epoch, self.since_best = 0, 0
        self.stopped_early = self.pruned = False
        self.history: list[dict[str, float]] = []

    def batch_groups(self) -> list[np.ndarray]:
        """This epoch's shuffled mini-batches as index groups (one permutation per epoch)."""
        bs = self.cfg.batch_size
        order = self.rng.permutation(self.n)
        groups = [order[b * bs : (b + 1) * bs] for b in range(self.n_batches)]
        if self.n > 1:  # a trailing batch of one: BatchNorm cannot train on it
            groups = [g for g in groups if len(g) >= 2]
        return groups

    def train_epoch(self, epoch: int, groups: list[np.ndarray]) -> float:
        """One pass over `groups` with an optimizer step per batch; the mean training loss."""
        cfg, module = self.cfg, self.module
        module.train()
        order_t = torch.from_numpy(np.concatenate(groups)).to(self.device)
        total = torch.zeros((), dtype=torch.float64, device=self.device)
        count, start = 0, 0
        for b, batch in enumerate(self.train_src.of(groups)):
            size = len(groups[b])
            target = self.t_train.index_select(0, order_t[start : start + size])
            start += size
            loss = self.loss_fn(_outputs(module(batch), cfg.task_type), target)
            if self.sync_per_batch and not torch.isfinite(loss):
                raise NonFiniteLossError(
                    f"{self.desc}: training loss became {loss.item()} at epoch {epoch}, batch {b + 1}/{self.n_batches} "
                    f"(lr={cfg.lr}); lower the learning rate (--config) or check the inputs/features for inf"
                )
            self.optimizer.zero_grad(set_to_none=True)
            loss.backward()
            if cfg.grad_clip:
                nn.utils.clip_grad_norm_(module.parameters(), cfg.grad_clip)
            self.optimizer.step()
            if self.scheduler is not None and self.per_step:
                self.scheduler.step()
            total += loss.detach().double() * size
            count += size
        train_loss = float(total.item()) / max(count, 1)  # one host synchronisation per epoch
        if not math.isfinite(train_loss):
            raise NonFiniteLossError(
                f"{self.desc}: training loss became {train_loss} during epoch {epoch} "
                f"(lr={cfg.lr}); lower the learning rate (--config) or check the inputs/features for inf"
            )
        if self.scheduler is not None and not self.per_step:
            self.scheduler.step()
        return train_loss

    def recalibrate(self, epoch: int, groups: list[np.ndarray]) -> None:
        """Precise BN where due; without validation only the final weights need statistics, and always get them."""
        if not self.recalibrating:
            return
        if self.schedule.due(epoch) if self.val_src is not None else epoch == self.cfg.epochs:
            drift = _recalibrate_batchnorm(self.module, self.train_src.of(groups[: self.cfg.precise_bn_batches]))
            self.schedule.record(epoch, drift)

    def validate(self, epoch: int) -> float:
        """The validation MAE (task units) or accuracy, keeping the best weights so far; NaN without validation."""
        if not self.has_val:
            return math.nan
        assert self.val_src is not None and self.y_val is not None
        raw = _run_inference(self.module, self.val_src.in_order(self.cfg.batch_size), self.cfg.task_type)
        if not np.all(np.isfinite(raw)):
            raise NonFiniteLossError(
                f"{self.desc}: validation predictions became NaN/inf at epoch {epoch} (lr={self.cfg.lr})")
        if self.scaler is None:
            val = float(np.mean(raw.argmax(axis=1) == self.y_val))
            improved = val > self.best_val
        else:
            val = float(np.mean(np.abs(self.scaler.inverse(raw) - self.y_val)))
            improved = val < self.best_val
        if improved:
            self.best_val, self.best_epoch, self.since_best = val, epoch, 0
            self.best_state = {k: v.detach().clone() for k, v in self.module.state_dict().items()}
        else:
            self.since_best += 1
        return val

    def postfix(self, train_loss: float, val: float) -> str:
        """The progress line's numbers."""
        post = f"loss {train_loss:.4f}"
        if self.val_src is not None:
            post += f", val_{self.val_metric} {val:.4g}, best {self.best_val:.4g}@{self.best_epoch}"
        return post

    def result(self, epoch: int) -> FitResult:
        """The module with the best validation weights loaded (the last ones without validation)."""
        best_epoch, best_val = self.best_epoch, self.best_val
        if self.best_state is not None:
            self.module.load_state_dict(self.best_state)
        else:
            best_epoch, best_val = epoch, math.nan
        self.module.eval()
        return FitResult(
            module=self.module, cfg=self.cfg, target_scaler=self.scaler, best_epoch=best_epoch, best_val=best_val,
            epochs_run=epoch, stopped_early=self.stopped_early, pruned=self.pruned, val_metric=self.val_metric,
            history=self.history, torch_threads=self.threads, desc=self.desc, precise_bn=self.recalibrating,
            precise_bn_passes=self.schedule.passes,
        )


def predict_torch(result: FitResult, items: Sequence[Any], collate: Callable[[list[Any]], Any]) -> np.ndarray:
    """Predictions in task units (float64, regression) or class indices (int64, classification), in item order.

    Raises `NonFiniteLossError` instead of returning NaN/inf values (regression)
    or class indices picked from NaN logits (classification).
    """
    device = next(iter(result.module.parameters()), torch.empty(0)).device
    with deterministic(device), flush_denormal(device), reuse_freed_memory(device):
        batches = _Batches(items, collate, device, result.module).in_order(result.cfg.batch_size)
        raw = _run_inference(result.module, batches, result.cfg.task_type)
    if result.cfg.task_type == TaskType.CLASSIFICATION:
        if raw.ndim != 2:
            raise BadInputError(f"{result.desc}: a classification module must return (batch, n_classes) logits")
        bad = np.isnan(raw).any(axis=1)
        if bad.any():
            raise NonFiniteLossError(
                f"{result.desc}: {int(bad.sum())} of {len(raw)} predictions have NaN class scores; "
                "the trained network is numerically broken (lower the learning rate or check the inputs)"
            )
        return np.asarray(raw.argmax(axis=1), dtype=np.int64)
    if result.target_scaler is None:
        raise BadInputError(f"{result.desc}: regression result without a target scaler")
    pred = result.target_scaler.inverse(raw)
    bad = ~np.isfinite(pred)
    if bad.any():
        raise NonFiniteLossError(
            f"{result.desc}: {int(bad.sum())} of {len(pred)} predictions are NaN/inf; "
            "the trained network is numerically broken (lower the learning rate or check the inputs/features for inf)"
        )
    return pred
