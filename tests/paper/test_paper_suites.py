"""Paper suites pin what the paper fixed (issue #19 items 1, 3, 8, 9): checked job by job against a table.

`PINS` is this test's own reading of the paper (gong2023.md sections 1-4), not a copy of the suite
definitions: every (suite, entry label) with its models, tasks and the readout each GNN must use.
Every job of every built-in suite must match its row: protocol "paper" with the task's own split
fractions (60/20/20 properties, 80/10/10 descriptors and chains), seed 0, 300 epochs for every
network, the pooling of the row for every GNN (and none for rf), whatever the harness default.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
from click.testing import CliRunner
from helpers import REPO_ROOT

from crystalbench.cli import cli
from crystalbench.contract.context import RunContext
from crystalbench.contract.dataset import Dataset
from crystalbench.contract.specs import DATA_RELATIONS, ModelContext
from crystalbench.plugins.suites import SUM_POOLING
from crystalbench.runtime.suites import SuiteFilter, plan_rows, suite_plan

GNN = ("cgcnn", "de-cgcnn", "alignn", "de-alignn")
POOLED = GNN + ("cgcnn+desc",)
NETWORKS = POOLED + ("roost",)
T1 = ("log_kappa", "e_fin", "phonon_u", "phonon_cv", "bulk_modulus", "shear_modulus", "poisson_ratio", "band_gap",
      "piezo_modulus", "eps_electronic", "eps_total", "refractive_index", "magnetization")
DESC = ("mad_in_rela_bond_len", "max_rela_bond_len", "min_rela_bond_len", "max_neighb_dist_var",
        "min_neighb_dist_var", "range_neighb_dist_var", "mean_neighb_dist_var", "dev_neighb_dist_var",
        "mad_in_rela_atom_vol", "mean_avg_bond_len", "std_avg_bond_len", "mean_avg_bond_ang", "std_avg_bond_ang",
        "mean_cn_voronoi", "std_cn_voronoi", "density", "vpa", "packing_frac", "struct_comp_atom",
        "struct_comp_cell", "natoms", "a", "b", "c", "alpha", "beta", "gamma")
LATTICE = ("desc_a", "desc_b", "desc_c", "desc_alpha", "desc_beta", "desc_gamma")
CHAINS = ("chain1d_short", "chain1d_long")
S = SUM_POOLING
assert S == "atom-sum"  # the paper's eq. 13: the output network on every atom, then the sum
CG_DEFAULT = {"n_conv": 3, "max_neighbors": 12, "radius": 8.0}

# (suite, label) -> (models, tasks, pooling of every GNN job, extra cgcnn parameters)
PINS: dict[tuple[str, str], tuple[tuple[str, ...], tuple[str, ...], str, dict]] = {
    ("paper-table1", "table 1"): (("rf",) + GNN, T1, "mean", {}),
    ("paper-tables1", "table S1: CGCNN + descriptors"): (("cgcnn+desc",), T1, "mean", {}),
    ("paper-table2", "per-cell target, mean pooling"): (GNN, ("phonon_u", "phonon_cv", "magnetization"), "mean", {}),
    ("paper-table2", "per-atom target, mean pooling"):
        (GNN, ("phonon_u_per_atom", "phonon_cv_per_atom", "magnetization_per_atom"), "mean", {}),
    ("paper-table2", "per-cell target, sum pooling"): (GNN, ("phonon_u", "phonon_cv", "magnetization_per_cell"), S, {}),
    ("paper-fig2", "descriptor learnability"):
        (("cgcnn", "alignn", "roost"), tuple("desc_" + d for d in DESC), "mean", CG_DEFAULT),
    ("paper-fig2", "crystal-system classification"): (("cgcnn", "roost"), ("desc_crys_sys",), "mean", CG_DEFAULT),
    ("paper-fig3", "default"): (("cgcnn",), CHAINS, "mean", CG_DEFAULT),
    ("paper-fig3", "18 neighbours within 12 A"): (("cgcnn",), CHAINS, "mean", {"max_neighbors": 18, "radius": 12.0}),
    ("paper-fig3", "8 conv layers"): (("cgcnn",), CHAINS, "mean", {"n_conv": 8}),
    ("paper-fig3", "sum pooling"): (("cgcnn",), CHAINS, S, CG_DEFAULT),
    ("paper-fig3", "double chains"): (("cgcnn",), ("chain1d_short_double", "chain1d_long_double"), "mean", CG_DEFAULT),
    ("paper-fig3", "mixed single + double chains, mean pooling"):
        (("cgcnn",), ("chain1d_short_mixed", "chain1d_long_mixed"), "mean", CG_DEFAULT),
    ("paper-fig3", "mixed single + double chains, sum pooling"):
        (("cgcnn",), ("chain1d_short_mixed", "chain1d_long_mixed"), S, CG_DEFAULT),
    ("paper-fig3-mp", "18 neighbours within 12 A"): (("cgcnn",), LATTICE, "mean", {"max_neighbors": 18, "radius": 12.0}),
    ("paper-fig3-mp", "8 conv layers"): (("cgcnn",), LATTICE, "mean", {"n_conv": 8}),
    ("paper-fig3-mp", "sum pooling"): (("cgcnn",), ("desc_natoms",) + LATTICE, S, CG_DEFAULT),
    ("paper-figs2", "mean pooling"): (("cgcnn", "alignn"), ("e_fin", "phonon_u", "phonon_cv", "magnetization"), "mean", {}),
    ("paper-figs2", "sum pooling"):
        (("cgcnn", "alignn"), ("e_fin", "phonon_u", "phonon_cv", "magnetization_per_cell"), S, {}),
}
FRACTIONS = {"properties": (0.6, 0.2, 0.2), "descriptors": (0.8, 0.1, 0.1), "chains": (0.8, 0.1, 0.1)}


def test_every_paper_suite_is_in_the_pin_table(reg):
    """A new paper suite or entry must come with its pins here."""
    have = {(name, e.label) for name, s in reg.suites.items() if name.startswith("paper-") for e in s.entries}
    assert have == set(PINS)


@pytest.mark.parametrize("suite", sorted({s for s, _ in PINS}))
def test_every_job_has_the_papers_settings(reg, suite):
    plan = suite_plan(reg, reg.suite(suite))
    seen = set()
    for job in plan:
        models, tasks, pooling, cgcnn = PINS[(suite, job.label)]
        task = reg.tasks[job.task]
        assert job.model in models and job.task in tasks, job.key()
        assert (job.protocol, job.seed, job.fold) == ("paper", 0, 0), job.key()
        assert task.fractions == FRACTIONS[task.group], job.task
        if job.model in POOLED:
            assert job.params["pooling"] == pooling, job.key()
        else:
            assert "pooling" not in job.params, job.key()
        if job.model in NETWORKS:
            assert job.params["epochs"] == 300, job.key()
        if job.model == "cgcnn":
            assert {k: job.params[k] for k in cgcnn} == cgcnn, job.key()
        seen.add((job.label, job.model, job.task))
    # nothing silently dropped: every model x task of every row is planned
    want = {(label, m, t) for (s, label), (models, tasks, _, _) in PINS.items() if s == suite
            for m in models for t in tasks}
    assert seen == want


def test_extensive_targets_keep_mean_pooling_where_the_paper_used_it(reg):
    """Issue #19.1: U, Cv, M (extensive: the harness default is sum) and natoms use average pooling."""
    assert reg.tasks["phonon_u"].extensive and reg.tasks["desc_natoms"].extensive
    t1 = {(j.model, j.task): j.params["pooling"] for j in suite_plan(reg, reg.suite("paper-table1")) if j.model in GNN}
    assert {t1[(m, t)] for m in GNN for t in ("phonon_u", "phonon_cv", "magnetization")} == {"mean"}
    fig2 = suite_plan(reg, reg.suite("paper-fig2"), SuiteFilter(tasks=("desc_natoms", "desc_struct_comp_cell")))
    assert len(fig2) == 6 and {j.params.get("pooling") for j in fig2 if j.model != "roost"} == {"mean"}


