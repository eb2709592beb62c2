"""Building blocks of the per-modality VAEs: encoder, decoders and their likelihoods."""

from __future__ import annotations

from typing import Literal

import torch
from scvi.distributions import NegativeBinomial, ZeroInflatedNegativeBinomial
from torch import nn
from torch.distributions import Normal
from torch.nn import functional as F

from ._bernoulli_head import bernoulli_head_nll
from ._count_likelihood import negative_binomial_nll, zero_inflated_negative_binomial_nll
from ._precision import head_dtype, linear
from ._sparse import (
    SparseInputLinear,
    csr_parts,
    csr_rows,
    is_sparse,
    nonzero_entries,
    row_sums,
    to_csr,
    with_values,
)

RNALikelihood = Literal["nb", "zinb", "gaussian"]
EpiLikelihood = Literal["bernoulli", "gaussian"]
#: Missing epigenome entries: ``(rows, cols)`` (Bernoulli), a dense observed mask (Gaussian).
Missing = tuple[torch.Tensor, torch.Tensor] | torch.Tensor | None


class MLP(nn.Module):
    """Fully connected stack ``Linear -> LayerNorm -> ReLU -> Dropout`` with a batch shift.

    The batch covariate enters as a learned shift of the first hidden layer, which is the
    same as concatenating a one-hot batch vector to the input but costs no dense copy. The
    first layer takes dense or sparse (CSR) input; sparse input stays sparse.
    """

    def __init__(
        self,
        n_input: int,
        n_hidden: int,
        n_layers: int,
        n_batch: int,
        dropout_rate: float,
    ):
        super().__init__()
        self.first = SparseInputLinear(n_input, n_hidden)
        self.batch_shift = nn.Embedding(n_batch, n_hidden) if n_batch > 1 else None
        blocks: list[nn.Module] = [nn.LayerNorm(n_hidden), nn.ReLU(), nn.Dropout(dropout_rate)]
        for _ in range(n_layers - 1):
            blocks += [
                nn.Linear(n_hidden, n_hidden),
                nn.LayerNorm(n_hidden),
                nn.ReLU(),
                nn.Dropout(dropout_rate),
            ]
        self.rest = nn.Sequential(*blocks)

    def forward(self, x: torch.Tensor, batch_index: torch.Tensor | None = None) -> torch.Tensor:
        h = self.first(x)
        if self.batch_shift is not None and batch_index is not None:
            h = h + self.batch_shift(batch_index.view(-1).long())
        return self.rest(h)


class GaussianEncoder(nn.Module):
    """Map an input to a diagonal Gaussian posterior ``q(z | x)``."""

    def __init__(
        self,
        n_input: int,
        n_latent: int,
        n_hidden: int,
        n_layers: int,
        n_batch: int,
        dropout_rate: float,
    ):
        super().__init__()
        self.body = MLP(n_input, n_hidden, n_layers, n_batch, dropout_rate)
        self.mean = nn.Linear(n_hidden, n_latent)
        self.raw_var = nn.Linear(n_hidden, n_latent)

    def forward(self, x: torch.Tensor, batch_index: torch.Tensor | None = None) -> Normal:
        h = self.body(x, batch_index)
        scale = torch.sqrt(F.softplus(self.raw_var(h)) + 1e-4)
        return Normal(self.mean(h), scale, validate_args=False)  # NaN: TrainingDivergedError


def kl_standard_normal(qz: Normal) -> torch.Tensor:
    """KL divergence of a diagonal Gaussian from N(0, I), summed over latent dimensions."""
    var = qz.scale.pow(2)
    return 0.5 * (var + qz.loc.pow(2) - 1.0 - torch.log(var)).sum(-1)


