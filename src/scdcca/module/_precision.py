"""Precision of the decoder heads' matrix products while training.

The output heads (one row of weights per gene or region) hold almost all of a training
step's arithmetic. With ``"bfloat16"`` their products multiply bfloat16 copies of the inputs
and weights and return float32, as mixed-precision training does: the weights, the
likelihoods, the optimiser and everything outside training (validation, getters) stay
float32. ``"auto"`` picks bfloat16 on CPUs with native bfloat16 arithmetic (AVX512-BF16 or
AMX), where these products run several times faster than in float32.
"""

from __future__ import annotations

from typing import Literal, get_args

import torch

HeadPrecision = Literal["auto", "float32", "bfloat16"]
HEAD_PRECISIONS = get_args(HeadPrecision)


def check_head_precision(precision: str) -> str:
    """Refuse an unknown ``head_precision``."""
    if precision not in HEAD_PRECISIONS:
        raise ValueError(
            f"head_precision must be one of {HEAD_PRECISIONS}, got {precision!r}: 'float32' "
            "keeps full precision, 'bfloat16' multiplies bfloat16 copies in the decoder heads "
            "while training, 'auto' does so on CPUs with native bfloat16 arithmetic."
        )
    return precision


def native_cpu_bfloat16() -> bool:
    """Whether this CPU has bfloat16 dot products (AVX512-BF16 or AMX tiles) that torch uses.

    ``False`` where torch's kernels are limited below AVX-512 (``ATEN_CPU_CAPABILITY=avx2``),
    so that such a run behaves as on a CPU without them.
    """
    if not torch.backends.cpu.get_cpu_capability().startswith("AVX512"):
        return False
    cpu = getattr(torch, "cpu", None)
    checks = ("_is_avx512_bf16_supported", "_is_amx_tile_supported")
    return any(bool(getattr(cpu, name, lambda: False)()) for name in checks)


def head_dtype(precision: str, device: torch.device, training: bool) -> torch.dtype | None:
    """The dtype of the heads' products: bfloat16 only while training, where chosen.

    ``None`` means the operands' own dtype (full precision).
    """
    if not training or precision == "float32":
        return None
    if precision == "bfloat16" or (device.type == "cpu" and native_cpu_bfloat16()):
        return torch.bfloat16
    return None


class _Linear(torch.autograd.Function):
    """``x W^T + b`` with the three products (forward and both gradients) in ``dtype``."""

    @staticmethod
    def forward(ctx, x, weight, bias, dtype):
        x_low, weight_low = x.to(dtype), weight.to(dtype)
        ctx.save_for_backward(x_low, weight_low)
        return torch.mm(x_low, weight_low.t()).to(bias.dtype).add_(bias)

    @staticmethod
    def backward(ctx, grad):
        x_low, weight_low = ctx.saved_tensors
        grad_low = grad.to(x_low.dtype)
        grad_x = torch.mm(grad_low, weight_low).to(grad.dtype) if ctx.needs_input_grad[0] else None
        grad_weight = None
        if ctx.needs_input_grad[1]:
            grad_weight = torch.mm(grad_low.t(), x_low).to(grad.dtype)
        grad_bias = grad.sum(0) if ctx.needs_input_grad[2] else None
        return grad_x, grad_weight, grad_bias, None


def linear(layer: torch.nn.Linear, x: torch.Tensor, dtype: torch.dtype | None) -> torch.Tensor:
    """``layer(x)``, its products multiplied in ``dtype`` (``None``: in full precision)."""
    if dtype is None:
        return layer(x)
    return _Linear.apply(x, layer.weight, layer.bias, dtype)
