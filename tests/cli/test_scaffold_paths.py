"""`bench plugin new` outside this checkout, and the workflows that run with a write token (issues #18, #21).

- the scaffold writes its package all or nothing, never into an existing folder, and an unwritable
  `--dir` is one `error:` line (#18.9);
- the leaderboard workflow's write token lives in a job that runs no code; actions are pinned by commit
  SHA; Pages deploys without waiting for the push (#18.11);
- generated READMEs and workflows install crystalbench from a source that exists today, and torch from
  the CPU index where they install it; the README says what the torch pin does on a plain machine
  (#21.2, #21.3);
- the task template withholds the descriptor columns that compute its target, its printed next steps
  work after the printed `cd`, and a generated model is named after what it is (#21.5).
"""

from __future__ import annotations

import errno
import importlib.util
import json
import os
import re
import shlex
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from click.testing import CliRunner
from helpers import REPO_ROOT

from crystalbench.cli import cli
from crystalbench.cli import plugin as scaffold
from crystalbench.cli.plugin import render

WORKFLOWS = REPO_ROOT / ".github" / "workflows"
EXAMPLE = REPO_ROOT / "examples" / "crystalbench-example"
CPU_INDEX = "--index-url https://download.pytorch.org/whl/cpu"
PINNED = re.compile(r"^[\w.-]+/[\w./-]+@[0-9a-f]{40}$")
URL = "git+https://github.com/someone/crystalbench@v0.2.0"


def new(*args: str, **kw: Any):
    return CliRunner().invoke(cli, ["plugin", "new", *args], **kw)


def one_error_line(result) -> str:
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert result.exit_code == 2 and len(lines) == 1 and lines[0].startswith("error:"), result.output
    assert "Traceback" not in result.output
    return lines[0]


def load_yaml(text: str) -> dict[str, Any]:
    from ruamel.yaml import YAML  # YAML 1.2: `on:` stays a string key

    doc = YAML(typ="safe").load(text)
    assert isinstance(doc, dict)
    return doc


def workflow_texts() -> dict[str, str]:
    """The project's workflows and those a generated package ships (from a URL and from a folder)."""
    texts = {p.name: p.read_text() for p in sorted(WORKFLOWS.glob("*.yml"))}
    for label, source in (("url", URL), ("folder", str(REPO_ROOT))):
        for rel, text in render("model", "crystalbench-knn", crystalbench_source=source).items():
            if rel.startswith(".github/workflows/"):
                texts[f"scaffold-{label}:{rel}"] = text
    return texts


# -- #18.9: an unwritable --dir, never over an existing folder ---------------------------------------


def test_dir_that_is_a_file_is_one_error_line(tmp_path):
    (tmp_path / "f").write_text("mine")
    line = one_error_line(new("crystalbench-zz", "--dir", str(tmp_path / "f")))
    assert "is a file" in line
    line = one_error_line(new("crystalbench-zz", "--dir", str(tmp_path / "f" / "sub")))
    assert str(tmp_path / "f") in line
    assert [p.name for p in tmp_path.iterdir()] == ["f"] and (tmp_path / "f").read_text() == "mine"


def test_unwritable_dir_is_one_error_line(tmp_path, monkeypatch):
    # root ignores permission bits, so the refusal is simulated where the folder would be made
    def refuse(*args, **kwargs):
        raise PermissionError(errno.EACCES, "Permission denied", str(tmp_path))

    monkeypatch.setattr("tempfile.mkdtemp", refuse)
    line = one_error_line(new("crystalbench-zz", "--dir", str(tmp_path)))
    assert "Permission denied" in line and "nothing was written" in line
    assert not any(tmp_path.iterdir())


def test_a_full_disk_leaves_no_empty_or_partial_files(tmp_path, monkeypatch):
    real_write = Path.write_text
    calls = []

    def write_text(self, data, *args, **kwargs):
        calls.append(self)
        if len(calls) == 3:
            real_write(self, "")  # what a full disk leaves: an empty file
            raise OSError(errno.ENOSPC, "No space left on device", str(self))
        return real_write(self, data, *args, **kwargs)

    monkeypatch.setattr(Path, "write_text", write_text)
    line = one_error_line(new("crystalbench-zz", "--dir", str(tmp_path / "new" / "plugins")))
    assert "no space left" in line
    assert len(calls) == 3 and not any(tmp_path.iterdir())  # no staging folder, no folders made for it


