"""Static HTML leaderboard site from a collected `Summary` (the same one the markdown uses).

Layout (all links relative, so it works from ``file://`` and GitHub Pages, no server)::

    index.html            tasks x model configurations per metric, sortable, best in bold
    paper.html            descriptor-learnability bars (Fig. 2) and the pooling comparison (Table 2)
    tasks/<task>.html     summary, per-fold table, parity plot per model, residual histogram
    models/<model>.html   description, reference, plugin versions, configurations, tasks
    results/...           a copy of every shown result JSON (same layout as a results directory)
    assets/style.css, assets/plotly.min.js

Pages are written with the stdlib: every string from a record or plugin goes through `h`
(`html.escape`); file names come only from validated job names. Without pymatviz the site is
built without plots and each page says why.
"""

from __future__ import annotations

import math
import shutil
from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from html import escape as _html_escape
from pathlib import Path
from typing import Any
from urllib.parse import quote

from crystalbench.contract.enums import TaskType
from crystalbench.contract.errors import CrystalbenchError
from crystalbench.contract.metrics import Metric, metrics_for
from crystalbench.contract.store import OutputError, atomic_copy, atomic_write, is_regular_file
from crystalbench.runtime.results import ResultStore

from . import figures, plots
from .collect import STD_NOTE, Cell, Entry, Summary, fmt_num, fmt_stat, oneline, run_commands, run_fact_texts, std_key
from .markdown import (
    LEAK_MARK,
    LEAK_NOTE,
    NOTE_MARK,
    RECIPE_NOTE,
    TABLE_METRICS,
    best_columns,
    conflict_note,
    metric_heading,
)

__all__ = ["build_site", "check_site_dir", "h", "SITE_MARKER"]

# Marks a directory as a site this module wrote, so a rebuild may replace its pages (and nothing else).
SITE_MARKER = ".crystalbench-site"

CSS = """
body{font:15px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;margin:0;color:#1d232a;background:#fafbfc}
header{background:#1f3a5f;color:#fff;padding:.6em 1.5em}
header a{color:#fff;margin-right:1.2em;text-decoration:none;font-weight:600}
main{padding:1em 1.5em;max-width:1400px}
h1{font-size:1.5em;margin:.3em 0}h2{font-size:1.2em;margin-top:1.6em;border-bottom:1px solid #d0d7de}
table{display:block;max-width:100%;overflow-x:auto;border-collapse:collapse;margin:.6em 0;background:#fff;font-variant-numeric:tabular-nums}
th,td{border:1px solid #d0d7de;padding:.3em .6em;text-align:left;vertical-align:top}
th{background:#eef2f6}table.sortable th{cursor:pointer;user-select:none}
table.sortable th[data-dir=asc]::after{content:" \\25B2"}table.sortable th[data-dir=desc]::after{content:" \\25BC"}
td.num{text-align:right;white-space:nowrap}small,.muted{color:#57606a}
.note{background:#fff8c5;border:1px solid #d4a72c;padding:.4em .8em;margin:.6em 0}
.plots{display:grid;grid-template-columns:repeat(auto-fill,minmax(460px,1fr));gap:1em}
.plot{background:#fff;border:1px solid #d0d7de;min-height:420px}
pre{background:#f6f8fa;border:1px solid #d0d7de;padding:.6em;overflow-x:auto}
code{font-family:ui-monospace,SFMono-Regular,Menlo,monospace;font-size:.92em}
footer{padding:1em 1.5em;color:#57606a;font-size:.9em}
"""

