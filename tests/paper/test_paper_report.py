"""`bench report paper` as a referee reads it: every cell with its fill command, intervals, paired tests.

Records here are built in memory from the real registry (real models, tasks and
suites), so the tests need no training and no data: a record's job carries the
resolved parameters a run would have, `non_default` what the harness stores.
"""

import json
import math
import shlex

import numpy as np
import pytest
from click.testing import CliRunner
from scipy import stats

from crystalbench.cli import cli
from crystalbench.contract.job import Job
from crystalbench.contract.record import ResultRecord
from crystalbench.leaderboard.stats import fmt_interval, interval, paired
from crystalbench.paper import build_report, render_markdown
from crystalbench.paper.cells import defaults, pins_of
from crystalbench.paper.render import as_json
from crystalbench.plugins.suites import SUM_POOLING
from crystalbench.runtime.suites import suite_plan


def _rec(reg, model, task, seed, value, *, pins=None, protocol="paper", origin="run", fold=0, fit_info=None,
         split="s"):
    spec, tspec = reg.models[model], reg.tasks[task]
    params = {**defaults(spec, tspec), **(pins or {})}
    job = Job(model=model, task=task, protocol=protocol, fold=fold, seed=seed, params=params,
              descriptors=spec.descriptors, target=tspec.target, data="data-v1")
    return ResultRecord(job=job, status="ok", metrics={"mae_over_mad": value, "r2": 1 - value},
                        provenance={"split": {"test_ids_sha256": f"{split}-{fold}-{seed}"}},
                        non_default=pins_of(reg, model, task, params), origin=origin, fit_info=fit_info or {},
                        task_info={"task_type": "regression"})


def _report(reg, records, tmp_path):
    return build_report(tmp_path, registry=reg, records=records)


def _row(rep, section, task, display_model, protocol="paper"):
    [c] = [c for c in rep.rows if c.cell.section == section and c.cell.task == task
           and c.cell.display_model == display_model and c.cell.protocol == protocol]
    return c


# -- statistics -----------------------------------------------------------------------------------------------


def test_interval_is_student_t_over_runs_and_none_for_one():
    x = [0.090, 0.119, 0.101, 0.112, 0.095]
    iv = interval(x)
    half = stats.t.ppf(0.975, 4) * np.std(x, ddof=1) / math.sqrt(5)
    assert iv.n == 5 and iv.low == pytest.approx(np.mean(x) - half) and iv.high == pytest.approx(np.mean(x) + half)
    one = interval([0.1])
    assert one.n == 1 and one.low is None and "n=1: no interval" in fmt_interval(one)
    assert interval([]) is None


def test_paired_tests_use_only_shared_splits():
    a = {("f0", 0): 0.30, ("f0", 1): 0.32, ("f0", 2): 0.35, ("f0", 3): 0.31, ("f0", 9): 5.0}
    b = {("f0", 0): 0.10, ("f0", 1): 0.13, ("f0", 2): 0.12, ("f0", 3): 0.12, ("f0", 7): 0.0}
    t = paired(a, b)
    keys = [("f0", s) for s in range(4)]
    xa, xb = [a[k] for k in keys], [b[k] for k in keys]
    assert t.n == 4 and t.unpaired == 2
    assert t.t_p == pytest.approx(stats.ttest_rel(xb, xa).pvalue)
    assert t.wilcoxon_p == pytest.approx(stats.wilcoxon(xb, xa).pvalue)
    assert t.mean_diff == pytest.approx(np.mean(xb) - np.mean(xa))
    same = paired({1: 0.2, 2: 0.3}, {1: 0.2, 2: 0.3})
    assert same.t_p is None and same.wilcoxon_p is None and "identical" in same.note
    assert paired({1: 0.2}, {2: 0.3}).n == 0  # nothing shared: never tested


# -- every cell, with its command ---------------------------------------------------------------------------


def _parses(command: str) -> None:
    """The command parses with the real CLI (no job runs): options, choices and types are checked."""
    words = shlex.split(command)
    assert words[0] == "bench"
    ctx = cli.make_context("bench", words[1:], resilient_parsing=False)
    name, sub, rest = cli.resolve_command(ctx, ctx.protected_args + ctx.args)
    sub.make_context(name, rest, parent=ctx)


