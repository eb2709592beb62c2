"""Bernoulli decoder head whose loss is computed block by block of regions.

With 100k+ regions the logits of one minibatch are hundreds of MB, and every elementwise
pass over them (bias, softplus, its gradient) is limited by memory bandwidth, not arithmetic.
:func:`bernoulli_head_nll` computes the per-cell negative log-likelihood block by block of
regions, each block small enough to stay in cache, and never holds the logits. The forward
pass keeps only each block's gradient factor ``sigmoid(l) - x`` (regions x cells), so that
the backward pass is two matrix products; above :data:`STORED_ELEMENTS` it keeps nothing and
recomputes the blocks instead (as fused linear + cross-entropy kernels do), trading one more
matrix product for the memory. The products run in float32 or, for mixed-precision training,
on bfloat16 copies of their inputs (see :mod:`scdcca.module._precision`); with those the
recomputed product is cheap and a large stored factor costs more in fresh memory and casts
than it saves, so it is kept only up to :data:`STORED_ELEMENTS_LOW_PRECISION`.
"""

from __future__ import annotations

import torch
from torch.nn import functional as F

#: Logits per block: 2**19 floats (2 MB, e.g. 128 cells x 4096 regions), about a core's L2.
BLOCK_ELEMENTS = 2**19
#: Largest cells x regions gradient factor kept from the forward pass: 2**26 floats (256 MB).
STORED_ELEMENTS = 2**26
#: The same when the products multiply low-precision copies: 2**23 floats (32 MB).
STORED_ELEMENTS_LOW_PRECISION = 2**23


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
    """Per cell ``sum_j softplus(l_ij) - x_ij l_ij`` (observed entries), ``l = hW^T+b+o``.

    Blocks are computed transposed, regions x cells (``W h^T``), so that a block is a
    contiguous slice of the kept gradient factor.
    """

    @staticmethod
    def forward(
        ctx, hidden, weight, bias, offset, rows, cols, calls, miss_rows, miss_cols, keep, dtype
    ):
        n_regions, n_cells = weight.shape[0], hidden.shape[0]
        if dtype is not None:  # the products' operands
            hidden, weight = hidden.to(dtype), weight.to(dtype)
        size = block_regions(n_cells)
        entries = _sorted_by_column(rows, cols, calls, n_regions, size)
        missing = _sorted_by_column(miss_rows, miss_cols, None, n_regions, size)
        factor = None
        limit = STORED_ELEMENTS if weight.dtype == bias.dtype else STORED_ELEMENTS_LOW_PRECISION
        if keep and n_regions * n_cells <= limit:
            factor = bias.new_empty(n_regions, n_cells)
        hidden_t, offset_t = hidden.t(), offset.t()
        nll = bias.new_zeros(n_cells)
        for block, start in enumerate(range(0, n_regions, size)):
            stop = min(start + size, n_regions)
            out = None if factor is None else factor[start:stop]
            logits = _block_logits(weight, bias, hidden_t, offset_t, start, stop, out)
            nll += F.softplus(logits).sum(0)
            r, c, x = _block_entries(entries, block, start)
            nll.index_add_(0, r, -x * logits[c, r])
            m_r, m_c, _ = _block_entries(missing, block, start)
            if m_r.numel():
                nll.index_add_(0, m_r, -F.softplus(logits[m_c, m_r]))
            if factor is not None:
                _gradient_factor(logits, (r, c, x), (m_r, m_c))
        ctx.save_for_backward(hidden, weight, bias, offset, factor)
        ctx.entries, ctx.missing = entries, missing
        return nll

    @staticmethod
    def backward(ctx, grad_nll):
        hidden, weight, bias, offset, factor = ctx.saved_tensors
        want_offset = ctx.needs_input_grad[3]
        if factor is not None:  # regions x cells, scaled in place: backward runs once
            d_logits = factor.mul_(grad_nll)
            d_low = d_logits.to(weight.dtype)  # one cast for both products
            return (
                _mm(d_low.t(), weight, d_logits.dtype),
                _mm(d_low, hidden, d_logits.dtype),
                d_logits.sum(1),
                d_logits.sum(0).unsqueeze(-1) if want_offset else None,
                *(None,) * 7,
            )
        n_regions = weight.shape[0]
        grad_hidden = torch.zeros_like(hidden, dtype=bias.dtype)
        grad_weight = torch.empty_like(weight, dtype=bias.dtype)
        grad_bias = torch.empty_like(bias)
        grad_offset = torch.zeros_like(offset) if want_offset else None
        hidden_t, offset_t = hidden.t(), offset.t()
        size = block_regions(hidden.shape[0])
        for block, start in enumerate(range(0, n_regions, size)):
            stop = min(start + size, n_regions)
            logits = _block_logits(weight, bias, hidden_t, offset_t, start, stop)
            d_logits = _gradient_factor(
                logits,
                _block_entries(ctx.entries, block, start),
                _block_entries(ctx.missing, block, start)[:2],
            ).mul_(grad_nll)
            grad_hidden += _mm(d_logits.t(), weight[start:stop], d_logits.dtype)
            grad_weight[start:stop] = _mm(d_logits, hidden, d_logits.dtype)
            torch.sum(d_logits, 1, out=grad_bias[start:stop])
            if grad_offset is not None:
                grad_offset += d_logits.sum(0).unsqueeze(-1)
        return grad_hidden, grad_weight, grad_bias, grad_offset, *(None,) * 7


def _mm(a: torch.Tensor, b: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """``a @ b`` multiplied in ``b``'s dtype, returned in ``dtype``."""
    return torch.mm(a.to(b.dtype), b).to(dtype)


def _block_logits(weight, bias, hidden_t, offset_t, start, stop, out=None) -> torch.Tensor:
    """Logits of regions ``start:stop``, regions x cells (into ``out`` if given)."""
    block_bias = bias[start:stop].unsqueeze(-1)
    if weight.dtype == bias.dtype:
        logits = torch.addmm(block_bias, weight[start:stop], hidden_t, out=out)
    else:  # a product of low-precision copies, returned in the bias's dtype
        logits = torch.add(torch.mm(weight[start:stop], hidden_t), block_bias, out=out)
    return logits.add_(offset_t)


def _gradient_factor(logits: torch.Tensor, entries, missing) -> torch.Tensor:
    """``sigmoid(l) - x`` of a regions x cells block, 0 at missing entries; in place."""
    d_logits = logits.sigmoid_()
    r, c, x = entries
    d_logits.index_put_((c, r), -x, accumulate=True)
    m_r, m_c = missing
    if m_r.numel():
        d_logits[m_c, m_r] = 0.0
    return d_logits


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
    dtype: torch.dtype | None = None,
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
    dtype
        Dtype in which the head's products multiply (for example ``torch.bfloat16``: copies
        of ``hidden`` and ``weight``), ``None`` for their own; the likelihood and the
        gradients keep the inputs' dtype.
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
        torch.is_grad_enabled() and any(t.requires_grad for t in (hidden, weight, bias, offset)),
        dtype,
    )
