"""Property-based tests: any container, dtype or missing value gets a result or a clear error.

Random variants of the PBMC multiome subset (sparse and dense layouts, integer, float and bool
dtypes, NaN, infinities, negative, fractional and count values, empty cells and features) are
thrown at ``setup_mudata`` and the model; each must either work (NaN in the epigenome is a
missing entry) or fail with the error the defect calls for, naming the modality, and the
user's MuData must come out unchanged.
"""

from __future__ import annotations

import tempfile
import warnings
from functools import cache
from pathlib import Path

import anndata as ad
import h5py
import mudata
import numpy as np
import pytest
import scvi
from anndata.io import sparse_dataset
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from scipy import sparse

import scdcca
from scdcca.data import InputWarning
from scdcca.data._scan import scan_matrix

from .conftest import KIDNEY_MODALITIES, read
from .test_guarantees import _changed, fingerprint

N_CELLS = 120


# --------------------------------------------------------------------------- scanning
def _reference(dense: np.ndarray) -> dict:
    """What a scan must report, computed the obvious (dense) way."""
    values = dense.astype(np.float64) if dense.dtype.kind != "b" else dense.astype(np.uint8)
    finite = values[np.isfinite(values)]
    nonzero = (values != 0) & ~np.isnan(values)
    is_float = dense.dtype.kind == "f"
    return {
        "n_obs": dense.shape[0],
        "n_vars": dense.shape[1],
        "n_nan": int(np.isnan(values).sum()),
        "n_inf": int(np.isinf(values).sum()),
        "n_negative": int((finite < 0).sum()),
        "n_non_integer": int((np.abs(finite - np.rint(finite)) > 1e-3).sum()) if is_float else 0,
        "n_non_binary": int(((finite != 0) & (finite != 1)).sum()),
        "min_value": float(finite.min()) if finite.size else np.inf,
        "max_value": float(finite.max()) if finite.size else -np.inf,
        "cell_nonzero": nonzero.sum(1).tolist(),
        "feature_nonzero": nonzero.sum(0).tolist(),
    }


def _containers(dense: np.ndarray, directory: Path):
    """The same matrix in every container DCCA reads."""
    yield "dense C", np.ascontiguousarray(dense)
    yield "dense F", np.asfortranarray(dense)
    if dense.dtype != np.float16:
        for kind in ("csr_matrix", "csc_matrix", "csr_array", "csc_array"):
            yield kind, getattr(sparse, kind)(dense)
    with h5py.File(directory / "m.h5", "w") as f:
        f["dense"] = dense
        if dense.dtype != np.float16:
            ad.io.write_elem(f, "csr", sparse.csr_matrix(dense))
            ad.io.write_elem(f, "csc", sparse.csc_matrix(dense))
    with h5py.File(directory / "m.h5", "r") as f:
        yield "h5py dataset", f["dense"]
        if dense.dtype != np.float16:
            yield "backed CSR", sparse_dataset(f["csr"])
            yield "backed CSC", sparse_dataset(f["csc"])


_SPECIAL = st.sampled_from([0.0, 0.0, 0.0, 1.0, 2.0, -1.0, 0.5, np.nan, np.inf, -np.inf, 7.25])


@st.composite
def _matrices(draw):
    shape = draw(st.tuples(st.integers(1, 12), st.integers(1, 9)))
    dtype = draw(st.sampled_from(["float32", "float64", "float16", "int32", "uint8", "bool"]))
    if dtype in ("float32", "float64", "float16"):
        return draw(hnp.arrays(dtype, shape, elements=_SPECIAL))
    if dtype == "bool":
        return draw(hnp.arrays(dtype, shape))
    return draw(hnp.arrays(dtype, shape, elements=st.sampled_from([0, 0, 0, 1, 3, 200])))