def test_all_on_empty_results_lists_every_paper_cell_with_a_command_that_parses(reg, tmp_path):
    rep = build_report(tmp_path / "empty", registry=reg)
    text = render_markdown(rep, include_missing=True)
    for section in ("## Table 1", "## Table 2", "## Fig. 2", "## Fig. 3", "## Tables S2/S3"):
        assert section in text
    cells = {(c.cell.task, c.cell.model, c.cell.protocol, json.dumps(c.cell.pins, sort_keys=True)) for c in rep.rows}
    for suite in ("paper-table1", "paper-table2", "paper-fig2", "paper-fig3"):
        for job in suite_plan(reg, reg.suites[suite]):
            pins = pins_of(reg, job.model, job.task, job.params)
            assert (job.task, job.model, job.protocol, json.dumps(pins, sort_keys=True)) in cells, (suite, job)
    for c in rep.rows:
        assert c.verdict in ("not run", "paper value missing", "figure only: no printed value",
                             "not compared (see the data note)")
        _parses(c.command)
    # the authors' split is a cell of its own for the tasks that carry it
    assert _row(rep, "Table 1", "phonon_cv", "de-cgcnn", "file").command.endswith("--protocol file")
    # a pinned readout is part of the cell and of its command
    t2 = [c for c in rep.rows if c.cell.section == "Table 2" and c.cell.task == "phonon_cv" and c.cell.model == "cgcnn"]
    assert {c.resolved["pooling"] for c in t2} >= {"mean", SUM_POOLING}
    assert any("--pooling" in c.command for c in t2)


def test_cli_all_lists_table2_and_fig2_gaps(tmp_path):
    out = CliRunner().invoke(cli, ["report", "paper", "--results-dir", str(tmp_path), "--all"])
    assert out.exit_code == 0, out.output
    assert "## Table 2" in out.stdout and "## Fig. 2" in out.stdout
    assert "bench run -m alignn -t desc\\_a" in out.stdout


# -- which records count ------------------------------------------------------------------------------------


def test_only_the_cells_configuration_counts_and_others_are_named(reg, tmp_path):
    good = [_rec(reg, "de-cgcnn", "phonon_cv", s, v) for s, v in enumerate([0.06, 0.058, 0.062])]
    short = _rec(reg, "de-cgcnn", "phonon_cv", 5, 0.4, pins={"epochs": 3})
    trial = _rec(reg, "de-cgcnn", "phonon_cv", 6, 0.01, origin="tune")
    rep = _report(reg, [*good, short, trial], tmp_path)
    c = _row(rep, "Table 1", "phonon_cv", "de-cgcnn")
    assert c.n_records == 3 and c.ours == pytest.approx(np.mean([0.06, 0.058, 0.062]))
    assert c.ratio == pytest.approx(c.ours / 0.058)
    assert c.interval.low < 0.058 < c.interval.high and c.verdict == "paper within our 95% CI"
    assert "de-cgcnn (epochs=3)" in c.others and not any(r.seed in (5, 6) for r in c.records)
    text = render_markdown(rep)
    assert "not counted: de-cgcnn (epochs=3) ×1" in text
    # the short run alone never fills the cell
    alone = _row(_report(reg, [short], tmp_path), "Table 1", "phonon_cv", "de-cgcnn")
    assert alone.ours is None and alone.verdict == "not run"


def test_one_run_has_no_interval_and_a_more_seeds_command(reg, tmp_path):
    c = _row(_report(reg, [_rec(reg, "rf", "phonon_cv", 0, 0.11)], tmp_path), "Table 1", "phonon_cv", "rf")
    assert c.interval.n == 1 and c.interval.low is None
    assert c.more == "bench run -m rf -t phonon_cv --seed 1 --seed 2"
    _parses(c.more)
    assert "n=1: no interval" in render_markdown(_report(reg, [_rec(reg, "rf", "phonon_cv", 0, 0.11)], tmp_path))


def test_authors_split_records_are_reported(reg, tmp_path):
    recs = [_rec(reg, "de-cgcnn", "phonon_cv", s, 0.055 + s / 1000, protocol="file") for s in range(2)]
    rep = _report(reg, recs, tmp_path)
    assert _row(rep, "Table 1", "phonon_cv", "de-cgcnn", "file").n_records == 2
    assert _row(rep, "Table 1", "phonon_cv", "de-cgcnn", "paper").n_records == 0


def test_paired_gnn_vs_de_gnn_and_mean_vs_sum(reg, tmp_path):
    cg = [_rec(reg, "cgcnn", "phonon_cv", s, v, pins={"pooling": "mean"}) for s, v in enumerate([0.70, 0.76, 0.80])]
    de = [_rec(reg, "de-cgcnn", "phonon_cv", s, v) for s, v in enumerate([0.06, 0.05, 0.07])]
    de.append(_rec(reg, "de-cgcnn", "phonon_cv", 9, 0.06))  # no partner
    summed = [_rec(reg, "cgcnn", "phonon_cv", s, v, pins={"pooling": SUM_POOLING})
              for s, v in enumerate([0.25, 0.30, 0.28])]
    rep = _report(reg, [*cg, *de, *summed], tmp_path)
    [t] = [t for t in rep.paired if t.section == "Table 1" and t.task == "phonon_cv" and t.what == "cgcnn → de-cgcnn"
           and t.protocol == "paper"]
    assert t.test.n == 3 and t.test.unpaired == 1
    assert t.test.t_p == pytest.approx(stats.ttest_rel([0.06, 0.05, 0.07], [0.70, 0.76, 0.80]).pvalue)
    assert t.test.wilcoxon_p == pytest.approx(0.25)
    [p] = [t for t in rep.paired if t.section == "Table 2" and t.task == "phonon_cv" and t.protocol == "paper"
           and t.what == f"cgcnn: mean → {SUM_POOLING} pooling"]
    assert p.test.n == 3 and p.test.mean_diff == pytest.approx(np.mean([0.25, 0.30, 0.28]) - np.mean([0.70, 0.76, 0.80]))
    text = render_markdown(rep)
    assert "cgcnn → de-cgcnn" in text and "paired t p=" in text and "Wilcoxon p=0.25" in text
    j = as_json(rep)
    assert any(r["comparison"] == "cgcnn → de-cgcnn" and r["n"] == 3 for r in j["paired"])


