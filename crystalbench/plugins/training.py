"""The shared training loop for torch models (CGCNN, ALIGNN, ROOST, third-party GNNs).

Every torch model in the benchmark trains the same way, so that differences in a
leaderboard come from the architectures and not from the loops around them:

- seeded, deterministic on CPU (same seed -> identical predictions);
- regression targets standardized with training statistics (MSE loss), metrics
  and early stopping in the task's units; classification with cross-entropy;
- Adam, shuffled mini-batches of *items* turned into a batch by a model-supplied
  ``collate(list_of_items)``; the module is called as ``module(batch)``;
- early stopping on validation MAE (regression) or accuracy (classification)
  with ``patience``, and the best epoch's weights restored (in-memory copy);
- a clear `NonFiniteLossError` when the loss becomes NaN/inf.

A model plugin uses it in three lines::

    cfg = TrainConfig.from_hparams(hparams, task_type=ctx.task_type, device=ctx.device)
    result = fit_torch(lambda: MyNet(...), train_items, train.targets, collate, cfg=cfg,
                       val_items=val_items, y_val=val.targets, seed=seed, progress=progress)
    y = predict_torch(result, test_items, collate)

Hybridization helpers (`FeatureInput`, `MLPHead`) let any GNN consume
``Dataset.features`` (descriptors) the way de-CGCNN does (paper eq. 14).
This module imports torch at import time: plugin modules import it inside
their factories / fit methods so that listing models stays fast.
"""

from __future__ import annotations

import math
import random
import sys
import time
from dataclasses import dataclass, field, fields
from typing import Any, Callable, Literal, Mapping, Sequence

import numpy as np
import torch

from crystalbench.harness.runner import seed_everything  # one seeding rule for runner and models
from torch import nn

from ..harness.dataset import Dataset
from ..harness.errors import BadInputError, CrystalbenchError
from ..harness.features import FeatureScaler

__all__ = [
    "TrainConfig",
    "FitResult",
    "TargetScaler",
    "NonFiniteLossError",
    "seed_everything",
    "resolve_device",
    "to_device",
    "fit_torch",
    "predict_torch",
    "FeatureInput",
    "MLPHead",
]

TaskType = Literal["regression", "classification"]


class NonFiniteLossError(CrystalbenchError):
    """Training diverged: the loss (or a validation prediction) became NaN/inf."""


@dataclass(frozen=True)
class TrainConfig:
    """Optimisation settings shared by all torch models.

    epochs: maximum number of epochs (``--epochs`` overrides).
    batch_size: samples per optimisation step (also used for prediction).
    lr / weight_decay: Adam learning rate and L2 penalty.
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
        small CGCNN. No effect on modules without BatchNorm.
    task_type: "regression" (MSE on standardized targets) or "classification"
        (cross-entropy on integer class targets; the module returns logits).
    """

    epochs: int = 300
    batch_size: int = 64
    lr: float = 1e-3
    weight_decay: float = 0.0
    patience: int | None = 50
    device: str = "cpu"
    grad_clip: float | None = None
    precise_bn: bool = True
    precise_bn_batches: int = 32
    task_type: TaskType = "regression"

    @classmethod
    def from_hparams(
        cls, hparams: Mapping[str, Any], *, task_type: TaskType = "regression", device: str | None = None
    ) -> "TrainConfig":
        """Pick this config's keys out of a model's hyperparameter dict (other keys ignored).

        `device` (e.g. `ModelContext.device`) wins over ``hparams["device"]`` when it is
        not "cpu", so ``--device cuda`` works however the runner passes it.
        """
        names = {f.name for f in fields(cls)} - {"task_type", "device"}
        kw: dict[str, Any] = {k: hparams[k] for k in names if k in hparams}
        for k in ("epochs", "batch_size"):
            if k in kw:
                kw[k] = int(kw[k])
        for k in ("lr", "weight_decay"):
            if k in kw:
                kw[k] = float(kw[k])
        if "precise_bn_batches" in kw:
            kw["precise_bn_batches"] = int(kw["precise_bn_batches"])
        if kw.get("patience") is not None:
            kw["patience"] = int(kw["patience"])
        dev = str(hparams.get("device") or "cpu")
        if device and device != "cpu":
            dev = device
        cfg = cls(**kw, device=dev, task_type=task_type)
        if cfg.epochs < 1 or cfg.batch_size < 1 or cfg.lr <= 0:
            raise BadInputError(f"invalid training settings: epochs={cfg.epochs}, batch_size={cfg.batch_size}, lr={cfg.lr}")
        return cfg


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

    def summary(self) -> dict[str, Any]:
        """JSON-ready facts about the run (for a model's `fit_info`, recorded with results)."""
        return {
            "best_epoch": self.best_epoch,
            "epochs_run": self.epochs_run,
            "stopped_early": self.stopped_early,
            f"best_val_{self.val_metric}": None if math.isnan(self.best_val) else round(self.best_val, 6),
            "train_seconds": round(sum(h["seconds"] for h in self.history), 2),
        }


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
    if device.type == "cpu" and not isinstance(batch, (tuple, list, dict)):
        return batch.to(device) if isinstance(batch, torch.Tensor) else batch
    if isinstance(batch, torch.Tensor):
        return batch.to(device)
    if isinstance(batch, tuple) and hasattr(batch, "_fields"):  # namedtuple
        return type(batch)(*(to_device(b, device) for b in batch))
    if isinstance(batch, (tuple, list)):
        return type(batch)(to_device(b, device) for b in batch)
    if isinstance(batch, dict):
        return {k: to_device(v, device) for k, v in batch.items()}
    if hasattr(batch, "to"):
        return batch.to(device)
    return batch


