"""Shared fixtures: real paired datasets from ../shared/data and small trained models."""

from __future__ import annotations

import warnings
from pathlib import Path

import mudata
import pytest
import scvi

import scdcca

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
KIDNEY_MODALITIES = {"rna_layer": "rna", "epi_layer": "atac"}

warnings.filterwarnings("ignore", category=FutureWarning)
# a fixed number of threads: trainings compared within a test use the same arithmetic
scvi.settings.num_threads = 2


def read(name: str) -> mudata.MuData:
    path = DATA / f"{name}.h5mu"
    if not path.exists():
        pytest.skip(f"{path} is not available")
    return mudata.read_h5mu(path)


@pytest.fixture
def kidney() -> mudata.MuData:
    """A fresh copy of sci-CAR kidney for each test."""
    return read("scicar_kidney")


@pytest.fixture(scope="session")
def trained_kidney() -> tuple[scdcca.DCCA, mudata.MuData]:
    """DCCA briefly trained with the paper's cycle schedule on sci-CAR kidney (shared)."""
    scvi.settings.seed = 0
    mdata = read("scicar_kidney")
    scdcca.DCCA.setup_mudata(mdata, modalities=KIDNEY_MODALITIES)
    model = scdcca.DCCA(mdata)
    model.train(schedule="cycle", max_epochs_per_phase=8, enable_progress_bar=False)
    return model, mdata


def pytest_configure(config: pytest.Config) -> None:
    """Register the marker of tests that each hand DCCA one kind of bad input."""
    config.addinivalue_line(
        "markers", "bad_input: hands DCCA one kind of bad input (counted in the summary)"
    )


def pytest_terminal_summary(terminalreporter) -> None:
    """Print how many bad inputs were covered (tests marked ``bad_input`` that passed)."""
    passed = terminalreporter.stats.get("passed", [])
    covered = [r for r in passed if r.when == "call" and "bad_input" in r.keywords]
    if covered:
        terminalreporter.write_line(
            f"bad inputs covered: {len(covered)} (each refused with a clear message naming the "
            "modality and the fix, or handled as documented)"
        )
