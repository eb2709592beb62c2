"""Reading a layer in blocks of cells, so no cells x features matrix is densified at once."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
from anndata import AnnData
from scipy import sparse

from scdcca._blocks import row_slices

#: Bytes a block of cells may take when densified (float64); blocks are sized to fit.
BLOCK_BYTES = 128 * 2**20


def get_matrix(adata: AnnData, layer: str | None, name: str = "adata"):
    """``adata.X`` or ``adata.layers[layer]``, with a clear error if the layer is missing."""
    if layer is None:
        if adata.X is None:
            raise ValueError(f"{name}.X is empty; pass `layer=` naming a layer with the data.")
        return adata.X
    if layer not in adata.layers:
        hint = (
            " Run `model.write_results(mdata, denoised=True)` first to write 'dcca_denoised'."
            if layer == "dcca_denoised"
            else ""
        )
        raise KeyError(
            f"Layer {layer!r} is not in {name}.layers (it has {list(adata.layers)}).{hint}"
        )
    return adata.layers[layer]


def block_rows(n_columns: int, block_size: int | None, n_rows: int) -> int:
    """Rows per block: ``block_size`` or as many as fit in :data:`BLOCK_BYTES` densified."""
    if block_size is not None:
        if block_size < 1:
            raise ValueError(f"`block_size` must be >= 1, got {block_size}.")
        return int(block_size)
    return int(np.clip(BLOCK_BYTES // (8 * max(n_columns, 1)), 1, max(n_rows, 1)))


def iter_blocks(
    matrix, block_size: int | None = None, columns: np.ndarray | None = None
) -> Iterator[tuple[slice, np.ndarray | sparse.csr_matrix]]:
    """Blocks of rows as float64: CSR for sparse input, ndarray for dense input.

    ``columns`` (indices) selects and orders columns.
    """
    n_rows = matrix.shape[0]
    width = matrix.shape[1] if columns is None else len(columns)
    step = block_rows(width, block_size, n_rows)
    for rows in row_slices(n_rows, step):
        block = matrix[rows]
        if sparse.issparse(block):
            block = sparse.csr_matrix(block, dtype=np.float64)
            if columns is not None:
                block = block[:, columns]
        else:
            block = np.asarray(block, dtype=np.float64)
            if columns is not None:
                block = block[:, columns]
        yield rows, block


def dense(block) -> np.ndarray:
    """A block as an ndarray."""
    return block.toarray() if sparse.issparse(block) else np.asarray(block)


def times(block, right: sparse.spmatrix) -> np.ndarray:
    """``block @ right`` as a dense ndarray, for a sparse or dense block and a sparse right."""
    if sparse.issparse(block):
        return np.asarray((block @ right).todense())
    return np.asarray((right.T @ block.T).T)


def row_and_column_sums(matrix, block_size: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Sums of each row and of each column, computed one block of rows at a time."""
    rows = np.zeros(matrix.shape[0])
    cols = np.zeros(matrix.shape[1])
    for where, block in iter_blocks(matrix, block_size):
        rows[where] = np.asarray(block.sum(1)).ravel()
        cols += np.asarray(block.sum(0)).ravel()
    return rows, cols


def column_nonzeros(matrix, block_size: int | None = None) -> np.ndarray:
    """Number of non-zero entries of each column, one block of rows at a time."""
    counts = np.zeros(matrix.shape[1], dtype=np.int64)
    for _, block in iter_blocks(matrix, block_size):
        if sparse.issparse(block):
            counts += np.bincount(block.indices[block.data != 0], minlength=matrix.shape[1])
        else:
            counts += (block != 0).sum(0)
    return counts


def check_non_negative(matrix, what: str, block_size: int | None = None) -> None:
    """Raise if the stored values include negative or non-finite numbers."""
    for _, block in iter_blocks(matrix, block_size):
        values = block.data if sparse.issparse(block) else block
        if values.size and (not np.isfinite(values).all() or values.min() < 0):
            raise ValueError(
                f"{what} has negative or non-finite values; it needs counts, binary calls or "
                "open probabilities (e.g. layer='dcca_denoised'), not scaled or centred data."
            )
