"""Pruning of tuning trials: the pruner, and the per-epoch observer that consults it where a trial trains.

`crystalbench.tune.study` asks the runtime to observe its trial jobs by naming
`pruning_observer` in the run's options (`harness.telemetry.with_epoch_observer`);
the stage that runs each job imports this module by that name, in whichever
process or Ray task the job trains. This module therefore imports neither the
runner nor the study driver: a worker loads only Optuna and this file.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from typing import Any

from crystalbench.contract.errors import BadInputError

__all__ = ["OBSERVER", "make_pruner", "pruning_observer"]

OBSERVER = f"{__name__}:pruning_observer"
"""The observer recipe's factory name (`harness.telemetry.with_epoch_observer`)."""


def make_pruner(kind: str) -> Any:
    """Optuna's pruner for `kind`: "median" (after 2 finished trials, from epoch 5 on) or "none"."""
    import optuna

    if kind == "median":
        return optuna.pruners.MedianPruner(n_startup_trials=2, n_warmup_steps=5)
    if kind == "none":
        return optuna.pruners.NopPruner()
    raise BadInputError(f"unknown pruner {kind!r}; choose median or none")


def pruning_observer(job_id: str, config: Mapping[str, Any]) -> Callable[[int, float], bool] | None:
    """The per-epoch observer of one trial job (see `harness.telemetry`): report to the study, stop if pruned.

    `config`: the study's storage address and name, the pruner kind and the map of
    trial job ids to Optuna trial ids (a job of the run that is not a trial: None).
    Runs wherever the trial trains (this process, a worker, a Ray task): the study is
    reopened from its storage address, so the pruner sees every trial's curve so far.
    """
    trial_id = (config.get("trials") or {}).get(job_id)
    if trial_id is None:
        return None
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.load_study(study_name=str(config["study"]), storage=str(config["storage"]),
                              pruner=make_pruner(str(config.get("pruner", "median"))))
    trial = optuna.trial.Trial(study, int(trial_id))

    def observe(epoch: int, value: float) -> bool:
        if not math.isfinite(value):
            return False
        trial.report(value, epoch)
        return bool(trial.should_prune())

    return observe
