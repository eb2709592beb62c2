"""The benchmark's cross-modal scores give no credit for reproducing the truth's sampling noise."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
from scipy import sparse

from .conftest import read

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
from _data import folds
from _metrics import CrossModal


def _same_label_average(calls, labels, train, test, rng, k=15):
    """Each held-out cell predicted as the mean calls of k random training cells of its label."""
    out = np.empty((len(test), calls.shape[1]))
    for row, cell in enumerate(test):
        pool = train[labels[train] == labels[cell]]
        out[row] = calls[rng.choice(pool, size=min(k, len(pool)), replace=False)].mean(0)
    return out


def test_label_specific_pseudobulk_of_a_neighbour_average_is_zero_without_label_signal():
    kidney = read("scicar_kidney")
    calls = sparse.csr_matrix(kidney["atac"].X > 0, dtype=np.float32).toarray()
    rng = np.random.default_rng(0)
    labels = rng.permutation(kidney.obs["cell_type"].astype(str).to_numpy())  # no signal
    scores, perfect = CrossModal(), CrossModal()
    rna = np.ones((kidney.n_obs, 2))
    for train, test in folds(kidney.n_obs, 5, 0):
        predicted = _same_label_average(calls, labels, train, test, rng)
        scores.add(predicted, calls[test], rna[test], rna[test], labels[test])
        perfect.add(calls[test], calls[test], rna[test], rna[test], labels[test])
    # pooled over folds, each cell's calls would sit in the truth and in its neighbours'
    # predictions: this predictor then scored about 0.97 on these shuffled labels
    assert abs(scores.result()["rna2epi_pseudobulk_specific_r"]) < 0.1
    assert perfect.result()["rna2epi_pseudobulk_specific_r"] > 0.999
    assert perfect.result()["rna2epi_pseudobulk_r"] > 0.999
