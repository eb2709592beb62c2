"""Bad input on real sci-CAR kidney data ends in a clear error naming modality and fix.

This covers the checks that exist so far (issue 3 asks for more).
"""

from __future__ import annotations

import mudata
import numpy as np
import pytest
from scipy import sparse

import scdcca

from .conftest import KIDNEY_MODALITIES, read


def _log_normalised_rna(mdata):
    x = mdata["rna"].X.copy()
    x.data = np.log1p(x.data * 3.7)
    mdata["rna"].X = x


def _negative_rna(mdata):
    x = mdata["rna"].X.copy()
    x.data[::5] *= -1
    mdata["rna"].X = x


def _atac_counts(mdata):
    x = mdata["atac"].X.copy()
    x.data[::3] = 4.0
    mdata["atac"].X = x


def _nan_atac(mdata):
    x = mdata["atac"].X.copy()
    x.data[::7] = np.nan
    mdata["atac"].X = x


BAD_MODEL_INPUTS = {
    "rna log-normalised": (_log_normalised_rna, ValueError, ["'rna'", "raw counts", "counts"]),
    "rna negative": (_negative_rna, ValueError, ["'rna'", "negative", "rna_layer"]),
    "atac counts above 1": (_atac_counts, ValueError, ["'atac'", "binary", "binarize_epi=True"]),
    "atac NaN": (_nan_atac, ValueError, ["'atac'", "NaN"]),
}


@pytest.mark.parametrize("case", list(BAD_MODEL_INPUTS))
def test_bad_matrix_is_refused_with_a_named_fix(case):
    inject, error, words = BAD_MODEL_INPUTS[case]
    mdata = read("scicar_kidney")
    inject(mdata)
    scdcca.DCCA.setup_mudata(mdata, modalities=KIDNEY_MODALITIES)
    with pytest.raises(error) as info:
        scdcca.DCCA(mdata)
    for word in words:
        assert word in str(info.value)


def test_binarize_epi_accepts_peak_counts_without_changing_them():
    mdata = read("scicar_kidney")
    _atac_counts(mdata)
    before = mdata["atac"].X.copy()
    scdcca.DCCA.setup_mudata(mdata, binarize_epi=True, modalities=KIDNEY_MODALITIES)
    scdcca.DCCA(mdata)
    assert (mdata["atac"].X != before).nnz == 0


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


def test_missing_batch_key(kidney):
    with pytest.raises(KeyError, match=r"'sample'.*cell_type"):
        scdcca.DCCA.setup_mudata(kidney, batch_key="sample", modalities=KIDNEY_MODALITIES)


def test_unpaired_cells_are_explained(kidney):
    mixed = mudata.MuData({"rna": kidney["rna"][:100].copy(), "atac": kidney["atac"].copy()})
    with pytest.raises(ValueError, match=r"'rna'.*100 cells"):
        scdcca.DCCA.setup_mudata(mixed, modalities=KIDNEY_MODALITIES)


def test_duplicated_feature_names(kidney):
    names = kidney["atac"].var_names.to_numpy().copy()
    names[1] = names[0]
    kidney["atac"].var_names = names
    with pytest.raises(ValueError, match="'atac' has 1 duplicated feature"):
        scdcca.DCCA.setup_mudata(kidney, modalities=KIDNEY_MODALITIES)


def test_anndata_is_redirected_to_setup_mudata(kidney):
    with pytest.raises(NotImplementedError, match="setup_mudata"):
        scdcca.DCCA.setup_anndata(kidney["rna"])


def test_dense_float64_input_is_accepted(kidney):
    kidney["rna"].X = kidney["rna"].X.toarray().astype(np.float64)
    kidney["atac"].X = sparse.csc_matrix(kidney["atac"].X)
    scdcca.DCCA.setup_mudata(kidney, modalities=KIDNEY_MODALITIES)
    model = scdcca.DCCA(kidney)
    assert model.get_latent_representation(indices=np.arange(10)).shape == (10, 20)
