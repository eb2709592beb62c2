"""Denoised values decoded in a chosen batch, or averaged over batches (``transform_batch``)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import scvi

import scdcca

from .conftest import KIDNEY_MODALITIES, read

LIBRARIES = ["lib_a", "lib_b", "lib_c"]


@pytest.fixture(scope="module")
def batched():
    """Kidney with its cells dealt into three libraries, a model briefly trained on them."""
    scvi.settings.seed = 0
    mdata = read("scicar_kidney")[:600].copy()
    mdata.obs["library"] = np.resize(LIBRARIES, mdata.n_obs)
    mdata.obs["library"] = mdata.obs["library"].astype("category")
    scdcca.DCCA.setup_mudata(mdata, modalities=KIDNEY_MODALITIES, batch_key="library")
    model = scdcca.DCCA(mdata, n_hidden=32, n_latent=8)
    model.train(max_epochs=3, enable_progress_bar=False)
    return model, mdata


def test_one_batch_decodes_every_cell_in_that_batch(batched):
    model, mdata = batched
    in_b = (mdata.obs["library"] == "lib_b").to_numpy()
    for getter in (model.get_normalized_accessibility, model.get_normalized_expression):
        own = getter(return_numpy=True)
        moved = getter(transform_batch="lib_b", return_numpy=True)
        # the cells of lib_b keep their values; the others are decoded in lib_b
        np.testing.assert_allclose(moved[in_b], own[in_b], rtol=1e-5, atol=1e-9)
        assert np.abs(moved[~in_b] - own[~in_b]).max(1).min() > 0


def test_several_batches_average_the_decoded_values(batched):
    model, _ = batched
    singles = [
        model.get_normalized_accessibility(transform_batch=b, return_numpy=True) for b in LIBRARIES
    ]
    averaged = model.get_normalized_accessibility(transform_batch=LIBRARIES, return_numpy=True)
    np.testing.assert_allclose(averaged, np.mean(singles, axis=0), rtol=1e-5, atol=1e-7)
    assert np.abs(averaged - singles[0]).max() > 1e-4


def test_write_results_decodes_the_layers_in_the_batches_asked(batched):
    model, mdata = batched
    out = model.write_results(mdata.copy(), transform_batch=LIBRARIES, denoised=True)
    expected = model.get_normalized_accessibility(transform_batch=LIBRARIES, return_numpy=True)
    np.testing.assert_allclose(out["atac"].layers["dcca_denoised"], expected, rtol=1e-6)
    assert list(out.uns["dcca"]["denoised_batches"]) == LIBRARIES
    plain = model.write_results(mdata.copy(), denoised=True)
    assert plain.uns["dcca"]["denoised_batches"] == "each cell's own"


def test_unknown_batch_and_a_model_without_batches_are_refused(batched, trained_kidney):
    model, _ = batched
    with pytest.raises(ValueError, match=r"lib_z.*|seen in training"):
        model.get_normalized_accessibility(transform_batch=["lib_a", "lib_z"])
    plain, _ = trained_kidney
    with pytest.raises(ValueError, match="without batch_key"):
        plain.get_normalized_expression(transform_batch="lib_a")


@pytest.fixture(scope="module")
def numbered():
    """Kidney cells of three runs numbered 1, 2, 3 (an integer column), briefly trained."""
    scvi.settings.seed = 0
    mdata = read("scicar_kidney")[:300].copy()
    mdata.obs["run"] = np.resize([1, 2, 3], mdata.n_obs)
    scdcca.DCCA.setup_mudata(mdata, modalities=KIDNEY_MODALITIES, batch_key="run")
    model = scdcca.DCCA(mdata, n_hidden=16, n_latent=4)
    model.train(max_epochs=2, enable_progress_bar=False)
    return model, mdata


def test_numpy_scalars_name_batches_as_python_scalars_do(numbered):
    model, mdata = numbered
    run = mdata.obs["run"]
    expected = model.get_normalized_expression(transform_batch=1, return_numpy=True)
    for name in (np.int64(1), 1.0, np.float64(1.0), run.iloc[0], np.array(1), "1"):
        moved = model.get_normalized_expression(transform_batch=name, return_numpy=True)
        np.testing.assert_array_equal(moved, expected)
    every = model.get_normalized_accessibility(transform_batch=[1, 2, 3], return_numpy=True)
    for names in (run.unique(), np.arange(1, 4), pd.Index([1.0, 2.0, 3.0])):
        averaged = model.get_normalized_accessibility(transform_batch=names, return_numpy=True)
        np.testing.assert_allclose(averaged, every, rtol=1e-6)
    out = model.write_results(mdata.copy(), denoised=False, transform_batch=run.unique())
    assert list(out.uns["dcca"]["denoised_batches"]) == ["1", "2", "3"]
    with pytest.raises(ValueError, match=r"seen in training \(\['1', '2', '3'\]\); got \[4\]"):
        model.get_normalized_expression(transform_batch=np.int64(4))
