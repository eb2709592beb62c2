"""Cross-modal generation and projection of cells the model has not seen.

:class:`PredictionMixin` gives :class:`~scdcca.DCCA` ``predict_modality`` (encode with one
VAE, decode with the other's decoder, which attention transfer makes meaningful because the
two latents are pulled onto each other), for the registered cells or new ones (read through
:class:`~scdcca.model._access.StreamMixin`).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import numpy as np
import pandas as pd
import torch
from anndata import AnnData
from mudata import MuData
from scipy import sparse

from scdcca._constants import BATCH_KEY, RNA_KEY, Modality
from scdcca.module import RegionBernoulli

from . import _arguments as arguments
from ._access import StreamMixin, sparse_above


class PredictionMixin(StreamMixin):
    """Cross-modal prediction for :class:`~scdcca.DCCA`, of registered or new cells."""

    @torch.inference_mode()
    def _predicted_batches(
        self,
        data,
        source: Modality,
        indices: Sequence[int] | None,
        batch_size: int | None,
        depth: float | None = None,
    ) -> Iterator[np.ndarray]:
        target = "epi" if source == "rna" else "rna"
        target_vae = self.module.vae(target)
        for tensors in self._minibatches(data, indices, batch_size, modalities=(source,)):
            z = self.module.posterior_mean(source, tensors)
            batch_index = tensors.get(BATCH_KEY)
            if batch_index is not None:
                batch_index = batch_index.to(z.device)
            # proportions for RNA (library 1); the epigenome at offset 0, then rescaled below
            offset = torch.zeros(z.shape[0], 1, device=z.device)
            library = offset + 1.0 if target == "rna" else offset
            px = target_vae.decode(z, library, batch_index)
            if not isinstance(px, RegionBernoulli):
                yield target_vae.normalized(px).cpu().numpy()
                continue
            if depth is None:
                expected = self.module.expected_epi_depth(tensors[RNA_KEY].to(z.device), z)
            else:
                expected = offset + float(depth)
            yield self.module.generated_epi_probs(px, expected).cpu().numpy()

    def predict_modality(
        self,
        data: MuData | AnnData | None = None,
        source: Modality = "rna",
        indices: Sequence[int] | None = None,
        threshold: float | None = None,
        library_size: float = 1.0,
        depth: float | None = None,
        batch_size: int | None = None,
        return_numpy: bool = False,
    ) -> pd.DataFrame | np.ndarray | sparse.csr_matrix:
        """Generate the other modality from one: the epigenome from RNA, or RNA from it.

        The ``source`` VAE encodes each cell (posterior mean) and the other modality's
        decoder turns that latent into a profile. Attention transfer trained the two latents
        to agree, which is what makes the decoder of one modality read the other's latent.

        A generated binary epigenome is each region's open frequency in the training cells
        plus the cell's deviation from the decoder's mean profile over training cells,
        shrunk by the weight fitted at the end of :meth:`train`
        (``model.module.epi_region_weight``, between 0 and 1): the weight under which the
        validation cells' measured calls are most likely given their RNA. Where what the
        decoder learnt on epigenome latents does not carry over to RNA latents, generated
        profiles lean on each region's typical openness; 0 keeps the deviations whole.

        Parameters
        ----------
        data
            Cells to predict for: ``None`` (the MuData the model was set up with), a MuData
            holding the source modality, or an AnnData of the source modality alone (for
            example RNA-only cells). Features may be re-ordered or a superset of the model's.
        source
            ``"rna"`` to predict the epigenome, ``"epi"`` to predict RNA.
        indices
            Cells to predict (all by default).
        threshold
            Epigenome target only: return a sparse CSR matrix keeping probabilities
            ``>= threshold``; blocks are sparsified as they are made.
        library_size
            RNA target only: total expression of each predicted cell (1.0: proportions).
        depth
            Binary (Bernoulli) epigenome target only: the expected number of open regions of
            each generated cell, above 0 and below the number of regions. ``None``
            (default): the depth that training cells with the same RNA library size and RNA
            latent have (a linear fit of ``log1p`` depth on ``log1p`` library size and the
            latent, made over the training cells at the end of :meth:`train`). Each cell's
            probabilities get one logit offset so that they sum to that depth, which keeps
            the cell's ranking of regions.
        batch_size
            Cells per minibatch.
        return_numpy
            Return an array instead of a DataFrame (ignored with ``threshold``).

        Returns
        -------
        Cells x target features: open probabilities summing to ``depth`` per cell (binary
        epigenome), the decoder's mean (continuous epigenome) or expression scaled to
        ``library_size`` (RNA).
        """
        if source not in ("rna", "epi"):
            raise ValueError(f"source must be 'rna' or 'epi', got {source!r}.")
        target = "epi" if source == "rna" else "rna"
        threshold = arguments.threshold(threshold)
        library_size = arguments.library_size(library_size, allow_observed=False)
        if threshold is not None and target != "epi":
            raise ValueError("`threshold` applies to a predicted epigenome (source='rna').")
        if depth is not None:
            if target != "epi" or self.module.epi.likelihood != "bernoulli":
                raise ValueError(
                    "`depth` applies to a generated binary epigenome (source='rna' with the "
                    "Bernoulli likelihood); use `library_size` for predicted RNA."
                )
            depth = arguments.finite_number("depth", depth, 0.0, low_open=True)
            n_regions = len(self.model_features("epi"))
            if depth >= n_regions:
                raise ValueError(
                    f"depth={depth:g} is not below the model's {n_regions} regions: each "
                    "region is open with probability at most 1, so a generated cell's "
                    f"expected open regions stay below {n_regions}. Pass a smaller depth, or "
                    "None for the depth fitted to each cell's RNA."
                )
        blocks = self._predicted_batches(data, source, indices, batch_size, depth)
        if threshold is not None:
            return sparse_above(blocks, threshold)
        values = np.concatenate(list(blocks))
        if target == "rna":
            values = values * float(library_size)
        if return_numpy:
            return values
        cells = self._cell_names(data, indices)
        return pd.DataFrame(values, index=cells, columns=self.model_features(target))
