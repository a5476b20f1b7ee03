"""Cases 8 and 10 of #11: hostile files.

* `bench leaderboard build` on crafted and malformed records never shows a
  traceback: each invalid file is named in one "skipped invalid result file"
  warning, exit 0, and nothing from a bad or crafted file becomes a row.
* A user's structure dict naming an arbitrary module (`@module`) never makes
  crystalbench import it.
"""

from __future__ import annotations

import copy
import json
import sys

import pytest

from crystalbench.contract.record import ResultRecord


@pytest.fixture(scope="module")
def valid_results(bench, tmp_path_factory):
    root = tmp_path_factory.mktemp("lb") / "r"
    bench("run", "-m", "dummy", "-m", "sleepy", "-t", "toy_cubic", *bench.seeds(2), "--results-dir", root,
          "--no-progress", check=0)
    return root


def _crafted(root) -> dict[str, bytes | str | None]:
    """name -> content of files that are not valid records (None: a directory named like a record)."""
    good = json.loads(next(p for p in bench_files(root) if "/dummy/" in str(p)).read_text())

    def variant(**changes) -> str:
        d = copy.deepcopy(good)
        for dotted, value in changes.items():
            obj = d
            *path, last = dotted.split(".")
            for part in path:
                obj = obj[part]
            obj[last] = value
        return json.dumps(d)

    tampered = variant(**{"metrics.mae": 1e-9, "metrics.mae_over_mad": 1e-9})  # fake best score
    nan = json.dumps(good).replace('"r2": ', '"r2": NaN, "_r2": ', 1)  # NaN literal: Python reads it, JSON has none
    return {
        "empty.json": "",
        "not-json.json": "{{{ not json",
        "array.json": "[1, 2, 3]",
        "null.json": "null",
        "binary.json": b"\x00\xff\xfe\x80 binary",
        "deep.json": "[" * 200_000,
        "huge-number.json": variant(**{"metrics.mae": 0}).replace('"mae": 0', '"mae": 1e999', 1),
        "nan.json": nan,
        "tampered-metrics.json": tampered,
        "wrong-job-id.json": variant(**{"job.seed": 99}),
        "old-schema.json": variant(schema_version=1),
        "path-task.json": variant(**{"job.task": "../../etc", "metrics.mae": 1e-9}),
        "injected-model.json": variant(**{"job.model": "x | INJECTED-MODEL | 0.0 |", "metrics.mae": 1e-9}),
        "newline-task.json": variant(**{"job.task": "toy\n| INJECTED-TASK | 0.0 |"}),
        "bad-status.json": variant(status="great"),
        "missing-field.json": json.dumps({k: v for k, v in good.items() if k != "predictions"}),
        "bad-types.json": variant(predictions="all correct", metrics=[]),
        "folder.json": None,
    }


def bench_files(root):
    return sorted(p for p in root.rglob("*.json") if not any(x.startswith(".") for x in p.relative_to(root).parts))


def test_leaderboard_build_survives_crafted_and_malformed_records(bench, valid_results, tmp_path):
    import shutil

    root = tmp_path / "r"
    shutil.copytree(valid_results, root)
    folder = root / "toy_cubic" / "dummy"
    crafted = _crafted(root)
    for name, content in crafted.items():
        path = folder / name
        if content is None:
            path.mkdir()
            (path / "inner.json").write_text("{}")
        elif isinstance(content, bytes):
            path.write_bytes(content)
        else:
            path.write_text(content)
    # a *valid* record whose free-text fields try to inject table rows and HTML
    good = next(p for p in bench_files(root) if p.parent == root / "toy_cubic" / "sleepy")
    rec = ResultRecord.read(good).validate()
    rec.task_info["unit"] = "A^3 |\n| INJECTED-UNIT | 0.0 |"
    rec.task_info["target"] = "<script>alert(1)</script>\n| INJECTED-TARGET |"
    rec.warnings.append("target leak: x\n| INJECTED-WARNING | 0.0 |")
    good.write_text(rec.to_json())
    assert ResultRecord.read(good).validate()  # still a valid record: only free text changed

    out = tmp_path / "LB.md"
    p = bench("leaderboard", "build", "--results-dir", root, "--out", out)
    assert p.returncode == 0, p.stderr
    assert "Traceback" not in p.stderr and "Traceback" not in p.stdout
    skipped = [line for line in p.stderr.splitlines() if line.startswith("warning: skipped invalid result file")]
    for name in crafted:
        if name == "folder.json":
            continue
        hits = [line for line in skipped if f"{folder / name}:" in line]
        assert len(hits) == 1, f"{name} not named exactly once:\n{p.stderr}"
    assert all(line.startswith(("warning:", "error:", "note:", "wrote ")) for line in p.stderr.splitlines()), p.stderr
    text = out.read_text()
    lines = text.splitlines()
    assert not [line for line in lines if line.lstrip().startswith("| INJECTED")], text
    assert "INJECTED-MODEL" not in text and "INJECTED-TASK" not in text and "../../etc" not in text
    assert "<script>" not in text
    assert "1e-09" not in text and "0.000000001" not in text  # the tampered "best" score is not shown
    rows = [line for line in lines if line.startswith("| toy\\_cubic")]
    assert rows, text  # the valid records still make their row
    assert all("dummy" not in r for r in rows)  # cells hold numbers, not names


