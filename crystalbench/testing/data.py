"""The test kit's tiny datasets, built in memory in well under a second (no data directory, no torch).

- `toy_dataset`: CsCl-type binary crystals (some as 2x1x1 supercells) whose target,
  the nearest-neighbour distance, is set mostly by the element pair and partly by a
  random strain: learnable from structures, from compositions alone (the pair) and
  from simple geometric descriptors, so any real learner beats the mean predictor.
- `toy_classification`: the same crystals labelled "short"/"long" bond by element pair.
- `chain_sample`: the first samples of the real `chain1d_short` task (same generator,
  seed and ids), for plugins that want the benchmark's own data in a test.
- `geometry_features` / `KIT_DESCRIPTORS`: a small pure descriptor set (nearest-neighbour
  distances, atoms per cell, mean mass and electronegativity) attached for models that
  need descriptor features when no set is given.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from typing import Any

import numpy as np

from crystalbench.contract.dataset import Dataset
from crystalbench.contract.enums import TaskType
from crystalbench.contract.specs import DescriptorSpec, TaskSpec

__all__ = [
    "toy_dataset",
    "toy_classification",
    "toy_task",
    "toy_classification_task",
    "chain_sample",
    "geometry_features",
    "KIT_DESCRIPTORS",
    "TOY_PAIRS",
]

# element pair -> lattice constant (A) of the CsCl-type cell before strain
TOY_PAIRS: dict[tuple[str, str], float] = {
    ("Li", "F"): 3.0,
    ("Na", "Cl"): 3.3,
    ("Ag", "Br"): 3.6,
    ("K", "Br"): 3.9,
    ("Cs", "Cl"): 4.2,
    ("Rb", "I"): 4.5,
}
_LONG = 3.7  # pairs with a larger lattice constant are labelled "long"
TOY_SIZE = 160
TOY_SEED = 2024


def _toy_cells(n: int, seed: int) -> tuple[list[Any], np.ndarray, list[bool]]:
    from pymatgen.core import Lattice, Structure

    rng = np.random.default_rng(seed)
    pairs = list(TOY_PAIRS)
    structures, nn, long_ = [], np.empty(n), []
    for i in range(n):
        pair = pairs[i % len(pairs)]
        a = TOY_PAIRS[pair] * (1.0 + 0.04 * float(rng.uniform(-1.0, 1.0)))
        species: list[str] = [pair[0], pair[1]]
        s = Structure(Lattice.cubic(a), species, [[0.0, 0.0, 0.0], [0.5, 0.5, 0.5]])
        if rng.random() < 0.3:  # supercells: the same crystal with other cell parameters
            s.make_supercell([2, 1, 1])
        structures.append(s)
        nn[i] = a * np.sqrt(3.0) / 2.0
        long_.append(TOY_PAIRS[pair] > _LONG)
    return structures, nn, long_


def toy_dataset(n: int = TOY_SIZE, seed: int = TOY_SEED, *, compositions_only: bool = False) -> Dataset:
    """The kit's learnable regression toy (target: nearest-neighbour distance in A); see the module docstring."""
    structures, nn, _ = _toy_cells(n, seed)
    ids = tuple(f"toy-{i:03d}" for i in range(n))
    if compositions_only:
        return Dataset(ids=ids, targets=nn, compositions=tuple(s.composition for s in structures), name="kit_toy_comp")
    return Dataset(ids=ids, targets=nn, structures=tuple(structures), name="kit_toy")


def toy_classification(n: int = TOY_SIZE, seed: int = TOY_SEED, *, compositions_only: bool = False) -> Dataset:
    """The toy crystals labelled by bond class: 0 = "short", 1 = "long" (set by the element pair)."""
    structures, _, long_ = _toy_cells(n, seed)
    ids = tuple(f"toy-{i:03d}" for i in range(n))
    labels = np.array(long_, dtype=int)
    if compositions_only:
        return Dataset(ids=ids, targets=labels, compositions=tuple(s.composition for s in structures),
                       classes=("short", "long"), name="kit_toy_class_comp")
    return Dataset(ids=ids, targets=labels, structures=tuple(structures), classes=("short", "long"),
                   name="kit_toy_class")


_TOY_LEAKS = ("lattice", "volume", "density")  # the cell (without supercells) fixes the bond length


def toy_task(*, compositions_only: bool = False) -> TaskSpec:
    """`toy_dataset` as a TaskSpec (paper protocol, 60/20/20), as `check_model` runs it."""
    return TaskSpec(
        name="kit_toy_comp" if compositions_only else "kit_toy",
        load=lambda ctx: toy_dataset(compositions_only=compositions_only),
        target="nearest-neighbour distance",
        unit="A",
        leaks=_TOY_LEAKS,
        provides="composition" if compositions_only else "structure",
        size=TOY_SIZE,
        description="crystalbench.testing toy task",
        group="testing",
    )


def toy_classification_task(*, compositions_only: bool = False) -> TaskSpec:
    """`toy_classification` as a TaskSpec."""
    return TaskSpec(
        name="kit_toy_class_comp" if compositions_only else "kit_toy_class",
        load=lambda ctx: toy_classification(compositions_only=compositions_only),
        target="bond class",
        task_type=TaskType.CLASSIFICATION,
        leaks=_TOY_LEAKS,
        provides="composition" if compositions_only else "structure",
        size=TOY_SIZE,
        description="crystalbench.testing toy classification task",
        group="testing",
    )


def chain_sample(n: int = 100) -> Dataset:
    """The first `n` samples of the real `chain1d_short` task (same ids, structures and targets).

    Asked of the registry, as any task is (the kit does not import a task's module): the
    installed `chains` plugin generates the task once per process (0.7 s with the registry,
    nothing written), and its first `n` samples are returned under their own name.
    """
    from dataclasses import replace

    data = _chain1d_short()
    if not 0 < n <= len(data):
        raise ValueError(f"chain_sample: n must be 1..{len(data)}, got {n}")
    return replace(data.subset(range(n)), name="chain1d_short_sample")


@functools.cache
def _chain1d_short() -> Dataset:
    """The whole `chain1d_short` task (a Dataset is immutable, so every caller may share it)."""
    from crystalbench.contract.context import RunContext
    from crystalbench.runtime.registry import load_registry

    ctx = RunContext()
    return load_registry(ctx=ctx).task("chain1d_short").load(ctx)


GEOMETRY_COLUMNS = ("nn_mean", "nn_min", "natoms", "mean_mass", "mean_electronegativity")


def geometry_features(structures: Sequence[Any], cutoff: float = 6.0) -> np.ndarray:
    """Per structure: mean and minimum nearest-neighbour distance (A), atoms per cell, mean atomic mass,
    mean electronegativity (NaN when an element has none). A pure function of each structure."""
    rows = []
    for s in structures:
        centers, _, _, dists = s.get_neighbor_list(r=cutoff)
        nearest = np.full(len(s), cutoff)
        np.minimum.at(nearest, centers, dists)
        comp = s.composition
        rows.append([nearest.mean(), nearest.min(), len(s), comp.weight / comp.num_atoms, comp.average_electroneg])
    return np.array(rows, dtype=float).reshape(len(rows), len(GEOMETRY_COLUMNS))


KIT_DESCRIPTORS = DescriptorSpec(
    name="kit_geometry",
    feature_names=GEOMETRY_COLUMNS,
    featurize=geometry_features,
    description="crystalbench.testing: nearest-neighbour distances, atoms per cell, mean mass and electronegativity",
)
