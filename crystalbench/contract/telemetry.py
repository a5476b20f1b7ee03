"""Per-epoch reports from a training loop to whoever runs the job (e.g. `bench tune`'s pruner).

A model plugin never sees the tuner: the shared training loop calls `report_epoch`
after each validation, and the stage that runs the job installs an observer for
the duration of ``model.fit`` (`observing_epochs`). With no observer installed the
call is a no-op, so plugins that use the shared loop get pruning for free and
third-party loops may call `report_epoch` themselves (documented in docs/plugins.md).

A context variable rather than a parameter: the observer must cross the plugin's
``fit`` without the plugin passing it along, and it must be per job, also when one
process runs several jobs.

Who observes is asked for generically, by name, through the run's options: a tool
that runs jobs (`crystalbench.tune`, a live plot) adds an *observer recipe* with
`with_epoch_observer(options, "package.module:factory", config)`, and the stage that
runs each job builds the observers of its options (`epoch_observer`) by importing
the named factory and calling ``factory(job_id, config)``. Options travel to worker
processes and Ray tasks with the `RunContext` as plain data, so a job is observed
wherever it trains; and the runtime imports no tool: it only knows the recipe's
module path (the harness never imports `crystalbench.tune`, see pyproject's
import-linter contracts).
"""

from __future__ import annotations

import contextlib
import importlib
from collections.abc import Callable, Iterator, Mapping
from contextvars import ContextVar
from typing import Any

from crystalbench.contract.errors import CrystalbenchError

__all__ = ["EpochObserver", "ObserverFactory", "OBSERVERS_OPTION", "observing_epochs", "report_epoch",
           "epoch_observer", "with_epoch_observer"]

EpochObserver = Callable[[int, float], bool]
"""Called with (1-based epoch, validation metric: MAE for regression, accuracy for classification);
returns True when training should stop now (e.g. a pruned tuning trial)."""

ObserverFactory = Callable[[str, Mapping[str, Any]], "EpochObserver | None"]
"""``factory(job_id, config) -> EpochObserver | None`` (None: this job is not observed), named in an
observer recipe as "package.module:function" and called where the job runs."""

OBSERVERS_OPTION = "epoch_observers"
"""The `RunContext.options` key holding the run's observer recipes: a list of
``{"factory": "package.module:function", "config": {...}}`` (plain, picklable data)."""

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


def with_epoch_observer(options: Mapping[str, Any], factory: str, config: Mapping[str, Any]) -> dict[str, Any]:
    """A copy of a run's `options` that also asks for the observer `factory` ("package.module:function")
    with `config` (plain data: it travels to workers with the options)."""
    module, _, name = factory.partition(":")
    if not module or not name:
        raise CrystalbenchError(f"epoch observer {factory!r}: name it as 'package.module:function'")
    recipes = [*(options.get(OBSERVERS_OPTION) or []), {"factory": factory, "config": dict(config)}]
    return {**options, OBSERVERS_OPTION: recipes}


def _build(recipe: Mapping[str, Any], job_id: str) -> EpochObserver | None:
    module, _, name = str(recipe.get("factory", "")).partition(":")
    try:
        factory = getattr(importlib.import_module(module), name)
    except (ImportError, AttributeError, ValueError) as exc:
        raise CrystalbenchError(f"epoch observer {recipe.get('factory')!r} cannot be imported here: "
                                f"{type(exc).__name__}: {exc}") from None
    return factory(job_id, recipe.get("config") or {})  # type: ignore[no-any-return]


def epoch_observer(job_id: str, options: Mapping[str, Any]) -> EpochObserver | None:
    """The observer a run's options ask for, for one job (None: none); several recipes: every one is
    told each epoch, and training stops when any of them says so."""
    recipes = options.get(OBSERVERS_OPTION)
    if not isinstance(recipes, list):
        return None
    observers = [o for o in (_build(r, job_id) for r in recipes if isinstance(r, Mapping)) if o is not None]
    if not observers:
        return None
    if len(observers) == 1:
        return observers[0]

    def every(epoch: int, value: float) -> bool:
        return any([o(epoch, value) for o in observers])  # a list: each observer sees every epoch

    return every
