"""Plugin discovery, did-you-mean errors, isolation of broken plugins, disabling."""


import pytest
from cbtest_plugins import broken_hook, toolkit  # noqa: E402

from crystalbench.contract.errors import UnknownNameError  # noqa: E402
from crystalbench.runtime.registry import load_registry  # noqa: E402


def test_builtins_found_through_entry_points():
    reg = load_registry()
    names = {p.name for p in reg.plugins}
    assert {"dummy", "rf", "chains"} <= names
    assert reg.owner[("model", "dummy")] == "dummy"
    assert all(p.distribution == "crystalbench" for p in reg.plugins if p.name in ("dummy", "rf"))


def test_broken_hook_is_reported_and_skipped():
    reg = load_registry(extra_plugins=[("cbtest_broken_hook", broken_hook), ("cbtest_toolkit", toolkit)])
    msgs = [p for p in reg.problems if "cbtest_broken_hook" in p]
    assert any("boom from broken_hook" in m for m in msgs)
    assert any("expected TaskSpec" in m for m in msgs)
    assert "toy_cubic" in reg.tasks and "dummy" in reg.models  # everything else still works


def test_duplicate_names_keep_the_first():
    class Copy:  # a second plugin object offering the same task name
        bench_tasks = staticmethod(toolkit.bench_tasks)

    reg = load_registry(extra_plugins=[("a", toolkit), ("b", Copy())])
    assert reg.owner[("task", "toy_cubic")] == "a"
    assert any("already provided by 'a'" in p for p in reg.problems)


def test_disable_by_flag_and_env(monkeypatch):
    reg = load_registry(extra_plugins=[("cbtest_toolkit", toolkit)], disable=["cbtest_toolkit"])
    assert "toy_cubic" not in reg.tasks
    monkeypatch.setenv("CRYSTALBENCH_DISABLE_PLUGINS", "rf, cbtest_toolkit")
    reg = load_registry(extra_plugins=[("cbtest_toolkit", toolkit)])
    assert "rf" not in reg.models and "toy_cubic" not in reg.tasks
    assert [p.disabled for p in reg.plugins if p.name == "rf"] == [True]


def test_unknown_names_suggest_close_matches():
    reg = load_registry(extra_plugins=[("cbtest_toolkit", toolkit)])
    with pytest.raises(UnknownNameError, match="did you mean 'dummy'"):
        reg.model("dumy")
    with pytest.raises(UnknownNameError, match="no task matches"):
        reg.match_tasks(["zzz_*"])
    assert reg.match_tasks(["toy_c*", "toy_cubic"]) == ["toy_cubic", "toy_comp", "toy_constant"]
    assert reg.match_tasks(["toy_cub*", "toy_cubic"]) == ["toy_cubic"]
