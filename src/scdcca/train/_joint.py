"""Weight of the epigenome half of the joint latent, fitted on cells the model did not train on.

The joint latent is ``[z_rna, w * z_epi]``. Attention transfer trains the epigenome latent to
stand in for the RNA latent, and ``w`` measures how well it does so for cells outside the
training set: the fraction of the RNA latent's variance that the epigenome latent predicts in
the validation cells (R², clipped to ``[0, 1]``). Where a cell's regions place it as its RNA
does, ``w`` is near 1 and both halves count in the joint latent's distances; where the
epigenome latent of unseen cells predicts the RNA latent no better than the RNA latent's mean
(regions with little cell-state signal, an encoder that memorised its training cells), ``w``
is 0 and the joint latent's distances are those of the RNA latent. Seurat's weighted nearest
neighbours weigh modalities by the same kind of cross-modal prediction, per cell.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np
import torch
from sklearn.metrics import r2_score

from scdcca.module import DCCAModule

Batches = Iterable[dict[str, torch.Tensor]]


@torch.inference_mode()
def fit_joint_weight(module: DCCAModule, validation: Batches | None) -> None:
    """Store in ``joint_epi_weight`` the R² of ``z_rna`` predicted by ``z_epi``, in ``[0, 1]``.

    The variance-weighted R² (:func:`sklearn.metrics.r2_score`) of the posterior means of the
    ``validation`` cells (paired cells only), clipped to ``[0, 1]``; 0 when ``z_rna`` does not
    vary. Without validation cells (``None`` or fewer than two cells) the weight is 1: the
    plain concatenation.
    """
    pairs = [
        (
            module.posterior_mean("rna", t).double().cpu(),
            module.posterior_mean("epi", t).double().cpu(),
        )
        for t in validation or ()
    ]
    weight = 1.0
    if sum(len(z_rna) for z_rna, _ in pairs) >= 2:
        z_rna = torch.cat([z for z, _ in pairs]).numpy()
        z_epi = torch.cat([z for _, z in pairs]).numpy()
        if np.ptp(z_rna, axis=0).any():
            r2 = r2_score(z_rna, z_epi, multioutput="variance_weighted")
            weight = min(max(float(r2), 0.0), 1.0)
        else:
            weight = 0.0
    module.joint_epi_weight.fill_(weight)
