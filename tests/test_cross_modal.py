"""Cross-modal prediction, projection of new cells, unpaired cells and methylation (real data)."""

from __future__ import annotations

import mudata
import numpy as np
import pytest
import scvi
import torch
from scipy import sparse
from scipy.linalg import orthogonal_procrustes
from scipy.stats import spearmanr
from sklearn.metrics import roc_auc_score

import scdcca

from .conftest import KIDNEY_MODALITIES, read


def test_predicted_accessibility_ranks_open_peaks_above_closed(trained_kidney):
    model, mdata = trained_kidney
    cells = np.arange(0, mdata.n_obs, 10)
    predicted = model.predict_modality(source="rna", indices=cells, return_numpy=True)
    truth = mdata["atac"].X[cells].toarray() > 0
    auroc = roc_auc_score(truth.ravel(), predicted.ravel())
    print(f"RNA -> ATAC AUROC on training cells: {auroc:.3f}")
    assert auroc > 0.6
    # an RNA-only AnnData gives the same prediction as the MuData it came from
    rna_only = mdata["rna"][cells].copy()
    from_rna_only = model.predict_modality(rna_only, source="rna", return_numpy=True)
    np.testing.assert_allclose(from_rna_only, predicted, rtol=1e-5, atol=1e-6)
    sparse_prediction = model.predict_modality(source="rna", indices=cells, threshold=0.2)
    assert sparse.isspmatrix_csr(sparse_prediction)
    assert sparse_prediction.nnz == int((predicted >= 0.2).sum())


def test_generated_accessibility_has_the_depth_of_such_cells(trained_kidney):
    model, mdata = trained_kidney
    cells = np.arange(0, mdata.n_obs, 25)
    library = np.log1p(np.asarray(mdata["rna"].X.sum(1)).ravel())
    log_depth = np.log1p(np.asarray((mdata["atac"].X > 0).sum(1)).ravel())
    z = model.get_latent_representation(modality="rna")
    slope, intercept = model.module.epi_depth_fit.numpy()
    weights = model.module.epi_depth_latent.numpy()
    fitted = slope * library + z @ weights + intercept
    # the fit with the latent explains depth at least as well as RNA library size alone
    alone = np.polyval(np.polyfit(library, log_depth, 1), library)
    assert ((log_depth - fitted) ** 2).sum() <= ((log_depth - alone) ** 2).sum() + 1e-6
    default = model.predict_modality(source="rna", indices=cells, return_numpy=True)
    np.testing.assert_allclose(default.sum(1), np.expm1(fitted[cells]), rtol=2e-3)
    shallow = model.predict_modality(source="rna", indices=cells, depth=5, return_numpy=True)
    deep = model.predict_modality(source="rna", indices=cells, depth=200, return_numpy=True)
    np.testing.assert_allclose(shallow.sum(1), 5, rtol=1e-3)
    np.testing.assert_allclose(deep.sum(1), 200, rtol=1e-3)
    # one offset per cell: each cell's ranking of peaks is the same at any depth
    for row in range(len(cells)):
        order = np.argsort(shallow[row], kind="stable")
        assert (np.diff(deep[row][order]) >= -1e-7).all()
    with pytest.raises(ValueError, match="depth must be"):
        model.predict_modality(source="rna", indices=cells, depth=0)
    with pytest.raises(ValueError, match="library_size"):
        model.predict_modality(source="epi", indices=cells, depth=10)


