"""`TorchModel`: the one base for torch models behind the harness `Model` protocol (fit, predict, fit_info).

Every torch model of the benchmark (cgcnn, alignn, roost, cgcnn+desc, and any
third-party GNN that wants it) does the same around its network: resolve its
typed hyperparameters, apply the job's thread count, refuse to run a descriptor
hybrid without descriptors, fit the shared `FeatureInput` on the training set,
turn datasets into items, and train through `fit_torch` with the run's device,
seed, recipe and early stopping; then predict through `predict_torch` and report
the run in `fit_info`. That lives here once; a subclass says only what is its
own::

    class MyGNN(TorchModel):
        params_class = MyParams                       # a `TrainingParams` subclass

        def items(self, data, *, progress):           # Dataset -> per-sample items
            graphs = build_graphs(data.structures, ...)
            return self.with_features(graphs, data)   # (graph, descriptor row) when there are features

        def collate(self):                            # items -> a batch ``module(batch)`` takes
            return collate_graphs

        def network(self, train):                     # a zero-argument builder, called after seeding
            out_dim, shift = self.out_dim(train), self.atom_sum_shift(train)
            return lambda: MyNet(self.params, out_dim, extra_dim=self.features_dim, output_shift=shift)

Seeding: the harness seeds the process once per job; `fit_torch` builds and
trains the network under torch's RNG seeded with `fit`'s seed (see
`crystalbench.contract.seeding`). The subclass never seeds.

Torch-free at import (the trainer and heads are imported in `fit`/`predict`),
so plugin packages import their model classes when they register.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np

from crystalbench import BadInputError, Dataset, apply_threads

from .params import TrainingParams, params_of

if TYPE_CHECKING:  # pragma: no cover
    from torch import nn

    from crystalbench import ModelContext

    from .heads import FeatureInput
    from .trainer import FitResult

__all__ = ["TorchModel"]


class TorchModel:
    """Base of a torch model: typed params, features, items, and training through the shared loop.

    A subclass sets `params_class` and implements `items`, `collate` and
    `network`; it may override `prepare` (work before the items, e.g. a first
    training stage) and `extra_fit_info`.

    ctx: the harness's `ModelContext`; `ctx.params` resolved into `params_class`
        (`params_of`), so a context built by hand with plain `hparams` works too.
    name: the model's name, shown in progress and errors (the spec's name).
    require_features: a descriptor hybrid (de-cgcnn, de-alignn) sets it: without
        feature columns it fails loudly instead of silently training the plain model.
    After `fit`: `fit_result` (the trainer's `FitResult`), `features` (the fitted
    `FeatureInput`, None for a model with ``uses_features = False``).
    """

    params_class: ClassVar[type[TrainingParams]] = TrainingParams
    # whether extra per-sample feature columns (`Dataset.features`) feed the network (`with_features`)
    uses_features: ClassVar[bool] = True
    # the end of the error raised when `require_features` is set and the training set has none
    missing_features: ClassVar[str] = (
        "concatenates a descriptor vector with its embedding but the training set has no features; "
        "run it through the harness (it attaches gong29) or pass --descriptors NAME"
    )

    def __init__(
        self,
        ctx: ModelContext,
        *,
        name: str,
        params_class: type[TrainingParams] | None = None,
        require_features: bool = False,
    ) -> None:
        self.ctx = ctx
        self.name = name
        self.params: Any = params_of(ctx, name, params_class or self.params_class)
        self.require_features = require_features
        self.fit_result: FitResult | None = None
        self.features: FeatureInput | None = None
        self._collate: Callable[[list[Any]], Any] | None = None

    # -- what a subclass provides ------------------------------------------------------------------
    def items(self, data: Dataset, *, progress: bool) -> Sequence[Any]:
        """The per-sample items `collate` batches (graphs, (graph, features) pairs, encodings...)."""
        raise NotImplementedError

    def collate(self) -> Callable[[list[Any]], Any]:
        """The collate function of this fit (made once per `fit`; may offer `IndexedCollate.index`)."""
        raise NotImplementedError

    def network(self, train: Dataset) -> Callable[[], nn.Module]:
        """A zero-argument builder of the network; the trainer calls it after seeding, so weights follow the seed."""
        raise NotImplementedError

    def prepare(self, train: Dataset, val: Dataset | None, *, seed: int, progress: bool) -> None:
        """Work before the items are made (nothing by default)."""

    def extra_fit_info(self) -> dict[str, Any]:
        """Facts added to the trainer's summary in `fit_info` (the number of extra features by default)."""
        return {"n_extra_features": self.features_dim} if self.uses_features else {}

    # -- helpers for subclasses --------------------------------------------------------------------
    @property
    def features_dim(self) -> int:
        """Extra feature columns the network receives (0 before fit or without features)."""
        return 0 if self.features is None else self.features.dim

    def with_features(self, items: Sequence[Any], data: Dataset) -> list[Any]:
        """`items` as they are, or as (item, standardized feature row) pairs when the model was fit with features."""
        assert self.features is not None, "with_features is called after the features are fitted"
        feats = self.features.transform(data)
        return list(items) if feats is None else list(zip(items, feats))

    def out_dim(self, train: Dataset) -> int:
        """1 for regression, the number of classes (logits) for classification."""
        from .trainer import output_dim

        return output_dim(self.ctx.task_type, self.ctx.n_classes, train)

    def atom_sum_shift(self, train: Dataset) -> float:
        """The output shift of the per-atom readout (``pooling = "atom-sum"``, paper eq. 13); 0 otherwise."""
        if getattr(self.params, "pooling", None) != "atom-sum":
            return 0.0
        from .heads import atom_sum_shift

        return atom_sum_shift(train.targets, self.ctx.task_type)

    # -- the Model protocol ------------------------------------------------------------------------
    def fit(self, train: Dataset, val: Dataset | None, *, seed: int, progress: bool) -> None:
        from .heads import FeatureInput
        from .trainer import TrainConfig, fit_torch

        apply_threads(self.ctx.threads)  # the harness did already; a model built by hand gets it too
        if self.require_features and (train.features is None or train.features.shape[1] == 0):
            raise BadInputError(f"{self.name} {self.missing_features}")
        self.prepare(train, val, seed=seed, progress=progress)
        if self.uses_features:
            self.features = FeatureInput().fit(train)
        train_items = self.items(train, progress=progress)
        val_items = self.items(val, progress=progress) if val is not None and len(val) else None
        self._collate = self.collate()
        build = self.network(train)
        cfg = TrainConfig.from_params(self.params, task_type=self.ctx.task_type, device=self.ctx.device)
        self.fit_result = fit_torch(
            build,
            train_items,
            train.targets,
            self._collate,
            cfg=cfg,
            val_items=val_items,
            y_val=None if val is None or val_items is None else val.targets,
            seed=seed,
            progress=progress,
            desc=self.name,
        )

    def predict(self, data: Dataset) -> np.ndarray:
        """Predictions in task units (regression) or class indices (classification)."""
        from .trainer import predict_torch

        if self.fit_result is None or self._collate is None:
            raise RuntimeError(f"{self.name}: predict called before fit")
        return predict_torch(self.fit_result, self.items(data, progress=False), self._collate)

    @property
    def fit_info(self) -> dict[str, Any]:
        """Best epoch, epochs run, best validation score, recipe, threads, plus `extra_fit_info`: for the record."""
        if self.fit_result is None:
            return {}
        return {**self.fit_result.summary(), **self.extra_fit_info()}