@settings(max_examples=100, deadline=None)
@given(dense=_matrices(), block_entries=st.integers(1, 40), data=st.data())
def test_scan_is_the_same_in_every_container_and_block_size(dense, block_entries, data):
    # all columns, or the model's features picked out of new data (any subset, any order)
    columns = data.draw(
        st.none()
        | st.permutations(range(dense.shape[1])).flatmap(
            lambda order: st.integers(1, len(order)).map(lambda n: np.array(order[:n]))
        )
    )
    expected = _reference(dense if columns is None else dense[:, columns])
    with tempfile.TemporaryDirectory() as directory:
        for kind, matrix in _containers(dense, Path(directory)):
            found = scan_matrix(matrix, block_entries=block_entries, columns=columns).as_dict()
            found.pop("example_non_integer")
            assert found == expected, kind


# --------------------------------------------------------------------------- setup_mudata
@cache
def _base() -> tuple[np.ndarray, np.ndarray, mudata.MuData]:
    mdata = read("pbmc_multiome_tiny")[:N_CELLS].copy()
    return mdata["rna"].X.toarray(), mdata["atac"].X.toarray(), mdata


FORMATS = ["csr_matrix", "csc_matrix", "csr_array", "csc_array", "dense C", "dense F"]
DEFECTS = ["none", "nan", "inf", "-inf", "negative", "fraction", "empty cell", "empty feature"]


def _inject(values: np.ndarray, defect: str, rng: np.random.Generator) -> np.ndarray:
    values = values.astype(np.float64)
    cell, feature = rng.integers(values.shape[0]), rng.integers(values.shape[1])
    special = {"nan": np.nan, "inf": np.inf, "-inf": -np.inf, "negative": -3.0, "fraction": 0.4}
    if defect in special:
        values[cell, feature] = special[defect]
    elif defect == "empty cell":
        values[cell] = 0
    elif defect == "empty feature":
        values[:, feature] = 0
    return values


def _container(values: np.ndarray, fmt: str, dtype: str):
    """``values`` in format ``fmt``, as ``dtype`` where that can hold them."""
    kind = np.dtype(dtype).kind
    integral = bool(np.isfinite(values).all() and (values == np.round(values)).all())
    if kind in "iub" and not integral:
        dtype = "float64"
    elif kind in "ub" and (values < 0).any():
        dtype = "int32"
    elif kind == "b" and (values > 1).any():
        dtype = "int32"
    if dtype == "float16" and not fmt.startswith("dense"):
        dtype = "float32"  # SciPy sparse has no float16
    values = values.astype(dtype)
    if fmt == "dense C":
        return np.ascontiguousarray(values)
    if fmt == "dense F":
        return np.asfortranarray(values)
    return getattr(sparse, fmt)(values)


def _expected_error(role: str, defect: str, binarize: bool) -> tuple[str, str] | None:
    """(stage, words) of the error a defect must raise, None if it must work.

    Non-finite values are refused by ``setup_mudata`` (except NaN in the epigenome, a missing
    entry); values a likelihood cannot model are refused when the model is built.
    """
    if role == "rna":
        if defect in ("nan", "inf", "-inf"):
            return "setup", "NaN" if defect == "nan" else "infinite"
        if defect == "negative":
            return "model", "negative"
        if defect == "fraction":
            return "model", "non-integer"
        return None
    if defect in ("inf", "-inf"):
        return "setup", "infinite"
    if defect == "negative":
        return "model", "negative"
    if defect in ("fraction", "counts") and not binarize:
        return "model", "not binary"
    return None


def _attempt(mdata: mudata.MuData, rna_layer: str | None, binarize: bool):
    """Set up, build and use a model: (stage reached, error or None, latents of 10 cells)."""
    stage = "setup"
    try:
        scdcca.DCCA.setup_mudata(
            mdata, rna_layer=rna_layer, binarize_epi=binarize, modalities=KIDNEY_MODALITIES
        )
        stage = "model"
        scvi.settings.seed = 0
        model = scdcca.DCCA(mdata, n_hidden=8, n_latent=2)
        stage = "use"
        # one optimiser step: the data pass through training and then through the encoders
        model.train(max_epochs=1, limit_train_batches=1, enable_progress_bar=False)
        return stage, None, model.get_latent_representation(indices=np.arange(10))
    except (ValueError, TypeError, KeyError) as error:
        return stage, error, None


