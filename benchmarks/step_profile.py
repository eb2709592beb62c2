"""Where one training minibatch of scdcca spends its time on this machine.

Usage::

    python benchmarks/step_profile.py [--dataset scicar_kidney] [--epochs 3] [--threads 2]
                                 [--batch-size 128] [--data-dir ../shared/data]

Trains DCCA with its defaults (alternating schedule: every minibatch updates both VAEs) for
``--epochs`` epochs without validation passes. Lightning's ``SimpleProfiler`` times every
epoch after the first (warm-up) but the last; per minibatch:

- ``data``: fetching the next minibatch and moving it to the device;
- ``forward``: the training step (the teacher's latents, both VAEs, the likelihoods, which
  also compute their own gradient factors);
- ``backward``: autograd's backward pass;
- ``optimiser``: Adam's update and zeroing the gradients;
- ``framework``: the rest of the epoch (Lightning's loop, callbacks, logging).

Torch's profiler records the last epoch's operators and splits their own time into matrix
products, transcendental element-wise functions (sigmoid, softplus, log, log-gamma, ...),
gathers, scatters and copies, other element-wise work and reductions, and Adam's kernel.
``floor`` is the minibatch's matrix FLOPs (both VAEs, forward and backward) at this
machine's measured GEMM rate in the dtype of the decoder heads, and ``fraction_of_floor``
that time over the measured minibatch. One row is appended to ``--csv``
(``benchmarks/results/profile.csv``) with the CPU, its instruction set and the one torch
used. A newer CPU behaves as a plain AVX2 one when torch's kernels, MKL and oneDNN are
limited to AVX2 (``head_precision="auto"`` then keeps float32 heads)::

    ATEN_CPU_CAPABILITY=avx2 MKL_ENABLE_INSTRUCTIONS=AVX2 ONEDNN_MAX_CPU_ISA=AVX2 \\
        python benchmarks/step_profile.py
"""

from __future__ import annotations

import argparse
import tempfile
import time
import warnings
from collections import Counter
from pathlib import Path

import mudata
import scvi
import torch
from lightning.pytorch.callbacks import Callback
from lightning.pytorch.profilers import SimpleProfiler

import scdcca
from _provenance import append_rows, code_version, machine
from _timing import dcca_flops_per_cell, matmul_gflops
from scdcca.module._precision import head_dtype
from speed import DATA, EPIGENOME

GEMM = {"aten::mm", "aten::addmm", "aten::addmv_", "aten::bmm", "aten::mv"}
TRANSCENDENTAL = {
    "aten::sigmoid", "aten::sigmoid_", "aten::softplus", "aten::log", "aten::log_",
    "aten::log1p", "aten::exp", "aten::exp_", "aten::lgamma", "aten::digamma", "aten::sqrt",
    "aten::_softmax", "aten::_softmax_backward_data", "aten::log_sigmoid_forward",
}  # fmt: skip
GATHER = {
    "aten::copy_", "aten::index", "aten::_index_put_impl_", "aten::index_select",
    "aten::index_add_", "aten::sort", "aten::repeat_interleave", "aten::searchsorted",
    "aten::bincount", "aten::cumsum", "aten::_embedding_bag",
    "aten::_embedding_bag_forward_only", "aten::gather", "aten::scatter_add_",
}  # fmt: skip


class LastEpochOperators(Callback):
    """Torch's operator profile of the fit's last epoch."""

    def __init__(self, last_epoch: int):
        self.last_epoch, self.profile = last_epoch, None

    def on_train_epoch_start(self, trainer, pl_module) -> None:
        if trainer.current_epoch == self.last_epoch:
            self.profile = torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU])
            self.profile.__enter__()

    def on_train_epoch_end(self, trainer, pl_module) -> None:
        if trainer.current_epoch == self.last_epoch:
            self.profile.__exit__(None, None, None)

    def shares(self) -> dict[str, float]:
        """Fraction of the operators' own time in each kind of work."""
        kinds: Counter = Counter()
        for event in self.profile.key_averages():
            name = event.key
            if name in GEMM:
                kind = "gemm"
            elif name in TRANSCENDENTAL:
                kind = "transcendental"
            elif name in GATHER:
                kind = "gather_copy"
            elif name == "aten::_fused_adam_":
                kind = "adam_kernel"
            elif name.startswith("aten::"):
                kind = "other_elementwise"
            else:
                continue  # Python and autograd records hold their operators' time
            kinds[kind] += event.self_cpu_time_total
        total = sum(kinds.values())
        return {f"ops_{kind}": round(value / total, 3) for kind, value in kinds.items()}


