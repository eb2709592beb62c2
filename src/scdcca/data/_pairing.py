"""MuData with unpaired cells: some measured by RNA only, some by the epigenome only.

scvi-tools registers only fully paired MuData, so DCCA trains on a padded twin: every
modality holds every cell of the MuData (in its order), cells that lack a modality get an
empty row there, and two ``.obs`` flags say which modalities each cell has. The twin is
registered with scvi-tools and held by its :class:`~scvi.data.AnnDataManager`; the user's
MuData only receives the twin's ``_scvi_*`` registration keys in ``.uns``, through which the
model finds the twin. Sparse rows are padded without densifying.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType

import numpy as np
import pandas as pd
from anndata import AnnData
from mudata import MuData
from scipy import sparse

from scdcca._constants import MODALITIES

from ._fields import MEASURED_COLUMN

#: Columns of the padded twin's ``.obs`` with the per-cell "measured" flags.
OBSERVED_COLUMNS = MappingProxyType({"rna": "_dcca_observed_rna", "epi": "_dcca_observed_epi"})


def observed_cells(mdata: MuData, modalities: Mapping[str, str]) -> dict[str, np.ndarray]:
    """For each role, whether each cell of ``mdata.obs_names`` is in that modality."""
    return {
        role: mdata.obs_names.isin(mdata.mod[modalities[f"{role}_layer"]].obs_names)
        for role in MODALITIES
    }


def is_paired(mdata: MuData, modalities: Mapping[str, str]) -> bool:
    """Whether both modalities hold exactly the MuData's cells in its order."""
    return all(
        mdata.mod[modalities[f"{role}_layer"]].obs_names.equals(mdata.obs_names)
        for role in MODALITIES
    )


def _pad_rows(matrix, rows: np.ndarray, n_cells: int):
    """Rows ``rows`` of ``matrix`` (``-1``: an empty row), as CSR for sparse input."""
    present = rows >= 0
    if sparse.issparse(matrix) or hasattr(matrix, "to_memory"):
        if hasattr(matrix, "to_memory"):
            matrix = matrix.to_memory()
        selector = sparse.csr_matrix(
            (
                np.ones(int(present.sum()), dtype=np.float32),
                (np.flatnonzero(present), rows[present]),
            ),
            shape=(n_cells, matrix.shape[0]),
        )
        return (selector @ sparse.csr_matrix(matrix)).astype(np.float32)
    dense = np.zeros((n_cells, matrix.shape[1]), dtype=np.float32)
    dense[present] = np.asarray(matrix)[rows[present]]
    return dense


def padded_twin(
    mdata: MuData, modalities: Mapping[str, str], layers: Mapping[str, str | None]
) -> MuData:
    """A fully paired MuData over ``mdata``'s cells, with the registered layers padded.

    Parameters
    ----------
    mdata
        MuData whose modalities hold different cells.
    modalities
        ``{"rna_layer": name, "epi_layer": name}``.
    layers
        ``{"rna": layer or None, "epi": layer or None}``: what each modality is read from.
    """
    cells = mdata.obs_names
    observed = observed_cells(mdata, modalities)
    mods = {}
    for role in MODALITIES:
        name = modalities[f"{role}_layer"]
        adata = mdata.mod[name]
        rows = adata.obs_names.get_indexer(cells)
        matrix = adata.X if layers[role] is None else adata.layers[layers[role]]
        padded = _pad_rows(matrix, rows, len(cells))
        twin = AnnData(
            X=padded if layers[role] is None else None,
            obs=pd.DataFrame({MEASURED_COLUMN: observed[role]}, index=cells),
            var=adata.var[[]].copy(),
        )
        if layers[role] is not None:
            twin.layers[layers[role]] = padded
        mods[name] = twin
    twin_mdata = MuData(mods)
    for column in mdata.obs.columns:
        twin_mdata.obs[column] = mdata.obs[column].to_numpy()
    for role in MODALITIES:
        twin_mdata.obs[OBSERVED_COLUMNS[role]] = observed[role].astype(np.float32)
    return twin_mdata


def share_registration(mdata: MuData, twin: MuData) -> None:
    """Point the user's unpaired MuData at the registration of its padded twin.

    scvi-tools finds the :class:`~scvi.data.AnnDataManager` of a MuData through the
    ``_scvi_uuid`` / ``_scvi_manager_uuid`` keys of its ``.uns``. Copying the twin's keys into
    the user's MuData lets :class:`~scdcca.DCCA` find the twin from the user's object, and the
    twin lives as long as its manager (``manager.adata``): no state is kept here.
    """
    for key, value in twin.uns.items():
        if str(key).startswith("_scvi_"):
            mdata.uns[key] = value
