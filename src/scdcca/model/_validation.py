"""Checks on what users hand to DCCA, each failing with a message that names the fix.

Every check reads the user's data and changes nothing. Matrix checks make one streamed pass:
sparse CSR/CSC matrices in memory are read through their stored values a block of rows (or
columns) at a time, everything else (dense arrays, backed on-disk matrices, dask arrays) a
block of rows at a time, so no whole matrix is ever densified or copied.

Handled without an error, as documented in :meth:`scdcca.DCCA.setup_mudata`:

- cells with no counts and features that are zero in every cell (an :class:`InputWarning`
  says how many);
- CSC matrices (an :class:`InputWarning`: rows are read faster from CSR);
- epigenome counts above 1 with ``binarize_epi=True`` (minibatches are binarised as loaded).
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

import h5py
import numpy as np
import pandas as pd
from anndata import AnnData
from anndata.abc import CSCDataset, CSRDataset
from mudata import MuData
from scipy import sparse

from scdcca._blocks import row_slices
from scdcca._constants import EPI_KEY, RNA_KEY

#: Entries (cells x features) read per block when streaming over a matrix.
_BLOCK_ENTRIES = 1 << 22
#: A value further than this from the nearest integer is not a count.
_INTEGER_TOLERANCE = 1e-3
#: The setup argument naming each role's layer, and its registry key.
_ROLES = MappingProxyType({"rna": ("rna_layer", RNA_KEY), "epi": ("epi_layer", EPI_KEY)})


class InputWarning(UserWarning):
    """The input is usable but probably not what was meant (empty cells, CSC layout, ...)."""


# --------------------------------------------------------------------------- scanning
@dataclass
class MatrixSummary:
    """What one pass over a cells x features matrix found.

    For sparse matrices the values are the stored ones: an explicitly stored zero counts as a
    zero, and duplicated entries of a non-canonical matrix are seen one by one.
    """

    n_obs: int
    n_vars: int
    n_nan: int = 0
    n_inf: int = 0
    n_negative: int = 0
    n_non_integer: int = 0
    n_non_binary: int = 0
    min_value: float = np.inf
    max_value: float = -np.inf
    example_non_integer: float = np.nan
    cell_nonzero: np.ndarray = field(default=None, repr=False)
    feature_nonzero: np.ndarray = field(default=None, repr=False)

    def __post_init__(self) -> None:
        if self.cell_nonzero is None:
            self.cell_nonzero = np.zeros(self.n_obs, dtype=np.int64)
        if self.feature_nonzero is None:
            self.feature_nonzero = np.zeros(self.n_vars, dtype=np.int64)

    @property
    def n_empty_cells(self) -> int:
        """Cells without a single non-zero (non-NaN) value."""
        return int(np.count_nonzero(self.cell_nonzero == 0))

    @property
    def n_empty_features(self) -> int:
        """Features that are zero (or NaN) in every cell."""
        return int(np.count_nonzero(self.feature_nonzero == 0))

    def as_dict(self) -> dict[str, Any]:
        """Plain values, arrays as lists, for comparisons and reports."""
        out = {k: getattr(self, k) for k in self.__dataclass_fields__}
        out["cell_nonzero"] = self.cell_nonzero.tolist()
        out["feature_nonzero"] = self.feature_nonzero.tolist()
        return out

    def add_values(self, values: np.ndarray) -> None:
        """Count NaN, infinite, negative, non-integer and non-binary entries of ``values``."""
        if values.size == 0:
            return
        kind = values.dtype.kind
        if kind == "b":
            self.min_value = min(self.min_value, float(values.min()))
            self.max_value = max(self.max_value, float(values.max()))
            return
        if kind == "f":
            finite = np.isfinite(values)
            if not finite.all():
                n_nan = int(np.count_nonzero(np.isnan(values)))
                self.n_nan += n_nan
                self.n_inf += int(values.size - np.count_nonzero(finite)) - n_nan
                values = values[finite]
                if values.size == 0:
                    return
            off = np.abs(values - np.rint(values)) > _INTEGER_TOLERANCE
            n_off = int(np.count_nonzero(off))
            if n_off and np.isnan(self.example_non_integer):
                self.example_non_integer = float(values[off][0])
            self.n_non_integer += n_off
        self.n_negative += int(np.count_nonzero(values < 0))
        self.n_non_binary += int(np.count_nonzero((values != 0) & (values != 1)))
        self.min_value = min(self.min_value, float(values.min()))
        self.max_value = max(self.max_value, float(values.max()))


def _nonzero(values: np.ndarray) -> np.ndarray:
    nonzero = values != 0
    if values.dtype.kind == "f":
        nonzero &= ~np.isnan(values)
    return nonzero


def _scan_compressed(summary: MatrixSummary, matrix, row_offset: int, block_entries: int) -> None:
    """Stream over a CSR or CSC matrix's stored values, a block of its major axis at a time."""
    by_rows = matrix.format == "csr"
    n_major, n_minor = matrix.shape if by_rows else matrix.shape[::-1]
    indptr = np.asarray(matrix.indptr)
    n_stored = int(indptr[-1] - indptr[0]) if n_major else 0
    step = max(1, block_entries * n_major // max(n_stored, 1))
    major_counts = np.zeros(n_major, dtype=np.int64)
    minor_counts = np.zeros(n_minor, dtype=np.int64)
    for block in row_slices(n_major, step):
        start, stop = block.start, block.stop
        lo, hi = int(indptr[start]), int(indptr[stop])
        values = np.asarray(matrix.data[lo:hi])
        summary.add_values(values)
        nonzero = _nonzero(values)
        cumulative = np.zeros(hi - lo + 1, dtype=np.int64)
        np.cumsum(nonzero, out=cumulative[1:])
        bounds = indptr[start : stop + 1] - lo
        major_counts[start:stop] = cumulative[bounds[1:]] - cumulative[bounds[:-1]]
        indices = np.asarray(matrix.indices[lo:hi])[nonzero]
        minor_counts += np.bincount(indices, minlength=n_minor)[:n_minor]
    if n_stored < n_major * n_minor:  # zeros that are not stored are values too
        summary.min_value = min(summary.min_value, 0.0)
        summary.max_value = max(summary.max_value, 0.0)
    cells, features = (major_counts, minor_counts) if by_rows else (minor_counts, major_counts)
    summary.cell_nonzero[row_offset : row_offset + len(cells)] += cells
    summary.feature_nonzero += features


def _scan_dense(summary: MatrixSummary, block: np.ndarray, row_offset: int) -> None:
    summary.add_values(block.ravel())
    nonzero = _nonzero(block)
    summary.cell_nonzero[row_offset : row_offset + block.shape[0]] += nonzero.sum(1)
    summary.feature_nonzero += nonzero.sum(0)


def scan_matrix(
    matrix, block_entries: int = _BLOCK_ENTRIES, columns: np.ndarray | None = None
) -> MatrixSummary:
    """One streamed pass over a cells x features matrix.

    Parameters
    ----------
    matrix
        NumPy array, SciPy sparse matrix or array, backed (on-disk) AnnData matrix
        (``h5py.Dataset``, ``CSRDataset``, ``CSCDataset``) or dask array.
    block_entries
        About how many entries are held in memory at a time.
    columns
        Scan only these columns, in this order (``None``: all).

    Returns
    -------
    The counts of problematic values and the non-zeros of every cell and feature.
    """
    n_obs, n_vars = (int(n) for n in matrix.shape)
    if columns is not None:
        columns = np.asarray(columns)
        n_vars = len(columns)
    summary = MatrixSummary(n_obs, n_vars)
    if sparse.issparse(matrix):
        if matrix.format not in ("csr", "csc"):
            matrix = matrix.tocsr()  # a private copy, still sparse
        if columns is not None:
            matrix = matrix[:, columns]  # a private copy, still sparse
        _scan_compressed(summary, matrix, 0, block_entries)
        return summary
    step = max(1, block_entries // max(int(matrix.shape[1]), 1))
    for rows in row_slices(n_obs, step):
        block = matrix[rows]
        if hasattr(block, "compute"):  # dask
            block = block.compute()
        if columns is not None:
            block = block[:, columns]
        if sparse.issparse(block):
            _scan_compressed(summary, sparse.csr_matrix(block), rows.start, block_entries)
        else:
            _scan_dense(summary, np.asarray(block), rows.start)
    return summary


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
    mdata: MuData, modalities: Mapping[str, str], registry: Mapping[str, Any]
) -> None:
    """Each modality holds the features a model was trained on, in the training order."""
    field_registries = registry.get("field_registries", {})
    for role, (role_arg, key) in _ROLES.items():
        expected = field_registries.get(key, {}).get("state_registry", {}).get("column_names")
        if expected is None:
            continue
        name = modalities[role_arg]
        expected = pd.Index(np.asarray(expected).astype(str))
        found = pd.Index(np.asarray(mdata.mod[name].var_names).astype(str))
        if expected.equals(found):
            continue
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
            f"Modality {name!r} {problem}. DCCA reads features by position: give it every "
            f"training feature in the training order, e.g. `mdata.mod[{name!r}] = "
            f"mdata[{name!r}][:, names].copy()` and `mdata.update()`, with `names` from "
            f"`model.adata_manager.get_state_registry({key!r}).column_names` or, for a saved "
            f"model, `DCCA.load_registry(path)['field_registries'][{key!r}]['state_registry']"
            "['column_names']`."
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


# --------------------------------------------------------------------------- entry points
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
    for role, (role_arg, _) in _ROLES.items():
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
    :meth:`~scdcca.model.DCCAManager.keep_scans`.
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
    for role, (_, key) in _ROLES.items():
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
    for role, (role_arg, _) in _ROLES.items():
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
