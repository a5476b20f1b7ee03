"""Plain helpers shared by the test modules (fixtures live in tests/conftest.py).

tests/conftest.py puts tests/ and tests/plugins on sys.path, so a test module
imports these as `from helpers import REPO_ROOT, bench_invoke, ...` and the test
plugin package as `from cbtest_plugins import toolkit`.
"""

from __future__ import annotations

import logging
import os
import shutil
import subprocess
import sys
import uuid
from pathlib import Path

from crystalbench.contract.context import Reporter

TESTS_DIR = Path(__file__).resolve().parent
REPO_ROOT = TESTS_DIR.parent
PLUGINS_DIR = TESTS_DIR / "plugins"  # the test plugin distribution (package cbtest_plugins)
TEST_DATA_DIR = TESTS_DIR / "data"  # small reference tables checked into the repo
EXAMPLE_PLUGIN_DIR = REPO_ROOT / "examples" / "crystalbench-example"  # the README's plugin
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")
# CI installs Chromium and sets this (.ci/run): there, a browser check may not skip
BROWSER_REQUIRED = bool(os.environ.get("CRYSTALBENCH_REQUIRE_BROWSER"))


def pip_install_plugins(tmp_path_factory, *sources: Path) -> Path:
    """pip-install the plugin distributions at `sources` (offline, no deps) into a fresh target dir; return it.

    Installs from copies: setuptools writes *.egg-info next to the sources, which would
    otherwise register the test plugins for every later in-process test.
    """
    target = tmp_path_factory.mktemp("site")
    src = tmp_path_factory.mktemp("src")
    copies = []
    for i, path in enumerate(sources):
        dest = src / f"{i}-{Path(path).name}"
        shutil.copytree(path, dest, ignore=shutil.ignore_patterns("*.egg-info", "build", "__pycache__"))
        copies.append(str(dest))
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--no-build-isolation", "--no-index",
         "--target", str(target), *copies],
        check=True, capture_output=True, text=True,
    )
    return target


def env_with_site(site: Path, base: dict[str, str] | None = None) -> dict[str, str]:
    """A copy of `base` (default os.environ) with `site` first on PYTHONPATH, as a user's `pip install` would."""
    env = dict(os.environ if base is None else base)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(site), env.get("PYTHONPATH", "")) if p)
    return env


def bench_argv(*args) -> list[str]:
    """The command line of `bench ARGS` run as a subprocess of this interpreter."""
    return [sys.executable, "-m", "crystalbench.cli", *map(str, args)]


def bench_process(*args, env: dict[str, str] | None = None, cwd=None, check: int | None = None,
                  timeout: float = 600) -> subprocess.CompletedProcess[str]:
    """Run `bench ARGS` in a subprocess; with `check`, assert that exit code (the report shows both streams)."""
    p = subprocess.run(bench_argv(*args), env=env, cwd=cwd, capture_output=True, text=True, timeout=timeout)
    if check is not None:
        assert p.returncode == check, f"exit {p.returncode}\nstdout:\n{p.stdout}\nstderr:\n{p.stderr}"
    return p


def bench_invoke(*args: str, env: dict[str, str] | None = None, catch_exceptions: bool = False) -> tuple[int, str]:
    """Run `bench ARGS` in this process (click's CliRunner); return (exit code, output).

    With catch_exceptions=True an uncaught exception other than SystemExit still fails the test
    (after the CLI's own error handling had its chance), instead of propagating raw.
    """
    from click.testing import CliRunner

    from crystalbench.cli import cli

    res = CliRunner().invoke(cli, list(args), env=env, catch_exceptions=catch_exceptions)
    if catch_exceptions:
        assert not isinstance(res.exception, Exception) or isinstance(res.exception, SystemExit), res.exception
    return res.exit_code, res.output


def recording_reporter() -> tuple[Reporter, list[str]]:
    """A Reporter whose messages land in a list, as the CLI prints them ("warning: ..."/"note: ...")."""
    logger = logging.getLogger(f"crystalbench.tests.{uuid.uuid4().hex}")
    logger.setLevel(logging.DEBUG)
    logger.propagate = False
    lines: list[str] = []

    class _Handler(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            prefix = "note: " if getattr(record, "note", False) else f"{record.levelname.lower()}: "
            lines.append(prefix + record.getMessage())

    logger.addHandler(_Handler())
    return Reporter(logger=logger), lines


def chromium(page: Path, profile: Path, *flags: str) -> str:
    """Open `page` in headless Chromium with `flags` (e.g. --dump-dom, --screenshot=...); its stdout."""
    assert CHROMIUM is not None, "CRYSTALBENCH_REQUIRE_BROWSER is set but no chromium binary is on PATH"
    p = subprocess.run([CHROMIUM, "--headless=new", "--no-sandbox", "--disable-gpu", "--no-first-run",
                        f"--user-data-dir={profile}", "--virtual-time-budget=5000", *flags, page.as_uri()],
                       capture_output=True, text=True, timeout=120)
    assert p.returncode == 0, p.stderr[-2000:]
    return p.stdout
