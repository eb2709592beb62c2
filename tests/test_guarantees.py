"""DCCA's guarantees, each tested on real data.

- The user's MuData is never modified except by ``write_results`` (and scvi-tools'
  registration fields): matrices are hashed before and after setup, training, every getter,
  saving and loading.
- ``write_results`` refuses to overwrite existing keys unless ``overwrite=True``.
- The same ``scvi.settings.seed`` and data give identical latents on CPU.
- Interrupting training (KeyboardInterrupt) leaves a usable model with the best weights so far.
- Training that diverges stops with an error naming phase and epoch, back at finite weights.
- A save/load round trip keeps the training history and the phase schedule.
"""

from __future__ import annotations

import hashlib
import pickle
import shutil
import signal
from pathlib import Path

import mudata
import numpy as np
import pandas as pd
import pytest
import scvi
import torch
from lightning.pytorch.callbacks import Callback
from scipy import sparse

import scdcca
from scdcca.model import TrainingDivergedError

from .conftest import DATA, KIDNEY_MODALITIES, read

SCVI_PREFIX = "_scvi_"
RESULT_KEYS = ("X_dcca", "dcca_denoised", "dcca")


# --------------------------------------------------------------------------- fingerprints
def _digest(value) -> str:
    digest = hashlib.sha256()
    if sparse.issparse(value):
        digest.update(f"{type(value).__name__} {value.shape} {value.dtype}".encode())
        for part in (value.data, value.indices, value.indptr):
            digest.update(np.ascontiguousarray(part).tobytes())
    elif isinstance(value, np.ndarray):
        layout = "C" if value.flags.c_contiguous else "F" if value.flags.f_contiguous else "-"
        digest.update(f"ndarray {value.shape} {value.dtype} {layout}".encode())
        digest.update(np.ascontiguousarray(value).tobytes())
    elif isinstance(value, pd.DataFrame):
        digest.update(repr([(c, str(t)) for c, t in value.dtypes.items()]).encode())
        digest.update(pd.util.hash_pandas_object(value, index=True).to_numpy().tobytes())
        digest.update(np.asarray(value.index).astype(str).tobytes())
    else:
        digest.update(pickle.dumps(value))
    return digest.hexdigest()


def fingerprint(mdata: mudata.MuData) -> dict[str, object]:
    """Hashes of everything in ``mdata`` except scvi-tools' ``_scvi_*`` registration fields.

    The matrices (``X`` and layers) also record their identity: replacing one with an equal
    copy (as scvi-tools' format correction would) counts as a change.
    """
    out: dict[str, object] = {"modalities": list(mdata.mod)}
    owners = [("mdata", mdata), *((f"mdata[{k!r}]", a) for k, a in mdata.mod.items())]
    for owner, data in owners:
        if owner != "mdata":
            out[f"{owner}.X"] = (id(data.X), _digest(data.X))
            for key, value in data.layers.items():
                out[f"{owner}.layers[{key!r}]"] = (id(value), _digest(value))
        for attr in ("obsm", "varm", "obsp", "varp"):
            for key, value in getattr(data, attr).items():
                out[f"{owner}.{attr}[{key!r}]"] = _digest(value)
        for attr in ("obs", "var"):
            frame = getattr(data, attr)
            kept = [c for c in frame.columns if not str(c).startswith(SCVI_PREFIX)]
            out[f"{owner}.{attr}"] = _digest(frame[kept])
        for key, value in data.uns.items():
            if not str(key).startswith(SCVI_PREFIX):
                out[f"{owner}.uns[{key!r}]"] = _digest(value)
    return out


def _changed(before: dict, after: dict) -> list[str]:
    return sorted(k for k in before.keys() | after.keys() if before.get(k) != after.get(k))


def _mixed_formats() -> mudata.MuData:
    """PBMC multiome with the layouts scvi-tools would otherwise rewrite in place.

    RNA: Fortran-ordered int64 counts in ``X`` plus a float CSC ``layers["counts"]``;
    ATAC: peak counts (above 1) as a float64 CSC matrix, used with ``binarize_epi=True``.
    """
    mdata = read("pbmc_multiome_tiny")
    counts = mdata["rna"].X
    mdata["rna"].layers["counts"] = sparse.csc_matrix(counts)
    mdata["rna"].X = np.asfortranarray(counts.toarray().astype(np.int64))
    mdata["atac"].X = sparse.csc_matrix(mdata["atac"].X.astype(np.float64))
    mdata.obs["sample"] = np.where(np.arange(mdata.n_obs) % 2, "a", "b")
    return mdata


