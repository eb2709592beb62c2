"""Write a trained model's results into a MuData under documented keys."""

from __future__ import annotations

import warnings
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
from mudata import MuData

from scdcca import __version__
from scdcca._constants import (
    DENOISED_LAYER_KEY,
    LATENT_OBSM_KEY,
    OBSERVED_OBSM_KEY,
    UNS_KEY,
)

from ._access import batch_list
from ._joint import weigh_joint
from ._pairing import observed_cells

if TYPE_CHECKING:
    from ._access import BatchChoice
    from ._model import DCCA


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


def write(
    model: DCCA,
    mdata: MuData,
    overwrite: bool = False,
    epi_threshold: float | None = None,
    rna_library_size: float = 1e4,
    batch_size: int | None = None,
    denoised: bool = True,
    transform_batch: BatchChoice = None,
) -> MuData:
    """Write ``model``'s results into ``mdata``; documented in :meth:`DCCA.write_results`."""
    model._require_trained()
    model._transform_batch_codes(transform_batch)  # refused before anything is written
    names = batch_list(transform_batch)
    modalities = model.modalities_
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
    unpaired = mdata is model._unpaired_source
    source = model.adata if unpaired else mdata
    columns = {
        name: _feature_order(mdata.mod[name].var_names, model.model_features(role), name)
        for name, role in ((rna, "rna"), (epi, "epi"))
    }
    both = model.get_latent_representation(
        source, modality="joint", batch_size=batch_size, epi_weight=1.0
    )
    n_latent = both.shape[1] // 2
    weight = model.joint_epi_weight
    joint = weigh_joint(both, n_latent, weight)
    layers = {rna: None, epi: None}
    if denoised:
        layers[rna] = model.get_normalized_expression(
            source,
            library_size=rna_library_size,
            batch_size=batch_size,
            return_numpy=True,
            transform_batch=transform_batch,
        )
        layers[epi] = model.get_normalized_accessibility(
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
    init = model.init_params_.get("non_kwargs", {})
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
        "schedule": [str(p["name"]) for p in model.schedule_],
    }
    writes.append((mdata.uns, UNS_KEY, settings))
    if mdata.isbacked:
        warnings.warn(
            f"This MuData is backed by {mdata.filename}: the results are written into it in "
            "memory only, and the file is not changed. Call `mdata.write()` to store them in "
            "that file, or `mdata.write(path)` for a new one.",
            UserWarning,
            stacklevel=3,
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
