"""Case 12 of #11: the same seed gives identical metrics, whatever the order of the grid.

Every built-in model (dummy, rf, cgcnn, de-cgcnn, alignn, de-alignn, roost)
runs one tiny job on toy_cubic (60 cells, 2 epochs, small networks) in two
fresh processes, with fresh caches, in opposite model orders; each job's
metrics must be identical (not merely close) in both.
"""

from __future__ import annotations

MODELS = ["dummy", "rf", "cgcnn", "de-cgcnn", "alignn", "de-alignn", "roost"]

TINY = """
batch_size = 16
patience = 5

[rf]
n_estimators = 10
n_jobs = 2

[cgcnn]
atom_fea_len = 8
n_conv = 1
h_fea_len = 16

[de-cgcnn]
atom_fea_len = 8
n_conv = 1
h_fea_len = 16

[alignn]
alignn_layers = 1
gcn_layers = 1
edge_input_features = 8
triplet_input_features = 8
embedding_features = 8
hidden_features = 16

[de-alignn]
alignn_layers = 1
gcn_layers = 1
edge_input_features = 8
triplet_input_features = 8
embedding_features = 8
hidden_features = 16

[roost]
elem_fea_len = 8
n_graph = 1
elem_heads = 1
elem_gate = [16]
elem_msg = [16]
cry_heads = 1
cry_gate = [16]
cry_msg = [16]
trunk_hidden = [16]
out_hidden = [16]
"""


def test_same_seed_same_metrics_in_any_grid_order(bench, tmp_path):
    config = tmp_path / "tiny.toml"
    config.write_text(TINY)
    runs = {}
    for name, order in (("forward", MODELS), ("reverse", MODELS[::-1])):  # one after the other: 2 cores
        models = [a for m in order for a in ("-m", m)]
        p = bench("run", *models, "-t", "toy_cubic", "--epochs", "2", "--config", config, "--jobs", "1", "--json",
                  "--results-dir", tmp_path / name, "--cache-dir", tmp_path / f"cache-{name}")
        assert p.returncode == 0, f"{name} run exited {p.returncode}:\n{p.stderr}"
        recs = bench.records(p)
        assert [r["model"] for r in recs] == order
        assert all(r["status"] == "ok" for r in recs), [(r["model"], r["error"]) for r in recs if r["status"] != "ok"]
        runs[name] = {r["job_id"]: r for r in recs}
    assert runs["forward"].keys() == runs["reverse"].keys(), "the same request made different jobs"
    differ = {
        r["model"]: (r["metrics"]["mae"], runs["reverse"][job_id]["metrics"]["mae"])
        for job_id, r in runs["forward"].items()
        if r["metrics"] != runs["reverse"][job_id]["metrics"]
    }
    assert not differ, f"not reproducible (MAE in forward vs reverse model order): {differ}"
