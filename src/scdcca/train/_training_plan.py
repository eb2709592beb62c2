"""Lightning training plan for one phase of DCCA's teacher/student schedule.

A phase names the student VAE(s), the frozen teacher and the attention weight. Everything
else comes from scvi-tools and Lightning: KL warm-up from :class:`scvi.train.TrainingPlan`,
learning-rate decay from :class:`torch.optim.lr_scheduler.ReduceLROnPlateau`, and early
stopping, best-weight restore and logging from Lightning callbacks (see
:mod:`scdcca.train._callbacks`); :meth:`scdcca.DCCA.train` runs one fit per phase.
"""

from __future__ import annotations

from functools import partial

import torch
from scvi.train import TrainingPlan
from torchmetrics import MeanMetric

from scdcca.module import DCCAModule, attention_distance, other_modality

from ._schedule import Phase

#: The monitored metric: the students' loss with the KL weight at 1, on held-out cells.
MONITOR = "objective_validation"
#: The same on the training cells, monitored when no cell is held out.
MONITOR_TRAIN = "objective_train"
#: Epochs over which the KL weight of a VAE rises from 0 to 1 by default.
KL_WARMUP_EPOCHS = 10


def fused_adam(params, **kwargs) -> torch.optim.Adam:
    """:class:`torch.optim.Adam` over ``params`` with its fused (one kernel per step) update."""
    return torch.optim.Adam(params, fused=True, **kwargs)


class TrainingDivergedError(FloatingPointError):
    """Raised when a loss becomes NaN or infinite; the model keeps the phase's best weights."""


