"""Docs that cannot drift from behaviour (issue #21 items 7 and 9).

- every `from crystalbench... import X` in a code block of README.md or docs/*.md imports, and every
  dotted `crystalbench.x.y` name the text shows in backticks resolves;
- the types the plugin page says a plugin imports from `crystalbench`, and the spec types its hooks
  return, are importable from `crystalbench` itself;
- every fenced command block preceded by the marker line `<!-- runnable -->` runs and exits 0 (only cheap
  blocks carry it: `bench list ...`, `bench plugins`, `bench data status`, `bench docs params --check`);
- a few claims the docs make about behaviour: `bench list tasks` has the licence column docs/data.md
  promises, the site's error-vs-atoms plot is described as drawn, `ModelSpec.reference` is documented, and
  the README's test command shows progress in CI logs and states its duration.
"""

from __future__ import annotations

import dataclasses
import importlib
import os
import re
import shlex
import subprocess
from pathlib import Path

import pytest
from helpers import REPO_ROOT

import crystalbench
from crystalbench.contract.specs import ModelSpec

DOCS = sorted((REPO_ROOT / "docs").glob("*.md")) + [REPO_ROOT / "README.md"]
RUNNABLE = "<!-- runnable -->"
FENCE = re.compile(r"^```(\w*)\s*$")
IMPORT = re.compile(r"^\s*from\s+(crystalbench(?:\.\w+)*)\s+import\s+(\([^)]*\)|[^\n]+)", re.M)
DOTTED = re.compile(r"`(crystalbench(?:\.\w+)+)")


@dataclasses.dataclass
class Block:
    doc: Path
    line: int  # 1-based line of the opening fence
    lang: str
    body: str
    runnable: bool

    @property
    def where(self) -> str:
        return f"{self.doc.relative_to(REPO_ROOT)}:{self.line}"


def blocks(doc: Path) -> list[Block]:
    """The fenced code blocks of a markdown file, each marked runnable when the marker line precedes it."""
    out: list[Block] = []
    lines = doc.read_text(encoding="utf-8").splitlines()
    i = 0
    while i < len(lines):
        m = FENCE.match(lines[i])
        if not m:
            i += 1
            continue
        start = i
        i += 1
        while i < len(lines) and not lines[i].startswith("```"):
            i += 1
        before = next((lines[j].strip() for j in range(start - 1, -1, -1) if lines[j].strip()), "")
        out.append(Block(doc, start + 1, m.group(1), "\n".join(lines[start + 1 : i]), before == RUNNABLE))
        i += 1
    return out


ALL_BLOCKS = [b for doc in DOCS for b in blocks(doc)]


def imported_names(code: str) -> list[tuple[str, str]]:
    """(module, name) for every `from crystalbench... import a, b as c` in `code` (parenthesised too)."""
    found = []
    for module, names in IMPORT.findall(code):
        for part in names.strip("()").split(","):
            name = part.split("#")[0].split(" as ")[0].strip()
            if name and name != "*":
                found.append((module, name))
    return found


def resolve(dotted: str) -> object:
    """Import the longest importable module prefix of `dotted`, then getattr the rest."""
    parts = dotted.split(".")
    for cut in range(len(parts), 0, -1):
        try:
            obj = importlib.import_module(".".join(parts[:cut]))
        except ModuleNotFoundError:
            continue
        for attr in parts[cut:]:
            obj = getattr(obj, attr)
        return obj
    raise ModuleNotFoundError(dotted)


# -- names ------------------------------------------------------------------------------------------
def test_every_import_in_the_docs_works():
    problems = []
    seen = 0
    for block in ALL_BLOCKS:
        for module, name in imported_names(block.body):
            seen += 1
            try:
                getattr(importlib.import_module(module), name)
            except (ImportError, AttributeError) as exc:
                problems.append(f"{block.where}: from {module} import {name}: {type(exc).__name__}: {exc}")
    assert seen >= 20, f"only {seen} crystalbench imports found in the docs' code blocks: is the parser broken?"
    assert not problems, "imports shown in the docs fail:\n" + "\n".join(problems)


def test_every_dotted_name_in_the_docs_resolves():
    problems, seen = [], set()
    for doc in DOCS:
        for dotted in DOTTED.findall(doc.read_text(encoding="utf-8")):
            if dotted in seen:
                continue
            seen.add(dotted)
            try:
                resolve(dotted)
            except (ImportError, AttributeError) as exc:
                problems.append(f"{doc.relative_to(REPO_ROOT)}: `{dotted}`: {type(exc).__name__}: {exc}")
    assert len(seen) >= 8, f"only {sorted(seen)} found: is the pattern broken?"
    assert not problems, "names shown in the docs do not exist:\n" + "\n".join(problems)


