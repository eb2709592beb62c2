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
        self._start: float | None = None

    @contextmanager
    def fit(self):
        """Time one block."""
        self._start = time.perf_counter()
        try:
            yield
        finally:
            self.seconds += time.perf_counter() - self._start
            self._start = None

    def elapsed(self) -> float:
        """Seconds timed so far, the block running now included."""
        running = 0.0 if self._start is None else time.perf_counter() - self._start
        return self.seconds + running


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

    def trainer_kwargs(self, share: float = 1.0) -> dict:
        """Lightning/scvi-tools keyword arguments shared by the deep models.

        A callback records why each Lightning fit ended into :attr:`stops` (see
        :meth:`record_stops`). With ``max_time_min`` (above 0) a :func:`budget_timer` stops
        each fit once the job's fits together have trained that long, or once the fit has
        used ``share`` of that budget.
        """
        kwargs: dict = {"enable_progress_bar": False, "callbacks": [stop_recorder(self.stops)]}
        if self.max_time_min:
            kwargs["callbacks"].append(budget_timer(self, share))
        return kwargs

    def seconds_left(self) -> float | None:
        """What is left of ``max_time_min`` after the job's training so far (``None``: no cap)."""
        if not self.max_time_min:
            return None
        return max(60.0 * self.max_time_min - self.clock.elapsed(), 0.0)

    def record_stops(self) -> None:
        """``info["stopped_by"]`` from the reasons recorded over all of this job's fits."""
        self.info["stopped_by"] = combined(self.stops) or "unknown"

    def counts(self, modality: str) -> sparse.csr_matrix:
        """Counts (RNA) or calls (epigenome) of all cells."""
        return sparse.csr_matrix(self.mdata[modality].X, dtype=np.float32)


def budget_timer(job: Job, share: float = 1.0):
    """Lightning's ``Timer``, checked after every step, over what is left of the job's budget.

    One budget covers every fit of a job (DCCA's phases, scVI then PeakVI): each fit may use
    what the job's earlier fits left (at most ``share`` of the budget), and stops on the first
    step past it (a fit that starts with nothing left trains one step). Its ``stopped_by`` is
    ``max_time``, as for Lightning's own ``max_time``.
    """
    from datetime import timedelta

    from lightning.pytorch.callbacks import Timer
    from lightning.pytorch.trainer.states import RunningStage

    class BudgetTimer(Timer):
        def on_fit_start(self, trainer, *args, **kwargs) -> None:
            # each fit (the same callback serves all of a job's fits) times from its own
            # start over what is left; the first check comes after its first step
            self._duration = min(job.seconds_left(), share * 60.0 * job.max_time_min)
            self._end_time[RunningStage.TRAINING] = None

    return BudgetTimer(duration=timedelta(minutes=job.max_time_min), interval="step")
