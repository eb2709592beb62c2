"""Sparse minibatches give the same numbers as dense ones, on real sci-CAR kidney rows."""

from __future__ import annotations

import inspect

import numpy as np
import pytest
import torch
from scipy import sparse
from scvi.distributions import NegativeBinomial, ZeroInflatedNegativeBinomial
from torch.nn import functional as F

import scdcca
from scdcca.module._count_likelihood import (
    negative_binomial_nll,
    zero_inflated_negative_binomial_nll,
)
from scdcca.module._module import DCCAModule
from scdcca.module._sparse import SparseInputLinear, nonzero_entries, row_sums

from .conftest import read


def bernoulli_nll(
    logits: torch.Tensor, x: torch.Tensor, missing: tuple[torch.Tensor, torch.Tensor] | None
) -> torch.Tensor:
    """Dense reference: Bernoulli negative log-likelihood per cell from logits (0/1 calls).

    ``-log p(x) = softplus(l) - x l``: a dense softplus plus a correction at the ones;
    missing entries ``(rows, cols)`` are taken out again.
    """
    nll = F.softplus(logits).sum(-1)
    rows, cols, calls = nonzero_entries(x)
    nll = nll.index_add(0, rows, -calls * logits[rows, cols])
    if missing is not None:
        missing_rows, missing_cols = missing
        nll = nll.index_add(0, missing_rows, -F.softplus(logits[missing_rows, missing_cols]))
    return nll


def _module(n_genes: int, n_regions: int, **kwargs) -> DCCAModule:
    """A module with :class:`scdcca.DCCA`'s default architecture."""
    defaults = {
        name: p.default
        for name, p in inspect.signature(scdcca.DCCA).parameters.items()
        if name != "mdata"
    }
    return DCCAModule(n_genes, n_regions, **defaults, **kwargs)


def _csr_tensor(matrix: sparse.csr_matrix) -> torch.Tensor:
    return torch.sparse_csr_tensor(
        torch.as_tensor(matrix.indptr),
        torch.as_tensor(matrix.indices),
        torch.as_tensor(matrix.data, dtype=torch.float32),
        size=matrix.shape,
    )


@pytest.fixture(scope="module")
def rows():
    mdata = read("scicar_kidney")
    rna = sparse.csr_matrix(mdata["rna"].X[:96])
    atac = sparse.csr_matrix(mdata["atac"].X[:96])
    dense = {
        "rna": torch.tensor(rna.toarray(), dtype=torch.float32),
        "epi": torch.tensor(atac.toarray(), dtype=torch.float32),
    }
    return {"rna": _csr_tensor(rna), "epi": _csr_tensor(atac)}, dense


def test_negative_binomial_matches_scvi(rows):
    sparse_rows, dense_rows = rows
    generator = torch.Generator().manual_seed(0)
    mu = torch.rand(dense_rows["rna"].shape, generator=generator) * 3
    theta = torch.rand(dense_rows["rna"].shape[1], generator=generator) + 0.1
    expected = -NegativeBinomial(mu=mu, theta=theta).log_prob(dense_rows["rna"]).sum(-1)
    for x in (sparse_rows["rna"], dense_rows["rna"]):
        torch.testing.assert_close(
            negative_binomial_nll(x, mu, theta), expected, rtol=1e-5, atol=1e-2
        )


def test_zero_inflated_negative_binomial_matches_scvi(rows):
    sparse_rows, dense_rows = rows
    generator = torch.Generator().manual_seed(2)
    shape = dense_rows["rna"].shape
    mu = torch.rand(shape, generator=generator) * 3
    theta = torch.rand(shape[1], generator=generator) + 0.1
    zi_logits = torch.randn(shape, generator=generator) * 2
    distribution = ZeroInflatedNegativeBinomial(mu=mu, theta=theta, zi_logits=zi_logits)
    expected = -distribution.log_prob(dense_rows["rna"]).sum(-1)
    for x in (sparse_rows["rna"], dense_rows["rna"]):
        torch.testing.assert_close(
            zero_inflated_negative_binomial_nll(x, mu, theta, zi_logits),
            expected,
            rtol=1e-5,
            atol=1e-2,
        )


@pytest.mark.parametrize("zero_inflated", [False, True])
@pytest.mark.parametrize("per_entry_theta", [False, True])
def test_count_likelihood_gradients_match_scvi(rows, zero_inflated, per_entry_theta):
    """The hand-written gradients equal autograd through scvi-tools' distributions."""
    _, dense_rows = rows
    counts = dense_rows["rna"][:24, :800].double()
    generator = torch.Generator().manual_seed(3)
    shape = counts.shape
    theta_shape = shape if per_entry_theta else shape[1:]
    parameters = {
        "mu": torch.rand(shape, generator=generator, dtype=torch.float64) * 4 + 0.01,
        "theta": torch.rand(theta_shape, generator=generator, dtype=torch.float64) * 3 + 0.05,
        "zi_logits": torch.randn(shape, generator=generator, dtype=torch.float64) * 2,
    }
    if not zero_inflated:
        del parameters["zi_logits"]
    weights = torch.linspace(0.5, 1.5, shape[0], dtype=torch.float64)

    def gradients(nll_fn):
        leaves = {k: v.clone().requires_grad_(True) for k, v in parameters.items()}
        nll = nll_fn(**leaves)
        (nll * weights).sum().backward()
        return nll.detach(), *(leaves[k].grad for k in parameters)

    def reference(mu, theta, zi_logits=None):
        if zi_logits is None:
            distribution = NegativeBinomial(mu=mu, theta=theta)
        else:
            distribution = ZeroInflatedNegativeBinomial(mu=mu, theta=theta, zi_logits=zi_logits)
        return -distribution.log_prob(counts).sum(-1)

    def ours(x):
        if zero_inflated:
            return lambda **p: zero_inflated_negative_binomial_nll(x, **p)
        return lambda **p: negative_binomial_nll(x, **p)

    expected = gradients(reference)
    for x in (counts, counts.to_sparse_csr()):
        for got, want in zip(gradients(ours(x)), expected, strict=True):
            torch.testing.assert_close(got, want, rtol=1e-6, atol=1e-6)


