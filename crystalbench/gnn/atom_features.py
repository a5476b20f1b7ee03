"""The one atom-feature table of the benchmark's GNNs: CGCNN's 92-dim element embedding.

Xie & Grossman's ``atom_init.json`` (one-hot encodings of group, period,
electronegativity, covalent radius, valence electrons, first ionization
energy, electron affinity, block and atomic volume) covers Z = 1..100. CGCNN,
de-CGCNN, ALIGNN and de-ALIGNN all read their initial atom features from
`atom_feature_table`, so a structure gets the same atom inputs in every model.

The values are read at runtime from the installed aviary-models package
(``aviary/embeddings/element/cgcnn92.json``, keyed by element symbol) or, when
aviary is absent, from jarvis-tools' copy of the same file
(``jarvis/core/atom_init.json``, keyed by atomic number, installed with
alignn); the two are identical (tests/test_gnn_atom_features.py). Elements
beyond Z = 100 have no embedding: `check_elements` rejects them by name
rather than giving them another element's vector. numpy only: importing this
module never imports torch.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from functools import lru_cache
from importlib import resources

import numpy as np

from crystalbench import BadInputError, CrystalbenchError

__all__ = ["ATOM_FEATURE_DIM", "MAX_Z", "atom_feature_table", "check_elements"]

ATOM_FEATURE_DIM = 92
MAX_Z = 100


def _from_aviary() -> dict[int, list[float]]:
    from pymatgen.core.periodic_table import Element

    text = (resources.files("aviary") / "embeddings" / "element" / "cgcnn92.json").read_text()
    return {int(Element(sym).Z): vec for sym, vec in json.loads(text).items()}


def _from_jarvis() -> dict[int, list[float]]:
    text = (resources.files("jarvis") / "core" / "atom_init.json").read_text()
    return {int(z): vec for z, vec in json.loads(text).items()}


@lru_cache(maxsize=1)
def atom_feature_table() -> np.ndarray:
    """(MAX_Z + 1, 92) float32 table indexed by atomic number; row 0 is zeros, rows without data NaN.

    NaN rows make a missing element fail loudly in `check_elements` instead of
    training on made-up inputs. Read-only: callers copy before modifying.
    """
    problems = []
    vectors: dict[int, list[float]] | None = None
    for source, read in (("aviary-models", _from_aviary), ("jarvis-tools", _from_jarvis)):
        try:
            vectors = read()
            break
        except (ModuleNotFoundError, FileNotFoundError, OSError, ValueError) as exc:
            problems.append(f"{source}: {type(exc).__name__}: {exc}")
    if vectors is None:
        raise CrystalbenchError(
            "the CGCNN 92-dim atom features come from aviary-models (embeddings/element/cgcnn92.json) or "
            f"jarvis-tools (core/atom_init.json) and neither could be read ({'; '.join(problems)}); "
            "install one with `pip install aviary-models` or `pip install 'crystalbench[roost]'`"
        )
    table = np.full((MAX_Z + 1, ATOM_FEATURE_DIM), np.nan, dtype=np.float32)
    table[0] = 0.0
    for z, vec in vectors.items():
        if 1 <= z <= MAX_Z:
            table[z] = np.asarray(vec, dtype=np.float32)
    table.setflags(write=False)
    return table


def check_elements(numbers: Iterable[np.ndarray], what: str = "atom features") -> None:
    """Raise `BadInputError` naming every element (by symbol) that has no row in `atom_feature_table`.

    `numbers`: arrays of atomic numbers (e.g. one per crystal graph).
    """
    arrays = [np.asarray(a).reshape(-1) for a in numbers]
    if not arrays:
        return
    zs = np.unique(np.concatenate(arrays))
    table = atom_feature_table()
    bad = [int(z) for z in zs if z < 1 or z > MAX_Z or not np.all(np.isfinite(table[int(z)]))]
    if bad:
        from pymatgen.core.periodic_table import Element

        names = [Element.from_Z(z).symbol if 1 <= z <= 118 else str(z) for z in bad]
        raise BadInputError(
            f"no CGCNN {what} for element(s) {', '.join(names)} (the 92-dim embedding covers Z = 1..{MAX_Z})"
        )
