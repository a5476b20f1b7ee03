"""1D chain tasks: invariants of the generated cells, determinism and registration."""

from __future__ import annotations

import numpy as np
import pytest

from crystalbench.contract.context import RunContext
from crystalbench.runtime.registry import load_registry
from crystalbench.tasks import chains
from crystalbench.tasks.chains import CHAIN_TASKS, MIN_DIST, STEP, VACUUM, chain_structure, generate_chains, load_chains
from crystalbench.tasks.readers import clear_memos


@pytest.mark.parametrize("name", list(CHAIN_TASKS))
def test_generated_chains_obey_invariants(name):
    n_min, n_max, double, seed = CHAIN_TASKS[name]
    coords, periods = generate_chains(n_min, n_max, double, seed, count=40)
    assert len(coords) == 40
    per_chain = 2 if double else 1
    for xyz, a in zip(coords, periods):
        natoms = len(xyz)
        assert natoms % per_chain == 0
        n = natoms // per_chain
        assert n_min <= n < n_max
        for c in range(per_chain):
            chain = xyz[c * n : (c + 1) * n]
            # x increases along the chain and the last atom of each chain sits at x = a
            assert np.all(np.diff(chain[:, 0]) >= 0)
            assert chain[-1, 0] == pytest.approx(a)
            # closure: the image of atom 0 at x0 + a continues the chain with a bounded step
            closing = chain[0] + np.array([a, 0, 0]) - chain[-1]
            assert closing[0] >= 0
            if c == 0:  # the second chain of a double cell is rescaled in x to share a
                assert closing[0] < STEP and np.all(np.abs(closing[1:]) < STEP)
        s = chain_structure(xyz, a)
        assert s.lattice.abc == pytest.approx((a, VACUUM, VACUUM))
        assert s.lattice.angles == pytest.approx((90, 90, 90))
        assert {str(e) for e in s.composition.elements} == {"C"}
        dm = s.distance_matrix + np.eye(natoms) * 1e9
        assert dm.min() >= MIN_DIST - 1e-9  # pymatgen's periodic distances, boundary included
        assert a >= MIN_DIST  # an atom is also far enough from its own image
        if double:
            first, second = xyz[:n], xyz[n:]
            assert second[:, 1].min() - first[:, 1].max() == pytest.approx(chains.INTERCHAIN_GAP)
            assert second[-1, 0] == pytest.approx(a)


def test_generator_is_deterministic_and_seed_dependent():
    c1, a1 = generate_chains(37, 51, False, 7, count=5)
    c2, a2 = generate_chains(37, 51, False, 7, count=5)
    _, a3 = generate_chains(37, 51, False, 8, count=5)
    assert np.array_equal(a1, a2) and all(np.array_equal(x, y) for x, y in zip(c1, c2))
    assert not np.array_equal(a1, a3)


def test_short_task_loads_cached_and_registered(tmp_path):
    ctx = RunContext(data_dir=tmp_path / "no-data-needed", cache_dir=tmp_path)
    clear_memos()
    data = load_chains("chain1d_short", ctx)
    assert len(data) == chains.N_STRUCTURES == len(set(data.ids))
    assert np.allclose(data.targets, [s.lattice.a for s in data.structures])
    assert set(len(s) for s in data.structures) == set(range(2, 9))
    cached = list((tmp_path / "chains").rglob("*.npz"))
    assert cached == [ctx.cache("chains", chains.GENERATOR_VERSION).path("chain1d_short", "npz")]
    clear_memos()
    again = load_chains("chain1d_short", ctx)  # from the NPZ this time
    assert np.array_equal(again.targets, data.targets)
    assert again.structures[5] == data.structures[5]
    clear_memos()

    reg = load_registry()
    for name in CHAIN_TASKS:
        spec = reg.task(name)
        assert spec.group == "chains" and spec.size == 1400 and spec.fractions == (0.8, 0.1, 0.1)
        assert {"a", "c", "density", "vpa"} <= set(spec.exclude_features)
        assert spec.leaks == ("lattice", "volume", "density") and spec.provides == "structure"
        assert spec.available(ctx) and list(spec.files(ctx)) == []


@pytest.mark.parametrize("name", ["chain1d_short", "chain1d_short_double"])
def test_tasks_pass_the_plugin_test_kit(name):
    """crystalbench.testing's check_task: valid dataset, deterministic, cacheable, splits (no data dir needed)."""
    from crystalbench.testing import check_task

    spec = {s.name: s for s in chains.bench_tasks()}[name]
    data = check_task(spec)
    assert len(data) == chains.N_STRUCTURES
