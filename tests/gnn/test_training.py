"""The shared torch training loop (crystalbench.gnn.trainer, .heads) on small synthetic problems."""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest

torch = pytest.importorskip("torch")
from torch import nn  # noqa: E402

from crystalbench.contract.dataset import Dataset  # noqa: E402
from crystalbench.contract.errors import BadInputError  # noqa: E402
from crystalbench.gnn import (  # noqa: E402
    FeatureInput,
    MLPHead,
    NonFiniteLossError,
    TrainConfig,
    fit_torch,
    predict_torch,
)

torch.set_num_threads(1)


def _collate(items: list) -> torch.Tensor:
    return torch.as_tensor(np.stack(items), dtype=torch.float32)


def _mlp() -> nn.Module:
    return nn.Sequential(nn.Linear(4, 16), nn.Softplus(), nn.Linear(16, 1))


@pytest.fixture(scope="module")
def linear_data() -> tuple[list, np.ndarray]:
    rng = np.random.default_rng(0)
    x = rng.normal(size=(300, 4)).astype(np.float32)
    # large offset and scale: only learnable quickly if targets are standardized
    y = 50.0 + 20.0 * (x @ np.array([1.0, 2.0, -1.0, 0.5]))
    return list(x), y


def test_regression_learns_in_task_units(linear_data):
    x, y = linear_data
    cfg = TrainConfig(epochs=60, batch_size=32, lr=1e-2, patience=20)
    res = fit_torch(_mlp, x[:200], y[:200], _collate, cfg=cfg, val_items=x[200:250], y_val=y[200:250], seed=0)
    pred = predict_torch(res, x[250:], _collate)
    mad = np.mean(np.abs(y[250:] - y[250:].mean()))
    assert pred.shape == (50,)
    assert np.mean(np.abs(pred - y[250:])) < 0.1 * mad
    # best_val is the validation MAE in task units of the restored weights
    val_pred = predict_torch(res, x[200:250], _collate)
    assert math.isclose(np.mean(np.abs(val_pred - y[200:250])), res.best_val, rel_tol=1e-5)
    assert res.val_metric == "mae" and len(res.history) == res.epochs_run


def test_early_stopping_restores_best_epoch(linear_data):
    x, y = linear_data
    # validation targets are the negated relation: fitting training data makes val worse
    y_val = 2 * y[:200].mean() - y[200:250]
    cfg = TrainConfig(epochs=200, batch_size=32, lr=1e-2, patience=5)
    res = fit_torch(_mlp, x[:200], y[:200], _collate, cfg=cfg, val_items=x[200:250], y_val=y_val, seed=0)
    assert res.stopped_early and res.epochs_run < 200
    assert res.epochs_run == res.best_epoch + 5
    vals = [h["val"] for h in res.history]
    assert res.best_val == min(vals) == vals[res.best_epoch - 1]
    restored = np.mean(np.abs(predict_torch(res, x[200:250], _collate) - y_val))
    assert math.isclose(restored, res.best_val, rel_tol=1e-5)
    assert restored < vals[-1]  # the last epoch was worse, and it was not kept


def test_classification_predicts_class_indices():
    rng = np.random.default_rng(1)
    x = rng.normal(size=(300, 4)).astype(np.float32)
    y = (x[:, 0] > 0).astype(int) + (x[:, 1] > 0).astype(int)  # classes 0, 1, 2
    cfg = TrainConfig(epochs=40, batch_size=32, lr=1e-2, patience=10, task_type="classification")
    build = lambda: nn.Sequential(nn.Linear(4, 16), nn.Softplus(), nn.Linear(16, 3))  # noqa: E731
    res = fit_torch(build, list(x[:200]), y[:200], _collate, cfg=cfg, val_items=list(x[200:250]), y_val=y[200:250])
    pred = predict_torch(res, list(x[250:]), _collate)
    assert pred.dtype == np.int64 and set(np.unique(pred)) <= {0, 1, 2}
    assert np.mean(pred == y[250:]) > 0.85
    assert res.val_metric == "accuracy" and 0.85 < res.best_val <= 1.0


def test_same_seed_same_predictions_and_seed_matters(linear_data):
    x, y = linear_data
    cfg = TrainConfig(epochs=5, batch_size=32, lr=1e-2, patience=None)
    runs = [
        predict_torch(fit_torch(_mlp, x[:200], y[:200], _collate, cfg=cfg, seed=s), x[250:], _collate) for s in (3, 3, 4)
    ]
    assert np.array_equal(runs[0], runs[1])
    assert not np.allclose(runs[0], runs[2])


