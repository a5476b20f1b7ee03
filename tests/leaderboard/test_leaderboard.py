"""The markdown leaderboard: built from validated ResultRecords only, robust to hostile files (issues #8, #11)."""

from __future__ import annotations

import copy
import json
import re
from pathlib import Path

import numpy as np
import pytest

from crystalbench.contract.job import Job
from crystalbench.contract.metrics import score
from crystalbench.contract.record import ResultRecord
from crystalbench.leaderboard.markdown import build_leaderboard, escape, render_markdown, summarize
from crystalbench.runtime.results import ResultStore

Y_TRUE = [1.0, 2.0, 3.0, 4.0, 5.0, 6.0]
LEAK_TEXT = "† the model reads inputs that reveal this task's target (declared by the task); not a measure of learning"


def make(model="ridge", task="toy_task", seed=0, fold=0, noise=0.1, params=None, warnings=(), unit="eV",
         target="e_form", task_type="regression", created="2024-01-01T00:00:00+00:00", device="cpu") -> ResultRecord:
    """A valid ok record whose metrics are computed from its predictions."""
    job = Job(model=model, task=task, protocol="paper", fold=fold, seed=seed, params=params or {}, device=device)
    rng = np.random.default_rng(seed * 7 + fold)
    if task_type == "classification":
        y_true = [0.0, 1.0, 1.0, 0.0, 1.0, 0.0]
        y_pred = [y if rng.random() > noise else 1.0 - y for y in y_true]
    else:
        y_true = list(Y_TRUE)
        y_pred = [y + float(rng.normal(0, noise)) for y in y_true]
    return ResultRecord(
        job=job, status="ok", metrics=score(task_type, np.array(y_true), np.array(y_pred)),
        predictions={"ids": [f"m{i}" for i in range(len(y_true))], "y_true": y_true, "y_pred": y_pred},
        task_info={"target": target, "unit": unit, "task_type": task_type}, warnings=list(warnings), created=created,
    )


def cells(line: str) -> list[str]:
    """Split a markdown table row on unescaped pipes (as GitHub does)."""
    out, cur, i = [], "", 0
    while i < len(line):
        c = line[i]
        if c == "\\" and i + 1 < len(line):
            cur += line[i : i + 2]
            i += 2
            continue
        if c == "|":
            out.append(cur.strip())
            cur = ""
        else:
            cur += c
        i += 1
    out.append(cur.strip())
    return out[1:-1]


def table(text: str, heading: str) -> tuple[list[str], dict[str, list[str]]]:
    """(column names, {task: cells}) of the table under `## heading`."""
    part = text.split(f"## {heading}")[1].split("\n## ")[0]
    rows = [cells(line) for line in part.splitlines() if line.startswith("|")]
    header, body = rows[0], rows[2:]
    return header, {r[0]: r for r in body}


def table_lines(text: str) -> list[str]:
    return [line for line in text.splitlines() if line.startswith("|")]


def test_escape_keeps_one_line_and_escapes_specials():
    s = escape("a\nb|c\r\x1b*_`[x](y)\u2028d\\")
    assert "\n" not in s and "\r" not in s and "\x1b" not in s and "\u2028" not in s
    assert "\\|" in s and "\\*" in s and "\\_" in s and "\\[" in s and "\\n" in s
    assert len(escape("x" * 1000)) < 100


