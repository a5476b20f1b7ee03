"""Shared set-up of the reliability suite (issue #11): an installed copy of the test plugins and a `bench` runner.

`bench` pip-installs tests/plugins (toy tasks, the `sleepy` model, the observer,
the reliability plugin) into a temporary target that is put on PYTHONPATH of
every subprocess, exactly as a user's `pip install` registers a plugin. The
deliberately broken test plugins are disabled so that stderr holds only what a
case produces.

Every subprocess gets its own cache directory unless a test passes one, and the
tests never reach the network.
"""

from __future__ import annotations

import json
import subprocess
import time
from pathlib import Path

import pytest
from helpers import PLUGINS_DIR, bench_argv, env_with_site, pip_install_plugins


class Bench:
    """Runs `python -m crystalbench.cli` with the installed test plugins; checks CLI-error conventions."""

    def __init__(self, env: dict[str, str]) -> None:
        self.env = env

    def argv(self, *args: str) -> list[str]:
        return bench_argv(*args)

    def environ(self, **extra: str) -> dict[str, str]:
        env = dict(self.env)
        env.update({k: str(v) for k, v in extra.items()})
        return env

    def __call__(self, *args, env: dict[str, str] | None = None, check: int | None = None, cwd=None,
                 timeout: float = 300, **extra: str) -> subprocess.CompletedProcess:
        p = subprocess.run(self.argv(*args), env=self.environ(**extra) if env is None else env, cwd=cwd,
                           capture_output=True, text=True, timeout=timeout)
        if check is not None:
            assert p.returncode == check, f"exit {p.returncode} (expected {check})\nstdout:\n{p.stdout}\nstderr:\n{p.stderr}"
        return p

    def popen(self, *args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, **extra: str) -> subprocess.Popen:
        return subprocess.Popen(self.argv(*args), env=self.environ(**extra), stdout=stdout, stderr=stderr, text=True)

    @staticmethod
    def records(p: subprocess.CompletedProcess | str) -> list[dict]:
        """The `--json` summaries a run printed on stdout."""
        out = p if isinstance(p, str) else p.stdout
        return [json.loads(line) for line in out.splitlines() if line.strip()]

    @staticmethod
    def one_error(p: subprocess.CompletedProcess, *needles: str, code: int = 2) -> str:
        """Assert the user-facing error convention: exit `code`, exactly one `error:` line naming the
        culprit (every needle), no traceback. Returns that line."""
        report = f"exit {p.returncode}\nstdout:\n{p.stdout}\nstderr:\n{p.stderr}"
        assert p.returncode == code, report
        assert "Traceback" not in p.stderr and "Traceback" not in p.stdout, report
        errors = [line for line in p.stderr.splitlines() if line.startswith("error:")]
        assert len(errors) == 1, report
        for needle in needles:
            assert needle in errors[0], f"{needle!r} not in the error line\n{report}"
        return errors[0]

    @staticmethod
    def result_files(root: Path) -> list[Path]:
        """Record files under a results dir (not attempts, locks or temp files)."""
        root = Path(root)
        if not root.is_dir():
            return []
        return sorted(p for p in root.rglob("*.json") if not any(x.startswith(".") for x in p.relative_to(root).parts))

    @staticmethod
    def temp_files(root: Path) -> list[Path]:
        return sorted(Path(root).rglob(".tmp-*")) if Path(root).is_dir() else []

    @staticmethod
    def locks(root: Path) -> list[Path]:
        return sorted((Path(root) / ".locks").glob("*.lock"))

    @staticmethod
    def wait_for(predicate, timeout: float, interval: float = 0.05) -> bool:
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            if predicate():
                return True
            time.sleep(interval)
        return bool(predicate())

    @staticmethod
    def seeds(n: int) -> list[str]:
        return [a for s in range(n) for a in ("--seed", str(s))]


@pytest.fixture(scope="session")
def bench(tmp_path_factory) -> Bench:
    env = env_with_site(pip_install_plugins(tmp_path_factory, PLUGINS_DIR))
    env["CRYSTALBENCH_DISABLE_PLUGINS"] = "cbtest_broken_import,cbtest_broken_hook"
    env["CRYSTALBENCH_CACHE_DIR"] = str(tmp_path_factory.mktemp("bench-cache"))
    env["CRYSTALBENCH_THREADS"] = "1"
    env["PYTHONUNBUFFERED"] = "1"
    for var in [k for k in env if k.startswith("CBTEST_")]:
        env.pop(var)
    return Bench(env)