class DCCATrainingPlan(TrainingPlan):
    """Train the student VAE(s) of one phase, each pulled towards its teacher's latent.

    Parameters
    ----------
    module
        The DCCA module.
    phase
        The phase (:class:`~scdcca.train.Phase`): students, frozen teacher and weights.
    phase_index
        Position of the phase in the schedule (for messages).
    lr
        Adam learning rate.
    lr_factor, lr_patience, lr_threshold
        :class:`~torch.optim.lr_scheduler.ReduceLROnPlateau` on ``monitor``: the learning
        rate is multiplied by ``lr_factor`` after ``lr_patience`` epochs without a relative
        improvement larger than ``lr_threshold``.
    monitor
        Logged metric the learning-rate schedule follows (``"objective_validation"``, or
        ``"objective_train"`` when no cell is held out).
    weight_decay, eps
        Adam settings. ``eps`` is PyTorch's default, not scvi-tools' 0.01: with binary
        epigenome input most first-layer weights see a gradient in a few cells per epoch, and
        a large ``eps`` all but freezes them.
    n_epochs_kl_warmup, n_steps_kl_warmup
        KL warm-up as in :class:`scvi.train.TrainingPlan` (epochs take precedence; with
        ``min_kl_weight`` a warm-up continues where an earlier phase left it).
    **kwargs
        Further arguments of :class:`scvi.train.TrainingPlan`.
    """

    def __init__(
        self,
        module: DCCAModule,
        *,
        phase: Phase,
        phase_index: int,
        lr: float,
        lr_patience: int,
        monitor: str,
        n_epochs_kl_warmup: int | None,
        n_steps_kl_warmup: int | None,
        lr_factor: float = 0.1,
        lr_threshold: float = 1e-3,
        weight_decay: float = 1e-6,
        eps: float = 1e-8,
        **kwargs,
    ):
        super().__init__(
            module,
            optimizer="Custom",
            optimizer_creator=partial(fused_adam, lr=lr, eps=eps, weight_decay=weight_decay),
            lr=lr,
            weight_decay=weight_decay,
            eps=eps,
            n_epochs_kl_warmup=n_epochs_kl_warmup,
            n_steps_kl_warmup=n_steps_kl_warmup,
            reduce_lr_on_plateau=True,
            lr_factor=lr_factor,
            lr_patience=lr_patience,
            lr_threshold=lr_threshold,
            lr_scheduler_metric=monitor,
            **kwargs,
        )
        self.phase = phase
        self.phase_index = phase_index
        #: epoch means of the training metrics, logged once per epoch (``self.log`` per step
        #: costs more than a small minibatch's arithmetic)
        self.train_means = torch.nn.ModuleDict()

    def configure_optimizers(self):
        """scvi-tools' optimiser set-up, with fused Adam and a relative plateau threshold.

        The optimiser comes from ``optimizer_creator`` over the weights that learn in the
        phase (the others have ``requires_grad`` off); the learning rate decays once the
        monitored loss has not improved by ``lr_threshold`` of its best value, as losses of
        different data sets differ in scale.
        """
        config = super().configure_optimizers()
        config["lr_scheduler"]["scheduler"].threshold_mode = "rel"
        return config

    def _teacher_latents(self, batch: dict) -> dict | None:
        """The frozen teacher's posterior means, one entry per student (``None``: no teacher)."""
        teacher = self.phase.teacher
        if teacher is None:
            return None
        vae = self.module.vae(teacher)
        was_training = vae.training
        vae.eval()
        with torch.no_grad():
            z_teacher = self.module.posterior_mean(teacher, batch)
        vae.train(was_training)
        return dict.fromkeys(self.phase.students, z_teacher)

    def _loss(self, batch: dict, teacher_latents: dict | None, kl_weight: float):
        return self.module(
            batch,
            inference_kwargs={
                "modalities": self.phase.students,
                "sample": not self.phase.decoder_only,
            },
            loss_kwargs={
                "kl_weight": kl_weight,
                "attention_weights": self.phase.attention_weights,
                "teacher_latents": teacher_latents,
            },
        )

    def _log_metrics(self, output, mode: str) -> None:
        n_obs = output.n_obs_minibatch
        sync = self.use_sync_dist
        for key, value in output.extra_metrics.items():
            self.log(
                f"{key}_{mode}",
                value,
                on_step=False,
                on_epoch=True,
                batch_size=n_obs,
                sync_dist=sync,
            )

    def training_step(self, batch, batch_idx):
        """One update of the students on a minibatch."""
        kl_weight = self.kl_weight
        _, _, output = self._loss(batch, self._teacher_latents(batch), kl_weight)
        if not torch.isfinite(output.loss):
            raise TrainingDivergedError(
                f"The loss became {float(output.loss)} in phase {self.phase_index} "
                f"({self.phase.name}), epoch {self.current_epoch} of that phase. The model "
                "keeps the phase's best (or starting) weights. Check the input for extreme "
                "values, or lower `lr`."
            )
        values = {"train_loss": output.loss.detach()}
        values.update({f"{key}_train": value for key, value in output.extra_metrics.items()})
        for name, value in values.items():
            if name not in self.train_means:
                self.train_means[name] = MeanMetric().to(value.device)
            self.train_means[name].update(value, output.n_obs_minibatch)
        if batch_idx == self.trainer.num_training_batches - 1:  # Lightning computes, syncs, resets
            for name in values:
                metric = self.train_means[name]
                self.log(name, metric, on_step=False, on_epoch=True, prog_bar=name == "train_loss")
            # the warm-up only rises: the epoch's largest weight is that of its last step
            self.log("kl_weight", kl_weight, on_step=False, on_epoch=True)
        return output.loss

    def validation_step(self, batch, batch_idx):
        """Students' loss on held-out cells, and the distance between the two latents."""
        inference, _, output = self._loss(batch, self._teacher_latents(batch), self.kl_weight)
        n_obs = output.n_obs_minibatch
        self.log(
            "validation_loss",
            output.loss,
            on_step=False,
            on_epoch=True,
            prog_bar=True,
            batch_size=n_obs,
            sync_dist=self.use_sync_dist,
        )
        self._log_metrics(output, "validation")
        student = self.phase.students[0]
        z = {student: inference[f"z_{student}"]}
        partner = other_modality(student)
        z[partner] = inference.get(f"z_{partner}")
        if z[partner] is None:
            z[partner] = self.module.posterior_mean(partner, batch)
        # in evaluation mode z is the posterior mean, which attention transfer pulls together
        self.log(
            "attention_distance_validation",
            attention_distance(z["rna"], z["epi"]).mean(),
            on_step=False,
            on_epoch=True,
            batch_size=n_obs,
            sync_dist=self.use_sync_dist,
        )
