"""The static HTML leaderboard site (issue #10): tables, links, escaping, sorting, and a real headless browser."""

from __future__ import annotations

import importlib.util
import json
import re
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import unquote, urlsplit

import pytest
from helpers import BROWSER_REQUIRED, CHROMIUM, bench_process, chromium
from test_leaderboard import make  # tests/ is on sys.path under pytest

from crystalbench.leaderboard.collect import collect
from crystalbench.leaderboard.html import SITE_MARKER, build_site
from crystalbench.leaderboard.markdown import HAND_WRITTEN_MARKER
from crystalbench.leaderboard.plots import unavailable
from crystalbench.runtime.results import ResultStore

EVIL = "<script>alert(1)</script>"


@pytest.fixture(scope="module")
def results(tmp_path_factory) -> Path:
    """Real dummy + rf runs on the embedded chain task (2 seeds), plus one valid record full of markup."""
    root = tmp_path_factory.mktemp("site") / "results"
    bench_process("run", "-m", "dummy", "-m", "rf", "-t", "chain1d_short", "--seed", "0", "--seed", "1",
          "--results-dir", str(root), "--no-progress", check=0, timeout=300)
    ResultStore(root).write(make("evil", task="evil_task", target=EVIL, unit="eV|<b>x</b>",
                                 warnings=[f"{EVIL} | *bold* [link](javascript:alert(2))"],
                                 params={"note": "<img src=x onerror=alert(3)>", "pipe": "a|b"}))
    (root / "broken" / "x").mkdir(parents=True)
    (root / "broken" / "x" / "<b onmouseover=alert(4)>.json").write_text("{ not json")
    return root


@pytest.fixture(scope="module")
def site(results: Path) -> Path:
    out = results.parent / "site"
    build_site(collect(results, units={"chain1d_short": "A"}), out, models={"rf": {"reference": f"ref {EVIL}"}})
    return out


