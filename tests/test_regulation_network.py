"""TF -> target networks: ridge against scikit-learn, recovery of planted edges (AUPR)."""

from __future__ import annotations

import anndata as ad
import mudata
import numpy as np
import pandas as pd
import pytest
from scipy import sparse
from sklearn.linear_model import Ridge
from sklearn.metrics import average_precision_score

import scdcca
from scdcca.tl._ridge import FoldGrams, fold_ids


def test_fold_ridge_equals_sklearn():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(120, 6))
    y = np.column_stack([x[:, 0] - 0.5 * x[:, 3] + rng.normal(size=120), rng.normal(size=120)])
    x = (x - x.mean(0)) / x.std(0)
    y = (y - y.mean(0)) / y.std(0)
    folds = fold_ids(120, 4, rng)
    assert np.bincount(folds).tolist() == [30, 30, 30, 30]
    grams = FoldGrams(x, y, folds)
    candidates = np.array([0, 2, 3, 5])
    alphas = [0.01, 0.3, 5.0]
    fit = grams.fit(0, candidates, alphas)
    r2 = []
    for alpha in alphas:
        predicted = np.zeros(120)
        coefs = []
        for f in range(4):
            train = folds != f
            model = Ridge(alpha=alpha * train.sum()).fit(x[train][:, candidates], y[train, 0])
            predicted[~train] = model.predict(x[~train][:, candidates])
            coefs.append(model.coef_)
        r2.append(1 - ((y[:, 0] - predicted) ** 2).sum() / ((y[:, 0] - y[:, 0].mean()) ** 2).sum())
        if alpha == fit.alpha:
            np.testing.assert_allclose(fit.coefs, np.array(coefs), atol=1e-10)
    assert fit.alpha == alphas[int(np.argmax(r2))]
    np.testing.assert_allclose(fit.r2, max(r2), atol=1e-10)


