"""Per-epoch reports from a training loop to whoever runs the job (today: `bench tune`'s pruner).

A model plugin never sees the tuner: the shared training loop calls `report_epoch`
after each validation, and the stage that runs the job installs an observer for
the duration of ``model.fit`` (`observing_epochs`). With no observer installed the
call is a no-op, so plugins that use the shared loop get pruning for free and
third-party loops may call `report_epoch` themselves (documented in docs/plugins.md).

A context variable rather than a parameter: the observer must cross the plugin's
``fit`` without the plugin passing it along, and it must be per job, also when one
process runs several jobs.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from contextvars import ContextVar

__all__ = ["EpochObserver", "observing_epochs", "report_epoch"]

EpochObserver = Callable[[int, float], bool]
"""Called with (1-based epoch, validation metric: MAE for regression, accuracy for classification);
returns True when training should stop now (e.g. a pruned tuning trial)."""

_observer: ContextVar[EpochObserver | None] = ContextVar("crystalbench_epoch_observer", default=None)


@contextlib.contextmanager
def observing_epochs(observer: EpochObserver | None) -> Iterator[None]:
    """Install `observer` for the block (None: nothing is installed)."""
    token = _observer.set(observer)
    try:
        yield
    finally:
        _observer.reset(token)


def report_epoch(epoch: int, value: float) -> bool:
    """Tell the observer (if any) one epoch's validation metric; True means: stop training now."""
    observer = _observer.get()
    return bool(observer is not None and observer(epoch, value))


def epoch_observer(job_id: str, options: dict[str, object]) -> EpochObserver | None:
    """The observer a run's options ask for, for one job (None: none).

    `bench tune` puts its study's address and the job -> trial map in
    ``RunContext.options["tuning"]``; options travel to worker processes and Ray
    tasks with the context, so trials are pruned wherever they train.
    """
    spec = options.get("tuning")
    if not isinstance(spec, dict):
        return None
    from .tuning import pruning_observer  # lazy: tuning imports the stages, which import this module

    return pruning_observer(job_id, spec)
