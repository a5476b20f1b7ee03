"""Case 11 of #11: requests that would silently do nothing are one `error:` line, exit 2.

Each case names its culprit (the flag, key or table) in the single error line,
computes nothing and prints no traceback.
"""

from __future__ import annotations

import pytest

CASES = {
    "folds-out-of-range": (("-m", "dummy", "-t", "toy_cubic", "--folds", "7"), None, ("--folds 7", "toy_cubic")),
    "folds-negative": (("-m", "dummy", "-t", "toy_cubic", "--folds", "-1"), None, ("--folds", "-1")),
    "config-top-level-typo": (("-m", "sleepy", "-t", "toy_cubic"), "epoch = 5\n", ("'epoch'", "epochs")),
    "config-unknown-model-table": (("-m", "dummy", "-t", "toy_cubic"), "[unknown_model]\nepochs = 5\n",
                                   ("[unknown_model]",)),
    "config-model-table-typo": (("-m", "rf", "-t", "toy_cubic", "--descriptors", "toy_cell"),
                                "[rf]\nn_estimator = 10\n", ("n_estimator",)),
    "pooling-on-rf": (("-m", "rf", "-t", "toy_cubic", "--descriptors", "toy_cell", "--pooling", "sum"), None,
                      ("--pooling", "rf")),
    "descriptors-on-dummy": (("-m", "dummy", "-t", "toy_cubic", "--descriptors", "toy_cell"), None,
                             ("--descriptors", "dummy")),
}


@pytest.mark.parametrize("case", list(CASES))
def test_silent_no_op_is_one_error_line(bench, tmp_path, case):
    args, config, needles = CASES[case]
    extra = ()
    if config is not None:
        path = tmp_path / "config.toml"
        path.write_text(config)
        extra = ("--config", path)
    root = tmp_path / "r"
    p = bench("run", *args, *extra, "--json", "--results-dir", root)
    bench.one_error(p, *needles)
    assert bench.records(p) == [] and bench.result_files(root) == []


def test_featurize_out_naming_a_directory_is_one_error_line(bench, tmp_path):
    out = tmp_path / "tables"
    out.mkdir()
    p = bench("featurize", "--descriptors", "toy_cell", "-t", "toy_cubic", "--out", out)
    bench.one_error(p, "--out", str(out))
    assert list(out.iterdir()) == []
