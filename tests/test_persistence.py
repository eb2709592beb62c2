"""Nothing lost, nothing mislabelled: saving, loading and writing results on real data.

- A model trained on any MuData ``setup_mudata`` accepts (paired, cells in another order,
  unpaired cells) saves and loads with identical latents, with and without its data.
- ``write_results`` puts every value under its own cell and feature, or writes nothing.
- A save that fails leaves the previous one loadable; weights are never paired with the cells
  of another save; a newer release's model is refused.
- Settings that cannot train, and getter arguments that cannot work, are refused up front.
"""

from __future__ import annotations

import errno
from pathlib import Path

import anndata as ad
import mudata
import numpy as np
import pandas as pd
import pytest
import scvi
import torch

import scdcca
from scdcca.model import _saving
from scdcca.train import _generation

from .conftest import KIDNEY_MODALITIES, read
from .test_guarantees import _At, _changed, _ctrl_c, fingerprint

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")
N_CELLS = 300


def _kidney(n_cells: int = N_CELLS) -> mudata.MuData:
    return read("scicar_kidney")[:n_cells].copy()


def _reordered(kidney: mudata.MuData) -> mudata.MuData:
    """The modalities list the same cells in different orders (paired by name)."""
    order = np.random.default_rng(0).permutation(kidney.n_obs)
    return mudata.MuData({"rna": kidney["rna"].copy(), "atac": kidney["atac"][order].copy()})


def _unpaired(kidney: mudata.MuData) -> mudata.MuData:
    """40 cells with RNA only and 40 with ATAC only."""
    n = kidney.n_obs
    return mudata.MuData(
        {"rna": kidney["rna"][: n - 40].copy(), "atac": kidney["atac"][40:].copy()}
    )


def _trained(mdata: mudata.MuData, **train) -> scdcca.DCCA:
    scvi.settings.seed = 0
    scdcca.DCCA.setup_mudata(mdata, modalities=KIDNEY_MODALITIES)
    model = scdcca.DCCA(mdata, n_hidden=32)
    model.train(max_epochs_per_phase=2, enable_progress_bar=False, **train)
    return model


@pytest.fixture(scope="module")
def paired_model() -> tuple[scdcca.DCCA, mudata.MuData]:
    mdata = _kidney()
    return _trained(mdata), mdata


# --------------------------------------------------------------------------- save / load
@pytest.mark.parametrize("layout", [_reordered, _unpaired])
@pytest.mark.parametrize("save_anndata", [True, False])
def test_models_of_reordered_or_unpaired_cells_save_and_load(tmp_path, layout, save_anndata):
    mdata = layout(_kidney())
    model = _trained(mdata)
    expected = {m: model.get_latent_representation(modality=m) for m in ("rna", "epi")}
    model.save(tmp_path / "m", save_anndata=save_anndata)
    registry = scdcca.DCCA.load_registry(tmp_path / "m")
    assert registry["setup_args"]["modalities"] == KIDNEY_MODALITIES
    loaded = [scdcca.DCCA.load(tmp_path / "m", adata=mdata)]
    if save_anndata:
        loaded.append(scdcca.DCCA.load(tmp_path / "m"))
    else:
        with pytest.raises(ValueError, match=r"saved without its data.*adata=mdata"):
            scdcca.DCCA.load(tmp_path / "m")
    for other in loaded:
        assert other.is_trained
        for modality, latent in expected.items():
            np.testing.assert_array_equal(
                other.get_latent_representation(modality=modality), latent
            )
    if save_anndata:  # the user's MuData is saved, not the padded copy the model trains on
        saved = mudata.read_h5mu(tmp_path / "m" / "mdata.h5mu")
        for name in mdata.mod:
            assert saved[name].obs_names.equals(mdata[name].obs_names)


def test_model_attributes_hold_no_user_data(paired_model):
    model, _ = paired_model
    saved = {name for name, _ in model._get_user_attributes() if name.endswith("_")}
    assert "scdcca_version_" in saved
    for name in saved:
        assert not isinstance(getattr(model, name), mudata.MuData | scdcca.DCCA), name


