"""Where DCCA checks its input: setup, building a model, and data a trained model reads.

Each entry point runs the checks of :mod:`scdcca.data._checks` on one streamed scan of each
matrix (:mod:`scdcca.data._scan`).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
from mudata import MuData
from scipy import sparse

from ._checks import (
    ROLES,
    check_batch_categories,
    check_epi_values,
    check_features_match,
    check_finite,
    check_matrix_type,
    check_modality_names,
    check_obs_key,
    check_paired_cells,
    check_rna_counts,
    get_matrix,
    warn_input,
)
from ._scan import MatrixSummary, scan_matrix


def _check_matrices(
    mdata: MuData,
    modalities: Mapping[str, str],
    layers: Mapping[str, str | None],
    stacklevel: int,
) -> dict[str, tuple[Any, MatrixSummary]]:
    """Scan both matrices; refuse non-finite values anywhere.

    Whether RNA must be counts depends on the likelihood, so :func:`check_model_input`
    checks that when the model is built (from these scans, which the manager keeps; see
    :func:`registered_scans`).
    ``stacklevel`` of the input warnings counts from the caller of this function.
    """
    scanned = {}
    for role, (role_arg, _) in ROLES.items():
        name = modalities[role_arg]
        adata = mdata.mod[name]
        layer = layers[role]
        matrix = get_matrix(adata, name, layer, role_arg)
        check_matrix_type(matrix, name, layer)
        summary = scan_matrix(matrix)
        # in the epigenome NaN marks entries not measured (e.g. uncovered CpG sites), which
        # the likelihood leaves out; RNA has no such meaning
        check_finite(summary, name, layer, nan_is_missing=role == "epi")
        warn_input(matrix, summary, name, layer, stacklevel + 1)
        scanned[role] = (matrix, summary)
    return scanned


def check_setup(
    mdata: MuData,
    modalities: Mapping[str, str],
    rna_layer: str | None,
    epi_layer: str | None,
    batch_key: str | None,
    batch_modality: str | None,
    source_registry: Mapping[str, Any] | None = None,
) -> dict[str, tuple[Any, MatrixSummary]]:
    """Everything :meth:`~scdcca.DCCA.setup_mudata` checks before registering anything.

    Parameters
    ----------
    source_registry
        Registry of a saved model, when a model is loaded against ``mdata``: its features must
        match.

    Returns
    -------
    ``{"rna": (matrix, summary), "epi": (matrix, summary)}``, for
    :meth:`~scdcca.data._manager.DCCAManager.keep_scans`.
    """
    check_modality_names(mdata, modalities)
    if mdata.is_view:
        raise ValueError(
            "The MuData is a view (a subset such as `mdata[cells]`); DCCA registers fields on "
            "it, which needs an actual object: pass `mdata[cells].copy()`."
        )
    check_paired_cells(mdata, modalities)
    if source_registry is not None:
        check_features_match(mdata, modalities, source_registry)
    check_obs_key(mdata, batch_key, batch_modality)
    if source_registry is None:  # a loaded model keeps the batches it was trained with
        check_batch_categories(mdata, batch_key, batch_modality)
    # warnings point at the user's call of setup_mudata: this function, then setup_mudata
    return _check_matrices(mdata, modalities, {"rna": rna_layer, "epi": epi_layer}, 3)


def _same_matrix(a, b) -> bool:
    """``a`` is ``b``, or both are sparse views of the same buffers (array vs matrix)."""
    if a is b:
        return True
    if not (sparse.issparse(a) and sparse.issparse(b)) or a.shape != b.shape:
        return False
    if a.format != b.format or a.format not in ("csr", "csc"):
        return False
    return all(
        x.size == y.size
        and x.dtype == y.dtype
        and x.__array_interface__["data"][0] == y.__array_interface__["data"][0]
        for x, y in ((a.data, b.data), (a.indices, b.indices), (a.indptr, b.indptr))
    )


def registered_scans(manager) -> dict[str, MatrixSummary]:
    """The scan of each registered matrix, ``{"rna": ..., "epi": ...}``.

    The scans :meth:`~scdcca.DCCA.setup_mudata` made are reused while the registered matrices
    are still those objects; the padded copy of unpaired cells is scanned here.
    """
    scans = {}
    for role, (_, key) in ROLES.items():
        matrix = manager.get_from_registry(key)
        scanned, summary = manager.setup_scans.get(role, (None, None))
        if scanned is None or not _same_matrix(scanned(), matrix):
            summary = scan_matrix(matrix)
        scans[role] = summary
    return scans


def check_model_input(
    manager, scans: Mapping[str, MatrixSummary], rna_likelihood: str, epi_likelihood: str
) -> None:
    """Checks of the registered matrices' ``scans`` that need the model's likelihoods."""
    args = manager.registry["setup_args"]
    modalities = args["modalities"]
    for role, (role_arg, _) in ROLES.items():
        summary = scans[role]
        name, layer = modalities[role_arg], args[role_arg]
        if role == "rna" and rna_likelihood == "gaussian":
            check_finite(summary, name, layer)
        elif role == "rna":
            layers = list(manager.adata.mod[name].layers)
            check_rna_counts(summary, name, layer, layers)
        else:
            check_epi_values(summary, name, layer, epi_likelihood, args["binarize_epi"])


def check_new_data(
    mdata: MuData,
    registry: Mapping[str, Any],
    rna_likelihood: str,
    epi_likelihood: str,
    stacklevel: int,
) -> None:
    """Checks for a MuData a trained model is applied to without ``setup_mudata``."""
    args = registry["setup_args"]
    modalities = args["modalities"]
    check_modality_names(mdata, modalities)
    check_paired_cells(mdata, modalities)
    check_features_match(mdata, modalities, registry)
    check_obs_key(mdata, args.get("batch_key"), args.get("batch_modality"))
    scanned = _check_matrices(
        mdata, modalities, {"rna": args["rna_layer"], "epi": args["epi_layer"]}, stacklevel + 1
    )
    if rna_likelihood != "gaussian":
        name = modalities["rna_layer"]
        layers = list(mdata.mod[name].layers)
        check_rna_counts(scanned["rna"][1], name, args["rna_layer"], layers)
    name = modalities["epi_layer"]
    check_epi_values(
        scanned["epi"][1], name, args["epi_layer"], epi_likelihood, args["binarize_epi"]
    )


def check_data_for_model(model, mdata: MuData | None) -> None:
    """Check a MuData a model is applied to, before scvi-tools transfers its setup.

    The MuData the model was set up with was checked by ``setup_mudata``; any other is
    checked here, on every use (modalities, paired cells, the training features in the
    training order, values: one streamed pass over each matrix).
    """
    if mdata is None or mdata is model.adata:
        return
    module = model.module
    # warnings point at the user's call: check_new_data, here, _validate_anndata, the getter
    check_new_data(mdata, model.registry_, module.rna.likelihood, module.epi.likelihood, 4)


def check_projected(model, modality: str, matrix, columns: np.ndarray | None) -> None:
    """Check the values of new cells a getter reads (projection).

    Parameters
    ----------
    model
        The :class:`~scdcca.DCCA` applied to the new cells.
    modality
        ``"rna"`` or ``"epi"``.
    matrix
        The new cells' matrix of that modality (the layer the model was set up with).
    columns
        Column of each model feature in ``matrix`` (``None``: the same features and order);
        only these are checked, as only these are read.
    """
    args = model.adata_manager.registry["setup_args"]
    name, layer = model.modalities_[f"{modality}_layer"], args[f"{modality}_layer"]
    check_matrix_type(matrix, name, layer)
    summary = scan_matrix(matrix, columns=columns)
    if modality == "rna":
        check_finite(summary, name, layer)
        if model.module.rna.likelihood != "gaussian":
            check_rna_counts(summary, name, layer, [])
    else:
        likelihood = model.module.epi.likelihood
        check_epi_values(summary, name, layer, likelihood, args["binarize_epi"])
