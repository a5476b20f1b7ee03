"""Training speed of the torch models, side by side in one run (issue #14; figures in docs/speed.md).

    python benchmarks/train_speed.py [--n 1000] [--epochs 5] [--quick] [--gpu-only] [--data-dir DIR] [--no-first-run] [--no-memory]

1. CGCNN on CPU (1 torch thread): crystalbench's `CGCNNNet` through the shared loop
   (`fit_torch`, index-based batching; precise BN by its default schedule, every
   epoch, and off) and
   aviary-models' `CrystalGraphConvNet` with its own collate function, on the same
   n matbench_phonons structures (seeded 80/10/10 split), equal hyperparameters
   (8 A / 12 neighbours, Gaussian step 0.2 A, 64 atom features, 3 convolutions,
   128 hidden, Adam lr 1e-2, batch 64, same epochs); aviary's inputs are featurized
   once up front, so both sides time training only. Prints seconds per epoch
   (mean without the first epoch, so occasional recalibrations count; the
   fastest of `--repeats` alternating runs), the ratio, and the final and best
   validation MAE (cm^-1).
2. ALIGNN seconds per epoch (crystalbench's plugin, `--alignn-n` structures, 1 epoch).
3. The README's first-run job, `bench run -m dummy -m rf -m cgcnn -t chain1d_short`,
   wall time from a cold cache (fresh results and cache directories).
4. Peak RSS of `bench run -m cgcnn -t desc_vpa --epochs 1` (cold cache).
5. With CUDA: epoch times of both models on the GPU.

Not a timed test: run it by hand on a quiet machine; the numbers depend on load.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np


def load_phonons(n: int, data_dir: Path | None, seed: int = 0) -> Any:
    """n matbench_phonons structures (seeded draw) as a crystalbench `Dataset`."""
    from crystalbench.cli.main import make_context
    from crystalbench.runtime.registry import load_registry

    ctx = make_context(data_dir=data_dir, cache_dir=Path(tempfile.mkdtemp(prefix="cb-speed-")))
    reg = load_registry(ctx=ctx)
    if "matbench_phonons" not in reg.tasks:
        raise SystemExit("task matbench_phonons is not registered")
    data = reg.tasks["matbench_phonons"].load(ctx)
    idx = np.random.default_rng(seed).permutation(len(data))[: min(n, len(data))]
    return data.subset(idx)


def splits(n: int) -> tuple[list[int], list[int]]:
    return list(range(int(0.8 * n))), list(range(int(0.8 * n), int(0.9 * n)))


def ours(data: Any, epochs: int, device: str, precise_bn: bool, tolerance: float | None = 5.0) -> dict[str, float]:
    """crystalbench's CGCNN through `fit_torch` (the path `bench run -m cgcnn` takes)."""
    from crystalbench.gnn.graphs import build_graphs, collate_graphs
    from crystalbench.gnn.trainer import TrainConfig, fit_torch
    from crystalbench.plugins.cgcnn.net import CGCNNNet

    graphs = build_graphs(data.structures, keys=data.structure_keys, cache_dir=tempfile.mkdtemp(prefix="cb-speed-"))
    tr, va = splits(len(graphs))
    y = np.asarray(data.targets, dtype=float)
    cfg = TrainConfig(epochs=epochs, batch_size=64, lr=1e-2, patience=None, precise_bn=precise_bn,
                      precise_bn_tolerance=tolerance, device=device)
    res = fit_torch(CGCNNNet, [graphs[i] for i in tr], y[tr], collate_graphs, cfg=cfg,
                    val_items=[graphs[i] for i in va], y_val=y[va], seed=0)
    secs = [h["seconds"] for h in res.history]
    return {"s_epoch": statistics.fmean(secs[1:] or secs), "final_val": res.history[-1]["val"], "best_val": res.best_val}