def test_dry_run_lists_mean_pooling_for_every_table1_gnn_job(reg, tmp_path):
    res = tmp_path / "results"
    out = CliRunner().invoke(cli, ["run", "--suite", "paper-table1", "--dry-run", "--results-dir", str(res)],
                             obj={"registry": reg})
    assert out.exit_code == 0, out.output
    rows = [line.split() for line in out.stdout.splitlines()[2:] if line.strip()]
    assert len(rows) == 65
    assert {r[5] for r in rows if r[0] in GNN} == {"mean"} and {r[5] for r in rows if r[0] == "rf"} == {"-"}
    assert not res.exists()  # nothing run, nothing written
    js = CliRunner().invoke(cli, ["run", "--suite", "paper-table2", "--dry-run", "--json", "-t", "magnetization_*"],
                            obj={"registry": reg})
    assert js.exit_code == 0, js.output
    got = {(r["model"], r["task"], r["pooling"]) for r in json.loads(js.stdout)}
    assert got == {(m, t, p) for m in GNN for t, p in (("magnetization_per_atom", "mean"),
                                                       ("magnetization_per_cell", S))}


def test_dry_run_of_a_plain_grid_shows_the_resolved_defaults(reg):
    out = CliRunner().invoke(cli, ["run", "-m", "cgcnn", "-m", "rf", "-t", "phonon_u", "--dry-run", "--json"],
                             obj={"registry": reg})
    assert out.exit_code == 0, out.output
    rows = {r["model"]: r for r in json.loads(out.stdout)}
    assert rows["cgcnn"]["pooling"] == "sum" and rows["cgcnn"]["params"]["n_conv"] == 3  # harness default: extensive
    assert rows["rf"]["descriptors"] == "gong29" and rows["rf"]["pooling"] == "-"
    assert plan_rows([]) == []