def test_save_without_data_over_a_save_with_data_never_pairs_them(tmp_path, paired_model):
    model_a, _mdata = paired_model
    model_a.save(tmp_path / "m", save_anndata=True)
    model_b = _trained(_kidney(200))
    model_b.save(tmp_path / "m", overwrite=True)
    assert not (tmp_path / "m" / "mdata.h5mu").exists()
    with pytest.raises(ValueError, match="saved without its data"):
        scdcca.DCCA.load(tmp_path / "m")


def test_data_file_of_another_save_is_refused(tmp_path, paired_model):
    model, _ = paired_model
    model.save(tmp_path / "a", save_anndata=True)
    model.save(tmp_path / "b", save_anndata=True)
    (tmp_path / "b" / "mdata.h5mu").replace(tmp_path / "a" / "mdata.h5mu")
    with pytest.raises(ValueError, match="written by another save"):
        scdcca.DCCA.load(tmp_path / "a")


def test_failed_save_leaves_the_previous_save_loadable(tmp_path, paired_model, monkeypatch):
    model, _mdata = paired_model
    model.save(tmp_path / "m", save_anndata=True)
    before = {p.name: p.read_bytes() for p in (tmp_path / "m").iterdir()}

    def full_disk(*args, **kwargs):
        raise OSError(28, "No space left on device")

    other = _trained(_kidney(200))  # another model, on other cells, fails to save over it
    monkeypatch.setattr(torch, "save", full_disk)
    with pytest.raises(OSError, match="No space"):
        other.save(tmp_path / "m", save_anndata=True, overwrite=True)
    monkeypatch.undo()
    assert {p.name: p.read_bytes() for p in (tmp_path / "m").iterdir()} == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m"]  # no staging folder left
    loaded = scdcca.DCCA.load(tmp_path / "m")
    np.testing.assert_array_equal(
        loaded.get_latent_representation(), model.get_latent_representation()
    )


def test_full_disk_during_save_says_so_and_keeps_the_previous_save(
    tmp_path, paired_model, monkeypatch
):
    model, _mdata = paired_model
    model.save(tmp_path / "m", save_anndata=True)
    before = {p.name: p.read_bytes() for p in (tmp_path / "m").iterdir()}

    def zip_writer_on_a_full_disk(*args, **kwargs):  # what torch says when the disk fills up
        raise RuntimeError("[enforce fail at inline_container.cc:672] . unexpected pos 576 vs 534")

    monkeypatch.setattr(torch, "save", zip_writer_on_a_full_disk)
    with pytest.raises(OSError, match=r"No space left on the disk .*Free some space") as caught:
        model.save(tmp_path / "m", save_anndata=True, overwrite=True)
    assert caught.value.errno == errno.ENOSPC
    monkeypatch.undo()
    assert {p.name: p.read_bytes() for p in (tmp_path / "m").iterdir()} == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m"]
    scdcca.DCCA.load(tmp_path / "m")


#: A model saved by an earlier build of scdcca 0.1.0, whose ``scdcca.model`` package held the
#: module, training and checks too (200 kidney cells, ``n_latent=4``, ``n_hidden=8``, two
#: epochs per phase), with the latent it gave for those cells.
EARLIER_SAVE = Path(__file__).parent / "data" / "dcca_0.1.0_save"


def test_a_save_of_an_earlier_build_loads_and_gives_the_same_latents():
    mdata = read("scicar_kidney")[:200].copy()
    model = scdcca.DCCA.load(str(EARLIER_SAVE), adata=mdata)
    np.testing.assert_allclose(
        model.get_latent_representation(), np.load(EARLIER_SAVE / "latent.npy"), atol=1e-5
    )


def test_existing_directory_needs_overwrite(tmp_path, paired_model):
    model, _ = paired_model
    model.save(tmp_path / "m")
    with pytest.raises(ValueError, match=r"already exists.*overwrite=True"):
        model.save(tmp_path / "m")
    model.save(tmp_path / "m", overwrite=True)  # the README example can run twice


