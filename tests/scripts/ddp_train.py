"""Train DCCA with Lightning DDP on 2 CPU processes (gloo); run by tests/test_distributed.py.

Usage: ``python ddp_train.py DATA_H5MU OUT_DIR``. Lightning starts the second process by
running this script again; each rank writes ``rank<r>.json`` with what it saw.
"""

from __future__ import annotations

import json
import os
import sys
import warnings
from pathlib import Path

import mudata
import scvi
import torch

import scdcca

warnings.filterwarnings("ignore")
torch.set_num_threads(1)


def main() -> None:
    data, out = Path(sys.argv[1]), Path(sys.argv[2])
    scvi.settings.seed = 0
    mdata = mudata.read_h5mu(data)[:1200].copy()
    scdcca.DCCA.setup_mudata(mdata, modalities={"rna_layer": "rna", "epi_layer": "atac"})
    model = scdcca.DCCA(mdata, n_hidden=64)
    model.train(
        schedule="cycle",
        max_epochs_per_phase=3,
        accelerator="cpu",
        devices=2,
        strategy="ddp",
        enable_progress_bar=False,
    )
    rank = int(os.environ.get("LOCAL_RANK", 0))
    model.write_results(mdata)
    model.save(out / "model", overwrite=True)
    epochs = model.history["epochs"]
    report = {
        "rank": rank,
        "world_size": torch.distributed.get_world_size()
        if torch.distributed.is_initialized()
        else 1,
        "phases": model.history["phases"][["phase", "epochs"]].to_dict("list"),
        "reconstruction_rna": epochs["reconstruction_rna"].tolist(),
        "validation_loss": epochs["validation_loss"].tolist(),
        "wrote_results": "X_dcca" in mdata.obsm,
        "latent_finite": bool(
            torch.isfinite(
                torch.as_tensor(model.get_latent_representation(indices=range(50)))
            ).all()
        ),
    }
    (out / f"rank{rank}.json").write_text(json.dumps(report))


if __name__ == "__main__":
    main()
