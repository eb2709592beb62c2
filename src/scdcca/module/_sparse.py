"""Sparse minibatches: rows of a CSR matrix kept sparse from the loader to the first layer.

Single-cell matrices are mostly zeros (scATAC about 0.2% non-zero, scRNA a few %). DCCA keeps
each minibatch as a CSR tensor: the encoders' first layer sums the weight rows of the non-zero
features (an embedding bag), and the likelihoods touch the non-zero entries only where the
zeros contribute nothing. Dense tensors are accepted everywhere and give the same numbers.
"""

from __future__ import annotations

import math

import torch
from torch import nn
from torch.nn import functional as F


def is_sparse(x: torch.Tensor) -> bool:
    """Whether ``x`` is a sparse (CSR, CSC or COO) tensor."""
    return x.layout != torch.strided


def to_csr(x: torch.Tensor) -> torch.Tensor:
    """A CSR view of a 2-D tensor (dense, COO or CSC input is converted)."""
    if x.layout == torch.sparse_csr:
        return x
    if x.layout in (torch.strided, torch.sparse_csc):
        return x.to_sparse_csr()
    if x.layout == torch.sparse_coo:
        return x.coalesce().to_sparse_csr()
    return x.to_dense().to_sparse_csr()


def csr_parts(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """``(crow_indices, col_indices, values)`` of a CSR tensor, indices as int64."""
    return x.crow_indices().long(), x.col_indices().long(), x.values()


def csr_rows(crow: torch.Tensor) -> torch.Tensor:
    """Row index of every stored entry, from CSR row pointers."""
    n_rows = crow.numel() - 1
    return torch.repeat_interleave(torch.arange(n_rows, device=crow.device), crow.diff())


def with_int64_indices(x: torch.Tensor) -> torch.Tensor:
    """A CSR tensor with int64 indices (anything else is returned as it is)."""
    if x.layout != torch.sparse_csr or x.crow_indices().dtype == torch.int64:
        return x
    crow, col, values = csr_parts(x)
    return torch.sparse_csr_tensor(crow, col, values, size=x.shape)


def with_values(x: torch.Tensor, values: torch.Tensor) -> torch.Tensor:
    """The CSR tensor ``x`` with its stored values replaced."""
    return torch.sparse_csr_tensor(x.crow_indices(), x.col_indices(), values, size=x.shape)


def row_sums(x: torch.Tensor) -> torch.Tensor:
    """Sum of each row, shape ``(n_rows, 1)``, for dense or CSR input."""
    if not is_sparse(x):
        return x.sum(-1, keepdim=True)
    crow, _, values = csr_parts(to_csr(x))  # CSC minibatches come from CSC layers
    sums = torch.zeros(x.shape[0], device=values.device, dtype=values.dtype)
    sums.index_add_(0, csr_rows(crow), values)
    return sums.unsqueeze(-1)


def nonzero_entries(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """``(rows, cols, values)`` of the stored (CSR) or non-zero (dense) entries."""
    if is_sparse(x):
        crow, col, values = csr_parts(to_csr(x))
        return csr_rows(crow), col, values
    rows, cols = torch.nonzero(x, as_tuple=True)
    return rows, cols, x[rows, cols]


class _CSRMatmul(torch.autograd.Function):
    """``X @ W`` for a CSR ``X`` (no gradient) and a dense ``W``, both ways by embedding bags.

    The forward pass sums the rows of ``W`` picked by each cell's non-zero features; the
    backward pass does the same over the transposed structure (each feature's cells), so
    neither direction touches the zeros.
    """

    @staticmethod
    def forward(ctx, weight, crow, col, values):
        ctx.save_for_backward(crow, col, values)
        ctx.n_features = weight.shape[0]
        return F.embedding_bag(
            col, weight, crow, mode="sum", per_sample_weights=values, include_last_offset=True
        )

    @staticmethod
    def backward(ctx, grad_output):
        crow, col, values = ctx.saved_tensors
        order = torch.argsort(col, stable=True)
        feature_ptr = torch.zeros(ctx.n_features + 1, dtype=torch.long, device=col.device)
        feature_ptr[1:] = torch.cumsum(torch.bincount(col, minlength=ctx.n_features), 0)
        grad_weight = F.embedding_bag(
            csr_rows(crow)[order],
            grad_output.contiguous(),
            feature_ptr,
            mode="sum",
            per_sample_weights=values[order],
            include_last_offset=True,
        )
        return grad_weight, None, None, None


class SparseInputLinear(nn.Module):
    """Affine layer ``x W + b`` for dense or CSR input; sparse input never becomes dense.

    The weight is stored features x outputs (the transpose of :class:`torch.nn.Linear`) so
    that a cell's pre-activation is the sum of the rows of its non-zero features. It is
    initialised as :class:`torch.nn.Linear` is.
    """

    def __init__(self, n_input: int, n_output: int):
        super().__init__()
        bound = 1.0 / math.sqrt(n_input)
        self.weight = nn.Parameter(torch.empty(n_input, n_output).uniform_(-bound, bound))
        self.bias = nn.Parameter(torch.empty(n_output).uniform_(-bound, bound))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not is_sparse(x):
            return torch.addmm(self.bias, x, self.weight)
        crow, col, values = csr_parts(to_csr(x))
        return _CSRMatmul.apply(self.weight, crow, col, values.to(self.weight.dtype)) + self.bias
