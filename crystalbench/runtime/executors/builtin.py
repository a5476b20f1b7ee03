"""Built-in executors `local` and `ray`, registered through the `bench_executors` hook like any plugin's.

Each declares its command-line options in its spec (`ExecutorSpec.options`), so
`bench run` and `bench tune` show and parse them without knowing either executor;
the factory receives them as its `options` mapping:

    workers       local: worker processes (1: one job at a time, each in a child process forked
                  from this one; in this process with --debug);
                  ray without an address: CPUs of the local Ray instance (default: all cores)
    address       ray (`--ray-address`): None starts a local instance; "auto" or "ray://host:10001"
                  joins a cluster
    cpus_per_job  ray: CPUs Ray reserves for each job (default 1; fractional allowed)
    gpus_per_job  ray: GPUs Ray reserves for each job (default 0; 0.25 packs four jobs per GPU)
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from crystalbench.contract.context import RunContext
from crystalbench.contract.errors import BadInputError
from crystalbench.contract.hookspecs import hookimpl
from crystalbench.contract.specs import ExecutorOption, ExecutorSpec

__all__ = ["bench_executors", "make_local", "make_ray"]


def _reject(name: str, options: Mapping[str, Any], *keys: str) -> None:
    given = [k for k in keys if options.get(k) not in (None, 0, 0.0, "")]
    if given:
        flags = ", ".join("--" + ("ray-address" if k == "address" else k.replace("_", "-")) for k in given)
        raise BadInputError(f"{flags} applies to --executor ray, not {name}")


def make_local(ctx: RunContext, options: Mapping[str, Any]) -> Any:
    from crystalbench.runtime.executors.local import ProcessExecutor, SequentialExecutor

    _reject("local", options, "address", "cpus_per_job", "gpus_per_job")
    workers = 1 if options.get("workers") is None else int(options["workers"])
    if workers < 1:
        raise BadInputError(f"--workers must be at least 1 (got {workers})")
    if workers == 1:  # each job in a forked child, so plugin code cannot end the grid; --debug: in-process
        return SequentialExecutor(isolate=not ctx.debug)
    return ProcessExecutor(workers)


def make_ray(ctx: RunContext, options: Mapping[str, Any]) -> Any:
    from crystalbench.runtime.executors.ray_executor import RayExecutor

    address = options.get("address") or None
    workers = options.get("workers")
    if address and workers not in (None, 1):
        raise BadInputError("--workers sets the CPUs of a local Ray instance; with --ray-address the cluster decides")
    cpus = options.get("cpus_per_job")
    gpus = options.get("gpus_per_job")
    if gpus is None:
        gpus = 1.0 if ctx.device.startswith("cuda") else 0.0
    return RayExecutor(address=address, num_cpus=int(workers) if workers and not address else None,
                       cpus_per_job=1.0 if cpus is None else float(cpus), gpus_per_job=float(gpus),
                       object_store_memory=options.get("object_store_memory"))


WORKERS_LOCAL = ExecutorOption(
    "workers", type="int", metavar="N",
    help="local: run jobs in N worker processes (default 1: one at a time, each in a child process forked from "
         "this one; in this process with --debug).")
WORKERS_RAY = ExecutorOption(
    "workers", type="int", metavar="N", help="ray without --ray-address: CPUs of the local Ray instance "
                                             "(default: all cores).")
RAY_OPTIONS = (
    WORKERS_RAY,
    ExecutorOption("address", flag="--ray-address", metavar="ADDRESS",
                   help="ray: join a running cluster ('auto' on a cluster node, or ray://host:10001); "
                        "default: start a local Ray instance."),
    ExecutorOption("cpus_per_job", type="float", metavar="X", help="ray: CPUs reserved per job (default 1)."),
    ExecutorOption("gpus_per_job", type="float", metavar="X",
                   help="ray: GPUs reserved per job, fractional allowed: 0.25 packs 4 jobs per GPU "
                        "(default: 1 with --device cuda, else 0)."),
)


@hookimpl
def bench_executors() -> list[ExecutorSpec]:
    return [
        ExecutorSpec(
            name="local",
            factory=make_local,
            description="This machine: jobs in this process, or in N worker processes with --workers N (default).",
            options=(WORKERS_LOCAL,),
        ),
        ExecutorSpec(
            name="ray",
            factory=make_ray,
            description="Ray tasks on a local Ray instance or a cluster (--ray-address auto|ray://host:10001); "
                        "--cpus-per-job, --gpus-per-job (fractional). Needs `pip install crystalbench[ray]`.",
            options=RAY_OPTIONS,
        ),
    ]