class RNAVAE(nn.Module):
    """VAE for RNA counts: log-normalised input, negative-binomial (or ZINB) decoder.

    The decoder mean is ``library size x softmax(decoder(z))`` with one dispersion per gene.
    With ``likelihood="gaussian"`` the data are taken as already normalised expression (for
    example log-scale values published without counts): the encoder reads them as they are
    and the decoder is a Gaussian with one variance per gene.
    """

    def __init__(
        self,
        n_genes: int,
        n_latent: int,
        n_hidden: int,
        n_layers: int,
        n_batch: int,
        dropout_rate: float,
        likelihood: RNALikelihood,
        input_dropout: float,
        head_precision: str,
    ):
        super().__init__()
        if likelihood not in ("nb", "zinb", "gaussian"):
            raise ValueError(
                f"rna_likelihood must be 'nb', 'zinb' or 'gaussian', got {likelihood!r}."
            )
        if not 0.0 <= input_dropout < 1.0:
            raise ValueError(
                f"rna_input_dropout must be in [0, 1), got {input_dropout!r}: it is the "
                "fraction of the RNA encoder's input entries dropped while training."
            )
        self.likelihood = likelihood
        self.input_dropout = input_dropout
        self.head_precision = head_precision
        self.encoder = GaussianEncoder(
            n_genes, n_latent, n_hidden, n_layers, n_batch, dropout_rate
        )
        self.decoder = MLP(n_latent, n_hidden, n_layers, n_batch, dropout_rate)
        self.scale_head = nn.Linear(n_hidden, n_genes)
        self.dropout_head = nn.Linear(n_hidden, n_genes) if likelihood == "zinb" else None
        self.log_theta = nn.Parameter(torch.zeros(n_genes))

    def library(self, x: torch.Tensor) -> torch.Tensor:
        """Observed library size of each cell, shape ``(n_cells, 1)`` (zeros if Gaussian)."""
        if self.likelihood == "gaussian":
            return torch.zeros(x.shape[0], 1, device=x.device)
        return row_sums(x)

    def encode(self, x: torch.Tensor, batch_index: torch.Tensor | None = None) -> Normal:
        """Posterior over ``z_rna`` from raw counts (log-normalised internally).

        While training, ``input_dropout`` zeroes that fraction of the encoder's input entries
        (and scales the rest up), so the latent cannot rest on a few detected genes.
        """
        if self.likelihood != "gaussian":
            x = self._log_normalised(x)
        return self.encoder(self._drop(x), batch_index)

    def _log_normalised(self, x: torch.Tensor) -> torch.Tensor:
        """``log1p`` of counts scaled to 10,000 per cell; CSR stays CSR."""
        lib = self.library(x).clamp(min=1.0)
        if is_sparse(x):
            x = to_csr(x)
            crow, _, counts = csr_parts(x)
            scaled = counts / lib.squeeze(-1)[csr_rows(crow)] * 1e4
            return with_values(x, torch.log1p(scaled))
        return torch.log1p(x / lib * 1e4)

    def _drop(self, x: torch.Tensor) -> torch.Tensor:
        """Input dropout on the entries (CSR: on its stored values) while training."""
        if not self.input_dropout or not self.training:
            return x
        if is_sparse(x):
            x = to_csr(x)
            return with_values(x, F.dropout(csr_parts(x)[2], self.input_dropout))
        return F.dropout(x, self.input_dropout)

    def decode(
        self,
        z: torch.Tensor,
        library: torch.Tensor,
        batch_index: torch.Tensor | None = None,
    ) -> NegativeBinomial | ZeroInflatedNegativeBinomial | Normal:
        """Count distribution given the latent and the library size.

        While training, the output heads multiply in the dtype of ``head_precision``
        (:mod:`scdcca.module._precision`).
        """
        h = self.decoder(z, batch_index)
        dtype = head_dtype(self.head_precision, h.device, self.training)
        if self.likelihood == "gaussian":
            mean = linear(self.scale_head, h, dtype)
            return Normal(mean, torch.exp(0.5 * self.log_theta), validate_args=False)
        scale = torch.softmax(linear(self.scale_head, h, dtype), dim=-1)
        mu = library * scale
        theta = self.log_theta.exp()
        if self.dropout_head is not None:
            zi_logits = linear(self.dropout_head, h, dtype)
            return ZeroInflatedNegativeBinomial(
                mu=mu, theta=theta, zi_logits=zi_logits, scale=scale
            )
        return NegativeBinomial(mu=mu, theta=theta, scale=scale)

    def reconstruction_loss(self, px, x: torch.Tensor) -> torch.Tensor:
        """Negative log-likelihood of the counts per cell (dense or CSR counts).

        ``px`` comes from :meth:`decode`; its dispersion is this VAE's one value per gene.
        """
        if isinstance(px, Normal):
            return -px.log_prob(x.to_dense() if is_sparse(x) else x).sum(-1)
        theta = self.log_theta.exp()  # px.theta is the same, broadcast to the minibatch
        if isinstance(px, ZeroInflatedNegativeBinomial):
            return zero_inflated_negative_binomial_nll(x, px.mu, theta, px.zi_logits)
        return negative_binomial_nll(x, px.mu, theta)

    @staticmethod
    def normalized(px) -> torch.Tensor:
        """Denoised expression: proportions (rows sum to one), or the mean if Gaussian."""
        return px.loc if isinstance(px, Normal) else px.scale


