"""(Zero-inflated) negative-binomial likelihood of sparse counts with hand-written gradients.

The zero case of the likelihood is evaluated for every cell and gene; the log-gamma terms only
at the non-zero counts. Written as one :class:`torch.autograd.Function`: the dense part runs
block by block of cells, each block small enough for its temporaries to stay in cache, and
keeps only the gradient factors (one cells x genes matrix per parameter), so the backward
pass is a few multiplications.
"""

from __future__ import annotations

import torch
from torch.nn import functional as F

from ._sparse import nonzero_entries

_EPS = 1e-8
#: Entries per block of cells: 2**17 floats (512 KB), so a block's temporaries stay in cache.
BLOCK_ELEMENTS = 2**17


class _CountNLL(torch.autograd.Function):
    """Per cell ``-sum_g log p(x_g)`` under NB (``zi_logits=None``) or ZINB.

    ``log NB(0) = theta (log theta - log(theta + mu))``; at a count ``x > 0`` the excess
    ``x (log mu - log(theta + mu)) + lgamma(x + theta) - lgamma(theta) - lgamma(x + 1)`` is
    added. With zero inflation ``pi = sigmoid(zi_logits)``, ``p(0) = pi + (1 - pi) NB(0)`` and
    ``p(x > 0) = (1 - pi) NB(x)``. ``theta`` is one value per gene (1-D) or per entry.
    """

    @staticmethod
    def forward(ctx, mu, theta, zi_logits, rows, cols, counts, with_gradients):
        per_gene = theta.dim() == 1
        n_cells, n_genes = mu.shape
        nll = mu.new_empty(n_cells)
        n_grads = (2 if zi_logits is None else 3) if with_gradients else 0
        grads = [torch.empty_like(mu) for _ in range(n_grads)]  # d nll / d (mu, theta, zi)
        gene_terms = _theta_terms(theta) if per_gene else None
        size = max(1, BLOCK_ELEMENTS // max(n_genes, 1))
        for start in range(0, n_cells, size):
            block = slice(start, min(start + size, n_cells))
            nll[block] = _zero_counts(
                mu[block],
                gene_terms or _theta_terms(theta[block]),
                None if zi_logits is None else zi_logits[block],
                [g[block] for g in grads],
            )
        # log-gamma and digamma of theta at the counts (per gene when theta is, then picked)
        functions = (torch.lgamma, torch.digamma) if with_gradients else (torch.lgamma,)
        if per_gene:
            theta_nz, special = theta[cols], [f(theta)[cols] for f in functions]
        else:
            theta_nz = theta[rows, cols]
            special = [f(theta_nz) for f in functions]
        correction, count_grads = _counts(
            mu[rows, cols],
            theta_nz,
            None if zi_logits is None else zi_logits[rows, cols],
            counts,
            special,
        )
        nll.index_add_(0, rows, correction.to(mu.dtype), alpha=-1.0)
        if with_gradients:
            for stored, value in zip(grads, count_grads, strict=True):
                stored[rows, cols] = value  # the count's own derivative replaces the zero case
            ctx.save_for_backward(*grads)
            ctx.per_gene = per_gene
        return nll

    @staticmethod
    def backward(ctx, grad_nll):
        # the stored d nll / d parameter of each entry, scaled in place (backward runs once)
        grad_mu, grad_theta, *grad_zi = ctx.saved_tensors
        scale = grad_nll.unsqueeze(-1)
        grad_mu = grad_mu.mul_(scale) if ctx.needs_input_grad[0] else None
        if not ctx.needs_input_grad[1]:
            grad_theta = None
        elif ctx.per_gene:
            grad_theta = torch.mv(grad_theta.t(), grad_nll)
        else:
            grad_theta = grad_theta.mul_(scale)
        grad_zi = grad_zi[0].mul_(scale) if grad_zi and ctx.needs_input_grad[2] else None
        return grad_mu, grad_theta, grad_zi, None, None, None, None


def _theta_terms(theta):
    """``theta``, ``theta + eps``, ``log(theta + eps)`` and ``theta / (theta + eps)``."""
    theta_eps = theta + _EPS
    return theta, theta_eps, torch.log(theta_eps), theta / theta_eps


def _zero_counts(mu, theta_terms, zi_logits, out) -> torch.Tensor:
    """``-sum_g log p(0)`` of each cell of a block.

    ``d(-log p(0)) / d (mu, theta, zi)`` of each entry is written into the tensors of ``out``
    (none: no gradients).
    """
    theta, theta_eps, log_theta, unit = theta_terms
    total = torch.add(mu, theta_eps)  # theta + mu + eps
    log_ratio = torch.log(total)
    torch.sub(log_theta, log_ratio, out=log_ratio)  # log(theta / (theta + mu))
    shifted = log_ratio * theta  # log NB(0)
    if zi_logits is None:
        nll = shifted.sum(-1).neg_()
    else:
        # log(pi + (1 - pi) NB(0)) = softplus(log NB(0) - zi) - softplus(-zi)
        neg_zi = zi_logits.neg()
        shifted.add_(neg_zi)
        nll = F.softplus(neg_zi).sum(-1).sub_(F.softplus(shifted).sum(-1))
    if not out:
        return nll
    d_mu, d_theta = out[0], out[1]
    torch.div(theta, total, out=d_mu)  # q = theta / (theta + mu) = -d log NB(0) / d mu
    # -d log NB(0) / d theta = q - log(theta / (theta + mu)) - theta / (theta + eps)
    torch.sub(d_mu, log_ratio, out=d_theta).sub_(unit)
    if zi_logits is not None:
        at_zero = shifted.sigmoid_()  # d log p(0) / d log NB(0)
        torch.sigmoid(neg_zi, out=out[2])
        torch.sub(at_zero, out[2], out=out[2])  # -d log p(0) / d zi
        d_mu.mul_(at_zero)
        d_theta.mul_(at_zero)
    return nll


def _counts(mu, theta, zi_logits, counts, special):
    """At the non-zero counts: ``log p(x) - log p(0)`` and ``d(-log p(x)) / d (mu, theta, zi)``.

    ``special`` holds ``lgamma(theta)`` and, when gradients are wanted, ``digamma(theta)``.
    """
    total = mu + theta + _EPS
    log_total = torch.log(total)
    log_nb_zero = theta * (torch.log(theta + _EPS) - log_total)
    log_count = (
        log_nb_zero
        + counts * (torch.log(mu + _EPS) - log_total)
        + torch.lgamma(counts + theta)
        - special[0]
        - torch.lgamma(counts + 1.0)
    )
    if zi_logits is None:
        log_zero = log_nb_zero
    else:
        log_zero = F.softplus(log_nb_zero - zi_logits) - F.softplus(-zi_logits)
        log_count = log_count - F.softplus(zi_logits)  # log(1 - pi)
    if len(special) < 2:
        return log_count - log_zero, ()
    # -d log p / d mu = theta/(theta + mu) - x (1/mu - 1/(theta + mu)); -d / d zi = sigmoid(zi)
    d_mu = theta / total - counts * (1.0 / (mu + _EPS) - 1.0 / total)
    d_theta = (
        log_total
        - torch.log(theta + _EPS)
        - theta / (theta + _EPS)
        + theta / total
        + counts / total
        - torch.digamma(counts + theta)
        + special[1]
    )
    grads = (d_mu, d_theta) if zi_logits is None else (d_mu, d_theta, torch.sigmoid(zi_logits))
    return log_count - log_zero, grads


def _count_nll(x, mu, theta, zi_logits):
    if theta.dim() > 1 and theta.shape[0] != mu.shape[0]:  # (1, n_genes)
        theta = theta.reshape(-1)
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
