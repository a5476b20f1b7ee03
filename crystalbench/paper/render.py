"""`bench report paper` as markdown and as JSON: one table per section of the paper, then the tests.

Every string that comes from a record, a plugin or values.json goes through
`leaderboard.markdown.escape` before it reaches the markdown; commands are shown
as escaped text (not code spans, where a backslash escape would show).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from typing import Any

from crystalbench.contract.metrics import METRICS
from crystalbench.contract.record import ResultRecord

from ..leaderboard.stats import fmt_interval, fmt_paired
from .cells import TUNED_SECTION
from .compare import Comparison, Deviation, Importance, PairedComparison, PaperReport
from .deviations import THRESHOLD, is_off

__all__ = ["render_markdown", "summary_markdown", "as_rows", "as_json", "SUMMARY_SECTION", "SUMMARY_MODELS"]

SUMMARY_SECTION = "Table 1"
SUMMARY_MODELS = ("rf", "cgcnn", "de-cgcnn", "alignn", "de-alignn")
OFF_MARK = "†"

_INTRO = """\
Ours is the mean ± sample std over the cell's runs (seeds, folds) with the two-sided 95% Student t
interval and n; with one run there is no interval. A record counts for a cell only when its settings
equal the cell's configuration exactly (no shortened runs, no tuning trials; other settings are listed
under "not counted"). ours/paper below 1: our error is lower (for R² and accuracy, our score is lower).
How intervals and paired tests are computed: docs/report.md.
"""


def _esc(text: object) -> str:
    from ..leaderboard.markdown import escape

    return escape(text, None)


def _num(x: float | None) -> str:
    return "–" if x is None else f"{x:.4g}"


def _paper(c: Comparison) -> str:
    p = c.paper
    if p is None:
        return "figure only"
    if p.value is None:
        return "missing"
    text = ("" if p.relation == "=" else p.relation + " ") + _num(p.value) + (f" {p.unit}" if p.unit else "")
    if p.paper_mae is not None:
        text += f" (MAE {_num(p.paper_mae)}{' ' + p.paper_unit if p.paper_unit else ''})"
    return text


def _note(c: Comparison) -> str:
    parts = [c.verdict]
    if c.records and c.n_records < c.wanted:
        parts.append(f"{c.n_records} of {c.wanted} runs")
    if c.stale:
        parts.append(f"{c.stale} record(s) of older data left out")
    if c.others:
        parts.append("not counted: " + ", ".join(f"{k} ×{n}" for k, n in sorted(c.others.items())))
    return "; ".join(p for p in parts if p)


def _todo(c: Comparison) -> str:
    if not c.records or c.n_records < c.wanted:
        return c.command
    return f"for an interval: {c.more}" if c.more else ""


def _shown(c: Comparison, everything: bool) -> bool:
    return everything or bool(c.records) or (c.paper is not None and c.paper.value is not None)


def _section(name: str, rows: list[Comparison], everything: bool) -> list[str]:
    shown = [c for c in rows if _shown(c, everything)]
    out = [f"## {_esc(name)}", ""]
    if not shown:
        return out + [f"{len(rows)} cell(s), none run and none with a printed value here; `--all` lists them "
                      "with the command that fills each.", ""]
    out += ["| row | model | configuration | metric | paper | ours | ours/paper | data | note | to fill |",
            "|---|---|---|---|---|---|---|---|---|---|"]
    for c in shown:
        cells = [c.cell.row, c.cell.display_model, c.configuration, c.cell.metric, _paper(c), fmt_interval(c.interval),
                 _num(c.ratio), c.data_note, _note(c), _todo(c)]
        out.append("| " + " | ".join(_esc(x) for x in cells) + " |")
    out += _data_lines(shown)
    hidden = len(rows) - len(shown)
    if hidden:
        out.append("")
        out.append(f"{hidden} more cell(s) not run and without a printed value: `--all` lists them.")
    return out + [""]


def _data_lines(shown: list[Comparison]) -> list[str]:
    """Each task's data difference once (tasks sharing one text are named together, or as "all rows")."""
    by_text: dict[str, list[str]] = {}
    for c in shown:
        if c.data_detail and c.cell.task not in by_text.setdefault(c.data_detail, []):
            by_text[c.data_detail].append(c.cell.task)
    tasks = {c.cell.task for c in shown}
    out = []
    for text, names in by_text.items():
        who = "all rows" if set(names) == tasks and len(tasks) > 1 else ", ".join(names)
        out.append(f"- data of {_esc(who)}: {_esc(text)}")
    return ["", *out] if out else []