# Click a header to sort; cells sort by data-sort (numbers) or text; empty cells stay last.
SORT_JS = """
(function(){
function key(td){if(!td)return null;var v=td.getAttribute("data-sort");
 if(v!==null&&v!==""&&!isNaN(parseFloat(v)))return parseFloat(v);var t=td.textContent.trim().toLowerCase();return t===""?null:t;}
document.querySelectorAll("table.sortable").forEach(function(t){
 var ths=t.tHead?t.tHead.rows[0].cells:[];
 Array.prototype.forEach.call(ths,function(th,i){th.addEventListener("click",function(){
  var asc=th.getAttribute("data-dir")!=="asc";
  Array.prototype.forEach.call(ths,function(x){x.removeAttribute("data-dir");});
  th.setAttribute("data-dir",asc?"asc":"desc");
  var body=t.tBodies[0],rows=Array.prototype.slice.call(body.rows);
  rows.sort(function(a,b){var x=key(a.cells[i]),y=key(b.cells[i]);
   if(x===null)return y===null?0:1;if(y===null)return -1;
   if(typeof x!==typeof y){x=String(x);y=String(y);}
   return (x<y?-1:x>y?1:0)*(asc?1:-1);});
  rows.forEach(function(r){body.appendChild(r);});});});});
})();
"""


def h(text: object, limit: int | None = 300) -> str:
    """Escape any value for HTML text or a quoted attribute (one line, `limit` characters)."""
    return _html_escape(oneline(text if isinstance(text, str) else str(text), limit), quote=True)


def _href(*parts: str) -> str:
    """A relative URL from path parts (each percent-encoded, so no part can leave its attribute)."""
    return "/".join(quote(p, safe="") if p not in ("..", ".") else p for p in parts)


def _a(href: str, text: str) -> str:
    return f'<a href="{href}">{text}</a>'


