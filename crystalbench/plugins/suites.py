"""Built-in suites: the paper's tables and figures (Gong et al. 2023) and Matbench v0.1, as data.

Each suite is what the equivalent `bench run` command lines would ask for
(`bench list suites --json` shows the entries; docs/tuning.md the job counts):

paper-table1     13 properties x rf, cgcnn, de-cgcnn, alignn, de-alignn (paper protocol, seed 0).
                 `log_kappa` has no structures offline: its jobs report the data as unavailable
                 until its CIFs are added (docs/data.md).
paper-table2     U, Cv, M x cgcnn, alignn, three ways: the per-cell target with mean pooling,
                 the per-atom target (`*_per_atom` tasks) with mean pooling, the per-cell target
                 with sum pooling.
paper-fig2       descriptor learnability: every `desc_*` task x cgcnn, alignn, roost.
paper-fig3       1D carbon chains x cgcnn: default; 18 neighbours within 12 A; 8 convolutions;
                 sum pooling; double chains (`chain1d_*_double`).
matbench-phonons matbench_phonons, the official 5 folds, x dummy, rf, cgcnn, de-cgcnn, alignn, de-alignn.
"""

from __future__ import annotations

from crystalbench import hookimpl
from crystalbench.harness.specs import SuiteEntry, SuiteSpec

__all__ = ["bench_suites", "TABLE1_TASKS", "PAPER_MODELS"]

PAPER = "Gong et al., Sci. Adv. 9, eadi3245 (2023)"
PAPER_MODELS = ("rf", "cgcnn", "de-cgcnn", "alignn", "de-alignn")
# The 13 properties of Table 1, in the paper's order (the plain-named task of each property; docs/data.md).
TABLE1_TASKS = (
    "log_kappa", "e_fin", "phonon_u", "phonon_cv", "bulk_modulus", "shear_modulus", "poisson_ratio",
    "band_gap", "piezo_modulus", "eps_electronic", "eps_total", "refractive_index", "magnetization",
)
_TABLE2 = (("phonon_u", "phonon_u_per_atom"), ("phonon_cv", "phonon_cv_per_atom"),
           ("magnetization", "magnetization_per_atom"))
_GNNS = ("cgcnn", "alignn")
_CHAINS = ("chain1d_short", "chain1d_long")


def _table2() -> tuple[SuiteEntry, ...]:
    per_cell = tuple(cell for cell, _ in _TABLE2)
    per_atom = tuple(atom for _, atom in _TABLE2)
    return (
        SuiteEntry(models=_GNNS, tasks=per_cell, pooling="mean", label="per-cell target, mean pooling"),
        SuiteEntry(models=_GNNS, tasks=per_atom, pooling="mean", label="per-atom target, mean pooling"),
        SuiteEntry(models=_GNNS, tasks=per_cell, pooling="sum", label="per-cell target, sum pooling"),
    )


def _fig3() -> tuple[SuiteEntry, ...]:
    return (
        SuiteEntry(models=("cgcnn",), tasks=_CHAINS, label="default"),
        SuiteEntry(models=("cgcnn",), tasks=_CHAINS, config={"cgcnn": {"max_neighbors": 18, "radius": 12.0}},
                   label="18 neighbours within 12 A"),
        SuiteEntry(models=("cgcnn",), tasks=_CHAINS, config={"cgcnn": {"n_conv": 8}}, label="8 conv layers"),
        SuiteEntry(models=("cgcnn",), tasks=_CHAINS, pooling="sum", label="sum pooling"),
        SuiteEntry(models=("cgcnn",), tasks=tuple(f"{c}_double" for c in _CHAINS), label="double chains"),
    )


@hookimpl
def bench_suites() -> list[SuiteSpec]:
    return [
        SuiteSpec("paper-table1", (SuiteEntry(models=PAPER_MODELS, tasks=TABLE1_TASKS, label="table 1"),),
                  "13 properties x rf, cgcnn, de-cgcnn, alignn, de-alignn (Table 1)", PAPER),
        SuiteSpec("paper-table2", _table2(),
                  "U, Cv, M: per-cell mean, per-atom mean, per-cell sum pooling (Table 2)", PAPER),
        SuiteSpec("paper-fig2", (SuiteEntry(models=("cgcnn", "alignn", "roost"), tasks=("desc_*",),
                                            label="descriptor learnability"),),
                  "descriptor learnability: desc_* x cgcnn, alignn, roost (Fig. 2)", PAPER),
        SuiteSpec("paper-fig3", _fig3(),
                  "1D chains x cgcnn: default, 18 nbrs/12 A, 8 convs, sum pooling, double chains (Fig. 3)", PAPER),
        SuiteSpec("matbench-phonons",
                  (SuiteEntry(models=("dummy", "rf", "cgcnn", "de-cgcnn", "alignn", "de-alignn"),
                              tasks=("matbench_phonons",), protocol="matbench", label="matbench v0.1"),),
                  "matbench_phonons, official 5 folds (Matbench v0.1)", "Dunn et al., npj Comput. Mater. 6, 138 (2020)"),
    ]