def test_a_folder_made_meanwhile_is_never_written_into(tmp_path, monkeypatch):
    target = tmp_path / "crystalbench-zz"
    real_render = scaffold.render

    def render_then_someone_makes_the_folder(*args, **kwargs):
        files = real_render(*args, **kwargs)
        target.mkdir()  # after the existence check, before the move: os.rename would replace it
        return files

    monkeypatch.setattr(scaffold, "render", render_then_someone_makes_the_folder)
    line = one_error_line(new("crystalbench-zz", "--dir", str(tmp_path)))
    assert "already exists" in line
    assert [p.name for p in tmp_path.iterdir()] == ["crystalbench-zz"] and not any(target.iterdir())


# -- #18.11: the leaderboard workflow -------------------------------------------------------------------


def test_every_action_is_pinned_by_commit_sha():
    for name, text in workflow_texts().items():
        for line in text.splitlines():
            m = re.match(r"\s*-?\s*uses:\s*(\S+)(.*)$", line)
            if m:
                assert PINNED.fullmatch(m.group(1)), f"{name}: {m.group(1)} is not pinned by a 40-hex commit SHA"
                assert re.search(r"#\s*v\d", m.group(2)), f"{name}: say which release {m.group(1)} is (# vX.Y.Z)"


def test_no_job_holds_a_contents_write_token_and_nothing_pushes():
    # The committed LEADERBOARD.md is the reference records' page (`bench docs results`, checked by the test
    # suite in a pull request), so the workflow only publishes the site: no job may write to the repository.
    doc = load_yaml((WORKFLOWS / "leaderboard.yml").read_text())
    assert doc["permissions"] == {"contents": "read"}
    for name, job in doc["jobs"].items():
        perms = job.get("permissions") or {}
        assert perms.get("contents", "read") == "read", f"{name} holds a contents write token"
        assert set(k for k, v in perms.items() if v == "write") <= {"pages", "id-token"}, name
        for step in job.get("steps", []):
            assert "git push" not in step.get("run", ""), f"{name} pushes"
            if str(step.get("uses", "")).startswith("actions/checkout"):
                assert step.get("with", {}).get("persist-credentials") is False, f"{name} keeps credentials"


def test_only_the_deploy_job_holds_the_pages_token_and_it_runs_no_code():
    doc = load_yaml((WORKFLOWS / "leaderboard.yml").read_text())
    jobs = doc["jobs"]
    pages = [n for n, j in jobs.items() if (j.get("permissions") or {}).get("pages") == "write"]
    assert pages == ["deploy"]
    for step in jobs["deploy"]["steps"]:
        assert "run" not in step and str(step.get("uses", "")).startswith("actions/deploy-pages")

    def needs(name: str) -> set[str]:
        direct = jobs[name].get("needs", [])
        direct = [direct] if isinstance(direct, str) else direct
        return set(direct).union(*(needs(n) for n in direct)) if direct else set()

    builder = next(n for n, j in jobs.items()
                   if any(str(s.get("uses", "")).startswith("actions/upload-pages-artifact") for s in j["steps"]))
    assert builder in needs("deploy")
    build_run = "\n".join(s.get("run", "") for s in jobs[builder]["steps"])
    assert "--out leaderboard/LEADERBOARD.md" not in build_run  # the committed page is not the site's


# -- #21.3: torch -------------------------------------------------------------------------------------


def test_workflows_install_torch_from_the_cpu_index():
    seen = 0
    for name, text in workflow_texts().items():
        for line in text.splitlines():
            if re.search(r"pip install\b.*\btorch\b", line) and not line.lstrip().startswith("#"):
                seen += 1
                assert CPU_INDEX in line, f"{name}: {line.strip()} takes PyPI's CUDA build (~3 GB)"
    assert seen >= 3  # suite, build and submissions jobs