class _Site:
    """Writes one site; holds the summary, where each record's JSON copy lives, and whether plots work."""

    def __init__(self, summary: Summary, out: Path, title: str, models: Mapping[str, Mapping[str, Any]],
                 with_plots: bool) -> None:
        self.s, self.out, self.title, self.models = summary, out, title, models
        self.no_plots = None if with_plots else "plots switched off (--no-plots)"
        if self.no_plots is None:
            self.no_plots = plots.unavailable()
        self.record_href: dict[int, str] = {}
        self._div = 0

    # -- helpers
    def page(self, name: str, title: str, body: str, *, depth: int, plotly: bool = False) -> None:
        up = "../" * depth
        nav = _a(f"{up}index.html", "Leaderboard") + _a(f"{up}paper.html", "Paper figures")
        script = f'<script src="{up}assets/plotly.min.js"></script>' if plotly and self.no_plots is None else ""
        built = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
        text = (
            '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
            '<meta name="viewport" content="width=device-width,initial-scale=1">'
            f"<title>{h(title, 200)} · {h(self.title, 200)}</title>"
            f'<link rel="stylesheet" href="{up}assets/style.css">{script}</head>\n<body>'
            f"<header>{nav}</header>\n<main>\n<h1>{h(title, 200)}</h1>\n{body}\n</main>\n"
            f"<footer>{h(self.title, 200)} · built {built} by <code>bench leaderboard build --html</code> "
            f"from result files only.</footer>\n<script>{SORT_JS}</script>\n</body></html>\n"
        )
        atomic_write(self.out / name, text, fsync=False)

    def div_id(self) -> str:
        self._div += 1
        return f"plot{self._div}"

    def plot(self, make: Any, *args: Any, **kwargs: Any) -> str:
        """A plot's div, or a note saying why there is none (a plotting error never stops the site)."""
        if self.no_plots is not None:
            return f'<p class="note">No plot: {h(self.no_plots)}.</p>'
        try:
            return f'<div class="plot">{make(*args, div_id=self.div_id(), **kwargs)}</div>'
        except Exception as exc:  # noqa: BLE001 - odd predictions must not stop the site
            return f'<p class="note">Plot failed: {h(type(exc).__name__)}: {h(str(exc), 200)}</p>'

    def task_href(self, task: str, up: str) -> str:
        return up + _href("tasks", f"{task}.html")

    def model_href(self, model: str, up: str) -> str:
        return up + _href("models", f"{model}.html")

    def cell_html(self, cell: Cell | None, metric: Metric, bold: bool) -> str:
        if cell is None:
            return '<td class="num"></td>'
        stat = fmt_stat(cell.metrics.get(metric.key), metric, std_key(cell.protocol))
        mean = (cell.metrics.get(metric.key) or {}).get("mean")
        if stat is None:
            text, sort = "–", ""
        else:
            text = stat[0] + (f" ± {stat[1]}" if cell.n > 1 else "")
            text = f"<strong>{text}</strong>" if bold else text
            sort = repr(float(mean)) if isinstance(mean, (int, float)) else ""
        leak = f' <span title="target leak">{LEAK_MARK}</span>' if cell.leak else ""
        return (f'<td class="num" data-sort="{h(sort)}">{text} <small>n={h(cell.runs)}</small>{leak}</td>')

    # -- the results
    def copy_results(self) -> None:
        """Copy every shown record's JSON into results/ (the original bytes when its file is known)."""
        store = ResultStore(self.out / "results")
        for e in self.s.entries:
            dest = store.path(e.record.job)
            if e.path is not None and is_regular_file(Path(e.path)):
                atomic_copy(Path(e.path), dest)  # a full disk leaves no truncated copy
            else:
                atomic_write(dest, e.record.to_json(), fsync=False)
            self.record_href[id(e)] = "/".join(quote(p, safe="") for p in dest.relative_to(self.out).parts)

    # -- pages
    def metric_table(self, metric: Metric, up: str) -> str:
        rows = self.s.rows(metric.task_type)
        if not rows:
            return ""
        columns = [c for c in self.s.columns if any((t, p, c) in self.s.cells for t, p in rows)]
        head = "".join(f"<th>{_a(self.model_href(self.model_of(c), up), h(c))}</th>" for c in columns)
        body, leak, notes = [], False, []
        for task, protocol in rows:
            label = self.s.tasks[task]
            best = best_columns(self.s, task, protocol, metric)
            target = h(label.target) + (f" ({h(label.unit)})" if label.unit else "")
            if label.conflicts:
                target += f" {NOTE_MARK}"
                notes += [n for n in (conflict_note(c) for c in label.conflicts) if n not in notes]
            tds = "".join(self.cell_html(self.s.cells.get((task, protocol, c)), metric, c in best) for c in columns)
            leak = leak or any(getattr(self.s.cells.get((task, protocol, c)), "leak", False) for c in columns)
            body.append(f"<tr><td>{_a(self.task_href(task, up), h(task))}</td><td>{h(protocol)}</td>"
                        f"<td>{target}</td>{tds}</tr>")
        out = [f"<h2>{h(metric_heading(metric))}</h2>",
               f'<table class="sortable"><thead><tr><th>task</th><th>protocol</th><th>target</th>{head}</tr></thead>',
               "<tbody>" + "\n".join(body) + "</tbody></table>"]
        out += [f'<p class="muted">{h(LEAK_NOTE)}</p>'] if leak else []
        out += [f'<p class="muted">{NOTE_MARK} {h(n, 600)}</p>' for n in notes]
        return "\n".join(out)

    def model_of(self, column: str) -> str:
        for c in self.s.cells.values():
            if c.column == column:
                return c.model
        return column

    def index(self) -> None:
        s = self.s
        left = ([f"{s.n_failed} failed job(s) not shown"] if s.n_failed else []) + (
            [f"{s.n_invalid} invalid result file(s) skipped"] if s.n_invalid else []) + (
            [f"{len(s.duplicates)} further copies of already counted jobs left out"] if s.duplicates else []) + (
            [f"{s.superseded} older record(s) of a counted run left out (other data or code)"]
            if s.superseded else [])
        parts = [f"<p>{s.n_ok} successful result(s){' (' + h('; '.join(left)) + ')' if left else ''}. "
                 f"Cells: mean ± std over folds and seeds, <small>n=F×S</small> = F folds × S seeds; "
                 f"{h(STD_NOTE)}. Best per row in <strong>bold</strong>; {LEAK_MARK} target leak; {NOTE_MARK} records "
                 f"disagree. {h(RECIPE_NOTE)} Click a column header to sort.</p>"]
        if not s.cells:
            parts.append("<p><em>No successful results yet.</em></p>")
        parts += [self.metric_table(m, "") for m in TABLE_METRICS]
        warnings = sorted({(c.task, c.protocol, c.column, w) for c in s.cells.values() for w in c.warnings})
        if warnings:
            parts.append("<h2>Warnings</h2><ul>" + "".join(
                f"<li>{h(t)} · {h(p)} · {h(col)}: {h(w)}</li>" for t, p, col, w in warnings[:100]) + "</ul>")
        if s.skipped:
            parts.append("<h2>Skipped result files</h2><ul>" + "".join(
                f"<li><code>{h(p)}</code>: {h(why)}</li>" for p, why in s.skipped[:200]) + "</ul>")
        if s.duplicates:
            parts.append("<h2>Copies left out (each job counts once)</h2><ul>" + "".join(
                f"<li><code>{h(p)}</code>: job {h(job)}, counted from <code>{h(first)}</code></li>"
                for p, job, first in s.duplicates[:200]) + "</ul>")
        parts.append(self.footer_html())
        self.page("index.html", self.title, "\n".join(parts), depth=0)

    def footer_html(self) -> str:
        if not self.s.entries:
            return ""
        items = [f"<li>{h(key)}: {h(text, 600)}</li>" for key, text in run_fact_texts(self.s).items()]
        commands = "\n".join(h(c, None) for c in run_commands(self.s))
        return ("<h2>How these results were made</h2><p>Each command, pasted into a shell where the data is, "
                "recomputes its column (the same job ids); hyperparameters that differ from the model's recipe "
                f"follow as TOML on standard input:</p><pre><code>{commands}</code></pre>"
                f"<ul>{''.join(items)}</ul>")

    def task_page(self, task: str) -> None:
        label, up = self.s.tasks[task], "../"
        cells = [c for c in self.s.cells.values() if c.task == task]
        metrics = metrics_for(label.task_type)
        unit = label.unit
        parts = [f"<p>target <strong>{h(label.target)}</strong>{' (' + h(unit) + ')' if unit else ''}, "
                 f"{h(label.task_type)}.</p>"]
        parts += [f'<p class="note">{NOTE_MARK} {h(conflict_note(c), 600)}</p>' for c in label.conflicts]
        # summary per column
        head = "".join(f"<th>{h(m.label)}{' (' + h(unit) + ')' if m.in_units and unit else ''}</th>" for m in metrics)
        rows = []
        for c in sorted(cells, key=lambda c: (c.protocol, self.s.columns.index(c.column))):
            best_any = {m.key for m in metrics if m.key != "mad" and c.column in best_columns(self.s, task, c.protocol, m)}
            tds = "".join(self.cell_html(c, m, m.key in best_any) for m in metrics)
            rows.append(f"<tr><td>{_a(self.model_href(c.model, up), h(c.column))}</td><td>{h(c.protocol)}</td>{tds}</tr>")
        parts.append(f'<h2>Summary</h2><table class="sortable"><thead><tr><th>model</th><th>protocol</th>{head}'
                     f"</tr></thead><tbody>{''.join(rows)}</tbody></table>")
        # per fold and seed
        rows = []
        for c in sorted(cells, key=lambda c: (c.protocol, self.s.columns.index(c.column))):
            for e in c.entries:
                tds = "".join(self.value_td(e.metrics.get(m.key), m) for m in metrics)
                total = e.record.timings.get("total")
                secs = f"{total:.1f}" if isinstance(total, (int, float)) and math.isfinite(total) else ""
                link = _a(up + self.record_href[id(e)], "JSON") if id(e) in self.record_href else ""
                rows.append(f"<tr><td>{h(c.column)}</td><td>{h(e.protocol)}</td><td class=\"num\">{e.fold}</td>"
                            f'<td class="num">{e.seed}</td>{tds}<td class="num" data-sort="{h(secs)}">{secs}</td>'
                            f"<td>{link}</td></tr>")
        parts.append(f'<h2>Per fold and seed</h2><table class="sortable"><thead><tr><th>model</th><th>protocol</th>'
                     f"<th>fold</th><th>seed</th>{head}<th>time (s)</th><th>record</th></tr></thead>"
                     f"<tbody>{''.join(rows)}</tbody></table>")
        parts.append(self.task_plots(task, cells, label.task_type, unit))
        self.page(f"tasks/{task}.html", task, "\n".join(parts), depth=1, plotly=True)

    def value_td(self, value: float | None, metric: Metric) -> str:
        if value is None or not math.isfinite(value):
            return '<td class="num"></td>'
        return f'<td class="num" data-sort="{value!r}">{fmt_num(value, metric)}</td>'

    def task_plots(self, task: str, cells: list[Cell], task_type: str, unit: str) -> str:
        if task_type != TaskType.REGRESSION:
            return "<h2>Plots</h2><p class=\"muted\">Parity and residual plots are drawn for regression tasks only.</p>"
        parts = ["<h2>Parity plots</h2><p class=\"muted\">Test predictions of every fold and seed, pooled per "
                 "model configuration; colour: point density.</p>", '<div class="plots">']
        residuals: dict[str, list[float]] = {}
        for c in sorted(cells, key=lambda c: (c.protocol, self.s.columns.index(c.column))):
            y_true, y_pred = _predictions(c.entries)
            if not y_true:
                continue
            name = c.column + (f" · {c.protocol}" if len({x.protocol for x in cells}) > 1 else "")
            residuals[name] = [p - t for t, p in zip(y_true, y_pred, strict=True)]
            parts.append(self.plot(plots.parity, y_true, y_pred, title=f"{name} (n={c.runs})", unit=unit))
        parts.append("</div>")
        parts.append("<h2>Residuals</h2>")
        parts.append(self.plot(plots.residual_histogram, residuals, unit=unit) if residuals else
                     "<p class=\"muted\">No stored predictions.</p>")
        by_size: dict[str, tuple[list[int], list[float]]] = {}
        for c in sorted(cells, key=lambda c: (c.protocol, self.s.columns.index(c.column))):
            sizes, errors = _errors_by_size(c.entries)
            if sizes:
                name = c.column + (f" · {c.protocol}" if len({x.protocol for x in cells}) > 1 else "")
                by_size[name] = (sizes, errors)
        parts.append("<h2>Error vs number of atoms</h2>")
        parts.append(self.plot(plots.error_vs_size, by_size, unit=unit) if by_size else
                     "<p class=\"muted\">Not drawn: these records hold no per-structure atom counts "
                     "(composition-only data, or records written before atom counts were stored).</p>")
        return "\n".join(parts)

    def model_page(self, model: str) -> None:
        up = "../"
        cells = [c for c in self.s.cells.values() if c.model == model]
        info = self.models.get(model) or {}
        parts = []
        if info.get("description"):
            parts.append(f"<p>{h(info['description'], 600)}</p>")
        parts.append(f"<p>Reference: {h(info.get('reference') or 'not given by the plugin', 600)}</p>")
        versions: Counter[str] = Counter()
        for c in cells:
            for e in c.entries:
                plugin = (e.record.provenance.get("plugins") or {}).get("model") or {}
                versions[f"{plugin.get('name', '?')} {plugin.get('version', '?')}" if isinstance(plugin, dict) else "?"] += 1
        parts.append("<p>Plugin version in the records: " + h(", ".join(f"{v} ({n})" for v, n in sorted(versions.items())), 600)
                     + "</p>")
        configs: dict[tuple[tuple[str, str], ...], list[Cell]] = defaultdict(list)
        for c in cells:
            configs[tuple(sorted(c.settings.items()))].append(c)
        parts.append("<h2>Configurations</h2>")
        for i, (settings, group) in enumerate(sorted(configs.items()), 1):
            tasks = sorted({(c.task, c.protocol, c.column) for c in group})
            rows = "".join(f"<tr><td><code>{h(k)}</code></td><td><code>{h(v)}</code></td></tr>" for k, v in settings)
            links = ", ".join(f"{_a(self.task_href(t, up), h(t))} ({h(p)}, column {h(col)})" for t, p, col in tasks)
            parts.append(f"<h3>Configuration {i}</h3><p>Tasks: {links}</p>"
                         f"<table><thead><tr><th>setting</th><th>value</th></tr></thead><tbody>{rows}</tbody></table>")
        parts.append("<h2>Results</h2><ul>")
        for c in sorted(cells, key=lambda c: (c.task, c.protocol, c.column)):
            metric = TABLE_METRICS[0] if self.s.tasks[c.task].task_type == TaskType.REGRESSION else TABLE_METRICS[-1]
            stat = fmt_stat(c.metrics.get(metric.key), metric, std_key(c.protocol))
            value = f"{metric.label} {stat[0]} ± {stat[1]}" if stat else "–"
            files = ", ".join(_a(up + self.record_href[id(e)], f"fold {e.fold} seed {e.seed}")
                             for e in c.entries if id(e) in self.record_href)
            parts.append(f"<li>{_a(self.task_href(c.task, up), h(c.task))} · {h(c.protocol)} · {h(c.column)}: "
                         f"{h(value)} (n={h(c.runs)}) · records: {files}</li>")
        parts.append("</ul>")
        self.page(f"models/{model}.html", model, "\n".join(parts), depth=1)

    def paper_page(self) -> None:
        parts = ["<p>The analyses of Gong et al. (2023), <em>Sci. Adv.</em> 9, eadi3245, rebuilt from the result "
                 "files alone.</p>", "<h2>Descriptor learnability (Fig. 2)</h2>"]
        learn = figures.learnability(self.s)
        if not learn.tasks:
            parts.append("<p class=\"muted\">No <code>desc_*</code> regression results yet: "
                         "<code>bench run -m cgcnn -m alignn -m roost -t 'desc_*'</code>.</p>")
        else:
            parts.append(self.plot(plots.grouped_bars, learn.tasks, learn.series,
                                   title="R² per descriptor", yaxis="R² (test)"))
            head = "".join(f"<th>{h(col)}</th>" for col in learn.series)
            rows = []
            for i, task in enumerate(learn.tasks):
                tds = []
                for col, values in learn.series.items():
                    mean, std = values[i]
                    runs = learn.runs.get((task, col), "")
                    tds.append('<td class="num"></td>' if mean is None else
                               f'<td class="num" data-sort="{mean!r}">{mean:.3f} ± {std or 0.0:.3f} '
                               f"<small>n={h(runs)}</small></td>")
                rows.append(f"<tr><td>{_a(self.task_href(task, ''), h(task))}</td>{''.join(tds)}</tr>")
            parts.append(f'<table class="sortable"><thead><tr><th>descriptor task</th>{head}</tr></thead>'
                         f"<tbody>{''.join(rows)}</tbody></table>")
        parts.append("<h2>Pooling comparison (Table 2): MAE/MAD, lower is better</h2>")
        rows_p = figures.pooling(self.s)
        if not rows_p:
            tasks = ", ".join(t for pair in figures.POOLING_PROPERTIES.values() for t in pair)
            parts.append(f"<p class=\"muted\">No results on {h(tasks)} with a pooling setting yet: e.g. "
                         "<code>bench run -m cgcnn -t phonon_cv -t phonon_cv_per_atom --pooling mean</code> and "
                         "<code>bench run -m cgcnn -t phonon_cv --pooling sum</code>.</p>")
        else:
            head = "".join(f"<th>{h(v)}</th>" for v in figures.POOLING_VARIANTS)
            body: list[str] = []
            for row in rows_p:
                cells = "".join(f'<td class="num">{h(figures.pooling_cell_text(row.cells[v], row.others[v]))}</td>'
                                for v in figures.POOLING_VARIANTS)
                body.append(f"<tr><td>{h(row.prop)}</td><td>{_a(self.model_href(row.model, ''), h(row.model))}</td>"
                            f"{cells}</tr>")
            parts.append(f'<table class="sortable"><thead><tr><th>property</th><th>model</th>{head}</tr></thead>'
                         f"<tbody>{''.join(body)}</tbody></table>")
        self.page("paper.html", "Paper figures", "\n".join(parts), depth=0, plotly=True)

    def build(self) -> Path:
        (self.out / "assets").mkdir(parents=True, exist_ok=True)
        atomic_write(self.out / "assets" / "style.css", CSS.lstrip(), fsync=False)
        if self.no_plots is None:
            try:
                atomic_copy(plots.plotly_js(), self.out / "assets" / "plotly.min.js")
            except OSError as exc:
                self.no_plots = f"plotly.js could not be copied ({exc})"
        self.copy_results()
        for task in sorted({c.task for c in self.s.cells.values()}):
            self.task_page(task)
        for model in sorted({c.model for c in self.s.cells.values()}):
            self.model_page(model)
        self.paper_page()
        self.index()
        return self.out / "index.html"


