"""1D carbon chains (Gong et al. 2023, Supplementary section 9): can a model learn the period `a`?

Four tasks, 1,400 structures each, generated deterministically from a fixed
seed (no data directory needed) and cached on disk as NPZ:

- ``chain1d_short``  : one chain of n in [2, 9) atoms per cell
- ``chain1d_long``   : one chain of n in [37, 51) atoms per cell
- ``chain1d_short_double`` / ``chain1d_long_double`` : two parallel chains of
  n atoms each in one cell, sharing the period a
- ``chain1d_short_mixed`` / ``chain1d_long_mixed`` (Fig. S3): the first 700
  single and the first 700 double chains of the same lengths, ids unchanged;
  1,400 like the others, so mixing is the only difference from the pure tasks
  (the paper gives no size for its mixed sets)

The generated coordinates are cached as NPZ in the ``chains`` `Store` of the
run's cache directory (a corrupt entry is discarded and regenerated) and the
built Datasets are kept in memory for the rest of the process.

Generator (the paper's, plus physical sanity checks)
----------------------------------------------------
Atom 0 sits at 3*U per axis (U ~ uniform[0, 1)). Atom i >= 1 steps +3*U in x
and s*3*U in y and z, with s = +1 for even i and -1 for odd i, so y and z
oscillate instead of drifting. The period is a = x of the last atom: the
periodic image of atom 0 then sits at x0 + a, so the closing bond (last atom
-> image of atom 0) has x-component x0, drawn like every other step.
A candidate chain is re-drawn (rejection sampling, so the accepted chains are
the paper's distribution conditioned on sanity) unless

1. every pair of atoms, including periodic images along a, is at least
   ``MIN_DIST`` = 1.2 A apart (the shortest C-C bond, a triple bond);
2. the closing bond obeys the same per-axis bound as the other steps,
   |dy|, |dz| < 3 A, so the chain really continues through the boundary
   instead of jumping back (the alternating signs make this likely but not
   certain for long chains).

The cell is orthorhombic a x 100 x 100 A (vacuum in y and z); the chains are
centred in y and z. A double chain draws a second chain with the same n, scales
its x coordinates so that its period equals a, and stacks it in +y so that the
y-ranges of the two chains are ``INTERCHAIN_GAP`` = 3.4 A apart (graphite's
interlayer distance): the chains interact within an 8 A graph cutoff but never
overlap. The scaled second chain is re-checked against rule 1 and re-drawn if
needed.

Descriptor leakage: in a chain cell, b = c = 100 A are constant, so the
Niggli-reduced lengths are (100, 100, a) and density, vpa and packing_frac are
functions of a and natoms alone. Those columns (a, b, c, density, vpa,
packing_frac of `gong29`) are in `exclude_features`, so a descriptor model such
as `rf` must infer a from the local geometry (bond lengths, angles,
coordination), like a GNN does.

Leakage through model inputs: the target a *is* a cell length, so the tasks
declare ``leaks=("lattice", "volume", "density")`` (volume = 100 * 100 * a, and
the density follows from it and the atom count): a model reading raw cell
parameters, the volume or the density is flagged.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from crystalbench import Dataset, RunContext, TaskSpec, TaskType, hookimpl

from .readers import cache_write, process_memo

if TYPE_CHECKING:
    from pymatgen.core import Structure

__all__ = ["CHAIN_TASKS", "MIXED_TASKS", "generate_chains", "chain_structure", "load_chains", "bench_tasks"]

GENERATOR_VERSION = "1"
N_STRUCTURES = 1400
STEP = 3.0  # A, the paper's 3*rand
MIN_DIST = 1.2  # A, shortest C-C bond
INTERCHAIN_GAP = 3.4  # A between the y-ranges of the two chains of a double chain
VACUUM = 100.0  # A, lattice b and c
LEAKY_COLUMNS = ("a", "b", "c", "density", "vpa", "packing_frac")
LEAKS = ("lattice", "volume", "density")
_ARRAYS = ("coords", "natoms", "a")

# name -> (n_min, n_max exclusive, double, seed)
CHAIN_TASKS: dict[str, tuple[int, int, bool, int]] = {
    "chain1d_short": (2, 9, False, 1001),
    "chain1d_long": (37, 51, False, 1002),
    "chain1d_short_double": (2, 9, True, 1003),
    "chain1d_long_double": (37, 51, True, 1004),
}
# Fig. S3: name -> (single-chain task, double-chain task), half of each
MIXED_TASKS: dict[str, tuple[str, str]] = {
    "chain1d_short_mixed": ("chain1d_short", "chain1d_short_double"),
    "chain1d_long_mixed": ("chain1d_long", "chain1d_long_double"),
}
_DATASETS = process_memo(len(CHAIN_TASKS) + len(MIXED_TASKS))


def _candidates(rng: np.random.Generator, n: int, batch: int) -> np.ndarray:
    """`batch` raw chains of n atoms, shape (batch, n, 3), following the paper's recipe."""
    u = STEP * rng.random((batch, n, 3))
    sign = np.where(np.arange(n) % 2 == 0, 1.0, -1.0)  # step into atom i: + for even i, - for odd i
    steps = u.copy()
    steps[:, 1:, 1:] *= sign[1:, None]
    return np.cumsum(steps, axis=1)


