"""Throughput of the executors, side by side in one run: jobs per minute for the same grid.

    python benchmarks/executor_scaling.py [--task chain1d_short] [--seeds 8] [--trees 800] [--workers 2] [--repeat 2]

CPU: a grid of `--seeds` small CPU jobs (rf, `--trees` trees on one thread, on
`--task` with its gong29 descriptors, one job per seed) is run by

    local sequential                 (`bench run`, the default)
    local --workers N                (N worker processes)
    ray, N CPUs (run starts Ray)     (`--executor ray`: a local Ray instance started by the run)
    ray, N CPUs (Ray already up)     (`--ray-address auto` on a running instance: Ray's start-up excluded)

each into its own results directory, after one warm-up job that fills the
descriptor and dataset caches (so every mode reads the same warm cache). Wall
times are end to end, start-up of worker processes (and of Ray, but for the
last mode) included. The modes are interleaved `--repeat` times so that they
see the same machine load, and the best time of each is reported (the median
in brackets). The metrics of every mode are compared per job id.

GPU (only when torch sees CUDA): cgcnn (`--gpu-epochs`) on the same task, one job
per seed, run sequentially on the GPU and as Ray tasks with 0.25 GPU each
(four jobs packed per GPU); the ratio of jobs per minute is printed.

Not part of the test suite. Prints the machine (cores, load average) so the
numbers can be judged.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from crystalbench.contract.context import RunContext
from crystalbench.runtime.executors.local import ProcessExecutor
from crystalbench.runtime.registry import load_registry
from crystalbench.runtime.runner import GridRequest, run_grid


def _run(reg, ctx: RunContext, req: GridRequest, executor) -> tuple[float, dict[str, dict]]:
    t0 = time.perf_counter()
    summary = run_grid(reg, ctx, req, executor=executor)
    wall = time.perf_counter() - t0
    if not summary.ok or len(summary.finished) != summary.planned:
        raise SystemExit(f"run failed: {summary.errors} {[r.error for r in summary.finished if not r.ok]}")
    return wall, {r.job_id: r.metrics for r in summary.finished}


def _ray(**kw):
    from crystalbench.runtime.executors.ray_executor import RayExecutor

    return RayExecutor(**kw)


def _row(name: str, wall: float, n: int, base: float | None) -> str:
    jpm = 60.0 * n / wall
    ratio = f"{base / wall:5.2f}x" if base else "1.00x"
    return f"  {name:<34} {wall:7.1f} s   {jpm:6.1f} jobs/min   {ratio}"


def _burn(n: int) -> float:
    t0 = time.perf_counter()
    total = 0
    for i in range(n):
        total += i
    return time.perf_counter() - t0


def cpu_ceiling(workers: int, n: int = 20_000_000) -> float:
    """Throughput of `workers` concurrent CPU-bound processes relative to one: the best any executor can do now."""
    import multiprocessing as mp

    with mp.get_context("spawn").Pool(workers) as pool:
        pool.map(_burn, [1000] * workers)  # start-up out of the measurement
        one = pool.apply(_burn, (n,))
        t0 = time.perf_counter()
        pool.map(_burn, [n] * workers, chunksize=1)
        both = time.perf_counter() - t0
    return workers * one / both


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--task", default="chain1d_short")
    ap.add_argument("--seeds", type=int, default=8, help="jobs in the grid (one per seed)")
    ap.add_argument("--trees", type=int, default=800, help="rf trees per job (job size)")
    ap.add_argument("--repeat", type=int, default=2, help="runs of every mode, interleaved; the best is reported")
    ap.add_argument("--workers", type=int, default=2, help="worker processes / Ray CPUs")
    ap.add_argument("--gpu-epochs", type=int, default=30)
    ap.add_argument("--data-dir", type=Path, default=None)
    ap.add_argument("--no-ray", action="store_true")
    args = ap.parse_args()

    tmp = Path(tempfile.mkdtemp(prefix="cb-executor-scaling-"))
    cache = Path(os.environ.get("CRYSTALBENCH_CACHE_DIR") or tmp / "cache")
    base_ctx = dict(cache_dir=cache, jobs=args.workers, threads=1, progress=False)
    if args.data_dir:
        base_ctx["data_dir"] = args.data_dir
    reg = load_registry(ctx=RunContext(**base_ctx))
    seeds = list(range(args.seeds))
    req = GridRequest(models=["rf"], tasks=[args.task], seeds=seeds,
                      config={"rf": {"n_estimators": args.trees, "n_jobs": 1}})
    print(f"machine: {os.cpu_count()} cores, load average {os.getloadavg()[0]:.2f} (1 min) at start; "
          f"Python {sys.version.split()[0]}")
    print(f"CPU ceiling: {args.workers} busy processes get {cpu_ceiling(args.workers):.2f}x the throughput of one "
          "right now (other load on the machine lowers it)")
    print(f"grid: rf ({args.trees} trees, 1 thread) on {args.task}, {len(seeds)} jobs (seeds 0-{len(seeds) - 1})")

    warm = GridRequest(models=["rf"], tasks=[args.task], seeds=[10_000], config={"rf": {"n_estimators": 10}})
    t0 = time.perf_counter()
    run_grid(reg, RunContext(results_dir=tmp / "warmup", **base_ctx), warm)
    print(f"warm-up (dataset + descriptors cached): {time.perf_counter() - t0:.1f} s")

    modes: list[tuple[str, object]] = [
        ("local sequential", lambda: None),
        (f"local --workers {args.workers}", lambda: ProcessExecutor(args.workers)),
    ]
    if not args.no_ray:
        try:
            import ray
        except ImportError as exc:
            print(f"ray: skipped ({exc})")
        else:
            modes.append((f"ray, {args.workers} CPUs (run starts Ray)",
                          lambda: _ray(num_cpus=args.workers, cpus_per_job=1)))
            modes.append((f"ray, {args.workers} CPUs (Ray already up)", "ray-up"))
    walls: dict[str, list[float]] = {name: [] for name, _ in modes}
    metrics: dict[str, dict] = {}
    for rep in range(args.repeat):  # interleaved, so every mode sees the same (changing) machine load
        for name, make in modes:
            ctx = RunContext(results_dir=tmp / f"rep{rep}-mode{list(walls).index(name)}", **base_ctx)
            if make == "ray-up":
                ray.init(num_cpus=args.workers, include_dashboard=False, logging_level="WARNING")
                try:
                    wall, m = _run(reg, ctx, req, _ray(cpus_per_job=1))  # joins the running instance
                finally:
                    ray.shutdown()
            else:
                wall, m = _run(reg, ctx, req, make())  # type: ignore[operator]
            walls[name].append(wall)
            metrics.setdefault(name, m)
            print(f"  rep {rep + 1}: {name:<34} {wall:6.1f} s   (load average {os.getloadavg()[0]:.2f})", flush=True)

    print(f"\nCPU, {len(seeds)} jobs, best of {args.repeat} (median in brackets), end to end:")
    base = min(walls[modes[0][0]])
    for name, _ in modes:
        best = min(walls[name])
        med = statistics.median(walls[name])
        jpm = 60.0 * len(seeds) / best
        print(f"  {name:<34} {best:7.1f} s ({med:.1f})  {jpm:6.1f} jobs/min   {base / best:5.2f}x")
    first = metrics[modes[0][0]]
    same = all(m == first for m in metrics.values())
    print(f"  same metrics per job id in every mode: {'yes' if same else 'NO'}")
    print(f"load average {os.getloadavg()[0]:.2f} (1 min) at the end; CPU ceiling now "
          f"{cpu_ceiling(args.workers):.2f}x")

    try:
        import torch

        cuda = torch.cuda.is_available()
    except ImportError:
        cuda = False
    if not cuda:
        print("\nGPU: torch sees no CUDA device here: GPU packing (4 jobs per GPU) not measured")
        return
    gpu_req = GridRequest(models=["cgcnn"], tasks=[args.task], seeds=seeds, epochs=args.gpu_epochs)
    gctx = dict(base_ctx, device="cuda")
    run_grid(reg, RunContext(results_dir=tmp / "gpu-warmup", **gctx),
             GridRequest(models=["cgcnn"], tasks=[args.task], seeds=[10_000], epochs=1))
    seq_wall, _ = _run(reg, RunContext(results_dir=tmp / "gpu-seq", **gctx), gpu_req, None)
    cpus = max(0.25, (os.cpu_count() or 4) / 4)
    packed_wall, _ = _run(reg, RunContext(results_dir=tmp / "gpu-packed", **gctx), gpu_req,
                          _ray(cpus_per_job=min(cpus, 4.0), gpus_per_job=0.25))
    print(f"\nGPU ({torch.cuda.get_device_name(0)}), cgcnn {args.gpu_epochs} epochs, {len(seeds)} jobs:")
    print(_row("sequential on the GPU", seq_wall, len(seeds), None))
    print(_row("ray, 4 jobs per GPU", packed_wall, len(seeds), seq_wall))


if __name__ == "__main__":
    main()
