"""Paper figures from records only: descriptor learnability (Fig. 2) and the pooling comparison (Table 2)."""

from __future__ import annotations

from test_leaderboard import make  # tests/ is on sys.path under pytest

from crystalbench.leaderboard.collect import summarize
from crystalbench.leaderboard.figures import learnability, pooling, pooling_markdown


def test_learnability_r2_per_descriptor_task_and_model():
    recs = [make(m, task=t, seed=s, noise=n) for t in ("desc_vpa", "desc_density") for s in (0, 1)
            for m, n in (("cgcnn", 0.1), ("roost", 2.0))]
    recs.append(make("cgcnn", task="chain1d_short", noise=0.1))  # not a descriptor task: left out
    recs.append(make("leaky", task="desc_vpa", noise=0.0, warnings=["target leak: reads vpa"]))  # never a bar
    fig = learnability(summarize(recs))
    assert fig.tasks == ["desc_density", "desc_vpa"] and list(fig.series) == ["cgcnn", "roost"]
    (cg_mean, cg_std), (ro_mean, _) = fig.series["cgcnn"][1], fig.series["roost"][1]
    assert cg_mean is not None and ro_mean is not None and cg_mean > 0.9 > ro_mean and cg_std is not None
    assert fig.runs[("desc_vpa", "cgcnn")] == "1×2"


def test_pooling_table_from_resolved_params_never_drops_a_configuration():
    recs = []
    for seed in (0, 1):
        recs += [make("cgcnn", task="phonon_cv", seed=seed, noise=0.3, params={"pooling": "mean"}),
                 make("cgcnn", task="phonon_cv_per_atom", seed=seed, noise=0.2, params={"pooling": "mean"}),
                 make("cgcnn", task="phonon_cv", seed=seed, noise=0.1, params={"pooling": "sum"}),
                 make("cgcnn", task="phonon_cv", seed=seed, noise=0.1, params={"pooling": "sum", "epochs": 5}),
                 make("rf", task="phonon_cv", seed=seed)]  # no pooling: not a row
    rows = pooling(summarize(recs))
    assert [(r.prop, r.model) for r in rows] == [("Cv", "cgcnn")]
    row = rows[0]
    assert all(row.cells[v] is not None for v in row.cells)
    assert row.others == {"per-cell, mean": 0, "per-atom, mean": 0, "per-cell, sum": 1}
    text = pooling_markdown(summarize(recs))
    lines = text.splitlines()
    assert lines[0] == "| property | model | per-cell, mean | per-atom, mean | per-cell, sum |"
    assert lines[2].startswith("| Cv | cgcnn | ") and "(n=1×2)" in lines[2] and "\\[+1 other config(s)\\]" in lines[2]  # markdown-escaped
    assert pooling_markdown(summarize([make("rf")])) == ""