def test_saved_version_is_checked(tmp_path, paired_model, monkeypatch):
    model, mdata = paired_model
    model.save(tmp_path / "m")
    assert _saving.saved_attributes(tmp_path / "m", None)["scdcca_version_"] == (
        scdcca.__version__
    )
    monkeypatch.setattr(model, "scdcca_version_", "999.0.0")
    model.save(tmp_path / "newer")
    with pytest.raises(ValueError, match=r"saved by scdcca 999\.0\.0.*upgrade"):
        scdcca.DCCA.load(tmp_path / "newer", adata=mdata)
    with pytest.warns(UserWarning, match="did not record its version"):
        _saving.check_saved_version(None, scdcca.__version__)


# --------------------------------------------------------------------------- write_results
def test_write_results_labels_reordered_features_correctly(paired_model):
    model, mdata = paired_model
    new = mudata.MuData({"rna": mdata["rna"][:, ::-1].copy(), "atac": mdata["atac"].copy()})
    expected = model.get_normalized_expression(new, library_size=1e4)
    model.write_results(new, denoised=True)
    written = pd.DataFrame(
        new["rna"].layers["dcca_denoised"], index=new.obs_names, columns=new["rna"].var_names
    )
    assert not written.columns.equals(expected.columns)
    pd.testing.assert_frame_equal(
        written[expected.columns], expected.astype(np.float32), check_exact=False, rtol=1e-6
    )


def test_write_results_with_extra_features_writes_nothing(paired_model):
    model, mdata = paired_model
    rna = mdata["rna"].copy()
    extra = rna[:, :5].copy()
    extra.var_names = [f"extra{i}" for i in range(5)]
    wider = ad.concat([rna, extra], axis=1, merge="first")
    new = mudata.MuData({"rna": wider, "atac": mdata["atac"].copy()})
    assert model.get_normalized_expression(new).shape[1] == rna.n_vars  # the getters accept it
    before = fingerprint(new)
    with pytest.raises(ValueError, match=r"'rna'.*extra0.*model_features"):
        model.write_results(new, denoised=True)
    assert _changed(before, fingerprint(new)) == []
    with pytest.raises(ValueError, match="exactly the model's"):
        model.write_results(new, overwrite=True, denoised=True)
    assert _changed(before, fingerprint(new)) == []


def test_overwrite_replaces_every_key_of_another_model(paired_model):
    model, _mdata = paired_model
    other = _trained(_kidney(), max_epochs=1)
    target = _kidney()
    other.write_results(target, denoised=True)
    # a MuData with unpaired results keys of the other model's making
    target.obsm["dcca_observed"] = pd.DataFrame({"rna": True, "epi": True}, index=target.obs_names)
    model.write_results(target, overwrite=True, denoised=True)
    np.testing.assert_allclose(target.obsm["X_dcca"], model.get_latent_representation(target))
    for name, modality in (("rna", "rna"), ("atac", "epi")):
        np.testing.assert_allclose(
            target[name].obsm["X_dcca"], model.get_latent_representation(target, modality)
        )
    assert "dcca_observed" not in target.obsm
    assert target.uns["dcca"]["schedule"] == [p["name"] for p in model.schedule_]


def test_write_results_into_a_backed_mudata_says_the_file_is_unchanged(tmp_path, paired_model):
    model, _ = paired_model
    path = tmp_path / "cells.h5mu"
    _kidney().write(path)
    before = path.read_bytes()
    backed = mudata.read_h5mu(path, backed="r")
    with pytest.warns(UserWarning, match=r"backed by .*cells\.h5mu.*in memory only.*write\(\)"):
        model.write_results(backed, denoised=False)
    np.testing.assert_array_equal(backed.obsm["X_dcca"], model.get_latent_representation())
    backed.file.close()
    assert path.read_bytes() == before


def test_write_results_refuses_an_untrained_model():
    mdata = _kidney()
    scdcca.DCCA.setup_mudata(mdata, modalities=KIDNEY_MODALITIES)
    model = scdcca.DCCA(mdata, n_hidden=32)
    before = fingerprint(mdata)
    with pytest.raises(RuntimeError, match=r"not trained.*train\(\)"):
        model.write_results(mdata, denoised=True)
    assert _changed(before, fingerprint(mdata)) == []


