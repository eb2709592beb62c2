"""What a user sees on a first run: the bundled data is clean, the console is quiet."""

from __future__ import annotations

import logging
import warnings

import numpy as np
import pytest

import scdcca
from scdcca.model import InputWarning


def test_bundled_data_triggers_no_input_warning():
    mdata = scdcca.datasets.scicar_kidney()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        scdcca.DCCA.setup_mudata(mdata, modalities={"rna_layer": "rna", "epi_layer": "atac"})
    assert not [w for w in caught if issubclass(w.category, InputWarning | FutureWarning)]
    for name in ("rna", "atac"):
        assert (np.asarray((mdata[name].X > 0).sum(0)).ravel() > 0).all()


class _Records(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())


def test_training_is_quiet_and_says_why_each_phase_ended():
    mdata = scdcca.datasets.scicar_kidney()[:400].copy()
    mdata.mod["atac"] = mdata["atac"][:, np.asarray(mdata["atac"].X.sum(0)).ravel() > 0].copy()
    mdata.mod["rna"] = mdata["rna"][:, np.asarray(mdata["rna"].X.sum(0)).ravel() > 0].copy()
    mdata.update()
    scdcca.DCCA.setup_mudata(mdata, modalities={"rna_layer": "rna", "epi_layer": "atac"})
    model = scdcca.DCCA(mdata, n_latent=5)
    lightning = logging.getLogger("lightning.pytorch.utilities.rank_zero")
    records = _Records()
    lightning.addHandler(records)
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            model.train(
                schedule="cycle", n_cycles=0, max_epochs_per_phase=2, enable_progress_bar=False
            )
    finally:
        lightning.removeHandler(records)
    messages = records.messages
    assert not [m for m in messages if "Tip:" in m]
    noise = (
        "Sparse CSR tensor support",
        "Sparse invariant checks",
        "LeafSpec",
        "logging interval",
        "in eval mode",
    )
    assert not [w for w in caught if any(n in str(w.message) for n in noise)]
    ended = [m for m in messages if m.startswith("DCCA phase")]
    assert len(ended) == 3  # the two VAEs alone, then the epigenome decoder's refinement
    assert "phase 1/3" in ended[0]
    assert "max_epochs_per_phase=2 reached" in ended[0]
    assert "(epi decoder)" in ended[2]
    # the caller's filters and Lightning's logger are as they were
    assert not lightning.filters


@pytest.mark.slow
def test_latent_umaps_of_more_than_8192_cells():
    """scanpy switches to pynndescent at 8,192 cells; the plot does not depend on it."""
    mdata = scdcca.datasets.snare_cortex()
    rng = np.random.default_rng(0)
    for name in ("rna", "atac"):
        mdata[name].obsm["X_dcca"] = rng.normal(size=(mdata.n_obs, 10)).astype(np.float32)
    mdata.uns["dcca"] = {"rna_modality": "rna", "epi_modality": "atac"}
    axes = scdcca.pl.latents(mdata, color="subclass")
    assert mdata.n_obs > 8192
    assert [ax.get_title() for ax in axes] == ["rna latent", "atac latent"]
    assert "X_umap" not in mdata.obsm  # the plot works on throw-away copies
