"""The minibatch streams every getter of :class:`~scdcca.DCCA` reads.

:class:`StreamMixin` is the base of the model's mixins: it reads the registered MuData
through scvi-tools' data loaders, and new data (a MuData, or one modality's AnnData, its
features in any order or a superset) in minibatches of the model's features; it decodes
denoised values minibatch by minibatch. It relies only on what
:class:`scvi.model.base.BaseModelClass` provides (``adata``, ``adata_manager``, ``module``,
``_validate_anndata``, ``_make_data_loader``).
"""

from __future__ import annotations

import numbers
from collections.abc import Iterable, Iterator, Sequence

import numpy as np
import pandas as pd
import torch
from anndata import AnnData
from mudata import MuData
from scipy import sparse
from scvi import settings

from scdcca._blocks import row_slices
from scdcca._constants import BATCH_KEY, MODALITIES, OBSERVED_KEYS, TENSOR_KEYS, Modality
from scdcca.data import _validation as validate
from scdcca.train._data import sparse_minibatches_supported

from . import _arguments as arguments
from ._external import aligned_row_batches, feature_columns

#: batches to decode denoised values in: ``None`` (each cell's own), one batch, or several
BatchChoice = str | int | float | np.generic | Sequence[str | int | float | np.generic] | None


def batch_list(transform_batch: BatchChoice) -> list | None:
    """``transform_batch`` as a list of batch names (``None``: each cell's own batch).

    One name may be a Python or NumPy scalar (``np.int64(1)``, as ``obs[key].iloc[0]``
    gives for an integer column); several come as any sequence or array of them.
    """
    if transform_batch is None:
        return None
    if isinstance(transform_batch, np.ndarray) and transform_batch.ndim == 0:
        transform_batch = transform_batch.item()
    if isinstance(transform_batch, str | numbers.Number | np.generic):
        transform_batch = [transform_batch]
    return [n.item() if isinstance(n, np.generic) else n for n in transform_batch]


def sparse_above(blocks: Iterable[np.ndarray], threshold: float) -> sparse.csr_matrix:
    """Stack blocks of rows into one CSR matrix of the values ``>= threshold``.

    Each block is sparsified as it arrives, so no dense matrix of all rows is held.
    """
    return sparse.vstack(
        [sparse.csr_matrix(np.where(b >= threshold, b, 0)) for b in blocks], format="csr"
    )


def weigh_joint(latent: np.ndarray, n_latent: int, weight: float) -> np.ndarray:
    """``[z_rna, weight * z_epi]`` from the plain concatenation ``latent`` (a new array)."""
    out = np.array(latent, copy=True)
    out[:, n_latent:] *= weight
    return out


