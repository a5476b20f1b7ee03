"""Built-in suites: the paper's tables and figures (Gong et al. 2023) and Matbench v0.1, as data.

Each suite is what the equivalent `bench run` command lines would ask for
(`bench list suites --json` shows the entries, `bench run --suite NAME --dry-run`
the jobs with their settings; docs/paper.md maps every table and figure).

Every paper entry pins what the paper fixed, whatever the harness defaults are
(a default that changes must not change a paper job silently): the `paper`
protocol (random split with the task's fractions: 60/20/20 for properties,
80/10/10 for descriptors and chains), seed 0, 300 epochs for every neural
network (paper section 4), and the readout of every GNN: average pooling in
Table 1 and Fig. 2 even for extensive targets (where the harness would pick
sum), the Table 2 / Fig. 3h / S2 / S3 variants as the paper specifies. The pins
are per-model `config` tables, so they reach only the models that have the
setting (`rf` has no pooling or epochs); the resolved values are part of every
job's parameters and so of its id and record.

paper-table1     13 properties x rf, cgcnn, de-cgcnn, alignn, de-alignn, average pooling.
                 `log_kappa` has no structures offline: its jobs report the data as unavailable
                 until its CIFs are added (docs/data.md). `rf` records its impurity feature
                 importances (Fig. 4/S6 for the descriptors-only model).
paper-tables1    Table S1's extra column: the 13 properties x cgcnn+desc (a plain CGCNN trained, frozen,
                 its mean-pooled embedding + gong29 into a new network), average pooling.
paper-table2     U, Cv, M x cgcnn, de-cgcnn, alignn, de-alignn, three ways: the per-cell (M: per
                 formula unit) target with average pooling, the per-atom target with average
                 pooling, the per-cell target with sum pooling ("atom-sum": eq. 13, the output
                 network on every atom, then the sum).
paper-fig2       descriptor learnability: the 27 regression `desc_*` tasks x cgcnn, alignn, roost;
                 crystal-system classification (Fig. 2c) x cgcnn, roost (the paper ran no ALIGNN).
paper-fig3       1D carbon chains x cgcnn: default; 18 neighbours within 12 A; 8 convolutions;
                 sum pooling; double chains; mixed single + double chains, average and sum (Fig. S3).
paper-fig3-mp    Fig. 3g/h and S4 on MP structures x cgcnn: the 18-neighbour and 8-convolution
                 variants on a, b, c and the angles, sum pooling on natoms, a, b, c and the angles
                 (the default and ALIGNN jobs are paper-fig2's, same ids).
paper-figs2      average vs sum pooling on E_fin, U, Cv, M x cgcnn, alignn (Fig. S2; all but the
                 E_fin ones share their ids with Table 1 and 2 jobs).
matbench-phonons matbench_phonons, the official 5 folds, x dummy, rf, cgcnn, de-cgcnn, alignn, de-alignn.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from crystalbench import SuiteEntry, SuiteSpec, hookimpl

__all__ = ["bench_suites", "TABLE1_TASKS", "PAPER_MODELS", "GNNS", "FROZEN", "EPOCHS", "SUM_POOLING", "FIG2_TASKS"]

PAPER = "Gong et al., Sci. Adv. 9, eadi3245 (2023)"
PAPER_MODELS = ("rf", "cgcnn", "de-cgcnn", "alignn", "de-alignn")
GNNS = ("cgcnn", "de-cgcnn", "alignn", "de-alignn")
FROZEN = "cgcnn+desc"  # Table S1's "CGCNN + descriptors": a frozen CGCNN embedding + descriptors (SI eq. S5)
POOLED = (*GNNS, FROZEN)  # the models whose readout the suites pin
NETWORKS = (*POOLED, "roost")  # "300 epochs for all the neural networks" (paper section 4)
EPOCHS = 300
MEAN = "mean"
SUM_POOLING = "atom-sum"  # the paper's eq. 13: the output network on every atom, then the sum
# The 13 properties of Table 1, in the paper's order (the plain-named task of each property; docs/data.md).
TABLE1_TASKS = (
    "log_kappa", "e_fin", "phonon_u", "phonon_cv", "bulk_modulus", "shear_modulus", "poisson_ratio",
    "band_gap", "piezo_modulus", "eps_electronic", "eps_total", "refractive_index", "magnetization",
)
# Table 2's three regression settings of U, Cv, M: (average, per cell), (average, per atom), (sum, per cell).
_PER_CELL = ("phonon_u", "phonon_cv", "magnetization")  # M per formula unit, as the paper's first M row
_PER_ATOM = ("phonon_u_per_atom", "phonon_cv_per_atom", "magnetization_per_atom")
_SUMMED = ("phonon_u", "phonon_cv", "magnetization_per_cell")
# Fig. 2a/b: the 27 regression descriptors (Table 3 + density and std_avg_bond_ang, without the
# crystal system of Fig. 2c and the space group, which the paper does not learn).
FIG2_TASKS = tuple("desc_" + d for d in (
    "mad_in_rela_bond_len", "max_rela_bond_len", "min_rela_bond_len", "max_neighb_dist_var",
    "min_neighb_dist_var", "range_neighb_dist_var", "mean_neighb_dist_var", "dev_neighb_dist_var",
    "mad_in_rela_atom_vol", "mean_avg_bond_len", "std_avg_bond_len", "mean_avg_bond_ang", "std_avg_bond_ang",
    "mean_cn_voronoi", "std_cn_voronoi", "density", "vpa", "packing_frac", "struct_comp_atom",
    "struct_comp_cell", "natoms", "a", "b", "c", "alpha", "beta", "gamma",
))
_LATTICE = ("desc_a", "desc_b", "desc_c")
_ANGLES = ("desc_alpha", "desc_beta", "desc_gamma")
_CHAINS = ("chain1d_short", "chain1d_long")
# The paper's "default" graphs and depths (section 4): CGCNN 3 convolutions, ALIGNN 4 + 4 layers, both
# 12 neighbours within 8 A (Figs. 2 and 3 use the default architectures, untuned)
_CGCNN_DEFAULT = {"n_conv": 3, "max_neighbors": 12, "radius": 8.0}
_ALIGNN_DEFAULT = {"cutoff": 8.0, "max_neighbors": 12, "alignn_layers": 4, "gcn_layers": 4}
_MORE_NEIGHBOURS = {"max_neighbors": 18, "radius": 12.0}
_MORE_CONVS = {"n_conv": 8}


def pins(models: tuple[str, ...], pooling: str | None = MEAN,
         extra: Mapping[str, Mapping[str, Any]] | None = None) -> dict[str, dict[str, Any]]:
    """Per-model `config` tables: `pooling` for the GNNs, 300 epochs for every network, plus `extra[model]`.

    Per-model tables, not `SuiteEntry.pooling`: `--pooling` is refused for a grid with `rf` in it,
    and a top-level key would also reach a model added later that the paper never configured.
    """
    out: dict[str, dict[str, Any]] = {}
    for m in models:
        table: dict[str, Any] = {}
        if m in NETWORKS:
            table["epochs"] = EPOCHS
        if m in POOLED and pooling is not None:
            table["pooling"] = pooling
        table.update((extra or {}).get(m, {}))
        if table:
            out[m] = table
    return out


def _entry(models: tuple[str, ...], tasks: tuple[str, ...], label: str, pooling: str | None = MEAN,
           cgcnn: Mapping[str, Any] | None = None, alignn: Mapping[str, Any] | None = None) -> SuiteEntry:
    """A paper entry: paper protocol, seed 0, every pin explicit (`cgcnn`/`alignn`: more hyperparameters)."""
    extra = {name: dict(table) for name, table in (("cgcnn", cgcnn), ("alignn", alignn)) if table}
    return SuiteEntry(models=models, tasks=tasks, protocol="paper", seeds=(0,), config=pins(models, pooling, extra),
                      label=label)


def _table2() -> tuple[SuiteEntry, ...]:
    return (
        _entry(GNNS, _PER_CELL, "per-cell target, mean pooling"),
        _entry(GNNS, _PER_ATOM, "per-atom target, mean pooling"),
        _entry(GNNS, _SUMMED, "per-cell target, sum pooling", pooling=SUM_POOLING),
    )


def _fig2() -> tuple[SuiteEntry, ...]:
    return (
        _entry(("cgcnn", "alignn", "roost"), FIG2_TASKS, "descriptor learnability", cgcnn=_CGCNN_DEFAULT,
               alignn=_ALIGNN_DEFAULT),
        _entry(("cgcnn", "roost"), ("desc_crys_sys",), "crystal-system classification", cgcnn=_CGCNN_DEFAULT),
    )


def _fig3() -> tuple[SuiteEntry, ...]:
    cg = ("cgcnn",)
    mixed = tuple(f"{c}_mixed" for c in _CHAINS)
    return (
        _entry(cg, _CHAINS, "default", cgcnn=_CGCNN_DEFAULT),
        _entry(cg, _CHAINS, "18 neighbours within 12 A", cgcnn={**_CGCNN_DEFAULT, **_MORE_NEIGHBOURS}),
        _entry(cg, _CHAINS, "8 conv layers", cgcnn={**_CGCNN_DEFAULT, **_MORE_CONVS}),
        _entry(cg, _CHAINS, "sum pooling", pooling=SUM_POOLING, cgcnn=_CGCNN_DEFAULT),
        _entry(cg, tuple(f"{c}_double" for c in _CHAINS), "double chains", cgcnn=_CGCNN_DEFAULT),
        _entry(cg, mixed, "mixed single + double chains, mean pooling", cgcnn=_CGCNN_DEFAULT),
        _entry(cg, mixed, "mixed single + double chains, sum pooling", pooling=SUM_POOLING, cgcnn=_CGCNN_DEFAULT),
    )


def _fig3_mp() -> tuple[SuiteEntry, ...]:
    cg = ("cgcnn",)
    return (
        _entry(cg, _LATTICE + _ANGLES, "18 neighbours within 12 A", cgcnn={**_CGCNN_DEFAULT, **_MORE_NEIGHBOURS}),
        _entry(cg, _LATTICE + _ANGLES, "8 conv layers", cgcnn={**_CGCNN_DEFAULT, **_MORE_CONVS}),
        _entry(cg, ("desc_natoms", *_LATTICE, *_ANGLES), "sum pooling", pooling=SUM_POOLING, cgcnn=_CGCNN_DEFAULT),
    )


def _figs2() -> tuple[SuiteEntry, ...]:
    gnns = ("cgcnn", "alignn")
    return (
        _entry(gnns, ("e_fin", *_PER_CELL), "mean pooling"),
        _entry(gnns, ("e_fin", *_SUMMED), "sum pooling", pooling=SUM_POOLING),
    )


@hookimpl
def bench_suites() -> list[SuiteSpec]:
    return [
        SuiteSpec("paper-table1", (_entry(PAPER_MODELS, TABLE1_TASKS, "table 1"),),
                  "13 properties x rf, cgcnn, de-cgcnn, alignn, de-alignn, mean pooling (Table 1)", PAPER),
        SuiteSpec("paper-tables1", (_entry((FROZEN,), TABLE1_TASKS, "table S1: CGCNN + descriptors"),),
                  "13 properties x cgcnn+desc, the frozen CGCNN + descriptors of Table S1 (its other columns "
                  "are paper-table1's)", PAPER),
        SuiteSpec("paper-table2", _table2(),
                  "U, Cv, M x 4 GNNs: per-cell mean, per-atom mean, per-cell sum pooling (Table 2)", PAPER),
        SuiteSpec("paper-fig2", _fig2(),
                  "descriptor learnability x cgcnn, alignn, roost; crystal system x cgcnn, roost (Fig. 2)", PAPER),
        SuiteSpec("paper-fig3", _fig3(),
                  "1D chains x cgcnn: default, 18 nbrs/12 A, 8 convs, sum pooling, double, mixed (Fig. 3, S3)",
                  PAPER),
        SuiteSpec("paper-fig3-mp", _fig3_mp(),
                  "MP a, b, c, angles, natoms x cgcnn: 18 nbrs/12 A, 8 convs, sum pooling (Fig. 3g/h, S4)", PAPER),
        SuiteSpec("paper-figs2", _figs2(),
                  "E_fin, U, Cv, M x cgcnn, alignn: mean vs sum pooling (Fig. S2)", PAPER),
        SuiteSpec("matbench-phonons",
                  (SuiteEntry(models=("dummy", "rf", "cgcnn", "de-cgcnn", "alignn", "de-alignn"),
                              tasks=("matbench_phonons",), protocol="matbench", label="matbench v0.1"),),
                  "matbench_phonons, official 5 folds (Matbench v0.1)", "Dunn et al., npj Comput. Mater. 6, 138 (2020)"),
    ]