def _predictions(entries: Iterable[Entry]) -> tuple[list[float], list[float]]:
    """Finite (y_true, y_pred) pairs of all runs, pooled."""
    y_true: list[float] = []
    y_pred: list[float] = []
    for e in entries:
        pred = e.record.predictions or {}
        for t, p in zip(pred.get("y_true") or [], pred.get("y_pred") or [], strict=False):
            if isinstance(t, (int, float)) and isinstance(p, (int, float)) and math.isfinite(t) and math.isfinite(p):
                y_true.append(float(t))
                y_pred.append(float(p))
    return y_true, y_pred


def _errors_by_size(entries: Iterable[Entry]) -> tuple[list[int], list[float]]:
    """(atoms per test cell, |prediction - truth|) of all runs that recorded atom counts, pooled."""
    sizes: list[int] = []
    errors: list[float] = []
    for e in entries:
        pred = e.record.predictions or {}
        n_atoms = pred.get("n_atoms") or []
        for n, t, p in zip(n_atoms, pred.get("y_true") or [], pred.get("y_pred") or [], strict=False):
            if (isinstance(n, int) and isinstance(t, (int, float)) and isinstance(p, (int, float))
                    and math.isfinite(t) and math.isfinite(p)):
                sizes.append(n)
                errors.append(abs(float(p) - float(t)))
    return sizes, errors


