"""What generating a binary epigenome from RNA needs besides the decoder, fitted after training.

Two fits, both stored in buffers of :class:`~scdcca.module._module.DCCAModule` (so they are
saved and loaded with the weights):

- the depth of a generated cell (``epi_depth_fit``, ``epi_depth_latent``): ridge regression
  of ``log1p(open regions)`` on ``log1p(RNA library)`` and ``z_rna`` over paired cells;
- the profile of generated cells (``epi_region_logit``, ``epi_decoder_mean_logit``,
  ``epi_region_weight``): each region's open frequency in the training cells, plus each
  cell's deviation from the decoder's mean profile over training cells, shrunk by a weight
  that maximises the likelihood of the validation cells' measured calls given their RNA.
  The decoder's cell-specific profile is kept where it predicts cells it did not train on,
  and pulled towards each region's typical openness where it does not.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np
import torch
import torch.nn.functional as F

from scdcca._constants import BATCH_KEY, EPI_KEY, RNA_KEY
from scdcca.module import DCCAModule
from scdcca.module._sparse import csr_parts, row_sums

Batches = Iterable[dict[str, torch.Tensor]]
WEIGHTS = (*np.linspace(0.0, 0.9, 10), 0.95, 0.98, 1.0)
"""Candidate shrinkage weights (0: the decoder's deviations kept whole, 1: region frequencies
alone); finer near 1, where deviations of several logits are scaled down to a few tenths."""


@torch.inference_mode()
def fit_depth(module: DCCAModule, paired: Batches, ridge: float = 1e-3) -> None:
    """Fit ``log1p(open regions)`` on ``log1p(RNA library)`` and ``z_rna``.

    Ridge least squares (``ridge`` times the number of cells on the latent weights) over the
    ``paired`` minibatches, stored in ``epi_depth_fit`` and ``epi_depth_latent``. Nothing is
    fitted without cells.
    """
    rows, depths = [], []
    for tensors in paired:
        z = module.posterior_mean("rna", tensors)
        library = torch.log1p(module.rna.library(tensors[RNA_KEY].to(z.device)))
        calls, _ = module.epi.prepare(tensors[EPI_KEY].to(z.device))
        rows.append(torch.cat([library, z], dim=1).double().cpu().numpy())
        depths.append(torch.log1p(row_sums(calls)).double().cpu().numpy())
    if not rows:
        return
    x, y = np.concatenate(rows), np.concatenate(depths).ravel()
    design = np.column_stack([x, np.ones(len(y))])
    penalty = np.diag([0.0] + [ridge * len(y)] * (x.shape[1] - 1) + [0.0])
    coef = np.linalg.lstsq(design.T @ design + penalty, design.T @ y, rcond=None)[0]
    fit, latent = module.epi_depth_fit, module.epi_depth_latent
    fit.copy_(torch.as_tensor([coef[0], coef[-1]], dtype=fit.dtype))
    latent.copy_(torch.as_tensor(coef[1:-1], dtype=latent.dtype))


@torch.inference_mode()
def fit_region_prior(
    module: DCCAModule, training: Batches, sample: Batches, validation: Batches | None
) -> None:
    """Fit the region frequencies on ``training`` cells and their weight on ``validation``.

    ``epi_region_logit`` becomes the logit of each region's open frequency over the paired
    training cells (half a call added to each region's count and to the number of cells);
    ``epi_decoder_mean_logit`` the mean of the logits that the decoder generates from the
    RNA latents of the ``sample`` cells (a non-empty subset of the training cells), at the
    mean depth.
    ``epi_region_weight`` becomes the weight of :data:`WEIGHTS` whose generated profiles
    (:meth:`DCCAModule.generated_epi_logits`, each cell at its expected depth) give the
    validation cells' calls the highest Bernoulli likelihood; missing (NaN) calls are left
    out. Without validation cells (``None``) the weight is 0: the decoder's deviations are
    kept whole.
    """
    counts, n_cells = None, 0
    for tensors in training:
        calls, _ = module.epi.prepare(tensors[EPI_KEY])
        _, columns, values = csr_parts(calls)
        if counts is None:
            counts = torch.zeros(calls.shape[1], dtype=torch.float64, device=values.device)
        counts.index_add_(0, columns, values.double())
        n_cells += calls.shape[0]
    if counts is None:
        return
    frequency = (counts + 0.5) / (n_cells + 1.0)
    module.epi_region_logit.copy_(torch.logit(frequency))
    module.epi_region_weight.fill_(0.0)
    total, n_sample = 0.0, 0
    for tensors in sample:
        logits = _generated_logits(module, tensors)
        total, n_sample = total + logits.sum(0), n_sample + logits.shape[0]
    module.epi_decoder_mean_logit.copy_(total / n_sample)
    if validation is None:
        return
    nll = torch.zeros(len(WEIGHTS), dtype=torch.float64)
    for tensors in validation:
        z = module.posterior_mean("rna", tensors)
        logits = _generated_logits(module, tensors, z)
        depth = module.expected_epi_depth(tensors[RNA_KEY].to(z.device), z)
        calls, missing = module.epi.prepare(tensors[EPI_KEY].to(z.device))
        calls = calls.to_dense()
        observed = torch.ones_like(calls)
        if missing is not None:
            observed[missing] = 0.0
        for i, weight in enumerate(WEIGHTS):
            generated = module.generated_epi_logits(logits, depth, float(weight))
            nll[i] += F.binary_cross_entropy_with_logits(
                generated, calls, weight=observed, reduction="sum"
            ).item()  # nll stays on the CPU, whatever the module's device
    module.epi_region_weight.fill_(float(WEIGHTS[int(torch.argmin(nll))]))


def _generated_logits(
    module: DCCAModule, tensors: dict[str, torch.Tensor], z: torch.Tensor | None = None
) -> torch.Tensor:
    """The logits (at the mean depth) that generation decodes from the cells' RNA latents."""
    z = module.posterior_mean("rna", tensors) if z is None else z
    batch_index = tensors.get(BATCH_KEY)
    batch_index = None if batch_index is None else batch_index.to(z.device)
    return module.epi.decode(z, module.typical_library("epi", z), batch_index).logits
