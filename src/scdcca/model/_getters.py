"""The getters of :class:`~scdcca.DCCA`: latents and denoised modalities."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import numpy as np
import pandas as pd
import torch
from anndata import AnnData
from docrep import DocstringProcessor
from mudata import MuData
from scipy import sparse

from scdcca._constants import MODALITIES, Modality

from . import _arguments as arguments
from ._access import BatchChoice, StreamMixin, sparse_above, weigh_joint

_docs = DocstringProcessor(
    transform_batch="""transform_batch
    Batch to decode in, as in scvi-tools: ``None`` uses each cell's own batch; a batch
    name (a category of the setup's ``batch_key``) decodes every cell as if measured in
    that batch; a list of names averages the decoded values over those batches (all of
    them give values free of the batch shifts)."""
)


class GettersMixin(StreamMixin):
    """Latent representations and denoised values of registered or new cells."""

    @torch.inference_mode()
    def get_latent_representation(
        self,
        mdata: MuData | None = None,
        modality: Literal["rna", "epi", "joint"] = "joint",
        indices: Sequence[int] | None = None,
        batch_size: int | None = None,
        epi_weight: float | None = None,
    ) -> np.ndarray:
        """Posterior means of the latents.

        Parameters
        ----------
        mdata
            Cells to encode: ``None`` for the MuData the model was set up with, or new cells
            (projection, no retraining): a MuData, or for ``modality="rna"``/``"epi"`` an
            AnnData of that modality alone. New data may hold the model's features in another
            order or more features; missing ones are an error.
        modality
            ``"rna"`` (``z_rna``), ``"epi"`` (``z_epi``) or ``"joint"`` (both side by side,
            ``[z_rna, epi_weight * z_epi]``, ``2 * n_latent`` columns, RNA first).
        indices
            Cells to encode (all by default).
        batch_size
            Minibatch size (scvi's default if ``None``).
        epi_weight
            Factor of the epigenome half of the joint latent: ``None`` for
            :attr:`joint_epi_weight`, which training fits on the validation cells; ``1.0``
            for the plain concatenation. Ignored for ``"rna"`` and ``"epi"``.

        Returns
        -------
        Array of shape ``(n_cells, n_latent)`` or ``(n_cells, 2 * n_latent)`` for ``"joint"``.
        """
        wanted = MODALITIES if modality == "joint" else (modality,)
        if modality not in ("rna", "epi", "joint"):
            raise ValueError(f"modality must be 'rna', 'epi' or 'joint', got {modality!r}.")
        if epi_weight is not None and not 0.0 <= float(epi_weight) < float("inf"):
            raise ValueError(
                f"epi_weight must be a finite number >= 0, got {epi_weight!r}: it multiplies the "
                "epigenome half of the joint latent (None: the fitted joint_epi_weight, 1.0: "
                "the plain concatenation)."
            )
        if isinstance(mdata, AnnData) and modality == "joint":
            raise ValueError(
                "An AnnData holds one modality: ask for modality='rna' or 'epi', or pass a "
                "MuData with both for the joint latent."
            )
        parts = [
            torch.cat([self.module.latent_or_predicted(m, t) for m in wanted], dim=1).cpu()
            for t in self._minibatches(mdata, indices, batch_size, modalities=wanted)
        ]
        latent = torch.cat(parts).numpy()
        if modality != "joint":
            return latent
        weight = self.joint_epi_weight if epi_weight is None else float(epi_weight)
        return weigh_joint(latent, self.module.n_latent, weight)

    @property
    def joint_epi_weight(self) -> float:
        """Factor of the epigenome half in the joint latent, in ``[0, 1]``.

        Training sets it to the fraction of the RNA latent's variance that the epigenome
        latent predicts in the validation cells (R², clipped): near 1 where the regions place
        unseen cells as their RNA does, 0 where the epigenome latent of unseen cells predicts
        the RNA latent no better than its mean, so that it adds no noise to the joint
        latent's distances. 1 (the plain concatenation) without validation cells
        (``train_size=1.0``) and for models saved before the weight existed.
        """
        return float(self.module.joint_epi_weight)

    def _cell_and_feature_names(self, mdata, modality: Modality, indices) -> tuple:
        return self._cell_names(mdata, indices), self.model_features(modality)

    @_docs.dedent
    def get_normalized_expression(
        self,
        mdata: MuData | None = None,
        indices: Sequence[int] | None = None,
        library_size: float | Literal["observed"] = 1.0,
        batch_size: int | None = None,
        return_numpy: bool = False,
        transform_batch: BatchChoice = None,
    ) -> pd.DataFrame | np.ndarray:
        """Denoised RNA expression from the RNA VAE.

        Parameters
        ----------
        library_size
            Scale of each cell's expression: ``1.0`` gives proportions, ``1e4`` counts per
            10k, ``"observed"`` the NB mean at each cell's own library size. Ignored with
            ``rna_likelihood="gaussian"`` (values stay on the data's scale).
        return_numpy
            Return an array instead of a cells x genes DataFrame.
        %(transform_batch)s
        """
        library_size = arguments.library_size(library_size, allow_observed=True)
        observed = library_size == "observed"
        blocks = list(
            self._denoised_batches("rna", mdata, indices, batch_size, observed, transform_batch)
        )
        scaled = not observed and self.module.rna.likelihood != "gaussian"
        values = np.concatenate(blocks) * (float(library_size) if scaled else 1.0)
        if return_numpy:
            return values
        cells, genes = self._cell_and_feature_names(mdata, "rna", indices)
        return pd.DataFrame(values, index=cells, columns=genes)

    @_docs.dedent
    def get_normalized_accessibility(
        self,
        mdata: MuData | None = None,
        indices: Sequence[int] | None = None,
        threshold: float | None = None,
        batch_size: int | None = None,
        return_numpy: bool = False,
        transform_batch: BatchChoice = None,
    ) -> pd.DataFrame | np.ndarray | sparse.csr_matrix:
        """Denoised epigenome from the epigenome VAE, at the mean sequencing depth.

        Parameters
        ----------
        threshold
            If given, return a sparse CSR matrix keeping only probabilities ``>= threshold``;
            batches are sparsified as they are produced, so no dense cells x regions matrix is
            held.
        return_numpy
            Return an array instead of a cells x regions DataFrame (ignored with ``threshold``).
        %(transform_batch)s

        Returns
        -------
        Open probabilities (Bernoulli) or means (Gaussian).
        """
        threshold = arguments.threshold(threshold)
        blocks = self._denoised_batches(
            "epi", mdata, indices, batch_size, transform_batch=transform_batch
        )
        if threshold is not None:
            return sparse_above(blocks, threshold)
        values = np.concatenate(list(blocks))
        if return_numpy:
            return values
        cells, regions = self._cell_and_feature_names(mdata, "epi", indices)
        return pd.DataFrame(values, index=cells, columns=regions)
