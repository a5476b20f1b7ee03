"""`bench tune`: hyperparameter search with Optuna on the validation split, then one ordinary test run.

    spaces    search spaces: the paper's Tables S2/S3 or a TOML file, checked against a model's parameters
    study     the study driver (`tune`, `Study`): trials as ordinary jobs on a split carved from the
              training data, the final run on the real split
    pruning   the pruner and the per-epoch observer that consults it where a trial trains

A tool on top of the runtime: `crystalbench.runtime` never imports this package
(an import-linter contract in pyproject.toml); trials are observed epoch by epoch
through the runtime's generic observer option (`contract.telemetry`).
"""

from __future__ import annotations

from .spaces import PAPER_SPACES, Choice, Range, SearchSpace, load_space
from .study import Study, TuneRequest, TuneSummary, study_dir, tune

__all__ = ["Choice", "Range", "SearchSpace", "PAPER_SPACES", "load_space", "TuneRequest", "TuneSummary", "Study",
           "tune", "study_dir"]