def _min_periodic_distance(xyz: np.ndarray, a: np.ndarray) -> np.ndarray:
    """Shortest distance between distinct atoms or periodic images along x, per chain: (batch,)."""
    diff = xyz[:, :, None, :] - xyz[:, None, :, :]  # (B, n, n, 3)
    n = xyz.shape[1]
    best = np.full(xyz.shape[0], np.inf)
    for shift in (-1.0, 0.0, 1.0):
        d = diff.copy()
        d[..., 0] += shift * a[:, None, None]
        dist = np.sqrt((d**2).sum(-1))
        if shift == 0.0:
            dist[:, np.arange(n), np.arange(n)] = np.inf
        best = np.minimum(best, dist.reshape(len(xyz), -1).min(axis=1))
    return best


def _valid_singles(xyz: np.ndarray) -> np.ndarray:
    """Mask of chains passing both sanity rules (cheap closure test first)."""
    ok = np.abs(xyz[:, 0, 1:] - xyz[:, -1, 1:]).max(axis=1) < STEP
    idx = np.flatnonzero(ok)
    if len(idx):
        ok[idx] = _min_periodic_distance(xyz[idx], xyz[idx, -1, 0]) >= MIN_DIST
    return ok


class _Pool:
    """Valid single chains per n, drawn in batches from one RNG (deterministic order)."""

    def __init__(self, rng: np.random.Generator) -> None:
        self.rng = rng
        self.queue: dict[int, list[np.ndarray]] = {}

    def take(self, n: int) -> np.ndarray:
        q = self.queue.setdefault(n, [])
        while not q:
            cand = _candidates(self.rng, n, 256)
            q.extend(cand[_valid_singles(cand)])
        return q.pop(0)


def generate_chains(
    n_min: int, n_max: int, double: bool, seed: int, count: int = N_STRUCTURES
) -> tuple[list[np.ndarray], np.ndarray]:
    """Cartesian coordinates (list of (natoms, 3)) and periods a of `count` chain cells.

    Pure function of its arguments. Coordinates are centred in y and z of the
    100 A box; x is not wrapped (the last atom of each chain sits at x = a).
    """
    rng = np.random.default_rng(seed)
    pool = _Pool(rng)
    coords, periods = [], np.empty(count)
    for k in range(count):
        n = int(rng.integers(n_min, n_max))
        first = pool.take(n)
        a = float(first[-1, 0])
        xyz = first
        if double:
            while True:
                second = pool.take(n).copy()
                second[:, 0] *= a / second[-1, 0]
                second[:, 1] += first[:, 1].max() - second[:, 1].min() + INTERCHAIN_GAP
                both = np.concatenate([first, second])[None]
                if _min_periodic_distance(both, np.array([a]))[0] >= MIN_DIST:
                    xyz = both[0]
                    break
        xyz = xyz.copy()
        centre = (xyz[:, 1:].max(axis=0) + xyz[:, 1:].min(axis=0)) / 2
        xyz[:, 1:] += VACUUM / 2 - centre
        coords.append(xyz)
        periods[k] = a
    return coords, periods


def _unpack(z: dict[str, np.ndarray]) -> tuple[list[np.ndarray], np.ndarray] | None:
    """Coordinates and periods from the cached arrays, or None when they do not fit together."""
    flat, counts, periods = z["coords"], z["natoms"], z["a"]
    if flat.ndim != 2 or flat.shape[1] != 3 or int(counts.sum()) != len(flat):
        return None
    if not len(counts) == len(periods) == N_STRUCTURES:
        return None
    return list(np.split(flat, np.cumsum(counts)[:-1])), periods


def _generated(name: str, ctx: RunContext) -> tuple[list[np.ndarray], np.ndarray]:
    """Coordinates and periods for a chain task, from the cache Store or generated and cached."""
    store = ctx.cache("chains", GENERATOR_VERSION)
    cached = store.get_npz(name, required=_ARRAYS)
    unpacked = None if cached is None else _unpack(cached)
    if unpacked is not None:
        return unpacked
    n_min, n_max, double, seed = CHAIN_TASKS[name]
    coords, periods = generate_chains(n_min, n_max, double, seed)
    arrays = {"coords": np.concatenate(coords), "natoms": np.array([len(c) for c in coords]), "a": periods}
    cache_write(lambda: store.put_npz(name, arrays), store.dir, ctx.reporter)
    return coords, periods