def test_normal_table_bold_best(tmp_path):
    store = ResultStore(tmp_path / "r")
    for seed in (0, 1):
        store.write(make("ridge", seed=seed, noise=0.1))
        store.write(make("dummy", seed=seed, noise=2.0))
        store.write(make("ridge", task="cls_task", seed=seed, noise=0.0, task_type="classification", unit=""))
        store.write(make("dummy", task="cls_task", seed=seed, noise=0.5, task_type="classification", unit=""))
    out = tmp_path / "site" / "LB.md"
    path, skipped = build_leaderboard(tmp_path / "r", out, title="My *board*")
    assert path == out and skipped == []
    assert not [p for p in out.parent.iterdir() if p.name != "LB.md"]  # atomic write left nothing behind
    text = out.read_text()
    assert text.startswith("# My \\*board\\*")
    header, rows = table(text, "MAE/MAD (lower is better)")
    assert header[:3] == ["task", "protocol", "target"]
    row = rows["toy\\_task"]
    ridge, dummy = row[header.index("ridge")], row[header.index("dummy")]
    assert ridge.startswith("**") and "±" in ridge and "(n=1×2)" in ridge  # 1 fold x 2 seeds
    assert not dummy.startswith("**")
    assert row[2] == "e\\_form (eV)"
    r2_header, r2_rows = table(text, "R² (higher is better)")
    assert r2_rows["toy\\_task"][r2_header.index("ridge")].startswith("**")
    acc_header, acc_rows = table(text, "Accuracy (higher is better)")
    assert list(acc_rows) == ["cls\\_task"] and acc_rows["cls\\_task"][acc_header.index("ridge")].startswith("**1.000")
    assert "cls\\_task" not in text.split("## MAE/MAD")[1].split("## Accuracy")[0]


def _hostile_files(root: Path, good: dict) -> list[Path]:
    """Write malformed or crafted files; return their paths (all must be skipped)."""
    files: dict[str, str | bytes] = {}
    files["not_json.json"] = "this is { not json"
    files["list.json"] = "[1, 2, 3]"
    files["missing.json"] = json.dumps({"schema_version": 2, "job": good["job"], "job_id": good["job_id"]})
    d = copy.deepcopy(good)
    d["metrics"] = "fast"
    files["wrong_types.json"] = json.dumps(d)
    d = copy.deepcopy(good)
    d["metrics"]["mae_over_mad"] = 0.0001
    files["metrics_mismatch.json"] = json.dumps(d)
    for name, model in (("newline_model.json", "evil\n| INJECTED | row |"), ("pipe_model.json", "a|b | INJECTED")):
        d = copy.deepcopy(good)
        d["job"]["model"] = model
        files[name] = json.dumps(d)
    d = copy.deepcopy(good)
    d["task_info"]["unit"] = "meV\n| INJECTED | row |"  # relabel + injection, but the job id no longer matches
    d["job_id"] = "0" * 16
    files["relabel_tampered.json"] = json.dumps(d)
    d = copy.deepcopy(good)
    d["metrics"] = {k: "NaN" for k in d["metrics"]}
    files["nan_strings.json"] = json.dumps(d)
    d = copy.deepcopy(good)
    d["predictions"]["y_pred"] = [1e308, -1e308, 1e308, 1e308, -1e308, 1e308]
    files["huge.json"] = json.dumps(d).replace('"mae": ', '"mae": 1e999, "x": ')
    files["schema_v1.json"] = json.dumps({"schema": 1, "task": "toy_task", "model": "ridge", "metrics": {"mae": 1}})
    files["empty.json"] = ""
    files["binary.json"] = bytes(range(256)) * 4
    files["deep.json"] = "[" * 100_000 + "]" * 100_000
    d = copy.deepcopy(good)
    d["job"]["params"] = "ab"
    files["params_string.json"] = json.dumps(d)
    d = copy.deepcopy(good)
    d["provenance"] = {"split": [1, 2]}
    files["split_list.json"] = json.dumps(d)
    d = copy.deepcopy(good)
    d["job"]["fold"] = True
    files["bool_fold.json"] = json.dumps(d)
    files["nan_param.json"] = json.dumps(good).replace('"params": {}', '"params": {"lr": NaN}')
    paths = []
    for name, content in files.items():
        p = root / "aaa_task" / "x" / name  # sorts before the good records: they must still be read
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(content) if isinstance(content, bytes) else p.write_text(content)
        paths.append(p)
    folder = root / "aaa_task" / "x" / "folder.json"
    folder.mkdir()
    return paths + [folder]


