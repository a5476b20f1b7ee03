"""`crystalbench.gnn.TorchModel` and `TrainingParams`: one base for every torch model, no model <-> net loops.

A tiny subclass trains and predicts through the base alone; the built-in models
are subclasses whose params extend the shared recipe; the training loop leaves
the process's RNGs as the harness seeded them (the seed is applied to the
process once, by the harness); and no plugin module imports its way back into
itself (checked on the source with `ast`, lazy imports inside functions included).
"""

from __future__ import annotations

import ast
import dataclasses
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from helpers import REPO_ROOT

from crystalbench import BadInputError, Dataset, ModelContext
from crystalbench.contract.params import params_table, params_to_dict
from crystalbench.gnn.params import TrainingParams, param

ROOT = REPO_ROOT / "crystalbench"


@dataclass(frozen=True)
class TinyParams(TrainingParams):
    hidden: int = param(8, "hidden units")
    epochs: int = param(15, "training epochs (this test's recipe)")
    lr: float = param(1e-2, "learning rate")
    patience: int | None = param(None, "no early stopping")


def _data(n: int, *, features: bool = True, seed: int = 0) -> Dataset:
    from pymatgen.core import Composition

    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 2))
    data = Dataset(ids=[f"s{i}" for i in range(n)], targets=2.0 * x[:, 0] - x[:, 1],
                   compositions=[Composition("NaCl")] * n)
    return data.with_features(("u", "v"), x) if features else data


def _tiny_model_class() -> type:
    """A whole torch model in 15 lines: items, collate, network (defined here: torch is imported lazily)."""
    from torch import nn

    from crystalbench.gnn import TorchModel

    class Tiny(TorchModel):
        params_class = TinyParams

        def items(self, data: Dataset, *, progress: bool) -> list[Any]:
            return self.with_features([np.float32(1.0)] * len(data), data)

        def collate(self) -> Callable[[list[Any]], Any]:
            import torch

            def collate(items: list[Any]) -> Any:
                return torch.from_numpy(np.stack([f for _, f in items]).astype(np.float32))

            return collate

        def network(self, train: Dataset) -> Callable[[], nn.Module]:
            hidden, extra, out = self.params.hidden, self.features_dim, self.out_dim(train)
            return lambda: nn.Sequential(nn.Linear(extra, hidden), nn.SiLU(), nn.Linear(hidden, out))

    return Tiny


def test_a_tiny_subclass_trains_and_predicts_through_the_base(tmp_path):
    pytest.importorskip("torch")
    tiny = _tiny_model_class()
    train, val, test = _data(96), _data(24, seed=1), _data(24, seed=2)

    def fitted(seed: int) -> Any:
        model = tiny(ModelContext(hparams={}, cache_dir=tmp_path), name="tiny")
        model.fit(train, val, seed=seed, progress=False)
        return model

    model = fitted(0)
    assert isinstance(model.params, TinyParams) and model.params.epochs == 15  # resolved from plain hparams
    pred = model.predict(test)
    assert pred.shape == (24,) and np.all(np.isfinite(pred))
    assert np.corrcoef(pred, test.targets)[0, 1] > 0.9  # it learned the linear target
    info = model.fit_info
    assert info["n_extra_features"] == 2 and info["recipe"]["epochs"] == 15 and info["epochs_run"] == 15
    assert np.array_equal(pred, fitted(0).predict(test))  # same seed: bit-identical
    assert not np.array_equal(pred, fitted(1).predict(test))


def test_base_refuses_predict_before_fit_and_a_hybrid_without_features(tmp_path):
    pytest.importorskip("torch")
    tiny = _tiny_model_class()
    ctx = ModelContext(hparams={}, cache_dir=tmp_path)
    with pytest.raises(RuntimeError, match="tiny: predict called before fit"):
        tiny(ctx, name="tiny").predict(_data(4))
    hybrid = tiny(ctx, name="de-tiny", require_features=True)
    with pytest.raises(BadInputError, match="de-tiny concatenates a descriptor vector"):
        hybrid.fit(_data(8, features=False), None, seed=0, progress=False)
    with pytest.raises(BadInputError, match="epochs must be >= 1"):
        tiny(ModelContext(hparams={"epochs": 0}), name="tiny")