def test_precise_bn_matches_training_statistics(linear_data):
    x, y = linear_data
    build = lambda: nn.Sequential(nn.Linear(4, 8), nn.BatchNorm1d(8), nn.Softplus(), nn.Linear(8, 1))  # noqa: E731
    stats = {}
    for precise in (True, False):
        cfg = TrainConfig(epochs=3, batch_size=200, lr=1e-2, patience=None, precise_bn=precise)
        res = fit_torch(build, x[:200], y[:200], _collate, cfg=cfg, seed=0)
        with torch.no_grad():
            h = res.module[0](_collate(x[:200]))
        stats[precise] = (res.module[1].running_mean.numpy(), h.mean(0).numpy())
    # one batch = the whole training set: precise running mean is the exact batch mean
    np.testing.assert_allclose(stats[True][0], stats[True][1], atol=1e-5)
    assert not np.allclose(stats[False][0], stats[False][1], atol=1e-2)  # EMA after 3 steps lags


def test_precise_bn_only_where_an_epoch_has_few_batches(linear_data):
    """Recalibration runs when an epoch has <= precise_bn_max_batches batches (None: always)."""
    x, y = linear_data
    build = lambda: nn.Sequential(nn.Linear(4, 8), nn.BatchNorm1d(8), nn.Softplus(), nn.Linear(8, 1))  # noqa: E731
    means = {}
    for limit in (None, 3, 4):  # 200 items / 50 = 4 batches per epoch
        cfg = TrainConfig(
            epochs=2, batch_size=50, lr=1e-2, patience=None, precise_bn_batches=4, precise_bn_max_batches=limit
        )
        res = fit_torch(build, x[:200], y[:200], _collate, cfg=cfg, seed=0)
        means[limit] = res.module[1].running_mean.numpy()
        assert res.summary()["precise_bn"] is (limit != 3)
        if limit != 3:  # precise: the average of the 4 batch means with the final weights = the exact mean
            with torch.no_grad():
                exact = res.module[0](_collate(x[:200])).mean(0).numpy()
            np.testing.assert_allclose(means[limit], exact, atol=1e-5)
    np.testing.assert_array_equal(means[None], means[4])
    assert not np.allclose(means[3], means[4], atol=1e-3)  # plain running averages
    with pytest.raises(BadInputError, match="precise_bn_max_batches"):
        TrainConfig(precise_bn_max_batches=0)