@settings(
    max_examples=100,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(
    role=st.sampled_from(["rna", "epi"]),
    defect=st.sampled_from([*DEFECTS, "counts"]),
    rna_format=st.sampled_from(FORMATS),
    epi_format=st.sampled_from(FORMATS),
    rna_dtype=st.sampled_from(["float32", "float64", "float16", "int32", "int64", "uint16"]),
    epi_dtype=st.sampled_from(["float32", "float64", "int64", "uint16", "bool"]),
    binarize=st.booleans(),
    in_layer=st.booleans(),
    seed=st.integers(0, 2**16),
)
def test_setup_mudata_gives_a_result_or_a_clear_error(
    role, defect, rna_format, epi_format, rna_dtype, epi_dtype, binarize, in_layer, seed
):
    rna_counts, atac_counts, base = _base()
    rng = np.random.default_rng(seed)
    rna_values = rna_counts.copy()
    atac_values = atac_counts.copy() if (defect == "counts" and role == "epi") else None
    if atac_values is None:
        atac_values = (atac_counts > 0).astype(np.float64)
    if role == "rna":
        rna_values = _inject(rna_values, defect, rng)
    else:
        atac_values = _inject(atac_values, defect, rng)
    rna = ad.AnnData(
        X=_container(rna_values, rna_format, rna_dtype), obs=base["rna"].obs, var=base["rna"].var
    )
    if in_layer:
        rna.layers["counts"] = rna.X
        rna.X = np.log1p(rna_values).astype(np.float32)  # log-normalised X next to the counts
    atac = ad.AnnData(
        X=_container(atac_values, epi_format, epi_dtype),
        obs=base["atac"].obs,
        var=base["atac"].var,
    )
    mdata = mudata.MuData({"rna": rna, "atac": atac})
    before = fingerprint(mdata)
    expected = _expected_error(role, defect, binarize)
    modality = "rna" if role == "rna" else "atac"
    rna_layer = "counts" if in_layer else None

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        stage, error, latent = _attempt(mdata, rna_layer, binarize)
    if expected is None:
        assert error is None, f"unexpected {error!r} at {stage}"
        assert latent.shape == (10, 4)
        assert np.isfinite(latent).all()
    else:
        assert error is not None, f"{defect} in {role} was not refused"
        assert (stage, type(error)) == (expected[0], ValueError), f"{error!r} at {stage}"
        assert f"Modality {modality!r}" in str(error)
        assert expected[1] in str(error)
    assert _changed(before, fingerprint(mdata)) == []

    # empty cells and features are counted in a warning
    messages = [str(w.message) for w in caught if issubclass(w.category, InputWarning)]
    if defect in ("empty cell", "empty feature") and expected is None:
        values = rna_values if role == "rna" else atac_values
        axis = 1 if defect == "empty cell" else 0
        n_empty = int(((values != 0).sum(axis) == 0).sum())
        what = "cells have no counts in" if axis else "features of"
        assert any(f"{n_empty} of" in m and what in m and repr(modality) in m for m in messages)


# --------------------------------------------------------------------------- formats
@pytest.mark.filterwarnings("ignore::UserWarning")
@pytest.mark.parametrize(
    "variant",
    ["csr int32 rna, csr_array atac", "csc rna, dense F atac", "dense C float64, bool atac"],
)
def test_formats_train(variant):
    scvi.settings.seed = 0
    mdata = read("pbmc_multiome_tiny")
    rna, atac = mdata["rna"].X, mdata["atac"].X
    if variant.startswith("csr int32"):
        mdata["rna"].X = rna.astype(np.int32)
        mdata["atac"].X = sparse.csr_array(atac)
    elif variant.startswith("csc"):
        mdata["rna"].X = sparse.csc_matrix(rna)
        mdata["atac"].X = np.asfortranarray(atac.toarray())
    else:
        mdata["rna"].X = rna.toarray().astype(np.float64)
        mdata["atac"].X = atac.toarray() > 0
    scdcca.DCCA.setup_mudata(mdata, binarize_epi=True, modalities=KIDNEY_MODALITIES)
    model = scdcca.DCCA(mdata, n_hidden=16)
    model.train(max_epochs_per_phase=1, enable_progress_bar=False)
    assert np.isfinite(model.get_latent_representation()).all()
    assert np.isfinite(model.get_normalized_expression(return_numpy=True)).all()