def aviary_cgcnn(data: Any, epochs: int) -> dict[str, float]:
    """aviary-models' CGCNN with the same hyperparameters, its own collate, a plain Adam/MSE loop."""
    import pandas as pd
    import torch
    from aviary.cgcnn.data import CrystalGraphData, collate_batch
    from aviary.cgcnn.model import CrystalGraphConvNet

    y = np.asarray(data.targets, dtype=float)
    tr, va = splits(len(y))
    df = pd.DataFrame({"structure": list(data.structures), "y": y})
    ds = CrystalGraphData(df, {"y": "regression"}, radius_cutoff=8.0, max_num_nbr=12)
    if len(ds) != len(y):
        raise SystemExit("aviary dropped structures with isolated atoms: the two sides would differ")
    samples = [ds[i] for i in range(len(ds))]  # featurized once: time training only
    mean, std = float(y[tr].mean()), float(y[tr].std())
    torch.manual_seed(0)
    model = CrystalGraphConvNet(robust=False, n_targets=[1], task_dict={"y": "regression"}, elem_embedding="cgcnn92",
                                radius_cutoff=8.0,
                                radius_step=0.2, elem_fea_len=64, n_graph=3, h_fea_len=128, n_trunk=1, n_hidden=1)
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    rng = np.random.default_rng(0)
    secs, vals = [], []
    for _ in range(epochs):
        t0 = time.perf_counter()
        model.train()
        order = rng.permutation(tr)
        for b in range(0, len(order), 64):
            idx = order[b : b + 64]
            if len(idx) < 2:
                continue
            inputs, targets, *_ = collate_batch([samples[i] for i in idx])
            out = model(*inputs)[0][:, 0]
            loss = torch.nn.functional.mse_loss(out, (targets[0][:, 0] - mean) / std)
            opt.zero_grad()
            loss.backward()
            opt.step()
        model.eval()
        preds = []
        with torch.no_grad():
            for b in range(0, len(va), 64):
                inputs, *_ = collate_batch([samples[i] for i in va[b : b + 64]])
                preds.append(model(*inputs)[0][:, 0].numpy() * std + mean)
        vals.append(float(np.mean(np.abs(np.concatenate(preds) - y[va]))))
        secs.append(time.perf_counter() - t0)
    return {"s_epoch": statistics.fmean(secs[1:] or secs), "final_val": vals[-1], "best_val": min(vals)}


def alignn_epoch(data: Any, n: int, device: str, epochs: int = 1) -> float:
    """Seconds per epoch of crystalbench's ALIGNN plugin on n structures (graphs built beforehand)."""
    from dataclasses import replace

    from crystalbench import ModelContext
    from crystalbench.plugins.alignn.model import AlignnParams, make_alignn

    sub = data.subset(range(min(n, len(data))))
    tr, va = splits(len(sub))
    params = replace(AlignnParams(), epochs=epochs, patience=None)
    model = make_alignn(ModelContext(hparams={}, params=params, device=device,
                                     cache_dir=Path(tempfile.mkdtemp(prefix="cb-speed-"))))
    model.fit(sub.subset(tr), sub.subset(va), seed=0, progress=False)
    info = model.fit_info
    return float(info["train_seconds"]) / max(int(info["epochs_run"]), 1)


_WRAPPER = (
    "import resource, subprocess, sys, time; t = time.perf_counter(); "
    "rc = subprocess.run(sys.argv[1:], capture_output=True).returncode; "
    "print(time.perf_counter() - t, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss, rc)"
)


def bench_command(args: list[str], threads: int, data_dir: Path | None) -> tuple[float, float, int]:
    """Wall seconds, peak RSS (MB) and exit status of one `bench run` in a fresh process.

    Started from a tiny wrapper process: a child's ru_maxrss counts the pages it
    inherited at fork, so measuring from this (large) process would report its size.
    """
    extra = ["--threads", str(threads), "--no-progress"] + (["--data-dir", str(data_dir)] if data_dir else [])
    cmd = [sys.executable, "-c", _WRAPPER, sys.executable, "-m", "crystalbench.cli", *args, *extra]
    out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout.split()
    wall, rss_kib, rc = float(out[0]), float(out[1]), int(out[2])
    return wall, rss_kib / 1024, rc