def test_what_the_plugin_page_says_comes_from_crystalbench_does():
    text = (REPO_ROOT / "docs" / "plugins.md").read_text(encoding="utf-8")
    listed = re.search(r"Everything a plugin imports comes from\s+`crystalbench` \(([^)]*)\)", text)
    assert listed, "docs/plugins.md no longer lists what a plugin imports from crystalbench"
    names = re.findall(r"`(\w+)`", listed.group(1))
    returned = re.findall(r"-> list\[(\w+)\]", text)  # the spec types the hooks return
    assert "ExecutorSpec" in returned and len(names) >= 8
    missing = sorted({n for n in names + returned if not hasattr(crystalbench, n)})
    assert not missing, f"docs/plugins.md says these come from crystalbench, which lacks them: {missing}"
    assert set(names + returned) <= set(crystalbench.__all__)


# -- runnable command blocks ------------------------------------------------------------------------
RUNNABLE_BLOCKS = [b for b in ALL_BLOCKS if b.runnable]


def test_cheap_command_blocks_are_marked_runnable():
    where = {b.doc.name for b in RUNNABLE_BLOCKS}
    assert {"README.md", "data.md", "models.md", "descriptors.md"} <= where, where
    for b in RUNNABLE_BLOCKS:
        assert b.lang in ("bash", "sh"), f"{b.where}: {RUNNABLE} marks a {b.lang or 'plain'} block, not a command"


def commands(body: str) -> list[str]:
    """The block's commands, one per line (backslash continuations joined), comments and blanks dropped."""
    joined = body.replace("\\\n", " ")
    return [line for line in joined.splitlines() if shlex.split(line, comments=True)]


@pytest.mark.parametrize("block", RUNNABLE_BLOCKS, ids=lambda b: b.where)
def test_runnable_blocks_run(block, data_dir, tmp_path, monkeypatch):
    """Every command exits 0, run from the repository root against the real data with a throw-away cache.

    `bench ...` lines run in this process through click (the same entry point as the console script,
    without a Python start-up and imports per line, which kept the test under a few seconds); any other
    line runs in bash.
    """
    from click.testing import CliRunner

    from crystalbench.cli import cli

    env = {"CRYSTALBENCH_DATA_DIR": str(data_dir), "CRYSTALBENCH_CACHE_DIR": str(tmp_path / "cache")}
    monkeypatch.chdir(REPO_ROOT)
    for line in commands(block.body):
        argv = shlex.split(line, comments=True)
        if argv[0] == "bench" and not set(line) & set("|&;<>$`"):
            result = CliRunner().invoke(cli, argv[1:], env=env)
            out, code = result.output, result.exit_code
        else:
            p = subprocess.run(["bash", "-euo", "pipefail", "-c", line], env=dict(os.environ, **env),
                               capture_output=True, text=True, timeout=120)
            out, code = p.stdout + p.stderr, p.returncode
        assert code == 0, f"{block.where}: `{line}` exited {code}:\n{out[-3000:]}"
        assert "Traceback" not in out, f"{block.where}: `{line}`:\n{out[-3000:]}"


# -- claims about behaviour -------------------------------------------------------------------------
def test_list_tasks_shows_the_licence_column_the_data_page_promises():
    from click.testing import CliRunner

    from crystalbench.cli import cli

    assert "`bench list tasks` shows each task's licence" in (REPO_ROOT / "docs" / "data.md").read_text(encoding="utf-8")
    result = CliRunner().invoke(cli, ["list", "tasks"])
    assert result.exit_code == 0, result.output
    header = result.output.splitlines()[0].split()
    assert "license" in header, header
    assert "MIT (generated)" in result.output  # the chain tasks' licence string, shown as the plugin gives it


def test_leaderboard_page_describes_the_error_vs_atoms_plot_as_drawn():
    text = (REPO_ROOT / "docs" / "leaderboard.md").read_text(encoding="utf-8")
    row = next(line for line in text.splitlines() if line.startswith("| `tasks/<task>.html`"))
    assert "error vs number of atoms" in row.lower()
    assert "plot is not drawn" not in text


def test_model_reference_is_documented_and_given_by_every_built_in_model():
    from crystalbench.runtime.registry import load_registry

    assert "reference" in {f.name for f in dataclasses.fields(ModelSpec)}
    assert "`reference`" in (REPO_ROOT / "docs" / "plugins.md").read_text(encoding="utf-8")
    assert "leaderboard site" in (ModelSpec.__doc__ or "").split("reference:")[1]
    reg = load_registry()
    ours = {p.name for p in reg.plugins if p.module.startswith("crystalbench.")}
    builtin = [n for n in reg.models if reg.owner[("model", n)] in ours]
    assert len(builtin) >= 7 and [n for n in builtin if not reg.models[n].reference] == []


def test_readme_test_command_shows_progress_and_states_its_duration():
    text = (REPO_ROOT / "README.md").read_text(encoding="utf-8")
    lines = text.splitlines()
    at = lines.index("<!-- test-command -->")
    command = lines[at + 2]
    assert command.startswith("python3 -m venv .venv && . .venv/bin/activate && pip install -q torch==")
    assert "python -m pytest" in command  # .ci/run checks this substring
    pytest_args = command.split("python -m pytest", 1)[1].split()
    assert "-v" in pytest_args, "CI logs show whole lines only: -v prints one line per finished test"
    assert any(a.startswith("--durations") for a in pytest_args)
    after = "\n".join(lines[at + 3 : at + 12])
    assert re.search(r"about \d+ minutes on a 2-core machine", after), after
