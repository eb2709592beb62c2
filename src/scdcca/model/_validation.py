"""Checks on what users hand to DCCA, each failing with a message that names the fix."""

from __future__ import annotations

import numpy as np
from mudata import MuData
from scipy import sparse

#: Cells inspected when a check samples rows instead of scanning the whole matrix.
_SAMPLE_ROWS = 2000


def check_modality_names(mdata: MuData, modalities: dict[str, str]) -> None:
    """Both roles are mapped to modalities that exist in ``mdata``."""
    if not isinstance(mdata, MuData):
        raise TypeError(
            "DCCA needs a MuData with an RNA and an epigenome modality, got "
            f"{type(mdata).__name__}. Build one with "
            "`mudata.MuData({'rna': rna_adata, 'atac': atac_adata})`."
        )
    for role in ("rna_layer", "epi_layer"):
        name = modalities.get(role)
        if name is None:
            raise ValueError(
                f"`modalities` must name the modality for {role!r}, for example "
                "modalities={'rna_layer': 'rna', 'epi_layer': 'atac'}."
            )
        if name not in mdata.mod:
            raise KeyError(
                f"Modality {name!r} (given for {role!r}) is not in the MuData; it has "
                f"{list(mdata.mod)}. Pass one of those in `modalities`."
            )
    if modalities["rna_layer"] == modalities["epi_layer"]:
        raise ValueError(
            f"RNA and epigenome both point to modality {modalities['rna_layer']!r}; DCCA needs "
            "two different modalities."
        )


def check_paired_cells(mdata: MuData, modalities: dict[str, str]) -> None:
    """Each modality holds exactly the MuData's cells, in the MuData's order."""
    for role in ("rna_layer", "epi_layer"):
        name = modalities[role]
        adata = mdata.mod[name]
        if not adata.obs_names.is_unique:
            n_dup = int(adata.obs_names.duplicated().sum())
            raise ValueError(
                f"Modality {name!r} has {n_dup} duplicated cell names. Make them unique with "
                f"`mdata[{name!r}].obs_names_make_unique()` and `mdata.update()`."
            )
        if not adata.var_names.is_unique:
            n_dup = int(adata.var_names.duplicated().sum())
            raise ValueError(
                f"Modality {name!r} has {n_dup} duplicated feature names. Make them unique with "
                f"`mdata[{name!r}].var_names_make_unique()` and `mdata.update()`."
            )
        if adata.n_obs != mdata.n_obs or not np.array_equal(adata.obs_names, mdata.obs_names):
            raise ValueError(
                f"Modality {name!r} holds {adata.n_obs} cells but the MuData has {mdata.n_obs}, "
                "or they are in a different order. DCCA trains on paired cells: keep the cells "
                "measured in both, e.g. `muon.pp.intersect_obs(mdata)`."
            )


def _row_sample(matrix, n_rows: int = _SAMPLE_ROWS):
    n = matrix.shape[0]
    if n <= n_rows:
        return matrix[:]
    rows = np.linspace(0, n - 1, n_rows).astype(int)
    return matrix[rows]


def _values(matrix) -> np.ndarray:
    """Stored values of a (sampled) matrix: the non-zeros of a sparse one, all of a dense one."""
    if sparse.issparse(matrix):
        return np.asarray(matrix.data)
    return np.asarray(matrix).ravel()


def check_finite(matrix, modality: str, layer: str | None) -> None:
    """No NaN or infinite values (sampled rows)."""
    values = _values(_row_sample(matrix))
    if values.dtype.kind == "f" and not np.isfinite(values).all():
        where = f"layer {layer!r}" if layer else "X"
        raise ValueError(
            f"Modality {modality!r} ({where}) contains NaN or infinite values. Replace them "
            "(for example with 0) before setting up DCCA."
        )


def check_rna_counts(matrix, modality: str, layer: str | None) -> None:
    """Non-negative integers, as raw counts must be."""
    check_finite(matrix, modality, layer)
    values = _values(_row_sample(matrix))
    where = f"layer {layer!r}" if layer else "X"
    if values.size and values.min() < 0:
        raise ValueError(
            f"Modality {modality!r} ({where}) has negative values, so it is not raw counts. "
            "DCCA's negative-binomial decoder needs raw counts: point `rna_layer` at the layer "
            "that holds them (often `layers['counts']`, when X was log-normalised)."
        )
    if values.size and not np.allclose(values, np.round(values)):
        raise ValueError(
            f"Modality {modality!r} ({where}) has non-integer values (log-normalised data?), "
            "so it is not raw counts. DCCA's negative-binomial decoder needs raw counts: point "
            "`rna_layer` at the layer that holds them (often `layers['counts']`)."
        )


def check_binary(matrix, modality: str, layer: str | None, binarize: bool) -> None:
    """0/1 calls for a Bernoulli likelihood, unless the user asked to binarise."""
    values = _values(_row_sample(matrix))
    values = values[~np.isnan(values)] if values.dtype.kind == "f" else values
    if values.size and values.min() < 0:
        raise ValueError(
            f"Modality {modality!r} has negative values; a Bernoulli epigenome needs 0/1 calls. "
            "For continuous signal use `epi_likelihood='gaussian'`."
        )
    if binarize:
        return
    if values.size and not np.isin(values, (0, 1)).all():
        where = f"layer {layer!r}" if layer else "X"
        raise ValueError(
            f"Modality {modality!r} ({where}) is not binary (values up to {values.max():g}); "
            "the Bernoulli likelihood needs 0/1 calls. Counts above 1 are common in peak "
            "matrices: pass `binarize_epi=True` to `setup_mudata` to treat every non-zero as 1 "
            "(the data are not changed), or use `epi_likelihood='gaussian'` for rates."
        )