def test_task_metadata_says_how_our_data_relates_to_the_papers(reg):
    """Issue #19.9: every paper task has a relation, a short source and (where the paper says) its count."""
    for name, t in reg.tasks.items():
        assert t.data_relation in DATA_RELATIONS, name
        if t.group in ("properties", "descriptors", "chains") and name != "desc_space_group_num":
            assert t.data_relation and t.source_short and t.paper_data, name
    rel = {n: (t.data_relation, t.paper_count) for n, t in reg.tasks.items()}
    assert rel["e_fin"] == ("substitute", 140_000)  # 972 WBM structures, not MP
    assert rel["phonon_cv"] == ("paper", 1512) and rel["log_kappa"][0] == "paper"
    assert rel["bulk_modulus"] == ("subset", 13_300) and rel["piezo_modulus"] == ("subset", 3_360)
    assert rel["desc_a"] == ("substitute", 47_862) and rel["desc_crys_sys"][0] == "subset"
    assert rel["chain1d_short"] == ("generated", 1400) and rel["matbench_phonons"] == ("", None)
    assert "|M|" in reg.tasks["magnetization"].paper_data


def test_list_tasks_shows_source_and_the_papers_count(reg):
    out = CliRunner().invoke(cli, ["list", "tasks"], obj={"registry": reg})
    assert out.exit_code == 0, out.output
    head = out.stdout.splitlines()[0].split()
    assert {"size", "paper_count", "data_relation", "source"} <= set(head)
    e_fin = next(line for line in out.stdout.splitlines() if line.startswith("e_fin "))
    assert "140000" in e_fin and "substitute" in e_fin and "WBM" in e_fin
    rows = {r["name"]: r for r in json.loads(CliRunner().invoke(cli, ["list", "tasks", "--json"],
                                                                obj={"registry": reg}).stdout)}
    assert rows["band_gap"]["paper_count"] == 140_000 and rows["band_gap"]["data_relation"] == "subset"


def test_per_cell_magnetization_task(reg):
    """Table 2's sum-pooling M row is per cell: a task of its own, MP's cell value, not per formula unit."""
    from pymatgen.core import Composition

    from crystalbench.tasks.properties import _mag_divisor

    t = reg.tasks["magnetization_per_cell"]
    assert t.extensive and t.unit == "muB/cell" and t.size == reg.tasks["magnetization"].size
    comp, rec = Composition("Fe4O6"), {"species": ["Fe"] * 4 + ["O"] * 6}
    assert (_mag_divisor("mag_cell", comp, rec), _mag_divisor("mag_fu", comp, rec),
            _mag_divisor("mag_atom", comp, rec)) == (1.0, 2.0, 10.0)


def test_mixed_chains_are_half_single_half_double(reg, tmp_path):
    ctx = RunContext(cache_dir=tmp_path / "cache", data_dir=tmp_path)
    data = reg.tasks["chain1d_short_mixed"].load(ctx)
    assert len(data) == 1400 == len(set(data.ids))
    single = [i for i in data.ids if i.startswith("chain1d_short-")]
    double = [i for i in data.ids if i.startswith("chain1d_short_double-")]
    assert len(single) == len(double) == 700
    n_double = np.array([len(s) for s in data.structures[700:]])
    assert (n_double % 2 == 0).all() and n_double.max() > 8  # two chains of 2-8 atoms each
    pure = reg.tasks["chain1d_short"].load(ctx)
    assert np.array_equal(pure.targets[:700], data.targets[:700])


def test_rf_records_its_impurity_importances():
    """Fig. 4/S6 for the descriptors-only model: every rf fit leaves its importances in fit_info."""
    from pymatgen.core import Composition

    from crystalbench.plugins.random_forest import RandomForest

    rng = np.random.default_rng(0)
    x = rng.normal(size=(60, 3))
    data = Dataset(ids=tuple(str(i) for i in range(60)), targets=3 * x[:, 1] + 0.01 * x[:, 0],
                   compositions=tuple(Composition("NaCl") for _ in range(60)), features=x,
                   feature_names=("a", "vpa", "natoms"), name="toy")
    model = RandomForest(ModelContext(hparams={"n_estimators": 20, "n_jobs": 1}))
    model.fit(data, None, seed=0, progress=False)
    imp = model.fit_info["feature_importances"]
    assert list(imp) == ["a", "vpa", "natoms"] and max(imp, key=imp.get) == "vpa"
    assert abs(sum(imp.values()) - 1) < 1e-4


def test_docs_paper_page_names_every_paper_suite(reg):
    text = (REPO_ROOT / "docs" / "paper.md").read_text()
    for name in reg.suites:
        if name.startswith("paper-"):
            assert f"`{name}`" in text, name
    for item in ("Table 1", "Table 2", "Table S1", "Fig. 2", "Fig. 3", "Fig. S2", "Fig. S3", "Fig. S4", "Fig. 4"):
        assert item in text, item
