"""A plugin that imports fine but raises inside its hooks."""

from crystalbench import hookimpl


@hookimpl
def bench_models():
    raise RuntimeError("boom from broken_hook")


@hookimpl
def bench_tasks():
    return ["not a TaskSpec"]
