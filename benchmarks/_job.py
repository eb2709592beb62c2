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
    for one). ``checkpoint``: path stem under which resumable fits keep their training state
    (``--checkpoints``; see :meth:`trainer_kwargs`), ``None`` for none.
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
    checkpoint: str | None = None
    clock: Clock = field(default_factory=Clock)
    info: dict = field(default_factory=dict)
    stops: list[str] = field(default_factory=list)
    fit_epochs: list[int] = field(default_factory=list)

    @property
    def batch_key(self) -> str | None:
        """Batch column of ``.obs`` or ``None``."""
        return BATCH if self.has_batch else None

    def trainer_kwargs(self, share: float = 1.0, resumable: bool = False) -> dict:
        """Lightning/scvi-tools keyword arguments shared by the deep models.

        A callback records why each Lightning fit ended into :attr:`stops` (see
        :meth:`record_stops`) and its epochs into :attr:`fit_epochs`. With ``max_time_min``
        (above 0) a :func:`budget_timer` stops each fit once the job's fits together have
        trained that long, or once the fit has used ``share`` of that budget. A
        ``resumable`` fit (one whose ``train`` passes ``ckpt_path`` to Lightning, as
        scvi-tools' do) of a job with a :attr:`checkpoint` keeps its training state there
        (see :func:`epoch_checkpoint`) and resumes from it when an earlier process left one.
        """
        recorder = stop_recorder(self.stops, self.fit_epochs)
        kwargs: dict = {"enable_progress_bar": False, "callbacks": [recorder]}
        if self.max_time_min:
            kwargs["callbacks"].append(budget_timer(self, share))
        if resumable and self.checkpoint:
            path = Path(f"{self.checkpoint}_fit{len(self.stops)}.ckpt")
            kwargs["callbacks"].append(epoch_checkpoint(self, path))
            if path.exists():
                kwargs["ckpt_path"] = str(path)
                print(f"resuming from {path}", flush=True)
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


def epoch_checkpoint(job: Job, path: Path):
    """A Lightning callback that keeps a fit's whole training state in ``path``.

    After every training epoch, once early stopping has checked it, the trainer's checkpoint
    (weights, optimiser, learning-rate schedule, the callbacks' counters, the epoch) replaces
    ``path`` atomically, so a process killed at any point leaves the last finished epoch. A
    fit started with ``ckpt_path=path`` continues from that epoch under the same stopping
    rules, and the training seconds of the earlier processes are added to ``job.clock``.
    When the fit ends its state is removed: a job run again after that trains the fit anew.
    Only the random draws (minibatch order, dropout, sampling) of the epochs after a
    resumption differ from those of an uninterrupted fit.

    Lightning runs the end-of-epoch hooks of its checkpoint and early-stopping callbacks
    after all others, so the saver is a ``Checkpoint``; scvi-tools' trainers refuse one
    among their callbacks (``enable_checkpointing=False``), so the returned callback only
    adds the saver to the trainer when the fit is set up.
    """
    from lightning.pytorch.callbacks import Callback, Checkpoint

    class EpochCheckpoint(Checkpoint):
        def __init__(self) -> None:
            self.carried, self.start = 0.0, None

        def on_fit_start(self, trainer, pl_module) -> None:
            self.start = job.clock.elapsed()

        def state_dict(self) -> dict:
            return {"fit_s": self.carried + job.clock.elapsed() - self.start}

        def load_state_dict(self, state_dict: dict) -> None:
            self.carried = state_dict["fit_s"]
            job.clock.seconds += self.carried
            if self.start is not None:  # restored after the fit's start: keep it out
                self.start += self.carried

        def on_train_epoch_end(self, trainer, pl_module) -> None:
            partial = path.with_suffix(".partial")
            trainer.save_checkpoint(partial)
            partial.replace(path)

        def on_train_end(self, trainer, pl_module) -> None:
            path.unlink(missing_ok=True)

    class AddSaver(Callback):
        def setup(self, trainer, pl_module, stage: str) -> None:
            if stage == "fit":
                trainer.callbacks.append(EpochCheckpoint())

    return AddSaver()
