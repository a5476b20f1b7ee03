"""The `ray` executor: every job is a Ray task (`bench run --executor ray`).

No address: a local Ray instance is started for the run (`ray.init(num_cpus=...)`,
``--workers N`` CPUs, default all cores) and shut down at the end. With
``--ray-address auto`` (a node of a running cluster) or ``ray://host:10001``
(Ray Client) the run joins that cluster and leaves it running.

Each job is one call of the remote function `worker.run_remote` with
``num_cpus=--cpus-per-job`` and ``num_gpus=--gpus-per-job`` (fractional: 0.25
packs four jobs on a GPU; Ray sets CUDA_VISIBLE_DEVICES for each task, so
``--device cuda`` names the GPU Ray gave it). Ray schedules them; the driver
keeps at most as many in flight as the cluster has slots for (recomputed from
`ray.cluster_resources()` as nodes join), so a job is claimed only when it can
start, and waits with `ray.wait`. Jobs travel as `Job.to_dict()`, records come
back as `ResultRecord.to_dict()`; the run's `WorkerSetup` is put in the object
store once. Workers read datasets from the shared data directory (the driver's
`--data-dir`, same path on every node) and memoise them per worker process.

Ray's own task retries are off (``max_retries=0``): a task whose worker died
(`WorkerCrashedError`, `OutOfMemoryError`, `NodeDiedError`...) comes back as a
`crashed` failure and the runner retries it (`--retries`), so the count and the
reason end up in the record either way.
"""

from __future__ import annotations

import logging
import math
import os
from collections.abc import Iterator
from typing import Any

from crystalbench.contract.errors import CrystalbenchError
from crystalbench.contract.job import Job
from crystalbench.runtime.executors.base import Failure, NextJob, Outcome, RunSetup

__all__ = ["RayExecutor", "import_ray"]

INSTALL_HINT = "pip install 'crystalbench[ray]' (or: pip install ray==2.60.0)"


def import_ray() -> Any:
    try:
        import ray
    except ImportError as exc:
        raise CrystalbenchError(f"--executor ray needs Ray, which is not installed ({exc}): {INSTALL_HINT}") from None
    return ray


