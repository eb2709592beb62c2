"""Differential expression and accessibility in scvi-tools' form, on sci-CAR kidney.

The model is trained briefly on 1,500 cells, the 1,500 most variable genes and the 3,000
most often open peaks of the bundled dataset. Differential expression is checked against
the counts themselves. Region-level accessibility in this release (about 19 open peaks per
cell) is too sparse to check against: the observed group differences of single peaks do not
even replicate between two halves of the cells. So a few peaks are additionally opened in
one cell type (planted differential accessibility, the rest of the data is real), and the
test asks that the model finds them and orders them in the observed direction.
"""

from __future__ import annotations

import mudata
import numpy as np
import pandas as pd
import pytest
import scvi
from scipy import sparse

import scdcca

from .conftest import KIDNEY_MODALITIES

GROUP = "Proximal tubule S1/S2 cells"
OTHER = "Loop of Henle cells"
N_PLANTED = 30
DE_COLUMNS = [
    "proba_de",
    "proba_not_de",
    "bayes_factor",
    "scale1",
    "scale2",
    "pseudocounts",
    "delta",
    "lfc_mean",
    "lfc_median",
    "lfc_std",
    "lfc_min",
    "lfc_max",
    "raw_mean1",
    "raw_mean2",
    "non_zeros_proportion1",
    "non_zeros_proportion2",
    "raw_normalized_mean1",
    "raw_normalized_mean2",
    "is_de_fdr_0.05",
    "comparison",
    "group1",
    "group2",
]
DA_COLUMNS = [
    "prob_da",
    "is_da_fdr",
    "bayes_factor",
    "effect_size",
    "emp_effect",
    "est_prob1",
    "est_prob2",
    "emp_prob1",
    "emp_prob2",
    "comparison",
    "group1",
    "group2",
]


def _kidney_subset(n_cells: int, n_genes: int, n_peaks: int, seed: int = 0) -> mudata.MuData:
    """Random cells, the most variable (log-normalised) genes and the most often open peaks."""
    full = scdcca.datasets.scicar_kidney()
    cells = np.sort(np.random.default_rng(seed).choice(full.n_obs, n_cells, replace=False))
    rna, atac = full["rna"][cells], full["atac"][cells]
    counts = sparse.csr_matrix(rna.X)
    norm = sparse.csr_matrix(counts.multiply(1e4 / np.asarray(counts.sum(1))))
    norm.data = np.log1p(norm.data)
    mean = np.asarray(norm.mean(0)).ravel()
    variance = np.asarray(norm.multiply(norm).mean(0)).ravel() - mean**2
    genes = np.sort(np.argsort(variance)[::-1][:n_genes])
    peaks = np.sort(np.argsort(np.asarray((atac.X > 0).sum(0)).ravel())[::-1][:n_peaks])
    mdata = mudata.MuData({"rna": rna[:, genes].copy(), "atac": atac[:, peaks].copy()})
    mdata.obs["cell_type"] = full.obs["cell_type"].iloc[cells].to_numpy()
    return mdata


@pytest.fixture(scope="module")
def trained() -> tuple[scdcca.DCCA, mudata.MuData, pd.Index]:
    """DCCA trained on the subset, with ``N_PLANTED`` peaks opened in 20% of GROUP's cells."""
    mdata = _kidney_subset(1500, 1500, 3000)
    rng = np.random.default_rng(0)
    in_group = (mdata.obs["cell_type"] == GROUP).to_numpy()
    calls = mdata["atac"].X.toarray()
    planted = rng.choice(calls.shape[1], N_PLANTED, replace=False)
    opened = rng.random((int(in_group.sum()), N_PLANTED)) < 0.2
    block = calls[np.ix_(in_group, planted)]
    calls[np.ix_(in_group, planted)] = np.maximum(block, opened)
    mdata["atac"].X = sparse.csr_matrix(calls)
    scvi.settings.seed = 0
    scdcca.DCCA.setup_mudata(mdata, modalities=KIDNEY_MODALITIES)
    model = scdcca.DCCA(mdata)
    model.train(max_epochs_per_phase=25, enable_progress_bar=False)
    return model, mdata, mdata["atac"].var_names[planted]