def test_readme_says_what_the_torch_pin_installs_on_a_plain_machine():
    readme = (REPO_ROOT / "README.md").read_text()
    setup = readme.split("## Set up", 1)[1].split("\n## ", 1)[0]
    assert "so that pip takes the CPU wheel" not in setup  # true only where a CPU index is configured
    assert CPU_INDEX in setup and "CUDA" in setup and "3 GB" in setup
    for marker in ("<!-- main-command -->", "<!-- test-command -->"):  # the lines CI runs need no pytorch.org
        command = readme.split(marker, 1)[1].split("```", 2)[1]
        assert "download.pytorch.org" not in command


# -- #21.2: generated packages install outside this checkout -------------------------------------------


def test_generated_readme_and_workflows_install_crystalbench_from_a_url():
    files = render("task", "crystalbench-knn", crystalbench_source=URL)
    readme = files["README.md"]
    assert f"pip install 'crystalbench @ {URL}'" in readme
    assert "\n    pip install crystalbench-knn\n" not in readme  # the package is on no index either
    for rel in (".github/workflows/test.yml", ".github/workflows/publish.yml"):
        doc = load_yaml(files[rel])
        assert doc["env"]["CRYSTALBENCH_REQUIREMENT"] == f"crystalbench @ {URL}"
        runs = "\n".join(s.get("run", "") for job in doc["jobs"].values() for s in job["steps"])
        if "pip install -e" in runs:
            assert runs.index('pip install "$CRYSTALBENCH_REQUIREMENT"') < runs.index("pip install -e")
    assert '"crystalbench>=0.2"' in files["pyproject.toml"]  # PyPI refuses URL dependencies


def test_generated_from_a_folder_the_workflows_say_what_to_set():
    files = render("model", "crystalbench-knn", crystalbench_source="/opt/src/crystal bench")
    assert "pip install '/opt/src/crystal bench'" in files["README.md"]
    doc = load_yaml(files[".github/workflows/test.yml"])
    assert doc["env"]["CRYSTALBENCH_REQUIREMENT"] == ""
    assert "::error::set CRYSTALBENCH_REQUIREMENT" in files[".github/workflows/test.yml"]
    assert "CRYSTALBENCH_REQUIREMENT" in files["README.md"]


def test_default_source_is_where_this_crystalbench_came_from(tmp_path):
    result = new("crystalbench-zz", "--dir", str(tmp_path), catch_exceptions=False)
    assert result.exit_code == 0, result.output
    readme = (tmp_path / "crystalbench-zz" / "README.md").read_text()
    assert f"pip install {shlex.quote(scaffold.installed_source())}" in readme
    assert scaffold.installed_source() == str(REPO_ROOT)  # an editable install of this checkout


