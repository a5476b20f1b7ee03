"""Capture what C libraries (spglib) print to the process's stderr, count it, summarise it once.

spglib writes warnings such as ``spglib: ssm_get_exact_positions failed`` straight
to file descriptor 2 from C, hundreds of times for a large dataset, burying the
progress display and the messages that matter. `capture_c_stderr` points fd 2
at a temporary file around a block, then hands back the lines: spglib's are
counted, anything else is written back to stderr unchanged.
"""

from __future__ import annotations

import os
import re
import sys
import tempfile
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

__all__ = ["NoiseCounter", "capture_c_stderr"]

_SPGLIB = re.compile(r"^\s*spglib\b|^\s*(Warning|WARNING).*spglib", re.IGNORECASE)


@dataclass
class NoiseCounter:
    """Counts of captured C-library lines, by a short normalised form."""

    counts: Counter[str] = field(default_factory=Counter)

    def add_text(self, text: str) -> str:
        """Count library noise in `text`; return the lines that are not noise."""
        keep = []
        for line in text.splitlines():
            if _SPGLIB.search(line):
                self.counts[re.sub(r"\d+", "N", line.strip())[:120]] += 1
            elif line.strip():
                keep.append(line)
        return "\n".join(keep) + ("\n" if keep else "")

    def merge(self, other: Counter[str]) -> None:
        self.counts.update(other)

    @property
    def total(self) -> int:
        return sum(self.counts.values())

    def summary(self, what: str) -> str | None:
        if not self.counts:
            return None
        common, _ = self.counts.most_common(1)[0]
        return (
            f"spglib printed {self.total} warning(s) while {what} (most often: {common!r}); these are symmetry-search "
            "retries, and values that could not be computed are reported as NaN"
        )


@contextmanager
def capture_c_stderr(counter: NoiseCounter) -> Iterator[None]:
    """Redirect fd 2 during the block; count library noise, pass other lines through."""
    fd = 2  # C libraries write to file descriptor 2 whatever Python's sys.stderr is
    try:
        saved = os.dup(fd)
    except OSError:
        yield
        return
    with tempfile.TemporaryFile(mode="w+b") as tmp:
        try:
            sys.stderr.flush()
        except (AttributeError, OSError, ValueError):
            pass
        os.dup2(tmp.fileno(), fd)
        try:
            yield
        finally:
            try:
                sys.stderr.flush()
            except (AttributeError, OSError, ValueError):
                pass
            os.dup2(saved, fd)
            os.close(saved)
            tmp.seek(0)
            rest = counter.add_text(tmp.read().decode(errors="replace"))
            if rest:
                os.write(fd, rest.encode())
