"""The published reference results: records that validate against the tasks' data, and pages that are
exactly what `bench docs results` makes from them (LEADERBOARD.md, docs/paper-results.md, the README table).

A tampered record, a stale page or a hand-edited number fails here, so CI never publishes a number that
its record does not say.
"""

import gzip
import json
import shutil

import pytest
from click.testing import CliRunner
from helpers import BROWSER_REQUIRED, CHROMIUM, REPO_ROOT, chromium

from crystalbench.cli import cli
from crystalbench.paper import build_report

RESULTS = REPO_ROOT / "leaderboard" / "results"
MATBENCH = REPO_ROOT / "leaderboard" / "matbench"  # `bench export matbench` of the matbench_* records, per model
PAGES = ("leaderboard/LEADERBOARD.md", "docs/paper-results.md", "README.md")


def _records() -> list:
    return sorted(RESULTS.rglob("*.json"))


def _docs_results(root, *extra: str):
    args = ["docs", "results", "--results-dir", str(root / "leaderboard" / "results"),
            "--leaderboard", str(root / PAGES[0]), "--report", str(root / PAGES[1]), "--readme", str(root / PAGES[2])]
    return CliRunner().invoke(cli, [*args, *extra])


def _copy_published(tmp_path):
    shutil.copytree(RESULTS, tmp_path / "leaderboard" / "results")
    for page in PAGES:
        (tmp_path / page).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(REPO_ROOT / page, tmp_path / page)
    return tmp_path


def test_reference_records_are_committed():
    assert _records(), "leaderboard/results holds no records"


def test_reference_records_validate_against_the_tasks_data(data_dir):
    """Schema, job ids, recomputed metrics, y_true against each task's data, official splits."""
    res = CliRunner().invoke(cli, ["results", "validate", str(RESULTS), "--require-official-splits",
                                   "--data-dir", str(data_dir)])
    assert res.exit_code == 0, res.output
    assert f"{len(_records())} valid, 0 invalid" in res.output


def test_published_pages_are_a_regeneration_of_the_records():
    res = _docs_results(REPO_ROOT, "--check")
    assert res.exit_code == 0, res.output


def test_the_report_command_prints_the_committed_report():
    """What a reader runs on a fresh clone is exactly the committed docs/paper-results.md (above its notes)."""
    res = CliRunner().invoke(cli, ["report", "paper", "--all", "--results-dir", str(RESULTS)])
    assert res.exit_code == 0, res.output
    committed = (REPO_ROOT / "docs" / "paper-results.md").read_text()
    assert committed.startswith(res.output)


def test_a_hand_edited_number_is_caught(tmp_path):
    root = _copy_published(tmp_path)
    readme = root / "README.md"
    text = readme.read_text()
    block = text[text.index("<!-- BEGIN GENERATED: paper results"):text.index("<!-- END GENERATED: paper results")]
    edited = block.replace(" vs ", " vs 9", 1)
    assert edited != block
    readme.write_text(text.replace(block, edited))
    assert _docs_results(root, "--check").exit_code == 1
    assert _docs_results(root).exit_code == 0
    assert readme.read_text() == text


def test_a_tampered_record_is_refused(tmp_path):
    root = _copy_published(tmp_path)
    path = next(p for p in sorted((root / "leaderboard" / "results").rglob("*.json")))
    rec = json.loads(path.read_text())
    rec["predictions"]["y_pred"][0] += 1.0
    path.write_text(json.dumps(rec))
    res = _docs_results(root, "--check")
    assert res.exit_code != 0
    assert path.name in res.output


def test_every_cell_off_the_paper_says_why():
    """docs/paper-results.md explains each cell more than 15% off (never a tuning until it matches)."""
    report = build_report(RESULTS)
    for dev in report.deviations:
        assert dev.reasons, f"{dev.comparison.cell.section} {dev.comparison.cell.row} {dev.comparison.cell.model}"
    text = (REPO_ROOT / "docs" / "paper-results.md").read_text()
    assert "## Cells more than 15% off the paper" in text
    assert "<!-- hand-written: kept by bench docs results -->" in text