def test_generation_weighs_region_frequencies_by_validation_likelihood(trained_kidney):
    model, mdata = trained_kidney
    module = model.module
    train, validation = np.asarray(model.train_indices), np.sort(model.validation_indices)
    calls = sparse.csr_matrix(mdata["atac"].X > 0, dtype=np.float64)
    frequency = (np.asarray(calls[train].sum(0)).ravel() + 0.5) / (len(train) + 1)
    np.testing.assert_allclose(torch.sigmoid(module.epi_region_logit), frequency, rtol=1e-4)
    truth = calls[validation].toarray()

    def nll(weight: float) -> float:
        module.epi_region_weight.fill_(weight)
        probs = model.predict_modality(source="rna", indices=validation, return_numpy=True)
        probs = np.clip(probs.astype(np.float64), 1e-7, 1 - 1e-7)
        return -float((truth * np.log(probs) + (1 - truth) * np.log1p(-probs)).sum())

    chosen = float(module.epi_region_weight)
    try:
        scores = {weight: nll(weight) for weight in (0.0, chosen, 1.0)}
        # at weight 1 every generated cell ranks regions by their training frequency
        ranking = model.predict_modality(source="rna", indices=validation[:5], return_numpy=True)
        for row in ranking:
            assert spearmanr(row, frequency)[0] > 0.999
    finally:
        module.epi_region_weight.fill_(chosen)
    assert 0.0 <= chosen <= 1.0
    assert scores[chosen] <= min(scores[0.0], scores[1.0]) * (1 + 1e-4)


def test_generated_profiles_take_region_openness_from_the_data(trained_kidney):
    """Shrinkage scales each cell's deviation from the decoder's mean, not the mean itself."""
    model, mdata = trained_kidney
    module = model.module
    train = np.sort(model.train_indices)
    x_rna = torch.as_tensor(mdata["rna"].X[train].toarray(), dtype=torch.float32)

    def profile(logits: torch.Tensor) -> torch.Tensor:
        """Each cell's logits less their mean: what the per-cell depth shift leaves."""
        return logits - logits.mean(1, keepdim=True)

    with torch.inference_mode():
        z = module.rna.encode(x_rna).loc
        logits = module.epi.decode(z, torch.zeros(len(z), 1)).logits
        depth = module.expected_epi_depth(x_rna, z)
        region = profile(module.epi_region_logit.unsqueeze(0))[0]
        for weight in (0.0, 0.5, 0.9):
            generated = profile(module.generated_epi_logits(logits, depth, weight))
            # over the training cells the generated profile averages to the data's frequencies
            # (the decoder's mean is taken over a subset of them; logits average about -7)
            assert float((generated.mean(0) - region).abs().max()) < 0.2
            # and the cells differ from each other as the decoder says, scaled by 1 - weight
            np.testing.assert_allclose(
                generated.std(0).numpy(),
                (1 - weight) * profile(logits).std(0).numpy(),
                rtol=1e-3,
                atol=1e-5,
            )


def test_saves_without_the_decoder_mean_generate_as_they_were_trained_to(kidney):
    scdcca.DCCA.setup_mudata(kidney, modalities=KIDNEY_MODALITIES)
    model = scdcca.DCCA(kidney)
    module = model.module
    region = torch.linspace(-6.0, -2.0, module.epi_region_logit.numel())
    saved = dict(module.state_dict())
    saved["epi_region_logit"], saved["epi_region_weight"] = region, torch.tensor(0.3)
    del saved["epi_decoder_mean_logit"]
    module.load_state_dict(saved)
    logits = torch.randn(4, region.numel()) - 4.0
    depth = torch.full((4, 1), 20.0)
    # such models moved the decoder's logits towards the frequencies: lerp(logits, region, w)
    torch.testing.assert_close(
        module.generated_epi_logits(logits, depth),
        module.generated_epi_logits(torch.lerp(logits, region, 0.3), depth, weight=0.0),
    )


def test_saves_without_generation_fits_still_load(kidney):
    scdcca.DCCA.setup_mudata(kidney, modalities=KIDNEY_MODALITIES)
    model = scdcca.DCCA(kidney)
    fitted = model.module.epi_depth_fit.clone()
    saved = model.module.state_dict().items()
    fits = ("epi_depth_fit", "epi_depth_latent", "epi_region_logit", "epi_region_weight")
    model.module.epi_region_weight.fill_(0.5)
    model.module.load_state_dict({k: v for k, v in saved if k not in fits})
    np.testing.assert_array_equal(model.module.epi_depth_fit.numpy(), fitted.numpy())
    assert float(model.module.epi_region_weight) == 0.0  # such saves generate from the decoder