def _change(first: float | None, second: float | None) -> str:
    """``0.759 → 0.058 (-92.4%)``: the relative change is the paper's "improvement" column with the sign kept."""
    if first is None or second is None:
        return "–" if first is None and second is None else f"{_num(first)} → {_num(second)}"
    rel = f" ({(second - first) / first * 100:+.1f}%)" if first else ""
    return f"{_num(first)} → {_num(second)}{rel}"


def _direction(metric: str) -> str:
    m = METRICS.get(metric)
    return "higher is better" if m is not None and m.higher_is_better else "lower is better"


def _paired(tests: list[PairedComparison]) -> list[str]:
    out = ["## Paired comparisons on the same splits", "",
           "Each pair of runs shares task, protocol, fold, seed and test ids, so split noise cancels; "
           "runs without a partner are left out and counted. Mean diff = second − first. With n paired runs "
           "the smallest two-sided Wilcoxon p is 2/2^n (0.25 for 3 seeds): add seeds before reading "
           "\"not significant\" as \"no difference\". The change in % is Table 1's \"improvement\" with its sign "
           "kept: negative = the second has the lower value.", ""]
    shown = [t for t in tests if t.a.records or t.b.records]
    if not shown:
        return out + [f"{len(tests)} comparison(s), none with records yet.", ""]
    if len(shown) < len(tests):
        out += [f"{len(tests) - len(shown)} more comparison(s) have no records on either side yet.", ""]
    out += ["| table | task | split | comparison | metric | paper: first → second | ours: first → second | paired test |",
            "|---|---|---|---|---|---|---|---|"]
    for t in shown:
        pa, pb = (c.paper for c in (t.a, t.b))
        printed = [p.value if p is not None and p.relation == "=" and p.compare else None for p in (pa, pb)]
        cells = [t.section, t.task, t.protocol, t.what, f"{t.metric} ({_direction(t.metric)})",
                 _change(*printed), _change(t.a.ours, t.b.ours), fmt_paired(t.test)]
        out.append("| " + " | ".join(_esc(x) for x in cells) + " |")
    return out + [""]


def _importance(imps: list[Importance], available: bool) -> list[str]:
    out = ["## rf feature importance (Fig. 4 / S6)", "",
           "The paper ranks the features of the hybrid representation with a random forest. Here: rf's impurity "
           "importances on its descriptor set, averaged over rf's recipe records of each Table 1 task "
           "(`fit_info.feature_importances`).", ""]
    if not available:
        out.append("Unmeasured: no rf record here carries `feature_importances`. Run rf on the Table 1 tasks with "
                   "a crystalbench whose rf stores them, e.g.:")
        out.append("")
        out += [f"- {_esc(i.command)}" for i in imps[:3]] + [""]
        return out
    out += ["| task | records | top features (mean importance) | to fill |", "|---|---|---|---|"]
    for i in imps:
        top = ", ".join(f"{k} {v:.3f}" for k, v in i.top) or "unmeasured"
        out.append("| " + " | ".join(_esc(x) for x in [i.task, str(i.n), top, "" if i.n else i.command]) + " |")
    return out + [""]


def _span(values: Iterable[str]) -> str:
    vals = sorted({v for v in values if v})
    return ", ".join(vals) if vals else "unknown"


def _records_lines(records: list[ResultRecord]) -> list[str]:
    """Where the numbers come from: how many records, when, on what, with which code (from the records)."""
    if not records:
        return []
    days = sorted(r.created[:10] for r in records if r.created)
    runtime = [r.runtime for r in records]
    prov = [r.provenance for r in records]
    threads = _span(str(rt.get("torch_threads")) for rt in runtime if rt.get("torch_threads") is not None)
    gpus = _span(str(rt.get("gpu_name")) for rt in runtime if rt.get("gpu_name"))
    out = ["## The records", "",
           f"{len(records)} validated record(s), made {days[0]} to {days[-1]}" if days else
           f"{len(records)} validated record(s)",
           f"- devices: {_esc(_span(rt.get('device', '') for rt in runtime))}"
           + (f" ({_esc(gpus)})" if gpus != "unknown" else "") + f"; torch threads per job: {_esc(threads)}",
           f"- torch: {_esc(_span(str(rt.get('torch_version') or '') for rt in runtime))}; "
           f"python: {_esc(_span(str(p.get('python') or '') for p in prov))}",
           f"- platform: {_esc(_span(str(p.get('platform') or '') for p in prov))}",
           f"- crystalbench: {_esc(_span(str(p.get('crystalbench_version') or '') for p in prov))} at commit(s) "
           f"{_esc(_span(str(p.get('git_commit') or '')[:12] for p in prov))}",
           f"- model code (each record's `job.code`; a model whose code changed has records of both until "
           f"its re-runs supersede the older ones): {_esc(_model_code(records))}",
           f"- seeds: {_esc(_span(str(r.seed) for r in records))}; folds: {_esc(_span(str(r.fold) for r in records))}",
           ""]
    return out


