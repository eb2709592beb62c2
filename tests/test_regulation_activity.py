"""chromVAR deviations against a hand computation; background peaks; real kidney peak sets."""

from __future__ import annotations

import anndata as ad
import numpy as np
import pandas as pd
import pytest
from scipy import sparse
from sklearn.metrics import roc_auc_score

import scdcca
from scdcca.tl._background import sample_background

from .conftest import DATA


def _toy(seed=0, n_cells=9, n_peaks=12):
    rng = np.random.default_rng(seed)
    counts = rng.poisson(1.2, size=(n_cells, n_peaks)).astype(np.float32)
    counts[:, 5] = 0  # a closed peak
    adata = ad.AnnData(sparse.csr_matrix(counts))
    adata.var_names = [f"chr1-{100 * i}-{100 * i + 50}" for i in range(n_peaks)]
    adata.obs_names = [f"cell{i}" for i in range(n_cells)]
    return adata, counts


def _hand_deviations(counts, sets, background):
    """chromVAR by explicit loops over cells, sets and background iterations."""
    counts = counts.astype(np.float64)
    n_cells, n_peaks = counts.shape
    total = counts.sum()
    share = [counts[:, p].sum() / total for p in range(n_peaks)]
    dev = np.zeros((n_cells, len(sets)))
    z = np.zeros((n_cells, len(sets)))
    for c in range(n_cells):
        depth = counts[c].sum()
        for k, peaks in enumerate(sets):
            peaks = [p for p in peaks if counts[:, p].sum() > 0]
            observed = sum(counts[c, p] for p in peaks)
            expected = depth * sum(share[p] for p in peaks)
            raw = (observed - expected) / expected
            sampled = []
            for b in range(background.shape[1]):
                bg = [background[p, b] for p in peaks]
                o_b = sum(counts[c, q] for q in bg)
                e_b = depth * sum(share[q] for q in bg)
                sampled.append((o_b - e_b) / e_b)
            dev[c, k] = raw - np.mean(sampled)
            z[c, k] = dev[c, k] / np.std(sampled, ddof=1)
    return dev, z


def test_deviations_equal_hand_computation():
    adata, counts = _toy()
    sets = {
        "a": ["chr1-0-50", "chr1-300-350", "chr1-500-550"],
        "b": ["chr1-700-750", "chr1-800-850", "chr1-1000-1050", "chr1-1100-1150"],
    }
    rng = np.random.default_rng(1)
    open_ = np.flatnonzero(counts.sum(0) > 0)
    background = rng.choice(open_, size=(adata.n_vars, 4))
    scdcca.tl.motif_activity(adata, sets, background=background, block_size=2)
    index = [[adata.var_names.get_loc(p) for p in s] for s in sets.values()]
    dev, z = _hand_deviations(counts, index, background)
    np.testing.assert_allclose(adata.obsm["chromvar_deviations"].to_numpy(), dev, rtol=1e-10)
    np.testing.assert_allclose(adata.obsm["chromvar_z"].to_numpy(), z, rtol=1e-10)
    assert list(adata.obsm["chromvar_z"].columns) == ["a", "b"]


def test_dense_sparse_blocks_and_annotation_forms_agree():
    adata, counts = _toy(seed=4, n_cells=30, n_peaks=20)
    sets = {"s1": list(adata.var_names[:6]), "s2": list(adata.var_names[8:15])}
    frame = pd.DataFrame(0, index=adata.var_names, columns=["s1", "s2"])
    frame.iloc[:6, 0] = 1
    frame.iloc[8:15, 1] = 1
    background = scdcca.tl.background_peaks(adata, n_iterations=10, seed=2)
    ref = scdcca.tl.motif_activity(adata, sets, background=background, inplace=False)
    dense = ad.AnnData(counts, var=adata.var, obs=adata.obs)
    for data, given, block in ((dense, frame, 7), (adata, frame, 1), (dense, sets, None)):
        out = scdcca.tl.motif_activity(
            data, given, background=background, block_size=block, inplace=False
        )
        for got, want in zip(out, ref, strict=True):
            pd.testing.assert_frame_equal(got, want, rtol=1e-9, atol=1e-12)
    assert "chromvar_z" not in adata.obsm  # inplace=False wrote nothing