def test_predicted_expression_correlates_with_measured(trained_kidney):
    model, mdata = trained_kidney
    cells = np.arange(0, mdata.n_obs, 10)
    predicted = model.predict_modality(mdata["atac"][cells].copy(), source="epi")
    assert list(predicted.columns) == list(mdata["rna"].var_names)
    np.testing.assert_allclose(predicted.sum(1), 1.0, rtol=1e-4)
    measured = mdata["rna"].X[cells].toarray()
    measured = measured / measured.sum(1, keepdims=True)
    gene_means = np.corrcoef(predicted.to_numpy().mean(0), measured.mean(0))[0, 1]
    assert gene_means > 0.8


def test_projection_accepts_reordered_superset_features(trained_kidney):
    model, mdata = trained_kidney
    cells = np.arange(40)
    expected = model.get_latent_representation(modality="rna", indices=cells)
    rna = mdata["rna"][cells].copy()
    extra = rna[:, :7].copy()
    extra.var_names = [f"extra{i}" for i in range(7)]
    import anndata as ad

    superset = ad.concat([rna, extra], axis=1)[:, ::-1].copy()
    projected = model.get_latent_representation(superset, modality="rna")
    np.testing.assert_allclose(projected, expected, rtol=1e-5, atol=1e-6)


def test_projection_with_missing_features_says_how_many(trained_kidney):
    model, mdata = trained_kidney
    subset = mdata[:20].copy()
    subset.mod["atac"] = subset["atac"][:, 25:].copy()
    with pytest.raises(ValueError, match=r"'atac' data lack 25 of the 10000 features"):
        model.get_latent_representation(subset, modality="epi")
    with pytest.raises(ValueError, match="modality='rna' or 'epi'"):
        model.get_latent_representation(mdata["rna"][:5].copy())


@pytest.mark.slow
def test_held_out_cells_land_where_training_with_them_puts_them():
    mdata = read("scicar_kidney")
    held = np.random.default_rng(0).random(mdata.n_obs) < 0.2

    def fit(data):
        scvi.settings.seed = 0
        scdcca.DCCA.setup_mudata(data, modalities=KIDNEY_MODALITIES)
        model = scdcca.DCCA(data)
        model.train(max_epochs_per_phase=12, enable_progress_bar=False)
        return model

    with_them = fit(mdata.copy())
    without = fit(mdata[~held].copy())
    held_out = mdata[held].copy()
    for modality, max_ratio in (("rna", 1.3), ("epi", 1.7)):
        z_all = with_them.get_latent_representation(modality=modality)
        z_train = without.get_latent_representation(modality=modality)
        z_projected = without.get_latent_representation(held_out, modality=modality)
        # align the two models' latent spaces on the shared training cells (rotation + scale)
        src_mean, dst_mean = z_train.mean(0), z_all[~held].mean(0)
        rotation, norm = orthogonal_procrustes(z_train - src_mean, z_all[~held] - dst_mean)
        scale = norm / ((z_train - src_mean) ** 2).sum()
        aligned_train = (z_train - src_mean) @ rotation * scale + dst_mean
        aligned_held = (z_projected - src_mean) @ rotation * scale + dst_mean
        error_train = np.median(np.linalg.norm(aligned_train - z_all[~held], axis=1))
        error_held = np.median(np.linalg.norm(aligned_held - z_all[held], axis=1))
        print(f"{modality}: median error held-out {error_held:.3f}, training {error_train:.3f}")
        assert error_held < max_ratio * error_train


@pytest.fixture(scope="module")
def unpaired_kidney():
    full = read("scicar_kidney")
    order = np.random.default_rng(1).permutation(full.n_obs)
    rna_only, epi_only = full.obs_names[order[:700]], full.obs_names[order[700:1200]]
    rna = full["rna"][~full.obs_names.isin(epi_only)].copy()
    atac = full["atac"][~full.obs_names.isin(rna_only)].copy()
    mdata = mudata.MuData({"rna": rna, "atac": atac})
    mdata.obs["cell_type"] = full.obs["cell_type"].reindex(mdata.obs_names).to_numpy()
    scvi.settings.seed = 0
    scdcca.DCCA.setup_mudata(mdata, modalities=KIDNEY_MODALITIES)
    model = scdcca.DCCA(mdata)
    model.train(max_epochs_per_phase=8, enable_progress_bar=False)
    return model, mdata, rna_only, epi_only


