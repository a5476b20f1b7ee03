"""Why a measured cell is more than 15% off the paper: the factors that differ, each one checkable.

A number that differs from the paper is explained, never tuned until it matches
(the developers' brief). The explanation of a cell is the list of the ways our
run of it differs from the paper's, each read from data the harness holds, not
typed by hand:

* **data**: the task's `data_relation` is not "paper" (a subset, a substitute) or
  its size differs from the paper's by more than 5%; the task's own note says how.
* **recipe**: the paper's Table 1/2 GNN numbers come after its Table S2/S3
  hyperparameter searches; our cell runs the model's default recipe, untuned.
  The paper does not state its random forest's settings.
* **the paper's value**: its own note, where the transcription flags it (a MAD
  that cannot belong to our target, a ratio that disagrees with its MAE and MAD).
* **noise**: the paper's value lies inside our 95% interval over seeds (the gap
  is within split-to-split noise), or the cell has one run, so split noise is
  not quantified.

Every listed factor is a candidate cause, not a proof; the hand-written part of
docs/paper-results.md discusses the cells where they do not suffice.
"""

from __future__ import annotations

from crystalbench.contract.specs import ModelSpec, TaskSpec

from ..leaderboard.stats import Interval

__all__ = ["THRESHOLD", "is_off", "reasons"]

THRESHOLD = 0.15  # |ours/paper - 1| above this needs an explanation
_SIZE_TOLERANCE = 0.05
_GNN_TUNED_SECTIONS = ("Table 1", "Table 2")


def is_off(ratio: float | None, threshold: float = THRESHOLD) -> bool:
    """Whether ours/paper is more than `threshold` away from 1 (None: not comparable, never off)."""
    return ratio is not None and abs(ratio - 1.0) > threshold


def _data_reason(tspec: TaskSpec | None, relation: str) -> str | None:
    if tspec is None:
        return None
    relation = relation or tspec.data_relation
    size_off = bool(tspec.paper_count and tspec.size
                    and abs(tspec.size / tspec.paper_count - 1) > _SIZE_TOLERANCE)
    if relation in ("", "paper") and not size_off:
        return None
    parts = [f"data: {relation or 'other'}"]
    if tspec.paper_count and tspec.size:
        parts.append(f"{tspec.size:,} vs the paper's {tspec.paper_count:,} samples")
    text = ", ".join(parts)
    return f"{text} ({tspec.paper_data})" if tspec.paper_data else text


def _recipe_reason(spec: ModelSpec | None, model: str, section: str, tuned: bool) -> str | None:
    if spec is None:
        return None
    if model == "rf":
        return "recipe: the paper does not state its random forest's settings (ours: the rf recipe, docs/models.md)"
    if tuned or section not in _GNN_TUNED_SECTIONS or not spec.poolings:
        return None
    return ("recipe: untuned (our default recipe); the paper's GNN numbers come after its Table S2/S3 "
            "hyperparameter searches")


def _noise_reason(iv: Interval | None, paper_value: float | None) -> str | None:
    if iv is None or paper_value is None:
        return None
    if iv.n < 2 or iv.low is None or iv.high is None:
        return "noise: one run, split-to-split noise not quantified"
    if iv.low <= paper_value <= iv.high:
        return f"noise: the paper's value lies inside our 95% interval (n={iv.n})"
    return None


def reasons(*, model: str, section: str, tuned: bool, spec: ModelSpec | None, tspec: TaskSpec | None,
            data_relation: str, paper_value: float | None, iv: Interval | None,
            paper_note: str = "") -> tuple[str, ...]:
    """The factors in which our run of a cell differs from the paper's (empty: none we know of).

    model/section/tuned: the cell; spec/tspec: its model and task as registered;
    data_relation: the paper value's own data note (else the task's); iv: our interval;
    paper_note: the transcription's note on the printed value (crystalbench/paper/values.json).
    """
    found = (_data_reason(tspec, data_relation), _recipe_reason(spec, model, section, tuned),
             f"the paper's value: {paper_note}" if paper_note else None, _noise_reason(iv, paper_value))
    return tuple(r for r in found if r)
