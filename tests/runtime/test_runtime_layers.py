"""The runtime's layering (issue #20): the runtime and the contract never import `crystalbench.tune`, tuning observes epochs
through the generic observer option, and executors declare their own command-line options."""

import ast
import types
from pathlib import Path

from click.testing import CliRunner

import crystalbench
from crystalbench import ExecutorOption, ExecutorSpec, hookimpl
from crystalbench.cli import cli
from crystalbench.contract import telemetry
from crystalbench.runtime.registry import load_registry

PACKAGE = Path(crystalbench.__file__).parent
CORE = (PACKAGE / "contract", PACKAGE / "runtime")


def _imports(path: Path) -> list[str]:
    """Every module a file imports, relative imports resolved against its package."""
    package = ".".join(path.relative_to(PACKAGE.parent).with_suffix("").parts[:-1])
    out = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            out.extend(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = package.rsplit(".", node.level - 1)[0] if node.level else ""
            module = ".".join(p for p in (base, node.module or "") if p)
            out.append(module)
            out.extend(f"{module}.{a.name}" for a in node.names)
    return out


def test_the_runtime_never_imports_tune():
    files = sorted(f for d in CORE for f in d.rglob("*.py"))
    assert len(files) > 30
    bad = [(f.relative_to(PACKAGE), m) for f in files for m in _imports(f)
           if m == "crystalbench.tune" or m.startswith("crystalbench.tune.") or m.endswith(".tuning")]
    assert not bad, bad
    assert not any((d / "tuning.py").exists() for d in CORE)


def _recording_observer(job_id, config):
    """An observer factory named by "module:function", as `bench tune` names its pruner."""
    if job_id not in config["jobs"]:
        return None
    return lambda epoch, value: epoch >= config["stop_at"]


def test_observers_are_asked_for_by_name_through_the_options():
    options = telemetry.with_epoch_observer({"origin": "tune"}, f"{__name__}:_recording_observer",
                                            {"jobs": ["a"], "stop_at": 2})
    assert options["origin"] == "tune" and len(options[telemetry.OBSERVERS_OPTION]) == 1
    assert telemetry.epoch_observer("b", options) is None  # not one of its jobs
    with telemetry.observing_epochs(telemetry.epoch_observer("a", options)):
        assert [telemetry.report_epoch(e, 0.5) for e in (1, 2)] == [False, True]
    assert telemetry.report_epoch(3, 0.5) is False  # none installed outside the block
    assert telemetry.epoch_observer("a", {}) is None


def _dummy_executor_plugin():
    def factory(ctx, options):
        raise AssertionError("not built by --help")

    module = types.ModuleType("cbtest_dummy_executor")
    module.bench_executors = hookimpl(lambda: [ExecutorSpec(
        name="dummyexec", factory=factory, description="test only",
        options=(ExecutorOption("queue_depth", type="int", metavar="DEPTH", help="dummyexec: jobs queued per slot."),
                 ExecutorOption("epochs", help="clashes with bench run's own flag"))),
    ])
    return module


def test_executor_options_come_from_the_spec():
    reg = load_registry(extra_plugins=[("cbtest_dummy_executor", _dummy_executor_plugin())])
    out = CliRunner().invoke(cli, ["run", "--help"], obj={"registry": reg})
    assert out.exit_code == 0, out.output
    assert "--queue-depth DEPTH" in out.output and "dummyexec: jobs queued per slot." in out.output
    assert "--gpus-per-job" in out.output and "--ray-address" in out.output  # the built-in ray executor's
    assert "clashes with bench run's own flag" not in out.output  # a clash with a core flag is skipped
    assert "executor 'dummyexec': --epochs is already a flag" in out.stderr
    # an option of one executor given to another: one error line naming who takes it
    bad = CliRunner().invoke(cli, ["run", "-m", "dummy", "-t", "chain1d_short", "--queue-depth", "2"],
                             obj={"registry": reg})
    assert bad.exit_code == 2 and "--queue-depth applies to --executor dummyexec, not local" in bad.output
    assert "Traceback" not in bad.output
