"""Cells the model was not set up with: align their features and stream them in minibatches.

New data may hold the model's features in another order, or more of them; only the model's
features are read, in the model's order (the user's object is not changed). Missing
features are an error that says how many are missing and which.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import numpy as np
import pandas as pd
import torch
from scipy import sparse

from scdcca._blocks import row_slices


def feature_columns(
    data_features: pd.Index, model_features: pd.Index, modality: str
) -> np.ndarray | None:
    """Column of each model feature in the data; ``None`` when they already match.

    Raises
    ------
    ValueError
        If some model features are absent from the data.
    """
    if data_features.equals(model_features):
        return None
    if not data_features.is_unique:
        n_dup = int(data_features.duplicated().sum())
        raise ValueError(
            f"The {modality} data have {n_dup} duplicated feature names; make them unique "
            "(`var_names_make_unique()`) before projecting."
        )
    columns = data_features.get_indexer(model_features)
    missing = model_features[columns < 0]
    if len(missing):
        examples = ", ".join(map(str, missing[:5]))
        raise ValueError(
            f"The {modality} data lack {len(missing)} of the {len(model_features)} features "
            f"the model was trained on (for example {examples}). Projection needs every one "
            "of them in the data (order and extra features do not matter); add them as zero "
            "columns only if they were truly not measured."
        )
    return columns


def aligned_row_batches(
    matrix,
    columns: np.ndarray | None,
    indices: Sequence[int] | None,
    batch_size: int,
) -> Iterator[torch.Tensor]:
    """Minibatches of rows as float32 tensors: CSR tensors for sparse input, dense otherwise."""
    n_rows = matrix.shape[0]
    rows = np.arange(n_rows) if indices is None else np.asarray(indices)
    for batch in row_slices(len(rows), batch_size):
        block = matrix[rows[batch]]
        if columns is not None:
            block = block[:, columns]
        yield _to_tensor(block)


def _to_tensor(block) -> torch.Tensor:
    if sparse.issparse(block):
        block = sparse.csr_matrix(block, dtype=np.float32)
        return torch.sparse_csr_tensor(
            torch.from_numpy(block.indptr.astype(np.int64)),
            torch.from_numpy(block.indices.astype(np.int64)),
            torch.from_numpy(block.data),
            size=block.shape,
        )
    return torch.as_tensor(np.asarray(block, dtype=np.float32))
