"""DCCA trained on real sci-CAR kidney data: losses, transfer, results, save/load."""

from __future__ import annotations

import inspect

import lightning.pytorch as pl
import mudata
import numpy as np
import pytest
import scanpy as sc
import scvi
import torch
from scipy import sparse

import scdcca
from scdcca.cli import main as cli_main

from .conftest import KIDNEY_MODALITIES, read


def test_training_lowers_both_reconstruction_losses(trained_kidney):
    model, _ = trained_kidney
    epochs = model.history["epochs"]
    rna = epochs[epochs.phase_name == "rna"]["reconstruction_rna"]
    epi = epochs[epochs.phase_name == "epi"]["reconstruction_epi"]
    assert rna.iloc[-1] < 0.95 * rna.iloc[0]
    assert epi.iloc[-1] < 0.5 * epi.iloc[0]
    phases = model.history["phases"]
    assert list(phases["name"]) == ["rna", "epi", "epi<-rna", "rna<-epi", "epi decoder"]
    assert (phases["epochs"] > 0).all()


def _mean_distance(model) -> float:
    z_rna = model.get_latent_representation(modality="rna")
    z_epi = model.get_latent_representation(modality="epi")
    return float(((z_rna - z_epi) ** 2).sum(1).mean())


def test_attention_transfer_pulls_latents_together(trained_kidney):
    model, _ = trained_kidney
    scvi.settings.seed = 0
    mdata = read("scicar_kidney")
    scdcca.DCCA.setup_mudata(mdata, modalities=KIDNEY_MODALITIES)
    without = scdcca.DCCA(mdata)
    without.train(
        schedule="cycle", max_epochs_per_phase=8, beta1=0.0, beta2=0.0, enable_progress_bar=False
    )
    with_transfer, no_transfer = _mean_distance(model), _mean_distance(without)
    print(
        f"mean ||z_rna - z_epi||^2: with transfer {with_transfer:.2f}, without {no_transfer:.2f}"
    )
    assert with_transfer < 0.5 * no_transfer


def test_latents_and_denoised_outputs(trained_kidney):
    model, mdata = trained_kidney
    joint = model.get_latent_representation()
    z_rna = model.get_latent_representation(modality="rna")
    k = model.module.n_latent
    assert joint.shape == (mdata.n_obs, 2 * k)
    np.testing.assert_allclose(joint[:, :k], z_rna, rtol=1e-5, atol=1e-6)
    expr = model.get_normalized_expression(indices=np.arange(100))
    assert expr.shape == (100, mdata["rna"].n_vars)
    assert list(expr.columns) == list(mdata["rna"].var_names)
    np.testing.assert_allclose(expr.sum(1), 1.0, rtol=1e-4)
    acc = model.get_normalized_accessibility(indices=np.arange(100))
    assert acc.shape == (100, mdata["atac"].n_vars)
    assert ((acc.to_numpy() >= 0) & (acc.to_numpy() <= 1)).all()
    thresholded = model.get_normalized_accessibility(indices=np.arange(100), threshold=0.05)
    assert sparse.issparse(thresholded)
    dense = acc.to_numpy()
    np.testing.assert_allclose(thresholded.toarray(), np.where(dense >= 0.05, dense, 0), atol=1e-6)
    # denoised accessibility is higher where peaks were observed open
    observed = mdata["atac"].X[:100].toarray() > 0
    assert dense[observed].mean() > 3 * dense[~observed].mean()


