"""The plugin test kit `crystalbench.testing` (issue #12): built-in plugins pass it, broken ones fail it clearly.

(cgcnn, gong29 and the chain tasks are checked with the kit in their own test files.)

Each check must fail with an AssertionError that says what to fix; these tests
break plugins on purpose, one contract rule at a time.
"""

from __future__ import annotations

import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
from helpers import REPO_ROOT

from crystalbench import Dataset, DataUnavailableError, DescriptorSpec, ModelSpec, RunContext, TaskSpec
from crystalbench.plugins.dummy import bench_models as dummy_models
from crystalbench.plugins.random_forest import bench_models as rf_models
from crystalbench.tasks.chains import load_chains
from crystalbench.testing import (
    KIT_DESCRIPTORS,
    chain_sample,
    check_descriptors,
    check_model,
    check_registered,
    check_task,
    geometry_features,
    toy_dataset,
)
from crystalbench.testing.fixtures import bench_context, chain_data, toy_classes, toy_data  # noqa: F401


def test_kit_imports_without_torch():
    code = ("import sys, crystalbench.testing, crystalbench.testing.fixtures; "
            "assert 'torch' not in sys.modules, 'torch imported'")
    subprocess.run([sys.executable, "-c", code], check=True, cwd=REPO_ROOT, timeout=120)


# -- the built-in plugins pass the kit --------------------------------------------------------------
def test_dummy_passes_contract_without_learning():
    (spec,) = dummy_models()
    report = check_model(spec, learns=False)
    assert 0.9 < report.mae_over_mad < 1.2  # the floor: ~1 by construction
    with pytest.raises(AssertionError, match="does not beat the mean predictor"):
        check_model(spec)


def test_rf_passes_with_features_attached():
    (spec,) = rf_models()
    report = check_model(spec, params={"n_estimators": 30, "n_jobs": 1})
    assert report.descriptors == "kit_geometry" and report.mae_over_mad < 0.3
    assert report.classification is not None and report.classification.metrics["accuracy"] > 0.8


def test_real_data_task_passes(data_dir, tmp_path):
    from crystalbench.tasks.properties import property_tasks

    e_fin = next(t for t in property_tasks() if t.name == "e_fin")
    data = check_task(e_fin, RunContext(data_dir=data_dir, cache_dir=tmp_path / "cache"))
    assert len(data) > 0


def test_kit_descriptor_set_passes():
    values = check_descriptors(KIT_DESCRIPTORS)
    assert np.isfinite(values).all()


# -- the tiny datasets and fixtures -----------------------------------------------------------------
def test_chain_sample_is_the_start_of_the_real_task(tmp_path):
    full = load_chains("chain1d_short", RunContext(cache_dir=tmp_path))
    sample = chain_sample(50)
    assert sample.ids == full.ids[:50]
    assert sample.content_hash == full.subset(range(50)).content_hash


def test_fixtures(bench_context, toy_data, toy_classes, chain_data):  # noqa: F811
    assert bench_context.data_dir.is_dir() and not any(bench_context.data_dir.iterdir())
    assert bench_context.jobs == 1 and bench_context.device == "cpu"
    assert len(toy_data) == 160 and toy_classes.classes == ("short", "long")
    assert len(chain_data) == 100 and chain_data.ids[0] == "chain1d_short-0000"
    assert toy_data.content_hash == toy_dataset().content_hash  # deterministic


# -- broken models fail with a message saying what to fix -------------------------------------------
class Mean:
    def __init__(self, ctx):
        self.ctx = ctx

    def fit(self, train, val, *, seed, progress):
        self.mean = float(np.mean(train.targets))

    def predict(self, data):
        return np.full(len(data), self.mean)


class Unseeded(Mean):
    def predict(self, data):
        return np.random.default_rng().normal(self.mean, 0.1, len(data))


class Short(Mean):
    def predict(self, data):
        return np.full(len(data) - 1, self.mean)


class Nan(Mean):
    def predict(self, data):
        return np.full(len(data), np.nan)


class Mutates(Mean):
    def fit(self, train, val, *, seed, progress):
        super().fit(train, val, seed=seed, progress=progress)
        for s in train.structures:
            s.scale_lattice(s.volume * 1.1)