def gpu_epochs(data: Any, epochs: int) -> int:
    """Print cgcnn's and alignn's GPU epoch times on `data` (issue #22 targets: 30 and 150 ms on ~1,000)."""
    import torch

    if not torch.cuda.is_available():
        print("GPU: no CUDA device; GPU epoch times unmeasured")
        return 0
    gpu = ours(data, max(epochs, 5), "cuda", True)
    print(f"GPU ({torch.cuda.get_device_name()}): cgcnn {1000 * gpu['s_epoch']:.0f} ms/epoch "
          f"({len(data)} structures, 80% trained on; target <= 30 ms)")
    ms = 1000 * alignn_epoch(data, len(data), "cuda", epochs=max(epochs, 5))
    print(f"GPU: alignn {ms:.0f} ms/epoch ({len(data)} structures, 80% trained on; target <= 150 ms)")
    return 0


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=1000, help="matbench_phonons structures for the CGCNN comparison")
    ap.add_argument("--epochs", type=int, default=5, help="epochs per CGCNN run (mean epoch time after the first)")
    ap.add_argument("--repeats", type=int, default=3,
                    help="alternate the CGCNN runs this many times; each reports its fastest (least disturbed) run")
    ap.add_argument("--alignn-n", type=int, default=200, help="structures for the ALIGNN epoch time")
    ap.add_argument("--data-dir", type=Path, default=None)
    ap.add_argument("--quick", action="store_true", help="n=200, 2 epochs, no ALIGNN/first-run/memory runs")
    ap.add_argument("--no-first-run", action="store_true", help="skip the README first-run job")
    ap.add_argument("--no-memory", action="store_true", help="skip the desc_vpa peak-RSS run")
    ap.add_argument("--gpu-only", action="store_true",
                    help="only the GPU epoch times (cgcnn and alignn on --n structures): the device-machine check")
    ap.add_argument("--first-run-args", default="", help="extra `bench run` flags for the first-run job, e.g. '--epochs 100'")
    args = ap.parse_args(argv)
    if args.quick:
        args.n, args.epochs, args.no_first_run, args.no_memory, args.alignn_n, args.repeats = 200, 2, True, True, 0, 1

    import torch

    torch.set_num_threads(1)
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    data = load_phonons(args.n, args.data_dir)
    if args.gpu_only:
        return gpu_epochs(data, args.epochs)
    print(f"# CPU: 1 torch thread, {len(data)} matbench_phonons structures, {args.epochs} epochs, batch 64, Adam 1e-2, "
          f"best of {max(1, args.repeats)} alternating runs")
    runs: dict[str, Callable[[], dict[str, float]]] = {
        "crystalbench cgcnn (default: precise BN where it pays)": lambda: ours(data, args.epochs, "cpu", True),
        "crystalbench cgcnn (precise BN every epoch)": lambda: ours(data, args.epochs, "cpu", True, None),
        "crystalbench cgcnn (no precise BN)": lambda: ours(data, args.epochs, "cpu", False),
        "aviary cgcnn": lambda: aviary_cgcnn(data, args.epochs),
    }
    # the runs alternate, `--repeats` times; each keeps its fastest mean epoch: on a
    # shared machine load only ever adds time, so the minimum is the least disturbed figure
    rows: dict[str, dict[str, float]] = {}
    for _ in range(max(1, args.repeats)):
        for name, run in runs.items():
            r = run()
            if name not in rows or r["s_epoch"] < rows[name]["s_epoch"]:
                rows[name] = r
    ref = rows["aviary cgcnn"]["s_epoch"]
    print(f"{'model':54s} {'s/epoch':>8s} {'vs aviary':>10s} {'final val MAE':>14s} {'best val MAE':>13s}")
    for name, r in rows.items():
        print(f"{name:54s} {r['s_epoch']:8.3f} {ref / r['s_epoch']:9.2f}x {r['final_val']:14.2f} {r['best_val']:13.2f}")
    if args.alignn_n:
        print(f"alignn ({args.alignn_n} structures, CPU): {alignn_epoch(data, args.alignn_n, 'cpu'):.2f} s/epoch")
    gpu_epochs(data, args.epochs)
    if not args.no_first_run:
        with tempfile.TemporaryDirectory() as tmp:
            cmd = ["run", "-m", "dummy", "-m", "rf", "-m", "cgcnn", "-t", "chain1d_short", "--results-dir",
                   f"{tmp}/r", "--cache-dir", f"{tmp}/c", *args.first_run_args.split()]
            wall, _, rc = bench_command(cmd, 1, args.data_dir)
            r2 = [json.loads(p.read_text())["metrics"].get("r2") for p in Path(tmp, "r").glob("chain1d_short/cgcnn/*.json")]
            print(f"first-run job (cold cache{', ' + args.first_run_args if args.first_run_args else ''}): "
                  f"{wall:.0f} s (exit {rc}); cgcnn test R^2 {', '.join(f'{v:.3f}' for v in r2 if v is not None) or '-'}")
    if not args.no_memory:
        with tempfile.TemporaryDirectory() as tmp:
            cmd = ["run", "-m", "cgcnn", "-t", "desc_vpa", "--epochs", "1", "--results-dir", f"{tmp}/r",
                   "--cache-dir", f"{tmp}/c"]
            wall, rss, rc = bench_command(cmd, 1, args.data_dir)
            print(f"bench run -m cgcnn -t desc_vpa --epochs 1: peak RSS {rss:.0f} MB, {wall:.0f} s (exit {rc})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
