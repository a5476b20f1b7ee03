"""Markdown leaderboard built only from results files.

One table per headline metric (MAE/MAD and R^2 for regression, accuracy for
classification): tasks as rows, models as columns, mean +- std over folds and
seeds, best per task in bold. When a (model, task, protocol) was run with
several configurations (e.g. different --epochs) the most recent one is shown.
"""

from __future__ import annotations

import os
import tempfile
from collections import defaultdict
from datetime import datetime, timezone
from pathlib import Path
from typing import Iterable

from tabulate import tabulate

from ..harness.metrics import aggregate
from ..harness.results import ResultStore

__all__ = ["escape", "summarize", "render_markdown", "build_leaderboard"]

_SPECIAL = "\\`*_{}[]<>|~"  # what changes meaning inside a table cell

# (metric key, title, higher is better, task type)
TABLES = (
    ("mae_over_mad", "MAE/MAD (lower is better)", False, "regression"),
    ("r2", "R² (higher is better)", True, "regression"),
    ("accuracy", "Accuracy (higher is better)", True, "classification"),
)


def escape(text: str) -> str:
    """Escape markdown so model/task names (underscores, pipes) render literally."""
    return "".join("\\" + c if c in _SPECIAL else c for c in str(text))


def summarize(records: Iterable[dict]) -> dict[tuple[str, str, str], dict]:
    """(task, model, protocol) -> {"metrics": aggregate, "n": jobs, "task_info", "config"}."""
    groups: dict[tuple[str, str, str], dict[str, list[dict]]] = defaultdict(lambda: defaultdict(list))
    for rec in records:
        if rec.get("status") != "ok":
            continue
        groups[(rec["task"], rec["model"], rec["protocol"])][rec.get("config", "")].append(rec)
    out = {}
    for key, by_config in groups.items():
        latest = max(by_config, key=lambda c: max(r["provenance"].get("created", "") for r in by_config[c]))
        recs = by_config[latest]
        out[key] = {
            "metrics": aggregate(r["metrics"] for r in recs),
            "n": len(recs),
            "task_info": recs[0].get("task_info", {}),
            "config": latest,
            "configs": len(by_config),
        }
    return out


def _fmt(stat: dict | None) -> str:
    if not stat or stat.get("mean") is None:
        return "–"
    mean, std, n = stat["mean"], stat["std"], stat["n"]
    return f"{mean:.3f} ± {std:.3f}" if n > 1 else f"{mean:.3f}"


def render_markdown(records: Iterable[dict], title: str = "crystalbench leaderboard") -> str:
    summary = summarize(records)
    lines = [f"# {escape(title)}", ""]
    if not summary:
        lines.append("_No successful results yet._")
        return "\n".join(lines) + "\n"
    models = sorted({k[1] for k in summary})
    lines.append(
        f"Built {datetime.now(timezone.utc).strftime('%Y-%m-%d %H:%M UTC')} from {sum(v['n'] for v in summary.values())} "
        "result files. Cells: mean ± std over folds and seeds; best per task in **bold**."
    )
    for metric, heading, higher, task_type in TABLES:
        rows = []
        for task, protocol in sorted({(k[0], k[2]) for k in summary}):
            cells = {m: summary.get((task, m, protocol)) for m in models}
            present = {m: c for m, c in cells.items() if c and c["task_info"].get("task_type", "regression") == task_type}
            if not present:
                continue
            means = {m: c["metrics"].get(metric, {}).get("mean") for m, c in present.items()}
            valid = {m: v for m, v in means.items() if v is not None}
            best = (max if higher else min)(valid.values()) if valid else None
            info = next(iter(present.values()))["task_info"]
            unit = f" ({info['unit']})" if info.get("unit") else ""
            row = [escape(task), escape(protocol), escape(f"{info.get('target', '')}{unit}")]
            for m in models:
                c = present.get(m)
                text = _fmt(c["metrics"].get(metric)) if c else ""
                if c and best is not None and means.get(m) == best and len(valid) > 1:
                    text = f"**{text}**"
                row.append(text)
            rows.append(row)
        if rows:
            lines += ["", f"## {heading}", ""]
            lines.append(tabulate(rows, headers=["task", "protocol", "target"] + [escape(m) for m in models], tablefmt="github"))
    lines.append("")
    return "\n".join(lines)


def build_leaderboard(results_dir: Path, out: Path, title: str = "crystalbench leaderboard") -> Path:
    """Render the markdown for every record under results_dir and write it atomically."""
    text = render_markdown(ResultStore(results_dir).records(), title=title)
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=out.parent, prefix=".tmp-", suffix=".md")
    with os.fdopen(fd, "w") as fh:
        fh.write(text)
    os.replace(tmp, out)
    return out