def chain_structure(xyz: np.ndarray, a: float) -> Structure:
    """A pymatgen Structure of carbon atoms in an orthorhombic a x 100 x 100 A cell."""
    from pymatgen.core import Lattice, Structure

    frac = np.asarray(xyz, dtype=float) / np.array([a, VACUUM, VACUUM])
    frac[:, 0] = np.mod(frac[:, 0], 1.0)
    frac[frac[:, 0] > 1.0 - 1e-12, 0] = 0.0  # the last atom sits exactly on the boundary
    return Structure(Lattice.orthorhombic(a, VACUUM, VACUUM), ["C"] * len(frac), frac)


def _build(name: str, ctx: RunContext) -> Dataset:
    coords, periods = _generated(name, ctx)
    structures = tuple(chain_structure(xyz, a) for xyz, a in zip(coords, periods))
    return Dataset(
        ids=tuple(f"{name}-{i:04d}" for i in range(len(coords))),
        targets=np.asarray(periods, dtype=float),
        structures=structures,
        name=name,
        meta={"generator_version": GENERATOR_VERSION, "seed": CHAIN_TASKS[name][3]},
    )


def _build_mixed(name: str, ctx: RunContext) -> Dataset:
    """Half single, half double chains: the first N/2 of each pure task, in that order."""
    single, double = (load_chains(part, ctx) for part in MIXED_TASKS[name])
    half = np.arange(N_STRUCTURES // 2)
    a, b = single.subset(half), double.subset(half)
    return Dataset(
        ids=a.ids + b.ids,
        targets=np.concatenate([a.targets, b.targets]),
        structures=(a.structures or ()) + (b.structures or ()),
        name=name,
        meta={"generator_version": GENERATOR_VERSION, "parts": list(MIXED_TASKS[name]), "per_part": len(half)},
    )


def load_chains(name: str, ctx: RunContext) -> Dataset:
    """The Dataset of one chain task (ids `<name>-0000`...; target a in A), built once per process."""
    if name in MIXED_TASKS:
        return _DATASETS.get(name, lambda: _build_mixed(name, ctx))
    return _DATASETS.get(name, lambda: _build(name, ctx))


def _always(ctx: RunContext) -> bool:
    """Generated data: available everywhere."""
    return True


def _no_files(ctx: RunContext) -> list[Path]:
    """Generated data: no raw files (the generator version and seed identify it)."""
    return []


def _spec(name: str) -> TaskSpec:
    n_min, n_max, double, seed = CHAIN_TASKS[name]
    what = "two parallel chains" if double else "one chain"
    return TaskSpec(
        name=name,
        load=lambda ctx: load_chains(name, ctx),
        target="a",
        unit="A",
        task_type=TaskType.REGRESSION,
        extensive=False,
        protocol="paper",
        fractions=(0.8, 0.1, 0.1),
        exclude_features=LEAKY_COLUMNS,
        leaks=LEAKS,
        version=GENERATOR_VERSION,
        size=N_STRUCTURES,
        available=_always,
        files=_no_files,
        source=f"generated (Gong et al. 2023 Suppl. 9; generator v{GENERATOR_VERSION}, seed {seed})",
        license="MIT (generated)",
        description=(
            f"Period a of {what} of n in [{n_min}, {n_max}) carbon atoms per chain in a 100 A vacuum cell. "
            f"Descriptor models do not see {', '.join(LEAKY_COLUMNS)} (they encode a directly given natoms)."
        ),
        group="chains",
        **_paper_fields(double),
    )


def _paper_fields(double: bool) -> dict[str, Any]:
    """How the data relates to the paper's: its recipe, its count for single chains, none for double ones."""
    return {
        "source_short": "generated (paper's recipe)" if not double else "generated (our recipe)",
        "data_relation": "generated",
        "paper_count": None if double else N_STRUCTURES,
        "paper_data": "the paper's Suppl. 9 generator; 1,400 per set (the paper: 1,400, each or in total)"
        if not double else "the paper gives no recipe or size for double chains (Fig. 3d, S3): ours, see the module",
    }


def _mixed_spec(name: str) -> TaskSpec:
    single, double = MIXED_TASKS[name]
    base = _spec(single)
    return replace(
        base,
        name=name,
        load=lambda ctx: load_chains(name, ctx),
        source=f"generated: the first {N_STRUCTURES // 2} of {single} and of {double}",
        description=(
            f"Period a of single and double carbon chains mixed half and half ({single}, {double}; paper Fig. S3). "
            f"Descriptor models do not see {', '.join(LEAKY_COLUMNS)}."
        ),
        **_paper_fields(True),
    )


@hookimpl
def bench_tasks() -> list[TaskSpec]:
    """The six chain tasks (no data directory needed)."""
    return [_spec(name) for name in CHAIN_TASKS] + [_mixed_spec(name) for name in MIXED_TASKS]
