"""The paper's 13 property tasks on the real data in ../shared/data.

The default run cold-loads a cheap subset (each test session has an empty
cache); the exhaustive check of every task is marked slow (CRYSTALBENCH_SLOW=1).
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

from crystalbench.contract.context import RunContext
from crystalbench.contract.errors import DataUnavailableError
from crystalbench.contract.specs import TaskSpec
from crystalbench.tasks import properties as P
from crystalbench.tasks.readers import clear_memos

PAPER_13 = (
    "log_kappa", "e_fin", "phonon_u", "phonon_cv", "bulk_modulus", "shear_modulus", "poisson_ratio",
    "band_gap", "piezo_modulus", "eps_electronic", "eps_total", "refractive_index", "magnetization",
)
OFFLINE_12 = PAPER_13[1:]
CHEAP = ("e_fin", "phonon_u", "phonon_cv", "phonon_u_per_atom", "phonon_cv_per_atom", "piezo_modulus", "poisson_ratio_trachote")
R_GAS = 8.314462618  # J/(K mol)


@pytest.fixture(scope="module")
def specs() -> dict[str, TaskSpec]:
    return {t.name: t for t in P.bench_tasks()}


@pytest.fixture(scope="module")
def ctx(tmp_path_factory) -> RunContext:
    """The real data, with one cache for the module (tables parsed once, as in a real run)."""
    root = Path(os.environ["CRYSTALBENCH_DATA_DIR"])
    if not root.is_dir():
        pytest.skip(f"real data not found at {root} (set CRYSTALBENCH_DATA_DIR)")
    return RunContext(data_dir=root, cache_dir=tmp_path_factory.mktemp("tasks-cache"))


def test_all_13_properties_and_variants_are_registered_with_metadata(specs, ctx):
    for name in PAPER_13 + ("phonon_u_per_atom", "phonon_cv_per_atom", "magnetization_per_atom"):
        t = specs[name]
        assert t.group == "properties" and t.protocol == "paper" and t.fractions == (0.6, 0.2, 0.2)
        assert t.size and t.size > 100, name
        assert t.unit and t.source and t.license and t.description, name
        assert all(Path(f).is_file() for f in t.files(ctx)), name
        assert t.leaks == () and t.provides == "structure", name
    for name in OFFLINE_12:
        assert specs[name].available(ctx), name
    assert not specs["log_kappa"].available(ctx)
    extensive = {n for n, t in specs.items() if t.extensive}
    assert {"phonon_u", "phonon_cv", "magnetization", "phonon_cv_alexandria"} <= extensive
    assert not extensive & {"phonon_u_per_atom", "phonon_cv_per_atom", "magnetization_per_atom", "band_gap", "bulk_modulus"}


def test_every_suffixed_alternative_names_its_plain_property(specs):
    plain = set(PAPER_13) | {"e_form"}
    for name in specs:
        if name not in PAPER_13 and not name.endswith("_per_atom"):
            assert any(name.startswith(p + "_") for p in plain), name


@pytest.mark.parametrize("name", CHEAP)
def test_cheap_tasks_load_with_declared_size(specs, ctx, name):
    t = specs[name]
    data = t.load(ctx)
    assert len(data) == t.size > 100
    assert len(set(data.ids)) == len(data) and np.isfinite(data.targets).all()
    assert data.structures is not None and all(s.is_ordered and len(s) > 0 for s in data.structures[:50])
    assert data.meta["unit"] == t.unit and isinstance(data.meta["filters"], dict)


def test_log_kappa_reports_exactly_what_is_missing(specs, ctx, data_dir):
    with pytest.raises(DataUnavailableError) as err:
        specs["log_kappa"].load(ctx)
    msg = str(err.value)
    assert "\n" not in msg
    assert msg.startswith(f"no structure files in {data_dir / P.KAPPA_DIR}: the 2668 log_kappa labels are in ")
    assert "kappa_{training,test}.csv" in msg
    assert str(data_dir / P.KAPPA_DIR) in msg and "<cif_id>.cif" in msg and "19654224" in msg


def test_log_kappa_runs_once_users_add_structures(specs, ctx, data_dir, tmp_path):
    """Labels stay in the shared folder (symlinked); two CIFs named by cif_id make it available."""
    from pymatgen.core import Lattice, Structure

    (tmp_path / "gong2023_labels_only").mkdir()
    for f in ("kappa_training.csv", "kappa_test.csv"):
        (tmp_path / "gong2023_labels_only" / f).symlink_to(data_dir / "gong2023_labels_only" / f)
    t = specs["log_kappa"]
    mine = ctx.with_(data_dir=tmp_path)
    assert not t.available(mine)
    (tmp_path / P.KAPPA_DIR).mkdir()
    ids = ["23465", "248222"]  # first ids of kappa_training.csv / kappa_test.csv
    for i, ident in enumerate(ids):
        s = Structure(Lattice.cubic(4 + i), ["Pb", "Te"], [[0, 0, 0], [0.5, 0.5, 0.5]])
        (tmp_path / P.KAPPA_DIR / f"{ident}.cif").write_text(s.to(fmt="cif"))
    assert t.available(mine)
    data = t.load(mine)
    assert sorted(data.ids) == sorted(ids)
    assert data.meta["filters"] == {"no structure file": 2666}
    split = t.split_ids(mine)
    assert split.train == ("23465",) and split.test == ("248222",)


@pytest.mark.parametrize("which", ["cv", "u"])
def test_paper_split_ids_are_disjoint_and_found(specs, ctx, which):
    name = {"cv": "phonon_cv", "u": "phonon_u"}[which]
    t = specs[name]
    data = t.load(ctx)
    split = t.split_ids(ctx)
    train, test = set(split.train), set(split.test)
    assert not train & test and split.val == ()
    assert train | test == set(data.ids)
    # the authors' lists: 1224 training + 288 test ids, 9 of which have no structure in the Petretto file
    expected = {"cv": (1215, 288), "u": (1216, 287)}[which]
    assert (len(train), len(test)) == expected
    assert data.meta["filters"] == {"mp-id without a structure in the Petretto file": 9}
    per_atom = specs[name + "_per_atom"]
    assert per_atom.split_ids(ctx) == split


def test_per_atom_variants_are_consistent_and_physical(specs, ctx):
    cv = specs["phonon_cv"].load(ctx)
    cv_atom = specs["phonon_cv_per_atom"].load(ctx)
    u = specs["phonon_u"].load(ctx)
    nsites = np.array([len(s) for s in cv.structures])
    assert cv.ids == cv_atom.ids and set(u.ids) == set(cv.ids)  # U and Cv files list ids in different orders
    u_by_id = dict(zip(u.ids, u.targets))
    np.testing.assert_allclose(cv_atom.targets * nsites, cv.targets, rtol=1e-12)
    # Cv per cell at 300 K is below the Dulong-Petit limit 3R x atoms: the unit is J/(K mol of cells)
    assert np.all(cv.targets <= 3 * R_GAS * nsites * 1.001)
    assert np.median(cv.targets / (3 * R_GAS * nsites)) > 0.7
    # U per cell at 300 K is about the classical 3RT per atom plus zero-point energy: J/mol of cells
    u_per_3rt = np.array([u_by_id[i] for i in cv.ids]) / (3 * R_GAS * 300 * nsites)
    assert 1.0 < np.median(u_per_3rt) < 1.3


def test_phonon_labels_describe_the_cell_the_model_sees(specs, ctx):
    """Per-cell U and Cv refer to the primitive cell: no structure is a supercell of its label's cell.

    Petretto's file holds 12 of these materials in larger cells (BaO conventional, 8 sites; K2NaAlF6
    a distorted 40-site supercell...); their Cv was then 8-50% of the Dulong-Petit bound, which no
    soft ionic solid reaches at 300 K. Only diamond, with a Debye temperature of ~2200 K, sits below 30%.
    """
    cv = specs["phonon_cv"].load(ctx)
    nsites = np.array([len(s) for s in cv.structures])
    ratio = cv.targets / (3 * R_GAS * nsites)
    sites = dict(zip(cv.ids, nsites))
    assert (sites["mp-1342"], sites["mp-6586"], sites["mp-29678"]) == (2, 10, 4)  # BaO, K2NaAlF6, AgBiS2
    low = {i for i, r in zip(cv.ids, ratio) if r < 0.3}
    assert low == {"mp-66"}, low  # diamond
    u = specs["phonon_u_per_atom"].load(ctx)
    u_sites = np.array([len(s) for s in u.structures])
    assert dict(zip(u.ids, u_sites)) == sites  # U and Cv tasks share the primitive structures
    assert specs["phonon_cv"].version == specs["phonon_u"].version == "2"  # new data, new job ids


def test_unphysical_elastic_entries_are_filtered_and_counted(specs, ctx):
    data = specs["poisson_ratio_trachote"].load(ctx)
    assert data.meta["entries_in_source"] == 1211
    assert data.meta["filters"] == {
        "G_Voigt <= 0": 7, "Poisson ratio outside (-1, 0.5)": 27, "elastic tensor not positive definite": 47,
    }
    assert len(data) == 1211 - 81
    assert np.all((data.targets > -1) & (data.targets < 0.5))


def test_missing_source_file_is_a_clear_data_unavailable_error(specs, tmp_path):
    empty = RunContext(data_dir=tmp_path, cache_dir=tmp_path / "cache")
    assert not specs["bulk_modulus"].available(empty)
    with pytest.raises(DataUnavailableError, match=r"^missing .*elastic_tensor\.csv\.gz \(set --data-dir"):
        specs["bulk_modulus"].load(empty)


@pytest.mark.slow
@pytest.mark.parametrize("name", [p.name for p in P.PROPERTY_TASKS])
def test_every_offline_task_loads_with_its_declared_size(specs, ctx, name):
    t = specs[name]
    data = t.load(ctx)
    assert len(data) == t.size > 100
    assert np.isfinite(data.targets).all() and len(set(data.ids)) == len(data)
    assert all(s.is_ordered for s in data.structures)


@pytest.mark.slow
def test_magnetization_per_formula_unit_and_per_atom_agree(specs, ctx):
    fu = specs["magnetization"].load(ctx)
    atom = specs["magnetization_per_atom"].load(ctx)
    assert fu.ids == atom.ids
    atoms_per_fu = np.array([s.composition.reduced_composition.num_atoms for s in fu.structures])
    np.testing.assert_allclose(fu.targets / atoms_per_fu, atom.targets, rtol=1e-9, atol=1e-12)
    assert np.all(fu.targets >= 0)
    gap = specs["band_gap"].load(ctx)
    assert gap.ids == fu.ids and (gap.targets == 0).mean() > 0.3  # metals are included


def test_warm_load_from_the_json_cache_is_identical_and_skips_parsing(specs, ctx, monkeypatch):
    from crystalbench.tasks import sources as S

    clear_memos()  # parsed in this test, so the table is in this cache (memos are keyed by content only)
    cold = specs["phonon_cv"].load(ctx)
    clear_memos()  # a new process: the table comes from the cache Store
    monkeypatch.setattr(S, "parse_structure", lambda *a, **k: pytest.fail("warm load must not re-parse the source"))
    warm = specs["phonon_cv"].load(ctx)
    assert warm is not cold and warm.content_hash == cold.content_hash
    assert warm.meta == cold.meta
