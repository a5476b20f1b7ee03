"""Where data, caches and results live, each overridable by flag or env var."""

from __future__ import annotations

import os
from pathlib import Path

DATA_ENV = "CRYSTALBENCH_DATA_DIR"
CACHE_ENV = "CRYSTALBENCH_CACHE_DIR"
DEFAULT_RESULTS_DIR = Path("results")


def data_dir(explicit: str | os.PathLike | None = None) -> Path:
    """--data-dir, else $CRYSTALBENCH_DATA_DIR, else ~/.crystalbench/data."""
    if explicit:
        return Path(explicit).expanduser()
    env = os.environ.get(DATA_ENV)
    if env:
        return Path(env).expanduser()
    return Path.home() / ".crystalbench" / "data"


def cache_dir(explicit: str | os.PathLike | None = None) -> Path:
    """--cache-dir, else $CRYSTALBENCH_CACHE_DIR, else ~/.cache/crystalbench (created)."""
    if explicit:
        p = Path(explicit).expanduser()
    elif os.environ.get(CACHE_ENV):
        p = Path(os.environ[CACHE_ENV]).expanduser()
    else:
        p = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "crystalbench"
    p.mkdir(parents=True, exist_ok=True)
    return p
