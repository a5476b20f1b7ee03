"""Suites as data: built-ins expand to their documented job lists; a plugin's suite is listed and run."""

import json

import pytest
from cbtest_plugins import suites as test_suites  # noqa: E402
from cbtest_plugins import toolkit  # noqa: E402
from click.testing import CliRunner

from crystalbench.cli import cli  # noqa: E402
from crystalbench.contract.context import RunContext  # noqa: E402
from crystalbench.contract.errors import UnknownNameError  # noqa: E402
from crystalbench.contract.specs import SuiteEntry, SuiteSpec  # noqa: E402
from crystalbench.plugins.suites import SUM_POOLING  # noqa: E402
from crystalbench.runtime.registry import load_registry  # noqa: E402
from crystalbench.runtime.runner import plan_grid  # noqa: E402
from crystalbench.runtime.stages import Workspace  # noqa: E402
from crystalbench.runtime.suites import SuiteFilter, suite_plan, suite_requests  # noqa: E402

pytestmark = pytest.mark.registry(("cbtest_toolkit", toolkit), ("cbtest_suites", test_suites))


@pytest.fixture(scope="module")
def builtin():
    return load_registry()


def keys(reg, name, **flt):
    return [p.key() for p in suite_plan(reg, reg.suite(name), SuiteFilter(**flt) if flt else None)]


def test_builtin_suites_expand_to_documented_job_counts(builtin):
    counts = {name: len(suite_plan(builtin, s)) for name, s in builtin.suites.items()}
    assert counts == {"paper-table1": 65, "paper-tables1": 13, "paper-table2": 36, "paper-fig2": 83, "paper-fig3": 14,
                      "paper-fig3-mp": 19, "paper-figs2": 16, "matbench-phonons": 30}


def test_table1_members(builtin):
    k = keys(builtin, "paper-table1")
    assert ("de-cgcnn", "phonon_cv", "paper", 0, 0, "table 1") in k
    assert {m for m, *_ in k} == {"rf", "cgcnn", "de-cgcnn", "alignn", "de-alignn"}
    assert len({t for _, t, *_ in k}) == 13 and "phonon_cv_per_atom" not in {t for _, t, *_ in k}


def test_table2_pooling_and_per_atom_variants(builtin):
    plan = suite_plan(builtin, builtin.suite("paper-table2"))
    by = {(p.model, p.task, p.label): p.params["pooling"] for p in plan}
    assert by[("cgcnn", "phonon_u", "per-cell target, mean pooling")] == "mean"
    assert by[("cgcnn", "phonon_u", "per-cell target, sum pooling")] == "atom-sum"
    assert by[("alignn", "magnetization_per_atom", "per-atom target, mean pooling")] == "mean"
    assert by[("de-alignn", "magnetization_per_cell", "per-cell target, sum pooling")] == SUM_POOLING
    assert {p.model for p in plan} == {"cgcnn", "de-cgcnn", "alignn", "de-alignn"}


def test_fig3_variants_change_the_right_hyperparameters(builtin):
    plan = {(p.task, p.label): p.params for p in suite_plan(builtin, builtin.suite("paper-fig3"))}
    assert plan[("chain1d_short", "18 neighbours within 12 A")]["max_neighbors"] == 18
    assert plan[("chain1d_short", "18 neighbours within 12 A")]["radius"] == 12.0
    assert plan[("chain1d_long", "8 conv layers")]["n_conv"] == 8
    assert plan[("chain1d_long", "sum pooling")]["pooling"] == SUM_POOLING
    assert plan[("chain1d_short", "default")]["n_conv"] != 8
    assert ("chain1d_short_double", "double chains") in plan
    assert ("chain1d_long_mixed", "mixed single + double chains, sum pooling") in plan


