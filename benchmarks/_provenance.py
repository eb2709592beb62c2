"""Provenance of each result row: the code version and what stopped the training.

``version``: the scdcca package version, the short commit of the checkout that ran the
benchmark and ``-dirty`` when ``src/`` or ``benchmarks/`` (its ``results/`` folder aside) has
uncommitted changes, e.g. ``0.1.0+g2e3331e`` or ``0.1.0+g2e3331e-dirty``.

``stopped_by``: why a fit ended.

- ``early_stopping``: the model's own stopping rule (Lightning's ``EarlyStopping``; for DCCA
  every phase ended on its plateau rule);
- ``max_epochs``: the epoch limit was reached (the model's default or ``--max-epochs``);
- ``max_time``: Lightning's ``max_time`` (``--max-time``) ended the fit;
- ``diverged``: early stopping ended the fit on a non-finite loss;
- ``converged``: MOFA+ met its ELBO convergence criterion before its iteration limit;
- ``deterministic``: methods without training iterations (PCA, LSI, WNN, kNN, label means;
  not ``n/a``, which pandas reads back as a missing value, like the empty ``stopped_by`` of
  rows from before this column);
- ``unknown``: a Lightning fit that ended for none of these reasons (e.g. interrupted).

A method with several fits (scVI + PeakVI, DCCA's phases, cross-modal folds) reports the
first of ``max_time``, ``max_epochs``, ``diverged``, ``unknown``, ``early_stopping`` that any
of its fits reports, so a cap that was hit anywhere always shows.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
# most telling first: a cap hit by any fit of a method names the method's row
DETERMINISTIC = "deterministic"
PRIORITY = (
    "max_time",
    "max_epochs",
    "diverged",
    "unknown",
    "early_stopping",
    "converged",
    DETERMINISTIC,
)


def code_version(root: Path = ROOT) -> str:
    """``<package version>+g<short commit>[-dirty]`` of the checkout at ``root``.

    ``-dirty``: uncommitted (or untracked) files in ``src/`` or ``benchmarks/``, the results
    folder ``benchmarks/results/`` excepted. Without git: ``<package version>+unknown``.
    """
    from importlib.metadata import PackageNotFoundError, version

    try:
        package = version("scdcca")
    except PackageNotFoundError:
        package = "0.0.0"

    def git(*arguments: str) -> str:
        done = subprocess.run(
            ["git", "-C", str(root), *arguments],
            capture_output=True,
            text=True,
            check=True,
            timeout=60,
        )
        return done.stdout.strip()

    try:
        commit = git("rev-parse", "--short=7", "HEAD")
        changes = git(
            "status", "--porcelain", "--", "src", "benchmarks", ":(exclude)benchmarks/results"
        )
    except (OSError, subprocess.SubprocessError):
        return f"{package}+unknown"
    return f"{package}+g{commit}" + ("-dirty" if changes else "")


def stop_reason(trainer) -> str:
    """Why the Lightning ``trainer``'s fit ended (called when its training has ended)."""
    from lightning.pytorch.callbacks import EarlyStopping, Timer

    for callback in trainer.callbacks:
        if isinstance(callback, EarlyStopping):
            reason = getattr(getattr(callback, "stopping_reason", None), "name", "")
            if reason == "NON_FINITE_METRIC":
                return "diverged"
            if callback.stopped_epoch > 0 or reason not in ("", "NOT_STOPPED"):
                return "early_stopping"
    max_epochs = trainer.max_epochs
    if max_epochs is not None and max_epochs >= 0 and trainer.current_epoch >= max_epochs:
        return "max_epochs"
    for callback in trainer.callbacks:
        duration = getattr(callback, "_duration", None)
        if isinstance(callback, Timer) and duration is not None:
            if callback.time_elapsed() >= duration:
                return "max_time"
    return "unknown"


def combined(reasons: list[str]) -> str:
    """One ``stopped_by`` for several fits (see the module docstring); ``""`` for none."""
    present = [r for r in reasons if r]
    for reason in PRIORITY:
        if reason in present:
            return reason
    return present[0] if present else ""


def stop_recorder(reasons: list[str], epochs: list[int]):
    """A Lightning callback that appends, after each fit, :func:`stop_reason` to ``reasons``
    and the number of epochs trained (a resumed fit's earlier epochs included) to ``epochs``.
    """
    from lightning.pytorch.callbacks import Callback

    class StopRecorder(Callback):
        def on_train_end(self, trainer, pl_module) -> None:
            reasons.append(stop_reason(trainer))
            epochs.append(trainer.current_epoch)

    return StopRecorder()


def machine(accelerator: str = "cpu") -> dict[str, str]:
    """The hardware a timing ran on: CPU model and instruction set, cores, GPU name.

    ``isa``: ``"AVX512-BF16/AMX"``, ``"AVX512-BF16"``, ``"AVX512"``, ``"AVX2"`` or ``"other"``
    from ``/proc/cpuinfo`` (``"unknown"`` where it cannot be read); ``torch_isa``: the
    instruction set torch's kernels use (lower where ``ATEN_CPU_CAPABILITY`` limits them).
    """
    import os

    import torch

    model, flags = "unknown", set()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            key, _, value = line.partition(":")
            if key.strip() == "model name" and model == "unknown":
                model = value.strip()
            elif key.strip() == "flags" and not flags:
                flags = set(value.split())
    except OSError:
        pass
    if not flags:
        isa = "unknown"
    elif "avx512_bf16" in flags:
        isa = "AVX512-BF16/AMX" if "amx_bf16" in flags else "AVX512-BF16"
    elif "avx512f" in flags:
        isa = "AVX512"
    elif "avx2" in flags:
        isa = "AVX2"
    else:
        isa = "other"
    out = {
        "cpu": model,
        "isa": isa,
        "torch_isa": torch.backends.cpu.get_cpu_capability(),
        "cores": str(os.cpu_count()),
    }
    if accelerator == "gpu":
        out["gpu"] = torch.cuda.get_device_name()
    return out


def append_rows(path: Path, rows: list[dict]) -> None:
    """Append ``rows`` to the CSV at ``path`` (created with their columns if absent).

    Columns a new row lacks stay empty; columns new to the file are added to it.
    """
    import pandas as pd

    new = pd.DataFrame(rows)
    if path.exists():
        new = pd.concat([pd.read_csv(path), new], ignore_index=True)
    path.parent.mkdir(parents=True, exist_ok=True)
    new.to_csv(path, index=False)
