"""Clustering accuracy of DCCA latents on real data: the issue's targets, as the issue states them.

KMeans with k = number of labels, ARI averaged over 3 KMeans seeds, then over training seeds
0, 1, 2. Reference DCCA code (measured on the same files): kidney RNA latent 0.34, ATAC
latent 0.27; Paired-Tag 0.53. Training runs at one torch thread, as ``benchmarks/accuracy.py
--threads 1`` does, so the per-seed ARIs are those of the committed table
(``benchmarks/README.md``: kidney joint 0.359 / 0.361 / 0.342, Paired-Tag 0.515 / 0.574 /
0.555). Over twelve training seeds the defaults score 0.361 and 0.555 (sd 0.009 and 0.022).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import numpy as np
import pytest
import scvi
import torch

import scdcca

from .conftest import read

SEEDS = (0, 1, 2)


@contextmanager
def _one_thread() -> Iterator[None]:
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


def _train(name: str, epi: str, seed: int, **train_kwargs) -> tuple[scdcca.DCCA, object]:
    scvi.settings.seed = seed
    mdata = read(name)
    scdcca.DCCA.setup_mudata(mdata, modalities={"rna_layer": "rna", "epi_layer": epi})
    model = scdcca.DCCA(mdata)
    model.train(enable_progress_bar=False, **train_kwargs)
    return model, mdata


def _ari(model, mdata, modality: str) -> float:
    z = model.get_latent_representation(modality=modality)
    return float(scdcca.tl.clustering_scores(z, mdata.obs["cell_type"]).ari)


def _ari_over_seeds(name: str, epi: str) -> dict[str, list[float]]:
    scores = {"joint": [], "epi": []}
    with _one_thread():
        for seed in SEEDS:
            model, mdata = _train(name, epi, seed)
            for modality, values in scores.items():
                values.append(_ari(model, mdata, modality))
    print(f"{name} ARI over training seeds {SEEDS}: {scores}")
    return scores


@pytest.mark.slow
def test_kidney_joint_beats_reference_and_transfer_helps_atac():
    scores = _ari_over_seeds("scicar_kidney", "atac")
    alone, mdata = _train("scicar_kidney", "atac", 0, schedule="cycle", n_cycles=0)
    epi_alone = _ari(alone, mdata, "epi")
    print(f"kidney ATAC latent without transfer: {epi_alone:.3f}")
    assert np.mean(scores["joint"]) >= 0.35
    assert min(scores["epi"]) > epi_alone + 0.05


@pytest.mark.slow
def test_pairedtag_joint_beats_reference():
    scores = _ari_over_seeds("pairedtag_h3k4me3", "histone")
    assert np.mean(scores["joint"]) >= 0.53