def _simulated(seed=0, n_cells=800, n_tfs=25, n_targets=40):
    """Two groups of cells with different planted TF -> target edges."""
    rng = np.random.default_rng(seed)
    group = np.repeat(["A", "B"], n_cells // 2)
    factors = rng.normal(size=(n_cells, 3))
    tf_expr = factors @ rng.normal(scale=0.5, size=(3, n_tfs)) + rng.normal(size=(n_cells, n_tfs))
    planted = {}  # (group, tf, target) -> weight
    targets = np.zeros((n_cells, n_targets))
    peaks, links, motif_rows = [], [], []
    for t in range(n_targets):
        chosen = {}
        for g in ("A", "B"):
            tfs = rng.choice(n_tfs, size=2, replace=False)
            weights = rng.choice([-1, 1], size=2) * rng.uniform(0.6, 1.0, size=2)
            cells = group == g
            targets[cells, t] = tf_expr[cells][:, tfs] @ weights
            chosen[g] = tfs
            for tf, w in zip(tfs, weights, strict=True):
                planted[(g, f"TF{tf}", f"T{t}")] = w
        targets[:, t] += rng.normal(scale=0.7, size=n_cells)
        true_tfs = set(chosen["A"]) | set(chosen["B"])
        for k in range(4):  # four linked peaks; true motifs in some, decoys in all
            name = f"chr1-{t * 100_000 + k * 1_000}-{t * 100_000 + k * 1_000 + 300}"
            peaks.append(name)
            links.append((f"T{t}", name))
            hits = set(rng.choice(n_tfs, size=3, replace=False))
            hits |= {tf for i, tf in enumerate(sorted(true_tfs)) if i % 4 == k}
            motif_rows.append(sorted(hits))
    names = [f"TF{i}" for i in range(n_tfs)] + [f"T{t}" for t in range(n_targets)]
    cells = pd.DataFrame({"group": group}, index=[f"c{i}" for i in range(n_cells)])
    rna = ad.AnnData(np.hstack([tf_expr, targets]).astype(np.float32), obs=cells.copy())
    rna.var_names = names
    matches = sparse.lil_matrix((len(peaks), n_tfs))
    for i, row in enumerate(motif_rows):
        matches[i, row] = 0.5  # weights other than 1 must survive untouched
    atac = ad.AnnData(sparse.csr_matrix((n_cells, len(peaks)), dtype=np.float32), obs=cells.copy())
    atac.var_names = peaks
    atac.varm["motif_matches"] = matches.tocsr()
    atac.uns["motif_matches"] = {"names": np.array([f"Tf{i}_MA{i:04d}.1" for i in range(n_tfs)])}
    mdata = mudata.MuData({"rna": rna, "atac": atac})
    mdata.obs["group"] = group
    return mdata, pd.DataFrame(links, columns=["gene", "peak"]), planted


def test_network_recovers_planted_edges_per_group():
    mdata, links, planted = _simulated()
    before = mdata["atac"].varm["motif_matches"].copy()
    net = scdcca.tl.tf_target_network(
        mdata, links, groupby="group", normalize_rna=False, keep_all=True, min_cells=50
    )
    assert (mdata["atac"].varm["motif_matches"] != before).nnz == 0
    assert set(net["group"]) == {"A", "B"}
    assert not (net["tf"] == net["target"]).any()
    for group in ("A", "B"):
        edges = net[net["group"] == group]
        truth = [
            (group, tf, tg) in planted for tf, tg in zip(edges["tf"], edges["target"], strict=True)
        ]
        aupr = average_precision_score(truth, edges["coef"].abs())
        kept = edges[edges["kept"]]
        precision = np.mean(
            [(group, a, b) in planted for a, b in zip(kept["tf"], kept["target"], strict=True)]
        )
        recall = np.mean(
            [
                (group, a, b)
                in set(zip([group] * len(kept), kept["tf"], kept["target"], strict=True))
                for (g, a, b) in planted
                if g == group
            ]
        )
        print(
            f"\ngroup {group}: AUPR {aupr:.3f} over {len(edges)} candidate edges "
            f"({sum(truth)} planted, base rate {np.mean(truth):.2f}); kept {len(kept)}: "
            f"precision {precision:.2f}, recall {recall:.2f}"
        )
        assert aupr > 0.9
        assert precision > 0.8
        assert recall > 0.8
        signs = [
            np.sign(planted[(group, a, b)]) == np.sign(c)
            for a, b, c in zip(kept["tf"], kept["target"], kept["coef"], strict=True)
            if (group, a, b) in planted
        ]
        assert all(signs)
    assert net["cv_r2"].between(-1, 1).all()
    default = scdcca.tl.tf_target_network(mdata, links, groupby="group", normalize_rna=False)
    assert default["kept"].all()
    assert len(default) == net["kept"].sum()


def test_network_bad_input():
    mdata, links, _ = _simulated(n_cells=120, n_targets=3)
    with pytest.raises(ValueError, match="lacks columns"):
        scdcca.tl.tf_target_network(mdata, links.rename(columns={"peak": "region"}))
    with pytest.raises(ValueError, match="tf_genes"):
        scdcca.tl.tf_target_network(mdata, links, tf_genes={"Tf0_MA0000.1": "nope"})
    with pytest.raises(KeyError, match="not a column"):
        scdcca.tl.tf_target_network(mdata, links, groupby="batch", normalize_rna=False)
    with pytest.warns(UserWarning, match="Skipped groups"):
        scdcca.tl.tf_target_network(
            mdata, links, groupby="group", min_cells=100, normalize_rna=False
        )


def test_motif_gene_names():
    assert scdcca.tl.motif_gene_names("FOS::JUN") == ["FOS", "JUN"]
    assert scdcca.tl.motif_gene_names("GATA2(var.2)") == ["GATA2"]
    assert scdcca.tl.motif_gene_names("Gata2_MA0036.3") == ["Gata2"]