class Learner(Mean):
    """Nearest-neighbour distance by element pair: learns the toy exactly enough."""

    def fit(self, train, val, *, seed, progress):
        x = geometry_features(train.structures)
        self.coef = np.linalg.lstsq(np.c_[x[:, :1], np.ones(len(x))], train.targets.astype(float), rcond=None)[0]

    def predict(self, data):
        x = geometry_features(data.structures)
        return np.c_[x[:, :1], np.ones(len(x))] @ self.coef


class Fractional(Learner):
    def predict(self, data):
        return np.full(len(data), 0.5) if self.ctx.task_type == "classification" else super().predict(data)


class NoPredict:
    def __init__(self, ctx):
        pass

    def fit(self, train, val, *, seed, progress):
        pass


class OldFit(Mean):
    def fit(self, train, val):
        self.mean = float(np.mean(train.targets))


@dataclass(frozen=True)
class NeedsValue:
    alpha: float


@pytest.mark.parametrize("factory, kwargs, message", [
    (Unseeded, {}, "not reproducible"),
    (Mean, {}, "does not beat the mean predictor"),
    (Short, {}, "returned 31 predictions for 32 samples"),
    (Nan, {}, "NaN or infinite predictions"),
    (Mutates, {"learns": False}, "changed the structures"),
    (Fractional, {"classification": True}, "class indices"),
    (NoPredict, {}, "without fit/predict"),
    (OldFit, {}, r"fit must accept \(train, val, \*, seed"),
    (Learner, {"name": "bad/name"}, "is not allowed"),
    (Learner, {"params": NeedsValue}, "needs a default"),
    (Learner, {"poolings": ("max",)}, "poolings"),
])
def test_broken_models_fail_with_what_to_fix(factory, kwargs, message):
    learns = kwargs.pop("learns", True)
    spec = ModelSpec(name=kwargs.pop("name", "broken"), factory=factory, needs_validation=False, **kwargs)
    with pytest.raises(AssertionError, match=message):
        check_model(spec, learns=learns)


def test_a_learner_passes_and_unknown_params_are_rejected():
    spec = ModelSpec(name="learner", factory=Learner, needs_validation=False, defaults={"k": 1})
    assert check_model(spec).mae_over_mad < 0.5
    with pytest.raises(AssertionError, match="unknown hyperparameter 'epochs'"):
        check_model(spec, params={"epochs": 2})


# -- broken tasks -----------------------------------------------------------------------------------
def _csv_task(tmp_path: Path, **kw) -> tuple[TaskSpec, RunContext]:
    """A task reading <data>/t/data.txt (one lattice edge per line), breakable via `kw`."""
    (tmp_path / "data" / "t").mkdir(parents=True)
    (tmp_path / "data" / "t" / "data.txt").write_text("\n".join(str(3 + 0.1 * i) for i in range(20)))
    missing = kw.pop("missing", DataUnavailableError)
    random_ids = kw.pop("random_ids", False)
    calls = [0]

    def load(ctx):
        path = ctx.data_dir / "t" / "data.txt"
        if not path.exists():
            raise missing(f"{path} is missing: put the edge list there")
        calls[0] += 1
        edges = [float(v) for v in path.read_text().split()]
        ds = toy_dataset(len(edges))
        ids = [f"x{i + (calls[0] if random_ids else 0)}" for i in range(len(edges))]
        return Dataset(ids=ids, targets=np.array(edges), structures=ds.structures)

    files = kw.pop("files", lambda ctx: [ctx.data_dir / "t" / "data.txt"])
    spec = TaskSpec(name=kw.pop("name", "t"), load=load, target="edge", files=files, **kw)
    return spec, RunContext(data_dir=tmp_path / "data", cache_dir=tmp_path / "cache")


def test_a_good_task_passes(tmp_path):
    spec, ctx = _csv_task(tmp_path, size=20)
    assert len(check_task(spec, ctx)) == 20


@pytest.mark.parametrize("kwargs, message", [
    ({"missing": FileNotFoundError}, "must raise crystalbench.DataUnavailableError"),
    ({"random_ids": True}, "two loads returned different data"),
    ({"size": 99}, "size=99 but load returned 20"),
    ({"files": lambda ctx: [Path("/nonexistent/t.csv")]}, "does not exist"),
    ({"protocol": "file"}, "needs split_ids"),
    ({"fractions": (0.5, 0.5, 0.5)}, "fractions"),
    ({"name": "a b"}, "is not allowed"),
])
def test_broken_tasks_fail_with_what_to_fix(tmp_path, kwargs, message):
    spec, ctx = _csv_task(tmp_path, **kwargs)
    with pytest.raises(AssertionError, match=message):
        check_task(spec, ctx)


