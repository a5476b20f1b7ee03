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
# Plotly draws its toolbar (the "modebar") in the top-right corner of the top margin, where a long
# title used to run under it. Titles sit in a band of their own below it instead: the modebar takes
# the top ~32 px of the figure, the title the next ~30 px, and the plot starts below both.
_MODEBAR_PX = 34
_TOP_MARGIN = 80


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
    fig.update_layout(height=_HEIGHT, margin={"l": 60, "r": 20, "t": _TOP_MARGIN, "b": 50})
    fig.update_layout(title={"x": 0.0, "xanchor": "left", "xref": "container", "pad": {"l": 12},
                             "y": 1.0 - _MODEBAR_PX / _HEIGHT, "yanchor": "top", "yref": "container"})
    return str(fig.to_html(full_html=False, include_plotlyjs=False, div_id=div_id,
                           default_height=f"{_HEIGHT}px", config={"displaylogo": False}))


def parity(y_true: Sequence[float], y_pred: Sequence[float], *, title: str, unit: str, div_id: str) -> str:
    """Parity plot (pymatviz.density_scatter) coloured by relative point density, with the identity and a best-fit line."""
    import plotly.graph_objects as go
    import pymatviz as pmv

    x, y = np.asarray(y_true, dtype=float), np.asarray(y_pred, dtype=float)
    density = relative_density(x, y)
    order = np.argsort(density, kind="stable")  # densest points drawn last, on top
    x, y, density = x[order], y[order], density[order]
    suffix = f" ({unit})" if unit else ""
    # pymatviz 0.18's identity line asks plotly for the full figure, which needs kaleido with plotly>=6;
    # the line is drawn here from the data range instead, the best-fit line from the data themselves.
    # Its own kernel density fails on a constant predictor (see `relative_density`): it only draws here.
    fig = pmv.density_scatter(x=x, y=y, xlabel=_label(f"true{suffix}"), ylabel=_label(f"predicted{suffix}"),
                              density="empirical", n_bins=False, log_density=False, identity_line=False,
                              best_fit_line=False, stats=True)
    _colour_by_density(fig, density)
    lo, hi = float(min(x.min(), y.min())), float(max(x.max(), y.max()))
    fig.add_trace(go.Scatter(x=[lo, hi], y=[lo, hi], mode="lines", line={"dash": "dash", "color": "gray"},
                             name="y = x", showlegend=False, hoverinfo="skip"))
    if len(x) > 2 and float(np.ptp(x)) > 0:
        pmv.powerups.add_best_fit_line(fig, xs=x, ys=y)
    fig.update_layout(title=_label(title))
    return _div(fig, div_id)


def relative_density(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Each point's kernel density relative to the densest point (1.0), in standardized coordinates.

    Only the relative density means anything: the raw value depends on the units and the spread. It
    is computed here because pymatviz's own estimate breaks on the plots that matter most: a model
    predicting one constant value (the dummy) puts every point on a line, where the 2-D density
    diverges (its colour bar read "10T-40T") or scipy refuses the singular covariance. A constant
    axis is dropped, and points on one line (a perfect or a constant model) get the 1-D density along
    the true values.
    """
    from scipy.stats import gaussian_kde

    spread = [(v - v.mean()) / v.std() for v in (x, y) if len(v) > 2 and v.std() > 0]
    if not spread:
        return np.ones(len(x))
    try:
        raw = gaussian_kde(np.vstack(spread))(np.vstack(spread))
    except np.linalg.LinAlgError:  # collinear points: the density along the line
        raw = gaussian_kde(spread[0])(spread[0])
    return np.asarray(raw / raw.max(), dtype=float)


_FLOOR = 1e-3  # the lowest relative density the colour bar shows (sparser points take its colour)


def _colour_by_density(fig: Any, density: np.ndarray) -> None:
    """Colour the scatter points by `density` (relative, 0-1], logarithmically when it spans over two decades."""
    rel = np.clip(density, _FLOOR, 1.0)
    log = float(rel.min()) < 0.01
    bar: dict[str, Any] = {"title": {"text": "relative<br>density"}, "thickness": 15}
    if log:  # ticks at powers of ten, labelled as the plain fractions they are
        first = int(np.floor(np.log10(rel.min())))
        ticks = list(range(first, 1))
        bar |= {"tickvals": ticks, "ticktext": [f"{10.0 ** t:g}" for t in ticks]}
        fig.update_layout(coloraxis={"cmin": first, "cmax": 0, "colorbar": bar})
    else:
        bar |= {"tickformat": ".1f"}
        fig.update_layout(coloraxis={"cmin": 0, "cmax": 1, "colorbar": bar})
    (points,) = [t for t in fig.data if t.mode == "markers"]  # pymatviz draws one marker trace without facets
    points.marker.color = np.log10(rel) if log else rel
    points.customdata = rel[:, None]
    points.hovertemplate = ("true: %{x:.4g}<br>predicted: %{y:.4g}<br>relative density: %{customdata[0]:.2g}"
                            "<extra></extra>")


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
