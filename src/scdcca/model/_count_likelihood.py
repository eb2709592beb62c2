"""(Zero-inflated) negative-binomial likelihood of sparse counts with hand-written gradients.

The zero case of the likelihood is evaluated for every cell and gene; the log-gamma terms only
at the non-zero counts. Written as one :class:`torch.autograd.Function`, the dense part keeps
three gradient factors instead of the dozen intermediates autograd would store, and the
backward pass is a few multiplications.
"""

from __future__ import annotations

import torch
from torch.nn import functional as F

from ._sparse import nonzero_entries

_EPS = 1e-8


class _CountNLL(torch.autograd.Function):
    """Per cell ``-sum_g log p(x_g)`` under NB (``zi_logits=None``) or ZINB.

    ``log NB(0) = theta (log theta - log(theta + mu))``; at a count ``x > 0`` the excess
    ``x (log mu - log(theta + mu)) + lgamma(x + theta) - lgamma(theta) - lgamma(x + 1)`` is
    added. With zero inflation ``pi = sigmoid(zi_logits)``, ``p(0) = pi + (1 - pi) NB(0)`` and
    ``p(x > 0) = (1 - pi) NB(x)``.
    """

    @staticmethod
    def forward(ctx, mu, theta, zi_logits, rows, cols, counts, with_gradients):
        theta_full = theta.expand(mu.shape)
        total = theta_full + mu + _EPS  # theta + mu
        log_ratio = torch.log(theta + _EPS) - torch.log(total)  # log(theta / (theta + mu))
        log_nb_zero = theta_full * log_ratio
        theta_nz, total_nz, mu_nz = theta_full[rows, cols], total[rows, cols], mu[rows, cols]
        log_nb_count = (
            log_nb_zero[rows, cols]
            + counts * (torch.log(mu_nz + _EPS) - torch.log(total_nz))
            + torch.lgamma(counts + theta_nz)
            - torch.lgamma(theta_nz)
            - torch.lgamma(counts + 1.0)
        )
        if zi_logits is None:
            log_zero, shifted = log_nb_zero, None
        else:
            shifted = log_nb_zero - zi_logits
            # log(pi + (1 - pi) NB(0)) = softplus(log NB(0) - zi) - softplus(-zi)
            log_zero = F.softplus(shifted) - F.softplus(-zi_logits)
            log_nb_count = log_nb_count - F.softplus(zi_logits[rows, cols])  # log(1 - pi)
        correction = log_nb_count - log_zero[rows, cols]
        log_likelihood = log_zero.sum(-1).index_add(0, rows, correction.to(log_zero.dtype))
        if with_gradients:
            q = theta_full / total
            # d log NB(0) / d theta = log(theta / (theta + mu)) + theta / (theta + eps) - q
            d_theta = log_ratio.add_(theta / (theta + _EPS)).sub_(q)
            d_zi = None
            if shifted is not None:
                at_zero = shifted.sigmoid_()  # d log p(0) / d log NB(0)
                d_zi = torch.sigmoid(-zi_logits).sub_(at_zero)  # d log p(0) / d zi
                q = q * at_zero
                d_theta = d_theta.mul_(at_zero)
            # at the counts: d/d mu = -q + x (1/mu - 1/(theta + mu)), d/d zi = -sigmoid(zi),
            # d/d theta = (dense factor without zero inflation) - x/(theta + mu) + digammas
            count_mu = counts * (1.0 / (mu_nz + _EPS) - 1.0 / total_nz) - theta_nz / total_nz
            count_theta = (
                torch.log(theta_nz + _EPS)
                - torch.log(total_nz)
                + theta_nz / (theta_nz + _EPS)
                - theta_nz / total_nz
                - counts / total_nz
                + torch.digamma(counts + theta_nz)
                - torch.digamma(theta_nz)
            )
            count_zi = None if zi_logits is None else -torch.sigmoid(zi_logits[rows, cols])
            ctx.save_for_backward(q, d_theta, d_zi, rows, cols, count_mu, count_theta, count_zi)
            ctx.theta_shape = theta.shape
        return -log_likelihood

    @staticmethod
    def backward(ctx, grad_nll):
        q, d_theta, d_zi, rows, cols, count_mu, count_theta, count_zi = ctx.saved_tensors
        scale = -grad_nll.unsqueeze(-1)  # d nll / d log-likelihood of each cell
        scale_nz = scale.squeeze(-1)[rows]
        grad_mu = q.mul(-scale)
        grad_mu[rows, cols] = scale_nz * count_mu
        grad_theta = None
        if ctx.needs_input_grad[1]:
            dense_theta = d_theta.mul_(scale)
            dense_theta[rows, cols] = scale_nz * count_theta
            grad_theta = dense_theta.sum_to_size(ctx.theta_shape)
        grad_zi = None
        if d_zi is not None and ctx.needs_input_grad[2]:
            grad_zi = d_zi.mul_(scale)
            grad_zi[rows, cols] = scale_nz * count_zi
        return grad_mu, grad_theta, grad_zi, None, None, None, None


def _count_nll(x, mu, theta, zi_logits):
    theta = theta.expand(mu.shape[-1]) if theta.dim() <= 1 else theta
    rows, cols, counts = nonzero_entries(x)
    parameters = (mu, theta) if zi_logits is None else (mu, theta, zi_logits)
    with_gradients = torch.is_grad_enabled() and any(p.requires_grad for p in parameters)
    counts = counts.to(mu.dtype).detach()
    return _CountNLL.apply(mu, theta, zi_logits, rows.long(), cols.long(), counts, with_gradients)


def negative_binomial_nll(x: torch.Tensor, mu: torch.Tensor, theta: torch.Tensor) -> torch.Tensor:
    """Negative-binomial negative log-likelihood per cell, for dense or CSR counts.

    ``theta`` is one dispersion per gene (shape ``(n_genes,)``) or per entry (as ``mu``).
    """
    return _count_nll(x, mu, theta, None)


def zero_inflated_negative_binomial_nll(
    x: torch.Tensor, mu: torch.Tensor, theta: torch.Tensor, zi_logits: torch.Tensor
) -> torch.Tensor:
    """Zero-inflated negative-binomial negative log-likelihood per cell, dense or CSR counts.

    Equals scvi-tools' ``ZeroInflatedNegativeBinomial.log_prob`` summed over genes, negated.
    """
    return _count_nll(x, mu, theta, zi_logits)
