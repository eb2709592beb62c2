"""Lightning training plan that runs DCCA's teacher/student schedule.

Manual optimisation with one Adam optimiser per VAE. Each phase trains its student VAE(s)
with KL warm-up (the first time a VAE is trained), early stopping on the validation loss,
one 10x learning-rate decay on the first plateau, and a return to the best weights when the
phase ends. A frozen teacher is run in evaluation mode without gradients.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Sequence

import torch
from lightning.pytorch.utilities import rank_zero_info
from scvi.train import TrainingPlan

from scdcca._constants import MODALITIES

from ._module import DCCAModule, attention_distance
from ._schedule import Phase

_SUMMED = (
    "loss",
    "reconstruction_rna",
    "reconstruction_epi",
    "kl_rna",
    "kl_epi",
    "attention_distance",
)


def _fast_adam_options() -> dict:
    """Fused Adam (one kernel per step instead of one per parameter and operation)."""
    return {"fused": True}


class TrainingDivergedError(FloatingPointError):
    """Raised when a loss becomes NaN or infinite; the model keeps the phase's best weights."""


class DCCATrainingPlan(TrainingPlan):
    """Train the two VAEs of :class:`~scdcca.model.DCCAModule` through a list of phases.

    Parameters
    ----------
    module
        The DCCA module.
    phases
        Phases from :func:`~scdcca.model.build_schedule`.
    max_epochs_per_phase
        Upper bound on the epochs of each phase.
    lr
        Adam learning rate at the start of each phase.
    lr_decay
        Factor applied to the learning rate once, at the first plateau of a phase.
    patience
        Epochs without relative improvement larger than ``min_relative_improvement`` before
        the learning rate decays (first time) or the phase ends (second time).
    min_relative_improvement
        Smallest relative drop of the monitored loss that counts as improvement.
    n_epochs_kl_warmup
        Epochs over which the KL weight rises linearly to 1, the first time a VAE trains.
    n_steps_kl_warmup
        Optimiser steps (minibatches) over which the KL weight rises linearly to 1, the
        first time a VAE trains. Takes precedence over ``n_epochs_kl_warmup`` when set.
    weight_decay, eps
        Adam settings. ``eps`` is PyTorch's default, not scvi-tools' 0.01: with binary
        epigenome input most first-layer weights see a gradient in a few cells per epoch, and
        a large ``eps`` all but freezes them.
    """

    def __init__(
        self,
        module: DCCAModule,
        *,
        phases: Sequence[Phase],
        max_epochs_per_phase: int = 200,
        lr: float = 1e-3,
        lr_decay: float = 0.1,
        patience: int = 5,
        min_relative_improvement: float = 1e-3,
        n_epochs_kl_warmup: int | None = 10,
        n_steps_kl_warmup: int | None = None,
        weight_decay: float = 1e-6,
        eps: float = 1e-8,
    ):
        super().__init__(
            module,
            lr=lr,
            weight_decay=weight_decay,
            eps=eps,
            n_epochs_kl_warmup=n_epochs_kl_warmup,
            n_steps_kl_warmup=n_steps_kl_warmup,
        )
        if not phases:
            raise ValueError("The schedule has no phase to train.")
        self.automatic_optimization = False
        self.phases = list(phases)
        self.max_epochs_per_phase = int(max_epochs_per_phase)
        self.lr_decay = lr_decay
        self.patience = patience
        self.min_relative_improvement = min_relative_improvement
        self.phase_index = 0
        self.epoch_records: list[dict] = []
        self.phase_records: list[dict] = []
        self._vae_epochs = dict.fromkeys(MODALITIES, 0)
        self._vae_steps = dict.fromkeys(MODALITIES, 0)
        self._start_phase()

    # ----------------------------------------------------------------- phase state
    @property
    def phase(self) -> Phase:
        """The phase being trained."""
        return self.phases[min(self.phase_index, len(self.phases) - 1)]

    @property
    def finished(self) -> bool:
        """Whether every phase has ended."""
        return self.phase_index >= len(self.phases)

    def _start_phase(self) -> None:
        self._phase_epoch = 0
        self._best_loss = math.inf
        self._best_state: dict | None = self._students_state()  # restorable from the start
        self._bad_epochs = 0
        self._lr_decayed = False
        self._current_lr = self.lr
        self._reset_sums()
        if self._trainer is not None:
            for optimizer in self._optimizers_by_modality().values():
                optimizer.optimizer.state.clear()
                self._set_lr(optimizer, self.lr)

    def _reset_sums(self) -> None:
        self._sums = {
            split: dict.fromkeys((*_SUMMED, "n"), 0.0) for split in ("train", "validation")
        }

    def kl_weight_for(self, modality: str) -> float:
        """KL weight of a VAE: linear warm-up over its first steps (or epochs) of training."""
        if self.n_steps_kl_warmup:
            return min(1.0, (self._vae_steps[modality] + 1) / self.n_steps_kl_warmup)
        if not self.n_epochs_kl_warmup:
            return 1.0
        return min(1.0, (self._vae_epochs[modality] + 1) / self.n_epochs_kl_warmup)

    @property
    def current_kl_weight(self) -> float:
        """KL weight used for the current phase's students."""
        return min(self.kl_weight_for(m) for m in self.phase.students)

    # ----------------------------------------------------------------- optimisers
    def configure_optimizers(self):
        """One Adam optimiser per VAE, in the order ``rna``, ``epi``."""
        return [
            torch.optim.Adam(
                self.module.vae(m).parameters(),
                lr=self.lr,
                eps=self.eps,
                weight_decay=self.weight_decay,
                **_fast_adam_options(),
            )
            for m in MODALITIES
        ]

    def _optimizers_by_modality(self) -> dict:
        optimizers = self.optimizers()
        if not isinstance(optimizers, list):
            optimizers = [optimizers]
        return dict(zip(MODALITIES, optimizers, strict=True))

    @staticmethod
    def _set_lr(optimizer, lr: float) -> None:
        for group in optimizer.param_groups:
            group["lr"] = lr

    # ----------------------------------------------------------------- steps
    def _phase_loss(self, batch: dict, teacher_latents: dict | None = None):
        """Forward the students (both modalities outside training); inference and loss."""
        phase = self.phase
        modalities = MODALITIES if not self.training else phase.students
        inference, _, output = self.module(
            batch,
            inference_kwargs={"modalities": modalities},
            loss_kwargs={
                "kl_weight": self.current_kl_weight,
                "attention_weights": phase.attention_weights,
                "teacher_latents": teacher_latents,
            },
        )
        return inference, output

    def _teacher_latents(self, batch: dict) -> dict | None:
        teacher = self.phase.teacher
        if teacher is None:
            return None
        teacher_vae = self.module.vae(teacher)
        was_training = teacher_vae.training
        teacher_vae.eval()
        with torch.no_grad():
            z_teacher = self.module.posterior_mean(teacher, batch)
        teacher_vae.train(was_training)
        return dict.fromkeys(self.phase.students, z_teacher)

    def _accumulate(self, split: str, output, n_obs: int, student_loss: torch.Tensor) -> None:
        sums = self._sums[split]
        sums["n"] += n_obs
        sums["loss"] += float(student_loss) * n_obs
        for modality, rec in output.reconstruction_loss.items():
            sums[f"reconstruction_{modality}"] += float(rec.detach().sum())
            sums[f"kl_{modality}"] += float(output.kl_local[modality].detach().sum())

    def training_step(self, batch, batch_idx):
        """Update the students of the current phase on one minibatch."""
        if self.finished:
            return None
        optimizers = self._optimizers_by_modality()
        _, output = self._phase_loss(batch, self._teacher_latents(batch))
        if not torch.isfinite(output.loss):
            raise TrainingDivergedError(
                f"The loss became {float(output.loss)} in phase {self.phase_index} "
                f"({self.phase.name}), epoch {self._phase_epoch} of that phase. The model keeps "
                "the phase's best (or starting) weights. Check the input for extreme values, or "
                "lower `lr`."
            )
        for modality in self.phase.students:
            optimizers[modality].zero_grad(set_to_none=True)
        self.manual_backward(output.loss)
        for modality in self.phase.students:
            optimizers[modality].step()
            self._vae_steps[modality] += 1
        n_obs = output.n_obs_minibatch
        self._accumulate("train", output, n_obs, output.loss.detach())
        return output.loss.detach()

    def validation_step(self, batch, batch_idx):
        """Students' loss on held-out cells, plus both reconstructions and their distance."""
        if self.finished:
            return
        inference, output = self._phase_loss(batch)
        phase = self.phase
        student_loss = sum(
            output.reconstruction_loss[m].mean()
            + self.current_kl_weight * output.kl_local[m].mean()
            + phase.attention_weights.get(m, 0.0) * output.extra_metrics.get(f"attention_{m}", 0.0)
            for m in phase.students
        )
        n_obs = output.n_obs_minibatch
        self._accumulate("validation", output, n_obs, student_loss)
        # in evaluation mode z is the posterior mean, which attention transfer pulls together
        distance = attention_distance(inference["z_rna"], inference["z_epi"])
        self._sums["validation"]["attention_distance"] += float(distance.sum())

    # ----------------------------------------------------------------- epoch end
    def _reduced_means(self, split: str) -> dict[str, float]:
        sums = self._sums[split]
        values = torch.tensor([sums[k] for k in (*_SUMMED, "n")], dtype=torch.float64)
        if self.trainer.world_size > 1:
            values = self.trainer.strategy.reduce(values.to(self.device), reduce_op="sum").cpu()
        n = float(values[-1])
        if n == 0:
            return {}
        return {k: float(v) / n for k, v in zip(_SUMMED, values[:-1], strict=True)}

    def on_train_epoch_end(self) -> None:
        """Record the epoch, then decide on learning-rate decay and the end of the phase."""
        if self.finished:
            self.trainer.should_stop = True
            return
        phase = self.phase
        train = self._reduced_means("train")
        validation = self._reduced_means("validation")
        monitored = validation.get("loss", train.get("loss", math.inf))
        record = {
            "epoch": self.current_epoch,
            "phase": self.phase_index,
            "phase_name": phase.name,
            "phase_epoch": self._phase_epoch,
            "lr": self._current_lr,
            "kl_weight": self.current_kl_weight,
            "train_loss": train.get("loss", math.nan),
            "validation_loss": validation.get("loss", math.nan),
        }
        source = validation or train
        for key in _SUMMED[1:]:
            record[key] = source.get(key, math.nan)
        self.epoch_records.append(record)
        self.log("phase", float(self.phase_index), prog_bar=True)
        self.log("train_loss", record["train_loss"], prog_bar=True)
        if validation:
            self.log("validation_loss", record["validation_loss"], prog_bar=True)

        warmed_up = self.current_kl_weight >= 1.0
        for modality in phase.students:
            self._vae_epochs[modality] += 1
        self._phase_epoch += 1
        self._reset_sums()
        self._update_early_stopping(monitored, warmed_up)

    def _update_early_stopping(self, monitored: float, warmed_up: bool) -> None:
        improved = monitored < self._best_loss - self.min_relative_improvement * abs(
            self._best_loss if math.isfinite(self._best_loss) else monitored
        )
        if not warmed_up or improved:
            # during KL warm-up losses are not comparable across epochs: keep the latest
            self._best_loss = monitored
            self._best_state = self._students_state()
            self._bad_epochs = 0
        else:
            self._bad_epochs += 1
        end = None
        if self._phase_epoch >= self.max_epochs_per_phase:
            end = f"max_epochs_per_phase={self.max_epochs_per_phase} reached"
        if self._bad_epochs >= self.patience:
            if self._lr_decayed or self.lr_decay >= 1.0:
                end = f"the loss stopped improving ({self.patience} epochs without improvement" + (
                    " after the learning-rate decay)" if self._lr_decayed else ")"
                )
            else:
                self._lr_decayed = True
                self._bad_epochs = 0
                self._current_lr = self.lr * self.lr_decay
                self._restore_best()
                for modality in self.phase.students:
                    self._set_lr(self._optimizers_by_modality()[modality], self._current_lr)
        if end:
            self._end_phase(end)

    def _students_state(self) -> dict:
        return {m: copy.deepcopy(self.module.vae(m).state_dict()) for m in self.phase.students}

    def _restore_best(self) -> None:
        if self._best_state is None:
            return
        for modality, state in self._best_state.items():
            self.module.vae(modality).load_state_dict(state)

    def _record_phase(self, completed: bool) -> None:
        phase_epochs = [r for r in self.epoch_records if r["phase"] == self.phase_index]
        last = phase_epochs[-1] if phase_epochs else {}
        self.phase_records.append(
            {
                "phase": self.phase_index,
                **self.phase.as_record(),
                "epochs": self._phase_epoch,
                "best_loss": self._best_loss,
                "lr_decayed": self._lr_decayed,
                "attention_distance": last.get("attention_distance", math.nan),
                "completed": completed,
            }
        )

    def _end_phase(self, reason: str) -> None:
        self._restore_best()
        self._record_phase(completed=True)
        rank_zero_info(
            f"DCCA phase {self.phase_index + 1}/{len(self.phases)} ({self.phase.name}) ended "
            f"after {self._phase_epoch} epochs: {reason}; its best weights are kept."
        )
        self.phase_index += 1
        if self.finished:
            self.trainer.should_stop = True
        else:
            self._start_phase()

    def on_exception(self, exception: BaseException) -> None:
        """On interruption or divergence, go back to the best weights of the current phase.

        A phase that trained for at least one epoch is recorded with ``completed=False``.
        """
        if not self.finished:
            self._restore_best()
            if self._phase_epoch > 0:
                self._record_phase(completed=False)