def logits_at_depth(logits: torch.Tensor, depth: torch.Tensor, n_steps: int = 50) -> torch.Tensor:
    """``logits`` shifted by one offset per row so that their sigmoids sum to ``depth``.

    ``depth`` (shape ``(n_rows, 1)``) is the expected number of open regions of each cell.
    The offset is found by Newton's method on the monotone sum of sigmoids, row by row (a
    row's result does not depend on the others), so each row's ranking of regions is kept
    and only its total changes.
    """
    target = depth.clamp(min=1e-3, max=logits.shape[-1] - 1e-3)
    shift = torch.zeros_like(target)
    for _ in range(n_steps):
        probs = torch.sigmoid(logits + shift)
        gap = probs.sum(-1, keepdim=True) - target
        moving = gap.abs() > 1e-4 * target  # a row stops once it is there, whatever its batch
        if not bool(moving.any()):
            break
        slope = (probs * (1 - probs)).sum(-1, keepdim=True).clamp(min=1e-6)
        shift = shift - torch.where(moving, (gap / slope).clamp(-4.0, 4.0), 0.0)
    return logits + shift


class RegionBernoulli:
    """Bernoulli over regions from a linear head, with logits made only when asked for.

    The likelihood is computed block by block of regions (:func:`bernoulli_head_nll`), so
    training never holds the cells x regions logits; :attr:`logits` and :attr:`probs` build
    them for the getters.
    """

    def __init__(
        self,
        hidden: torch.Tensor,
        head: nn.Linear,
        offset: torch.Tensor,
        dtype: torch.dtype | None = None,
    ):
        self.hidden, self.head, self.offset, self.dtype = hidden, head, offset, dtype

    @property
    def logits(self) -> torch.Tensor:
        """Logits of every region, ``(n_cells, n_regions)``."""
        return self.head(self.hidden) + self.offset

    @property
    def probs(self) -> torch.Tensor:
        """Open probabilities, ``(n_cells, n_regions)``."""
        return torch.sigmoid(self.logits)

    def nll(self, x: torch.Tensor, missing: tuple[torch.Tensor, torch.Tensor] | None = None):
        """Negative log-likelihood per cell of 0/1 calls ``x`` (dense or CSR)."""
        return bernoulli_head_nll(
            self.hidden,
            self.head.weight,
            self.head.bias,
            self.offset,
            nonzero_entries(x),
            missing,
            self.dtype,
        )