def test_background_peaks_match_accessibility_and_gc():
    rng = np.random.default_rng(0)
    features = np.column_stack([rng.normal(size=3000), rng.uniform(0.3, 0.6, size=3000)])
    bg = sample_background(features, n_iterations=20, seed=0)
    assert bg.shape == (3000, 20)
    spread = np.abs(features[bg] - features[:, None, :]).mean((0, 1))
    random = np.abs(features[rng.permutation(3000)] - features).mean(0)
    assert (spread < 0.25 * random).all()


def test_activity_of_a_planted_peak_set_is_highest_in_its_cells():
    rng = np.random.default_rng(5)
    n_cells, n_peaks = 200, 300
    counts = (rng.random((n_cells, n_peaks)) < 0.05).astype(np.float32)
    group = np.repeat(["A", "B"], n_cells // 2)
    counts[group == "A", :20] = rng.random(((group == "A").sum(), 20)) < 0.3
    # As open in total as the planted peaks, but in all cells: the background for them.
    counts[:, 200:] = rng.random((n_cells, 100)) < 0.175
    obs = pd.DataFrame({"g": group}, index=[f"c{i}" for i in range(n_cells)])
    adata = ad.AnnData(sparse.csr_matrix(counts), obs=obs)
    sets = {"planted": list(adata.var_names[:20]), "random": list(adata.var_names[100:120])}
    scdcca.tl.motif_activity(adata, sets, n_iterations=20)
    cells = adata.obsm["chromvar_z"]
    z = cells.groupby(group).mean()
    auroc = roc_auc_score(group == "A", cells["planted"])
    print(
        f"\nmean z of the planted set: A {z.loc['A', 'planted']:.2f}, "
        f"B {z.loc['B', 'planted']:.2f}; AUROC {auroc:.3f}"
    )
    assert z.loc["A", "planted"] > 0.5 > -0.5 > z.loc["B", "planted"]
    assert auroc > 0.9
    assert abs(z["random"]).max() < 0.5


def test_kidney_marker_peak_sets(kidney):
    atac = kidney["atac"]
    sets = scdcca.tl.peaks_near_genes(
        atac.var_names,
        DATA / "genes_mm10.tsv.gz",
        {
            "podocyte": ["Nphs1", "Nphs2", "Podxl", "Ptpro", "Synpo"],
            "proximal": ["Lrp2", "Slc34a1", "Cubn", "Slc5a2", "Hnf4a"],
        },
        window=100_000,
    )
    assert all(len(p) > 0 for p in sets.values())
    before = atac.X.copy()
    scdcca.tl.motif_activity(atac, sets, n_iterations=20, key_added="markers")
    z = atac.obsm["markers_z"]
    assert z.shape == (atac.n_obs, 2)
    assert np.isfinite(z.to_numpy()).mean() > 0.9
    assert (atac.X != before).nnz == 0
    with pytest.raises(KeyError, match="overwrite=True"):
        scdcca.tl.motif_activity(atac, sets, key_added="markers")
    with pytest.raises(KeyError, match="motif_matches"):
        scdcca.tl.motif_activity(atac)
    with pytest.raises(KeyError, match=r"not in adata\.var_names"):
        scdcca.tl.motif_activity(atac, {"x": ["chr1-1-2"]}, inplace=False)
    with pytest.raises(KeyError, match="write_results"):
        scdcca.tl.motif_activity(atac, sets, layer="dcca_denoised", inplace=False)
    bad = ad.AnnData(-np.ones((3, 2), dtype=np.float32))
    with pytest.raises(ValueError, match="negative"):
        scdcca.tl.motif_activity(bad, np.eye(2), inplace=False)


class _NoDensify(sparse.csr_matrix):
    """A CSR matrix that refuses to be densified whole."""

    def toarray(self, *args, **kwargs):
        raise AssertionError("the whole cells x peaks matrix was densified")

    def todense(self, *args, **kwargs):
        raise AssertionError("the whole cells x peaks matrix was densified")


def test_sparse_input_is_never_densified_whole():
    adata, _ = _toy(seed=2, n_cells=40, n_peaks=30)
    sets = {"s": list(adata.var_names[:8])}
    background = scdcca.tl.background_peaks(adata, n_iterations=5, block_size=16)
    want = scdcca.tl.motif_activity(adata, sets, background=background, inplace=False)
    adata.X = _NoDensify(adata.X)
    got = scdcca.tl.motif_activity(
        adata, sets, background=background, block_size=16, inplace=False
    )
    pd.testing.assert_frame_equal(got[1], want[1])
