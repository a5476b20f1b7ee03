"""`bench plugin new` (issue #12): generated packages install, pass their own tests and run through `bench run`.

The acceptance path: generate one package of each kind in a temporary folder,
pip-install them (--no-deps --no-build-isolation --target, then PYTHONPATH, as
tests/test_cli.py does), run each package's generated tests with
``python -m pytest`` in its folder, and run the generated model on
chain1d_short (ok, beats dummy, no leak). The example plugin and
docs/plugins.md are checked against what the command writes, so they cannot drift.
"""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys

import pytest
from click.testing import CliRunner
from helpers import REPO_ROOT, bench_process

from crystalbench.cli import cli
from crystalbench.cli.plugin import render

EXAMPLE = REPO_ROOT / "examples" / "crystalbench-example"
KINDS = {"model": "crystalbench-knnish", "task": "crystalbench-bondlengths", "descriptors": "crystalbench-neighbours"}
SPEC = {"model": "knnish-ridge", "task": "bondlengths", "descriptors": "neighbours"}  # a model is named as what it is
MODULE = {"model": "model", "task": "task", "descriptors": "descriptors"}


def new(*args: str):
    return CliRunner().invoke(cli, ["plugin", "new", *args], catch_exceptions=False)


@pytest.fixture(scope="module")
def generated(tmp_path_factory):
    root = tmp_path_factory.mktemp("plugins")
    for kind, name in KINDS.items():
        result = new(name, "--kind", kind, "--dir", str(root), "--author", "A. Author")
        assert result.exit_code == 0, result.output
        assert f"created {root / name}" in result.output and "python -m pytest" in result.output
    site = tmp_path_factory.mktemp("site")
    p = subprocess.run(
        [sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--no-build-isolation", "--target", str(site),
         *(str(root / name) for name in KINDS.values())],
        capture_output=True, text=True, timeout=300,
    )
    assert p.returncode == 0, p.stderr
    env = dict(os.environ)
    env["PYTHONPATH"] = str(site) + os.pathsep + env.get("PYTHONPATH", "")
    env.pop("CRYSTALBENCH_DISABLE_PLUGINS", None)
    return root, env


@pytest.mark.parametrize("kind", list(KINDS))
def test_generated_package_passes_its_own_tests(generated, kind):
    root, env = generated
    folder = root / KINDS[kind]
    for rel in ("pyproject.toml", "README.md", ".gitignore", ".github/workflows/test.yml", "tests/conftest.py",
                f"{KINDS[kind].replace('-', '_')}/{MODULE[kind]}.py", f"tests/test_{MODULE[kind]}.py"):
        assert (folder / rel).is_file(), rel
    assert 'authors = [{ name = "A. Author" }]' in (folder / "pyproject.toml").read_text()
    p = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider"], cwd=folder, env=env,
                       capture_output=True, text=True, timeout=600)
    assert p.returncode == 0, p.stdout + p.stderr
    assert "3 passed" in p.stdout


def test_generated_plugins_run_through_bench(generated, tmp_path):
    root, env = generated
    model, task, desc = SPEC["model"], SPEC["task"], SPEC["descriptors"]
    p = bench_process("plugins", env=env)
    assert p.returncode == 0, p.stderr
    header, _, *lines = p.stdout.splitlines()
    assert header.split()[:6] == ["name", "distribution", "version", "models", "tasks", "descriptors"]
    rows = {line.split()[0]: line for line in lines}
    assert model in rows["knnish"] and task in rows[task] and desc in rows[desc]  # what each provides, in the table
    assert "(+" in rows["learnability"]  # long lists are shortened (all names in --json)

    data_dir = root / KINDS["task"] / "tests" / "data"
    p = bench_process("run", "-m", model, "-m", "dummy", "-t", "chain1d_short", "-t", task, "--json",
              "--data-dir", str(data_dir), "--results-dir", str(tmp_path / "r"), env=env)
    assert p.returncode == 0, p.stderr
    recs = {(r["model"], r["task"]): r for r in map(json.loads, p.stdout.splitlines())}
    assert len(recs) == 4 and all(r["status"] == "ok" for r in recs.values())
    ours, floor = recs[(model, "chain1d_short")], recs[("dummy", "chain1d_short")]
    assert ours["metrics"]["mae_over_mad"] < 0.8 * floor["metrics"]["mae_over_mad"]
    assert not ours["warnings"]  # declares no input that reveals the chain period

    p = bench_process("run", "-m", "rf", "--descriptors", desc, "-t", task, "--json",
              "--data-dir", str(data_dir), "--results-dir", str(tmp_path / "r"), env=env)
    assert p.returncode == 0, p.stderr
    (rec,) = map(json.loads, p.stdout.splitlines())
    assert rec["status"] == "ok" and rec["metrics"]["mae_over_mad"] < 1.0


