"""RunContext: the settings of one `bench` invocation, handed to everything that needs them.

Task loaders, descriptor computation, model factories (through `ModelContext`)
and hooks receive this object instead of reading environment variables: the
CLI builds it once from flags (and the few documented environment defaults),
and nothing is passed back through `os.environ`.

Reporting goes through Python `logging` (logger "crystalbench"): `Reporter`
formats messages as the CLI has always shown them (`error:` / `warning:` /
`note:` lines on stderr) and `progress()` gives a tqdm bar on a terminal and a
periodic one-line progress message elsewhere (CI logs, nohup), so long work is
visible either way.
"""

from __future__ import annotations

import logging
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from crystalbench.contract import paths
from crystalbench.contract.store import Store

__all__ = ["RunContext", "Reporter", "Progress", "configure_logging", "LOGGER"]

LOGGER = "crystalbench"
log = logging.getLogger(LOGGER)


class _CliFormatter(logging.Formatter):
    PREFIX = {logging.ERROR: "error: ", logging.WARNING: "warning: ", logging.INFO: "", logging.DEBUG: "debug: "}

    def format(self, record: logging.LogRecord) -> str:
        prefix = self.PREFIX.get(record.levelno, "")
        msg = record.getMessage()
        if record.levelno == logging.INFO and getattr(record, "note", False):
            prefix = "note: "
        return prefix + msg


class _TqdmSafeHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """Writes through tqdm when a bar is active so messages do not tear it."""

    def emit(self, record: logging.LogRecord) -> None:
        try:
            from tqdm import tqdm

            tqdm.write(self.format(record), file=sys.stderr)
        except Exception:  # pragma: no cover - logging must never raise
            self.handleError(record)


def configure_logging(verbose: bool = False) -> None:
    """Install the CLI's stderr handler on the "crystalbench" logger (idempotent)."""
    logger = logging.getLogger(LOGGER)
    for h in list(logger.handlers):
        if getattr(h, "_crystalbench", False):
            logger.removeHandler(h)
    handler = _TqdmSafeHandler()
    handler._crystalbench = True  # type: ignore[attr-defined]
    handler.setFormatter(_CliFormatter())
    logger.addHandler(handler)
    logger.setLevel(logging.DEBUG if verbose else logging.INFO)
    logger.propagate = False


class Progress:
    """A progress display: tqdm on a terminal, periodic one-line log messages otherwise.

    Off a TTY a line like ``train cgcnn: 40/300 epochs (13%), 12.1 s elapsed, ETA 79 s``
    is logged at most every `interval` seconds, plus one at the end (never the same line
    twice). The ETA is elapsed time per item x items left, unless an `eta` estimator is
    given (a grid's jobs: per model, see `runtime.dispatch._Eta`); None from it shows no ETA.
    """

    def __init__(self, total: int | None, desc: str, *, enabled: bool, unit: str = "it", interval: float = 30.0,
                 eta: Callable[[], float | None] | None = None) -> None:
        self.total, self.desc, self.unit, self.interval = total, desc, unit, interval
        self.enabled = enabled
        self.n = 0
        self.postfix = ""
        self.eta = eta
        self._t0 = self._last = time.monotonic()
        self._logged: tuple[int, str] | None = None
        self._bar: Any = None
        if enabled and sys.stderr.isatty():
            from tqdm import tqdm

            # with an `eta` estimator, tqdm's own ETA (elapsed per item x items left) is left out: wrong
            # as soon as the items differ in cost (a GNN job after dummy ones); the estimate goes in the postfix
            fmt = "{desc}: {percentage:3.0f}%|{bar}| {n_fmt}/{total_fmt} [{elapsed}{postfix}]" if eta else None
            self._bar = tqdm(total=total, desc=desc, unit=unit, file=sys.stderr, leave=False, bar_format=fmt)

    def update(self, n: int = 1, postfix: str | None = None) -> None:
        self.n += n
        if postfix is not None:
            self.postfix = postfix
        if self._bar is not None:
            if postfix is not None or (self.eta is not None and n):
                self._bar.set_postfix_str(self._bar_postfix(), refresh=False)
            self._bar.update(n)
            return
        now = time.monotonic()
        if self.enabled and now - self._last >= self.interval:
            self._last = now
            self._log()

    def _bar_postfix(self) -> str:
        remaining = self.eta() if self.eta is not None and self.n != self.total else None
        return ", ".join(x for x in (self.postfix, f"ETA {remaining:.0f} s" if remaining is not None else "") if x)

    def _log(self) -> None:
        """Log the progress line, but not twice for the same count (the last update, then `close`)."""
        if self._logged != (self.n, self.postfix):
            self._logged = (self.n, self.postfix)
            log.info(self.line())

    def _remaining(self, elapsed: float) -> float | None:
        if not self.total or not self.n or self.n >= self.total:
            return None
        if self.eta is not None:
            return self.eta()
        return elapsed / self.n * (self.total - self.n)

    def line(self) -> str:
        elapsed = time.monotonic() - self._t0
        if self.total:
            pct = 100.0 * self.n / self.total
            eta = self._remaining(elapsed)
            eta_s = f", ETA {eta:.0f} s" if eta is not None else ""
            text = f"{self.desc}: {self.n}/{self.total} {self.unit} ({pct:.0f}%), {elapsed:.1f} s elapsed{eta_s}"
        else:
            text = f"{self.desc}: {self.n} {self.unit}, {elapsed:.1f} s elapsed"
        return text + (f" [{self.postfix}]" if self.postfix else "")

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()
            self._bar = None
        elif self.enabled and time.monotonic() - self._t0 >= self.interval:
            self._log()

    def __enter__(self) -> Progress:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


