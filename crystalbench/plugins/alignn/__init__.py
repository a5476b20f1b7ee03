"""ALIGNN (Choudhary & DeCost 2021) and its descriptor hybrid de-ALIGNN (Gong et al. 2023, eq. 14).

The message-passing network is the `alignn` package's DGL-free
`ALIGNNAtomWisePure` (4 ALIGNN + 4 edge-gated GCN layers, RBF expansions of
bond lengths and bond-angle cosines), used as an encoder; `net.py` adds the
pooling choice (eq. 13), descriptor concatenation (eq. 14) and an n-class
head. Initial atom features are the shared CGCNN 92-dim table
(`crystalbench.gnn.atom_feature_table`), the same as cgcnn's.

A property of the architecture, not of this wrapper: ALIGNN's edge-gated
convolution averages neighbour messages with normalized gates
(sum sigma*Bh / sum sigma) and the readout pools atoms only, so when every
atom starts from the same features (monatomic crystals, the carbon chains of
the 1D tasks) the atom features stay identical whatever the geometry and the
prediction is a constant. Geometry reaches the output only through differences
between atom species. tests/test_alignn.py pins this down.

Layout: `graphs.py` (atom graph + line graph, numpy), `params.py` (`AlignnParams`,
`DeAlignnParams`), `model.py` (`AlignnModel`, a `crystalbench.gnn.TorchModel`; both
torch-free at import), `net.py` (torch and alignn; reads `params.py`, imports nothing
from `model.py`). Importing this package never imports torch or alignn.
"""

from __future__ import annotations

from crystalbench import ModelSpec, hookimpl, pooling_choices

from .model import AlignnModel, make_alignn, make_de_alignn
from .params import AlignnParams, DeAlignnParams

__all__ = ["AlignnParams", "DeAlignnParams", "AlignnModel", "make_alignn", "make_de_alignn", "bench_models"]

REFERENCE = "Choudhary & DeCost, npj Comput. Mater. 7, 185 (2021); alignn package (pure-torch ALIGNNAtomWisePure)"


@hookimpl
def bench_models() -> list[ModelSpec]:
    return [
        ModelSpec(
            name="alignn",
            factory=make_alignn,
            description="ALIGNN: message passing on the atom graph and its bond-angle line graph (4 ALIGNN + 4 GCN layers).",
            params=AlignnParams,
            inputs=(),
            needs="structure",
            accepts_features=True,
            poolings=pooling_choices(AlignnParams),
            classification=True,
            reference=REFERENCE,
        ),
        ModelSpec(
            name="de-alignn",
            factory=make_de_alignn,
            description="ALIGNN + gong29 descriptors concatenated with the pooled embedding (Gong et al. 2023, eq. 14).",
            params=DeAlignnParams,
            inputs=(),
            needs="structure",
            accepts_features=True,
            descriptors="gong29",
            poolings=pooling_choices(DeAlignnParams),
            default_pooling="mean",  # eq. 14: descriptors + mean-pooled embedding (see ModelSpec)
            classification=True,
            reference="Gong et al. 2023 (hybrid, eq. 14); " + REFERENCE,
        ),
    ]
