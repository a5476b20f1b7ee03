"""`cgcnn+desc`: Table S1's "CGCNN + descriptors" baseline (Gong et al. 2023, SI eq. S5).

A plain CGCNN is trained on the target first (its validation split picks its
best epoch); its weights are then frozen, and the pooled crystal embedding it
learned, concatenated with the standardized `gong29` descriptors, is the input
of a new fully connected network trained on the same target. The descriptors
never shape the representation: that is the difference from de-CGCNN (eq. 14),
where they join the embedding while it is learned, and it is what the paper's
Table S1 and Fig. S6b compare (CGCNN+descriptors beats CGCNN on kappa, U, Cv
and M, de-CGCNN beats it on 11 of 13 properties).

Choices the paper leaves open (Table S1 names the model, SI eq. S5 gives
``FCN(frozen representation ; descriptors)``): the second network has the
shape of CGCNN's own output network (`n_h` hidden layers of `h_fea_len`
softplus units) and is trained with the same recipe (optimizer, learning rate,
epochs, batch size; its validation picks its best epoch); both its inputs are
standardized with training statistics (the descriptors through the shared
`FeatureScaler`, as for rf and de-cgcnn). The representation is the mean-pooled
embedding, as in every GNN of Table S1 (`--pooling sum` pools by sum instead;
"atom-sum" has no pooled embedding to freeze).

Layout: `params.py` (`CGCNNDescParams`), `model.py` (`CGCNNDescModel`, a `crystalbench.gnn.TorchModel`
whose first stage is a `cgcnn` fit; both torch-free at import), `net.py` (the second network, torch;
imports nothing from `model.py`). Importing this package never imports torch.
"""

from __future__ import annotations

from crystalbench import ModelSpec, hookimpl, pooling_choices

from .model import CGCNNDescModel, make_cgcnn_desc
from .params import CGCNNDescParams

__all__ = ["CGCNNDescParams", "CGCNNDescModel", "make_cgcnn_desc", "bench_models", "NAME", "REFERENCE"]

NAME = "cgcnn+desc"
REFERENCE = (
    "Gong et al., Sci. Adv. 9, eadi3245 (2023), SI eq. S5 and Table S1 (\"CGCNN + descriptors\"); "
    "CGCNN: Xie & Grossman, Phys. Rev. Lett. 120, 145301 (2018)"
)


@hookimpl
def bench_models() -> list[ModelSpec]:
    return [
        ModelSpec(
            name=NAME,
            factory=make_cgcnn_desc,
            description="Frozen plain-CGCNN embedding + gong29 descriptors into a new fully connected network "
            "(two stages; descriptors do not shape the representation)",
            params=CGCNNDescParams,
            inputs=(),
            needs="structure",
            accepts_features=True,
            descriptors="gong29",
            poolings=pooling_choices(CGCNNDescParams),
            default_pooling="mean",  # Table S1: every GNN uses average pooling
            classification=True,
            needs_validation=True,
            reference=REFERENCE,
        )
    ]
