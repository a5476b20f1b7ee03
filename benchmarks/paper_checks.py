"""Slow checks of the paper's headline CGCNN findings (Gong et al. 2023); not run in CI.

    python benchmarks/paper_checks.py chains  [--epochs 300] [--seeds 0 1 2]
    python benchmarks/paper_checks.py phonon  [--epochs 300] [--seeds 0]
    python benchmarks/paper_checks.py all

(a) `chains`: cgcnn on chain1d_short (1D carbon chains, target = period a).
    Paper Fig. 3e: test R^2 > 0.8. Also runs chain1d_long for contrast (paper: poor).
(b) `phonon`: dummy, rf (gong29), cgcnn and de-cgcnn MAE/MAD on phonon_cv at equal
    epochs, on the authors' own train/test split (protocol `file`; `--protocol paper`
    for a random 60/20/20 split). Paper Table 1: CGCNN 0.759, de-CGCNN 0.058,
    RF ~0.11. The GNNs run twice: with mean pooling (the paper's CGCNN default,
    Table 1) and with the harness default for this extensive target, sum pooling
    (paper eq. 13).

Everything goes through the registry and the real runner, so the numbers are
what `bench run` would record; results land in --results-dir (resumable).
Use a few threads at most: ``--threads`` (default 1) sets torch's intra-op pool per job.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

from crystalbench.cli.main import make_context
from crystalbench.contract.context import configure_logging
from crystalbench.contract.record import ResultRecord
from crystalbench.runtime.registry import load_registry, warn_problems
from crystalbench.runtime.results import ResultStore
from crystalbench.runtime.runner import GridRequest, run_grid

PAPER = {
    ("cgcnn", "chain1d_short", "r2"): "> 0.8 (Fig. 3e)",
    ("cgcnn", "phonon_cv", "mae_over_mad"): "0.759 (Table 1)",
    ("de-cgcnn", "phonon_cv", "mae_over_mad"): "0.058 (Table 1)",
    ("dummy", "phonon_cv", "mae_over_mad"): "~1 by construction",
}


def _run(
    models: list[str], tasks: list[str], args: argparse.Namespace, *, pooling: str | None = None, protocol: str | None = None
) -> list[ResultRecord]:
    ctx = make_context(data_dir=args.data_dir, cache_dir=args.cache_dir, results_dir=Path(args.results_dir),
                       threads=args.threads, progress=not args.no_progress)
    reg = load_registry(ctx=ctx)
    missing = [t for t in tasks if t not in reg.tasks] + [m for m in models if m not in reg.models]
    if missing:
        warn_problems(reg)
        raise SystemExit(f"not in the registry yet: {', '.join(missing)}")
    req = GridRequest(models=models, tasks=tasks, seeds=list(args.seeds), epochs=args.epochs, pooling=pooling,
                      protocol=protocol)
    run_grid(reg, ctx, req)
    # include jobs recorded by an earlier (resumed) invocation
    return [r for r in _all_records(args) if r.model in models and r.task in tasks]


def _all_records(args: argparse.Namespace) -> list[ResultRecord]:
    return list(ResultStore(Path(args.results_dir)).records())


def _report(records: list[ResultRecord], metrics: tuple[str, ...], epochs: int | None) -> None:
    rows: dict[tuple[str, str, str, str, str], list[ResultRecord]] = {}
    for r in records:
        params = r.job.params
        if r.ok and (epochs is None or params.get("epochs") in (epochs, None)):
            key = (r.model, r.task, r.protocol, str(params.get("pooling", "-")), str(params.get("epochs", "-")))
            rows.setdefault(key, []).append(r)
        elif not r.ok:
            print(f"failed: {r.model} {r.task} seed {r.seed}: {r.error}", file=sys.stderr)
    print(f"\n{'model':10s} {'task':16s} {'split':6s} {'pooling':7s} {'epochs':>6s} {'best ep':>12s} {'n':>2s} "
          + " ".join(f"{m:>16s}" for m in metrics) + "  paper")
    for (model, task, protocol, pooling, n_epochs), recs in sorted(rows.items()):
        cells = []
        for m in metrics:
            vals = [v for r in recs if (v := r.metrics.get(m)) is not None]
            if not vals:
                cells.append(f"{'-':>16s}")
            elif len(vals) == 1:
                cells.append(f"{vals[0]:16.3f}")
            else:
                cells.append(f"{statistics.mean(vals):8.3f}+-{statistics.stdev(vals):6.3f}")
        best = ",".join(str(r.fit_info.get("best_epoch", "?")) for r in recs)
        paper = "; ".join(v for (pm, pt, _), v in PAPER.items() if pm == model and pt == task)
        print(f"{model:10s} {task:16s} {protocol:6s} {pooling:7s} {n_epochs:>6s} {best:>12s} "
              f"{len(recs):2d} " + " ".join(cells) + f"  {paper}")


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("check", choices=["chains", "phonon", "all"])
    ap.add_argument("--epochs", type=int, default=None, help="epochs for every GNN (default: the model's, 300)")
    ap.add_argument("--seeds", type=int, nargs="+", default=[0])
    ap.add_argument("--results-dir", default="benchmarks/results")
    ap.add_argument("--data-dir", default=None)
    ap.add_argument("--cache-dir", default=None)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--protocol", default="file", help="split protocol of the phonon check (default: authors' split)")
    ap.add_argument("--long", action="store_true", help="also run chain1d_long (slower)")
    ap.add_argument("--no-progress", action="store_true")
    args = ap.parse_args(argv)
    configure_logging()

    t0 = time.time()
    if args.check in ("chains", "all"):
        tasks = ["chain1d_short"] + (["chain1d_long"] if args.long else [])
        _report(_run(["cgcnn"], tasks, args), ("r2", "mae", "mae_over_mad"), args.epochs)
    if args.check in ("phonon", "all"):
        _run(["dummy", "rf"], ["phonon_cv"], args, protocol=args.protocol)
        _run(["cgcnn", "de-cgcnn"], ["phonon_cv"], args, pooling="mean", protocol=args.protocol)
        _run(["cgcnn", "de-cgcnn"], ["phonon_cv"], args, protocol=args.protocol)  # default: sum (extensive)
        recs = [r for r in _all_records(args) if r.task == "phonon_cv" and r.protocol == args.protocol]
        _report(recs, ("mae_over_mad", "mae", "r2"), args.epochs)
    print(f"\n{time.time() - t0:.0f} s", file=sys.stderr)


if __name__ == "__main__":
    main()
