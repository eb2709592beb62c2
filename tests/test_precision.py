"""Mixed-precision decoder heads: bfloat16 products while training, float32 everywhere else."""

from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pytest
import torch
from scipy import sparse

import scdcca
from scdcca._constants import EPI_KEY, RNA_KEY
from scdcca.module._bernoulli_head import bernoulli_head_nll
from scdcca.module._module import DCCAModule
from scdcca.module._precision import head_dtype, native_cpu_bfloat16

from .conftest import read
from .test_sparse import _csr_tensor


@pytest.fixture(scope="module")
def batch():
    mdata = read("scicar_kidney")
    rna = sparse.csr_matrix(mdata["rna"].X[:128])
    atac = sparse.csr_matrix(mdata["atac"].X[:128])
    return {RNA_KEY: _csr_tensor(rna), EPI_KEY: _csr_tensor(atac)}


def _losses_and_gradients(module: DCCAModule, batch: dict) -> tuple[dict, dict]:
    """Per-modality reconstruction losses and head gradients of one training step."""
    torch.manual_seed(0)  # same dropout masks and posterior samples for every module
    module.zero_grad()
    _, _, output = module(batch)
    output.loss.backward()
    losses = {m: output.reconstruction_loss[m].detach() for m in ("rna", "epi")}
    gradients = {
        "rna": module.rna.scale_head.weight.grad.clone(),
        "epi": module.epi.output_head.weight.grad.clone(),
    }
    return losses, gradients


def _module(precision: str, n_genes: int, n_regions: int) -> DCCAModule:
    torch.manual_seed(1)
    return DCCAModule(
        n_genes,
        n_regions,
        n_latent=20,
        n_hidden=128,
        n_layers=1,
        dropout_rate=0.1,
        rna_likelihood="zinb",
        epi_likelihood="bernoulli",
        rna_input_dropout=0.3,
        head_precision=precision,
        log_mean_epi_depth=3.0,
    )


def test_bfloat16_heads_train_close_to_float32_and_evaluate_identically(batch):
    n_genes, n_regions = batch[RNA_KEY].shape[1], batch[EPI_KEY].shape[1]
    full, mixed = _module("float32", n_genes, n_regions), _module("bfloat16", n_genes, n_regions)
    mixed.load_state_dict(full.state_dict())
    full.train(), mixed.train()
    (loss_full, grad_full), (loss_mixed, grad_mixed) = (
        _losses_and_gradients(m, batch) for m in (full, mixed)
    )
    for modality in ("rna", "epi"):
        # bfloat16 keeps 8 bits of mantissa: per-cell losses within 1 %, gradients aligned
        torch.testing.assert_close(loss_mixed[modality], loss_full[modality], rtol=1e-2, atol=0)
        assert not torch.equal(loss_mixed[modality], loss_full[modality])
        cosine = torch.nn.functional.cosine_similarity(
            grad_mixed[modality].flatten(), grad_full[modality].flatten(), dim=0
        )
        assert cosine > 0.99
        assert grad_mixed[modality].dtype == torch.float32
    full.eval(), mixed.eval()
    with torch.no_grad():
        for modality in ("rna", "epi"):
            z = full.posterior_mean(modality, batch)
            library = full.library(modality, batch)
            expected = full.vae(modality).normalized(full.vae(modality).decode(z, library))
            got = mixed.vae(modality).normalized(mixed.vae(modality).decode(z, library))
            torch.testing.assert_close(got, expected, rtol=0, atol=0)


@pytest.mark.parametrize("stored_elements", [2**23, 0])
def test_blockwise_head_gradients_in_bfloat16_match_float32(stored_elements, monkeypatch):
    """Kept or recomputed gradient factor, the bfloat16 products agree with float32."""
    from scdcca.module import _bernoulli_head

    monkeypatch.setattr(_bernoulli_head, "STORED_ELEMENTS_LOW_PRECISION", stored_elements)
    generator = torch.Generator().manual_seed(0)
    hidden = torch.randn(64, 32, generator=generator, requires_grad=True)
    weight = (torch.randn(3000, 32, generator=generator) * 0.2).requires_grad_(True)
    bias = torch.zeros(3000, requires_grad=True)
    offset = torch.zeros(64, 1)
    calls = sparse.random(64, 3000, density=0.02, format="csr", random_state=0)
    calls.data[:] = 1.0
    rows = torch.as_tensor(np.repeat(np.arange(64), np.diff(calls.indptr)))
    cols = torch.as_tensor(calls.indices, dtype=torch.long)
    values = torch.ones(len(cols))
    results = []
    for dtype in (None, torch.bfloat16):
        for tensor in (hidden, weight, bias):
            tensor.grad = None
        nll = bernoulli_head_nll(hidden, weight, bias, offset, (rows, cols, values), dtype=dtype)
        nll.sum().backward()
        results.append((nll.detach(), hidden.grad.clone(), weight.grad.clone(), bias.grad))
    for full, mixed in zip(*results, strict=True):
        assert mixed.dtype == torch.float32
        torch.testing.assert_close(mixed, full, rtol=2e-2, atol=2e-2 * float(full.abs().max()))


def test_head_precision_rule():
    cpu = torch.device("cpu")
    assert head_dtype("float32", cpu, training=True) is None
    assert head_dtype("bfloat16", cpu, training=True) == torch.bfloat16
    assert head_dtype("bfloat16", cpu, training=False) is None
    auto = head_dtype("auto", cpu, training=True)
    assert auto == (torch.bfloat16 if native_cpu_bfloat16() else None)
    assert head_dtype("auto", torch.device("meta"), training=True) is None


def test_auto_keeps_float32_where_torch_is_limited_to_avx2():
    # torch's kernels limited to AVX2 behave as on a CPU without bfloat16 arithmetic
    code = (
        "import torch; from scdcca.module._precision import head_dtype; "
        "print(torch.backends.cpu.get_cpu_capability(), "
        "head_dtype('auto', torch.device('cpu'), training=True))"
    )
    env = {**os.environ, "ATEN_CPU_CAPABILITY": "avx2"}
    out = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True
    ).stdout.split()
    if out[0] != "AVX2":  # a CPU without AVX2: torch runs its default kernels
        assert out[0] == "DEFAULT"
    assert out[1] == "None"


def test_unknown_head_precision_is_refused(kidney):
    scdcca.DCCA.setup_mudata(kidney, modalities={"rna_layer": "rna", "epi_layer": "atac"})
    with pytest.raises(ValueError, match="head_precision must be one of"):
        scdcca.DCCA(kidney, head_precision="float16")