def test_unpaired_cells_train_and_get_every_latent(unpaired_kidney):
    model, mdata, rna_only, epi_only = unpaired_kidney
    shapes = {name: mdata[name].shape for name in mdata.mod}
    model.write_results(mdata, denoised=True)
    assert {name: mdata[name].shape for name in mdata.mod} == shapes  # modalities untouched
    joint = mdata.obsm["X_dcca"]
    k = model.module.n_latent
    assert joint.shape == (mdata.n_obs, 2 * k)
    assert np.isfinite(joint).all()
    observed = mdata.obsm["dcca_observed"]
    assert not observed.loc[rna_only, "epi"].any()
    assert not observed.loc[epi_only, "rna"].any()
    assert observed["rna"].sum() == mdata["rna"].n_obs
    # the latent of a missing modality is the transferred one: the measured modality's latent
    # (the joint latent's epigenome half carries its weight)
    rna_only_rows = mdata.obs_names.get_indexer(rna_only)
    plain = model.get_latent_representation(model.adata, epi_weight=1.0)
    np.testing.assert_array_equal(plain[rna_only_rows, k:], plain[rna_only_rows, :k])
    np.testing.assert_allclose(
        joint[rna_only_rows, k:], model.joint_epi_weight * joint[rna_only_rows, :k], atol=1e-6
    )
    # each modality gets its own cells' latent and denoised layer
    assert mdata["atac"].obsm["X_dcca"].shape == (mdata["atac"].n_obs, k)
    assert mdata["rna"].layers["dcca_denoised"].shape == mdata["rna"].shape
    epochs = model.history["epochs"]
    assert epochs["reconstruction_epi"].iloc[-1] < epochs["reconstruction_epi"].iloc[0]


def test_methylation_with_uncovered_sites_as_nan():
    mdata = read("scmt_mesc")
    calls = np.asarray(mdata["methylation"].X, dtype=np.float32).copy()
    uncovered = (calls == 0) & (np.random.default_rng(0).random(calls.shape) < 0.5)
    calls[uncovered] = np.nan
    mdata["methylation"].X = calls
    scdcca.DCCA.setup_mudata(mdata, modalities={"rna_layer": "rna", "epi_layer": "methylation"})
    with pytest.raises(ValueError, match="rna_likelihood='gaussian'"):
        scdcca.DCCA(mdata)  # published log-scale RNA is not counts
    scvi.settings.seed = 0
    model = scdcca.DCCA(mdata, rna_likelihood="gaussian")
    model.train(max_epochs_per_phase=15, batch_size=32, enable_progress_bar=False)
    epochs = model.history["epochs"]
    assert epochs["reconstruction_epi"].iloc[-1] < epochs["reconstruction_epi"].iloc[0]
    predicted = model.predict_modality(source="rna", return_numpy=True)
    assert np.isfinite(predicted).all()
    observed = ~np.isnan(calls)
    assert roc_auc_score(calls[observed] > 0, predicted[observed]) > 0.6
    assert np.isnan(mdata["methylation"].X).sum() == uncovered.sum()  # data left as given


def test_denoised_accessibility_streams_to_disk(trained_kidney, tmp_path):
    import h5py

    model, _ = trained_kidney
    cells = np.arange(300)
    path = model.write_normalized_accessibility(tmp_path / "atac.h5", indices=cells, batch_size=64)
    expected = model.get_normalized_accessibility(indices=cells, return_numpy=True)
    with h5py.File(path) as handle:
        np.testing.assert_allclose(handle["dcca_denoised"][:], expected, rtol=1e-6)
        assert handle["var_names"].shape == (expected.shape[1],)
    with pytest.raises(FileExistsError):
        model.write_normalized_accessibility(path)