def test_getters_refuse_an_untrained_model_after_checking_their_arguments():
    mdata = _kidney()
    scdcca.DCCA.setup_mudata(mdata, modalities=KIDNEY_MODALITIES)
    model = scdcca.DCCA(mdata, n_hidden=32)
    calls = {
        "latent": lambda: model.get_latent_representation(),
        "latent of new cells": lambda: model.get_latent_representation(mdata["rna"], "rna"),
        "expression": lambda: model.get_normalized_expression(indices=[0, 1]),
        "accessibility": lambda: model.get_normalized_accessibility(threshold=0.1),
        "prediction": lambda: model.predict_modality(mdata["rna"], source="rna"),
        "differential expression": lambda: model.differential_expression(
            groupby="cell_type", group1=mdata.obs["cell_type"].iloc[0]
        ),
    }
    for name, call in calls.items():
        with pytest.raises(RuntimeError, match=r"not trained.*train\(\)"):
            call()  # refused, not answered with random values
        assert not model.is_trained_, name
    # a bad argument is still named first
    with pytest.raises(ValueError, match="modality must be"):
        model.get_latent_representation(modality="atac")
    model.train(max_epochs=1, limit_train_batches=1, enable_progress_bar=False)
    assert model.get_latent_representation(indices=[0, 1]).shape == (2, 2 * model.module.n_latent)


# --------------------------------------------------------------------------- arguments
@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"n_latent": 0}, "n_latent must be >= 1"),
        ({"n_latent": -1}, "n_latent must be >= 1"),
        ({"n_latent": 2.5}, "n_latent must be a whole number"),
        ({"n_hidden": 0}, "n_hidden must be >= 1"),
        ({"n_layers": 0}, "n_layers must be >= 1"),
        ({"dropout_rate": 1.0}, r"dropout_rate must be .*\[0.0, 1.0\)"),
    ],
)
def test_model_settings_that_cannot_learn_are_refused(kwargs, message):
    mdata = _kidney(50)
    scdcca.DCCA.setup_mudata(mdata, modalities=KIDNEY_MODALITIES)
    with pytest.raises((ValueError, TypeError), match=message):
        scdcca.DCCA(mdata, **kwargs)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"patience": 0}, "patience must be >= 1"),
        ({"lr": 0.0}, r"lr must be a finite number in \(0.0"),
        ({"max_epochs_per_phase": 0}, "max_epochs_per_phase must be >= 1"),
        ({"max_epochs": 0}, "max_epochs must be >= 1"),
        ({"beta1": float("nan"), "beta2": float("nan")}, "finite and >= 0"),
        ({"batch_size": 0}, "batch_size must be >= 1"),
        ({"train_size": 0.0}, "train_size"),
        ({"train_size": 0.9, "validation_size": 0.2}, "train_size \\+ validation_size"),
    ],
)
def test_training_settings_that_cannot_train_are_refused(kwargs, message):
    mdata = _kidney(50)
    scdcca.DCCA.setup_mudata(mdata, modalities=KIDNEY_MODALITIES)
    model = scdcca.DCCA(mdata, n_hidden=16)
    with pytest.raises((ValueError, TypeError), match=message):
        model.train(enable_progress_bar=False, **kwargs)
    assert not model.is_trained


def test_max_epochs_is_accepted_as_the_total_over_phases():
    mdata = _kidney(100)
    model = _trained(mdata, max_epochs=4, schedule="cycle")
    # the epigenome decoder's refinement after the schedule gets the same bound
    assert list(model.history["phases"]["epochs"]) == [1, 1, 1, 1, 1]


