"""Our numbers next to the paper's: `bench report paper` (docs/report.md).

* `values`: the published values as data (`values.json`, each with its table, row
  and the configuration it was measured with); unchecked values are explicit gaps.
* `cells`: every cell of Tables 1 and 2, Figs. 2 and 3, the S2/S3 searches and the
  Matbench entries, with the pins a record must match and the exact `bench run`
  (or `bench tune`) command that fills it.
* `compare`: which validated records count for a cell (its configuration exactly,
  never a shortened run or a tuning trial), their 95% interval, the paired tests
  (GNN vs de-GNN, mean vs sum pooling) and rf's feature importances.
* `deviations`: for every cell more than 15% off the paper, the ways our run of
  it differs (data, recipe, noise), read from the task and the records.
* `render`: markdown (every string escaped), the Table 1 summary the README shows, and JSON.
"""

from __future__ import annotations

from .cells import PaperCell, build_cells, fill_command
from .compare import (
    Comparison,
    Deviation,
    PairedComparison,
    PaperReport,
    build_report,
    compare,
    deviations,
    paired_comparisons,
)
from .render import as_json, as_rows, render_markdown, summary_markdown
from .values import VALUES_FILE, PaperValue, paper_values

__all__ = [
    "PaperValue", "PaperCell", "Comparison", "PairedComparison", "PaperReport", "paper_values", "build_cells",
    "fill_command", "compare", "paired_comparisons", "build_report", "render_markdown", "as_rows", "as_json",
    "VALUES_FILE", "Deviation", "deviations", "summary_markdown",
]