class _Links(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.refs: list[str] = []
        self.tags: list[str] = []

    def handle_starttag(self, tag, attrs):
        self.tags.append(tag)
        self.refs += [v for k, v in attrs if k in ("href", "src") and v]


def _pages(site: Path) -> list[Path]:
    return sorted(site.rglob("*.html"))


def test_site_layout_and_tables(site):
    assert (site / SITE_MARKER).is_file() and (site / "assets" / "style.css").is_file()
    assert {p.relative_to(site).as_posix() for p in _pages(site)} == {
        "index.html", "paper.html", "tasks/chain1d_short.html", "tasks/evil_task.html",
        "models/dummy.html", "models/rf.html", "models/evil.html"}
    index = (site / "index.html").read_text()
    mae = index.split("MAE/MAD (lower is better)")[1].split("<h2>")[0]
    header = re.findall(r"<th>(.*?)</th>", mae)
    col = {re.sub(r"<[^>]+>", "", th): i for i, th in enumerate(header)}
    assert list(col)[:3] == ["task", "protocol", "target"] and {"dummy", "rf", "evil"} <= set(col)
    row = next(r for r in mae.split("<tr>") if "tasks/chain1d_short.html" in r).split("</td>")
    assert "<strong>" in row[col["rf"]] and "<strong>" not in row[col["dummy"]]  # rf is best
    assert "n=1×2" in row[col["rf"]]  # 1 fold x 2 seeds behind the cell
    assert "MAE in the task&#x27;s units" in index and "R² (higher is better)" in index
    assert "bench run -m rf -t chain1d_short --protocol paper --descriptors gong29 --seed 0 --seed 1" in index
    assert "Skipped result files" in index and "1 invalid result file(s) skipped" in index
    task = (site / "tasks" / "chain1d_short.html").read_text()
    per_fold = task.split("Per fold and seed")[1].split("<h2>")[0]
    assert per_fold.count("<tr>") == 1 + 4  # header + dummy/rf x 2 seeds
    assert "Error vs number of atoms" in task
    if importlib.util.find_spec("pymatviz"):  # chains have structures: records carry atom counts, so it is drawn
        assert "Absolute error vs atoms in the cell" in task and "Not drawn" not in task
    assert "ref &lt;script&gt;" in (site / "models" / "rf.html").read_text()


def test_every_link_resolves_and_every_record_is_linked(site, results):
    linked: set[Path] = set()
    for page in _pages(site):
        parser = _Links()
        parser.feed(page.read_text())
        for ref in parser.refs:
            parts = urlsplit(ref)
            assert not parts.scheme and not parts.netloc, f"{page}: external link {ref}"
            target = (page.parent / unquote(parts.path)).resolve()
            assert target.is_file(), f"{page.relative_to(site)}: broken link {ref}"
            linked.add(target)
    copies = {p.resolve() for p in (site / "results").rglob("*.json")}
    assert len(copies) == 5 and copies <= linked  # 4 real runs + the evil record, each linked
    originals = {p.name for p in results.rglob("*.json") if "broken" not in p.parts}
    assert {p.name for p in copies} == originals
    for p in copies:
        json.loads(p.read_text())


def test_strings_from_records_are_escaped(site, results, tmp_path):
    for page in _pages(site):
        text = page.read_text()
        assert "<script>alert" not in text and "<img src=x" not in text and "<b>x</b>" not in text, page
        assert not re.search(r"<script>(?!\s*(\(function|window\.PLOTLYENV))", text.replace(
            '<script src="', "")), f"{page}: unexpected inline script"
    index = (site / "index.html").read_text()
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in index  # the evil target, shown as text
    evil = (site / "tasks" / "evil_task.html").read_text()
    assert "&lt;b&gt;x&lt;/b&gt;" in evil
    assert "&lt;img src=x onerror=" in (site / "models" / "evil.html").read_text()  # long values are cut
    bench_process("leaderboard", "build", "--results-dir", str(results), "--out", str(tmp_path / "LB.md"), check=0, timeout=300)
    md = (tmp_path / "LB.md").read_text()
    assert not re.search(r"(?<!\\)<(script|img|b)", md) and "\\<script\\>" in md  # only backslash-escaped
    assert not any(line.startswith("| INJECTED") for line in md.splitlines())


def test_sorting_script_and_sortable_tables(site):
    index = (site / "index.html").read_text()
    assert 'class="sortable"' in index and 'addEventListener("click"' in index and "data-sort=" in index


def test_plots_or_a_reason(site):
    task = (site / "tasks" / "chain1d_short.html").read_text()
    if unavailable():
        assert "No plot:" in task
        return
    assert (site / "assets" / "plotly.min.js").stat().st_size > 1_000_000
    assert '<script src="../assets/plotly.min.js"></script>' in task
    assert task.count('class="plotly-graph-div"') == 4  # parity dummy, parity rf, residuals, error vs atoms
    assert "cdn.plot.ly" not in task


def test_cli_html_only_keeps_markdown_untouched_and_hand_written_text(results, tmp_path):
    site = tmp_path / "s"
    p = bench_process("leaderboard", "build", "--results-dir", str(results), "--html", str(site), "--no-plots", check=0, timeout=300)
    assert (site / "index.html").is_file() and "No plot: plots switched off" in (site / "tasks" / "chain1d_short.html").read_text()
    assert "LEADERBOARD.md" not in p.stderr
    bench_process("leaderboard", "build", "--results-dir", str(results), "--html", str(site), "--no-plots", check=0, timeout=300)  # rebuild in place
    not_a_site = tmp_path / "docs"
    not_a_site.mkdir()
    (not_a_site / "keep.txt").write_text("mine")
    err = bench_process("leaderboard", "build", "--results-dir", str(results), "--html", str(not_a_site), check=2, timeout=300).stderr
    assert err.startswith("error:") and "holds no crystalbench site" in err and (not_a_site / "keep.txt").is_file()
    md = tmp_path / "LB.md"
    md.write_text(f"old table\n\n{HAND_WRITTEN_MARKER}\nMy notes | kept.\n")
    bench_process("leaderboard", "build", "--results-dir", str(results), "--out", str(md), check=0, timeout=300)
    text = md.read_text()
    assert "old table" not in text and text.endswith(f"{HAND_WRITTEN_MARKER}\nMy notes | kept.\n")
    assert "## How these results were made" in text and text.count(HAND_WRITTEN_MARKER) == 1
    bench_process("leaderboard", "build", "--results-dir", str(results), "--out", str(md), check=0, timeout=300)
    assert md.read_text().count("My notes | kept.") == 1


@pytest.mark.skipif(CHROMIUM is None and not BROWSER_REQUIRED,
                    reason="no chromium/chrome binary on PATH: the headless-browser check needs one")
def test_pages_render_in_headless_chromium(site, tmp_path):
    """Opens the pages in a real headless Chromium (required in CI: .ci/run installs it and sets the variable)."""
    def dom(page: Path) -> str:
        return chromium(page, tmp_path / "profile", "--dump-dom")

    index = dom(site / "index.html")
    assert "<table" in index and "chain1d_short" in index and "<script>alert" not in index
    task = dom(site / "tasks" / "chain1d_short.html")
    assert "Per fold and seed" in task
    if not unavailable():
        assert task.count("js-plotly-plot") >= 3 and "main-svg" in task  # plotly.js drew the figures
