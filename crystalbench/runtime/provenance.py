"""Where a result came from: code version, plugin versions, data checksums."""

from __future__ import annotations

import platform
import subprocess
import sys
from functools import cache, lru_cache
from importlib import metadata
from pathlib import Path

from crystalbench.contract.version import __version__

__all__ = ["environment", "git_commit", "package_version"]

_PACKAGES = ("numpy", "scikit-learn", "pymatgen", "matminer", "torch", "torch-geometric", "alignn", "aviary-models")


@cache
def package_version(dist: str) -> str | None:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return None


@lru_cache(maxsize=1)
def git_commit() -> str | None:
    """Commit of the crystalbench source tree (with '+dirty' if modified), or None if not a checkout."""
    src = Path(__file__).resolve().parents[2]
    try:
        head = subprocess.run(
            ["git", "-C", str(src), "rev-parse", "HEAD"], capture_output=True, text=True, timeout=10
        )
        if head.returncode != 0:
            return None
        dirty = subprocess.run(
            ["git", "-C", str(src), "status", "--porcelain", "--untracked-files=no"],
            capture_output=True, text=True, timeout=10,
        )
        return head.stdout.strip() + ("+dirty" if dirty.stdout.strip() else "")
    except (OSError, subprocess.SubprocessError):
        return None


def environment() -> dict:
    return {
        "crystalbench_version": __version__,
        "git_commit": git_commit(),
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "packages": {p: v for p in _PACKAGES if (v := package_version(p))},
    }