def check_site_dir(out: Path) -> Path:
    """`out` if a site may be written there: new, empty, or a previous site (never someone's other files)."""
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise CrystalbenchError(f"--html {out} is a file; give a directory such as site/")
    if out.is_dir() and any(out.iterdir()) and not (out / SITE_MARKER).is_file():
        raise CrystalbenchError(f"--html {out} is a non-empty directory that holds no crystalbench site; "
                                "give a new or empty directory (a previous site there is replaced)")
    return out


def _within(path: Path, folder: Path) -> bool:
    path, folder = path.resolve(strict=False), folder.resolve(strict=False)
    return path == folder or folder in path.parents


def build_site(summary: Summary, out: Path, *, title: str = "crystalbench leaderboard",
               models: Mapping[str, Mapping[str, Any]] | None = None, with_plots: bool = True) -> Path:
    """Write the site for `summary` into directory `out`; return its index.html.

    models: model name -> {"description", "reference"} from the plugin registry (optional).
    with_plots: False skips pymatviz (faster; pages say plots are off).
    """
    out = check_site_dir(out)
    for e in summary.entries:  # rebuilding a site from its own results/ would delete what it reads
        if e.path is not None and _within(Path(e.path), out):
            raise OutputError(f"--html {out} holds the result files this site is built from ({e.path}); "
                              "build it into another directory")
    if out.is_dir() and any(out.iterdir()):
        for sub in ("tasks", "models", "results"):  # stale pages/records of a previous build must not linger
            if (out / sub).is_dir():
                shutil.rmtree(out / sub)
    out.mkdir(parents=True, exist_ok=True)
    atomic_write(out / SITE_MARKER, "written by `bench leaderboard build --html`; rebuilt in place\n", fsync=False)
    return _Site(summary, out, title, models or {}, with_plots).build()