def test_expression_ranks_genes_higher_in_the_group(trained):
    model, mdata, _ = trained
    columns_before = list(mdata.obs.columns)
    de = model.differential_expression(groupby="cell_type", group1=GROUP, silent=True)
    assert list(de.columns) == DE_COLUMNS
    assert list(mdata.obs.columns) == columns_before  # nothing left in the user's MuData
    assert len(de) == mdata["rna"].n_vars
    assert set(de.index) == set(mdata["rna"].var_names)
    assert (de["comparison"] == f"{GROUP} vs Rest").all()
    assert (de["group1"] == GROUP).all()
    assert (de["group2"] == "Rest").all()
    assert de["proba_de"].is_monotonic_decreasing
    np.testing.assert_allclose(de["proba_de"] + de["proba_not_de"], 1.0)
    # the observed counts, computed here from the data
    counts = sparse.csr_matrix(mdata["rna"].X)
    in_group = (mdata.obs["cell_type"] == GROUP).to_numpy()
    genes = mdata["rna"].var_names.get_indexer(de.index)
    raw1 = np.asarray(counts[in_group].mean(0)).ravel()[genes]
    np.testing.assert_allclose(de["raw_mean1"], raw1, rtol=1e-5)
    # the genes the model finds most up (down) in the group are more (less) expressed there
    by_lfc = de.sort_values("lfc_mean", ascending=False)
    up, down = by_lfc.head(20), by_lfc.tail(20)
    assert (up["lfc_mean"] > 0).all()
    assert (down["lfc_mean"] < 0).all()
    assert (up["raw_normalized_mean1"] > up["raw_normalized_mean2"]).mean() >= 0.9
    assert (down["raw_normalized_mean1"] < down["raw_normalized_mean2"]).mean() >= 0.9
    assert (up["raw_mean1"] > up["raw_mean2"]).mean() >= 0.9
    assert (up["bayes_factor"] > 0).all()  # change mode: called DE, whichever direction
    # vanilla mode: the Bayes factor is signed (population 1 higher) and agrees with the LFC
    scvi.settings.seed = 0
    vanilla = model.differential_expression(
        groupby="cell_type", group1=GROUP, mode="vanilla", silent=True
    )
    assert {"proba_m1", "proba_m2", "bayes_factor"} <= set(vanilla.columns)
    assert (vanilla.loc[up.index, "bayes_factor"] > 0).all()
    assert (vanilla.loc[down.index, "bayes_factor"] < 0).all()


def test_groups_and_indices_give_the_same_result(trained):
    model, mdata, _ = trained
    labels = mdata.obs["cell_type"]
    stats = dict(mode="change", silent=True, n_samples_overall=1000)
    scvi.settings.seed = 0
    by_group = model.differential_expression(
        groupby="cell_type", group1=GROUP, group2=OTHER, **stats
    )
    scvi.settings.seed = 0
    by_mask = model.differential_expression(
        idx1=(labels == GROUP).to_numpy(), idx2=(labels == OTHER).to_numpy(), **stats
    )
    scvi.settings.seed = 0
    by_position = model.differential_expression(
        idx1=np.flatnonzero(labels == GROUP), idx2=f"cell_type == '{OTHER}'", **stats
    )
    assert (by_group["comparison"] == f"{GROUP} vs {OTHER}").all()
    assert "comparison" not in by_mask.columns  # as in scvi-tools: no labels for indices
    shared = [c for c in DE_COLUMNS if c in by_mask.columns]
    pd.testing.assert_frame_equal(by_group[shared], by_mask[shared])
    pd.testing.assert_frame_equal(by_mask, by_position)


def test_several_groups_one_after_the_other(trained):
    model, mdata, _ = trained
    scvi.settings.seed = 0
    de = model.differential_expression(
        groupby="cell_type", group1=[GROUP, OTHER], silent=True, n_samples_overall=500
    )
    assert len(de) == 2 * mdata["rna"].n_vars
    assert list(pd.unique(de["group1"])) == [GROUP, OTHER]
    da = model.differential_accessibility(
        groupby="cell_type", group1=[GROUP, OTHER], silent=True, n_samples_overall=500
    )
    assert list(da.columns) == DA_COLUMNS
    assert len(da) == 2 * mdata["atac"].n_vars
    for group, block in da.groupby("group1"):
        assert block["prob_da"].is_monotonic_decreasing
        assert set(block.index) == set(mdata["atac"].var_names), group