class RayExecutor:
    """Runs jobs as Ray tasks on a local Ray instance or a cluster."""

    name = "ray"

    def __init__(self, *, address: str | None = None, num_cpus: int | None = None, cpus_per_job: float = 1.0,
                 gpus_per_job: float = 0.0, object_store_memory: int | None = None) -> None:
        if cpus_per_job <= 0:
            raise CrystalbenchError(f"--cpus-per-job must be positive (got {cpus_per_job})")
        if gpus_per_job < 0:
            raise CrystalbenchError(f"--gpus-per-job must be 0 or more (got {gpus_per_job})")
        if gpus_per_job > 1 and gpus_per_job != int(gpus_per_job):
            raise CrystalbenchError(f"--gpus-per-job above 1 must be a whole number (got {gpus_per_job})")
        if num_cpus is not None and num_cpus < 1:
            raise CrystalbenchError(f"--workers must be at least 1 (got {num_cpus})")
        self.address = address or os.environ.get("RAY_ADDRESS") or None  # ray.init reads RAY_ADDRESS too
        self.num_cpus = num_cpus
        self.cpus_per_job = float(cpus_per_job)
        self.gpus_per_job = float(gpus_per_job)
        self.object_store_memory = object_store_memory
        self._ray: Any = None
        self._owns_ray = False
        self._remote: Any = None
        self._setup_ref: Any = None
        self._inflight: dict[Any, Job] = {}
        self._closed = False

    def describe(self) -> str:
        where = f"cluster at {self.address}" if self.address else f"local Ray instance, {self._cpus()} CPUs"
        gpus = f", {self.gpus_per_job:g} GPU" if self.gpus_per_job else ""
        return f"ray ({where}; {self.cpus_per_job:g} CPU{gpus} per job)"

    def _cpus(self) -> int:
        return self.num_cpus or os.cpu_count() or 1

    @property
    def running(self) -> int:
        return len(self._inflight)

    def start(self, setup: RunSetup) -> None:
        ray = self._ray = import_ray()
        from crystalbench.runtime.executors import worker

        if not ray.is_initialized():
            kwargs: dict[str, Any] = {"include_dashboard": False, "logging_level": logging.WARNING,
                                      "configure_logging": True}
            if self.address:
                _check_reachable(self.address)
            try:
                if self.address:
                    ray.init(address=self.address, **kwargs)
                else:
                    _quiet_local_token_notice()
                    # "local": a new instance even when `ray start` runs on this machine (ray.init() would join it)
                    ray.init(address="local", num_cpus=self._cpus(), object_store_memory=self.object_store_memory,
                             **kwargs)
            except Exception as exc:  # no cluster at the address, a version mismatch...
                where = f"the Ray cluster at {self.address}" if self.address else "a local Ray instance"
                first = (str(exc).strip().splitlines() or [""])[0]
                hint = ""
                if self.address == "auto":
                    hint = " (on a cluster node, start Ray first: `ray start --head`; or give --ray-address HOST:6379)"
                elif self.address and os.environ.get("RAY_AUTH_MODE") != "token":
                    hint = (" (a cluster with token authentication needs RAY_AUTH_MODE=token here, and its token "
                            "in RAY_AUTH_TOKEN or ~/.ray/auth_token)")
                raise CrystalbenchError(f"cannot start or join {where}: {type(exc).__name__}: {first}{hint}") from None
            self._owns_ray = True
        # a job's featurization uses the CPUs Ray gave it, not every core of the node
        jobs = max(1, math.floor(self.cpus_per_job))
        self._setup_ref = ray.put(setup.for_workers(jobs=jobs))
        self._remote = ray.remote(worker.run_remote).options(
            num_cpus=self.cpus_per_job, num_gpus=self.gpus_per_job, max_retries=0, retry_exceptions=False,
            name="crystalbench-job",
        )
        self._slots()  # fail now, not after the first job, when no node could ever run one

    def _slots(self) -> int:
        """How many jobs the cluster can run at once with the per-job resources asked."""
        res = self._ray.cluster_resources()
        slots = math.floor(float(res.get("CPU", 0)) / self.cpus_per_job + 1e-9)
        if self.gpus_per_job:
            slots = min(slots, math.floor(float(res.get("GPU", 0)) / self.gpus_per_job + 1e-9))
        if slots < 1:
            need = f"{self.cpus_per_job:g} CPU" + (f" and {self.gpus_per_job:g} GPU" if self.gpus_per_job else "")
            have = f"{float(res.get('CPU', 0)):g} CPU and {float(res.get('GPU', 0)):g} GPU"
            raise CrystalbenchError(f"the Ray cluster has {have} in all: a job asking for {need} could never start")
        return slots

    def submit(self, next_job: NextJob) -> Iterator[Outcome]:
        ray = self._ray
        if ray is None or self._remote is None:
            raise CrystalbenchError("executor used before start()")
        exceptions = ray.exceptions
        while True:
            free = self._slots() - len(self._inflight)
            while free > 0:
                job = next_job()
                if job is None:
                    break
                self._inflight[self._remote.remote(job.to_dict(), self._setup_ref)] = job
                free -= 1
            if not self._inflight:
                return
            ready, _ = ray.wait(list(self._inflight), num_returns=1, timeout=5.0)
            for ref in ready:
                job = self._inflight.pop(ref)
                try:
                    payload = ray.get(ref)
                except exceptions.RayTaskError as exc:  # the remote function itself raised (it catches jobs' errors)
                    yield Outcome(job, failure=Failure("error", f"Ray task failed: {_first(exc)}", str(exc)))
                    continue
                except exceptions.TaskCancelledError:
                    yield Outcome(job, failure=Failure("crashed", "the Ray task was cancelled"))
                    continue
                except exceptions.RayError as exc:  # worker crashed, out of memory, node died, object lost
                    yield Outcome(job, failure=Failure("crashed", f"{type(exc).__name__} from Ray: {_first(exc)}"))
                    continue
                yield Outcome.from_wire(job, payload)

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        ray = self._ray
        if ray is None:
            return
        for ref in list(self._inflight):
            try:
                ray.cancel(ref, force=True)
            except Exception:  # already finished or the cluster is gone
                pass
        self._inflight.clear()
        if self._owns_ray:
            try:
                ray.shutdown()
            except Exception:  # shutting down a broken local instance must not hide the real error
                pass


class _DropLocalTokenNotice(logging.Filter):
    """Drops Ray's "Token authentication is enabled for this Ray cluster" notice (one per local run).

    Ray >= 2.5x turns token authentication on for every new local instance and says so at
    WARNING level each time; for the instance `bench run` starts and stops itself that is
    noise, not a decision the user has to take. Authentication stays on: only the notice goes.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        return not record.getMessage().startswith("Token authentication is enabled for this Ray cluster")


def _quiet_local_token_notice() -> None:
    logger = logging.getLogger("ray._private.authentication.authentication_token_setup")
    if not any(isinstance(f, _DropLocalTokenNotice) for f in logger.filters):
        logger.addFilter(_DropLocalTokenNotice())


def _check_reachable(address: str, timeout: float = 10.0) -> None:
    """Fail in seconds, not minutes, when nothing listens at HOST:PORT (ray.init would retry for a long time)."""
    import socket

    target = address.split("://", 1)[-1]
    host, sep, port = target.rpartition(":")
    if not sep or not port.isdigit() or not host:
        return  # "auto", a bare host name...: left to Ray
    try:
        with socket.create_connection((host.strip("[]"), int(port)), timeout=timeout):
            pass
    except OSError as exc:
        why = exc.strerror or type(exc).__name__
        raise CrystalbenchError(
            f"no Ray cluster answers at {address} ({why}): start one with `ray start --head` on that node, "
            "or check the address and port (GCS 6379, Ray Client ray://HOST:10001)"
        ) from None


def _first(exc: BaseException) -> str:
    lines = [line for line in str(exc).strip().splitlines() if line.strip()]
    return lines[0][:300] if lines else type(exc).__name__
