"""What :meth:`scdcca.DCCA.train` sets up around the Lightning fit of each phase."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from scdcca.module import DCCAModule

from ._callbacks import BestWeights
from ._schedule import Phase
from ._training_plan import KL_WARMUP_EPOCHS


@contextmanager
def only_students_learn(module: DCCAModule, phase: Phase) -> Iterator[None]:
    """Freeze what the phase does not train (``requires_grad`` off) for the ``with`` block.

    A frozen teacher gets no gradient, and distributed training (DDP) sees only the weights
    that learn in the phase. In a decoder-only phase the students' encoders are frozen too
    and put in evaluation mode, so the decoders read deterministic posterior means.
    """
    learning = {id(p) for p in phase.parameters(module)}
    frozen = [p for p in module.parameters() if p.requires_grad and id(p) not in learning]
    encoders = [module.vae(m).encoder for m in phase.students] if phase.decoder_only else []
    modes = [encoder.training for encoder in encoders]
    for parameter in frozen:
        parameter.requires_grad_(False)
    for encoder in encoders:
        encoder.eval()
    try:
        yield
    finally:
        for parameter in frozen:
            parameter.requires_grad_(True)
        for encoder, mode in zip(encoders, modes, strict=True):
            encoder.train(mode)


def phase_plan_kwargs(plan_kwargs: dict | None, done_epochs: int, done_steps: int) -> dict:
    """The training plan's arguments for a phase, given how long its students trained.

    The KL warm-up of a VAE runs once over its whole training: a student that already
    trained ``done_epochs`` epochs (``done_steps`` minibatches) starts the phase at the KL
    weight it had reached and rises from there, through scvi-tools' ``min_kl_weight``. As in
    scvi-tools, a warm-up in epochs takes precedence over one in steps; a user who sets only
    ``n_steps_kl_warmup`` gets the warm-up counted in steps.
    """
    kwargs = dict(plan_kwargs or {})
    default = None if "n_steps_kl_warmup" in kwargs else KL_WARMUP_EPOCHS
    epochs = kwargs.pop("n_epochs_kl_warmup", default)
    steps = kwargs.pop("n_steps_kl_warmup", None)
    length, done = (epochs, done_epochs) if epochs else (steps, done_steps)
    if not length or done >= length:
        kwargs.update(n_epochs_kl_warmup=None, n_steps_kl_warmup=None)
        return kwargs
    kwargs["min_kl_weight"] = done / length
    key = "n_epochs_kl_warmup" if epochs else "n_steps_kl_warmup"
    other = "n_steps_kl_warmup" if epochs else "n_epochs_kl_warmup"
    kwargs.update({key: length - done, other: None})
    return kwargs


def phase_record(index: int, phase: Phase, best: BestWeights, epochs: list[dict]) -> dict:
    """Summary of a phase that trained at least one epoch (``completed`` set by the caller)."""
    rows = [row for row in epochs if row["phase"] == index]
    return {
        "phase": index,
        **phase.as_record(),
        "epochs": len(rows),
        "best_epoch": best.best_epoch,
        "best_loss": best.best,
        "lr_decayed": rows[-1]["lr"] < rows[0]["lr"],
        "attention_distance": rows[-1]["attention_distance"],
        "completed": False,
    }