def test_getter_arguments(paired_model):
    model, _mdata = paired_model
    new = _kidney()  # new data of 300 cells (more than one minibatch of 256)
    mask = np.zeros(new.n_obs, dtype=bool)
    mask[[3, 280]] = True
    np.testing.assert_array_equal(
        model.get_latent_representation(new, indices=mask),
        model.get_latent_representation(new, indices=[3, 280]),
    )
    frame = model.get_normalized_expression(new, indices=mask)
    assert list(frame.index) == list(new.obs_names[[3, 280]])
    with pytest.raises(ValueError, match="selects no cell"):
        model.get_latent_representation(new, indices=[])
    with pytest.raises(ValueError, match="one value per cell"):
        model.get_latent_representation(new, indices=mask[:10])
    with pytest.raises(ValueError, match="outside the 300 cells"):
        model.get_latent_representation(new, indices=[300])
    with pytest.raises(ValueError, match="library_size must be a positive number, got 'obs"):
        model.predict_modality(new, source="epi", library_size="observed")
    with pytest.raises(ValueError, match="threshold"):
        model.get_normalized_accessibility(threshold=1.5)
    n_regions = len(model.model_features("epi"))
    with pytest.raises(ValueError, match=rf"depth={n_regions} is not below .*{n_regions} regions"):
        model.predict_modality(source="rna", depth=n_regions)


# --------------------------------------------------------------------------- history
def test_interrupted_cycle_records_only_the_phases_that_ran():
    mdata = _kidney()
    scvi.settings.seed = 0
    scdcca.DCCA.setup_mudata(mdata, modalities=KIDNEY_MODALITIES)
    model = scdcca.DCCA(mdata, n_hidden=16)
    # phase 0 ends after its 2 epochs; Ctrl+C in the second epoch of phase 1
    model.train(
        max_epochs_per_phase=2,
        schedule="cycle",
        callbacks=[_At(epoch=1, batch=0, action=_ctrl_c, phase=1)],
        enable_progress_bar=False,
    )
    phases = model.history["phases"]
    assert list(phases["name"]) == ["rna", "epi"]
    assert list(phases["completed"]) == [True, False]
    assert [p["name"] for p in model.schedule_] == ["rna", "epi"]
    model.write_results(mdata, denoised=True)
    assert mdata.uns["dcca"]["schedule"] == ["rna", "epi"]


def test_fits_after_an_interrupted_training_use_its_validation_cells(monkeypatch):
    prior_fits, fit = [], _generation.fit_region_prior

    def fit_region_prior(module, training, sample, validation):
        prior_fits.append(validation is not None)
        return fit(module, training, sample, validation)

    monkeypatch.setattr(_generation, "fit_region_prior", fit_region_prior)
    mdata = _kidney(800)
    scvi.settings.seed = 0
    scdcca.DCCA.setup_mudata(mdata, modalities=KIDNEY_MODALITIES)
    model = scdcca.DCCA(mdata, n_hidden=32)
    model.train(
        max_epochs_per_phase=3,
        callbacks=[_At(epoch=2, batch=0, action=_ctrl_c)],
        enable_progress_bar=False,
    )
    assert list(model.history["phases"]["completed"]) == [False]
    assert model.validation_indices is not None
    validation = np.sort(model.validation_indices)
    assert len(validation) == 80
    assert not np.isin(validation, model.train_indices).any()
    # the joint latent's weight is the R² of z_rna predicted by z_epi in those cells
    z_rna = model.get_latent_representation(modality="rna", indices=validation)
    z_epi = model.get_latent_representation(modality="epi", indices=validation)
    r2 = 1 - ((z_rna - z_epi) ** 2).sum() / ((z_rna - z_rna.mean(0)) ** 2).sum()
    assert model.joint_epi_weight == pytest.approx(np.clip(r2, 0.0, 1.0), abs=1e-4)
    assert prior_fits == [True]  # generation's shrinkage is fitted on them too


def test_unregistered_mudata_error_names_setup_mudata():
    with pytest.raises(ValueError, match=r"not set up for DCCA.*DCCA\.setup_mudata"):
        scdcca.DCCA(_kidney(50))
    with pytest.raises(NotImplementedError, match="setup_mudata"):
        scdcca.DCCA.setup_anndata(_kidney(50)["rna"])
