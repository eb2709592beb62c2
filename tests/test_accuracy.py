"""Robust guards on what DCCA's latents carry, on real data (scores live in the benchmarks).

Clustering scores move by a few hundredths from one training seed to the next, so no test
asserts a benchmark figure. These guards hold by wide margins on every seed measured
(``benchmarks/README.md`` has the figures and ``benchmarks/run.py`` regenerates them):

- attention transfer gives the epigenome latent label structure that the epigenome VAE trained
  alone lacks (on sci-CAR kidney the peaks alone cluster at ARI about 0);
- the joint latent clusters far above the same latent with its rows shuffled.
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


@contextmanager
def _one_thread() -> Iterator[None]:
    """One torch thread: the runs are then those of ``benchmarks/run.py --threads 1``."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


def _train(name: str, epi: str, **train_kwargs) -> tuple[scdcca.DCCA, object]:
    scvi.settings.seed = 0
    mdata = read(name)
    scdcca.DCCA.setup_mudata(mdata, modalities={"rna_layer": "rna", "epi_layer": epi})
    model = scdcca.DCCA(mdata)
    with _one_thread():
        model.train(enable_progress_bar=False, **train_kwargs)
    return model, mdata


def _ari(z: np.ndarray, labels) -> float:
    return float(scdcca.tl.clustering_scores(z, labels).ari)


@pytest.mark.slow
def test_transfer_gives_the_epigenome_latent_structure_it_lacks_alone():
    model, mdata = _train("scicar_kidney", "atac")
    alone, _ = _train("scicar_kidney", "atac", schedule="cycle", n_cycles=0)
    labels = mdata.obs["cell_type"]
    with_transfer = _ari(model.get_latent_representation(modality="epi"), labels)
    without = _ari(alone.get_latent_representation(modality="epi"), labels)
    print(f"kidney epigenome latent ARI: transfer {with_transfer:.3f}, alone {without:.3f}")
    assert without < 0.05
    assert with_transfer > without + 0.1


@pytest.mark.slow
@pytest.mark.parametrize(("name", "epi"), [("pairedtag_h3k4me3", "histone")])
def test_joint_latent_clusters_far_above_a_shuffled_one(name, epi):
    model, mdata = _train(name, epi)
    joint = model.get_latent_representation()
    shuffled = np.random.default_rng(0).permutation(joint)
    labels = mdata.obs["cell_type"]
    ari, baseline = _ari(joint, labels), _ari(shuffled, labels)
    print(f"{name} joint ARI {ari:.3f}, rows shuffled {baseline:.3f}")
    assert baseline < 0.05
    assert ari > baseline + 0.25
