"""The site's plots read cleanly (issue #21 item 8): titles clear of plotly's toolbar, a meaningful density scale.

Checked on the HTML each plot function writes: the layout plotly.js receives is decoded from the
``Plotly.newPlot(...)`` call in the snippet.
"""

from __future__ import annotations

import json

import numpy as np
import pytest

from crystalbench.leaderboard import plots

pytestmark = pytest.mark.skipif(plots.unavailable() is not None, reason=str(plots.unavailable()))

MODEBAR_PX = 30  # plotly's toolbar: ~26 px of icons at the top of the figure
TITLE_PX = 22  # one line of title text at plotly's default size


def figure(snippet: str) -> tuple[list[dict], dict]:
    """(traces, layout) passed to Plotly.newPlot in a snippet from `plots`."""
    decoder, at = json.JSONDecoder(), snippet.index("Plotly.newPlot(") + len("Plotly.newPlot(")
    args = []
    for _ in range(3):  # div id, traces, layout
        while snippet[at] in " \n\t,":
            at += 1
        value, at = decoder.raw_decode(snippet, at)
        args.append(value)
    return args[1], args[2]


def snippets() -> dict[str, str]:
    rng = np.random.default_rng(0)
    y = rng.normal(5.0, 2.0, 300)
    long = "a configuration name long enough to run the whole width of the figure " * 2
    return {
        "parity": plots.parity(y, y + rng.normal(0, 0.3, 300), title=long, unit="A", div_id="p"),
        "residuals": plots.residual_histogram({long: rng.normal(0, 1, 300)}, unit="A", div_id="r"),
        "error_vs_size": plots.error_vs_size({long: ([2, 4, 4, 8], [0.1, 0.2, 0.3, 0.4])}, unit="A", div_id="e"),
        "bars": plots.grouped_bars(["desc_a", "desc_b"], {long: [(0.5, 0.1), (0.7, None)]}, title=long,
                                   yaxis="R²", div_id="b"),
    }


def test_titles_sit_below_the_toolbar_and_above_the_plot():
    for name, snippet in snippets().items():
        _, layout = figure(snippet)
        title, height, top = layout["title"], layout["height"], layout["margin"]["t"]
        assert title.get("yref") == "container" and title.get("yanchor") == "top", (name, title)
        title_top_px = (1.0 - title["y"]) * height
        assert title_top_px >= MODEBAR_PX, f"{name}: the title starts {title_top_px:.0f} px from the top, under the toolbar"
        assert title_top_px + TITLE_PX <= top, f"{name}: the title runs into the plot area (top margin {top} px)"


def test_a_constant_predictor_gets_a_readable_density_colour_bar():
    """The dummy's parity plot: all predictions on one line made the raw density diverge ("10T-40T")."""
    rng = np.random.default_rng(1)
    y_true = rng.normal(8.0, 3.0, 280)
    traces, layout = figure(plots.parity(y_true, np.full(280, 7.9), title="dummy", unit="A", div_id="d"))
    axis = layout["coloraxis"]
    bar = axis["colorbar"]
    assert "relative" in bar["title"]["text"]
    points = next(t for t in traces if t.get("mode") == "markers" and "customdata" in t)
    colors = points["marker"]["color"]
    values = np.asarray(colors if isinstance(colors, list) else plots_array(colors), dtype=float)
    assert axis["cmin"] <= values.min() and values.max() <= axis["cmax"] <= 1.0
    if "ticktext" in bar:  # log scale: labels are plain fractions of the densest point
        assert all(0 < float(t) <= 1 for t in bar["ticktext"])
    else:
        assert bar["tickformat"] == ".1f" and (axis["cmin"], axis["cmax"]) == (0, 1)


def plots_array(encoded: dict) -> np.ndarray:
    """plotly >= 6 stores numpy arrays as {"dtype", "bdata"} (base64)."""
    import base64

    return np.frombuffer(base64.b64decode(encoded["bdata"]), dtype=np.dtype(encoded["dtype"]))