class EpigenomeVAE(nn.Module):
    """VAE for the epigenome: binary input, Bernoulli (or Gaussian) decoder.

    With the Bernoulli likelihood the logits get an offset ``log(depth / mean depth)`` so
    that sequencing depth is not what the latent has to explain (open regions are rare, so
    the probability scales roughly with depth). Missing entries (NaN) are ignored in the loss.
    """

    def __init__(
        self,
        n_regions: int,
        n_latent: int,
        n_hidden: int,
        n_layers: int,
        n_batch: int,
        dropout_rate: float,
        likelihood: EpiLikelihood,
        log_mean_depth: float,
        head_precision: str,
    ):
        super().__init__()
        if likelihood not in ("bernoulli", "gaussian"):
            raise ValueError(
                f"epi_likelihood must be 'bernoulli' or 'gaussian', got {likelihood!r}."
            )
        self.likelihood = likelihood
        self.head_precision = head_precision
        self.encoder = GaussianEncoder(
            n_regions, n_latent, n_hidden, n_layers, n_batch, dropout_rate
        )
        self.decoder = MLP(n_latent, n_hidden, n_layers, n_batch, dropout_rate)
        self.output_head = nn.Linear(n_hidden, n_regions)
        self.log_var = nn.Parameter(torch.zeros(n_regions)) if likelihood == "gaussian" else None
        self.register_buffer("log_mean_depth", torch.tensor(float(log_mean_depth)))

    def prepare(self, x: torch.Tensor) -> tuple[torch.Tensor, Missing]:
        """Return the model's view of the data and where entries are missing.

        Bernoulli: calls become a CSR tensor of 0/1 (``x > 0``), missing entries (NaN) are
        returned as ``(rows, cols)`` and set to 0. Gaussian: a dense tensor and a dense mask
        of observed entries (``None`` when nothing is missing).
        """
        if self.likelihood != "bernoulli":
            x = x.to_dense() if is_sparse(x) else x
            if not torch.isnan(x).any():
                return x, None
            return torch.nan_to_num(x, nan=0.0), ~torch.isnan(x)
        x = to_csr(x)
        crow, col, values = csr_parts(x)
        missing = None
        nan = torch.isnan(values)
        if nan.any():
            missing = (csr_rows(crow)[nan], col[nan])
        return with_values(x, (values > 0).to(values.dtype)), missing

    def library(self, x: torch.Tensor) -> torch.Tensor:
        """Log depth offset relative to the training mean, shape ``(n_cells, 1)``."""
        if self.likelihood != "bernoulli":
            return torch.zeros(x.shape[0], 1, device=x.device, dtype=x.dtype)
        return torch.log1p(row_sums(x)) - self.log_mean_depth

    def encode(self, x: torch.Tensor, batch_index: torch.Tensor | None = None) -> Normal:
        """Posterior over ``z_epi`` from the prepared (binary or continuous) input."""
        return self.encoder(x, batch_index)

    def decode(
        self,
        z: torch.Tensor,
        library: torch.Tensor,
        batch_index: torch.Tensor | None = None,
    ) -> RegionBernoulli | Normal:
        """Bernoulli (logits with depth offset) or Gaussian distribution over regions.

        While training, the output head multiplies in the dtype of ``head_precision``
        (:mod:`scdcca.module._precision`).
        """
        hidden = self.decoder(z, batch_index)
        dtype = head_dtype(self.head_precision, hidden.device, self.training)
        if self.likelihood == "bernoulli":
            return RegionBernoulli(hidden, self.output_head, library, dtype)
        out = linear(self.output_head, hidden, dtype)
        return Normal(out, torch.exp(0.5 * self.log_var), validate_args=False)

    @staticmethod
    def reconstruction_loss(px, x: torch.Tensor, missing: Missing = None) -> torch.Tensor:
        """Negative log-likelihood per cell over the observed entries (see :meth:`prepare`)."""
        if isinstance(px, RegionBernoulli):
            return px.nll(x, missing)
        nll = -px.log_prob(x)
        if missing is not None:
            nll = nll * missing
        return nll.sum(-1)

    @staticmethod
    def normalized(px) -> torch.Tensor:
        """Denoised signal: open probability (Bernoulli) or mean (Gaussian)."""
        if isinstance(px, RegionBernoulli):
            return px.probs
        return px.loc