def test_bernoulli_matches_cross_entropy_with_missing_entries(rows):
    _, dense_rows = rows
    calls = dense_rows["epi"].clone()
    calls[0, :50] = float("nan")
    calls[3, calls[3] > 0] = float("nan")
    logits = torch.randn(calls.shape, generator=torch.Generator().manual_seed(1))
    observed = ~torch.isnan(calls)
    expected = (
        F.binary_cross_entropy_with_logits(logits, calls.nan_to_num(), reduction="none") * observed
    ).sum(-1)
    vae = _module(5000, calls.shape[1]).epi
    for x in (calls, calls.to_sparse_csr()):
        prepared, missing = vae.prepare(x)
        torch.testing.assert_close(bernoulli_nll(logits, prepared, missing), expected)


def test_sparse_first_layer_has_dense_values_and_gradients(rows):
    sparse_rows, dense_rows = rows
    layer = SparseInputLinear(dense_rows["epi"].shape[1], 16)
    grad_output = torch.randn(dense_rows["epi"].shape[0], 16)
    grads = []
    for x in (sparse_rows["epi"], dense_rows["epi"]):
        layer.zero_grad()
        out = layer(x)
        out.backward(grad_output)
        grads.append((out.detach(), layer.weight.grad.clone(), layer.bias.grad.clone()))
    for from_sparse, from_dense in zip(*grads, strict=True):
        torch.testing.assert_close(from_sparse, from_dense, rtol=1e-5, atol=1e-5)
    assert torch.equal(row_sums(sparse_rows["epi"]), row_sums(dense_rows["epi"]))


def test_module_losses_and_latents_agree_sparse_vs_dense(rows):
    sparse_rows, dense_rows = rows
    torch.manual_seed(0)
    module = _module(5000, dense_rows["epi"].shape[1], log_mean_epi_depth=3.0).eval()
    outputs = [
        module(batch, loss_kwargs={"attention_weights": {"epi": 5.0}})
        for batch in (sparse_rows, dense_rows)
    ]
    (inf_s, _, loss_s), (inf_d, _, loss_d) = outputs
    torch.testing.assert_close(loss_s.loss, loss_d.loss, rtol=1e-5, atol=1e-3)
    for modality in ("rna", "epi"):
        torch.testing.assert_close(
            inf_s[f"z_{modality}"], inf_d[f"z_{modality}"], atol=1e-5, rtol=1e-5
        )
        torch.testing.assert_close(
            loss_s.reconstruction_loss[modality],
            loss_d.reconstruction_loss[modality],
            rtol=1e-5,
            atol=1e-2,
        )
    assert np.isfinite(float(loss_s.loss))


@pytest.mark.parametrize("block_elements", [2**19, 96 * 1000])
@pytest.mark.parametrize("stored_elements", [2**26, 0])
def test_blockwise_bernoulli_head_matches_dense_loss_and_gradients(
    rows, block_elements, stored_elements, monkeypatch
):
    """Same loss and gradients with the gradient factor kept or recomputed in backward."""
    from scdcca.module import _bernoulli_head
    from scdcca.module._components import RegionBernoulli

    monkeypatch.setattr(_bernoulli_head, "BLOCK_ELEMENTS", block_elements)
    monkeypatch.setattr(_bernoulli_head, "STORED_ELEMENTS", stored_elements)
    _, dense_rows = rows
    calls = dense_rows["epi"].clone()
    calls[2, :300] = float("nan")
    generator = torch.Generator().manual_seed(2)
    hidden = torch.randn(calls.shape[0], 32, generator=generator, requires_grad=True)
    head = torch.nn.Linear(32, calls.shape[1])
    offset = torch.randn(calls.shape[0], 1, generator=generator)
    vae = _module(5000, calls.shape[1]).epi
    prepared, missing = vae.prepare(calls)

    def gradients(loss_fn):
        hidden.grad = None
        head.zero_grad()
        loss = loss_fn()
        (loss * torch.linspace(0.5, 1.5, loss.numel())).sum().backward()
        return loss.detach(), hidden.grad.clone(), head.weight.grad.clone(), head.bias.grad.clone()

    blockwise = gradients(lambda: RegionBernoulli(hidden, head, offset).nll(prepared, missing))
    dense = gradients(lambda: bernoulli_nll(head(hidden) + offset, prepared, missing))
    for got, expected in zip(blockwise, dense, strict=True):
        torch.testing.assert_close(got, expected, rtol=1e-4, atol=1e-4)


def test_training_minibatches_stay_csr_with_int64_indices():
    from scdcca.train._data import SparseDataSplitter

    mdata = read("scicar_kidney")[:300].copy()
    scdcca.DCCA.setup_mudata(mdata, modalities={"rna_layer": "rna", "epi_layer": "atac"})
    model = scdcca.DCCA(mdata)
    splitter = SparseDataSplitter(model.adata_manager, train_size=1.0, batch_size=64)
    splitter.setup()
    raw = next(iter(splitter.train_dataloader()))
    batch = splitter.on_after_batch_transfer(raw, 0)
    for key in ("rna", "epi"):
        assert batch[key].layout == torch.sparse_csr
        assert batch[key].crow_indices().dtype == batch[key].col_indices().dtype == torch.int64
        assert torch.equal(batch[key].to_dense(), raw[key].to_dense())