def test_training_loop_leaves_the_process_rngs_as_the_harness_seeded_them():
    torch = pytest.importorskip("torch")
    from torch import nn

    from crystalbench.contract.seeding import seed_everything
    from crystalbench.gnn import TrainConfig, fit_torch

    x = np.random.default_rng(0).normal(size=(32, 3)).astype(np.float32)
    y = x.sum(axis=1)

    def collate(items: list[Any]) -> Any:
        return torch.from_numpy(np.stack(items))

    seed_everything(7)
    expected = (torch.rand(3), np.random.random())
    seed_everything(7)
    res = fit_torch(lambda: nn.Linear(3, 1), list(x), y, collate, cfg=TrainConfig(epochs=2, batch_size=8), seed=3)
    assert torch.equal(torch.rand(3), expected[0]) and np.random.random() == expected[1]
    # and the network followed the loop's own seed, whatever the process's RNG state was
    seed_everything(99)
    again = fit_torch(lambda: nn.Linear(3, 1), list(x), y, collate, cfg=TrainConfig(epochs=2, batch_size=8), seed=3)
    assert all(torch.equal(a, b) for a, b in zip(res.module.state_dict().values(), again.module.state_dict().values()))


def test_builtin_torch_models_share_the_base_and_the_recipe():
    from crystalbench.gnn import BatchNormTrainingParams, TorchModel
    from crystalbench.plugins.alignn import AlignnModel, AlignnParams, DeAlignnParams
    from crystalbench.plugins.cgcnn import CGCNNModel, CGCNNParams
    from crystalbench.plugins.cgcnn_desc import CGCNNDescModel, CGCNNDescParams
    from crystalbench.plugins.roost import RoostModel, RoostParams

    for cls in (CGCNNModel, AlignnModel, RoostModel, CGCNNDescModel):
        assert issubclass(cls, TorchModel) and "predict" not in vars(cls)
    for params in (CGCNNParams, AlignnParams, DeAlignnParams, RoostParams, CGCNNDescParams):
        assert issubclass(params, TrainingParams)
        names = [row[0] for row in params_table(params)]
        recipe = [f.name for f in dataclasses.fields(BatchNormTrainingParams if issubclass(
            params, BatchNormTrainingParams) else TrainingParams)]
        assert names[-len(recipe):] == recipe  # the model's own fields first, the shared recipe closes the table
        assert list(params_to_dict(params())) == names


def test_one_rule_set_validates_params_and_train_config():
    from crystalbench.gnn import TrainConfig

    with pytest.raises(ValueError, match="lr must be > 0, got -1"):
        TinyParams(lr=-1)
    with pytest.raises(BadInputError, match="invalid training settings: lr must be > 0, got -1"):
        TrainConfig(lr=-1)
    with pytest.raises(BadInputError, match="optimizer must be one of adam, adamw, sgd"):
        TrainConfig(optimizer="rmsprop")  # type: ignore[arg-type]


def _imports(path: Path, package: str) -> set[str]:
    """Absolute names of every module `path` imports (module level and inside functions)."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = package.rsplit(".", node.level - 1)[0] if node.level else ""
            module = ".".join(p for p in (base, node.module or "") if p)
            found.add(module)
            found.update(f"{module}.{alias.name}" for alias in node.names)  # `from . import net`
    return found


@pytest.mark.parametrize("package", ["plugins/cgcnn", "plugins/alignn", "plugins/roost", "plugins/cgcnn_desc", "gnn"])
def test_no_import_loop_between_the_modules_of_a_package(package):
    folder = ROOT / package
    dotted = "crystalbench." + package.replace("/", ".")
    modules = {p.stem: p for p in folder.glob("*.py") if p.stem != "__init__"}
    graph = {
        name: {m for m in modules if m != name and f"{dotted}.{m}" in _imports(path, dotted)}
        for name, path in modules.items()
    }

    def reaches(start: str, target: str, seen: set[str]) -> bool:
        for nxt in graph[start]:
            if nxt == target or (nxt not in seen and reaches(nxt, target, seen | {nxt})):
                return True
        return False

    loops = [m for m in graph if reaches(m, m, {m})]
    assert not loops, f"{dotted}: modules importing their way back to themselves: {loops} ({graph})"
    if "net" in graph:
        assert "model" not in graph["net"]  # a network never needs its model wrapper
