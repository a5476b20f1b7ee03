"""Test plugin: a third-party suite (models and tasks of another plugin, the toolkit)."""

from crystalbench import hookimpl
from crystalbench.contract.specs import SuiteEntry, SuiteSpec


@hookimpl
def bench_suites():
    return [
        SuiteSpec("cbtest-suite", (
            SuiteEntry(models=("dummy", "sleepy"), tasks=("toy_cubic",), seeds=(0, 1), label="toy"),
            SuiteEntry(models=("sleepy",), tasks=("toy_*",), config={"sleepy": {"epochs": 2}}, label="two epochs"),
        ), "a toy suite from a third-party plugin"),
        SuiteSpec("paper-table1", (SuiteEntry(models=("dummy",), tasks=("toy_cubic",)),), "a clash: ignored"),
        SuiteSpec("bad suite", (SuiteEntry(models=("dummy",), tasks=("toy_cubic",)),)),
        SuiteSpec("cbtest-empty", ()),
    ]