@dataclass
class Reporter:
    """Counts and emits user-facing messages; the one channel for notes, warnings and errors."""

    logger: logging.Logger = field(default_factory=lambda: logging.getLogger(LOGGER))
    warnings: int = 0
    errors: int = 0

    def note(self, msg: str) -> None:
        self.logger.info(msg, extra={"note": True})

    def info(self, msg: str) -> None:
        self.logger.info(msg)

    def warning(self, msg: str) -> None:
        self.warnings += 1
        self.logger.warning(msg)

    def error(self, msg: str) -> None:
        self.errors += 1
        self.logger.error(msg)


@dataclass(frozen=True)
class RunContext:
    """Where things live and how to run, for one invocation.

    data_dir: raw datasets (`--data-dir`, else $CRYSTALBENCH_DATA_DIR, else ~/.crystalbench/data).
    cache_dir: every on-disk cache (`--cache-dir`, else $CRYSTALBENCH_CACHE_DIR, else ~/.cache/crystalbench).
    results_dir: result records (`--results-dir`).
    jobs: worker processes for featurization and structure parsing.
    threads: torch intra-op threads per job (applied before every job, the first one included).
    device: torch device for models ("cpu", "cuda", "cuda:1").
    progress: show progress (bars on a terminal, periodic lines elsewhere).
    debug: re-raise the first failure with its traceback (`bench run --debug`).
    options: free-form extra settings from the CLI/config, for plugins that document keys.
    """

    data_dir: Path = field(default_factory=paths.data_dir)
    cache_dir: Path = field(default_factory=paths.cache_dir)
    results_dir: Path = paths.DEFAULT_RESULTS_DIR
    jobs: int = 1
    threads: int = 1
    device: str = "cpu"
    progress: bool = False
    debug: bool = False
    reporter: Reporter = field(default_factory=Reporter, compare=False, repr=False)
    options: dict[str, Any] = field(default_factory=dict, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "data_dir", Path(self.data_dir).expanduser())
        object.__setattr__(self, "cache_dir", Path(self.cache_dir).expanduser())
        object.__setattr__(self, "results_dir", Path(self.results_dir).expanduser())

    def cache(self, namespace: str, version: str | int = 1) -> Store:
        """The cache `Store` of one family under this context's cache_dir."""
        return Store(self.cache_dir, namespace, version)

    def progress_bar(self, total: int | None, desc: str, unit: str = "it",
                     eta: Callable[[], float | None] | None = None) -> Progress:
        """A `Progress` display; `eta` estimates the seconds left (None: unknown) when items differ in cost."""
        return Progress(total, desc, enabled=self.progress, unit=unit, eta=eta)

    def with_(self, **changes: Any) -> RunContext:
        return replace(self, **changes)

    def iter_progress(self, items: list[Any], desc: str, unit: str = "it") -> Iterator[Any]:
        with self.progress_bar(len(items), desc, unit) as bar:
            for item in items:
                yield item
                bar.update(1)