def test_joint_latent_weighs_the_epigenome_half_by_its_r2_on_validation_cells(trained_kidney):
    model, _ = trained_kidney
    k = model.module.n_latent
    validation = np.asarray(model.validation_indices)
    z_rna = model.get_latent_representation(modality="rna")
    z_epi = model.get_latent_representation(modality="epi")
    rna, epi = z_rna[validation].astype(float), z_epi[validation].astype(float)
    r2 = 1 - ((rna - epi) ** 2).sum() / ((rna - rna.mean(0)) ** 2).sum()
    weight = model.joint_epi_weight
    print(f"validation R2 of z_rna from z_epi: {r2:.3f}, joint weight {weight:.3f}")
    assert weight == pytest.approx(min(max(r2, 0.0), 1.0), abs=1e-4)
    joint = model.get_latent_representation()
    np.testing.assert_allclose(joint[:, :k], z_rna, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(joint[:, k:], weight * z_epi, rtol=1e-5, atol=1e-6)
    plain = model.get_latent_representation(epi_weight=1.0)
    np.testing.assert_allclose(plain, np.hstack([z_rna, z_epi]), rtol=1e-5, atol=1e-6)
    for bad in (-1.0, float("nan"), float("inf")):
        with pytest.raises(ValueError, match="epi_weight must be a finite number >= 0"):
            model.get_latent_representation(epi_weight=bad)
    # the halves are written unweighted, the joint latent weighted, the weight in the settings
    mdata = read("scicar_kidney")
    model.write_results(mdata, denoised=False)
    np.testing.assert_allclose(mdata.obsm["X_dcca"], joint, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(mdata["atac"].obsm["X_dcca"], z_epi, rtol=1e-5, atol=1e-6)
    assert mdata.uns["dcca"]["joint_epi_weight"] == pytest.approx(weight)
    # a save made before the weight existed loads as the plain concatenation
    state = {
        key: value for key, value in model.module.state_dict().items() if key != "joint_epi_weight"
    }
    before = model.module.joint_epi_weight.clone()
    try:
        model.module.load_state_dict(state)
        assert model.joint_epi_weight == 1.0
    finally:
        model.module.joint_epi_weight.copy_(before)


class _LatentStub:
    """Stands in for the module: each minibatch holds the two latents directly."""

    def __init__(self):
        self.joint_epi_weight = torch.tensor(-1.0)

    @staticmethod
    def posterior_mean(modality, tensors):
        return tensors[modality]


def test_joint_weight_is_the_clipped_r2_of_the_rna_latent_from_the_epigenome_latent():
    from scdcca.train._joint import fit_joint_weight

    z_rna = torch.randn(300, 6, generator=torch.Generator().manual_seed(0))
    centre = z_rna.mean(0)

    def weight(z_epi, chunks=3):
        stub = _LatentStub()
        batches = [
            {"rna": r, "epi": e}
            for r, e in zip(z_rna.chunk(chunks), z_epi.chunk(chunks), strict=True)
        ]
        fit_joint_weight(stub, batches)
        return float(stub.joint_epi_weight)

    # halfway to the mean: a quarter of the variance left unexplained, over any minibatching
    assert weight(0.5 * z_rna + 0.5 * centre) == pytest.approx(0.75, abs=1e-6)
    assert weight(0.5 * z_rna + 0.5 * centre, chunks=7) == pytest.approx(0.75, abs=1e-6)
    assert weight(z_rna.clone()) == pytest.approx(1.0)
    assert weight(-z_rna) == 0.0  # worse than the mean: clipped
    stub = _LatentStub()
    fit_joint_weight(stub, None)  # no validation cells: the plain concatenation
    assert float(stub.joint_epi_weight) == 1.0


def test_write_results_round_trip_and_scanpy(trained_kidney, tmp_path):
    model, _ = trained_kidney
    mdata = read("scicar_kidney")
    model.write_results(mdata, denoised=True)
    k = model.module.n_latent
    assert mdata.obsm["X_dcca"].shape == (mdata.n_obs, 2 * k)
    for name in ("rna", "atac"):
        assert mdata[name].obsm["X_dcca"].shape == (mdata.n_obs, k)
        assert mdata[name].layers["dcca_denoised"].shape == mdata[name].shape
    # nothing is written under a modality's own name: muon's modality masks are untouched
    assert mdata.obsm["rna"].dtype == bool
    assert mdata.obsm["atac"].dtype == bool
    path = tmp_path / "results.h5mu"
    mdata.write_h5mu(path)
    back = mudata.read_h5mu(path)
    np.testing.assert_array_equal(back.obsm["X_dcca"], mdata.obsm["X_dcca"])
    np.testing.assert_array_equal(
        back["atac"].layers["dcca_denoised"], mdata["atac"].layers["dcca_denoised"]
    )
    assert back.uns["dcca"]["epi_modality"] == "atac"
    assert list(back.uns["dcca"]["schedule"]) == [
        "rna",
        "epi",
        "epi<-rna",
        "rna<-epi",
        "epi decoder",
    ]
    sc.pp.neighbors(back["rna"], use_rep="X_dcca")
    sc.tl.umap(back["rna"])
    assert back["rna"].obsm["X_umap"].shape == (mdata.n_obs, 2)


def test_write_results_refuses_to_overwrite(trained_kidney):
    model, _ = trained_kidney
    mdata = read("scicar_kidney")
    model.write_results(mdata, denoised=True)
    before = mdata.obsm["X_dcca"].copy()
    mdata["rna"].layers["dcca_denoised"][:] = -1
    with pytest.raises(KeyError, match="overwrite=True"):
        model.write_results(mdata, denoised=True)
    assert (mdata["rna"].layers["dcca_denoised"] == -1).all()
    model.write_results(mdata, overwrite=True, denoised=True)
    assert (mdata["rna"].layers["dcca_denoised"] >= 0).all()
    np.testing.assert_allclose(mdata.obsm["X_dcca"], before, rtol=1e-5)


def test_sparse_threshold_layer(trained_kidney):
    model, _ = trained_kidney
    mdata = read("scicar_kidney")
    model.write_results(mdata, epi_threshold=0.1, denoised=True)
    assert sparse.issparse(mdata["atac"].layers["dcca_denoised"])


def test_save_load_gives_identical_latents(trained_kidney, tmp_path):
    model, mdata = trained_kidney
    model.save(tmp_path / "kidney_model", save_anndata=True)
    loaded = scdcca.DCCA.load(tmp_path / "kidney_model")
    np.testing.assert_array_equal(
        loaded.get_latent_representation(), model.get_latent_representation()
    )
    assert loaded.history["phases"].equals(model.history["phases"])
    assert loaded.schedule_ == model.schedule_
    assert loaded.joint_epi_weight == model.joint_epi_weight
    with_data = scdcca.DCCA.load(tmp_path / "kidney_model", adata=mdata)
    np.testing.assert_array_equal(
        with_data.get_latent_representation(modality="epi"),
        model.get_latent_representation(modality="epi"),
    )


def test_alternating_schedule_trains_both_vaes():
    scvi.settings.seed = 0
    mdata = read("scicar_kidney")
    scdcca.DCCA.setup_mudata(mdata, modalities=KIDNEY_MODALITIES)
    model = scdcca.DCCA(mdata)
    model.train(
        schedule="alternating",
        max_epochs_per_phase=6,
        refine_epi_decoder=False,
        enable_progress_bar=False,
    )
    epochs = model.history["epochs"]
    assert set(epochs["phase_name"]) == {"rna<->epi"}
    assert epochs["reconstruction_rna"].iloc[-1] < epochs["reconstruction_rna"].iloc[0]
    assert epochs["reconstruction_epi"].iloc[-1] < epochs["reconstruction_epi"].iloc[0]
    # the latents spread out while the KL weight warms up, so compare with no transfer
    scvi.settings.seed = 0
    without = scdcca.DCCA(mdata)
    without.train(
        schedule="alternating",
        max_epochs_per_phase=6,
        beta1=0.0,
        beta2=0.0,
        enable_progress_bar=False,
    )
    assert _mean_distance(model) < 0.5 * _mean_distance(without)


def test_zinb_and_gaussian_options_train():
    scvi.settings.seed = 0
    mdata = read("scicar_kidney")[:600].copy()
    scdcca.DCCA.setup_mudata(mdata, modalities=KIDNEY_MODALITIES)
    model = scdcca.DCCA(mdata, rna_likelihood="zinb", epi_likelihood="gaussian", n_latent=5)
    model.train(max_epochs_per_phase=2, enable_progress_bar=False)
    assert np.isfinite(model.history["epochs"]["validation_loss"]).all()
    assert model.get_latent_representation().shape == (600, 10)


def test_rna_input_dropout_acts_only_while_training():
    mdata = read("scicar_kidney")[:256].copy()
    scdcca.DCCA.setup_mudata(mdata, modalities=KIDNEY_MODALITIES)
    with pytest.raises(ValueError, match="rna_input_dropout"):
        scdcca.DCCA(mdata, rna_input_dropout=1.0)
    counts = torch.tensor(mdata["rna"].X.toarray(), dtype=torch.float32)
    means = {}
    for p in (0.0, 0.3):
        scvi.settings.seed = 0
        vae = scdcca.DCCA(mdata, dropout_rate=0.0, rna_input_dropout=p).module.rna
        vae.train()
        means[p] = [vae.encode(counts).loc.detach() for _ in range(2)]
        vae.eval()
        evaluation = [vae.encode(counts).loc.detach() for _ in range(2)]
        torch.testing.assert_close(*evaluation)
        if p == 0.3:  # the dropped entries: about 30 %, the kept ones scaled by 1 / 0.7
            vae.train()
            values = torch.log1p(counts[counts > 0])
            dropped = vae._drop(values)
            assert abs(float((dropped == 0).float().mean()) - 0.3) < 0.03
            torch.testing.assert_close(dropped[dropped > 0], values[dropped > 0] / 0.7)
    torch.testing.assert_close(*means[0.0])  # without input dropout training mode is exact
    assert not torch.allclose(*means[0.3])


def test_training_on_every_cell_monitors_the_training_loss():
    scvi.settings.seed = 0
    mdata = read("scicar_kidney")[:600].copy()
    scdcca.DCCA.setup_mudata(mdata, modalities=KIDNEY_MODALITIES)
    model = scdcca.DCCA(mdata, n_latent=5)
    model.train(
        train_size=1.0, max_epochs_per_phase=3, refine_epi_decoder=False, enable_progress_bar=False
    )
    epochs = model.history["epochs"]
    assert len(epochs) == 3
    assert epochs["validation_loss"].isna().all()
    assert np.isfinite(epochs["train_loss"]).all()
    assert epochs["reconstruction_rna"].iloc[-1] < epochs["reconstruction_rna"].iloc[0]
    assert model.get_latent_representation().shape == (600, 10)
    # no validation cells to weigh the region frequencies on: generation is the decoder's
    assert float(model.module.epi_region_weight) == 0.0
    assert torch.isfinite(model.module.epi_region_logit).all()
    # nor the joint latent's epigenome half: the plain concatenation
    assert model.joint_epi_weight == 1.0


class _StepLosses(pl.Callback):
    """The loss and number of cells of every training step, by epoch."""

    def __init__(self):
        self.steps: list[list[tuple[float, int]]] = []

    def on_train_epoch_start(self, trainer, pl_module):
        self.steps.append([])

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        self.steps[-1].append((float(outputs["loss"]), batch["rna"].shape[0]))


def test_epoch_metrics_are_cell_weighted_means_of_the_steps():
    scvi.settings.seed = 0
    mdata = read("scicar_kidney")[:600].copy()
    scdcca.DCCA.setup_mudata(mdata, modalities=KIDNEY_MODALITIES)
    model = scdcca.DCCA(mdata, n_latent=5)
    steps = _StepLosses()
    model.train(
        train_size=1.0,
        batch_size=128,  # 600 cells: four steps of 128 and one of 88
        max_epochs_per_phase=2,
        refine_epi_decoder=False,
        callbacks=[steps],
        enable_progress_bar=False,
    )
    epochs = model.history["epochs"]
    for logged, epoch in zip(epochs["train_loss"], steps.steps, strict=True):
        losses, cells = np.array(epoch).T
        assert list(cells) == [128, 128, 128, 128, 88]
        np.testing.assert_allclose(logged, np.average(losses, weights=cells), rtol=1e-5)
    # the KL weight of an epoch is that of its last step (the warm-up only rises)
    assert list(epochs["kl_weight"]) == pytest.approx([0.0, 0.1])


def test_kl_warmup_counted_in_optimiser_steps():
    scvi.settings.seed = 0
    mdata = read("scicar_kidney")[:600].copy()
    scdcca.DCCA.setup_mudata(mdata, modalities=KIDNEY_MODALITIES)
    model = scdcca.DCCA(mdata, n_latent=5)
    batch_size, n_steps = 128, 12
    model.train(
        max_epochs_per_phase=3,
        batch_size=batch_size,
        plan_kwargs={"n_steps_kl_warmup": n_steps},
        refine_epi_decoder=False,
        enable_progress_bar=False,
    )
    steps_per_epoch = -(-len(model.train_indices) // batch_size)
    # scvi-tools' warm-up: step s (from 0) has weight s / n_steps; an epoch records its last
    expected = [min(1.0, (steps_per_epoch * (e + 1) - 1) / n_steps) for e in range(3)]
    np.testing.assert_allclose(model.history["epochs"]["kl_weight"], expected)


def test_kl_warmup_continues_across_phases():
    """A VAE's warm-up runs once over its training: later phases start where it stopped."""
    scvi.settings.seed = 0
    mdata = read("scicar_kidney")[:600].copy()
    scdcca.DCCA.setup_mudata(mdata, modalities=KIDNEY_MODALITIES)
    model = scdcca.DCCA(mdata, n_latent=5)
    model.train(
        schedule="cycle",
        max_epochs_per_phase=3,
        plan_kwargs={"n_epochs_kl_warmup": 4},
        patience=100,
        enable_progress_bar=False,
    )
    epochs = model.history["epochs"]
    weights = {name: list(group["kl_weight"]) for name, group in epochs.groupby("phase_name")}
    # rna and epi warm up over 4 epochs: 3 in their first phase, the 4th in their second
    np.testing.assert_allclose(weights["rna"], [0.0, 0.25, 0.5])
    np.testing.assert_allclose(weights["epi"], [0.0, 0.25, 0.5])
    np.testing.assert_allclose(weights["epi<-rna"], [0.75, 1.0, 1.0])
    np.testing.assert_allclose(weights["rna<-epi"], [0.75, 1.0, 1.0])


def test_training_again_after_the_getters_trains_in_training_mode():
    """The getters leave the module in evaluation mode; training sets training mode again."""
    scvi.settings.seed = 0
    mdata = read("scicar_kidney")[:600].copy()
    scdcca.DCCA.setup_mudata(mdata, modalities=KIDNEY_MODALITIES)
    model = scdcca.DCCA(mdata, n_latent=5)
    model.train(max_epochs_per_phase=1, enable_progress_bar=False)
    model.get_latent_representation()
    assert not model.module.training
    modes = []

    class Mode(pl.Callback):
        def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
            modes.append(all(m.training for m in pl_module.module.modules()))

    model.train(
        max_epochs_per_phase=1,
        callbacks=[Mode()],
        refine_epi_decoder=False,
        enable_progress_bar=False,
    )
    assert modes
    assert all(modes)
    assert not model.module.training  # back in evaluation mode for the getters


def test_demo_command_writes_results(tmp_path, capsys):
    out, png = tmp_path / "demo.h5mu", tmp_path / "demo.png"
    argv = ["demo", "--out", str(out), "--png", str(png), "--no-progress-bar"]
    cli_main([*argv, "--max-epochs-per-phase", "2"])
    printed = capsys.readouterr().out
    assert "ARI" in printed
    assert png.stat().st_size > 10_000
    back = mudata.read_h5mu(out)
    n_latent = inspect.signature(scdcca.DCCA).parameters["n_latent"].default
    assert back.obsm["X_dcca"].shape == (back.n_obs, 2 * n_latent)
    # small output: no dense denoised layers, but the saved model gives them back
    assert "dcca_denoised" not in back["rna"].layers
    assert not back.uns["dcca"]["denoised_layers"]
    written = [out, *(tmp_path / "demo_model").iterdir()]
    assert sum(path.stat().st_size for path in written) < 50 * 2**20
    model = scdcca.DCCA.load(tmp_path / "demo_model", adata=back)
    rna = model.get_normalized_expression(indices=[0, 1], return_numpy=True)
    assert rna.shape == (2, back["rna"].n_vars)
    np.testing.assert_allclose(rna.sum(1), 1.0, rtol=1e-4)
    # a second run replaces its outputs instead of failing
    cli_main([*argv, "--max-epochs-per-phase", "1"])


def test_training_plot_draws_one_line_per_phase_over_consecutive_epochs(trained_kidney):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    model, _ = trained_kidney
    epochs = model.history["epochs"]
    assert list(epochs["epoch"]) == list(range(len(epochs)))
    for _, rows in epochs.groupby("phase"):
        assert list(rows["phase_epoch"]) == list(range(len(rows)))
    ax_loss, ax_dist = scdcca.pl.training(model)
    n_phases = epochs["phase"].nunique()
    assert len(ax_loss.get_lines()) == len(ax_dist.get_lines()) == n_phases
    x = np.concatenate([line.get_xdata() for line in ax_loss.get_lines()])
    np.testing.assert_array_equal(np.sort(x), np.arange(len(epochs)))
    plt.close("all")


def _decoder_nll_at_means(model, indices) -> float:
    """Mean Bernoulli loss of the epigenome decoder reading the encoder's posterior means."""
    module = model.module.eval()  # evaluation mode: the module's loss decodes posterior means
    total = 0.0
    with torch.no_grad():
        for tensors in model._minibatches(None, indices, 256):
            _, _, losses = module(tensors, inference_kwargs={"modalities": ("epi",)})
            total += float(losses.reconstruction_loss["epi"].sum())
    return total / len(indices)


def test_decoder_refinement_moves_only_the_epigenome_decoder():
    """After the schedule the epigenome decoder alone learns, on posterior means."""
    models = {}
    for refine in (False, True):
        scvi.settings.seed = 0
        mdata = read("scicar_kidney")[:1000].copy()
        scdcca.DCCA.setup_mudata(mdata, modalities=KIDNEY_MODALITIES)
        models[refine] = scdcca.DCCA(mdata, n_latent=5)
        models[refine].train(
            max_epochs_per_phase=4, refine_epi_decoder=refine, enable_progress_bar=False
        )
    plain, refined = models[False], models[True]
    assert list(refined.history["phases"]["name"]) == ["rna<->epi", "epi decoder"]
    assert [p["decoder_only"] for p in refined.schedule_] == [False, True]
    before, after = plain.module.state_dict(), refined.module.state_dict()
    moved = {k for k in before if not torch.equal(before[k], after[k])}
    decoder = {k for k in before if k.startswith(("epi.decoder.", "epi.output_head."))}
    fitted_after_training = {"epi_depth_fit", "epi_depth_latent", "epi_region_logit"}
    fitted_after_training |= {"epi_region_weight", "epi_decoder_mean_logit", "joint_epi_weight"}
    assert decoder & moved  # the decoder learnt
    assert moved <= decoder | fitted_after_training  # nothing else did
    for modality in ("rna", "epi"):
        np.testing.assert_array_equal(
            refined.get_latent_representation(modality=modality),
            plain.get_latent_representation(modality=modality),
        )
    # what the phase minimises: the calls given the posterior means, on the training cells
    cells = np.asarray(refined.train_indices)
    assert _decoder_nll_at_means(refined, cells) < _decoder_nll_at_means(plain, cells)
