"""Same seed, same data -> bit-identical predictions for every torch model, in-process and across processes.

Regression tests for the de-cgcnn defect: three runs with the same seed gave three
different MAEs. Cause: the first job of a process trained with torch's default
(all-core) thread count, and with more than one intra-op thread the backward of
advanced indexing (``x[centers]`` in CGCNN's convolution, ``index_put_`` with
accumulation) adds gradients in a thread-dependent order. The models now gather
with ``index_select``, the shared loop runs CPU training with torch's
deterministic algorithms, and every model applies ``ctx.threads`` at the start
of ``fit``. These tests train with 2 threads on batches large enough for torch
to parallelize those kernels, with descriptor features attached.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")
from pymatgen.core import Composition, Lattice, Structure  # noqa: E402

from crystalbench import Dataset, ModelContext  # noqa: E402

THREADS = 2
CGCNN_TINY = dict(atom_fea_len=64, n_conv=2, h_fea_len=32, batch_size=32, epochs=2, patience=None)
ALIGNN_TINY = dict(
    hidden_features=16, embedding_features=16, edge_input_features=16, triplet_input_features=8,
    alignn_layers=1, gcn_layers=1, batch_size=32, epochs=2, patience=None,
)
ROOST_TINY = dict(
    elem_fea_len=16, n_graph=1, elem_heads=1, elem_gate=(16,), elem_msg=(16,), cry_heads=1, cry_gate=(16,),
    cry_msg=(16,), trunk_hidden=(32,), out_hidden=(16,), batch_size=32, epochs=2, patience=None,
)


def chain(n: int, rng: np.random.Generator) -> Structure:
    """A zig-zag carbon chain along x in a 100 A vacuum box (as the paper's 1D tasks)."""
    pos = [rng.random(3) * 3]
    for i in range(1, n):
        sign = 1.0 if i % 2 == 0 else -1.0
        pos.append(pos[-1] + np.array([1.2 + rng.random(), sign * rng.random(), sign * rng.random()]))
    xyz = np.array(pos)
    return Structure(Lattice.orthorhombic(xyz[-1, 0] + 1.3, 100.0, 100.0), ["C"] * n, xyz, coords_are_cartesian=True)


def chain_data(n: int = 40, seed: int = 0, atoms: tuple[int, int] = (10, 17)) -> tuple[Dataset, Dataset, Dataset]:
    """Chains with a mixed second species (so ALIGNN sees geometry) and 3 descriptor-like features (one NaN).

    CGCNN batches of 30 chains of 10-16 atoms have ~6000 edges: enough for torch to
    split the scatter kernels across threads (smaller batches hid the defect).
    """
    rng = np.random.default_rng(seed)
    structures = []
    for i in range(n):
        s = chain(int(rng.integers(*atoms)), rng)
        if i % 2:
            s.replace(0, "Si")
        structures.append(s)
    feats = rng.normal(size=(n, 3))
    feats[3, 1] = np.nan
    targets = np.array([s.lattice.a for s in structures]) + feats[:, 0]
    data = Dataset(ids=[f"c{i}" for i in range(n)], targets=targets, structures=structures, name="chains")
    data = data.with_features(("f0", "f1", "f2"), feats)
    return data.subset(range(30)), data.subset(range(30, 35)), data.subset(range(35, n))


def comp_data(n: int = 60) -> tuple[Dataset, Dataset, Dataset]:
    rng = np.random.default_rng(1)
    els = ["Li", "Na", "K", "Mg", "Ca", "Al", "F", "Cl", "O", "S", "N"]
    comps, y = [], []
    for _ in range(n):
        a, b = rng.choice(els, 2, replace=False)
        comps.append(Composition({str(a): int(rng.integers(1, 4)), str(b): int(rng.integers(1, 4))}))
        y.append(rng.normal())
    d = Dataset(ids=[f"r{i}" for i in range(n)], targets=np.array(y), compositions=comps)
    return d.subset(range(40)), d.subset(range(40, 50)), d.subset(range(50, n))


def make_model(name: str, cache_dir: Path):
    """A model as the harness builds it: typed params, ctx.threads, a cache dir."""
    if name in ("cgcnn", "de-cgcnn"):
        from crystalbench.plugins.cgcnn import CGCNNParams, make_cgcnn, make_de_cgcnn

        factory, params = (make_de_cgcnn if name == "de-cgcnn" else make_cgcnn), replace(CGCNNParams(), **CGCNN_TINY)
    elif name in ("alignn", "de-alignn"):
        pytest.importorskip("alignn")
        from crystalbench.plugins.alignn import AlignnParams, DeAlignnParams, make_alignn, make_de_alignn

        if name == "de-alignn":
            factory, params = make_de_alignn, replace(DeAlignnParams(), **ALIGNN_TINY)
        else:
            factory, params = make_alignn, replace(AlignnParams(), **ALIGNN_TINY)
    else:
        pytest.importorskip("aviary")
        from crystalbench.plugins.roost import RoostParams, make_roost

        factory, params = make_roost, replace(RoostParams(), **ROOST_TINY)
    ctx = ModelContext(hparams={}, params=params, cache_dir=cache_dir, threads=THREADS, seed=3)
    return factory(ctx)


def fit_predict(name: str, cache_dir: Path) -> tuple[np.ndarray, dict]:
    if name == "roost":
        train, val, test = comp_data()
    else:  # ALIGNN's line graphs grow fast with chain length: shorter chains keep the test quick
        train, val, test = chain_data(atoms=(5, 9) if "alignn" in name else (10, 17))
    model = make_model(name, cache_dir)
    model.fit(train, val, seed=3, progress=False)
    return model.predict(test), model.fit_info


def digest(pred: np.ndarray) -> str:
    return hashlib.sha256(np.ascontiguousarray(pred, dtype=np.float64).tobytes()).hexdigest()


@pytest.mark.parametrize("name", ["de-cgcnn", "cgcnn", "alignn", "de-alignn", "roost"])
def test_same_seed_bit_identical_in_process(name, tmp_path):
    before = torch.get_num_threads()
    try:
        p1, info = fit_predict(name, tmp_path)
        p2, _ = fit_predict(name, tmp_path)  # second fit: graphs from the memo/disk cache
    finally:
        torch.set_num_threads(before)
    assert np.all(np.isfinite(p1)) and p1.shape == ((10,) if name == "roost" else (5,))
    assert np.array_equal(p1, p2), (name, p1 - p2)
    assert info["torch_threads"] == THREADS  # the thread count the model actually trained with


_CHILD = """
import sys
sys.path.insert(0, {tests!r})
from pathlib import Path
import test_gnn_reproducibility as t
pred, info = t.fit_predict("de-cgcnn", Path({cache!r}))
print("RESULT", t.digest(pred), info["torch_threads"])
"""


def test_fresh_processes_give_the_same_predictions(tmp_path):
    """A fit as the first job of a fresh process, twice, and once in this process: identical."""
    env = {k: v for k, v in os.environ.items() if k not in ("OMP_NUM_THREADS", "MKL_NUM_THREADS")}
    tests = str(Path(__file__).parent)
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", _CHILD.format(tests=tests, cache=str(tmp_path / f"cache{i}"))],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
        )
        for i in range(2)
    ]
    outs = []
    for p in procs:
        out, err = p.communicate(timeout=180)
        assert p.returncode == 0, err[-2000:]
        outs.append(next(line.split()[1:] for line in out.splitlines() if line.startswith("RESULT")))
    before = torch.get_num_threads()
    try:
        here, _ = fit_predict("de-cgcnn", tmp_path / "cache_here")
    finally:
        torch.set_num_threads(before)
    assert outs[0] == outs[1] == [digest(here), str(THREADS)]
