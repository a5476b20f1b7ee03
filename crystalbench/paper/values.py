"""The paper's published numbers as data: `values.json` -> `PaperValue`s, checked for shape.

Only values someone has checked against the source are filled; the rest are
explicit `null` entries (shown as gaps, never guessed). An entry may pin the
configuration its number was measured with (`configuration`, e.g. Table 2's
`{"pooling": "sum"}`), and may say how our data relates to the paper's
(`data_relation`: paper, subset, substitute, generated) with a free `note`;
`compare: false` shows the printed value without comparing ours with it (a
printed row that cannot be what its label says), and `paper_mae` / `paper_mad`
/ `paper_unit` carry Table 2's MAE and MAD in the paper's units.
Unknown keys are ignored, so the file can grow without breaking the report.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from crystalbench.contract.errors import CrystalbenchError

__all__ = ["PaperValue", "paper_values", "VALUES_FILE", "RELATIONS"]

VALUES_FILE = Path(__file__).with_name("values.json")
RELATIONS = ("=", ">", "<")


@dataclass(frozen=True)
class PaperValue:
    """One published number (or claim: `relation` ">" / "<") and where it comes from."""

    table: str
    row: str
    task: str
    model: str
    protocol: str
    metric: str
    relation: str
    value: float | None
    unit: str = ""
    configuration: Mapping[str, Any] = field(default_factory=dict)
    data_relation: str = ""
    note: str = ""
    compare: bool = True
    paper_mae: float | None = None
    paper_mad: float | None = None
    paper_unit: str = ""


def _configuration(e: Mapping[str, Any]) -> dict[str, Any]:
    """The entry's pinned settings: `configuration` (or `config`), plus a top-level `pooling` shorthand."""
    raw = e.get("configuration", e.get("config")) or {}
    if not isinstance(raw, Mapping):
        raise ValueError(f"configuration of {e.get('table')} {e.get('row')} is not an object")
    out = {str(k): v for k, v in raw.items()}
    if e.get("pooling") is not None:
        out.setdefault("pooling", e["pooling"])
    return out


def _number(e: Mapping[str, Any], key: str) -> float | None:
    value = e.get(key)
    if value is not None and (isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value)):
        raise ValueError(f"{key} {value!r} of {e.get('table')} {e.get('row')} is not a number")
    return None if value is None else float(value)


def _entry(e: Mapping[str, Any]) -> PaperValue:
    value = _number(e, "value")
    relation = e.get("relation", "=")
    if relation not in RELATIONS:
        raise ValueError(f"relation {relation!r} is not =, > or <")
    return PaperValue(table=str(e["table"]), row=str(e["row"]), task=str(e["task"]), model=str(e["model"]),
                      protocol=str(e.get("protocol", "paper")), metric=str(e["metric"]), relation=relation,
                      value=value, unit=str(e.get("unit") or ""),
                      configuration=_configuration(e), data_relation=str(e.get("data_relation") or ""),
                      note=str(e.get("note") or ""), compare=e.get("compare", True) is not False,
                      paper_mae=_number(e, "paper_mae"), paper_mad=_number(e, "paper_mad"),
                      paper_unit=str(e.get("paper_unit") or ""))


def paper_values(path: Path = VALUES_FILE) -> list[PaperValue]:
    """The published values, checked for shape (a malformed file is one error line naming it)."""
    try:
        raw = json.loads(Path(path).read_text())
        return [_entry(e) for e in raw["entries"]]
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
        what = f"an entry lacks field {exc}" if isinstance(exc, KeyError) else str(exc)
        raise CrystalbenchError(f"paper values {path}: {what}") from None
