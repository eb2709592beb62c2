"""One method fit as the worker hands it to a method: data, task, seed, split, caps, clock."""

from __future__ import annotations

import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import mudata
import numpy as np
from scipy import sparse

from _data import BATCH
from _provenance import combined, stop_recorder

Arrays = dict[str, np.ndarray]


class Clock:
    """Accumulates the wall time of the blocks run under :meth:`fit`."""

    def __init__(self) -> None:
        self.seconds = 0.0

    @contextmanager
    def fit(self):
        """Time one block."""
        start = time.perf_counter()
        try:
            yield
        finally:
            self.seconds += time.perf_counter() - start


@dataclass
class Job:
    """One method fit: data, task, seed, split and caps.

    ``options`` holds method-specific settings from the command line (scglue:
    ``gene_table``, the ``--gene-table`` file or ``None``, and ``gene_dir``, the folder searched
    for one).
    """

    mdata: mudata.MuData
    task: str
    seed: int
    train: np.ndarray
    test: np.ndarray
    has_batch: bool
    binarize: bool
    max_epochs: int | None
    max_time_min: float | None
    workdir: Path
    options: dict = field(default_factory=dict)
    clock: Clock = field(default_factory=Clock)
    info: dict = field(default_factory=dict)
    stops: list[str] = field(default_factory=list)

    @property
    def batch_key(self) -> str | None:
        """Batch column of ``.obs`` or ``None``."""
        return BATCH if self.has_batch else None

    def trainer_kwargs(self) -> dict:
        """Lightning/scvi-tools keyword arguments shared by the deep models.

        No ``max_time`` unless ``max_time_min`` is set (and above 0). A callback records why
        each Lightning fit ended into :attr:`stops` (see :meth:`record_stops`).
        """
        kwargs: dict = {"enable_progress_bar": False, "callbacks": [stop_recorder(self.stops)]}
        if self.max_time_min:
            kwargs["max_time"] = {"minutes": float(self.max_time_min)}
        return kwargs

    def record_stops(self) -> None:
        """``info["stopped_by"]`` from the reasons recorded over all of this job's fits."""
        self.info["stopped_by"] = combined(self.stops) or "unknown"

    def counts(self, modality: str) -> sparse.csr_matrix:
        """Counts (RNA) or calls (epigenome) of all cells."""
        return sparse.csr_matrix(self.mdata[modality].X, dtype=np.float32)