def test_accessibility_finds_the_planted_regions(trained):
    model, mdata, planted = trained
    scvi.settings.seed = 0
    da = model.differential_accessibility(groupby="cell_type", group1=GROUP, silent=True)
    assert list(da.columns) == DA_COLUMNS
    np.testing.assert_allclose(da["effect_size"], da["est_prob2"] - da["est_prob1"])
    np.testing.assert_allclose(da["emp_effect"], da["emp_prob2"] - da["emp_prob1"])
    calls = mdata["atac"].X.toarray() > 0
    in_group = (mdata.obs["cell_type"] == GROUP).to_numpy()
    regions = mdata["atac"].var_names.get_indexer(da.index)
    np.testing.assert_allclose(da["emp_prob1"], calls[in_group].mean(0)[regions], rtol=1e-6)
    # most open in the group by the model (most negative effect size): the planted regions,
    # observed more often open in the group than in the rest of the cells
    top = da.sort_values("effect_size").head(20)
    assert top.index.isin(planted).mean() >= 0.9
    assert (top["effect_size"] < 0).all()
    assert (top["emp_prob1"] > top["emp_prob2"]).all()
    assert (top["est_prob1"] > top["est_prob2"]).all()


@pytest.mark.bad_input
@pytest.mark.parametrize(
    ("kwargs", "error", "message"),
    [
        ({"groupby": "celltype"}, KeyError, r"groupby='celltype' is not a column of mdata\.obs"),
        ({"groupby": "cell_type", "group1": "Neuron"}, ValueError, r"No cells of group 'Neuron'"),
        (
            {"groupby": "cell_type", "group1": GROUP, "group2": "Neurons"},
            ValueError,
            r"No cells of group 'Neurons'.*Pass group names as they appear",
        ),
        ({"groupby": "cell_type", "group2": OTHER}, ValueError, r"given without group1: pass"),
        (
            {"groupby": "cell_type", "group1": [GROUP, OTHER], "group2": OTHER},
            ValueError,
            r"cannot be compared with itself",
        ),
        ({"groupby": "cell_type", "idx1": [0, 1]}, ValueError, r"either groupby .* not both"),
        ({"idx2": [0, 1]}, ValueError, r"idx2 is given without idx1"),
        ({}, ValueError, r"Say which cells to compare: groupby="),
        ({"idx1": [0, 1, 1e9]}, TypeError, r"idx1: indices must be integer positions"),
        ({"idx1": np.zeros(3, dtype=bool)}, ValueError, r"idx1: A boolean mask .* per cell"),
        (
            {"idx1": [0, 1, 2, 3], "idx2": [3, 4]},
            ValueError,
            r"idx1 and idx2 share 1 cells \(of 4 and 2\).*one population only",
        ),
        ({"idx1": [0, 1, 2], "idx2": [2, 0, 1]}, ValueError, r"idx1 and idx2 select the same"),
        ({"groupby": "cell_type", "group1": GROUP, "mode": "bayes"}, ValueError, r"mode must"),
        ({"groupby": "cell_type", "group1": GROUP, "pseudocounts": None}, ValueError, r"1e-6"),
    ],
)
def test_bad_comparisons_are_refused(trained, kwargs, error, message):
    model, mdata, _ = trained
    with pytest.raises(error, match=message):
        model.differential_expression(silent=True, **kwargs)
    with pytest.raises(error, match=message):
        model.differential_accessibility(silent=True, **kwargs)
    assert "_scvi_temp_de" not in mdata.obs


def test_boolean_series_are_matched_by_cell_name(trained):
    model, mdata, _ = trained
    in_group = mdata.obs["cell_type"] == GROUP
    in_other = mdata.obs["cell_type"] == OTHER
    stats = dict(silent=True, n_samples_overall=500)
    scvi.settings.seed = 0
    in_order = model.differential_expression(idx1=in_group.to_numpy(), **stats)
    scvi.settings.seed = 0
    by_name = model.differential_expression(idx1=in_group[::-1], **stats)
    pd.testing.assert_frame_equal(by_name, in_order)
    scvi.settings.seed = 0
    pair = model.differential_accessibility(idx1=in_group, idx2=in_other, **stats)
    shuffled = in_other.sample(frac=1.0, random_state=0)
    scvi.settings.seed = 0
    pd.testing.assert_frame_equal(
        model.differential_accessibility(idx1=in_group[::-1], idx2=shuffled, **stats), pair
    )


@pytest.mark.bad_input
@pytest.mark.parametrize(
    ("change", "words"),
    [
        (lambda s: s.reset_index(drop=True), r"1500 of the MuData's cells missing; 1500 labels"),
        (lambda s: s.iloc[:100], r"1400 of the MuData's cells missing"),
        (lambda s: pd.concat([s, s.iloc[:2]]), r"2 repeated labels"),
    ],
)
def test_boolean_series_with_other_cells_are_refused(trained, change, words):
    model, mdata, _ = trained
    mask = change(mdata.obs["cell_type"] == GROUP)
    for name, kwargs in (("idx1", {"idx1": mask}), ("idx2", {"idx1": [0, 1], "idx2": mask})):
        with pytest.raises(ValueError, match=rf"{name} is a boolean Series.*{words}.*to_numpy"):
            model.differential_expression(silent=True, **kwargs)


