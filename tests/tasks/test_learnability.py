"""Descriptor-learnability tasks: registration, leakage exclusions and a small real slice."""

from __future__ import annotations

import numpy as np
import pytest

from crystalbench.contract.context import RunContext
from crystalbench.descriptors.gong29 import CRYS_SYS_LABELS, FEATURES, describe
from crystalbench.runtime.registry import load_registry
from crystalbench.tasks.learnability import EXCLUDE, LEAKS, TARGETS, load_learnability, task_name


@pytest.fixture(scope="module")
def registry():
    return load_registry()


def test_one_task_per_descriptor(registry):
    desc = {n: t for n, t in registry.tasks.items() if t.group == "descriptors"}
    assert len(TARGETS) == 29
    assert set(desc) == {task_name(t) for t in TARGETS}
    for name in ("desc_a", "desc_vpa", "desc_mean_cn_voronoi", "desc_natoms", "desc_crys_sys", "desc_space_group_num",
                 "desc_mad_in_rela_bond_len", "desc_std_avg_bond_len"):  # fmt: skip
        assert name in desc
    assert desc["desc_crys_sys"].task_type == "classification"
    assert desc["desc_space_group_num"].task_type == "classification"
    assert desc["desc_a"].task_type == "regression" and desc["desc_a"].unit == "A"
    assert desc["desc_natoms"].extensive and not desc["desc_density"].extensive
    for spec in desc.values():
        assert spec.fractions == (0.8, 0.1, 0.1) and spec.protocol == "paper"
        assert spec.size and spec.size > 5000
        assert spec.target in spec.exclude_features  # never its own input
        assert set(spec.exclude_features) <= set(FEATURES) | {"space_group_num"}


def test_identity_leaks_are_excluded(registry):
    ex = {t: set(registry.task(task_name(t)).exclude_features) for t in TARGETS}
    assert {"struct_comp_cell", "vpa"} <= ex["natoms"]
    assert "natoms" in ex["vpa"] and "struct_comp_cell" in ex["vpa"]
    assert all("vpa" in ex[p] for p in ("a", "b", "c", "alpha", "beta", "gamma"))
    assert {"max_neighb_dist_var", "min_neighb_dist_var"} <= ex["range_neighb_dist_var"]
    assert "crys_sys" in ex["space_group_num"]
    assert ex["density"] == {"density"}  # density needs the composition's mass, which no column holds
    assert set(EXCLUDE) <= set(TARGETS)


def test_leaking_inputs_are_declared(registry):
    leaks = {t: set(registry.task(task_name(t)).leaks) for t in TARGETS}
    assert all(leaks[p] == {"lattice"} for p in ("a", "b", "c", "alpha", "beta", "gamma"))
    assert leaks["vpa"] == leaks["density"] == {"lattice", "volume", "density"}
    assert leaks["natoms"] == {"natoms"}
    assert leaks["mean_CN_Voronoi"] == set() and leaks["space_group_num"] == set()
    assert set(LEAKS) <= set(TARGETS)
    assert all(registry.task(task_name(t)).provides == "structure" for t in TARGETS)


def test_small_slice_loads_with_descriptor_targets(data_dir, tmp_path):
    ctx = RunContext(data_dir=data_dir, cache_dir=tmp_path, jobs=1)
    a = load_learnability("desc_a", ctx, limit=25)
    assert 20 <= len(a) <= 25 and a.structures is not None and a.classes is None
    assert all(i.startswith("mp-") for i in a.ids)
    for _sid, s, y in list(zip(a.ids, a.structures, a.targets))[:5]:
        assert y == pytest.approx(max(s.lattice.get_niggli_reduced_lattice().abc))

    cs = load_learnability("desc_crys_sys", ctx, limit=25)
    assert cs.classes == CRYS_SYS_LABELS and cs.targets.dtype.kind == "i"
    assert [int(describe(s)["crys_sys"]) for s in cs.structures[:5]] == cs.targets[:5].tolist()

    sg = load_learnability("desc_space_group_num", ctx, limit=25)
    assert len(sg.classes) == 230 and sg.targets.min() >= 0 and sg.targets.max() <= 229
    assert [sg.classes[t] for t in sg.targets[:3]] == [str(int(describe(s)["space_group_num"])) for s in sg.structures[:3]]
    assert np.isfinite(load_learnability("desc_std_avg_bond_ang", ctx, limit=25).targets).all()