def test_fig2_and_matbench(builtin):
    fig2 = keys(builtin, "paper-fig2")
    assert ("roost", "desc_density", "paper", 0, 0, "descriptor learnability") in fig2
    mb = keys(builtin, "matbench-phonons")
    assert {(f, p) for _, _, p, f, _, _ in mb} == {(f, "matbench") for f in range(5)}


def test_filter_keeps_models_tasks_and_overrides_seeds(builtin):
    k = keys(builtin, "paper-table1", models=("rf",), tasks=("phonon_*",), seeds=(3, 4))
    assert sorted(k) == sorted(("rf", t, "paper", 0, s, "table 1") for t in ("phonon_u", "phonon_cv") for s in (3, 4))


def test_third_party_suite_registered_and_bad_ones_reported(reg):
    assert "cbtest-suite" in reg.suites and reg.owner[("suite", "cbtest-suite")] == "cbtest_suites"
    assert reg.owner[("suite", "paper-table1")] == "suites"  # built-ins keep their names
    problems = "\n".join(reg.problems)
    assert "suite 'paper-table1' already provided by 'suites'" in problems
    assert "suite name 'bad suite' is not allowed" in problems
    assert "suite 'cbtest-empty' has no entries" in problems
    with pytest.raises(UnknownNameError, match="did you mean 'cbtest-suite'"):
        reg.suite("cbtest-suit")


def test_suite_plan_equals_the_planner(reg, tmp_path):
    """suite_plan (no data) and plan_grid (with data) give the same jobs: one planning path."""
    ctx = RunContext(results_dir=tmp_path / "r", cache_dir=tmp_path / "c", data_dir=tmp_path)
    planned = []
    for req in suite_requests(reg, reg.suite("cbtest-suite")):
        jobs, _ = plan_grid(reg, ctx, req, Workspace(reg, ctx))
        planned += [(j.model, j.task, j.protocol, j.fold, j.seed, j.params) for j in jobs]
    static = [(p.model, p.task, p.protocol, p.fold, p.seed, p.params) for p in suite_plan(reg, reg.suite("cbtest-suite"))]
    assert planned == static and len(static) == 6  # 2 models x 2 seeds + sleepy on toy_cubic, toy_constant
    assert static[-1][5]["epochs"] == 2


def test_unknown_name_in_a_suite_names_the_suite(reg):
    bad = SuiteSpec("x", (SuiteEntry(models=("nosuchmodel",), tasks=("toy_cubic",)),))
    with pytest.raises(UnknownNameError, match="suite 'x'.*nosuchmodel"):
        suite_plan(reg, bad)


def test_cli_lists_and_runs_a_suite(reg, tmp_path):
    runner = CliRunner()
    out = runner.invoke(cli, ["list", "suites", "--json"], obj={"registry": reg})
    assert out.exit_code == 0, out.output
    rows = {r["name"]: r for r in json.loads(out.stdout)}
    assert rows["cbtest-suite"]["jobs"] == 6 and rows["paper-table1"]["jobs"] == 65
    results = tmp_path / "r"
    args = ["run", "--suite", "cbtest-suite", "-t", "toy_cubic", "--json", "--results-dir", str(results),
            "--cache-dir", str(tmp_path / "c")]
    out = runner.invoke(cli, args, obj={"registry": reg})
    assert out.exit_code == 0, out.output
    recs = [json.loads(line) for line in out.stdout.splitlines() if line.startswith("{")]
    assert sorted((r["model"], r["seed"]) for r in recs) == [("dummy", 0), ("dummy", 1), ("sleepy", 0),
                                                             ("sleepy", 0), ("sleepy", 1)]
    again = runner.invoke(cli, args, obj={"registry": reg})  # resumes: nothing runs twice
    assert again.exit_code == 0 and not [line for line in again.stdout.splitlines() if line.startswith("{")]
    clash = runner.invoke(cli, ["run", "--suite", "cbtest-suite", "--pooling", "sum"], obj={"registry": reg})
    assert clash.exit_code == 2 and "drop --pooling" in clash.output
