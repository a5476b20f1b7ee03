"""`bench report paper`: the paper's values as data, ours from validated records, the ratio."""

import json

import pytest
from cbtest_plugins import toolkit  # noqa: E402
from click.testing import CliRunner

from crystalbench.cli import cli  # noqa: E402
from crystalbench.contract.context import RunContext  # noqa: E402
from crystalbench.contract.errors import CrystalbenchError  # noqa: E402
from crystalbench.paper import PaperValue, build_cells, compare, paper_values, render_markdown  # noqa: E402
from crystalbench.runtime.registry import load_registry  # noqa: E402
from crystalbench.runtime.runner import GridRequest, run_grid  # noqa: E402


def test_every_shipped_value_is_a_cell_with_the_suites_pins():
    reg = load_registry()
    values = paper_values()
    cells = build_cells(reg, values)
    for v in values:
        assert any(c.paper is v for c in cells), v
    # Table 1's GNNs average (paper caption), so an extensive target pins mean pooling
    [cv] = [c for c in cells if c.section == "Table 1" and c.task == "phonon_cv" and c.model == "cgcnn"
            and c.protocol == "paper" and not c.tuned]
    assert cv.pins == {"pooling": "mean"} and cv.paper is not None and cv.paper.value == 0.759


@pytest.fixture
def results(tmp_path):
    reg = load_registry(extra_plugins=[("cbtest_toolkit", toolkit)])
    ctx = RunContext(results_dir=tmp_path / "r", cache_dir=tmp_path / "c", data_dir=tmp_path)
    summary = run_grid(reg, ctx, GridRequest(models=["dummy", "sleepy"], tasks=["toy_cubic"], seeds=[0, 1]))
    assert summary.ok
    return ctx.results_dir


def _value(model, metric="mae_over_mad", value=1.0, relation="=", row="toy | *row*"):
    return PaperValue(table="T", row=row, task="toy_cubic", model=model, protocol="paper", metric=metric,
                      relation=relation, value=value)


def test_ours_is_the_mean_of_validated_records_and_the_ratio(results):
    recs = [json.loads(p.read_text()) for p in results.rglob("*.json") if "/dummy/" in str(p)]
    mean = sum(r["metrics"]["mae_over_mad"] for r in recs) / len(recs)
    [c] = compare(results, [_value("dummy", value=0.5)])
    assert c.n_records == 2 and c.ours == pytest.approx(mean) and c.ratio == pytest.approx(mean / 0.5)
    # a tampered record is not counted
    victim = next(p for p in results.rglob("*.json") if "/dummy/" in str(p))
    d = json.loads(victim.read_text())
    d["metrics"]["mae_over_mad"] = 0.0
    victim.write_text(json.dumps(d))
    [c] = compare(results, [_value("dummy", value=0.5)])
    assert c.n_records == 1


def test_claims_missing_values_and_escaping(results):
    rows = compare(results, [_value("dummy", metric="r2", value=0.8, relation=">"), _value("sleepy", value=None),
                             _value("nosuchmodel", value=2.0)])
    assert rows[0].verdict == "does not hold" and rows[0].ratio is None  # a mean predictor has R² <= 0
    assert rows[1].verdict == "paper value missing" and rows[2].verdict == "not run"
    text = render_markdown(rows)
    assert "toy \\| \\*row\\*" in text and "| toy | *row*" not in text
    assert "sleepy" in text  # no printed value, but records: shown
    assert "nosuchmodel" in text and "bench run -m nosuchmodel -t toy\\_cubic" in text
    alone = compare(results, [_value("nosuchmodel", value=None)])
    assert "nosuchmodel" not in render_markdown(alone) and "nosuchmodel" in render_markdown(alone, include_missing=True)


def test_bad_values_file_is_one_error(tmp_path):
    p = tmp_path / "v.json"
    p.write_text(json.dumps({"entries": [{"table": "T", "row": "r", "task": "t", "model": "m", "protocol": "paper",
                                          "metric": "mae", "value": "big"}]}))
    with pytest.raises(CrystalbenchError, match="not a number"):
        paper_values(p)


def test_cli_report_paper(results, tmp_path):
    out = CliRunner().invoke(cli, ["report", "paper", "--results-dir", str(results)])
    assert out.exit_code == 0, out.output
    assert ("| C\\_v | de-cgcnn | mean pooling, 300 epochs, random split | mae\\_over\\_mad | 0.058 | – | – |"
            in out.stdout)
    assert "not run | bench run -m de-cgcnn -t phonon\\_cv |" in out.stdout
    j = CliRunner().invoke(cli, ["report", "paper", "--results-dir", str(results), "--json"])
    rows = json.loads(j.stdout)["rows"]
    assert {r["paper"] for r in rows if r["model"] == "cgcnn" and r["task"] == "matbench_phonons"} == {57.76}
