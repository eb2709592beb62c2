"""Peak annotations (motif matches or any peak sets) as a peaks x annotations sparse matrix."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd
from anndata import AnnData
from scipy import sparse

Annotations = str | pd.DataFrame | Mapping[str, Sequence[str]] | sparse.spmatrix | np.ndarray


def _from_varm(adata: AnnData, key: str) -> tuple[sparse.csr_matrix, list[str]]:
    if key not in adata.varm:
        hint = " Run `scdcca.tl.motif_matches` first." if key == "motif_matches" else ""
        raise KeyError(
            f"adata.varm has no {key!r} (it has {list(adata.varm)}).{hint} Or pass the "
            "annotations themselves: a peaks x annotations data frame or a mapping "
            "name -> peak names."
        )
    value = adata.varm[key]
    if isinstance(value, pd.DataFrame):
        return sparse.csr_matrix(value.to_numpy(dtype=np.float64)), [str(c) for c in value]
    meta = adata.uns.get(key, {})
    n = value.shape[1]
    names = list(meta["names"]) if "names" in meta else [f"{key}_{i}" for i in range(n)]
    if len(names) != n:
        raise ValueError(
            f"adata.uns[{key!r}]['names'] has {len(names)} names for {n} columns of "
            f"adata.varm[{key!r}]."
        )
    return sparse.csr_matrix(value, dtype=np.float64), [str(x) for x in names]


def _from_sets(adata: AnnData, sets: Mapping[str, Sequence[str]]):
    rows, cols = [], []
    for j, members in enumerate(sets.values()):
        index = adata.var_names.get_indexer(pd.Index(list(members), dtype=str))
        if (index < 0).any():
            bad = [m for m, i in zip(members, index, strict=True) if i < 0][:3]
            raise KeyError(
                f"Peak set {list(sets)[j]!r} names {int((index < 0).sum())} peaks that are not "
                f"in adata.var_names, e.g. {bad}. Keep only peaks of this AnnData."
            )
        rows.append(np.unique(index))
        cols.append(np.full(len(rows[-1]), j))
    matrix = sparse.csr_matrix(
        (
            np.ones(sum(len(r) for r in rows)),
            (np.concatenate(rows or [[]]).astype(int), np.concatenate(cols or [[]]).astype(int)),
        ),
        shape=(adata.n_vars, len(sets)),
    )
    return matrix, [str(k) for k in sets]


def annotation_matrix(
    adata: AnnData, annotations: Annotations
) -> tuple[sparse.csr_matrix, list[str]]:
    """Peaks x annotations weights (CSR, float64) and the annotation names.

    ``annotations`` is an ``adata.varm`` key (names from ``adata.uns[key]["names"]``), a data
    frame indexed by peak names (missing peaks get 0), a mapping name -> peak names, or a
    peaks x annotations matrix.
    """
    if isinstance(annotations, str):
        matrix, names = _from_varm(adata, annotations)
    elif isinstance(annotations, pd.DataFrame):
        unknown = annotations.index.difference(adata.var_names)
        if len(unknown):
            raise KeyError(
                f"{len(unknown)} rows of the annotation data frame are not peaks of adata, "
                f"e.g. {list(unknown[:3])}; index it by adata.var_names."
            )
        frame = annotations.reindex(adata.var_names).fillna(0)
        matrix, names = sparse.csr_matrix(frame.to_numpy(dtype=np.float64)), list(frame.columns)
    elif isinstance(annotations, Mapping):
        matrix, names = _from_sets(adata, annotations)
    elif sparse.issparse(annotations) or isinstance(annotations, np.ndarray):
        matrix = sparse.csr_matrix(annotations, dtype=np.float64)
        names = [f"annotation_{i}" for i in range(matrix.shape[1])]
    else:
        raise TypeError(
            "`annotations` must be an adata.varm key, a peaks x annotations data frame or "
            f"matrix, or a mapping name -> peak names; got {type(annotations).__name__}."
        )
    if matrix.shape[0] != adata.n_vars:
        raise ValueError(
            f"The annotations cover {matrix.shape[0]} peaks but adata has {adata.n_vars}."
        )
    if matrix.shape[1] == 0:
        raise ValueError("No annotations given.")
    if matrix.nnz and (matrix.data < 0).any():
        raise ValueError("Annotation weights must be >= 0 (1 for a match, 0 otherwise).")
    return matrix, [str(n) for n in names]
