"""The checks on what users hand to DCCA, each failing with a message that names the fix.

Every check reads the user's data and changes nothing. Handled without an error, as
documented in :meth:`scdcca.DCCA.setup_mudata`:

- cells with no counts and features that are zero in every cell (an :class:`InputWarning`
  says how many);
- CSC matrices (an :class:`InputWarning`: rows are read faster from CSR);
- epigenome counts above 1 with ``binarize_epi=True`` (minibatches are binarised as loaded).
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping

import h5py
import numpy as np
import pandas as pd
from anndata import AnnData
from anndata.abc import CSCDataset, CSRDataset
from mudata import MuData
from scipy import sparse

from ._scan import MatrixSummary


class InputWarning(UserWarning):
    """The input is usable but probably not what was meant (empty cells, CSC layout, ...)."""


# --------------------------------------------------------------------------- MuData structure
def _where(layer: str | None) -> str:
    return "X" if layer is None else f"layer {layer!r}"


def check_modality_names(mdata: MuData, modalities: Mapping[str, str]) -> None:
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


def check_paired_cells(mdata: MuData, modalities: Mapping[str, str]) -> None:
    """Cells and features are named uniquely, and every modality's cells are in the MuData.

    Modalities may hold different cells (unpaired cells) or the same cells in another order;
    :meth:`~scdcca.DCCA.setup_mudata` pairs them by name.
    """
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
        n_other = int(np.count_nonzero(~adata.obs_names.isin(mdata.obs_names)))
        if n_other:
            raise ValueError(
                f"Modality {name!r} holds {n_other} cells that are not in the MuData's "
                "obs_names (the MuData was not updated after the modality changed). Run "
                "`mdata.update()` first. Cells measured in only one modality are fine: DCCA "
                "pairs cells by name and trains each VAE on the cells that have its modality."
            )


def check_obs_key(mdata: MuData, key: str | None, modality: str | None) -> None:
    """``key`` is a column of ``mdata.obs`` (or of ``mdata[modality].obs``) with no gaps."""
    if key is None:
        return
    if modality is not None and modality not in mdata.mod:
        raise KeyError(
            f"Modality {modality!r} (given in `modalities['batch_key']`) is not in the MuData; "
            f"it has {list(mdata.mod)}."
        )
    obs = mdata.obs if modality is None else mdata.mod[modality].obs
    where = "mdata.obs" if modality is None else f"mdata[{modality!r}].obs"
    if key not in obs:
        raise KeyError(
            f"batch_key {key!r} is not a column of {where}; columns are "
            f"{list(obs.columns)}. If it lives in a modality's obs, run `mdata.update()` "
            "or pass modalities={'batch_key': <modality>}."
        )
    n_missing = int(obs[key].isna().sum())
    if n_missing:
        raise ValueError(
            f"batch_key {key!r} ({where}) has no value for {n_missing} of {len(obs)} cells. "
            f"Fill them, e.g. `{where}[{key!r}] = {where}[{key!r}].astype(str)` to make 'nan' "
            "a batch of its own, or drop those cells."
        )


def check_batch_categories(mdata: MuData, key: str | None, modality: str | None) -> None:
    """Refuse a categorical batch key with categories that no cell has.

    scvi-tools registers one batch per category: an empty one would be a batch the model
    never trains, yet could decode in (``transform_batch``).
    """
    if key is None:
        return
    obs = mdata.obs if modality is None else mdata.mod[modality].obs
    column = obs[key]
    if not isinstance(column.dtype, pd.CategoricalDtype):
        return
    used = column.cat.remove_unused_categories().cat.categories
    unused = [c for c in column.cat.categories if c not in used]
    if unused:
        where = "mdata.obs" if modality is None else f"mdata[{modality!r}].obs"
        shown = ", ".join(repr(c) for c in unused[:5]) + (", ..." if len(unused) > 5 else "")
        raise ValueError(
            f"batch_key {key!r} ({where}) is categorical with {len(unused)} categories that no "
            f"cell has ({shown}); each would become a batch the model never trains. Drop them "
            f"first: `{where}[{key!r}] = {where}[{key!r}].cat.remove_unused_categories()`."
        )


def check_features_match(
    found: pd.Index, expected, modality: str, role: str, registry_key: str
) -> None:
    """Modality ``modality`` holds the features a model was trained on, in the training order.

    ``found``: the modality's ``var_names``; ``expected``: the model's feature names.
    """
    expected = pd.Index(np.asarray(expected).astype(str))
    found = pd.Index(np.asarray(found).astype(str))
    if expected.equals(found):
        return
    what = "genes" if role == "rna" else "features"
    missing = expected.difference(found, sort=False)
    new = found.difference(expected, sort=False)
    if len(missing) or len(new):
        first = ", ".join(repr(str(v)) for v in missing[:3])
        problem = (
            f"does not hold the {what} the model was trained on: {len(missing)} of the "
            f"model's {len(expected)} {what} are missing"
            + (f" (first: {first})" if len(missing) else "")
            + f" and {len(new)} of its {len(found)} {what} are not in the model"
        )
    else:
        problem = f"holds the model's {len(expected)} {what} but in a different order"
    raise ValueError(
        f"Modality {modality!r} {problem}. DCCA reads features by position: give it every "
        f"training feature in the training order, e.g. `mdata.mod[{modality!r}] = "
        f"mdata[{modality!r}][:, names].copy()` and `mdata.update()`, with `names` from "
        f"`model.adata_manager.get_state_registry({registry_key!r}).column_names` or, for a "
        f"saved model, `DCCA.load_registry(path)['field_registries'][{registry_key!r}]"
        "['state_registry']['column_names']`."
    )


# --------------------------------------------------------------------------- matrices
def get_matrix(adata: AnnData, modality: str, layer: str | None, role_arg: str):
    """The matrix DCCA reads from a modality (``X`` or a layer), after checking it exists."""
    if layer is not None and layer not in adata.layers:
        raise KeyError(
            f"Layer {layer!r} (given as `{role_arg}`) is not in modality {modality!r}; its "
            f"layers are {list(adata.layers)}. Pass one of those, or `{role_arg}=None` for X."
        )
    matrix = adata.X if layer is None else adata.layers[layer]
    if matrix is None:
        raise ValueError(
            f"Modality {modality!r} has no X. Pass `{role_arg}=` one of its layers "
            f"{list(adata.layers)}."
        )
    return matrix


def _is_dask(matrix) -> bool:
    return type(matrix).__module__.split(".")[0] == "dask"


def check_matrix_type(matrix, modality: str, layer: str | None) -> None:
    """A container DCCA reads by rows, holding real numbers, with cells and features."""
    where = _where(layer)
    if sparse.issparse(matrix):
        if matrix.format not in ("csr", "csc"):
            raise TypeError(
                f"Modality {modality!r} ({where}) is a sparse {matrix.format.upper()} matrix; "
                "DCCA reads cells from CSR (or CSC) matrices. Convert it with `.tocsr()`."
            )
    elif not (
        isinstance(matrix, np.ndarray | h5py.Dataset | CSRDataset | CSCDataset) or _is_dask(matrix)
    ):
        raise TypeError(
            f"Modality {modality!r} ({where}) is a {type(matrix).__name__}; DCCA reads NumPy "
            "arrays, SciPy CSR/CSC matrices, dask arrays and backed (on-disk) AnnData. Convert "
            "it, e.g. with `scipy.sparse.csr_matrix(...)` or `np.asarray(...)`."
        )
    dtype = np.dtype(matrix.dtype)
    if dtype.kind not in "biuf":
        raise TypeError(
            f"Modality {modality!r} ({where}) holds values of dtype {dtype}; DCCA needs real "
            "numbers (integers or floats). Convert them, e.g. with `.astype(np.float32)`."
        )
    if len(matrix.shape) != 2 or 0 in matrix.shape:
        raise ValueError(
            f"Modality {modality!r} ({where}) has shape {tuple(matrix.shape)}; DCCA needs at "
            "least one cell and one feature."
        )


def check_finite(
    summary: MatrixSummary, modality: str, layer: str | None, nan_is_missing: bool = False
) -> None:
    """No NaN or infinite values anywhere (NaN allowed where it marks a missing entry)."""
    if summary.n_inf or (summary.n_nan and not nan_is_missing):
        raise ValueError(
            f"Modality {modality!r} ({_where(layer)}) has {summary.n_nan} NaN and "
            f"{summary.n_inf} infinite values. DCCA needs finite values everywhere: replace "
            "them (e.g. NaN with 0 where it means no signal) or remove the affected cells or "
            "features before `setup_mudata`."
        )


def check_rna_counts(
    summary: MatrixSummary, modality: str, layer: str | None, layers: list[str]
) -> None:
    """Finite, non-negative integers, as raw counts are."""
    check_finite(summary, modality, layer)
    if not (summary.n_negative or summary.n_non_integer):
        return
    where = _where(layer)
    if summary.n_negative:
        problem = f"{summary.n_negative} negative values (smallest {summary.min_value:g})"
    else:
        problem = (
            f"{summary.n_non_integer} non-integer values (e.g. "
            f"{summary.example_non_integer:g}), as log-normalised or scaled data have"
        )
    others = [name for name in layers if name != layer]
    if layer is None:
        hint = (
            "Normalising (`sc.pp.normalize_total`, `sc.pp.log1p`, `sc.pp.scale`) overwrites X; "
            "raw counts are usually kept in a layer such as `layers['counts']`. Point "
            "`rna_layer` at the layer that holds them"
        )
    else:
        hint = "Point `rna_layer` at the layer that holds raw counts (None for X)"
    if others:
        suggestion = "counts" if "counts" in others else others[0]
        hint += f": this modality has layers {others}, e.g. `rna_layer={suggestion!r}`."
    else:
        hint += (
            f"; modality {modality!r} has no other layer, so reload its raw counts (or, if "
            "only normalised values exist, pass `rna_likelihood='gaussian'` to DCCA)."
        )
    raise ValueError(
        f"Modality {modality!r} ({where}) has {problem}, so it is not raw counts. DCCA's "
        f"negative-binomial decoder needs raw counts. {hint}"
    )


def check_epi_values(
    summary: MatrixSummary,
    modality: str,
    layer: str | None,
    likelihood: str,
    binarize: bool,
) -> None:
    """Finite values; 0/1 calls for a Bernoulli likelihood unless the user asked to binarise."""
    check_finite(summary, modality, layer, nan_is_missing=True)
    if likelihood != "bernoulli":
        return
    where = _where(layer)
    if summary.n_negative:
        raise ValueError(
            f"Modality {modality!r} ({where}) has {summary.n_negative} negative values "
            f"(smallest {summary.min_value:g}); the Bernoulli likelihood needs 0/1 calls. For "
            "continuous signal use `epi_likelihood='gaussian'`."
        )
    if summary.n_non_binary and not binarize:
        raise ValueError(
            f"Modality {modality!r} ({where}) is not binary: {summary.n_non_binary} values are "
            f"neither 0 nor 1 (largest {summary.max_value:g}), and the Bernoulli likelihood "
            "needs 0/1 calls. Counts above 1 are the common case for a peak matrix (reads or "
            "fragments per peak): pass `binarize_epi=True` to `setup_mudata` to treat every "
            "non-zero as 1 (your data are not changed), or use `epi_likelihood='gaussian'` for "
            "continuous rates."
        )


def warn_input(
    matrix, summary: MatrixSummary, modality: str, layer: str | None, stacklevel: int
) -> None:
    """Warn about empty cells, all-zero features and a CSC layout (all usable as they are).

    ``stacklevel`` counts from the caller of this function (1: that caller).
    """
    where = _where(layer)
    if summary.n_empty_cells:
        warnings.warn(
            f"{summary.n_empty_cells} of {summary.n_obs} cells have no counts in modality "
            f"{modality!r} ({where}); that modality tells DCCA nothing about them. Drop them "
            f"unless that is intended, e.g. `sc.pp.filter_cells(mdata[{modality!r}], "
            "min_counts=1)` and `muon.pp.intersect_obs(mdata)`.",
            InputWarning,
            stacklevel=stacklevel + 1,
        )
    if summary.n_empty_features:
        warnings.warn(
            f"{summary.n_empty_features} of {summary.n_vars} features of modality {modality!r} "
            f"({where}) are zero in every cell; they carry no information and cost time. Drop "
            f"them with `sc.pp.filter_genes(mdata[{modality!r}], min_cells=1)` and "
            "`mdata.update()`.",
            InputWarning,
            stacklevel=stacklevel + 1,
        )
    if (sparse.issparse(matrix) and matrix.format == "csc") or isinstance(matrix, CSCDataset):
        warnings.warn(
            f"Modality {modality!r} ({where}) is a CSC matrix; DCCA reads cells (rows), which "
            "is much faster from CSR. It works as it is; to speed it up convert once, e.g. "
            f"`mdata[{modality!r}].X = mdata[{modality!r}].X.tocsr()` (DCCA itself never "
            "changes your data).",
            InputWarning,
            stacklevel=stacklevel + 1,
        )
