"""`cgcnn` and `de-cgcnn`: Crystal Graph Convolutional Neural Networks and their descriptor hybrid.

CGCNN: Xie & Grossman, PRL 120, 145301 (2018). de-CGCNN: Gong et al., Sci.
Adv. 9, eadi3245 (2023), eq. 14: the `gong29` descriptor vector, standardized,
is concatenated with the pooled crystal embedding before the output network and
the whole model is trained end to end.

Hybridization is generic: whenever the dataset carries extra feature columns
(`--descriptors NAME` or a spec default), `cgcnn` consumes them the same way;
`de-cgcnn` is `cgcnn` with ``descriptors="gong29"`` and refuses to run without
features.

Defaults follow the paper (Methods and Table S2): 8 A / 12 neighbours, Gaussian
step 0.2 A, atom_fea_len 64, 3 convolutions, h_fea_len 128, 1 hidden layer,
mean pooling. Training recipe (docs/recipes.md): Gong et al. 2023's -- Adam,
lr 1e-2 (the upper value of the paper's 1e-3/1e-2 search space, better than 1e-3
in all five comparisons we ran on chain1d_short and phonon_cv), constant lr,
batch 64, 300 epochs, no early stopping, the best validation epoch kept (as
txie-93/cgcnn's model_best). The reference implementation's recipe (SGD with
momentum 0.9, lr 1e-2 x0.1 at epoch 100, batch 256, 30 epochs) is one
`--config` away: docs/recipes.md has the TOML.

Layout: `params.py` (`CGCNNParams`), `model.py` (`CGCNNModel`, a `crystalbench.gnn.TorchModel`; both
torch-free at import), `net.py` (the torch network; imports nothing from `model.py`). Importing this
package never imports torch.
"""

from __future__ import annotations

from crystalbench import ModelSpec, hookimpl, pooling_choices

from .model import CGCNNModel, make_cgcnn, make_de_cgcnn
from .params import CGCNNParams

__all__ = ["CGCNNParams", "CGCNNModel", "make_cgcnn", "make_de_cgcnn", "bench_models", "REFERENCE_CGCNN", "REFERENCE_DE"]

REFERENCE_CGCNN = "Xie & Grossman, Phys. Rev. Lett. 120, 145301 (2018)"
REFERENCE_DE = "Gong et al., Sci. Adv. 9, eadi3245 (2023), eq. 14 (CGCNN + gong29 descriptors)"


@hookimpl
def bench_models() -> list[ModelSpec]:
    return [
        ModelSpec(
            name="cgcnn",
            factory=make_cgcnn,
            description="Crystal graph CNN (8 A, 12 neighbours, 3 gated convolutions); hybridizes with --descriptors NAME",
            params=CGCNNParams,
            inputs=(),
            needs="structure",
            accepts_features=True,
            descriptors=None,
            poolings=pooling_choices(CGCNNParams),
            classification=True,
            needs_validation=True,
            reference=REFERENCE_CGCNN,
        ),
        ModelSpec(
            name="de-cgcnn",
            factory=make_de_cgcnn,
            description="CGCNN with the gong29 descriptors concatenated to the pooled embedding, end to end",
            params=CGCNNParams,
            inputs=(),
            needs="structure",
            accepts_features=True,
            descriptors="gong29",
            poolings=pooling_choices(CGCNNParams),
            default_pooling="mean",  # eq. 14: descriptors + mean-pooled embedding (see ModelSpec)
            classification=True,
            needs_validation=True,
            reference=REFERENCE_DE,
        ),
    ]
