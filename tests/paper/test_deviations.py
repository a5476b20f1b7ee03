"""Cells more than 15% off the paper come with the ways our run differs (data, recipe, noise), never bare.

Records are built in memory from the real registry, as in test_paper_report.py.
"""

from test_paper_report import _rec, _report, _row

from crystalbench.paper import render_markdown, summary_markdown
from crystalbench.paper.compare import deviation_reasons as reasons
from crystalbench.paper.deviations import THRESHOLD


def test_only_cells_beyond_the_threshold_are_listed(reg, tmp_path):
    # phonon_cv rf: paper 0.111; de-cgcnn: paper 0.058
    recs = [_rec(reg, "rf", "phonon_cv", 0, 0.111 * (1 + THRESHOLD / 2)),
            _rec(reg, "de-cgcnn", "phonon_cv", 0, 0.058 * 2)]
    rep = _report(reg, recs, tmp_path)
    listed = {(d.comparison.cell.section, d.comparison.cell.model) for d in rep.deviations}
    assert ("Table 1", "de-cgcnn") in listed
    assert not any(m == "rf" for _, m in listed)
    assert all(abs(d.off) > THRESHOLD for d in rep.deviations)


def test_substitute_data_untuned_gnn_and_one_seed_are_named(reg, tmp_path):
    rep = _report(reg, [_rec(reg, "cgcnn", "e_fin", 0, 0.2)], tmp_path)
    why = reasons(_row(rep, "Table 1", "e_fin", "cgcnn"), reg)
    assert any(r.startswith("data: substitute") for r in why)
    assert any(r.startswith("recipe: untuned") for r in why)
    assert any("one run" in r for r in why)


def test_paper_data_and_an_interval_that_holds_the_paper_value(reg, tmp_path):
    # paper 0.111 for rf on C_v: three seeds around it, spread wide enough for the interval to hold it
    recs = [_rec(reg, "rf", "phonon_cv", s, v) for s, v in enumerate((0.07, 0.12, 0.17))]
    rep = _report(reg, recs, tmp_path)
    why = reasons(_row(rep, "Table 1", "phonon_cv", "rf"), reg)
    assert not any(r.startswith("data:") for r in why)  # the paper's own labels, 1,503 of 1,512
    assert any("inside our 95% interval (n=3)" in r for r in why)
    assert any("random forest" in r for r in why)


def test_the_paper_values_own_note_is_a_reason(reg, tmp_path):
    # the paper's per-atom U MAD is 4.3 times ours: its note says the printed target is probably not ours
    rep = _report(reg, [_rec(reg, "de-cgcnn", "phonon_u_per_atom", 0, 0.134)], tmp_path)
    row = next(c for c in rep.rows if c.cell.section == "Table 2" and c.cell.task == "phonon_u_per_atom"
               and c.cell.model == "de-cgcnn" and c.interval is not None)
    why = reasons(row, reg)
    assert any(r.startswith("the paper's value:") and "probably not ours" in r for r in why)
    assert not any(r.startswith("the paper's value:")
                   for r in reasons(_row(rep, "Table 1", "phonon_u", "de-cgcnn"), reg))


def test_report_lists_each_deviation_with_its_reasons(reg, tmp_path):
    rep = _report(reg, [_rec(reg, "cgcnn", "e_fin", 0, 0.2)], tmp_path)
    text = render_markdown(rep)
    section = text[text.index("## Cells more than 15% off the paper"):]
    assert "| Table 1 | E\\_fin | cgcnn |" in section and "data: substitute" in section
    assert "## The records" in text and "1 validated record(s)" in text
    code = next(line for line in text.splitlines() if line.startswith("- model code"))
    assert code.endswith(": cgcnn unknown (1)")  # per model, the code versions of its records and how many


def test_summary_marks_off_cells_and_names_unmeasured_models(reg, tmp_path):
    recs = [_rec(reg, "rf", "phonon_cv", 0, 0.111), _rec(reg, "de-cgcnn", "phonon_cv", 0, 0.2)]
    text = summary_markdown(_report(reg, recs, tmp_path))
    row = next(line for line in text.splitlines() if line.startswith("| C\\_v |"))
    assert "0.111 (n=1) vs 0.111" in row and "0.2† (n=1) vs 0.058" in row
    assert "Unmeasured models: cgcnn, alignn, de-alignn" in text