def test_hostile_files_are_skipped_and_never_inject_rows(tmp_path):
    root = tmp_path / "r"
    store = ResultStore(root)
    good = make("ridge", created="2024-01-01T00:00:00+00:00")
    store.write(good)
    store.write(make("dummy", noise=2.0, created="2024-01-02T00:00:00+00:00"))
    # valid but crafted: a third model tries to relabel the task's unit and target
    store.write(make("crafty", noise=1.0, unit="meV", target="pwned", created="2023-01-01T00:00:00+00:00"))
    # valid record whose free-text fields carry newlines and pipes
    store.write(make("ridge", task="inj_task", target="x\n| INJECTED | row |", unit="eV|\r\n|",
                     warnings=["careful\n| INJECTED | row |"], params={"note": "a\n|b"}))
    hostile = _hostile_files(root, good.to_dict())
    out = tmp_path / "LB.md"
    _, skipped = build_leaderboard(root, out)
    assert {p for p, _ in skipped} == set(hostile)
    assert all(isinstance(why, str) and why and "\n" not in why and "Error(" not in why for _, why in skipped)
    text = out.read_text()
    assert "4 successful result(s)" in text and f"{len(hostile)} invalid result file(s) skipped" in text
    lines = table_lines(text)
    assert len(lines) == 3 * (2 + 2)  # MAE/MAD, MAE and R² tables: header + separator + 2 task rows each
    for heading in ("MAE/MAD", "MAE in", "R²"):
        part = text.split(f"## {heading}")[1].split("\n## ")[0]
        widths = {len(cells(line)) for line in part.splitlines() if line.startswith("|")}
        assert widths == {3 + 3}  # task, protocol, target + crafty, dummy, ridge
    assert not any(re.match(r"\|\s*INJECTED", line) for line in text.splitlines())
    assert not any(line.startswith("- ") and "INJECTED" in line and "careful" not in line for line in text.splitlines())
    header, rows = table(text, "MAE/MAD (lower is better)")
    assert header[3:] == ["crafty", "dummy", "ridge"]
    assert rows["toy\\_task"][2] == "e\\_form (eV) ‡"  # majority wins over the relabel attempt
    assert re.search(r"‡ toy\\_task: records disagree on unit: “eV” \(2 records, shown\), “meV” \(1 record\)", text)
    assert "records disagree on target" in text and "pwned" in text
    assert rows["toy\\_task"][header.index("ridge")].startswith("**")
    inj = rows["inj\\_task"]
    assert inj[2] == r"x\\n\| INJECTED \| row \| (eV\|\\r\\n\|)"  # shown as x\n| INJECTED | row | (eV|\r\n|)


def test_render_markdown_validates_and_survives_any_in_memory_record():
    good = make("ridge")
    tampered = make("dummy")
    tampered.metrics["mae_over_mad"] = 123.0
    odd = make("weird")
    odd.warnings = [{"not": "a string"}, 7]  # type: ignore[list-item]
    odd.task_info["classes"] = object()
    text = render_markdown([good, tampered, odd, "not a record"])  # type: ignore[list-item]
    header, _ = table(text, "MAE/MAD (lower is better)")
    assert "dummy" not in header and "ridge" in header
    assert "invalid result file(s) skipped" in text


def test_target_leak_is_marked_never_bold_and_explained(tmp_path):
    store = ResultStore(tmp_path)
    leak = "target leak: model 'leaky' reads formula, which reveal(s) the target 'e_form' of task 'toy_task'"
    for seed in (0, 1):
        store.write(make("leaky", seed=seed, noise=0.001, warnings=[leak]))
        store.write(make("ridge", seed=seed, noise=0.1))
        store.write(make("dummy", seed=seed, noise=2.0))
    _, skipped = build_leaderboard(tmp_path, tmp_path / "LB.md")
    assert skipped == []
    text = (tmp_path / "LB.md").read_text()
    header, rows = table(text, "MAE/MAD (lower is better)")
    row = rows["toy\\_task"]
    leaky = row[header.index("leaky")]
    assert leaky.endswith("†") and "**" not in leaky
    assert row[header.index("ridge")].startswith("**")
    assert LEAK_TEXT in text
    assert "## Warnings" in text and "target leak: model 'leaky' reads formula" in text


