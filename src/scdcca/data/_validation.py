"""Where DCCA checks its input beyond what each field checks as it registers its matrix.

The MuData as a whole (modalities, cell names, the batch column) is checked before scvi-tools
registers or transfers it; the checks that depend on the model's likelihoods read what each
:class:`~scdcca.data._fields.ModalityLayerField` found when it registered its matrix.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
from mudata import MuData

from scdcca._constants import EPI_KEY, RNA_KEY

from ._checks import (
    check_batch_categories,
    check_epi_values,
    check_finite,
    check_matrix_type,
    check_modality_names,
    check_obs_key,
    check_paired_cells,
    check_rna_counts,
    get_matrix,
)
from ._fields import scan_findings
from ._scan import scan_matrix


def check_mudata(
    mdata: MuData,
    modalities: Mapping[str, str],
    batch_key: str | None,
    batch_modality: str | None,
    setup: bool,
) -> None:
    """The MuData's modalities, cell names and batch column, before any matrix is read.

    ``setup``: the MuData is being set up (it must not be a view, and a categorical batch
    column must not have categories without cells); otherwise a model reads it.
    """
    check_modality_names(mdata, modalities)
    if setup and mdata.is_view:
        raise ValueError(
            "The MuData is a view (a subset such as `mdata[cells]`); DCCA registers fields on "
            "it, which needs an actual object: pass `mdata[cells].copy()`."
        )
    check_paired_cells(mdata, modalities)
    check_obs_key(mdata, batch_key, batch_modality)
    if setup:
        check_batch_categories(mdata, batch_key, batch_modality)


def check_layers(mdata: MuData, modalities: Mapping[str, str], layers: Mapping[str, Any]) -> None:
    """Each role's matrix exists and is a container DCCA reads (nothing is scanned)."""
    for role in ("rna", "epi"):
        name, layer = modalities[f"{role}_layer"], layers[role]
        check_matrix_type(get_matrix(mdata.mod[name], name, layer, f"{role}_layer"), name, layer)


def check_model_input(manager, rna_likelihood: str, epi_likelihood: str) -> None:
    """The registered matrices suit the likelihoods (RNA counts, 0/1 epigenome calls).

    Reads what the fields found when ``manager`` registered the matrices.
    """
    args = manager.registry["setup_args"]
    modalities = args["modalities"]
    name, layer = modalities["rna_layer"], args["rna_layer"]
    if rna_likelihood != "gaussian":  # non-finite values were refused at registration
        summary = scan_findings(manager, RNA_KEY)
        check_rna_counts(summary, name, layer, list(manager.adata.mod[name].layers))
    name, layer = modalities["epi_layer"], args["epi_layer"]
    summary = scan_findings(manager, EPI_KEY)
    check_epi_values(summary, name, layer, epi_likelihood, args["binarize_epi"])


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
