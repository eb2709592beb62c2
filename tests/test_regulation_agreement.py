"""Cross-omics agreement: matched kappa against brute force, raw vs denoised on kidney."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from sklearn.metrics import cohen_kappa_score

import scdcca

from .conftest import DATA


def test_matched_kappa_equals_best_relabelling():
    rng = np.random.default_rng(0)
    first = rng.integers(0, 4, size=300)
    second = np.where(rng.random(300) < 0.7, (first + 1) % 4, rng.integers(0, 4, size=300))
    best = max(
        cohen_kappa_score(first, np.array(perm)[second])
        for perm in itertools.permutations(range(4))
    )
    assert scdcca.tl.matched_kappa(first, second) == pytest.approx(best)
    assert scdcca.tl.matched_kappa(first, (first + 2) % 4) == pytest.approx(1.0)
    with pytest.raises(ValueError, match="cells"):
        scdcca.tl.matched_kappa(first, second[:10])


def test_agreement_on_kidney_with_known_answers(kidney):
    """Identical latents give kappa 1; a 'denoised' layer equal to the raw data gives raw r."""
    kidney = kidney[:1500].copy()
    rna, atac = kidney["rna"], kidney["atac"]
    z = np.asarray(rna.X[:, :20].todense(), dtype=np.float64)
    rna.obsm["X_dcca"] = z
    atac.obsm["X_dcca"] = z.copy()
    rna.layers["dcca_denoised"] = rna.X.copy()
    atac.layers["dcca_denoised"] = atac.X.copy()
    links = scdcca.tl.peak_gene_links(kidney, DATA / "genes_mm10.tsv.gz", fdr=None)
    table = scdcca.tl.crossomics_agreement(
        kidney, links, labels="cell_type", n_components=10, seeds=(0,)
    )
    assert list(table.index) == ["raw", "denoised"]
    assert table.loc["denoised", "kappa"] == pytest.approx(1.0)
    assert 0 < table.loc["raw", "kappa"] < 1
    for column in ("mean_r", "median_r", "frac_positive", "n_pairs"):
        assert table.loc["raw", column] == pytest.approx(table.loc["denoised", column])
    assert table.loc["raw", "n_pairs"] == len(links)
    del atac.obsm["X_dcca"]
    with pytest.raises(KeyError, match="write_results"):
        scdcca.tl.crossomics_agreement(kidney, links)


@pytest.mark.slow
def test_agreement_after_training(trained_kidney):
    model, mdata = trained_kidney
    mdata = mdata.copy()
    model.write_results(mdata, overwrite=True, denoised=True)
    links = scdcca.tl.peak_gene_links(mdata, DATA / "genes_mm10.tsv.gz", fdr=None)
    table = scdcca.tl.crossomics_agreement(mdata, links, labels="cell_type", seeds=(0,))
    print("\n" + table.round(3).to_string())
    assert table["kappa"].between(-1, 1).all()
    assert table.loc["denoised", "n_pairs"] >= table.loc["raw", "n_pairs"] > 0
    # DCCA's latents are trained to agree (attention transfer); raw PCA and LSI are not.
    assert table.loc["denoised", "kappa"] > table.loc["raw", "kappa"]