def test_task_check_without_its_data_says_how_to_point_at_it(tmp_path):
    spec, _ = _csv_task(tmp_path)
    with pytest.raises(AssertionError, match="Pass check_task a ctx whose data_dir holds"):
        check_task(spec)


# -- broken descriptor sets -------------------------------------------------------------------------
def _standardized(structures):
    x = geometry_features(structures)
    return (x - x.mean(axis=0)) / (x.std(axis=0) + 1.0)


def _with_none(structures):
    return [[None, 1.0] for _ in structures]


def _wrong_shape(structures):
    return np.zeros((len(structures), 3))


def _infinite(structures):
    return np.full((len(structures), 2), np.inf)


def _undefined(structures):
    return np.full((len(structures), 2), np.nan)  # NaN as a float is allowed


@pytest.mark.parametrize("featurize, names, message", [
    (_standardized, KIT_DESCRIPTORS.feature_names, "not a pure function of each structure"),
    (_with_none, ("a", "b"), "not None or strings"),
    (_wrong_shape, ("a", "b"), r"expected \(32, 2\)"),
    (_infinite, ("a", "b"), "infinite values"),
    (lambda structures: _undefined(structures), ("a", "b"), "module-level function"),
    (_undefined, ("a", "a"), "duplicates"),
])
def test_broken_descriptor_sets_fail_with_what_to_fix(featurize, names, message):
    with pytest.raises(AssertionError, match=message):
        check_descriptors(DescriptorSpec(name="broken", feature_names=names, featurize=featurize))


def test_nan_as_float_is_allowed():
    assert np.isnan(check_descriptors(DescriptorSpec(name="nan", feature_names=("a", "b"), featurize=_undefined))).all()


# -- registration -----------------------------------------------------------------------------------
def test_check_registered():
    info = check_registered("chains", tasks=["chain1d_short"])
    assert info.distribution == "crystalbench"
    with pytest.raises(AssertionError, match="no plugin 'not-installed' is installed"):
        check_registered("not-installed")
    with pytest.raises(AssertionError, match="does not provide model 'rf'"):
        check_registered("dummy", models=["rf"])


# -- issue #21 item 1: one way to get compositions, and the kit runs every input kind ---------------
class ByFormula(Mean):
    """A composition model as docs/plugins.md writes one: mean training target per reduced formula."""

    def fit(self, train, val, *, seed, progress):
        super().fit(train, val, seed=seed, progress=progress)
        table: dict[str, list[float]] = {}
        for comp, y in zip(train.compositions, train.targets):
            table.setdefault(comp.reduced_formula, []).append(float(y))
        self.table = {k: float(np.mean(v)) for k, v in table.items()}

    def predict(self, data):
        return np.array([self.table.get(c.reduced_formula, self.mean) for c in data.compositions])


class CompositionOnlyData(ByFormula):
    """Works on composition-only data and breaks on structure tasks, as a model written to today's kit could."""

    def fit(self, train, val, *, seed, progress):
        if train.structures is not None:
            raise TypeError("'NoneType' object is not iterable")
        super().fit(train, val, seed=seed, progress=progress)


def test_every_dataset_has_compositions():
    data = toy_dataset(12)
    assert data.compositions is not None
    assert [c.reduced_formula for c in data.compositions] == [s.composition.reduced_formula for s in data.structures]
    assert data.subset([3, 1]).compositions == (data.compositions[3], data.compositions[1])
    with pytest.warns(DeprecationWarning, match="use Dataset.compositions"):
        assert data.composition_list == data.compositions


def test_a_composition_model_is_checked_on_structure_and_composition_data():
    spec = ModelSpec(name="by-formula", factory=ByFormula, needs="composition", needs_validation=False)
    report = check_model(spec)
    assert set(report.by_input) == {"structure", "composition"}
    assert report.by_input["structure"].task == "kit_toy"
    assert all(r.metrics["mae_over_mad"] < 0.5 for r in report.by_input.values())


def test_a_composition_model_that_breaks_on_structure_tasks_fails_the_kit():
    spec = ModelSpec(name="comp-only", factory=CompositionOnlyData, needs="composition", needs_validation=False)
    with pytest.raises(AssertionError, match=r"failed on the kit's kit_toy task \(160 crystal structures"):
        check_model(spec)