# ----------------------------------------------------------------------------- case 10
EVIL_MODULE = """
import os, pathlib

pathlib.Path(os.environ["CBTEST_EVIL_MARKER"]).write_text("imported\\n")


class Evil:
    @classmethod
    def from_dict(cls, d):
        pathlib.Path(os.environ["CBTEST_EVIL_MARKER"]).write_text("from_dict called\\n")
        return cls()
"""


def _cell(a: float) -> dict:
    return {
        "@module": "pymatgen.core.structure", "@class": "Structure", "charge": 0, "properties": {},
        "lattice": {"matrix": [[a, 0.0, 0.0], [0.0, a, 0.0], [0.0, 0.0, a]], "pbc": [True, True, True]},
        "sites": [
            {"species": [{"element": "Cs", "occu": 1}], "abc": [0.0, 0.0, 0.0], "properties": {}, "label": "Cs"},
            {"species": [{"element": "Cl", "occu": 1}], "abc": [0.5, 0.5, 0.5], "properties": {}, "label": "Cl"},
        ],
    }


def test_structure_dicts_naming_a_module_never_import_it(bench, tmp_path):
    import csv

    evil_dir = tmp_path / "evil"
    evil_dir.mkdir()
    (evil_dir / "cbtest_evil_mod.py").write_text(EVIL_MODULE)
    marker = tmp_path / "IMPORTED"
    evil = {"@module": "cbtest_evil_mod", "@class": "Evil"}

    hostile = {}
    d = _cell(4.0)
    d.update(evil)
    hostile["evil-top"] = d
    d = _cell(4.1)
    d["sites"][0]["properties"] = {"magmom": dict(evil)}
    hostile["evil-site-property"] = d
    d = _cell(4.2)
    d["lattice"].update(evil)
    hostile["evil-lattice"] = d
    d = _cell(4.3)
    d["properties"] = {"note": dict(evil)}
    hostile["evil-properties"] = d
    d = _cell(4.4)
    d["sites"][1]["species"][0].update(evil)
    hostile["evil-species"] = d

    data = tmp_path / "data.csv"
    n_good = 30
    with open(data, "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["id", "structure", "y"])
        for i in range(n_good):
            a = 3.0 + 3.0 * i / n_good
            w.writerow([f"s{i}", json.dumps(_cell(a)), repr(a**3 / 2)])
        for sid, d in hostile.items():
            w.writerow([sid, json.dumps(d), "50.0"])
        w.writerow(["evil-repr", repr(hostile["evil-top"]), "50.0"])  # Python-literal form of the same dict

    env = bench.environ(CBTEST_EVIL_MARKER=str(marker))
    env["PYTHONPATH"] = str(evil_dir) + ":" + env["PYTHONPATH"]
    # the module is importable in that environment: the check below means something
    import subprocess

    probe = subprocess.run([sys.executable, "-c", "import cbtest_evil_mod"], env=env, capture_output=True, text=True)
    assert probe.returncode == 0 and marker.exists(), probe.stderr
    marker.unlink()

    p = bench("run", "-m", "dummy", "--data", data, "--target", "y", "--json", "--results-dir", tmp_path / "r",
              env=env)
    assert not marker.exists(), f"a user's structure dict imported a module: {marker.read_text()!r}"
    assert "Traceback" not in p.stderr, p.stderr
    assert p.returncode == 0, p.stderr
    [rec] = bench.records(p)
    assert rec["status"] == "ok"
    [f] = bench.result_files(tmp_path / "r")
    stored = ResultRecord.read(f).validate()
    assert stored.provenance["dataset"]["n"] == n_good  # every hostile row was left out