def _outputs(out: torch.Tensor, task_type: TaskType) -> torch.Tensor:
    if task_type == "regression" and out.ndim == 2 and out.shape[1] == 1:
        return out[:, 0]
    return out


def _run_inference(module: nn.Module, items: Sequence, collate: Callable, cfg: TrainConfig, device: torch.device) -> np.ndarray:
    """Raw outputs (standardized values or logits) for all items, in order."""
    module.eval()
    outs = []
    with torch.no_grad():
        for start in range(0, len(items), cfg.batch_size):
            batch = collate([items[i] for i in range(start, min(start + cfg.batch_size, len(items)))])
            out = _outputs(module(to_device(batch, device)), cfg.task_type)
            outs.append(out.detach().to("cpu", torch.float64).numpy())
    if not outs:
        return np.zeros((0,), dtype=float)
    return np.concatenate(outs, axis=0)


def _recalibrate_batchnorm(
    module: nn.Module, items: Sequence, order: np.ndarray, collate: Callable, cfg: TrainConfig, device: torch.device
) -> None:
    """Replace BatchNorm running stats by averages over training batches with the current weights."""
    bns = [m for m in module.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm) and m.track_running_stats]
    if not bns:
        return
    momenta = [bn.momentum for bn in bns]
    module.eval()  # dropout etc. off; only BatchNorm layers collect statistics
    for bn in bns:
        bn.reset_running_stats()
        bn.momentum = None  # cumulative average over the batches below
        bn.train()
    with torch.no_grad():
        for b in range(min(cfg.precise_bn_batches, math.ceil(len(order) / cfg.batch_size))):
            idx = order[b * cfg.batch_size : (b + 1) * cfg.batch_size]
            if len(idx) < 2:
                continue
            module(to_device(collate([items[i] for i in idx]), device))
    for bn, mom in zip(bns, momenta):
        bn.momentum = mom
    module.eval()