class _Exploding(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.lin = nn.Linear(4, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.lin(x) * torch.tensor(float("nan"))


def test_nan_loss_raises_clear_error(linear_data):
    x, y = linear_data
    cfg = TrainConfig(epochs=3, batch_size=32, lr=1e-3)
    with pytest.raises(NonFiniteLossError, match=r"mynet: training loss became nan at epoch 1.*lower the learning rate"):
        fit_torch(_Exploding, x[:64], y[:64], _collate, cfg=cfg, desc="mynet")


def test_bad_targets_and_device_rejected(linear_data):
    x, y = linear_data
    bad = y[:64].copy()
    bad[3] = np.nan
    with pytest.raises(BadInputError, match="NaN"):
        fit_torch(_mlp, x[:64], bad, _collate, cfg=TrainConfig(epochs=1))
    if not torch.cuda.is_available():
        with pytest.raises(BadInputError, match="CUDA"):
            fit_torch(_mlp, x[:64], y[:64], _collate, cfg=TrainConfig(epochs=1, device="cuda"))


def test_config_from_params():
    """The one way a model's typed params become a training config: its recipe fields, nothing re-parsed."""
    from crystalbench.plugins.cgcnn.params import CGCNNParams

    params = CGCNNParams(epochs=7, lr=0.02, batch_size=16, patience=None)
    cfg = TrainConfig.from_params(params, task_type="classification", device="cuda:1")
    assert (cfg.epochs, cfg.lr, cfg.batch_size, cfg.patience) == (7, 0.02, 16, None)
    assert cfg.device == "cuda:1" and cfg.task_type == "classification"
    assert cfg.precise_bn is params.precise_bn and cfg.precise_bn_batches == params.precise_bn_batches
    assert TrainConfig.from_params(params, device="").device == "cpu"

    @dataclasses.dataclass
    class Loose:  # a params class that does not check itself: TrainConfig's rules still apply
        epochs: int = 0
        hidden: int = 8

    with pytest.raises(BadInputError, match="epochs"):
        TrainConfig.from_params(Loose())



def _ds(n: int, feats: np.ndarray | None, names: tuple[str, ...] = ("u", "v")) -> Dataset:
    from pymatgen.core import Composition

    return Dataset(
        ids=[str(i) for i in range(n)],
        targets=np.zeros(n),
        compositions=[Composition("NaCl")] * n,
        features=feats,
        feature_names=names if feats is not None else (),
    )


def test_feature_input_scales_with_training_statistics():
    train = np.array([[1.0, np.nan], [3.0, 10.0], [5.0, 30.0]])
    fi = FeatureInput().fit(_ds(3, train))
    assert fi.dim == 2
    out = fi.transform(_ds(2, np.array([[3.0, np.nan], [7.0, 20.0]])))
    assert out.dtype == np.float32
    # column 0: mean 3, std sqrt(8/3); NaN in column 1 -> training median 20 -> mean 20 -> 0
    np.testing.assert_allclose(out[:, 0], [0.0, 4.0 / np.sqrt(8 / 3)], rtol=1e-6)
    np.testing.assert_allclose(out[:, 1], [0.0, 0.0], atol=1e-6)
    assert FeatureInput().fit(_ds(3, None)).dim == 0 and FeatureInput().fit(_ds(3, None)).transform(_ds(1, None)) is None
    with pytest.raises(BadInputError):
        fi.transform(_ds(2, None))
    with pytest.raises(BadInputError):
        fi.transform(_ds(2, np.zeros((2, 2)), names=("v", "u")))


def test_mlp_head_concatenates_extra_features():
    head = MLPHead(8, 16, 3, extra_dim=2, n_hidden=2)
    out = head(torch.zeros(5, 8), torch.ones(5, 2))
    assert out.shape == (5, 3)
    assert head.hidden[0].in_features == 10 and sum(isinstance(m, nn.Linear) for m in head.hidden) == 2
    with pytest.raises(ValueError):
        head(torch.zeros(5, 8))


def test_config_from_typed_params_and_validation():
    from dataclasses import dataclass

    @dataclass(frozen=True)
    class P:
        epochs: int = 7
        lr: float = 0.5
        patience: int | None = None
        atom_fea_len: int = 64  # not a training field: ignored

    cfg = TrainConfig.from_params(P(), task_type="classification", device="cpu")
    assert (cfg.epochs, cfg.lr, cfg.patience, cfg.batch_size, cfg.task_type) == (7, 0.5, None, 64, "classification")
    for bad in ({"epochs": 0}, {"batch_size": 0}, {"lr": 0.0}, {"lr": float("nan")}, {"weight_decay": -1.0},
                {"patience": -1}):
        with pytest.raises(BadInputError, match="invalid training settings"):
            TrainConfig(**bad)


class _NaNAtPredict(nn.Module):
    """Trains normally; in eval mode returns NaN/inf for the second half of the batch."""

    def __init__(self, out: int = 1, value: float = float("nan")) -> None:
        super().__init__()
        self.lin = nn.Linear(4, out)
        self.value = value

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.lin(x)
        if not self.training:
            y = y.clone()
            y[len(y) // 2 :] = self.value
        return y


def test_nonfinite_predictions_raise_instead_of_garbage(linear_data):
    x, y = linear_data
    cfg = TrainConfig(epochs=2, batch_size=32, patience=None, precise_bn=False)
    res = fit_torch(lambda: _NaNAtPredict(), x[:64], y[:64], _collate, cfg=cfg, seed=0, desc="nanny")
    with pytest.raises(NonFiniteLossError, match=r"nanny: 5 of 10 predictions are NaN/inf"):
        predict_torch(res, x[:10], _collate)
    res_inf = fit_torch(lambda: _NaNAtPredict(value=float("inf")), x[:64], y[:64], _collate, cfg=cfg, seed=0)
    with pytest.raises(NonFiniteLossError):
        predict_torch(res_inf, x[:10], _collate)
    # classification: NaN logits are an error, never a class index made from NaN
    cls_cfg = TrainConfig(epochs=2, batch_size=32, patience=None, precise_bn=False, task_type="classification")
    labels = (np.asarray(x[:64])[:, 0] > 0).astype(int)
    res_cls = fit_torch(lambda: _NaNAtPredict(out=2), x[:64], labels, _collate, cfg=cls_cfg, seed=0, desc="cls")
    with pytest.raises(NonFiniteLossError, match="NaN class scores"):
        predict_torch(res_cls, x[:10], _collate)
    # +inf logits still name a class: returned as int64 indices
    res_inf_cls = fit_torch(lambda: _NaNAtPredict(out=2, value=float("inf")), x[:64], labels, _collate, cfg=cls_cfg)
    pred = predict_torch(res_inf_cls, x[:10], _collate)
    assert pred.dtype == np.int64 and set(np.unique(pred)) <= {0, 1}


class _Gather(nn.Module):
    """Message passing in miniature: gathers rows by index (advanced indexing) and scatters them back."""

    def __init__(self, n_nodes: int, idx: torch.Tensor) -> None:
        super().__init__()
        self.table = nn.Parameter(torch.randn(n_nodes, 64) * 0.1)
        self.idx = idx
        self.register_buffer("weights", torch.randn(len(idx), 64, generator=torch.Generator().manual_seed(1)))
        self.out = nn.Linear(64, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        gathered = self.table[self.idx]  # backward: index_put_(accumulate=True), thread-order dependent on CPU
        h = (gathered * self.weights).mean(0, keepdim=True)
        return self.out(h + x.mean(1, keepdim=True))


def test_fit_is_bit_identical_with_several_threads(linear_data):
    """With 2 intra-op threads, a scatter-heavy backward must still give identical weights (deterministic mode)."""
    x, y = linear_data
    gen = torch.Generator().manual_seed(0)
    idx = torch.randint(0, 50, (4000,), generator=gen)
    cfg = TrainConfig(epochs=2, batch_size=64, patience=None)
    before = torch.get_num_threads()
    was_deterministic = torch.are_deterministic_algorithms_enabled()
    torch.set_num_threads(2)
    try:
        results = [fit_torch(lambda: _Gather(50, idx), x[:128], y[:128], _collate, cfg=cfg, seed=1) for _ in range(3)]
    finally:
        torch.set_num_threads(before)
    weights = [r.module.table.detach().numpy() for r in results]
    assert all(np.array_equal(weights[0], w) for w in weights[1:])
    assert results[0].torch_threads == 2 and results[0].summary()["torch_threads"] == 2
    assert torch.are_deterministic_algorithms_enabled() == was_deterministic  # restored after fit


def test_precise_bn_only_while_the_running_averages_drift():
    """Recalibration every epoch while drift >= tolerance; gaps of 1, 2, 4, 8 epochs while below it."""
    from crystalbench.gnn.trainer import _RecalibrationSchedule

    calm = _RecalibrationSchedule(5.0)
    done = []
    for epoch in range(1, 41):
        if calm.due(epoch):
            done.append(epoch)
            calm.record(epoch, 0.5)
    assert done == [1, 3, 6, 11, 20, 29, 38]
    drifting = _RecalibrationSchedule(5.0)
    for epoch in range(1, 11):
        assert drifting.due(epoch)
        drifting.record(epoch, 30.0)
    assert drifting.passes == 10
    # a drift back above the tolerance returns to every epoch
    calm.record(40, 9.0)
    assert calm.due(41)
    always = _RecalibrationSchedule(None)
    assert all(always.due(e) for e in range(1, 5))
    with pytest.raises(BadInputError, match="precise_bn_tolerance"):
        TrainConfig(precise_bn_tolerance=-1)
    zero = _RecalibrationSchedule(0.0)  # 0: every epoch, whatever the drift (TOML has no None)
    for epoch in range(1, 4):
        assert zero.due(epoch)
        zero.record(epoch, 0.0)


def test_precise_bn_passes_follow_the_measured_drift(linear_data):
    """A network whose running averages stay close recalibrates in fewer epochs; tolerance None: every epoch."""
    x, y = linear_data
    build = lambda: nn.Sequential(nn.Linear(4, 8), nn.BatchNorm1d(8), nn.Softplus(), nn.Linear(8, 1))  # noqa: E731
    passes = {}
    for tol in (None, 1e9, 1e-9):
        cfg = TrainConfig(epochs=12, batch_size=50, lr=1e-3, patience=None, precise_bn_tolerance=tol)
        res = fit_torch(build, x[:200], y[:200], _collate, cfg=cfg, val_items=x[200:], y_val=y[200:], seed=0)
        passes[tol] = res.summary()["precise_bn_passes"]
    assert passes[None] == 12 and passes[1e-9] == 12  # any drift is too much: every epoch
    assert passes[1e9] == 4  # epochs 1, 3, 6, 11


def test_training_contexts_switch_off_nan_fills_and_restore_everything():
    """Deterministic mode without its NaN fill of new tensors (12% of a CGCNN epoch); settings restored."""
    import torch.utils.deterministic as tud

    from crystalbench.gnn.trainer import deterministic, reuse_freed_memory

    cpu = torch.device("cpu")
    before = (torch.are_deterministic_algorithms_enabled(), tud.fill_uninitialized_memory)
    with deterministic(cpu), reuse_freed_memory(cpu):
        assert torch.are_deterministic_algorithms_enabled()
        assert tud.fill_uninitialized_memory is False
        x = torch.arange(300_000, dtype=torch.float32)  # a block above glibc's default mmap threshold
        assert torch.equal((x + 1) - 1, x)  # exact below 2**24
    assert (torch.are_deterministic_algorithms_enabled(), tud.fill_uninitialized_memory) == before
