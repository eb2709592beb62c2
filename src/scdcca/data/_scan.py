"""One streamed pass over a matrix: what DCCA's input checks need to know about its values.

Sparse CSR/CSC matrices in memory are read through their stored values a block of rows (or
columns) at a time, everything else (dense arrays, backed on-disk matrices, dask arrays) a
block of rows at a time, so no whole matrix is ever densified or copied.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
from scipy import sparse

from scdcca._blocks import row_slices

#: Entries (cells x features) read per block when streaming over a matrix.
_BLOCK_ENTRIES = 1 << 22
#: A value further than this from the nearest integer is not a count.
_INTEGER_TOLERANCE = 1e-3
#: The per-cell and per-feature counts of a summary.
_PER_ENTRY = ("cell_nonzero", "feature_nonzero")


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

    def of_cells(self, cells: np.ndarray) -> MatrixSummary:
        """The summary with only ``cells`` (a boolean mask) counted as cells.

        The value counts are kept: rows outside ``cells`` must hold no values (the empty rows
        of a padded matrix).
        """
        return replace(
            self, n_obs=int(np.count_nonzero(cells)), cell_nonzero=self.cell_nonzero[cells]
        )

    def findings(self) -> dict[str, Any]:
        """The scalar findings, and the mean number of non-zero values per cell."""
        out = {k: getattr(self, k) for k in self.__dataclass_fields__ if k not in _PER_ENTRY}
        cells = self.cell_nonzero
        out["mean_cell_nonzero"] = float(cells.mean()) if len(cells) else 0.0
        return out

    @classmethod
    def from_findings(cls, findings: dict[str, Any]) -> MatrixSummary:
        """A summary of :meth:`findings` (it knows no cell or feature as empty)."""
        known = {k: v for k, v in findings.items() if k in cls.__dataclass_fields__}
        empty = np.zeros(0, dtype=np.int64)
        return cls(**known, cell_nonzero=empty, feature_nonzero=empty)

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