def test_other_splits_are_never_paired(reg, tmp_path):
    cg = [_rec(reg, "cgcnn", "phonon_cv", s, 0.7 + s / 100, pins={"pooling": "mean"}) for s in range(3)]
    de = [_rec(reg, "de-cgcnn", "phonon_cv", s, 0.06, split="other") for s in range(3)]
    [t] = [t for t in _report(reg, [*cg, *de], tmp_path).paired if t.section == "Table 1" and t.what == "cgcnn → de-cgcnn"
           and t.task == "phonon_cv" and t.protocol == "paper"]
    assert t.test.n == 0 and t.test.unpaired == 6 and t.test.t_p is None


# -- rf feature importance ------------------------------------------------------------------------------------


def test_rf_importance_section(reg, tmp_path):
    plain = _report(reg, [_rec(reg, "rf", "phonon_cv", 0, 0.11)], tmp_path)
    assert not plain.importance_available and "Unmeasured" in render_markdown(plain)
    recs = [_rec(reg, "rf", "phonon_cv", s, 0.11, fit_info={"feature_importances": {"a": 0.5 + s / 10, "vpa": 0.2}})
            for s in range(2)]
    rep = _report(reg, recs, tmp_path)
    [imp] = [i for i in rep.importances if i.task == "phonon_cv"]
    assert imp.n == 2 and imp.top[0] == ("a", pytest.approx(0.55))
    assert "| phonon\\_cv | 2 | a 0.550, vpa 0.200 |" in render_markdown(rep)


# -- output safety and escaping -----------------------------------------------------------------------------


def test_hostile_settings_are_escaped(reg, tmp_path):
    bad = _rec(reg, "rf", "phonon_cv", 0, 0.2)
    bad.non_default = {"note": "| <script>*x*"}
    text = render_markdown(_report(reg, [bad], tmp_path))
    assert "<script>" not in text.replace("\\<script\\>", "") and "| <script>" not in text


def test_out_is_never_overwritten_without_force(tmp_path):
    out = tmp_path / "PAPER.md"
    out.write_text("mine")
    res = CliRunner().invoke(cli, ["report", "paper", "--results-dir", str(tmp_path / "r"), "--out", str(out)])
    assert res.exit_code == 2 and "error:" in res.output and "--force" in res.output and out.read_text() == "mine"
    res = CliRunner().invoke(cli, ["report", "paper", "--results-dir", str(tmp_path / "r"), "--out", str(out), "--force"])
    assert res.exit_code == 0 and out.read_text().startswith("# Ours vs")
    rec = tmp_path / "r" / "t" / "m" / "x.json"
    rec.parent.mkdir(parents=True)
    rec.write_text("{}")
    res = CliRunner().invoke(cli, ["report", "paper", "--results-dir", str(tmp_path / "r"), "--out", str(rec), "--force"])
    assert res.exit_code == 2 and rec.read_text() == "{}"


def test_a_tuned_run_counts_only_for_the_search_cell(reg, tmp_path):
    chosen = {"atom_fea_len": 32, "h_fea_len": 64, "n_h": 3, "lr": 0.01}
    tuned = _rec(reg, "de-cgcnn", "phonon_cv", 0, 0.055, protocol="file", pins=chosen)
    tuned.provenance["tuning"] = {"space": "paper-S2", "chosen_params": chosen}
    rep = _report(reg, [tuned], tmp_path)
    [s2] = [c for c in rep.rows if c.cell.tuned and c.cell.task == "phonon_cv" and c.cell.model == "de-cgcnn"
            and c.cell.protocol == "file" and c.cell.paper is not None and c.cell.section.startswith("Tables S2/S3")
            and c.cell.row.startswith("Table 1")]
    assert s2.n_records == 1 and s2.ours == pytest.approx(0.055)
    assert s2.command == "bench tune -m de-cgcnn -t phonon_cv --space paper --protocol file"
    _parses(s2.command)
    assert _row(rep, "Table 1", "phonon_cv", "de-cgcnn", "file").n_records == 0
