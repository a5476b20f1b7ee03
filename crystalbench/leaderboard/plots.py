"""Plots for the HTML site, drawn with pymatviz (on plotly), returned as HTML ``<div>`` snippets.

pymatviz is the optional extra ``plots``; `unavailable()` says why plots cannot be drawn so
the site is built without them (and says so) instead of failing. Every snippet is made with
``include_plotlyjs=False``: the site ships one copy of plotly.js (`plotly_js`) so pages work
from ``file://`` without a network. Labels from records are HTML-escaped here because plotly
renders titles as pseudo-HTML; plotly itself escapes ``<`` in the JSON it embeds.
"""

from __future__ import annotations

import html
import importlib.util
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["unavailable", "plotly_js", "parity", "residual_histogram", "error_vs_size", "grouped_bars"]

_HEIGHT = 420


def unavailable() -> str | None:
    """None when pymatviz and plotly can draw; otherwise the reason, for the pages to show."""
    missing = [name for name in ("pymatviz", "plotly") if importlib.util.find_spec(name) is None]
    if missing:
        return f"plots need {' and '.join(missing)} (pip install 'crystalbench[plots]')"
    return None


def plotly_js() -> Path:
    """The installed plotly package's own minified plotly.js (copied once into the site)."""
    import plotly

    path = Path(plotly.__file__).parent / "package_data" / "plotly.min.js"
    if not path.is_file():
        raise FileNotFoundError(f"plotly.min.js not found in the plotly package at {path.parent}")
    return path


def _label(text: object) -> str:
    return html.escape(str(text)[:120])


def _div(fig: Any, div_id: str) -> str:
    fig.update_layout(height=_HEIGHT, margin={"l": 60, "r": 20, "t": 50, "b": 50})
    return str(fig.to_html(full_html=False, include_plotlyjs=False, div_id=div_id,
                           default_height=f"{_HEIGHT}px", config={"displaylogo": False}))


def parity(y_true: Sequence[float], y_pred: Sequence[float], *, title: str, unit: str, div_id: str) -> str:
    """Density-coloured parity plot (pymatviz.density_scatter) with the identity and a best-fit line."""
    import plotly.graph_objects as go
    import pymatviz as pmv

    x, y = np.asarray(y_true, dtype=float), np.asarray(y_pred, dtype=float)
    suffix = f" ({unit})" if unit else ""
    # pymatviz 0.18's identity line asks plotly for the full figure, which needs kaleido with plotly>=6;
    # the line is drawn here from the data range instead, the best-fit line from the data themselves.
    fig = pmv.density_scatter(x=x, y=y, xlabel=_label(f"true{suffix}"), ylabel=_label(f"predicted{suffix}"),
                              identity_line=False, best_fit_line=False, stats=True)
    lo, hi = float(min(x.min(), y.min())), float(max(x.max(), y.max()))
    fig.add_trace(go.Scatter(x=[lo, hi], y=[lo, hi], mode="lines", line={"dash": "dash", "color": "gray"},
                             name="y = x", showlegend=False, hoverinfo="skip"))
    if len(x) > 2 and float(np.ptp(x)) > 0:
        pmv.powerups.add_best_fit_line(fig, xs=x, ys=y)
    fig.update_layout(title=_label(title))
    return _div(fig, div_id)


def residual_histogram(residuals: Mapping[str, Sequence[float]], *, unit: str, div_id: str) -> str:
    """Overlaid histograms of prediction − truth per model configuration (pymatviz.histogram)."""
    import pymatviz as pmv

    data = {_label(k): np.asarray(v, dtype=float) for k, v in residuals.items() if len(v)}
    n = max(len(v) for v in data.values())
    fig = pmv.histogram(data, bins=int(min(60, max(10, np.sqrt(n)))), bin_width=1.0)
    fig.update_layout(title="Residuals (predicted − true)", barmode="overlay",
                      xaxis_title=_label(f"residual ({unit})" if unit else "residual"), yaxis_title="count")
    fig.update_traces(opacity=0.6)
    return _div(fig, div_id)


def error_vs_size(series: Mapping[str, tuple[Sequence[int], Sequence[float]]], *, unit: str, div_id: str) -> str:
    """Mean absolute error per number of atoms in the cell, one line per model configuration (points: counts)."""
    import plotly.graph_objects as go
    import pymatviz as pmv

    fig = go.Figure(layout={"template": pmv.pmv_white_template} if hasattr(pmv, "pmv_white_template") else None)
    for name, (sizes, errors) in series.items():
        n = np.asarray(sizes, dtype=int)
        err = np.asarray(errors, dtype=float)
        xs = np.unique(n)
        means = [float(err[n == x].mean()) for x in xs]
        counts = [int((n == x).sum()) for x in xs]
        fig.add_scatter(x=xs.tolist(), y=means, mode="lines+markers", name=_label(name),
                        text=[f"{c} structure(s)" for c in counts], hovertemplate="%{x} atoms: %{y:.4g} (%{text})")
    fig.update_layout(title="Absolute error vs atoms in the cell", xaxis_title="atoms in the cell",
                      yaxis_title=_label(f"mean |error| ({unit})" if unit else "mean |error|"))
    return _div(fig, div_id)


def grouped_bars(groups: Sequence[str], series: Mapping[str, Sequence[tuple[float | None, float | None]]], *,
                 title: str, yaxis: str, div_id: str) -> str:
    """Grouped bars with error bars: one group per x label, one bar per series ((mean, std) per group)."""
    import plotly.graph_objects as go
    import pymatviz as pmv

    fig = go.Figure(layout={"template": pmv.pmv_white_template} if hasattr(pmv, "pmv_white_template") else None)
    x = [_label(g) for g in groups]
    for name, values in series.items():
        means = [m for m, _ in values]
        stds = [s if s is not None else 0.0 for _, s in values]
        fig.add_bar(name=_label(name), x=x, y=means, error_y={"type": "data", "array": stds, "visible": True})
    fig.update_layout(title=_label(title), barmode="group", yaxis_title=_label(yaxis), xaxis_tickangle=-40)
    return _div(fig, div_id)