def test_relative_source_is_rewritten_relative_to_the_package(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    given = os.path.relpath(REPO_ROOT, tmp_path)
    result = new("crystalbench-zz", "--dir", "sub", "--crystalbench-source", given, catch_exceptions=False)
    assert result.exit_code == 0, result.output
    written = os.path.relpath(REPO_ROOT, tmp_path / "sub" / "crystalbench-zz")
    assert f"pip install {written}\n" in (tmp_path / "sub" / "crystalbench-zz" / "README.md").read_text()
    assert (EXAMPLE / "../..").resolve() == REPO_ROOT and "pip install ../..\n" in (EXAMPLE / "README.md").read_text()


@pytest.mark.parametrize("source", ["https://example.org/a b", "/nonexistent/crystalbench", str(Path(__file__))])
def test_bad_source_is_one_error_line(tmp_path, source):
    line = one_error_line(new("crystalbench-zz", "--dir", str(tmp_path), "--crystalbench-source", source))
    assert "--crystalbench-source" in line and not any(tmp_path.iterdir())


def test_pip_records_of_direct_installs_are_read_back():
    read = scaffold._from_direct_url
    commit = "a" * 40
    vcs = {"url": "https://github.com/o/crystalbench", "vcs_info": {"vcs": "git", "commit_id": commit}}
    assert read(json.dumps(vcs)) == f"git+https://github.com/o/crystalbench@{commit}"
    assert read('{"url": "file:///src/crystalbench", "dir_info": {}}') == "/src/crystalbench"
    assert read('{"url": "https://x.org/crystalbench-0.2.0.tar.gz", "archive_info": {}}').endswith(".tar.gz")
    assert read("not json") == ""
    archive = scaffold._install_values("file:///tmp/crystalbench-0.2.0.tar.gz")
    assert "file:" in archive["crystalbench_install"] and archive["workflow_requirement"] == ""  # GitHub cannot


# -- #21.5: the task template, the next steps, the model's name -----------------------------------------


def _module(tmp_path: Path, name: str, text: str):
    path = tmp_path / f"{name}.py"
    path.write_text(text)
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # dataclasses look their module up while a class is built
    try:
        spec.loader.exec_module(module)
    finally:
        del sys.modules[name]
    return module


def test_task_template_withholds_every_descriptor_column_that_computes_its_target(tmp_path):
    from crystalbench import RunContext
    from crystalbench.descriptors import gong29

    files = render("task", "crystalbench-bondlengths")
    task_mod = _module(tmp_path, "generated_task", files["crystalbench_bondlengths/task.py"])
    desc_mod = _module(tmp_path, "generated_descriptors",
                       render("descriptors", "crystalbench-neighbours")["crystalbench_neighbours/descriptors.py"])
    data_dir = tmp_path / "data" / "bondlengths"
    data_dir.mkdir(parents=True)
    (data_dir / "data.csv").write_text(files["tests/data/bondlengths/data.csv"])
    ctx = RunContext(data_dir=tmp_path / "data", cache_dir=tmp_path / "cache", results_dir=tmp_path / "results",
                     jobs=1, threads=1, device="cpu", progress=False)
    (spec,) = task_mod.bench_tasks(ctx)
    data = spec.load(ctx)
    structures = list(data.structures)
    columns = {**dict(zip(gong29.FEATURES, np.asarray(gong29.featurize(structures), float).T)),
               **dict(zip(desc_mod.FEATURES, desc_mod.featurize(structures).T))}
    seen = [n for n in columns if n not in spec.exclude_features]
    for name in seen:
        col = columns[name]
        ok = np.isfinite(col)
        if col[ok].std() > 0:
            r = abs(np.corrcoef(col[ok], data.targets[ok])[0, 1])
            assert r < 0.9, f"{name} reveals the target (|r| = {r:.3f}) and is not in exclude_features"
    assert {"b", "c", "mean_avg_bond_len", "min_nn_distance"} <= set(spec.exclude_features)
    assert {"natoms", "mean_electronegativity"} <= set(seen)  # what is left to learn from


@pytest.mark.parametrize("kind", ["model", "task", "descriptors"])
def test_printed_next_steps_work_after_the_printed_cd(tmp_path, monkeypatch, kind):
    monkeypatch.chdir(tmp_path)  # `bench plugin new NAME` in an empty folder, as the README says
    result = new("crystalbench-zz", "--kind", kind, catch_exceptions=False)
    assert result.exit_code == 0, result.output
    after = result.output.split("next:", 1)[1]
    folder = tmp_path / re.search(r"\bcd (\S+)", after).group(1)
    assert folder == tmp_path / "crystalbench-zz"
    for m in re.finditer(r"--data-dir (\S+)", after):  # the commands after the cd run in the package folder
        assert (folder / m.group(1) / "zz" / "data.csv").is_file(), m.group(0)
    run_line = next(line for line in after.splitlines() if "bench run" in line)
    assert "--data-dir" in run_line if kind == "task" else "chain1d_short" in run_line
    assert "bench leaderboard build --results-dir results" in after  # up to a leaderboard row


def test_generated_model_is_named_after_what_it_is(tmp_path):
    result = new("crystalbench-knn", "--dir", str(tmp_path), catch_exceptions=False)
    assert result.exit_code == 0, result.output
    module = (tmp_path / "crystalbench-knn" / "crystalbench_knn" / "model.py").read_text()
    assert 'name="knn-ridge"' in module and "-m knn-ridge" in result.output
    assert 'knn = "crystalbench_knn.model"' in (tmp_path / "crystalbench-knn" / "pyproject.toml").read_text()
    assert 'name="ridge"' in render("model", "crystalbench-ridge")["crystalbench_ridge/model.py"]
    assert 'name="mine"' in render("model", "crystalbench-knn", spec_name="mine")["crystalbench_knn/model.py"]