@pytest.mark.filterwarnings("ignore::UserWarning")
@pytest.mark.parametrize("rna_layer", [None, "counts"])
def test_user_mudata_is_never_modified(tmp_path, rna_layer):
    scvi.settings.seed = 0
    mdata = _mixed_formats()
    before = fingerprint(mdata)
    steps = {}
    scdcca.DCCA.setup_mudata(
        mdata,
        rna_layer=rna_layer,
        batch_key="sample",
        binarize_epi=True,
        modalities=KIDNEY_MODALITIES,
    )
    steps["setup"] = fingerprint(mdata)
    model = scdcca.DCCA(mdata, n_hidden=16)
    steps["model"] = fingerprint(mdata)
    model.train(max_epochs_per_phase=1, schedule="cycle", enable_progress_bar=False)
    steps["train"] = fingerprint(mdata)
    for modality in ("rna", "epi", "joint"):
        model.get_latent_representation(modality=modality)
    model.get_latent_representation(mdata, indices=np.arange(10))
    model.get_normalized_expression(library_size=1e4)
    model.get_normalized_expression(library_size="observed", return_numpy=True)
    model.get_normalized_accessibility()
    model.get_normalized_accessibility(threshold=0.1)
    steps["getters"] = fingerprint(mdata)
    model.save(tmp_path / "model", save_anndata=True)
    steps["save"] = fingerprint(mdata)
    loaded = scdcca.DCCA.load(tmp_path / "model", adata=mdata)
    loaded.get_latent_representation()
    steps["load"] = fingerprint(mdata)
    # a second MuData the model was not set up with is read, not changed, by the getters
    other = _mixed_formats()
    other_before = fingerprint(other)
    model.get_normalized_accessibility(other, indices=np.arange(5))
    assert _changed(other_before, fingerprint(other)) == []
    for step, after in steps.items():
        assert _changed(before, after) == [], f"{step} changed the user's MuData"

    # write_results writes its documented keys and nothing else
    model.write_results(mdata, denoised=True)
    changed = _changed(before, fingerprint(mdata))
    assert changed
    assert all(any(key in c for key in RESULT_KEYS) for c in changed), changed
    # ... and refuses to overwrite them, leaving everything as it was
    written = fingerprint(mdata)
    with pytest.raises(KeyError, match=r"already exist.*overwrite=True"):
        model.write_results(mdata, denoised=True)
    assert _changed(written, fingerprint(mdata)) == []
    model.write_results(mdata, overwrite=True, denoised=True)


@pytest.mark.filterwarnings("ignore::UserWarning")
def test_backed_mudata_file_is_not_modified(tmp_path):
    path = tmp_path / "pbmc.h5mu"
    shutil.copy(DATA / "pbmc_multiome_tiny.h5mu", path)
    before = hashlib.sha256(path.read_bytes()).hexdigest()
    scvi.settings.seed = 0
    mdata = mudata.read_h5mu(path, backed=True)
    assert mdata.isbacked
    scdcca.DCCA.setup_mudata(mdata, binarize_epi=True, modalities=KIDNEY_MODALITIES)
    model = scdcca.DCCA(mdata, n_hidden=16)
    model.train(max_epochs_per_phase=1, enable_progress_bar=False)
    assert np.isfinite(model.get_latent_representation()).all()
    model.get_normalized_accessibility(threshold=0.2)
    mdata.file.close()
    assert hashlib.sha256(Path(path).read_bytes()).hexdigest() == before


# --------------------------------------------------------------------------- reproducibility
def _trained_latents(seed: int) -> np.ndarray:
    scvi.settings.seed = seed
    mdata = read("pbmc_multiome_tiny")
    scdcca.DCCA.setup_mudata(mdata, binarize_epi=True, modalities=KIDNEY_MODALITIES)
    model = scdcca.DCCA(mdata, n_hidden=32, dropout_rate=0.2)
    model.train(max_epochs_per_phase=1, schedule="cycle", enable_progress_bar=False)
    return model.get_latent_representation()


@pytest.mark.filterwarnings("ignore::UserWarning")
def test_same_seed_gives_identical_latents():
    first, second = _trained_latents(3), _trained_latents(3)
    np.testing.assert_array_equal(first, second)
    # the seed matters (initial weights, data split, shuffling, dropout, sampling)
    assert not np.array_equal(first, _trained_latents(4))


# --------------------------------------------------------------------------- interruption
class _At(Callback):
    """Remembers the weights at the start of ``epoch``; at ``batch`` of it, does ``action``.

    ``epoch`` counts within the fit of phase ``phase`` (each phase is one Lightning fit).
    """

    def __init__(self, epoch: int, batch: int, action, phase: int = 0):
        self.epoch, self.batch, self.action, self.phase = epoch, batch, action, phase
        self.state: dict[str, torch.Tensor] | None = None
        self._fits = 0

    def on_fit_start(self, trainer, pl_module):
        self._fits += 1

    def _now(self, trainer) -> bool:
        return self._fits - 1 == self.phase and trainer.current_epoch == self.epoch

    def on_train_epoch_start(self, trainer, pl_module):
        if self._now(trainer):
            self.state = {k: v.detach().clone() for k, v in pl_module.module.state_dict().items()}

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
        if self._now(trainer) and batch_idx == self.batch:
            self.action(pl_module.module)


