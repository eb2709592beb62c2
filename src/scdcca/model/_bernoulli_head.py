"""Bernoulli decoder head whose loss never materialises the cells x regions logits.

With 100k+ regions the logits of one minibatch are hundreds of MB, and every elementwise
pass over them (bias, softplus, its gradient) is limited by memory bandwidth, not arithmetic.
:func:`bernoulli_head_nll` computes the per-cell negative log-likelihood block by block of
regions, each block small enough to stay in cache, and recomputes the blocks in the backward
pass instead of storing them (as fused linear + cross-entropy kernels do).
"""

from __future__ import annotations

import torch
from torch.nn import functional as F

#: Logits per block: 2**19 floats (2 MB, e.g. 128 cells x 4096 regions), about a core's L2.
BLOCK_ELEMENTS = 2**19


def block_regions(n_cells: int) -> int:
    """Regions per block for a minibatch of ``n_cells``."""
    return max(256, BLOCK_ELEMENTS // max(n_cells, 1))


def _sorted_by_column(
    rows: torch.Tensor,
    cols: torch.Tensor,
    values: torch.Tensor | None,
    n_regions: int,
    block: int,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None, torch.Tensor]:
    order = torch.argsort(cols, stable=True)
    rows, cols = rows[order], cols[order]
    values = values[order] if values is not None else None
    starts = torch.arange(0, n_regions + block, block, device=cols.device)
    bounds = torch.searchsorted(cols, starts.clamp(max=n_regions)).tolist()
    return rows, cols, values, bounds


class _BlockwiseBernoulliNLL(torch.autograd.Function):
    """Per cell ``sum_j softplus(l_ij) - x_ij l_ij`` (observed entries), ``l = hW^T+b+o``."""

    @staticmethod
    def forward(ctx, hidden, weight, bias, offset, rows, cols, calls, miss_rows, miss_cols):
        n_regions = weight.shape[0]
        size = block_regions(hidden.shape[0])
        entries = _sorted_by_column(rows, cols, calls, n_regions, size)
        missing = _sorted_by_column(miss_rows, miss_cols, None, n_regions, size)
        nll = hidden.new_zeros(hidden.shape[0])
        for block, start in enumerate(range(0, n_regions, size)):
            stop = min(start + size, n_regions)
            logits = torch.addmm(bias[start:stop], hidden, weight[start:stop].t()).add_(offset)
            nll += F.softplus(logits).sum(-1)
            r, c, x = _block_entries(entries, block, start)
            nll.index_add_(0, r, -x * logits[r, c])
            r, c, _ = _block_entries(missing, block, start)
            if r.numel():
                nll.index_add_(0, r, -F.softplus(logits[r, c]))
        ctx.save_for_backward(hidden, weight, bias, offset)
        ctx.entries, ctx.missing = entries, missing
        return nll

    @staticmethod
    def backward(ctx, grad_nll):
        hidden, weight, bias, offset = ctx.saved_tensors
        n_regions = weight.shape[0]
        grad_hidden = torch.zeros_like(hidden)
        grad_weight = torch.empty_like(weight)
        grad_bias = torch.empty_like(bias)
        grad_offset = torch.zeros_like(offset) if ctx.needs_input_grad[3] else None
        scale = grad_nll.unsqueeze(-1)
        size = block_regions(hidden.shape[0])
        for block, start in enumerate(range(0, n_regions, size)):
            stop = min(start + size, n_regions)
            logits = torch.addmm(bias[start:stop], hidden, weight[start:stop].t()).add_(offset)
            d_logits = logits.sigmoid_()
            r, c, x = _block_entries(ctx.entries, block, start)
            d_logits.index_put_((r, c), -x, accumulate=True)
            r, c, _ = _block_entries(ctx.missing, block, start)
            if r.numel():
                d_logits[r, c] = 0.0
            d_logits.mul_(scale)
            grad_hidden.addmm_(d_logits, weight[start:stop])
            torch.mm(d_logits.t(), hidden, out=grad_weight[start:stop])
            torch.sum(d_logits, 0, out=grad_bias[start:stop])
            if grad_offset is not None:
                grad_offset += d_logits.sum(-1, keepdim=True)
        return grad_hidden, grad_weight, grad_bias, grad_offset, None, None, None, None, None


def _block_entries(sorted_entries, block: int, start: int):
    rows, cols, values, bounds = sorted_entries
    lo, hi = bounds[block], bounds[block + 1]
    block_values = values[lo:hi] if values is not None else None
    return rows[lo:hi], cols[lo:hi] - start, block_values


def bernoulli_head_nll(
    hidden: torch.Tensor,
    weight: torch.Tensor,
    bias: torch.Tensor,
    offset: torch.Tensor,
    calls: tuple[torch.Tensor, torch.Tensor, torch.Tensor],
    missing: tuple[torch.Tensor, torch.Tensor] | None = None,
) -> torch.Tensor:
    """Bernoulli negative log-likelihood per cell of a linear head, computed block-wise.

    Parameters
    ----------
    hidden
        Decoder hidden layer, ``(n_cells, n_hidden)``.
    weight, bias
        Output head (``torch.nn.Linear`` layout: ``(n_regions, n_hidden)`` and ``(n_regions,)``).
    offset
        Per-cell logit offset (sequencing depth), ``(n_cells, 1)``.
    calls
        ``(rows, cols, values)`` of the stored calls (values 0 or 1).
    missing
        ``(rows, cols)`` of entries left out of the likelihood, or ``None``.
    """
    rows, cols, values = calls
    if missing is None:
        empty = rows.new_empty(0)
        missing = (empty, empty)
    return _BlockwiseBernoulliNLL.apply(
        hidden,
        weight,
        bias,
        offset,
        rows.long(),
        cols.long(),
        values.to(hidden.dtype),
        missing[0].long(),
        missing[1].long(),
    )
