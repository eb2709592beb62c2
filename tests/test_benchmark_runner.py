"""The benchmark runner works on a paired ``.h5mu`` it has never seen, given its names.

Its rows say which code produced them (``version``) and what ended each training
(``stopped_by``), and the RNA-only and no-transfer methods run.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import mudata
import numpy as np
import pandas as pd
import pytest

from .conftest import DATA, read

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"
RUNNER = BENCHMARKS / "run.py"
sys.path.insert(0, str(BENCHMARKS))
import _methods  # noqa: E402
from _provenance import code_version, combined, stop_reason, stop_recorder  # noqa: E402

VERSION = re.compile(r"^\d+\.\d+\.\d+\S*\+(g[0-9a-f]{7}(-dirty)?|unknown)$")
STOPPED_BY = {"early_stopping", "max_epochs", "max_time", "diverged", "converged", "deterministic"}


@pytest.mark.slow
def test_runner_on_a_file_with_other_modality_label_and_batch_names(tmp_path):
    kidney = read("scicar_kidney")
    mdata = mudata.MuData({"gex": kidney["rna"].copy(), "peaks": kidney["atac"].copy()})
    mdata.obs["celltype_published"] = kidney.obs["cell_type"].astype(str).to_numpy()
    mdata.obs["library"] = ["lib_a" if i % 2 else "lib_b" for i in range(mdata.n_obs)]
    path = tmp_path / "unseen.h5mu"
    mdata.write(path)
    out = tmp_path / "results"
    command = [
        sys.executable, str(RUNNER), "--data", str(path), "--rna", "gex", "--epi", "peaks",
        "--label", "celltype_published", "--batch", "library", "--methods", "scdcca,pca_lsi",
        "--tasks", "embedding,heldout", "--seeds", "0", "--max-cells", "400",
        "--max-epochs", "2", "--threads", "1", "--no-figures", "--out", str(out),
    ]  # fmt: skip
    done = subprocess.run(command, capture_output=True, text=True, timeout=1800)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    table = pd.read_csv(out / "unseen.csv")
    assert set(table["dataset"]) == {"unseen"}
    assert set(table["status"].fillna("ok")) == {"ok"}
    embedding = table[table["task"] == "embedding"]
    assert {"scdcca", "pca_lsi"} <= set(embedding["method"])
    assert embedding[["kmeans_ari", "bio_conservation", "batch_correction"]].notna().all().all()
    heldout = table[table["task"] == "heldout"]
    assert heldout["knn_acc_heldout"].between(0, 1).all()
    assert (table["fit_s"] >= 0).all()
    assert (table["peak_rss_mib"] > 0).all()
    stopped = dict(zip(table["method"], table["stopped_by"], strict=False))
    # two epochs per phase are a cap that was hit
    assert stopped == {"scdcca": "max_epochs", "pca_lsi": "deterministic"}


def test_tiny_run_writes_version_and_stopped_by(tmp_path):
    """Every row names its code version and what ended its training; a hit cap shows."""
    path = DATA / "scicar_kidney.h5mu"
    if not path.exists():
        pytest.skip(f"{path} is not available")
    out = tmp_path / "results"
    command = [
        sys.executable, str(RUNNER), "--data", str(path), "--rna", "rna", "--epi", "atac",
        "--label", "cell_type", "--methods", "pca_rna,scvi_rna", "--tasks", "heldout",
        "--seeds", "0", "--max-cells", "150", "--max-epochs", "2", "--threads", "1",
        "--no-figures", "--out", str(out),
    ]  # fmt: skip
    done = subprocess.run(command, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    table = pd.read_csv(out / "scicar_kidney.csv")
    assert set(table["status"]) == {"ok"}
    assert all(VERSION.match(v) for v in table["version"]), set(table["version"])
    assert set(table["max_time_min"]) == {"none"}  # no wall-clock cap by default
    rows = table.set_index("method")
    assert set(rows.index) == {"pca_rna", "scvi_rna"}
    assert set(rows["latent"]) == {"joint"}
    assert rows.loc["pca_rna", "stopped_by"] == "deterministic"
    assert rows.loc["scvi_rna", "stopped_by"] == "max_epochs"  # --max-epochs 2 was hit
    assert int(rows.loc["scvi_rna", "epochs"]) == 2
    assert rows["knn_acc_heldout"].between(0, 1).all()


@pytest.mark.slow
def test_cross_modal_run_cut_short_resumes_from_kept_folds(tmp_path):
    """With --fold-cache a second run reads every finished fold instead of fitting it."""
    path = DATA / "scicar_kidney.h5mu"
    if not path.exists():
        pytest.skip(f"{path} is not available")
    command = [
        sys.executable, str(RUNNER), "--data", str(path), "--rna", "rna", "--epi", "atac",
        "--label", "cell_type", "--methods", "knn", "--tasks", "cross_modal", "--folds", "2",
        "--seeds", "0", "--max-cells", "150", "--threads", "1", "--no-figures",
        "--fold-cache", str(tmp_path / "folds"),
    ]  # fmt: skip
    tables = []
    for run in ("first", "second"):
        out = tmp_path / run
        done = subprocess.run([*command, "--out", str(out)], capture_output=True, text=True)
        assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
        kept = done.stdout.count("kept from")
        assert kept == (0 if run == "first" else 4), done.stdout[-3000:]  # knn, label_mean
        tables.append(pd.read_csv(out / "scicar_kidney.csv").set_index("method"))
    scores = [c for c in tables[0].columns if c.startswith(("rna2epi", "epi2rna"))]
    assert scores
    pd.testing.assert_frame_equal(tables[0][scores], tables[1][scores])
    assert len(list((tmp_path / "folds").glob("*.npz"))) == 4


def test_pca_rna_embeds_every_cell_from_rna_alone():
    kidney = read("scicar_kidney")[:300].copy()
    job = _methods.Job(kidney, "embedding", 0, np.arange(300), np.arange(0), False, False,
                       None, None, Path("."))  # fmt: skip
    arrays = _methods.run_pca_rna(job)
    assert set(arrays) == {"latent:joint"}
    assert arrays["latent:joint"].shape == (300, 50)
    assert np.isfinite(arrays["latent:joint"]).all()
    kidney.mod["atac"].X = kidney["atac"].X * 0  # the epigenome plays no part
    assert np.allclose(_methods.run_pca_rna(job)["latent:joint"], arrays["latent:joint"])


def test_one_time_budget_covers_every_fit_of_a_job(tmp_path):
    """--max-time is one budget for all of a job's fits: spent, every phase stops at once."""
    kidney = read("scicar_kidney")
    mdata = mudata.MuData({"rna": kidney["rna"][:150].copy(), "epi": kidney["atac"][:150].copy()})
    job = _methods.Job(mdata, "embedding", 0, np.arange(150), np.arange(0), False, True, None,
                       0.5, tmp_path)  # fmt: skip
    job.clock.seconds = 30.0  # earlier fits of the job used the whole budget
    assert job.seconds_left() == 0.0
    _methods.run_scdcca_cycle(job)
    phases = 5  # the cycle's four phases and the decoder refinement
    assert job.stops == ["max_time"] * phases
    assert job.info["stopped_by"] == "max_time"
    assert job.info["epochs"] == phases  # one (one-step) epoch each


