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

from ._module import DCCAModule

Batches = Iterable[dict[str, torch.Tensor]]


@torch.inference_mode()
def fit_joint_weight(module: DCCAModule, validation: Batches | None) -> None:
    """Store in ``joint_epi_weight`` the R² of ``z_rna`` predicted by ``z_epi``, in ``[0, 1]``.

    ``R² = 1 - sum ||z_rna - z_epi||² / sum ||z_rna - mean(z_rna)||²`` over the posterior
    means of the ``validation`` cells (paired cells only). Without validation cells (``None``
    or fewer than two cells) the weight is 1: the plain concatenation.
    """
    n, total, squares, residual = 0, 0.0, 0.0, 0.0
    for tensors in validation or ():
        z_rna = module.posterior_mean("rna", tensors).double()
        z_epi = module.posterior_mean("epi", tensors).double()
        n += z_rna.shape[0]
        total = total + z_rna.sum(0)
        squares = squares + z_rna.pow(2).sum(0)
        residual += float((z_rna - z_epi).pow(2).sum())
    weight = 1.0
    if n >= 2:
        spread = float((squares - total.pow(2) / n).sum())
        weight = min(max(1.0 - residual / spread, 0.0), 1.0) if spread > 0 else 0.0
    module.joint_epi_weight.fill_(weight)


def weigh_joint(latent: np.ndarray, n_latent: int, weight: float) -> np.ndarray:
    """``[z_rna, weight * z_epi]`` from the plain concatenation ``latent`` (a new array)."""
    out = np.array(latent, copy=True)
    out[:, n_latent:] *= weight
    return out