@pytest.mark.bad_input
def test_other_cells_are_refused(trained):
    model, mdata, _ = trained
    with pytest.raises(ValueError, match=r"MuData the model was set up with: pass mdata=None"):
        model.differential_expression(mdata[:300].copy(), groupby="cell_type", group1=GROUP)


@pytest.mark.bad_input
def test_gaussian_likelihoods_are_refused(trained):
    _, mdata, _ = trained
    model = scdcca.DCCA(mdata, rna_likelihood="gaussian", epi_likelihood="gaussian")
    with pytest.raises(ValueError, match=r"needs rna_likelihood in \('nb', 'zinb'\)"):
        model.differential_expression(groupby="cell_type", group1=GROUP)
    with pytest.raises(ValueError, match=r"needs epi_likelihood in \('bernoulli',\)"):
        model.differential_accessibility(groupby="cell_type", group1=GROUP)


def test_unpaired_cells_without_the_modality_are_left_out():
    """Cells measured by the epigenome only take no part in differential expression."""
    full = _kidney_subset(600, 300, 500, seed=1)
    epi_only = full.obs_names[np.random.default_rng(2).random(full.n_obs) < 0.3]
    rna = full["rna"][~full.obs_names.isin(epi_only)].copy()
    mdata = mudata.MuData({"rna": rna, "atac": full["atac"].copy()})
    mdata.obs["cell_type"] = full.obs["cell_type"].reindex(mdata.obs_names).to_numpy()
    scvi.settings.seed = 0
    scdcca.DCCA.setup_mudata(mdata, modalities=KIDNEY_MODALITIES)
    model = scdcca.DCCA(mdata)
    model.train(max_epochs_per_phase=2, enable_progress_bar=False)
    # a column added after setup is found in the user's MuData
    mdata.obs["is_group"] = np.where(mdata.obs["cell_type"] == GROUP, "yes", "no")
    de = model.differential_expression(
        groupby="is_group", group1="yes", silent=True, n_samples_overall=200
    )
    with_rna = mdata.obs_names.isin(rna.obs_names)
    in_group = (mdata.obs["is_group"] == "yes").to_numpy()
    counts = sparse.csr_matrix(rna.X)
    rows = rna.obs_names.get_indexer(mdata.obs_names[in_group & with_rna])
    expected = np.asarray(counts[rows].mean(0)).ravel()
    genes = rna.var_names.get_indexer(de.index)
    np.testing.assert_allclose(de["raw_mean1"], expected[genes], rtol=1e-5)
    assert np.isfinite(de["raw_normalized_mean2"]).all()
    # accessibility uses every cell: all have the epigenome
    da = model.differential_accessibility(
        groupby="is_group", group1="yes", silent=True, n_samples_overall=200
    )
    calls = mdata["atac"].X.toarray() > 0
    atac_rows = mdata["atac"].obs_names.get_indexer(mdata.obs_names[in_group])
    regions = mdata["atac"].var_names.get_indexer(da.index)
    np.testing.assert_allclose(da["emp_prob1"], calls[atac_rows].mean(0)[regions], rtol=1e-6)
    # a group made only of cells without RNA is refused, naming the reason
    mdata.obs["rna_less"] = np.where(mdata.obs_names.isin(epi_only), "epi only", "paired")
    with pytest.raises(ValueError, match=r"Group 'epi only' has no cells with the RNA measured"):
        model.differential_expression(groupby="rna_less", group1="epi only", silent=True)


def test_batch_correction_on_a_single_batch_model_runs():
    """scvi-tools names the one registered batch for batch correction: decoded as it is."""
    scvi.settings.seed = 0
    mdata = _kidney_subset(200, 100, 200)
    scdcca.DCCA.setup_mudata(mdata, modalities=KIDNEY_MODALITIES)
    model = scdcca.DCCA(mdata, n_latent=4, n_hidden=16)
    model.train(max_epochs_per_phase=1, enable_progress_bar=False, refine_epi_decoder=False)
    cells = np.zeros(mdata.n_obs, dtype=bool)
    cells[:50] = True
    result = model.differential_expression(idx1=cells, batch_correction=True)
    assert len(result) == mdata["rna"].n_vars
    assert result["proba_de"].between(0, 1).all()