def test_two_configurations_give_two_columns(tmp_path):
    store = ResultStore(tmp_path)
    for seed in (0, 1, 2):
        store.write(make("cgcnn", seed=seed, noise=0.5, params={"epochs": 50, "lr": 0.01}))
        store.write(make("cgcnn", seed=seed, noise=0.1, params={"epochs": 300, "lr": 0.01}))
        # task-dependent defaults (one configuration per task) do not split a column
        store.write(make("rf", seed=seed, params={"readout": "sum"}))
        store.write(make("rf", task="other_task", seed=seed, params={"readout": "mean"}))
        store.write(make("cgcnn", task="other_task", seed=seed, params={"epochs": 50, "lr": 0.01}))
    _, skipped = build_leaderboard(tmp_path, tmp_path / "LB.md")
    assert skipped == []
    text = (tmp_path / "LB.md").read_text()
    header, rows = table(text, "MAE/MAD (lower is better)")
    assert header[3:] == ["cgcnn (epochs=50)", "cgcnn (epochs=300)", "rf"]
    toy = rows["toy\\_task"]
    assert all("(n=1×3)" in toy[header.index(c)] for c in header[3:])
    assert toy[header.index("cgcnn (epochs=300)")].startswith("**")
    other = rows["other\\_task"]
    assert other[header.index("cgcnn (epochs=50)")] and other[header.index("cgcnn (epochs=300)")] == ""
    summary = summarize(ResultStore(tmp_path).records())
    assert len(summary.cells) == 5 and summary.n_ok == 15


def test_unit_tie_goes_to_oldest_and_registry_wins(tmp_path):
    recs = [make("a", unit="meV", created="2024-05-01T00:00:00+00:00"),
            make("b", unit="eV", created="2024-01-01T00:00:00+00:00")]
    assert summarize(recs).tasks["toy_task"].unit == "eV"
    text = render_markdown(recs)
    assert "records disagree on unit" in text
    registry = render_markdown(recs, units={"toy_task": "kJ/mol"})
    _, rows = table(registry, "MAE/MAD (lower is better)")
    assert rows["toy\\_task"][2] == "e\\_form (kJ/mol) ‡"
    assert "registry's unit “kJ/mol” is shown" in registry


def test_minority_task_type_is_left_out():
    recs = [make("a"), make("b"), make("c", task_type="classification")]
    summary = summarize(recs)
    assert summary.tasks["toy_task"].task_type == "regression" and len(summary.cells) == 2
    text = render_markdown(recs)
    assert "## Accuracy" not in text and "records of the other type are left out" in text


def test_empty_and_failed_only(tmp_path):
    store = ResultStore(tmp_path)
    job = Job(model="ridge", task="toy_task", protocol="paper", fold=0, seed=0)
    store.write(ResultRecord(job=job, status="failed", error="boom", task_info={"task_type": "regression"}))
    _, skipped = build_leaderboard(tmp_path, tmp_path / "out" / "LB.md")
    text = (tmp_path / "out" / "LB.md").read_text()
    assert skipped == [] and "_No successful results yet._" in text and "1 failed job(s)" in text


@pytest.mark.parametrize("bad", ["", "\n", "|", "a\x00b"])
def test_title_is_escaped(bad):
    text = render_markdown([make()], title=f"board{bad}| x")
    assert text.splitlines()[0].startswith("# board") and text.splitlines()[1] == ""