def _check_targets(y: np.ndarray, cfg: TrainConfig, what: str, n_items: int) -> np.ndarray:
    y = np.asarray(y)
    if len(y) != n_items:
        raise BadInputError(f"{what}: {n_items} items but {len(y)} targets")
    if cfg.task_type == "classification":
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
    train_items: Sequence,
    y_train: np.ndarray,
    collate: Callable[[list], Any],
    *,
    cfg: TrainConfig,
    val_items: Sequence | None = None,
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
    desc: a name shown in the progress bar and error messages.
    """
    seed_everything(seed)
    device = resolve_device(cfg.device)
    module = build() if not isinstance(build, nn.Module) else build
    module = module.to(device)
    y_train = _check_targets(y_train, cfg, f"{desc}: training set", len(train_items))
    if len(train_items) == 0:
        raise BadInputError(f"{desc}: empty training set")
    has_val = val_items is not None and len(val_items) > 0
    if has_val:
        if y_val is None:
            raise BadInputError(f"{desc}: val_items given without y_val")
        y_val = _check_targets(y_val, cfg, f"{desc}: validation set", len(val_items))

    classification = cfg.task_type == "classification"
    scaler = None if classification else TargetScaler(y_train)
    if classification:
        t_train = torch.as_tensor(y_train, dtype=torch.long)
        loss_fn: nn.Module = nn.CrossEntropyLoss()
    else:
        t_train = torch.as_tensor(scaler.transform(y_train), dtype=torch.float32)
        loss_fn = nn.MSELoss()
    optimizer = torch.optim.Adam(module.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    rng = np.random.default_rng(seed)
    n = len(train_items)
    n_batches = max(1, math.ceil(n / cfg.batch_size))

    val_metric = "accuracy" if classification else "mae"
    best_val = -math.inf if classification else math.inf
    best_state: dict[str, torch.Tensor] | None = None
    best_epoch, since_best, stopped_early = 0, 0, False
    history: list[dict[str, float]] = []

    from tqdm.auto import tqdm

    bar = tqdm(range(1, cfg.epochs + 1), desc=desc, disable=not progress, leave=False, file=sys.stderr, unit="epoch")
    epoch = 0
    for epoch in bar:
        t0 = time.perf_counter()
        module.train()
        order = rng.permutation(n)
        total, count = 0.0, 0
        for b in range(n_batches):
            idx = order[b * cfg.batch_size : (b + 1) * cfg.batch_size]
            if len(idx) < 2 and n > 1:  # a trailing batch of one: BatchNorm cannot train on it
                continue
            batch = to_device(collate([train_items[i] for i in idx]), device)
            target = t_train[idx].to(device)
            out = _outputs(module(batch), cfg.task_type)
            loss = loss_fn(out, target)
            if not torch.isfinite(loss):
                raise NonFiniteLossError(
                    f"{desc}: training loss became {loss.item()} at epoch {epoch}, batch {b + 1}/{n_batches} "
                    f"(lr={cfg.lr}); lower the learning rate (--config) or check the inputs/features for inf"
                )
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            if cfg.grad_clip:
                nn.utils.clip_grad_norm_(module.parameters(), cfg.grad_clip)
            optimizer.step()
            total += float(loss.item()) * len(idx)
            count += len(idx)
        train_loss = total / max(count, 1)

        val = math.nan
        if cfg.precise_bn and (has_val or epoch == cfg.epochs):
            _recalibrate_batchnorm(module, train_items, order, collate, cfg, device)
        if has_val:
            raw = _run_inference(module, val_items, collate, cfg, device)
            if not np.all(np.isfinite(raw)):
                raise NonFiniteLossError(f"{desc}: validation predictions became NaN/inf at epoch {epoch} (lr={cfg.lr})")
            if classification:
                val = float(np.mean(raw.argmax(axis=1) == y_val))
                improved = val > best_val
            else:
                val = float(np.mean(np.abs(scaler.inverse(raw) - y_val)))
                improved = val < best_val
            if improved:
                best_val, best_epoch, since_best = val, epoch, 0
                best_state = {k: v.detach().clone() for k, v in module.state_dict().items()}
            else:
                since_best += 1
        history.append({"epoch": epoch, "train_loss": train_loss, "val": val, "seconds": time.perf_counter() - t0})
        if progress:
            post = {"loss": f"{train_loss:.4f}"}
            if has_val:
                post[f"val_{val_metric}"] = f"{val:.4g}"
                post["best"] = f"{best_val:.4g}@{best_epoch}"
            bar.set_postfix(post, refresh=False)
        if has_val and cfg.patience and since_best >= cfg.patience:
            stopped_early = True
            break
    bar.close()

    if best_state is not None:
        module.load_state_dict(best_state)
    else:
        best_epoch, best_val = epoch, math.nan
    module.eval()
    return FitResult(
        module=module,
        cfg=cfg,
        target_scaler=scaler,
        best_epoch=best_epoch,
        best_val=best_val,
        epochs_run=epoch,
        stopped_early=stopped_early,
        val_metric=val_metric,
        history=history,
    )


def predict_torch(result: FitResult, items: Sequence, collate: Callable[[list], Any]) -> np.ndarray:
    """Predictions in task units (regression) or class indices (classification), in item order."""
    device = next(iter(result.module.parameters()), torch.empty(0)).device
    raw = _run_inference(result.module, items, collate, result.cfg, device)
    if result.cfg.task_type == "classification":
        if raw.ndim != 2:
            raise BadInputError("classification module must return (batch, n_classes) logits")
        return raw.argmax(axis=1).astype(np.int64)
    return result.target_scaler.inverse(raw)


class FeatureInput:
    """Extra per-sample features (`Dataset.features`) as model input, for hybrid models.

    Fit on the training set only: NaN/inf are imputed with training medians and
    columns standardized (the shared `FeatureScaler`, so rf and every hybrid GNN
    treat missing descriptors identically). `dim` is 0 when the training set has
    no features, and the model then behaves as a plain GNN.
    """

    def __init__(self) -> None:
        self.scaler: FeatureScaler | None = None
        self.names: tuple[str, ...] = ()

    @property
    def dim(self) -> int:
        return len(self.names) if self.scaler is not None else 0

    def fit(self, train: Dataset) -> "FeatureInput":
        if train.features is None:
            self.scaler, self.names = None, ()
            return self
        self.names = tuple(train.feature_names)
        self.scaler = FeatureScaler().fit(train.features, self.names)
        return self

    def transform(self, data: Dataset) -> np.ndarray | None:
        """float32 (n, dim) scaled features, or None when the model was fit without features."""
        if self.scaler is None:
            return None
        if data.features is None:
            raise BadInputError(
                f"dataset {data.name!r} has no extra features but the model was trained with {self.dim} "
                f"({', '.join(self.names[:5])}...)"
            )
        if tuple(data.feature_names) != self.names:
            raise BadInputError(f"dataset {data.name!r}: feature columns differ from the training set's")
        return self.scaler.transform(data.features).astype(np.float32)


class MLPHead(nn.Module):
    """Readout network on a pooled crystal embedding, optionally concatenated with extra features.

    ``[embedding ; features] -> (Linear -> act) x n_hidden -> Linear(out_dim)``.
    With ``extra_dim > 0`` this is the de-CGCNN hybridization (paper eq. 14): the
    standardized descriptor vector joins the embedding before the output network,
    and the whole model trains end to end.
    """

    def __init__(
        self,
        in_dim: int,
        hidden: int,
        out_dim: int = 1,
        *,
        extra_dim: int = 0,
        n_hidden: int = 1,
        activation: Callable[[], nn.Module] = nn.Softplus,
        dropout: float = 0.0,
    ) -> None:
        super().__init__()
        self.extra_dim = extra_dim
        layers: list[nn.Module] = []
        d = in_dim + extra_dim
        for _ in range(max(n_hidden, 0)):
            layers += [nn.Linear(d, hidden), activation()]
            if dropout:
                layers.append(nn.Dropout(dropout))
            d = hidden
        self.hidden = nn.Sequential(*layers)
        self.out = nn.Linear(d, out_dim)

    def forward(self, h: torch.Tensor, extra: torch.Tensor | None = None) -> torch.Tensor:
        if self.extra_dim:
            if extra is None or extra.shape[-1] != self.extra_dim:
                raise ValueError(f"MLPHead expects {self.extra_dim} extra features, got {None if extra is None else extra.shape}")
            h = torch.cat([h, extra.to(h.dtype)], dim=-1)
        return self.out(self.hidden(h))