def _ctrl_c(module):
    raise KeyboardInterrupt


def _poison(module):
    with torch.no_grad():
        module.rna.encoder.mean.weight.fill_(float("nan"))


def _tiny_model() -> scdcca.DCCA:
    scvi.settings.seed = 0
    mdata = read("pbmc_multiome_tiny")
    scdcca.DCCA.setup_mudata(mdata, binarize_epi=True, modalities=KIDNEY_MODALITIES)
    return scdcca.DCCA(mdata, n_hidden=16)


#: Buffers fitted after training from the kept weights (the joint latent's epigenome weight,
#: depth and shrinkage of generation).
FITTED_AFTER_TRAINING = (
    "joint_epi_weight",
    "epi_depth_fit",
    "epi_depth_latent",
    "epi_region_logit",
    "epi_decoder_mean_logit",
    "epi_region_weight",
)


def _assert_state(model: scdcca.DCCA, state: dict[str, torch.Tensor]) -> None:
    """The network's weights are ``state``'s (buffers fitted after training aside)."""
    for key, value in model.module.state_dict().items():
        if key not in FITTED_AFTER_TRAINING:
            torch.testing.assert_close(value, state[key], rtol=0, atol=0, msg=key)


@pytest.mark.filterwarnings("ignore::UserWarning")
def test_keyboard_interrupt_keeps_the_best_weights_and_a_usable_model():
    model = _tiny_model()
    handler = signal.getsignal(signal.SIGINT)
    interrupt = _At(epoch=2, batch=3, action=_ctrl_c)
    # returns normally: the interruption is reported, not raised
    model.train(max_epochs_per_phase=5, callbacks=[interrupt], enable_progress_bar=False)
    assert signal.getsignal(signal.SIGINT) is handler
    assert model.is_trained
    # during KL warm-up the best weights are the latest complete epoch's: epoch 1's
    _assert_state(model, interrupt.state)
    assert len(model.history["epochs"]) == 2
    assert [phase["name"] for phase in model.schedule_] == ["rna<->epi"]
    assert np.isfinite(model.get_latent_representation()).all()
    # the model can be trained further
    model.train(max_epochs_per_phase=1, refine_epi_decoder=False, enable_progress_bar=False)
    assert len(model.history["epochs"]) == 1


@pytest.mark.filterwarnings("ignore::UserWarning")
def test_keyboard_interrupt_before_the_first_epoch_is_a_keyboard_interrupt():
    model = _tiny_model()
    start = {k: v.clone() for k, v in model.module.state_dict().items()}
    with pytest.raises(KeyboardInterrupt, match="untrained"):
        model.train(
            max_epochs_per_phase=3,
            callbacks=[_At(epoch=0, batch=2, action=_ctrl_c)],
            enable_progress_bar=False,
        )
    assert not model.is_trained
    _assert_state(model, start)


@pytest.mark.filterwarnings("ignore::UserWarning")
def test_divergence_names_phase_and_epoch_and_restores_the_best_weights():
    model = _tiny_model()
    poison = _At(epoch=2, batch=0, action=_poison)
    with pytest.raises(TrainingDivergedError, match=r"phase 0 \(rna<->epi\), epoch 2 "):
        model.train(max_epochs_per_phase=5, callbacks=[poison], enable_progress_bar=False)
    _assert_state(model, poison.state)
    assert len(model.history["epochs"]) == 2
    assert np.isfinite(model.get_latent_representation()).all()


# --------------------------------------------------------------------------- save / load
@pytest.mark.filterwarnings("ignore::UserWarning")
def test_save_load_keeps_history_and_schedule(tmp_path):
    scvi.settings.seed = 0
    mdata = read("pbmc_multiome_tiny")
    scdcca.DCCA.setup_mudata(mdata, binarize_epi=True, modalities=KIDNEY_MODALITIES)
    model = scdcca.DCCA(mdata, n_hidden=16)
    model.train(max_epochs_per_phase=2, schedule="cycle", enable_progress_bar=False)
    names = ["rna", "epi", "epi<-rna", "rna<-epi", "epi decoder"]
    assert list(model.history["phases"]["name"]) == names
    model.save(tmp_path / "model", save_anndata=True)
    for loaded in (
        scdcca.DCCA.load(tmp_path / "model"),
        scdcca.DCCA.load(tmp_path / "model", adata=read("pbmc_multiome_tiny")),
    ):
        for table in ("epochs", "phases"):
            pd.testing.assert_frame_equal(loaded.history[table], model.history[table])
        assert loaded.schedule_ == model.schedule_
        assert loaded.is_trained
        np.testing.assert_array_equal(
            loaded.get_latent_representation(), model.get_latent_representation()
        )
