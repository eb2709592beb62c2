"""Lightning DDP on the CPU: 2 processes (gloo) train one model on real sci-CAR kidney cells."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from .conftest import DATA

SCRIPT = Path(__file__).parent / "scripts" / "ddp_train.py"


@pytest.mark.slow
def test_two_process_ddp_on_cpu(tmp_path):
    data = DATA / "scicar_kidney.h5mu"
    if not data.exists():
        pytest.skip(f"{data} is not available")
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONWARNINGS": "ignore"}
    result = subprocess.run(
        [sys.executable, str(SCRIPT), str(data), str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=900,
        env=env,
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    reports = [json.loads((tmp_path / f"rank{r}.json").read_text()) for r in (0, 1)]
    assert [r["world_size"] for r in reports] == [2, 2]
    # both ranks took the same early-stopping decisions from the all-reduced losses
    assert reports[0]["phases"] == reports[1]["phases"]
    assert len(reports[0]["phases"]["phase"]) == 5  # cycle of four, then the epi decoder
    np.testing.assert_allclose(reports[0]["validation_loss"], reports[1]["validation_loss"])
    rna = [v for v in reports[0]["reconstruction_rna"] if np.isfinite(v)]  # RNA's phases
    assert rna[-1] < rna[0]
    # only rank 0 writes results and saves
    assert reports[0]["wrote_results"]
    assert not reports[1]["wrote_results"]
    assert (tmp_path / "model" / "model.pt").exists()
    assert all(r["latent_finite"] for r in reports)
