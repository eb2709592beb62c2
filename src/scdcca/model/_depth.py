"""Sequencing depth of the epigenome: its mean and its relation to the RNA library size."""

from __future__ import annotations

import numpy as np
from scipy import sparse

_ROWS = 8192


def _row_blocks(matrix):
    for start in range(0, matrix.shape[0], _ROWS):
        yield matrix[start : start + _ROWS]


def open_counts(matrix) -> np.ndarray:
    """Non-zero entries of each row (NaN, a missing entry, does not count)."""
    counts = []
    for block in _row_blocks(matrix):
        if sparse.issparse(block):
            counts.append(np.asarray((block > 0).sum(1)).ravel())
        else:
            counts.append(np.nansum(np.asarray(block) > 0, axis=1))
    return np.concatenate(counts).astype(np.float64) if counts else np.zeros(0)


def row_totals(matrix) -> np.ndarray:
    """Sum of each row (NaN ignored)."""
    totals = []
    for block in _row_blocks(matrix):
        if sparse.issparse(block):
            totals.append(np.asarray(block.sum(1)).ravel())
        else:
            totals.append(np.nansum(np.asarray(block), axis=1))
    return np.concatenate(totals).astype(np.float64) if totals else np.zeros(0)


def log_mean_depth(matrix) -> float:
    """``log1p`` of the mean number of non-zero entries per cell."""
    counts = open_counts(matrix)
    return float(np.log1p(counts.mean())) if counts.size else 0.0


def depth_fit(rna, epi, counts: bool) -> tuple[float, float]:
    """Least-squares ``(slope, intercept)`` of ``log1p(open regions)`` on ``log1p(library)``.

    ``rna`` and ``epi`` hold the same cells in the same order. Without RNA counts
    (``counts=False``), or when the library sizes do not vary, the slope is 0 and the
    intercept the mean of ``log1p(open regions)``.
    """
    y = np.log1p(open_counts(epi))
    if y.size == 0:
        return 0.0, 0.0
    if not counts:
        return 0.0, float(y.mean())
    x = np.log1p(np.clip(row_totals(rna), 0.0, None))
    variance = float(np.var(x))
    if variance < 1e-12:
        return 0.0, float(y.mean())
    slope = float(np.mean((x - x.mean()) * (y - y.mean())) / variance)
    return slope, float(y.mean() - slope * x.mean())
