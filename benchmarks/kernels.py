"""The hand-written likelihood kernels against the library code they replace, on real minibatches.

Times forward and backward of one minibatch (median of ``--repeats``) for

- ``count_nll``: scdcca's ZINB kernel on sparse RNA counts against
  ``scvi.distributions.ZeroInflatedNegativeBinomial.log_prob`` on the same counts (dense);
- ``bernoulli_head``: scdcca's block-wise Bernoulli head (logits never stored whole) against
  a ``torch.nn.functional.linear`` head with ``binary_cross_entropy_with_logits`` on dense
  calls, both in float32,

and checks that both give the same loss. Rows are appended to ``--out`` (default
``benchmarks/results/kernels.csv``) with the CPU, its instruction set and the one torch used,
the code version, the thread count and the machine's one-minute load average (timings mean
little above the number of cores)::

    python benchmarks/kernels.py --threads 1
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

import numpy as np
import torch
from scipy import sparse

from _provenance import append_rows, code_version, machine


def median_ms(loss_fn, leaves: list[torch.Tensor], repeats: int) -> tuple[float, float]:
    """Median milliseconds of forward + backward, and the loss."""
    times, loss = [], 0.0
    for _ in range(repeats):
        inputs = [t.detach().clone().requires_grad_() for t in leaves]
        start = time.perf_counter()
        value = loss_fn(*inputs)
        value.backward()
        times.append(time.perf_counter() - start)
        loss = float(value)
    return float(np.median(times) * 1e3), loss


def csr_tensor(matrix: sparse.csr_matrix) -> torch.Tensor:
    return torch.sparse_csr_tensor(
        torch.as_tensor(matrix.indptr, dtype=torch.int64),
        torch.as_tensor(matrix.indices, dtype=torch.int64),
        torch.as_tensor(matrix.data, dtype=torch.float32),
        size=matrix.shape,
    )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", type=Path, default=Path("../shared/data/scicar_kidney.h5mu"))
    parser.add_argument("--rna", default="rna")
    parser.add_argument("--epi", default="atac")
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--hidden", type=int, default=128)
    parser.add_argument("--repeats", type=int, default=30)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/kernels.csv"))
    args = parser.parse_args(argv)

    import mudata
    from scvi.distributions import ZeroInflatedNegativeBinomial

    from scdcca.module._bernoulli_head import bernoulli_head_nll
    from scdcca.module._count_likelihood import zero_inflated_negative_binomial_nll
    from scdcca.module._sparse import nonzero_entries

    torch.set_num_threads(args.threads)
    mdata = mudata.read_h5mu(args.data)
    rows = slice(0, args.batch_size)
    counts = sparse.csr_matrix(mdata[args.rna].X[rows], dtype=np.float32)
    calls = sparse.csr_matrix(mdata[args.epi].X[rows] > 0, dtype=np.float32)
    generator = torch.Generator().manual_seed(0)
    n_cells, n_genes = counts.shape
    mu = torch.rand(counts.shape, generator=generator) * 2 + 0.01
    theta = torch.rand(n_genes, generator=generator) + 0.5
    zi = torch.randn(counts.shape, generator=generator)
    counts_csr, counts_dense = csr_tensor(counts), torch.as_tensor(counts.toarray())
    results = []
    kernel = median_ms(
        lambda m, t, z: zero_inflated_negative_binomial_nll(counts_csr, m, t, z).sum(),
        [mu, theta, zi],
        args.repeats,
    )
    reference = median_ms(
        lambda m, t, z: (
            -ZeroInflatedNegativeBinomial(mu=m, theta=t, zi_logits=z).log_prob(counts_dense).sum()
        ),
        [mu, theta, zi],
        args.repeats,
    )
    results.append(("count_nll", "scvi ZeroInflatedNegativeBinomial", counts, kernel, reference))

    n_regions = calls.shape[1]
    hidden = torch.randn(n_cells, args.hidden, generator=generator)
    weight = torch.randn(n_regions, args.hidden, generator=generator) * 0.05
    bias = torch.randn(n_regions, generator=generator) - 3
    offset = torch.zeros(n_cells, 1)
    entries = nonzero_entries(csr_tensor(calls))
    calls_dense = torch.as_tensor(calls.toarray())
    kernel = median_ms(
        lambda h, w, b: bernoulli_head_nll(h, w, b, offset, entries).sum(),
        [hidden, weight, bias],
        args.repeats,
    )
    reference = median_ms(
        lambda h, w, b: torch.nn.functional.binary_cross_entropy_with_logits(
            torch.nn.functional.linear(h, w, b) + offset, calls_dense, reduction="sum"
        ),
        [hidden, weight, bias],
        args.repeats,
    )
    results.append(("bernoulli_head", "torch linear + BCE with logits", calls, kernel, reference))

    rows, context = [], {**machine(), "version": code_version()}
    for name, reference_name, matrix, (k_ms, k_loss), (r_ms, r_loss) in results:
        rows.append(
            {
                "kernel": name,
                "reference": reference_name,
                "data": args.data.stem,
                "cells": matrix.shape[0],
                "features": matrix.shape[1],
                "nonzero_fraction": round(matrix.nnz / np.prod(matrix.shape), 4),
                **context,
                "threads": args.threads,
                "load_average": round(os.getloadavg()[0], 2),
                "kernel_ms": round(k_ms, 2),
                "reference_ms": round(r_ms, 2),
                "speedup": round(r_ms / k_ms, 2),
                "loss_relative_difference": f"{abs(k_loss - r_loss) / abs(r_loss):.1e}",
            }
        )
        print(f"{name}: {k_ms:.1f} ms, {reference_name} {r_ms:.1f} ms ({r_ms / k_ms:.1f}x)")
    append_rows(args.out, rows)


if __name__ == "__main__":
    main()