def _model_code(records: list[ResultRecord]) -> str:
    """Per model, the code versions its records were made with and how many records each."""
    per: dict[str, Counter[str]] = {}
    for r in records:
        per.setdefault(r.model, Counter())[str(r.job.code.get("model") or "unknown").split(" ")[-1]] += 1
    return "; ".join(f"{m} " + ", ".join(f"{v} ({n})" for v, n in sorted(c.items())) for m, c in sorted(per.items()))


def _cell_text(c: Comparison | None) -> str:
    if c is None:
        return ""
    p = c.paper
    paper = _num(p.value) if p is not None and p.value is not None else "–"
    if c.interval is None:
        return f"– vs {paper}"
    iv = c.interval
    ours = _num(iv.mean) + (f" ± {iv.std:.2g}" if iv.std is not None and iv.n > 1 else "")
    off = OFF_MARK if is_off(c.ratio) else ""
    return f"{ours}{off} (n={iv.n}) vs {paper}"


def summary_markdown(report: PaperReport) -> str:
    """Table 1 at a glance: ours vs the paper per property and model, the models without records named.

    The README's paper table is this block, copied by `bench docs results`, so no number in it is typed.
    """
    rows = [c for c in report.rows if c.cell.section == SUMMARY_SECTION and c.cell.model in SUMMARY_MODELS
            and not c.cell.tuned and c.cell.protocol == "paper"]
    measured = [m for m in SUMMARY_MODELS if any(c.records for c in rows if c.cell.model == m)]
    by_row: dict[str, dict[str, Comparison]] = {}
    tasks: dict[str, str] = {}
    for c in rows:
        by_row.setdefault(c.cell.row, {})[c.cell.model] = c
        tasks.setdefault(c.cell.row, c.cell.task)
    head = ["property", "task", *measured, "data"]
    counted = [r for c in rows for r in c.records]
    runtime = [r.runtime for r in counted]
    out = [f"MAE/MAD on the test set, ours (mean ± std over n seeds) vs the paper's {SUMMARY_SECTION}; "
           f"{OFF_MARK}: more than {THRESHOLD:.0%} off, explained in docs/paper-results.md. GNNs: default recipe, "
           "untuned, mean pooling, 300 epochs; the paper's 60/20/20 random split, one per seed.", "",
           f"From {len(counted)} records in leaderboard/results: device {_esc(_span(rt.get('device', '') for rt in runtime))}, "
           f"{_esc(_span(str(rt.get('torch_threads')) for rt in runtime))} torch thread(s) per job, "
           f"torch {_esc(_span(str(rt.get('torch_version') or '') for rt in runtime))}, "
           f"{_esc(_span(str(r.provenance.get('platform') or '') for r in counted))}; "
           f"seeds {_esc(_span(str(r.seed) for r in counted))}.", "",
           "| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for row, cells in by_row.items():
        if not any(cells[m].records for m in measured if m in cells):
            continue
        any_cell = next(iter(cells.values()))
        relation = (any_cell.data_note.split(";")[0] if any_cell.data_note else "")
        vals = [row, tasks[row], *(_cell_text(cells.get(m)) for m in measured), relation]
        out.append("| " + " | ".join(_esc(v) for v in vals) + " |")
    missing = [m for m in SUMMARY_MODELS if m not in measured]
    unrun = sorted({r for r, cells in by_row.items() if not any(c.records for c in cells.values())})
    if missing or unrun:
        out.append("")
    if missing:
        out.append(f"Unmeasured models: {_esc(', '.join(missing))} (ALIGNN needs a GPU: "
                   f"bench run --suite paper-table1 -m alignn -m de-alignn --device cuda).")
    if unrun:
        out.append(f"Unmeasured rows: {_esc(', '.join(unrun))} (see docs/paper-results.md for why and the commands).")
    return "\n".join(out) + "\n"


def _deviation_lines(devs: list[Deviation]) -> list[str]:
    out = [f"## Cells more than {THRESHOLD:.0%} off the paper", "",
           "Each such cell with the ways our run of it differs from the paper's, read from the task's data notes, "
           "the cell's recipe and our interval (crystalbench/paper/deviations.py). They are candidate causes; "
           "the discussion below the generated part says which ones carry each gap.", ""]
    if not devs:
        return out + ["None.", ""]
    out += ["| table | row | model | ours | paper | ours/paper | why it can differ |", "|---|---|---|---|---|---|---|"]
    for d in devs:
        c = d.comparison
        why = "; ".join(d.reasons) or "no known difference: see the discussion"
        cells = [c.cell.section, c.cell.row, c.cell.display_model, fmt_interval(c.interval), _paper(c),
                 _num(c.ratio), why]
        out.append("| " + " | ".join(_esc(x) for x in cells) + " |")
    return out + [""]


def _sections(rows: Iterable[Comparison]) -> dict[str, list[Comparison]]:
    out: dict[str, list[Comparison]] = {}
    for c in rows:
        out.setdefault(c.cell.section, []).append(c)
    return out


def render_markdown(report: PaperReport | list[Comparison], *, include_missing: bool = False) -> str:
    """The report: a table per section (`include_missing`: every cell with its fill command), tests, importances."""
    if isinstance(report, list):
        report = PaperReport(report, [], [], False)
    lines = ["# Ours vs Gong et al. (2023) and Matbench v0.1", "", _INTRO]
    lines += _records_lines(report.records)
    if any(c.records for c in report.rows if c.cell.section == SUMMARY_SECTION):
        lines += [f"## Summary: {SUMMARY_SECTION}", "", summary_markdown(report)]
    for name, rows in _sections(report.rows).items():
        lines += _section(name, rows, include_missing)
    if report.paired:
        lines += _paired(report.paired)
    if report.importances:
        lines += _importance(report.importances, report.importance_available)
    if any(c.records for c in report.rows):
        lines += _deviation_lines(report.deviations)
    rows = report.rows
    lines.append(f"{len(rows)} cells: {sum(bool(c.records) for c in rows)} with records, "
                 f"{sum(c.paper is not None and c.paper.value is not None for c in rows)} with a printed value "
                 f"(crystalbench/paper/values.json; `{TUNED_SECTION}` repeats the Table 1/2 values).")
    return "\n".join(lines) + "\n"


def as_rows(rows: Iterable[Comparison]) -> list[dict[str, Any]]:
    """JSON-ready rows, one per cell."""
    out = []
    for c in rows:
        p, iv = c.paper, c.interval
        out.append({
            "table": c.cell.section, "row": c.cell.row, "task": c.cell.task, "model": c.cell.model,
            "display_model": c.cell.display_model, "protocol": c.cell.protocol, "metric": c.cell.metric,
            "configuration": c.configuration, "pins": c.cell.pins, "tuned": c.cell.tuned,
            "relation": p.relation if p else None, "paper": p.value if p else None, "ours": c.ours,
            "std": iv.std if iv else None, "ci95": [iv.low, iv.high] if iv and iv.low is not None else None,
            "records": c.n_records, "runs_wanted": c.wanted, "ratio": c.ratio, "verdict": c.verdict,
            "data": c.data_note, "not_counted": c.others, "stale": c.stale, "command": c.command, "more_seeds": c.more,
        })
    return out


def as_json(report: PaperReport) -> dict[str, Any]:
    """The whole report as one JSON object: rows, paired tests, rf importances."""
    return {
        "rows": as_rows(report.rows),
        "paired": [{"table": t.section, "task": t.task, "protocol": t.protocol, "metric": t.metric,
                    "comparison": t.what, "first": t.a.cell.display_model, "second": t.b.cell.display_model,
                    "n": t.test.n, "mean_first": t.test.mean_a, "mean_second": t.test.mean_b,
                    "mean_diff": t.test.mean_diff, "t_p": t.test.t_p, "wilcoxon_p": t.test.wilcoxon_p,
                    "unpaired": t.test.unpaired, "note": t.test.note} for t in report.paired],
        "deviations": [{"table": d.comparison.cell.section, "row": d.comparison.cell.row,
                        "model": d.comparison.cell.display_model, "ratio": d.comparison.ratio,
                        "reasons": list(d.reasons)} for d in report.deviations],
        "feature_importance": {"available": report.importance_available,
                               "tasks": [{"task": i.task, "records": i.n, "top": i.top, "command": i.command}
                                         for i in report.importances]},
    }
