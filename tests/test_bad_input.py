"""Bad input on real data ends in a clear error (or a documented warning) naming the fix.

Every test marked ``bad_input`` hands DCCA one kind of defect, injected into a real dataset
from ``../shared/data``; ``pytest -q tests/test_bad_input.py`` prints how many are covered.
Each asserts the error type and that the message names the modality (or key) and the problem.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable

import anndata as ad
import mudata
import numpy as np
import pandas as pd
import pytest
import scvi
import torch

import scdcca
from scdcca.data import InputWarning
from scdcca.model import TrainingDivergedError

from .conftest import KIDNEY_MODALITIES, read

bad_input = pytest.mark.bad_input


def _with_x(mdata: mudata.MuData, name: str, change: Callable) -> None:
    """Replace ``mdata[name].X`` with ``change`` applied to a copy of it."""
    mdata[name].X = change(mdata[name].X.copy())


def _log_normalised(x):
    x.data = np.log1p(x.data * 3.7)
    return x


def _scaled(x):
    x.data[::5] *= -1
    return x


def _nan(x):
    x.data[::7] = np.nan
    return x


def _inf(x):
    x.data[3] = np.inf
    return x


def _peak_counts(x):
    x.data[::3] = 4.0
    return x


def _negative_calls(x):
    x.data[::11] = -1.0
    return x


def _dense_nan_in_last_cell(x):
    x = x.toarray().astype(np.float64)
    x[-1, -1] = np.nan
    return x


def _negative_in_last_cell(x):
    x = x.tolil()
    x[x.shape[0] - 1, 0] = -2.0
    return x.tocsr()


#: defect -> (modality, change to its X, words in the message), refused by setup_mudata
SETUP_DEFECTS = {
    "rna NaN": ("rna", _nan, ["'rna'", "NaN"]),
    "rna infinite": ("rna", _inf, ["'rna'", "1 infinite"]),
    "rna dense float64, one NaN in the last cell": (
        "rna",
        _dense_nan_in_last_cell,
        ["'rna'", "1 NaN"],
    ),
    "atac infinite": ("atac", _inf, ["'atac'", "infinite"]),
}


@bad_input
@pytest.mark.parametrize("case", list(SETUP_DEFECTS))
def test_non_finite_values_are_refused_at_setup(kidney, case):
    name, change, words = SETUP_DEFECTS[case]
    _with_x(kidney, name, change)
    with pytest.raises(ValueError, match=r"^Modality ") as info:
        scdcca.DCCA.setup_mudata(kidney, modalities=KIDNEY_MODALITIES)
    for word in words:
        assert word in str(info.value)


#: defect -> (modality, change to its X, words), refused when the model is built: RNA that
#: is not counts by a negative-binomial model, an epigenome that is not 0/1 by a Bernoulli one
MODEL_DEFECTS = {
    "rna log-normalised": ("rna", _log_normalised, ["'rna'", "non-integer", "raw counts"]),
    "rna scaled (negative)": ("rna", _scaled, ["'rna'", "negative", "raw counts", "rna_layer"]),
    "rna one negative count in the last cell": (
        "rna",
        _negative_in_last_cell,
        ["'rna'", "1 negative"],
    ),
    "atac counts above 1": (
        "atac",
        _peak_counts,
        ["'atac'", "binary", "binarize_epi=True", "peak"],
    ),
    "atac negative calls": ("atac", _negative_calls, ["'atac'", "negative", "0/1"]),
}


@bad_input
@pytest.mark.parametrize("case", list(MODEL_DEFECTS))
def test_values_the_likelihood_cannot_model_are_refused_when_the_model_is_built(kidney, case):
    modality, change, words = MODEL_DEFECTS[case]
    _with_x(kidney, modality, change)
    scdcca.DCCA.setup_mudata(kidney, modalities=KIDNEY_MODALITIES)
    with pytest.raises(ValueError, match=r"^Modality ") as info:
        scdcca.DCCA(kidney)
    for word in words:
        assert word in str(info.value)


@bad_input
def test_log_normalised_x_points_at_the_counts_layer(kidney):
    kidney["rna"].layers["counts"] = kidney["rna"].X.copy()
    _with_x(kidney, "rna", _log_normalised)
    scdcca.DCCA.setup_mudata(kidney, modalities=KIDNEY_MODALITIES)
    with pytest.raises(ValueError, match=r"^Modality ") as info:
        scdcca.DCCA(kidney)
    for word in ("'rna' (X)", "not raw counts", "layers['counts']", "rna_layer='counts'"):
        assert word in str(info.value)
    # the suggested fix works
    scdcca.DCCA.setup_mudata(kidney, rna_layer="counts", modalities=KIDNEY_MODALITIES)
    scdcca.DCCA(kidney)


@bad_input
def test_binarize_epi_accepts_peak_counts_without_changing_them(kidney):
    _with_x(kidney, "atac", _peak_counts)
    before = kidney["atac"].X.copy()
    scdcca.DCCA.setup_mudata(kidney, binarize_epi=True, modalities=KIDNEY_MODALITIES)
    model = scdcca.DCCA(kidney)
    model.train(max_epochs=1, limit_train_batches=2, enable_progress_bar=False)
    assert (kidney["atac"].X != before).nnz == 0
    assert np.isfinite(model.get_latent_representation(indices=np.arange(50))).all()


@bad_input
def test_nan_in_the_epigenome_is_a_missing_entry(kidney):
    """Documented handling: NaN marks an epigenome entry that was not measured."""
    _with_x(kidney, "atac", _nan)
    scdcca.DCCA.setup_mudata(kidney, modalities=KIDNEY_MODALITIES)
    model = scdcca.DCCA(kidney)
    model.train(max_epochs=1, limit_train_batches=2, enable_progress_bar=False)
    assert np.isfinite(model.history["epochs"]["train_loss"]).all()
    assert np.isfinite(model.get_latent_representation(indices=np.arange(50))).all()


@bad_input
def test_gaussian_epigenome_accepts_continuous_values(kidney):
    _with_x(kidney, "atac", _peak_counts)
    scdcca.DCCA.setup_mudata(kidney, modalities=KIDNEY_MODALITIES)
    scdcca.DCCA(kidney, epi_likelihood="gaussian")


@bad_input
def test_cells_without_counts_are_counted_in_a_warning(kidney):
    x = kidney["atac"].X.tolil()
    x[:7] = 0
    kidney["atac"].X = x.tocsr()
    expected = int((kidney["atac"].X.getnnz(axis=1) == 0).sum())
    assert expected >= 7
    with pytest.warns(InputWarning, match=rf"{expected} of 4753 cells have no counts in .*'atac'"):
        scdcca.DCCA.setup_mudata(kidney, modalities=KIDNEY_MODALITIES)


@bad_input
def test_features_zero_in_every_cell_are_counted_in_a_warning(kidney):
    x = kidney["rna"].X.tocsc()
    x[:, :25] = 0
    kidney["rna"].X = x.tocsr()
    kidney["rna"].X.eliminate_zeros()
    expected = int((kidney["rna"].X.getnnz(axis=0) == 0).sum())
    assert expected >= 25
    with pytest.warns(InputWarning, match=rf"{expected} of 5000 features of modality 'rna'"):
        scdcca.DCCA.setup_mudata(kidney, modalities=KIDNEY_MODALITIES)


@bad_input
def test_backed_mudata_is_scanned_to_its_last_cell(tmp_path):
    mdata = read("pbmc_multiome_tiny")
    x = mdata["rna"].X.tolil()
    x[mdata.n_obs - 1, 0] = np.nan
    mdata["rna"].X = x.tocsr()
    mdata.write_h5mu(tmp_path / "nan.h5mu")
    backed = mudata.read_h5mu(tmp_path / "nan.h5mu", backed=True)
    assert backed.isbacked
    with pytest.raises(ValueError, match=r"'rna' \(X\) has 1 NaN and 0 infinite"):
        scdcca.DCCA.setup_mudata(backed, binarize_epi=True, modalities=KIDNEY_MODALITIES)


# --------------------------------------------------------------------------- containers
@bad_input
def test_missing_layer(kidney):
    with pytest.raises(KeyError) as info:
        scdcca.DCCA.setup_mudata(kidney, rna_layer="counts", modalities=KIDNEY_MODALITIES)
    for word in ("'counts'", "rna_layer", "'rna'", "layers are []"):
        assert word in str(info.value)


@bad_input
def test_modality_without_x(kidney):
    rna = kidney["rna"]
    only_layers = ad.AnnData(obs=rna.obs, var=rna.var, layers={"raw": rna.X})
    mdata = mudata.MuData({"rna": only_layers, "atac": kidney["atac"]})
    with pytest.raises(ValueError, match=r"'rna' has no X.*rna_layer=.*\['raw'\]"):
        scdcca.DCCA.setup_mudata(mdata, modalities=KIDNEY_MODALITIES)


@bad_input
@pytest.mark.parametrize(
    ("dtype", "word"), [(np.complex64, "complex64"), (str, "<U"), (object, "object")]
)
def test_values_that_are_not_real_numbers(kidney, dtype, word):
    rna = kidney["rna"]
    values = rna.X[:, :50].toarray().astype(dtype)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        typed = ad.AnnData(X=values, obs=rna.obs, var=rna.var.iloc[:50])
    mdata = mudata.MuData({"rna": typed, "atac": kidney["atac"]})
    with pytest.raises(TypeError) as info:
        scdcca.DCCA.setup_mudata(mdata, modalities=KIDNEY_MODALITIES)
    for expected in ("'rna'", word, "real numbers"):
        assert expected in str(info.value)


@bad_input
def test_modality_without_features(kidney):
    mdata = mudata.MuData({"rna": kidney["rna"], "atac": kidney["atac"][:, :0].copy()})
    with pytest.raises(ValueError, match=r"'atac' \(X\) has shape \(4753, 0\)"):
        scdcca.DCCA.setup_mudata(mdata, modalities=KIDNEY_MODALITIES)


@bad_input
def test_anndata_instead_of_mudata(kidney):
    with pytest.raises(TypeError, match=r"needs a MuData.*got AnnData"):
        scdcca.DCCA.setup_mudata(kidney["rna"], modalities=KIDNEY_MODALITIES)
    with pytest.raises(NotImplementedError, match="setup_mudata"):
        scdcca.DCCA.setup_anndata(kidney["rna"])


@bad_input
def test_mudata_view(kidney):
    with pytest.raises(ValueError, match=r"view.*\.copy\(\)"):
        scdcca.DCCA.setup_mudata(kidney[:100], modalities=KIDNEY_MODALITIES)


@bad_input
@pytest.mark.parametrize(
    ("modalities", "error", "words"),
    [
        ({"rna_layer": "rna", "epi_layer": "chromatin"}, KeyError, ["'chromatin'", "atac"]),
        ({"rna_layer": "rna"}, ValueError, ["epi_layer"]),
        ({"rna_layer": "rna", "epi_layer": "rna"}, ValueError, ["two different"]),
    ],
)
def test_bad_modality_mapping(kidney, modalities, error, words):
    with pytest.raises(error) as info:
        scdcca.DCCA.setup_mudata(kidney, modalities=modalities)
    for word in words:
        assert word in str(info.value)


@bad_input
def test_missing_batch_key(kidney):
    with pytest.raises(KeyError, match=r"'sample'.*mdata\.obs.*cell_type"):
        scdcca.DCCA.setup_mudata(kidney, batch_key="sample", modalities=KIDNEY_MODALITIES)


@bad_input
def test_batch_key_in_a_missing_modality(kidney):
    modalities = {**KIDNEY_MODALITIES, "batch_key": "protein"}
    with pytest.raises(KeyError, match=r"'protein'.*batch_key.*\['rna', 'atac'\]"):
        scdcca.DCCA.setup_mudata(kidney, batch_key="cell_type", modalities=modalities)


@bad_input
def test_batch_key_with_missing_values(kidney):
    kidney.obs["sample"] = np.where(np.arange(kidney.n_obs) < 40, None, "a")
    with pytest.raises(ValueError, match=r"'sample'.*no value for 40 of 4753 cells"):
        scdcca.DCCA.setup_mudata(kidney, batch_key="sample", modalities=KIDNEY_MODALITIES)


@bad_input
@pytest.mark.parametrize("where", ["mdata", "rna"])
def test_batch_categories_without_cells_are_refused(kidney, where):
    obs = kidney.obs if where == "mdata" else kidney["rna"].obs
    libraries = np.resize(["lib_a", "lib_b"], kidney.n_obs)
    obs["sample"] = pd.Categorical(libraries, categories=["lib_a", "lib_b", "GHOST"])
    modalities = {**KIDNEY_MODALITIES, **({} if where == "mdata" else {"batch_key": "rna"})}
    with pytest.raises(
        ValueError,
        match=r"'sample'.*1 categories that no cell has \('GHOST'\).*never trains.*"
        r"\.cat\.remove_unused_categories\(\)",
    ):
        scdcca.DCCA.setup_mudata(kidney, batch_key="sample", modalities=modalities)
    assert list(obs["sample"].cat.categories) == ["lib_a", "lib_b", "GHOST"]  # left as it was
    assert "_scvi_batch" not in obs
    obs["sample"] = obs["sample"].cat.remove_unused_categories()
    scdcca.DCCA.setup_mudata(kidney, batch_key="sample", modalities=modalities)
    assert scdcca.DCCA(kidney, n_hidden=16).summary_stats.n_batch == 2


@bad_input
@pytest.mark.parametrize("layout", ["rna for 100 cells only", "atac cells shuffled"])
def test_unpaired_or_reordered_cells_are_paired_by_name(kidney, layout):
    """Documented handling: cells are paired by name (a padded twin; the data are not changed)."""
    if layout.startswith("rna"):
        mods = {"rna": kidney["rna"][:100].copy(), "atac": kidney["atac"].copy()}
    else:
        order = np.random.default_rng(0).permutation(kidney.n_obs)
        mods = {"rna": kidney["rna"].copy(), "atac": kidney["atac"][order].copy()}
    mixed = mudata.MuData(mods)
    scdcca.DCCA.setup_mudata(mixed, modalities=KIDNEY_MODALITIES)
    model = scdcca.DCCA(mixed)
    model.train(max_epochs=1, limit_train_batches=2, enable_progress_bar=False)
    assert model.get_latent_representation(indices=np.arange(10)).shape == (
        10,
        2 * model.module.n_latent,
    )


@bad_input
def test_modality_changed_without_mdata_update(kidney):
    names = kidney["rna"].obs_names.to_numpy().copy()
    names[:3] = ["new-1", "new-2", "new-3"]
    kidney["rna"].obs_names = names
    with pytest.raises(ValueError, match=r"'rna' holds 3 cells that are not in .*mdata\.update"):
        scdcca.DCCA.setup_mudata(kidney, modalities=KIDNEY_MODALITIES)


@bad_input
@pytest.mark.parametrize("axis", ["cell", "feature"])
def test_duplicated_names(kidney, axis):
    if axis == "cell":
        names = kidney.obs_names.to_numpy().copy()
        names[1] = names[0]
        for name in ("rna", "atac"):
            kidney[name].obs_names = names
        kidney.update()
    else:
        names = kidney["atac"].var_names.to_numpy().copy()
        names[1] = names[0]
        kidney["atac"].var_names = names
    modality = "rna" if axis == "cell" else "atac"
    with pytest.raises(ValueError, match=f"'{modality}' has 1 duplicated {axis} names"):
        scdcca.DCCA.setup_mudata(kidney, modalities=KIDNEY_MODALITIES)


# --------------------------------------------------------------------------- saved models
@pytest.fixture(scope="module")
def saved_tiny_model(tmp_path_factory):
    """An (untrained) DCCA on the PBMC multiome subset, saved without its data."""
    mdata = read("pbmc_multiome_tiny")
    scdcca.DCCA.setup_mudata(mdata, binarize_epi=True, modalities=KIDNEY_MODALITIES)
    model = scdcca.DCCA(mdata, n_hidden=16)
    path = tmp_path_factory.mktemp("tiny") / "model"
    model.save(path)
    return model, path


def _drop_features(name: str, n: int) -> mudata.MuData:
    mdata = read("pbmc_multiome_tiny")
    mdata.mod[name] = mdata[name][:, n:].copy()
    mdata.update()
    return mdata


def _reorder_features(name: str) -> mudata.MuData:
    mdata = read("pbmc_multiome_tiny")
    mdata.mod[name] = mdata[name][:, ::-1].copy()
    mdata.update()
    return mdata


@bad_input
@pytest.mark.parametrize(
    ("make", "words"),
    [
        (lambda: _drop_features("rna", 10), ["'rna'", "10 of the model's 45 genes are missing"]),
        (lambda: _drop_features("atac", 3), ["'atac'", "3 of the model's 174 features"]),
        (lambda: _reorder_features("atac"), ["'atac'", "174 features but in a different order"]),
    ],
    ids=["10 genes missing", "3 peaks missing", "peaks reordered"],
)
def test_load_against_data_with_other_features(saved_tiny_model, make, words):
    _, path = saved_tiny_model
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # scvi-tools' own var_names warning
        with pytest.raises(ValueError, match=r"^Modality ") as info:
            scdcca.DCCA.load(path, adata=make())
    for word in words:
        assert word in str(info.value)
    assert "load_registry" in str(info.value)


@bad_input
def test_getters_on_data_with_other_features(saved_tiny_model):
    model, _ = saved_tiny_model
    with pytest.raises(ValueError, match=r"'rna' data lack 5 of the 45 features"):
        model.get_latent_representation(_drop_features("rna", 5))


@bad_input
@pytest.mark.parametrize(
    ("change", "words"),
    [(_inf, "has 0 NaN and 1 infinite"), (_log_normalised, "non-integer values")],
    ids=["infinite", "log-normalised"],
)
def test_getters_on_new_data_with_bad_values(saved_tiny_model, change, words):
    model, _ = saved_tiny_model
    mdata = read("pbmc_multiome_tiny")
    _with_x(mdata, "rna", change)
    with pytest.raises(ValueError, match=r"^Modality 'rna' \(X\)") as info:
        model.get_normalized_expression(mdata)
    assert words in str(info.value)


# --------------------------------------------------------------------------- training
@bad_input
def test_diverging_training_names_phase_and_epoch_and_keeps_finite_weights():
    scvi.settings.seed = 0
    mdata = read("pbmc_multiome_tiny")
    scdcca.DCCA.setup_mudata(mdata, binarize_epi=True, modalities=KIDNEY_MODALITIES)
    model = scdcca.DCCA(mdata, n_hidden=16)
    start = {k: v.clone() for k, v in model.module.state_dict().items()}
    with pytest.raises(TrainingDivergedError, match=r"phase 0 \(rna<->epi\), epoch 0") as info:
        model.train(max_epochs_per_phase=2, lr=1e20, enable_progress_bar=False)
    assert "lr" in str(info.value)
    # the step that blew up is undone: back to the weights the phase started from
    for key, value in model.module.state_dict().items():
        torch.testing.assert_close(value, start[key], rtol=0, atol=0)
    assert all(torch.isfinite(value).all() for value in model.module.state_dict().values())
    # its weights are the random starting ones: results are refused, not made up
    with pytest.raises(RuntimeError, match=r"not trained"):
        model.get_latent_representation()
