"""Write a trained model's results into a MuData under documented keys."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
from lightning.pytorch.utilities import rank_zero_only
from mudata import MuData

from scdcca._constants import (
    DENOISED_LAYER_KEY,
    LATENT_OBSM_KEY,
    OBSERVED_OBSM_KEY,
    UNS_KEY,
)
from scdcca._version import __version__
from scdcca.data._pairing import observed_cells

from ._access import BatchChoice, batch_list, weigh_joint
from ._getters import GettersMixin


def result_locations(mdata: MuData, modalities: dict[str, str]) -> list[str]:
    """Human-readable list of the places :func:`write` writes to that already exist."""
    rna, epi = modalities["rna_layer"], modalities["epi_layer"]
    taken = []
    if LATENT_OBSM_KEY in mdata.obsm:
        taken.append(f"mdata.obsm[{LATENT_OBSM_KEY!r}]")
    for name in (rna, epi):
        adata = mdata.mod[name]
        if LATENT_OBSM_KEY in adata.obsm:
            taken.append(f"mdata[{name!r}].obsm[{LATENT_OBSM_KEY!r}]")
        if DENOISED_LAYER_KEY in adata.layers:
            taken.append(f"mdata[{name!r}].layers[{DENOISED_LAYER_KEY!r}]")
    if OBSERVED_OBSM_KEY in mdata.obsm:
        taken.append(f"mdata.obsm[{OBSERVED_OBSM_KEY!r}]")
    if UNS_KEY in mdata.uns:
        taken.append(f"mdata.uns[{UNS_KEY!r}]")
    return taken


class ResultsMixin(GettersMixin):
    """``write_results`` for :class:`~scdcca.DCCA`: every result into a MuData at once."""

    def write_results(
        self,
        mdata: MuData | None = None,
        overwrite: bool = False,
        epi_threshold: float | None = None,
        rna_library_size: float = 1e4,
        batch_size: int | None = None,
        denoised: bool = False,
        transform_batch: BatchChoice = None,
    ) -> MuData:
        """Write latents, denoised layers and settings of the model into ``mdata``.

        Keys written (see :mod:`scdcca._constants`):

        - ``mdata.obsm["X_dcca"]``: joint latent, ``[z_rna, joint_epi_weight * z_epi]`` side
          by side (:attr:`joint_epi_weight`).
        - ``mdata[rna].obsm["X_dcca"]`` and ``mdata[epi].obsm["X_dcca"]``: each modality's latent.
        - with ``denoised=True``, ``mdata[rna].layers["dcca_denoised"]``: denoised expression,
          each cell scaled to ``rna_library_size`` counts (ready for ``sc.pp.log1p``), and
          ``mdata[epi].layers["dcca_denoised"]``: open probabilities at mean depth (sparse CSR
          keeping values ``>= epi_threshold`` if that is given).
        - ``mdata.uns["dcca"]``: the model settings and the schedule that produced them.

        Every value is computed first and written under its own cell and feature: modalities may
        list the model's features in another order (the layers follow the modality's order). A
        modality with features the model lacks, or without some of its features, is refused
        before anything is written, and so is an untrained model. Either all keys are written or,
        if writing fails, the MuData is left as it was; with ``overwrite=True`` every result key
        of an earlier model is removed, so results of two models never mix.

        Parameters
        ----------
        mdata
            MuData with the model's cells and features (the training MuData or one set up like
            it); ``None`` for the MuData the model was set up with.
        overwrite
            Replace results already present. Without it, existing keys raise an error and
            nothing is written.
        epi_threshold
            Keep the denoised epigenome sparse (see :meth:`get_normalized_accessibility`).
        rna_library_size
            Total counts each denoised RNA profile is scaled to.
        batch_size
            Minibatch size for the getters.
        denoised
            Also write the two denoised layers: dense cells x features float32 matrices (4
            bytes per cell and feature, many times the size of sparse input, unless
            ``epi_threshold`` keeps the epigenome sparse). Without them (default) the
            latents and settings are written, and the getters
            (:meth:`get_normalized_expression`, :meth:`get_normalized_accessibility`) give
            the denoised values at full precision when needed.
        transform_batch
            Batches the denoised layers are decoded in (see
            :meth:`get_normalized_accessibility`); ``None`` keeps each cell's own batch. With
            batches, ``mdata.obs[batch_key].cat.categories`` gives layers without the batch
            shifts, which suits scores compared across cells of several batches
            (:func:`scdcca.tl.motif_activity`).

        Returns
        -------
        The same ``mdata``, for chaining. In distributed training only rank 0 writes; other
        ranks return ``mdata`` untouched.

        Warns
        -----
        UserWarning
            When ``mdata`` is backed by a file (``mudata.read_h5mu(path, backed=...)``): the
            results are written in memory only; ``mdata.write()`` stores them in the file.
        """
        if mdata is None:
            mdata = self.adata if self._unpaired_source is None else self._unpaired_source
        if rank_zero_only.rank != 0:  # distributed training: rank 0 writes
            return mdata
        self._require_trained()
        self._transform_batch_codes(transform_batch)  # refused before anything is written
        names = batch_list(transform_batch)
        modalities = self.modalities_
        taken = result_locations(mdata, modalities)
        if taken and not overwrite:
            raise KeyError(
                "DCCA results already exist in this MuData: "
                + ", ".join(taken)
                + ". Pass overwrite=True to replace them, or write into a copy."
            )
        rna, epi = modalities["rna_layer"], modalities["epi_layer"]
        for name in (rna, epi):
            if name not in mdata.mod:
                raise KeyError(
                    f"The MuData has no modality {name!r}, where the model's results go; it has "
                    f"{list(mdata.mod)}."
                )
        # every value is computed and placed under its own cell and feature before anything is
        # written: a failure leaves the MuData as it was
        unpaired = mdata is self._unpaired_source
        source = self.adata if unpaired else mdata
        columns = {
            name: _feature_order(mdata.mod[name].var_names, self.model_features(role), name)
            for name, role in ((rna, "rna"), (epi, "epi"))
        }
        both = self.get_latent_representation(
            source, modality="joint", batch_size=batch_size, epi_weight=1.0
        )
        n_latent = both.shape[1] // 2
        weight = self.joint_epi_weight
        joint = weigh_joint(both, n_latent, weight)
        layers = {rna: None, epi: None}
        if denoised:
            layers[rna] = self.get_normalized_expression(
                source,
                library_size=rna_library_size,
                batch_size=batch_size,
                return_numpy=True,
                transform_batch=transform_batch,
            )
            layers[epi] = self.get_normalized_accessibility(
                source,
                threshold=epi_threshold,
                batch_size=batch_size,
                return_numpy=True,
                transform_batch=transform_batch,
            )
        writes: list[tuple[object, str, object]] = [(mdata.obsm, LATENT_OBSM_KEY, joint)]
        if unpaired:
            observed = observed_cells(mdata, modalities)
            frame = pd.DataFrame(
                {"rna": observed["rna"], "epi": observed["epi"]}, index=mdata.obs_names
            )
            writes.append((mdata.obsm, OBSERVED_OBSM_KEY, frame))
        halves = {rna: both[:, :n_latent], epi: both[:, n_latent:]}
        for name, layer in layers.items():
            rows = _modality_rows(mdata, name)
            half = halves[name] if rows is None else halves[name][rows]
            writes.append((mdata.mod[name].obsm, LATENT_OBSM_KEY, np.ascontiguousarray(half)))
            if layer is None:
                continue
            layer = layer if rows is None else layer[rows]
            if columns[name] is not None:
                layer = layer[:, columns[name]]
            writes.append((mdata.mod[name].layers, DENOISED_LAYER_KEY, layer.astype(np.float32)))
        init = self.init_params_.get("non_kwargs", {})
        settings = {
            "scdcca_version": __version__,
            "rna_modality": rna,
            "epi_modality": epi,
            "n_latent": int(n_latent),
            "joint_latent": "mdata.obsm['X_dcca'] = [z_rna, joint_epi_weight * z_epi]",
            "joint_epi_weight": float(weight),
            "unpaired_cells": "a cell lacking a modality gets the other modality's latent for it; "
            f"mdata.obsm[{OBSERVED_OBSM_KEY!r}] says which halves were measured",
            "rna_likelihood": str(init.get("rna_likelihood", "zinb")),
            "epi_likelihood": str(init.get("epi_likelihood", "bernoulli")),
            "denoised_layers": bool(denoised),
            "rna_denoised_library_size": float(rna_library_size),
            "epi_denoised": "open probability at mean depth"
            + ("" if epi_threshold is None else f", kept where >= {epi_threshold}"),
            "denoised_batches": "each cell's own" if names is None else [str(n) for n in names],
            "schedule": [str(p["name"]) for p in self.schedule_],
        }
        writes.append((mdata.uns, UNS_KEY, settings))
        if mdata.isbacked:
            warnings.warn(
                f"This MuData is backed by {mdata.filename}: the results are written into it "
                "in memory only, and the file is not changed. Call `mdata.write()` to store "
                "them in that file, or `mdata.write(path)` for a new one.",
                UserWarning,
                stacklevel=2,
            )
        _write_all(mdata, modalities, writes)
        return mdata


def _feature_order(names: pd.Index, features: pd.Index, modality: str) -> np.ndarray | None:
    """Column of the model's output for each feature of ``names`` (``None``: same order).

    Refuses a modality whose features are not exactly the model's (in any order): a denoised
    layer needs one value for every feature of the modality.
    """
    if names.equals(features):
        return None
    order = features.get_indexer(names)
    if len(names) != len(features) or (order < 0).any():
        extra = list(names[order < 0][:3])
        missing = list(features.difference(names)[:3])
        raise ValueError(
            f"write_results needs modality {modality!r} to hold exactly the model's "
            f"{len(features)} features (in any order); it has {len(names)}"
            + (f", including {extra} the model does not know" if extra else "")
            + (f", without {missing}" if missing else "")
            + ". Subset it to `model.model_features(...)`, or use the getters, which return "
            "the model's features for any data holding them."
        )
    return order


def _write_all(mdata: MuData, modalities: dict[str, str], writes: list) -> None:
    """Replace every result key by ``writes``, or leave the MuData as it was on failure."""
    stores = [mdata.obsm, mdata.uns]
    for name in (modalities["rna_layer"], modalities["epi_layer"]):
        stores += [mdata.mod[name].obsm, mdata.mod[name].layers]
    keys = (LATENT_OBSM_KEY, OBSERVED_OBSM_KEY, DENOISED_LAYER_KEY, UNS_KEY)
    previous = [(store, key, store[key]) for store in stores for key in keys if key in store]
    try:
        for store, key, _ in previous:
            del store[key]  # results of an earlier model never mix with these
        for store, key, value in writes:
            store[key] = value
    except BaseException:
        for store, key, _ in writes:
            if key in store:
                del store[key]
        for store, key, value in previous:
            store[key] = value
        raise


def _modality_rows(mdata: MuData, name: str) -> np.ndarray | None:
    """Rows of ``mdata.obs_names`` for the cells of modality ``name`` (``None``: all, in order)."""
    cells = mdata.mod[name].obs_names
    if cells.equals(mdata.obs_names):
        return None
    return mdata.obs_names.get_indexer(cells)
