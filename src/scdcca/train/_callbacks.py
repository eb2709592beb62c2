"""Lightning callbacks of a DCCA phase: best-weight restore and the epoch history."""

from __future__ import annotations

import copy
import math
from types import MappingProxyType

import lightning.pytorch as pl

#: Logged metrics copied into each epoch's history row, by row column.
_RECORDED = MappingProxyType(
    {
        "train_loss": "train_loss",
        "validation_loss": "validation_loss",
        "reconstruction_rna": "reconstruction_rna_{split}",
        "reconstruction_epi": "reconstruction_epi_{split}",
        "kl_rna": "kl_rna_{split}",
        "kl_epi": "kl_epi_{split}",
        "attention_distance": "attention_distance_validation",
    }
)


def _metric(trainer: pl.Trainer, name: str) -> float:
    value = trainer.callback_metrics.get(name)
    return math.nan if value is None else float(value)


class BestWeights(pl.Callback):
    """Keep the students' weights of the epoch with the lowest ``monitor``.

    They are put back when the fit ends, also on an error, a divergence or Ctrl+C. Until an
    epoch has ended the weights from before the fit are kept.
    """

    def __init__(self, monitor: str, students: tuple[str, ...]):
        self.monitor = monitor
        self.students = students
        self.best = math.inf
        self.best_epoch: int | None = None
        self._state: dict | None = None

    def _snapshot(self, pl_module) -> dict:
        module = pl_module.module
        return {m: copy.deepcopy(module.vae(m).state_dict()) for m in self.students}

    def _restore(self, pl_module) -> None:
        if self._state is not None:
            for modality, state in self._state.items():
                pl_module.module.vae(modality).load_state_dict(state)

    def on_fit_start(self, trainer, pl_module) -> None:
        self._state = self._snapshot(pl_module)

    def on_train_epoch_end(self, trainer, pl_module) -> None:
        value = _metric(trainer, self.monitor)
        if value < self.best or self.best_epoch is None:
            self.best, self.best_epoch = value, trainer.current_epoch
            self._state = self._snapshot(pl_module)

    def on_fit_end(self, trainer, pl_module) -> None:
        self._restore(pl_module)

    def on_exception(self, trainer, pl_module, exception: BaseException) -> None:
        self._restore(pl_module)


class EpochHistory(pl.Callback):
    """Append one row per epoch of a phase to ``records`` (losses, KL weight, learning rate).

    ``epoch`` counts over all phases of the training (``records`` is shared between them);
    ``phase_epoch`` restarts at 0 in each phase.
    """

    def __init__(self, records: list[dict], phase_index: int, phase_name: str, split: str):
        self.records = records
        self.phase_index = phase_index
        self.phase_name = phase_name
        self.split = split

    def on_train_epoch_end(self, trainer, pl_module) -> None:
        optimizer = trainer.optimizers[0]
        row = {
            "epoch": len(self.records),
            "phase": self.phase_index,
            "phase_name": self.phase_name,
            "phase_epoch": trainer.current_epoch,
            "lr": float(optimizer.param_groups[0]["lr"]),
            "kl_weight": _metric(trainer, "kl_weight"),
        }
        for column, name in _RECORDED.items():
            row[column] = _metric(trainer, name.format(split=self.split))
        self.records.append(row)
