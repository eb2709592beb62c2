"""The benchmark runner works on a paired ``.h5mu`` it has never seen, given its names."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import mudata
import pandas as pd
import pytest

from .conftest import read

RUNNER = Path(__file__).resolve().parents[1] / "benchmarks" / "run.py"


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