def minibatch_parts(profiler: SimpleProfiler, n_batches: int, epochs: slice) -> dict:
    """Seconds per minibatch in data, forward, backward, optimiser and framework."""
    durations = profiler.recorded_durations

    def per_batch(*names: str) -> float:
        total = 0.0
        for name in names:
            calls = [key for key in durations if key.endswith(name)]
            if len(calls) != 1:
                raise KeyError(f"no single profiler action ending in {name!r}: {calls}")
            values = durations[calls[0]]
            total += sum(values[epochs.start * n_batches : epochs.stop * n_batches])
        return total / (n_batches * (epochs.stop - epochs.start))

    epoch = sum(durations["run_training_epoch"][epochs]) / (epochs.stop - epochs.start)
    forward, backward = per_batch(".training_step"), per_batch(".backward")
    parts = {
        "data": per_batch(".train_dataloader_next", ".batch_to_device"),
        "forward": forward,
        "backward": backward,
        "optimiser": per_batch(".optimizer_step", ".optimizer_zero_grad") - forward - backward,
    }
    parts["framework"] = epoch / n_batches - sum(parts.values())
    return {"minibatch_s": epoch / n_batches} | {f"{k}_s": v for k, v in parts.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--dataset", default="scicar_kidney", choices=list(EPIGENOME))
    parser.add_argument("--epochs", type=int, default=4, help="at least 3")
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--data-dir", type=Path, default=DATA)
    parser.add_argument(
        "--csv", type=Path, default=Path(__file__).parent / "results" / "profile.csv"
    )
    args = parser.parse_args()
    if args.epochs < 3:
        parser.error("--epochs must be at least 3 (warm-up, timed, operator profile)")
    warnings.filterwarnings("ignore")
    scvi.settings.num_threads = args.threads
    scvi.settings.seed = 0
    epi = EPIGENOME[args.dataset]
    mdata = mudata.read_h5mu(args.data_dir / f"{args.dataset}.h5mu")
    scdcca.DCCA.setup_mudata(mdata, modalities={"rna_layer": "rna", "epi_layer": epi})
    model = scdcca.DCCA(mdata)
    # the profiler's report goes to a file nobody reads: the row below holds what matters
    profiler = SimpleProfiler(dirpath=tempfile.mkdtemp(), filename="simple")
    operators = LastEpochOperators(args.epochs - 1)
    model.train(
        max_epochs_per_phase=args.epochs,
        patience=10**6,
        refine_epi_decoder=False,
        batch_size=args.batch_size,
        check_val_every_n_epoch=10**6,
        enable_progress_bar=False,
        profiler=profiler,
        callbacks=[operators],
    )
    n_train = round(0.9 * mdata.n_obs)
    n_batches = -(-n_train // args.batch_size)
    parts = minibatch_parts(profiler, n_batches, slice(1, args.epochs - 1))

    rna, atac = mdata["rna"].X, mdata[epi].X
    flops = args.batch_size * dcca_flops_per_cell(
        rna.shape[1], atac.shape[1], rna.nnz / rna.shape[0], atac.nnz / atac.shape[0]
    )
    dtype = head_dtype("auto", torch.device("cpu"), training=True) or torch.float32
    gflops = matmul_gflops(atac.shape[1], batch=args.batch_size, dtype=dtype, device="cpu")
    floor = flops / (gflops * 1e9)
    row = {
        "date": time.strftime("%Y-%m-%d"),
        "version": code_version(),
        **machine(),
        "threads": args.threads,
        "dataset": args.dataset,
        "batch_size": args.batch_size,
        "head_dtype": str(dtype).removeprefix("torch."),
        "gemm_gflops": round(gflops, 1),
        "floor_s": round(floor, 5),
        **{key: round(value, 5) for key, value in parts.items()},
        "fraction_of_floor": round(floor / parts["minibatch_s"], 3),
        **operators.shares(),
    }
    append_rows(args.csv, [row])
    for key, value in row.items():
        print(f"{key}: {value}")


if __name__ == "__main__":
    main()