def _fit(**trainer_kwargs) -> str:
    """Train Lightning's demo model and return what the recorder says ended the fit."""
    import lightning.pytorch as pl
    from lightning.pytorch.demos.boring_classes import BoringModel

    class Flat(BoringModel):  # a metric that never improves
        def training_step(self, batch, batch_idx):
            self.log("flat", 1.0, on_step=False, on_epoch=True)
            return super().training_step(batch, batch_idx)

    reasons: list[str] = []
    epochs: list[int] = []
    callbacks = [*trainer_kwargs.pop("callbacks", []), stop_recorder(reasons, epochs)]
    trainer = pl.Trainer(
        callbacks=callbacks,
        accelerator="cpu",
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        limit_val_batches=0,
        **trainer_kwargs,
    )
    trainer.fit(Flat())
    assert len(reasons) == 1
    assert reasons[0] == stop_reason(trainer)
    assert epochs == [trainer.current_epoch]
    return reasons[0]


def test_stop_reason_tells_early_stopping_epoch_and_time_caps_apart():
    from lightning.pytorch.callbacks import EarlyStopping

    stopping = EarlyStopping(monitor="flat", patience=2, check_on_train_epoch_end=True)
    assert _fit(max_epochs=1000, limit_train_batches=2, callbacks=[stopping]) == "early_stopping"
    assert _fit(max_epochs=2, limit_train_batches=2) == "max_epochs"
    assert _fit(max_epochs=10**6, max_time={"seconds": 0.3}) == "max_time"


def test_a_cap_hit_by_any_fit_names_the_row():
    assert combined(["early_stopping", "max_time", "early_stopping"]) == "max_time"
    assert combined(["early_stopping", "max_epochs"]) == "max_epochs"
    assert combined(["early_stopping"] * 3) == "early_stopping"
    assert combined(["deterministic", "deterministic"]) == "deterministic"
    assert combined([]) == ""


