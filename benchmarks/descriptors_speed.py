"""Speed and parity of the `gong29` engine against stock matminer, side by side on real structures.

    python benchmarks/descriptors_speed.py --n 200 [--data-dir DIR] [--seed 0] [--max-atoms N]

For each of n structures drawn (seeded) from the learnability collection
(every mp-id structure in the data directory), the same 28 gong29 values and
the space group are computed by stock matminer/pymatgen featurizers (fresh
featurizer objects per structure, `featurize(structure)`)
and by crystalbench's engine, alternating per structure so both see the same
machine load. Prints the per-structure times, their ratio, the parity check
(relative 1e-6; exact for counts and classes) and the time of a cached re-run
through `compute_descriptors`. Exits 1 if any value differs where stock
matminer succeeds. Not part of the test suite (stock matminer needs ~1-3 s
per structure).
"""

from __future__ import annotations

import argparse
import os
import random
import sys
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np

EXACT = ("natoms", "mean_CN_Voronoi", "std_CN_Voronoi", "crys_sys")


def stock_values(structure) -> tuple[np.ndarray, float]:
    """gong29 columns (in `FEATURES` order) and the space group with stock matminer; NaN where it raises.

    Fresh featurizers per structure: VoronoiNN keeps a cutoff it had to enlarge for one structure (vacuum)
    for every later one, which would make stock matminer needlessly slow for the rest of the run.
    """
    sh, bond_len, bond_ang, cn, dens, comp, sym = make_stock()
    parts: list[list[float]] = []
    for f, width in ((sh, 9), (bond_len, 2), (bond_ang, 2), (cn, 2), (dens, 3), (comp, 2)):
        try:
            vals = list(f.featurize(structure))
            if f is sh:  # matminer orders the neighbour-distance stats minimum, maximum; Table 3 max first
                vals[3], vals[4] = vals[4], vals[3]
        except Exception:
            vals = [np.nan] * width
        parts.append(vals)
    lat = structure.lattice.get_niggli_reduced_lattice()
    parts.append([len(structure), *sorted(lat.abc, reverse=True), *sorted(lat.angles, reverse=True)])
    try:
        number, crys_int = sym.featurize(structure)
        parts.append([crys_int - 1])  # crys_sys code = matminer crystal_system_int - 1
    except Exception:
        number = np.nan
        parts.append([np.nan])
    return np.array([v for p in parts for v in p], dtype=float), float(number)


