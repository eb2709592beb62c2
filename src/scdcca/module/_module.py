"""The DCCA module: two VAEs, one per modality, coupled by attention transfer."""

from __future__ import annotations

from collections.abc import Iterable

import torch
from scvi.module.base import BaseModuleClass, LossOutput, auto_move_data
from torch.distributions import Normal

from scdcca._constants import (
    BATCH_KEY,
    EPI_KEY,
    MODALITIES,
    OBSERVED_KEYS,
    RNA_KEY,
    TENSOR_KEYS,
)

from ._components import (
    RNAVAE,
    EpigenomeVAE,
    EpiLikelihood,
    RegionBernoulli,
    RNALikelihood,
    kl_standard_normal,
    logits_at_depth,
)
from ._precision import HeadPrecision


def other_modality(modality: str) -> str:
    """The partner of ``"rna"`` is ``"epi"`` and the reverse."""
    return "epi" if modality == "rna" else "rna"


def attention_distance(z_student: torch.Tensor, z_teacher: torch.Tensor) -> torch.Tensor:
    """DCCA's attention-transfer distance ``sum_k (z_teacher_k - z_student_k)^2`` per cell."""
    return (z_student - z_teacher).pow(2).sum(-1)


class DCCAModule(BaseModuleClass):
    """Two VAEs with separate latents of the same size, ``z_rna`` and ``z_epi``.

    :class:`scdcca.DCCA` builds it; the architecture arguments (``n_latent``, ``n_hidden``,
    ``n_layers``, ``dropout_rate``, ``rna_likelihood``, ``epi_likelihood``,
    ``rna_input_dropout``, ``head_precision``) have their meaning and defaults there.

    Parameters
    ----------
    n_genes
        Number of RNA features.
    n_regions
        Number of epigenome features (peaks, bins or CpG sites).
    n_batch
        Number of batches (1 means no batch covariate).
    log_mean_epi_depth
        ``log1p`` of the mean number of open regions per cell in the training data; the
        Bernoulli decoder's depth offset is relative to it.
    """

    def __init__(
        self,
        n_genes: int,
        n_regions: int,
        n_batch: int = 1,
        *,
        n_latent: int,
        n_hidden: int,
        n_layers: int,
        dropout_rate: float,
        rna_likelihood: RNALikelihood,
        epi_likelihood: EpiLikelihood,
        rna_input_dropout: float,
        head_precision: HeadPrecision,
        log_mean_epi_depth: float = 0.0,
    ):
        super().__init__()
        self.n_latent = n_latent
        # depth of generated epigenomes: log1p(depth) = slope * log1p(RNA library) +
        # z_rna @ epi_depth_latent + intercept; the typical depth until training fits it
        self.register_buffer("epi_depth_fit", torch.tensor([0.0, float(log_mean_epi_depth)]))
        self.register_buffer("epi_depth_latent", torch.zeros(n_latent))
        # generated epigenome logits: epi_region_logit + (1 - epi_region_weight) *
        # (decoder logits - epi_decoder_mean_logit), see generated_epi_logits
        self.register_buffer("epi_region_logit", torch.zeros(n_regions))
        self.register_buffer("epi_decoder_mean_logit", torch.zeros(n_regions))
        self.register_buffer("epi_region_weight", torch.tensor(0.0))
        # joint latent: [z_rna, joint_epi_weight * z_epi] (fitted by _joint.fit_joint_weight)
        self.register_buffer("joint_epi_weight", torch.tensor(1.0))
        self.rna = RNAVAE(
            n_genes,
            n_latent,
            n_hidden,
            n_layers,
            n_batch,
            dropout_rate,
            rna_likelihood,
            rna_input_dropout,
            head_precision,
        )
        self.epi = EpigenomeVAE(
            n_regions,
            n_latent,
            n_hidden,
            n_layers,
            n_batch,
            dropout_rate,
            epi_likelihood,
            log_mean_epi_depth,
            head_precision,
        )

    def load_state_dict(self, state_dict, strict: bool = True, assign: bool = False):
        """As :meth:`torch.nn.Module.load_state_dict`, accepting saves without the later fits.

        Saves without generation fits keep this module's depth fit (the typical depth for a
        new module) and generate from the decoder alone (region weight 0); saves with region
        frequencies but without the decoder's mean profile move the decoder's logits towards
        the frequencies by the weight, as such models were trained to; saves without a joint
        weight give the plain concatenation (weight 1).
        """
        state_dict = dict(state_dict)
        state_dict.setdefault("epi_depth_fit", self.epi_depth_fit)
        state_dict.setdefault("epi_depth_latent", torch.zeros_like(self.epi_depth_latent))
        state_dict.setdefault("epi_region_logit", torch.zeros_like(self.epi_region_logit))
        state_dict.setdefault("epi_decoder_mean_logit", state_dict["epi_region_logit"])
        state_dict.setdefault("epi_region_weight", torch.zeros_like(self.epi_region_weight))
        state_dict.setdefault("joint_epi_weight", torch.ones_like(self.joint_epi_weight))
        return super().load_state_dict(state_dict, strict=strict, assign=assign)

    def expected_epi_depth(self, x_rna: torch.Tensor, z_rna: torch.Tensor) -> torch.Tensor:
        """Expected open regions of each cell, ``(n_cells, 1)``.

        ``log1p(depth) = slope * log1p(RNA library) + z_rna @ epi_depth_latent + intercept``,
        the fit stored in the buffers ``epi_depth_fit`` and ``epi_depth_latent``.
        """
        slope, intercept = self.epi_depth_fit  # library() is 0 for Gaussian RNA: no counts
        log_depth = slope * torch.log1p(self.rna.library(x_rna)) + intercept
        return torch.expm1(log_depth + z_rna @ self.epi_depth_latent.unsqueeze(-1))

    def generated_epi_logits(
        self, logits: torch.Tensor, depth: torch.Tensor, weight: float | None = None
    ) -> torch.Tensor:
        """Logits of epigenomes generated from ``z_rna``, their sigmoids summing to ``depth``.

        Each cell's deviations from the decoder's mean profile over training cells
        (``epi_decoder_mean_logit``) are scaled by ``1 - weight`` (the fitted
        ``epi_region_weight`` if ``None``) and added to the training cells' region
        frequencies: ``epi_region_logit + (1 - weight) * (logits - epi_decoder_mean_logit)``.
        The weight shrinks only what tells cells apart; each region's typical openness comes
        from the data. Then the logits are shifted per cell to the expected depth
        (:func:`logits_at_depth`).
        """
        weight = self.epi_region_weight if weight is None else weight
        deviation = logits - self.epi_decoder_mean_logit
        return logits_at_depth(self.epi_region_logit + (1 - weight) * deviation, depth)

    def generated_epi_probs(self, px: RegionBernoulli, depth: torch.Tensor) -> torch.Tensor:
        """Open probabilities of :meth:`generated_epi_logits` for the decoder output ``px``."""
        return torch.sigmoid(self.generated_epi_logits(px.logits, depth))

    def vae(self, modality: str) -> RNAVAE | EpigenomeVAE:
        """The VAE of ``"rna"`` or ``"epi"``."""
        if modality not in MODALITIES:
            raise ValueError(f"modality must be one of {MODALITIES}, got {modality!r}.")
        return self.rna if modality == "rna" else self.epi

    def _view(self, modality: str, tensors: dict[str, torch.Tensor]) -> torch.Tensor:
        """The minibatch's data of ``modality`` as its VAE reads it (binary calls for epi)."""
        vae = self.vae(modality)  # checks the name
        x = tensors[TENSOR_KEYS[modality]]
        return vae.prepare(x)[0] if modality == "epi" else x

    @auto_move_data
    def posterior(self, modality: str, tensors: dict[str, torch.Tensor]) -> Normal:
        """Posterior ``q(z | x)`` of one modality's latent for a minibatch."""
        x = self._view(modality, tensors)
        return self.vae(modality).encode(x, tensors.get(BATCH_KEY))

    def posterior_mean(self, modality: str, tensors: dict[str, torch.Tensor]) -> torch.Tensor:
        """Posterior mean of one modality's latent for a minibatch (no sampling)."""
        return self.posterior(modality, tensors).loc

    @auto_move_data
    def library(self, modality: str, tensors: dict[str, torch.Tensor]) -> torch.Tensor:
        """Each cell's own library: RNA library size, or the epigenome's log depth offset."""
        return self.vae(modality).library(self._view(modality, tensors))

    @staticmethod
    def typical_library(modality: str, z: torch.Tensor) -> torch.Tensor:
        """The library of a typical cell, one row per row of ``z``.

        A unit RNA library (decoded values are proportions), or the epigenome's mean depth
        (log offset 0).
        """
        fill = 1.0 if modality == "rna" else 0.0
        return torch.full((z.shape[0], 1), fill, device=z.device, dtype=z.dtype)

    @auto_move_data
    def latent_or_predicted(self, modality: str, tensors: dict[str, torch.Tensor]) -> torch.Tensor:
        """Posterior mean of ``modality``'s latent, predicted for cells that lack it.

        A cell without ``modality`` gets the other modality's latent, which attention
        transfer trained to stand in for it.
        """
        z = self.posterior_mean(modality, tensors)
        observed = tensors.get(OBSERVED_KEYS[modality])
        if observed is None or bool(observed.all()):
            return z
        z_other = self.posterior_mean(other_modality(modality), tensors)
        return torch.where(observed.view(-1, 1) > 0, z, z_other)

    def _get_inference_input(self, tensors: dict[str, torch.Tensor]) -> dict:
        return {
            "x_rna": tensors.get(RNA_KEY),
            "x_epi": tensors.get(EPI_KEY),
            "batch_index": tensors.get(BATCH_KEY),
        }

    def _get_generative_input(self, tensors: dict, inference_outputs: dict) -> dict:
        return {
            "latents": {m: inference_outputs[f"z_{m}"] for m in inference_outputs["modalities"]},
            "libraries": {
                m: inference_outputs[f"library_{m}"] for m in inference_outputs["modalities"]
            },
            "batch_index": tensors.get(BATCH_KEY),
        }

    @auto_move_data
    def inference(
        self,
        x_rna: torch.Tensor | None,
        x_epi: torch.Tensor | None,
        batch_index: torch.Tensor | None = None,
        modalities: Iterable[str] = MODALITIES,
        n_samples: int = 1,
        sample: bool = True,
    ) -> dict:
        """Encode the requested modalities; returns ``qz_*``, ``z_*``, ``library_*``.

        ``z_*`` is a sample of the posterior while training (``sample=False``: its mean, as
        in evaluation mode).
        """
        modalities = tuple(modalities)
        out: dict = {"modalities": modalities}
        for modality in modalities:
            x = x_rna if modality == "rna" else x_epi
            if x is None:
                raise ValueError(f"No {modality} data in the minibatch.")
            vae = self.vae(modality)
            if modality == "epi":
                x, out["epi_missing"] = vae.prepare(x)
                out["x_epi_prepared"] = x
            qz = vae.encode(x, batch_index)
            out[f"qz_{modality}"] = qz
            out[f"z_{modality}"] = qz.rsample() if self.training and sample else qz.loc
            out[f"library_{modality}"] = vae.library(x)
        return out

    @auto_move_data
    def generative(
        self,
        latents: dict[str, torch.Tensor],
        libraries: dict[str, torch.Tensor],
        batch_index: torch.Tensor | None = None,
    ) -> dict:
        """Decode each latent with its own modality's decoder; returns ``px_*``."""
        return {
            f"px_{m}": self.vae(m).decode(z, libraries[m], batch_index) for m, z in latents.items()
        }

    def loss(
        self,
        tensors: dict[str, torch.Tensor],
        inference_outputs: dict,
        generative_outputs: dict,
        kl_weight: float = 1.0,
        attention_weights: dict[str, float] | None = None,
        teacher_latents: dict[str, torch.Tensor] | None = None,
    ) -> LossOutput:
        """ELBO of each encoded modality plus attention transfer towards a teacher.

        Besides the loss, ``extra_metrics`` holds per-cell means of each modality's
        ``reconstruction_*`` and ``kl_*``, its ``attention_*`` distance, and ``objective``:
        the loss with the KL weight at 1, comparable across the epochs of a KL warm-up.

        Parameters
        ----------
        kl_weight
            Weight of the KL term (warm-up).
        attention_weights
            ``{student: beta}``; a student's loss adds ``beta * ||z_teacher - z_student||^2``
            on the posterior means.
        teacher_latents
            ``{student: z_teacher}`` from a frozen teacher. Where a student has a weight but no
            teacher latent here, the other modality's posterior mean in this minibatch is
            used, detached (the alternating schedule).
        """
        attention_weights = attention_weights or {}
        teacher_latents = teacher_latents or {}
        observed = {m: _observed(tensors, m) for m in MODALITIES}
        reconstruction, kl_local, extra = {}, {}, {}
        total = objective = 0.0
        for modality in inference_outputs["modalities"]:
            qz = inference_outputs[f"qz_{modality}"]
            px = generative_outputs[f"px_{modality}"]
            if modality == "rna":
                rec = self.rna.reconstruction_loss(px, tensors[RNA_KEY])
            else:
                rec = self.epi.reconstruction_loss(
                    px, inference_outputs["x_epi_prepared"], inference_outputs["epi_missing"]
                )
            kl = kl_standard_normal(qz)
            weight = observed[modality]
            if weight is not None:  # unpaired cells: only measured modalities count
                rec, kl = rec * weight, kl * weight
            reconstruction[modality] = rec
            kl_local[modality] = kl
            cell_loss = rec + kl_weight * kl
            attention = 0.0
            beta = attention_weights.get(modality, 0.0)
            if beta > 0:
                teacher = teacher_latents.get(modality)
                if teacher is None:
                    teacher = inference_outputs[f"qz_{other_modality(modality)}"].loc.detach()
                distance = attention_distance(qz.loc, teacher)
                paired = _paired(observed)
                if paired is not None:  # transfer only between two measured modalities
                    distance = distance * paired
                    extra[f"attention_{modality}"] = (
                        distance.sum() / paired.sum().clamp(min=1)
                    ).detach()
                else:
                    extra[f"attention_{modality}"] = distance.mean().detach()
                attention = beta * distance
                cell_loss = cell_loss + attention
            n_cells = cell_loss.shape[0] if weight is None else weight.sum().clamp(min=1)
            total = total + cell_loss.sum() / n_cells
            with torch.no_grad():
                extra[f"reconstruction_{modality}"] = rec.sum() / n_cells
                extra[f"kl_{modality}"] = kl.sum() / n_cells
                objective = objective + (rec + kl + attention).sum() / n_cells
        extra["objective"] = objective
        return LossOutput(
            loss=total,
            reconstruction_loss=reconstruction,
            kl_local=kl_local,
            extra_metrics=extra,
        )


def _observed(tensors: dict[str, torch.Tensor], modality: str) -> torch.Tensor | None:
    """Per-cell 0/1 flag that ``modality`` was measured, or ``None`` when every cell has it."""
    flag = tensors.get(OBSERVED_KEYS[modality])
    return None if flag is None else flag.view(-1).float()


def _paired(observed: dict[str, torch.Tensor | None]) -> torch.Tensor | None:
    """Per-cell flag that both modalities were measured (``None``: all cells are paired)."""
    flags = [f for f in observed.values() if f is not None]
    if not flags:
        return None
    return flags[0] if len(flags) == 1 else flags[0] * flags[1]