def test_pages_count_every_committed_record():
    n = len(_records())
    assert f"Built from {n} successful result(s)" in (REPO_ROOT / PAGES[0]).read_text()
    assert f"{n} validated record(s)" in (REPO_ROOT / PAGES[1]).read_text()


def _matbench_models() -> set[str]:
    """Models with records on a matbench_* task (records lie under <task>/<model>/)."""
    return {p.parent.name for p in _records() if p.parent.parent.name.startswith("matbench_")}


def _without_dates(doc: dict) -> dict:
    """An export without what changes from one writing to the next (its datestamp and the hash over it)."""
    return {k: v for k, v in doc.items() if k not in ("datestamp", "hash")}


def test_matbench_exports_are_a_regeneration_of_the_records(tmp_path):
    """One export per model with Matbench records, each what `bench export matbench` writes from them today."""
    models = _matbench_models()
    assert models, "no matbench_* records committed"
    assert {p.name.removesuffix(".json.gz") for p in MATBENCH.glob("*.json.gz")} == models
    for model in sorted(models):
        out = tmp_path / f"{model}.json.gz"
        res = CliRunner().invoke(cli, ["export", "matbench", "--results-dir", str(RESULTS), "-m", model,
                                       "-o", str(out)])
        assert res.exit_code == 0, res.output
        fresh = json.loads(gzip.decompress(out.read_bytes()))
        committed = json.loads(gzip.decompress((MATBENCH / out.name).read_bytes()))
        assert _without_dates(committed) == _without_dates(fresh), f"{model}: rerun bench export matbench"


def test_matbench_exports_load_in_matbench(tmp_path):
    """Matbench's own loader accepts every committed export (its hash, folds and official test ids)."""
    matbench_bench = pytest.importorskip("matbench.bench")
    for path in sorted(MATBENCH.glob("*.json.gz")):
        doc = json.loads(gzip.decompress(path.read_bytes()))
        mb = matbench_bench.MatbenchBenchmark.from_dict(doc)
        assert mb.is_valid, path.name
        assert set(mb.tasks_map["matbench_phonons"].results) == {f"fold_{k}" for k in range(5)}


@pytest.mark.skipif(CHROMIUM is None and not BROWSER_REQUIRED,
                    reason="no chromium/chrome binary on PATH: the headless-browser check needs one")
def test_the_site_of_the_reference_records_renders_in_headless_chromium(tmp_path):
    """The published site (index, a task page, the paper page) opens in a real browser with what the records say."""
    site = tmp_path / "site"
    res = CliRunner().invoke(cli, ["leaderboard", "build", "--results-dir", str(RESULTS), "--html", str(site)])
    assert res.exit_code == 0, res.output
    profile = tmp_path / "profile"
    tasks = sorted({p.parent.parent.name for p in _records()})
    index = chromium(site / "index.html", profile, "--dump-dom")
    assert "<table" in index and all(t in index for t in tasks)
    task = chromium(site / "tasks" / "phonon_cv.html", profile, "--dump-dom")
    assert "Per fold and seed" in task and "de-cgcnn" in task and "js-plotly-plot" in task
    paper = chromium(site / "paper.html", profile, "--dump-dom")
    assert "Pooling comparison" in paper and "No results on" not in paper  # Table 2's pooling rows are drawn
    # the index drawn to pixels is far from a blank page of the same size (a broken stylesheet or script shows)
    blank = tmp_path / "blank.html"
    blank.write_text("<!doctype html><title>blank</title>")
    shots = {}
    for name, page in (("index", site / "index.html"), ("blank", blank)):
        shots[name] = tmp_path / f"{name}.png"
        chromium(page, profile, "--window-size=1280,900", f"--screenshot={shots[name]}")
    assert shots["index"].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert shots["index"].stat().st_size > 5 * shots["blank"].stat().st_size
