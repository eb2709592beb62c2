import inspect

import numpy as np
import pytest
import torch

import scdcca
from scdcca.model import Phase, build_schedule

from .conftest import KIDNEY_MODALITIES, read

#: The schedule arguments of ``DCCA.train``, whose defaults ``build_schedule`` is called with.
TRAIN_DEFAULTS = {
    name: inspect.signature(scdcca.DCCA.train).parameters[name].default
    for name in ("schedule", "n_cycles", "first_teacher", "beta1", "beta2")
}


def _schedule(**kwargs) -> list[Phase]:
    return build_schedule(**{**TRAIN_DEFAULTS, **kwargs})


def test_cycle_schedule_follows_the_paper():
    phases = _schedule(schedule="cycle", n_cycles=2)
    assert [p.name for p in phases] == [
        "rna",
        "epi",
        "epi<-rna",
        "rna<-epi",
        "epi<-rna",
        "rna<-epi",
    ]
    assert phases[2].attention_weights == {"epi": 5.0}
    assert phases[3].attention_weights == {"rna": 1.0}
    assert phases[0].attention_weights == {}


def test_first_teacher_and_weights_are_arguments():
    phases = _schedule(schedule="cycle", n_cycles=1, first_teacher="epi", beta1=2.0, beta2=3.0)
    assert [p.name for p in phases] == ["epi", "rna", "rna<-epi", "epi<-rna"]
    assert phases[2].attention_weights == {"rna": 3.0}
    assert phases[3].attention_weights == {"epi": 2.0}


def test_alternating_is_one_phase_with_both_students():
    (phase,) = _schedule(schedule="alternating", beta1=5.0, beta2=1.0)
    assert phase.students == ("rna", "epi")
    assert phase.teacher is None
    assert phase.attention_weights == {"rna": 1.0, "epi": 5.0}


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"schedule": "random"}, "schedule must be"),
        ({"first_teacher": "atac"}, "first_teacher"),
        ({"beta1": -1.0}, "Attention weights"),
        ({"n_cycles": -1}, "n_cycles"),
    ],
)
def test_bad_schedule_arguments(kwargs, message):
    with pytest.raises(ValueError, match=message):
        _schedule(**kwargs)


def test_decoder_phase_updates_only_the_students_decoders():
    mdata = read("scicar_kidney")[:200].copy()
    scdcca.DCCA.setup_mudata(mdata, modalities=KIDNEY_MODALITIES)
    module = scdcca.DCCA(mdata, n_latent=5, n_hidden=16).module
    phase = Phase(students=("epi",), weights=(("epi", 5.0),), decoder_only=True)
    assert phase.name == "epi decoder"
    assert phase.attention_weights == {}  # no transfer: the encoders do not move
    learning = {id(p) for p in phase.parameters(module)}
    for name, parameter in module.named_parameters():
        expected = name.startswith("epi.") and not name.startswith("epi.encoder.")
        assert (id(parameter) in learning) == expected, name


def test_posterior_mean_instead_of_a_sample_while_training():
    mdata = read("scicar_kidney")[:200].copy()
    scdcca.DCCA.setup_mudata(mdata, modalities=KIDNEY_MODALITIES)
    model = scdcca.DCCA(mdata, n_latent=5, n_hidden=16)
    module = model.module.train()
    loader = model._make_data_loader(adata=model.adata, indices=np.arange(64), batch_size=64)
    tensors = next(iter(loader))
    inputs = module._get_inference_input(tensors)
    for modality in ("rna", "epi"):
        sampled = module.inference(**inputs, modalities=(modality,))
        mean = module.inference(**inputs, modalities=(modality,), sample=False)
        assert not torch.equal(sampled[f"z_{modality}"], sampled[f"qz_{modality}"].loc)
        assert torch.equal(mean[f"z_{modality}"], mean[f"qz_{modality}"].loc)


def test_plan_optimises_the_students_with_fused_adam_and_a_relative_plateau():
    from scdcca.train import DCCATrainingPlan
    from scdcca.train._phases import only_students_learn

    defaults = {
        name: p.default
        for name, p in inspect.signature(scdcca.DCCA).parameters.items()
        if name != "mdata"
    }
    module = scdcca.model.DCCAModule(30, 40, **defaults)
    phase = _schedule(schedule="cycle")[2]  # the epigenome learns, RNA teaches
    plan = DCCATrainingPlan(
        module,
        phase=phase,
        phase_index=2,
        lr=1e-3,
        lr_patience=5,
        monitor="objective_validation",
        n_epochs_kl_warmup=None,
        n_steps_kl_warmup=None,
    )
    with only_students_learn(module, phase):
        config = plan.configure_optimizers()
    optimizer = config["optimizer"]
    assert isinstance(optimizer, torch.optim.Adam)
    assert optimizer.defaults["fused"]
    learning = {id(p) for group in optimizer.param_groups for p in group["params"]}
    assert learning == {id(p) for p in module.vae("epi").parameters()}
    scheduler = config["lr_scheduler"]["scheduler"]
    assert scheduler.threshold_mode == "rel"
    assert scheduler.threshold == 1e-3
    assert config["lr_scheduler"]["monitor"] == "objective_validation"
    # a relative threshold: an improvement of 0.05 % on a loss of 1000 is not one
    scheduler.step(1000.0)
    for _ in range(6):
        scheduler.step(999.5)
    assert optimizer.param_groups[0]["lr"] < 1e-3


def test_phase_stopped_by_a_callback_is_reported_as_such(caplog):
    """A callback that ends a phase early or before its first epoch is not mistaken for a cap."""
    import logging

    import lightning.pytorch as pl

    class StopSecondFitAtOnce(pl.Callback):
        def __init__(self):
            self.fits = 0

        def on_fit_start(self, trainer, pl_module):
            self.fits += 1
            trainer.should_stop = self.fits == 2

    mdata = read("scicar_kidney")[:200].copy()
    scdcca.DCCA.setup_mudata(mdata, modalities=KIDNEY_MODALITIES)
    model = scdcca.DCCA(mdata, n_latent=5, n_hidden=16)
    lightning = logging.getLogger("lightning.pytorch.utilities.rank_zero")  # does not propagate
    lightning.addHandler(caplog.handler)
    try:
        with caplog.at_level(logging.INFO, logger=lightning.name):
            model.train(
                schedule="cycle",
                n_cycles=0,
                max_epochs_per_phase=2,
                callbacks=[StopSecondFitAtOnce()],
                enable_progress_bar=False,
            )
    finally:
        lightning.removeHandler(caplog.handler)
    ended = [r.getMessage() for r in caplog.records if r.getMessage().startswith("DCCA phase")]
    assert len(ended) == 3  # rna alone, epi alone (stopped at once), the decoder refinement
    assert "max_epochs_per_phase=2 reached" in ended[0]
    assert "(epi) was stopped before its first epoch ended" in ended[1]
    phases = model.history["phases"]
    assert list(phases["phase"]) == [0, 2]
    assert list(phases["epochs"]) == [2, 2]
