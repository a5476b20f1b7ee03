"""The published reference results: records that validate against the tasks' data, and pages that are
exactly what `bench docs results` makes from them (LEADERBOARD.md, docs/paper-results.md, the README table).

A tampered record, a stale page or a hand-edited number fails here, so CI never publishes a number that
its record does not say.
"""

import json
import shutil

from click.testing import CliRunner
from helpers import REPO_ROOT

from crystalbench.cli import cli
from crystalbench.paper import build_report

RESULTS = REPO_ROOT / "leaderboard" / "results"
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
