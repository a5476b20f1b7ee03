"""`bench`: the command line, one module per command group.

The CLI is the application layer: it builds one `RunContext` from flags, loads
the registry with it, and calls the harness. It is the only place that turns a
`CrystalbenchError` into one `error:` line with exit code 2 (no traceback); a
failed job makes exit code 1 after the rest of the grid has run.
"""

from __future__ import annotations

from . import data, docs, export, leaderboard, listing, plugin, report, results, run, tune  # noqa: F401  (each attaches its commands to `cli`)
from .main import cli, main

__all__ = ["cli", "main"]
