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


def test_step_profile_splits_a_minibatch_into_its_parts():
    from types import SimpleNamespace

    from step_profile import minibatch_parts

    n_batches = 2  # three epochs of two minibatches; the middle one is timed
    calls = {
        "run_training_epoch": [9.0, 1.0, 9.0],
        "[_TrainingEpochLoop].train_dataloader_next": [9, 9, 0.02, 0.04, 9, 9],
        "[Strategy]SingleDeviceStrategy.batch_to_device": [9, 9, 0.01, 0.01, 9, 9],
        "[Strategy]SingleDeviceStrategy.training_step": [9, 9, 0.2, 0.2, 9, 9],
        "[Strategy]SingleDeviceStrategy.backward": [9, 9, 0.1, 0.1, 9, 9],
        "[LightningModule]Plan.optimizer_step": [9, 9, 0.34, 0.36, 9, 9],
        "[LightningModule]Plan.optimizer_zero_grad": [9, 9, 0.01, 0.01, 9, 9],
        "[Callback]Other.on_before_optimizer_step": [9] * 6,  # not an optimiser step
    }
    parts = minibatch_parts(SimpleNamespace(recorded_durations=calls), n_batches, slice(1, 2))
    expected = {"minibatch_s": 0.5, "data_s": 0.04, "forward_s": 0.2, "backward_s": 0.1}
    expected |= {"optimiser_s": 0.06, "framework_s": 0.1}
    assert parts.keys() == expected.keys()
    for key, value in expected.items():
        assert abs(parts[key] - value) < 1e-12, key
