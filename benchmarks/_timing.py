"""Shared measurement helpers for the speed benchmarks: epoch timer, peak RSS, compute floor."""

from __future__ import annotations

import threading
import time

import lightning.pytorch as pl
import numpy as np
import psutil
import torch


class EpochTimer(pl.Callback):
    """Wall time of each training epoch (validation excluded when it is disabled)."""

    def __init__(self):
        self.seconds: list[float] = []
        self._start = 0.0

    def on_train_epoch_start(self, trainer, pl_module):
        self._start = time.perf_counter()

    def on_train_epoch_end(self, trainer, pl_module):
        synchronize(str(pl_module.device))
        self.seconds.append(time.perf_counter() - self._start)

    def median(self, skip_first: bool = True) -> float:
        """Median epoch time, without the first (warm-up) epoch when there are others."""
        values = self.seconds[1:] if skip_first and len(self.seconds) > 1 else self.seconds
        return float(np.median(values))


class PeakRSS:
    """Peak resident memory of this process while the ``with`` block runs (sampled)."""

    def __init__(self, interval: float = 0.02):
        self.interval = interval
        self.peak = 0
        self._stop = threading.Event()
        self._process = psutil.Process()

    def _sample(self):
        while not self._stop.is_set():
            self.peak = max(self.peak, self._process.memory_info().rss)
            time.sleep(self.interval)

    def __enter__(self):
        self.peak = self._process.memory_info().rss
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, self._process.memory_info().rss)

    @property
    def gib(self) -> float:
        """Peak in GiB."""
        return self.peak / 2**30


def matmul_gflops(
    n_features: int,
    n_hidden: int = 128,
    batch: int = 128,
    repeat: int = 10,
    rounds: int = 5,
    dtype: torch.dtype = torch.float32,
    device: str = "cpu",
) -> float:
    """GEMM rate in GFLOP/s of a decoder head (batch x hidden x features): the best round.

    Each of ``rounds`` rounds times ``repeat`` products; the fastest round stands for what the
    machine can do (a floor is a best case), so one slow spell does not lower it.
    """
    a = torch.randn(batch, n_hidden, dtype=dtype, device=device)
    b = torch.randn(n_hidden, n_features, dtype=dtype, device=device)
    for _ in range(3):
        a @ b
    best = float("inf")
    for _ in range(rounds):
        synchronize(device)
        start = time.perf_counter()
        for _ in range(repeat):
            a @ b
        synchronize(device)
        best = min(best, (time.perf_counter() - start) / repeat)
    return 2.0 * batch * n_hidden * n_features / best / 1e9


def dcca_flops_per_cell(
    n_genes: int,
    n_regions: int,
    rna_nnz: float,
    epi_nnz: float,
    n_hidden: int = 128,
    n_latent: int = 10,
    rna_heads: int = 2,
) -> float:
    """Matrix FLOPs one cell costs per epoch (both VAEs, forward and backward).

    Dense layers cost ``2 in out`` forward and ``4 in out`` backward (input and weight
    gradients); the sparse first layers ``2 nnz out`` each way (no input gradient). The RNA
    decoder has ``rna_heads`` output heads over the genes (2 for ZINB: mean and zero
    inflation; 1 for NB).
    """

    def dense(n_in: int, n_out: int) -> float:
        return 6.0 * n_in * n_out

    def sparse_first(nnz: float, n_out: int) -> float:
        return 4.0 * nnz * n_out

    def per_vae(n_features: int, nnz: float, heads: int) -> float:
        return (
            sparse_first(nnz, n_hidden)
            + 2 * dense(n_hidden, n_latent)  # mean and variance heads
            + dense(n_latent, n_hidden)  # decoder hidden layer
            + heads * dense(n_hidden, n_features)  # decoder output heads
        )

    return per_vae(n_genes, rna_nnz, rna_heads) + per_vae(n_regions, epi_nnz, 1)


def synchronize(device: str) -> None:
    """Wait for the work queued on ``device`` (a no-op on the CPU)."""
    if torch.device(device).type == "cuda":
        torch.cuda.synchronize(device)


def reset_gpu_peak(accelerator: str) -> None:
    """Start counting the peak GPU memory afresh (nothing to do on the CPU)."""
    if accelerator == "gpu":
        synchronize("cuda")
        torch.cuda.reset_peak_memory_stats()


def gpu_peak_gib(accelerator: str) -> float | None:
    """Most GPU memory torch allocated since the last reset, in GiB (``None`` on the CPU)."""
    return torch.cuda.max_memory_allocated() / 2**30 if accelerator == "gpu" else None
