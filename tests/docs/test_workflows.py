"""The GitHub workflows obey our publishing rules (actionlint checks the syntax: `.ci/actionlint`).

- no `run:` step swallows a failure (`|| echo`, `|| true`, `|| exit 0`, `continue-on-error`);
- the submissions workflow is read-only, runs on `pull_request` (never `pull_request_target`), validates with
  the base branch's code and reads the PR head only as data (never installs or runs it);
- the leaderboard workflow provisions data with `bench data fetch`, builds the site and deploys it to Pages.
"""

from __future__ import annotations

import os
import re
from typing import Any

import pytest
from helpers import REPO_ROOT

WORKFLOWS = REPO_ROOT / ".github" / "workflows"
SWALLOW = re.compile(r"\|\|\s*(echo\b|true\b|:(?=\s|;|$)|exit\s+0\b)", re.M)


def load(name: str) -> dict[str, Any]:
    from ruamel.yaml import YAML  # YAML 1.2: `on:` stays a string key (PyYAML would read it as True)

    doc = YAML(typ="safe").load((WORKFLOWS / name).read_text())
    assert isinstance(doc, dict), name
    return doc


def steps(doc: dict[str, Any]) -> list[dict[str, Any]]:
    return [s for job in doc["jobs"].values() for s in job.get("steps", [])]


def all_workflows() -> list[str]:
    return sorted(p.name for p in WORKFLOWS.glob("*.yml"))


def test_workflows_exist():
    assert {"leaderboard.yml", "submissions.yml"} <= set(all_workflows())


@pytest.mark.parametrize("name", all_workflows())
def test_no_failure_is_swallowed(name):
    doc = load(name)
    for job_name, job in doc["jobs"].items():
        assert not job.get("continue-on-error"), f"{name}: job {job_name} has continue-on-error"
        for step in job.get("steps", []):
            assert not step.get("continue-on-error"), f"{name}: step {step.get('name')} has continue-on-error"
            run = step.get("run", "")
            assert not SWALLOW.search(run), f"{name}: step {step.get('name')!r} swallows a failure: {run!r}"
            assert "set +e" not in run, f"{name}: step {step.get('name')!r} turns off errexit"
    assert "permissions" in doc, f"{name}: declare top-level permissions"


def test_swallow_rule_catches_the_old_pattern():
    assert SWALLOW.search('bench run -m x || echo "some jobs failed; see results"')
    assert SWALLOW.search("git commit -m x || exit 0")
    assert SWALLOW.search("bench run -m x || :")
    assert not SWALLOW.search('if ! bench results validate "$dir"; then status=1; fi')


def test_submissions_workflow_is_read_only_and_never_runs_pr_code():
    doc = load("submissions.yml")
    assert set(doc["on"]) == {"pull_request"}, "pull_request_target would give PR code a write token and secrets"
    assert all(v in ("read", "none") for v in doc["permissions"].values()), doc["permissions"]
    for job in doc["jobs"].values():
        assert "permissions" not in job or all(v in ("read", "none") for v in job["permissions"].values())
    st = steps(doc)
    checkouts = [s for s in st if str(s.get("uses", "")).startswith("actions/checkout")]
    base, head = checkouts
    assert base["with"]["ref"] == "${{ github.event.pull_request.base.sha }}" and "path" not in base["with"]
    assert head["with"]["path"] == "pr" and head["with"]["sparse-checkout"] == "leaderboard/submissions"
    assert all(c["with"].get("persist-credentials") is False for c in checkouts)
    runs = [(i, s.get("run", "")) for i, s in enumerate(st)]
    for s in st:
        assert not str(s.get("working-directory", "")).startswith("pr"), s
        run = s.get("run", "")
        if "pip install" in run:
            assert "pr/" not in run and "pr\n" not in run and "-e ." not in run.replace('-e ".[all]"', ""), run
    install = next(i for i, r in runs if "pip install" in r)
    removed = next(i for i, r in runs if "rm -rf pr" in r)
    assert st.index(head) < removed < install, "the PR checkout must be gone before anything is installed"
    validate = [r for _, r in runs if "bench results validate" in r]
    assert validate and all("--require-official-splits" in r for r in validate)


def test_leaderboard_workflow_fetches_data_and_deploys_pages():
    doc = load("leaderboard.yml")
    text = (WORKFLOWS / "leaderboard.yml").read_text()
    st = steps(doc)
    runs = "\n".join(s.get("run", "") for s in st)
    assert "bench data fetch" in runs
    assert "bench leaderboard build" in runs and "--html site" in runs
    assert "--require-official-splits" in runs  # merged submissions are re-validated before publishing
    uses = {str(s.get("uses", "")).split("@")[0] for s in st}
    assert {"actions/upload-pages-artifact", "actions/deploy-pages", "actions/upload-artifact",
            "actions/cache"} <= uses
    assert doc["jobs"]["deploy"]["permissions"] == {"pages": "write", "id-token": "write"}
    assert doc["permissions"] == {"contents": "read"}
    assert "leaderboard/submissions/**" in text  # rebuilt after merges


def test_actionlint_script_is_executable():
    script = REPO_ROOT / ".ci" / "actionlint"
    assert script.is_file() and os.access(script, os.X_OK)
    assert "actionlint@" in script.read_text()