class StreamMixin:
    """Minibatches of registered or new cells, and denoised values decoded from them."""

    #: The user's MuData when it has unpaired cells (the model reads its padded twin, which
    #: ``adata`` is), else ``None``; set by the model.
    _unpaired_source: MuData | None = None
    #: Which modality plays which role (``{"rna_layer": ..., "epi_layer": ...}``), from setup.
    modalities_: dict[str, str]

    def model_features(self, modality: Modality) -> pd.Index:
        """Names of the genes (``"rna"``) or regions (``"epi"``) the model was trained on."""
        registry = self.adata_manager.get_state_registry(TENSOR_KEYS[modality])
        return pd.Index(registry["column_names"])

    def _require_trained(self) -> None:
        """Refuse to compute results of a model whose weights are still random."""
        if not self.is_trained_:
            raise RuntimeError(
                "The model is not trained, so its latents and denoised values would be "
                "random: call `model.train()` first (or load a trained model with "
                "`scdcca.DCCA.load`)."
            )

    def _observed_cells(self, *modalities: str) -> np.ndarray | None:
        """Cells measured in every one of ``modalities`` (``None``: all cells)."""
        keep = None
        for modality in modalities:
            if OBSERVED_KEYS[modality] in self.adata_manager.data_registry:
                flag = np.asarray(self.adata_manager.get_from_registry(OBSERVED_KEYS[modality]))
                keep = flag.ravel() > 0 if keep is None else keep & (flag.ravel() > 0)
        return None if keep is None else np.flatnonzero(keep)

    def _is_setup_data(self, data) -> bool:
        """Whether ``data`` is the registered MuData (``None``, itself, or its unpaired source)."""
        source = self._unpaired_source
        return data is None or data is self.adata or (source is not None and data is source)

    def _minibatches(
        self,
        mdata: MuData | AnnData | None,
        indices: Sequence[int] | None,
        batch_size: int | None,
        modalities: Sequence[Modality] = MODALITIES,
    ) -> Iterator[dict[str, torch.Tensor]]:
        """Minibatches of ``modalities`` for ``indices`` of registered or new cells.

        Registered cells come from scvi-tools' data loader (sparse where the data are); new
        data are checked as their first minibatch is read. An untrained model is refused.
        """
        if batch_size is not None:
            arguments.positive_int("batch_size", batch_size)
        n_cells = (self.adata if self._is_setup_data(mdata) else mdata).n_obs
        indices = arguments.cell_indices(indices, n_cells)
        if not self._is_setup_data(mdata):
            # the data are checked as the first minibatch is read, before the model
            for count, tensors in enumerate(
                self._external_minibatches(mdata, modalities, indices, batch_size)
            ):
                if count == 0:
                    self._require_trained()
                yield tensors
            return
        if mdata is not None and mdata is self._unpaired_source:
            mdata = None  # unpaired cells: read through the padded twin (same cells)
        mdata = self._validate_anndata(mdata)
        self._require_trained()
        loader = self._make_data_loader(
            adata=mdata,
            indices=indices,
            batch_size=batch_size,
            load_sparse_tensor=sparse_minibatches_supported(self.get_anndata_manager(mdata)),
        )
        self.module.eval()
        yield from loader

    def _denoised_batches(
        self,
        modality: Modality,
        mdata: MuData | None,
        indices: Sequence[int] | None,
        batch_size: int | None,
        observed_library: bool = False,
        transform_batch: BatchChoice = None,
        sample: bool = False,
    ) -> Iterator[np.ndarray]:
        """Denoised values of ``modality`` per minibatch, decoded from its posterior mean.

        RNA as proportions (library 1) and the epigenome at the mean depth, or both at each
        cell's own library with ``observed_library`` (RNA then as expected counts). Decoded
        in each cell's own batch, or averaged over the batches of ``transform_batch``. With
        ``sample``, from one latent drawn from each cell's posterior instead of its mean
        (cells must have ``modality``).
        """
        vae = self.module.vae(modality)
        codes = self._transform_batch_codes(transform_batch)
        rna_counts = observed_library and modality == "rna"
        with torch.inference_mode():
            for tensors in self._minibatches(mdata, indices, batch_size, (modality,)):
                if sample:
                    z = self.module.posterior(modality, tensors).sample()
                else:
                    z = self.module.latent_or_predicted(modality, tensors)
                if observed_library:
                    library = self.module.library(modality, tensors)
                else:
                    library = self.module.typical_library(modality, z)
                batches = [tensors.get(BATCH_KEY)]
                if codes is not None:
                    batches = [torch.full((z.shape[0], 1), c, device=z.device) for c in codes]
                out = 0.0
                for batch in batches:
                    px = vae.decode(z, library, batch)
                    out = out + (px.mean if rna_counts else vae.normalized(px)) / len(batches)
                yield out.cpu().numpy()

    def _transform_batch_codes(self, transform_batch: BatchChoice) -> list[int] | None:
        """Codes of the batches named by ``transform_batch`` (``None``: each cell's own)."""
        names = batch_list(transform_batch)
        if names is None:
            return None
        key = self.adata_manager.registry["setup_args"].get("batch_key")
        if key is None:
            raise ValueError(
                "transform_batch was given, but the model was set up without batch_key and "
                "has a single batch. Leave transform_batch=None."
            )
        known = self.adata_manager.get_state_registry(BATCH_KEY)["categorical_mapping"]
        mapping = pd.Index([str(m) for m in known])
        # by value first (np.int64(1) and 1.0 name the batch 1), then by name ("1" too)
        codes = pd.Index(known).get_indexer(pd.Index(names, dtype=object))
        by_name = mapping.get_indexer([str(n) for n in names])
        codes = np.where(codes < 0, by_name, codes)
        if len(codes) == 0 or (codes < 0).any():
            unknown = [n for n, c in zip(names, codes, strict=True) if c < 0]
            raise ValueError(
                f"transform_batch must name batches of .obs[{key!r}] seen in training "
                f"({list(mapping)}); got {unknown or 'no batch'}."
            )
        return [int(c) for c in codes]

    def _cell_names(self, data, indices) -> pd.Index:
        """Names of the cells ``indices`` of ``data`` (the registered MuData if ``None``)."""
        names = (self.adata if data is None else data).obs_names
        indices = arguments.cell_indices(indices, len(names))
        return names if indices is None else names[indices]

    def _modality_adata(self, data: MuData | AnnData, modality: Modality) -> AnnData:
        """The AnnData holding ``modality`` in new data, with cells in ``data``'s order."""
        if isinstance(data, AnnData):
            return data
        if not isinstance(data, MuData):
            raise TypeError(f"Expected a MuData or an AnnData, got {type(data).__name__}.")
        name = self.modalities_[f"{modality}_layer"]
        if name not in data.mod:
            raise KeyError(
                f"The MuData has no modality {name!r} (the model's {modality} modality); it has "
                f"{list(data.mod)}. Name it {name!r}, or pass that modality's AnnData."
            )
        adata = data.mod[name]
        if not adata.obs_names.equals(data.obs_names):
            raise ValueError(
                f"Modality {name!r} does not hold exactly the MuData's cells in its order; "
                f"pass `mdata[{name!r}]` (an AnnData) to work on that modality's own cells."
            )
        return adata

    def _batch_codes(self, data: MuData | AnnData, n_cells: int) -> np.ndarray | None:
        """Batch index of each cell of new data, from the batch key used at setup."""
        args = self.adata_manager.registry["setup_args"]
        key = args.get("batch_key")
        if key is None:
            return None
        mapping = list(self.adata_manager.get_state_registry(BATCH_KEY)["categorical_mapping"])
        if key not in data.obs:
            raise KeyError(
                f"The model was set up with batch_key={key!r}; the new data need that column "
                "in .obs too, with batches the model has seen: "
                f"{mapping}."
            )
        values = data.obs[key].astype(str).to_numpy()
        codes = pd.Index([str(m) for m in mapping]).get_indexer(values)
        if (codes < 0).any():
            unknown = sorted(set(values[codes < 0]))[:5]
            raise ValueError(
                f"Batches {unknown} in .obs[{key!r}] were not seen in training ({mapping}). "
                "Map them to a known batch, or retrain with them."
            )
        return codes.reshape(n_cells, 1)

    def _external_minibatches(
        self,
        data: MuData | AnnData,
        modalities: Sequence[Modality],
        indices: Sequence[int] | None,
        batch_size: int | None,
    ) -> Iterator[dict[str, torch.Tensor]]:
        """Minibatches of new data holding the model's features of each modality.

        ``batch_size=None`` reads ``scvi.settings.batch_size`` cells at a time, as the data
        loaders of registered cells do.
        """
        batch_size = batch_size or settings.batch_size  # as scvi-tools' loaders
        args = self.adata_manager.registry["setup_args"]
        streams = []
        for modality in modalities:
            adata = self._modality_adata(data, modality)
            role_arg = f"{modality}_layer"
            name = self.modalities_[role_arg]
            matrix = validate.get_matrix(adata, name, args[role_arg], role_arg)
            columns = feature_columns(adata.var_names, self.model_features(modality), repr(name))
            validate.check_projected(self, modality, matrix, columns)
            streams.append(aligned_row_batches(matrix, columns, indices, batch_size))
        n_cells = data.n_obs
        codes = self._batch_codes(data, n_cells)
        rows = np.arange(n_cells) if indices is None else np.asarray(indices)
        self.module.eval()
        batches = row_slices(len(rows), batch_size)
        for batch, blocks in zip(batches, zip(*streams, strict=True), strict=True):
            tensors = {TENSOR_KEYS[m]: b for m, b in zip(modalities, blocks, strict=True)}
            if codes is not None:
                tensors[BATCH_KEY] = torch.as_tensor(codes[rows[batch]])
            yield tensors
