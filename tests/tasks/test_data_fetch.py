"""`bench data fetch` / `bench data status` without the network: a fake downloader serves the shipped files."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from helpers import bench_invoke

from crystalbench.contract import download
from crystalbench.tasks import sources

SHARED = Path(os.environ.get("CRYSTALBENCH_DATA_DIR", ""))


class FakeWeb:
    """Serves the files of the shared data folder under the URLs fetch asks for; records every request."""

    def __init__(self, corrupt: bool = False, fail: bool = False) -> None:
        self.urls: list[str] = []
        self.corrupt = corrupt
        self.fail = fail
        self.routes = {
            sources._GITHUB_RAW.format(repo=repo, commit=commit, path=path): SHARED / rel
            for rel, (repo, commit, path, _sha, _note) in sources.GITHUB_FILES.items()
        }
        for p in (SHARED / "matbench").glob("matbench_*.json.gz"):
            self.routes[f"https://ml.materialsproject.org/projects/{p.name}"] = p

    def __call__(self, url: str) -> bytes:
        self.urls.append(url)
        if self.fail:
            raise OSError("Temporary failure in name resolution")
        body = self.routes[url].read_bytes()
        return body + b"x" if self.corrupt else body


@pytest.fixture
def web(monkeypatch, data_dir) -> FakeWeb:
    fake = FakeWeb()
    monkeypatch.setattr(download, "http_download", fake)
    monkeypatch.delenv("CRYSTALBENCH_OFFLINE", raising=False)
    return fake


def test_fetch_matbench_downloads_verifies_and_makes_the_task_available(web, tmp_path):
    pytest.importorskip("matminer")
    code, out = bench_invoke("data", "fetch", "matbench_phonons", "--data-dir", str(tmp_path))
    assert code == 0, out
    assert web.urls == ["https://ml.materialsproject.org/projects/matbench_phonons.json.gz"]
    dest = tmp_path / "matbench" / "matbench_phonons.json.gz"
    assert dest.read_bytes() == (SHARED / "matbench" / "matbench_phonons.json.gz").read_bytes()
    assert "downloaded" in out and "sha256 verified" in out
    # a second fetch downloads nothing
    code, out = bench_invoke("data", "fetch", "matbench_phonons", "--data-dir", str(tmp_path))
    assert code == 0 and "matbench_phonons: present" in out and len(web.urls) == 1


def test_fetch_property_task_from_pinned_repositories(web, tmp_path):
    code, out = bench_invoke("data", "fetch", "phonon_cv", "--data-dir", str(tmp_path))
    assert code == 0, out
    assert all("raw.githubusercontent.com" in u for u in web.urls) and len(web.urls) == 3
    assert (tmp_path / "gong2023_labels_only" / "cv_test.csv").is_file()
    code, out = bench_invoke("data", "status", "--data-dir", str(tmp_path))
    line = next(x for x in out.splitlines() if x.startswith("phonon_cv "))
    assert " yes" in line and "MISSING" not in line


def test_checksum_mismatch_writes_nothing(monkeypatch, data_dir, tmp_path):
    fake = FakeWeb(corrupt=True)
    monkeypatch.setattr(download, "http_download", fake)
    monkeypatch.delenv("CRYSTALBENCH_OFFLINE", raising=False)
    code, out = bench_invoke("data", "fetch", "phonon_cv", "--data-dir", str(tmp_path))
    assert code == 1
    assert "is not the expected" in out and "nothing written" in out, out
    assert not any(p.is_file() for p in tmp_path.rglob("*")), "a corrupt download must leave no file (not even a temp)"


def test_network_failure_and_offline_are_reported(monkeypatch, data_dir, tmp_path):
    fake = FakeWeb(fail=True)
    monkeypatch.setattr(download, "http_download", fake)
    monkeypatch.delenv("CRYSTALBENCH_OFFLINE", raising=False)
    code, out = bench_invoke("data", "fetch", "piezo_modulus", "--data-dir", str(tmp_path))
    assert code == 1 and "download of https://raw.githubusercontent.com/" in out and "name resolution" in out, out

    monkeypatch.setenv("CRYSTALBENCH_OFFLINE", "1")
    fake.urls.clear()
    code, out = bench_invoke("data", "fetch", "piezo_modulus", "--data-dir", str(tmp_path))
    assert code == 1 and "downloads are off" in out and fake.urls == []


def test_undownloadable_data_says_where_to_get_it(web, tmp_path):
    code, out = bench_invoke("data", "fetch", "e_fin", "log_kappa", "--data-dir", str(tmp_path))
    assert code == 1
    assert "e_fin: cannot download matcalc_benchmark_data/wbm-random-pbe52-equilibrium-2025.1.json.gz" in out
    assert "github.com/materialsvirtuallab/matcalc" in out
    assert "figshare.19654224" in out  # log_kappa's structures: labels downloadable, structures by hand
    assert "data still missing for: e_fin, log_kappa" in out


def test_unknown_task_and_patterns(web, tmp_path):
    code, out = bench_invoke("data", "fetch", "phonon_vc", "--data-dir", str(tmp_path))
    assert code == 2 and "error: unknown task 'phonon_vc'" in out and "phonon_cv" in out
    code, out = bench_invoke("data", "fetch", "chain1d_*", "--data-dir", str(tmp_path))
    assert code == 0 and out.count(": present") == 6 and web.urls == []  # 4 chain tasks + 2 mixed (Fig. S3)


def test_status_on_an_empty_data_dir_gives_a_next_step_for_every_missing_task(tmp_path):
    code, out = bench_invoke("data", "status", "--data-dir", str(tmp_path / "none"))
    assert code == 0
    assert "(does not exist)" in out
    rows = [x for x in out.splitlines() if " MISSING" in x]
    assert len(rows) > 40
    for row in rows:
        assert "bench data fetch" in row or "by hand" in row, row
    assert any(r.startswith("matbench_steels ") and r.rstrip().endswith("bench data fetch matbench_steels")
               for r in rows)
    assert "by hand (cannot be downloaded by `bench data fetch`):" in out
    assert "pip download matminer==0.3.5" in out