@pytest.mark.parametrize("args, message", [
    (["9lives"], "not a valid package name"),
    (["my plugin"], "not a valid package name"),
    (["crystal--bench"], "not a valid package name"),
    (["numpy"], "already importable"),
    (["crystalbench-x", "--spec-name", "rf"], "a model named 'rf' is already provided"),
    (["crystalbench-rf"], "a plugin named 'rf' is already installed"),
    (["crystalbench-chains", "--kind", "task", "--spec-name", "chain1d_short"], "already provided"),
    (["crystalbench-ok", "--spec-name", "a/b"], "is not allowed"),
])
def test_bad_names_are_refused_in_one_line(tmp_path, args, message):
    result = CliRunner().invoke(cli, ["plugin", "new", *args, "--dir", str(tmp_path)])
    assert result.exit_code == 2, result.output
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error:") and message in lines[0], result.output
    assert not any(tmp_path.iterdir())  # nothing written


def test_existing_folder_is_never_overwritten(tmp_path):
    (tmp_path / "crystalbench-mine").mkdir()
    (tmp_path / "crystalbench-mine" / "keep.txt").write_text("mine")
    result = CliRunner().invoke(cli, ["plugin", "new", "crystalbench-mine", "--dir", str(tmp_path)])
    assert result.exit_code == 2 and result.output.startswith("error:") and "already exists" in result.output
    assert [p.name for p in (tmp_path / "crystalbench-mine").iterdir()] == ["keep.txt"]


def test_example_plugin_is_exactly_what_the_command_writes():
    # `bench plugin new crystalbench-example --spec-name ridge --dir examples --crystalbench-source .` in the checkout
    expected = render("model", "crystalbench-example", spec_name="ridge", crystalbench_source="../..")
    ignored = ("build", "__pycache__", ".pytest_cache", ".ruff_cache")
    actual = {
        str(p.relative_to(EXAMPLE)): p.read_text() for p in EXAMPLE.rglob("*")
        if p.is_file() and not any(part in ignored or part.endswith(".egg-info") for part in p.parts)
    }
    assert sorted(actual) == sorted(expected)
    for rel, text in expected.items():
        assert actual[rel] == text, f"{rel} differs from `bench plugin new crystalbench-example --spec-name ridge`"


def test_example_passes_the_kit_and_does_not_leak():
    from crystalbench.runtime.stages import leak_warnings
    from crystalbench.tasks.chains import bench_tasks
    from crystalbench.testing import check_model

    path = EXAMPLE / "crystalbench_example" / "model.py"
    spec_ = importlib.util.spec_from_file_location("crystalbench_example_model", path)
    assert spec_ is not None and spec_.loader is not None
    module = importlib.util.module_from_spec(spec_)
    sys.modules[spec_.name] = module  # dataclasses look their module up while the class is built
    try:
        spec_.loader.exec_module(module)
        (ridge,) = module.bench_models()
    finally:
        del sys.modules[spec_.name]
    assert ridge.name == "ridge" and ridge.inputs == ()
    assert all(not leak_warnings(ridge, t) for t in bench_tasks())
    assert check_model(ridge).mae_over_mad < 0.5


DOC_NAMES = {"model": ("crystalbench-example", "ridge"), "task": ("crystalbench-bondlengths", None),
             "descriptors": ("crystalbench-neighbours", None)}


def test_docs_page_shows_the_generated_code_verbatim():
    page = (REPO_ROOT / "docs" / "plugins.md").read_text()
    for kind, (dist, spec_name) in DOC_NAMES.items():
        files = render(kind, dist, spec_name=spec_name)
        package = dist.replace("-", "_")
        module = files[f"{package}/{MODULE[kind]}.py"]
        assert module in page, f"docs/plugins.md lacks the {kind} module `bench plugin new {dist}` writes"
        assert files[f"tests/test_{MODULE[kind]}.py"] in page, f"docs/plugins.md lacks the generated {kind} test"
    pyproject = render("model", "crystalbench-example", spec_name="ridge")["pyproject.toml"]
    entry = pyproject[pyproject.index("[project.entry-points.crystalbench]"):].split("\n\n")[0]
    assert entry in page
    for promise in ("bench run --debug", "ModelSpec.inputs", "TaskSpec.leaks", "bench_run_finished", "bench_executors",
                    "check_model", "check_task", "check_descriptors", "dataset cache"):
        assert promise in page, promise


def test_readme_plugin_section_is_one_page_linking_the_docs():
    readme = (REPO_ROOT / "README.md").read_text()
    section = readme.split("## Write a plugin", 1)[1].split("\n## ", 1)[0]
    assert "docs/plugins.md" in section and "bench plugin new" in section and "crystalbench.testing" in section
    assert len(section.splitlines()) < 60