def make_stock():
    from matminer.featurizers.site import AverageBondAngle, AverageBondLength, CoordinationNumber
    from matminer.featurizers.structure import (
        DensityFeatures,
        GlobalSymmetryFeatures,
        SiteStatsFingerprint,
        StructuralComplexity,
        StructuralHeterogeneity,
    )
    from pymatgen.analysis.local_env import VoronoiNN

    return (
        StructuralHeterogeneity(),
        SiteStatsFingerprint(AverageBondLength(VoronoiNN())),
        SiteStatsFingerprint(AverageBondAngle(VoronoiNN())),
        SiteStatsFingerprint(CoordinationNumber(VoronoiNN())),
        DensityFeatures(),
        StructuralComplexity(),
        GlobalSymmetryFeatures(desired_features=["spacegroup_num", "crystal_system_int"]),
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, default=200, help="number of structures (default 200)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--data-dir", default=None, help="data directory (default $CRYSTALBENCH_DATA_DIR)")
    parser.add_argument("--max-atoms", type=int, default=None, help="only draw structures with at most this many sites")
    args = parser.parse_args(argv)

    from pymatgen.core import Structure

    from crystalbench.contract.context import RunContext
    from crystalbench.contract.dataset import Dataset
    from crystalbench.contract.featurize import compute_descriptors
    from crystalbench.contract.paths import data_dir
    from crystalbench.descriptors.gong29 import FEATURES, GONG29, describe
    from crystalbench.tasks.collection import load_collection

    coll = load_collection(RunContext(data_dir=data_dir(args.data_dir)))
    pool = [i for i, s in enumerate(coll.structures) if args.max_atoms is None or len(s) <= args.max_atoms]
    pick = random.Random(args.seed).sample(pool, min(args.n, len(pool)))
    structures = [coll.structures[i] for i in pick]
    ids = [coll.ids[i] for i in pick]
    natoms = np.array([len(s) for s in structures])
    print(f"{len(pick)} structures from {len(coll.ids)} (seed {args.seed}); sites per cell: mean {natoms.mean():.1f}, "
          f"median {np.median(natoms):.0f}, max {natoms.max()}", flush=True)

    describe(structures[0])  # import/warm-up outside the timed loop, for both sides
    stock_values(structures[0])
    t_stock = t_ours = 0.0
    mismatches, stock_failed, stock_undefined = [], [], []
    exact = [FEATURES.index(c) for c in EXACT]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for k, (sid, s) in enumerate(zip(ids, structures)):
            t0 = time.perf_counter()
            ref, ref_sg = stock_values(s)
            t1 = time.perf_counter()
            row = describe(s)
            t2 = time.perf_counter()
            t_stock += t1 - t0
            t_ours += t2 - t1
            ours = np.array([row[c] for c in FEATURES])
            if np.isnan(ref).any():
                stock_failed.append(sid)
                # stock StructuralHeterogeneity fails on sites outside [0, 1): compare on the wrapped copy
                wrapped = Structure.from_sites([site.to_unit_cell() for site in s])
                ref, ref_sg = stock_values(wrapped)
            close = np.isclose(ours, ref, rtol=1e-6, atol=1e-10)
            close[exact] = ours[exact] == ref[exact]
            if np.isnan(ref).any():  # still undefined for stock (Voronoi cell open within 13 A: vacuum)
                stock_undefined.append(sid)
                close |= np.isnan(ref) & np.isfinite(ours)
            if not close.all() or row["space_group_num"] != ref_sg:
                bad = [FEATURES[j] for j in np.flatnonzero(~close)]
                bad += ["space_group_num"] if row["space_group_num"] != ref_sg else []
                mismatches.append((sid, bad))
            if (k + 1) % 25 == 0:
                print(f"  {k + 1}/{len(pick)}: stock {t_stock / (k + 1):.3f} s, ours {t_ours / (k + 1):.4f} s per structure",
                      flush=True)

    n = len(pick)
    print(f"\nstock matminer : {t_stock / n:.4f} s per structure ({t_stock:.1f} s total)")
    print(f"crystalbench   : {t_ours / n:.4f} s per structure ({t_ours:.1f} s total)")
    print(f"speed-up       : {t_stock / t_ours:.1f}x")
    print(f"parity         : {n - len(mismatches)}/{n} structures identical wherever stock is defined "
          "(28 descriptors + space group; rtol 1e-6, exact for counts/classes)")
    if stock_failed:
        print(f"stock failures : {len(stock_failed)} ({', '.join(stock_failed[:8])}) -- a stock featurizer raised; "
              "compared against stock on the unit-cell-wrapped copy")
    if stock_undefined:
        print(f"stock undefined: {len(stock_undefined)} ({', '.join(stock_undefined[:8])}) -- open Voronoi cells within 13 A "
              "(vacuum); ours grows the cutoff like VoronoiNN, so those values are compared only where stock has them")
    for sid, bad in mismatches[:20]:
        print(f"  MISMATCH {sid}: {', '.join(bad)}")

    with tempfile.TemporaryDirectory() as tmp:
        compute_descriptors(GONG29, Dataset(ids=ids, targets=np.zeros(n), structures=structures), cache_dir=Path(tmp))
        t0 = time.perf_counter()  # a fresh Dataset, so structure hashing is included
        compute_descriptors(GONG29, Dataset(ids=ids, targets=np.zeros(n), structures=structures), cache_dir=Path(tmp))
        cached = time.perf_counter() - t0
    print(f"cached re-run  : {cached:.3f} s for {n} structures ({cached / n * 1e3:.2f} ms each, "
          f"{t_stock / max(cached, 1e-9):.0f}x faster than stock)")
    return 1 if mismatches else 0


if __name__ == "__main__":
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    sys.exit(main())