def test_version_names_commit_and_uncommitted_code(tmp_path):
    assert VERSION.match(code_version())

    def git(*arguments: str) -> None:
        subprocess.run(
            ["git", "-C", str(tmp_path), "-c", "user.name=t", "-c", "user.email=t@t", *arguments],
            check=True,
            capture_output=True,
        )

    for name in ("src/a.py", "benchmarks/b.py", "benchmarks/results/c.csv", "README.md"):
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text("x\n")
    git("init", "-q")
    git("add", ".")
    git("commit", "-q", "-m", "x")
    clean = code_version(tmp_path)
    assert re.search(r"\+g[0-9a-f]{7}$", clean)
    (tmp_path / "benchmarks/results/c.csv").write_text("y\n")  # results are not code
    (tmp_path / "README.md").write_text("y\n")
    assert code_version(tmp_path) == clean
    (tmp_path / "src/a.py").write_text("y\n")
    assert code_version(tmp_path) == clean + "-dirty"


def test_mofa_stop_reads_convergence_from_its_training_statistics(tmp_path):
    import h5py

    job = _methods.Job(None, "embedding", 0, np.arange(3), np.arange(0), False, False, None,
                       None, tmp_path)  # fmt: skip
    for slots, expected in ((101, "max_epochs"), (37, "converged")):
        with h5py.File(tmp_path / "mofa.hdf5", "w") as stored:
            stored["training_stats/elbo"] = np.zeros(slots)
        _methods._mofa_stop(job, tmp_path / "mofa.hdf5", 100)
        assert job.info["stopped_by"] == expected


def test_no_transfer_sets_both_attention_weights_to_zero(monkeypatch):
    seen = {}
    monkeypatch.setattr(_methods, "_dcca", lambda job, schedule, **kw: seen.update(kw) or {})
    _methods.run_scdcca_no_transfer(None)
    assert seen == {"beta1": 0.0, "beta2": 0.0}
    assert _methods.METHODS["scdcca_no_transfer"][1] == ("embedding", "cross_modal", "heldout")
    assert set(_methods.METHODS["scvi_rna"][1]) == set(_methods.METHODS["pca_rna"][1])


def test_fit_cut_short_resumes_from_its_checkpoint_under_the_same_stopping_rule(tmp_path):
    """A fit killed after some epochs continues where it stopped: the same early stopping
    (its counters restored) ends it at the epoch an uninterrupted fit ends at, the earlier
    process's training time is counted, and the finished fit's state is removed."""
    import lightning.pytorch as pl
    from lightning.pytorch.callbacks import Callback, EarlyStopping
    from lightning.pytorch.demos.boring_classes import BoringModel

    class Flat(BoringModel):  # a metric that improves for three epochs, then stays
        def training_step(self, batch, batch_idx):
            self.log("loss_flat", max(3.0 - self.current_epoch, 0.0), on_epoch=True)
            return super().training_step(batch, batch_idx)

    class Killed(Exception):
        pass

    class Kill(Callback):  # ends the process's fit after ``epoch`` epochs
        def __init__(self, epoch: int):
            self.epoch = epoch

        def on_train_epoch_end(self, trainer, pl_module) -> None:
            if trainer.current_epoch + 1 == self.epoch:
                raise Killed

    def fit(job, *extra):
        kwargs = job.trainer_kwargs(resumable=True)
        stopping = EarlyStopping(monitor="loss_flat", patience=4, check_on_train_epoch_end=True)
        trainer = pl.Trainer(
            callbacks=[*kwargs["callbacks"], *extra, stopping],
            max_epochs=100,
            limit_train_batches=2,
            limit_val_batches=0,
            accelerator="cpu",
            logger=False,
            enable_checkpointing=False,
            enable_progress_bar=False,
            enable_model_summary=False,
        )
        with job.clock.fit():
            trainer.fit(Flat(), ckpt_path=kwargs.get("ckpt_path"))

    def job(name: str):
        return _methods.Job(None, "embedding", 0, np.arange(0), np.arange(0), False, False,
                            None, None, tmp_path, checkpoint=str(tmp_path / name))  # fmt: skip

    whole = job("whole")
    fit(whole)
    assert whole.stops == ["early_stopping"]
    first = job("cut")
    with pytest.raises(Killed):
        fit(first, Kill(epoch=5))  # two epochs into early stopping's patience
    saved = tmp_path / "cut_fit0.ckpt"
    assert saved.exists()
    second = job("cut")
    fit(second)
    assert second.stops == ["early_stopping"]
    assert second.fit_epochs == whole.fit_epochs  # the same epoch ends both
    assert second.clock.seconds > first.clock.seconds > 0  # the first process's time counted
    assert not saved.exists()
    assert not list(tmp_path.glob("whole*.ckpt"))
