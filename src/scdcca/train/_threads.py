"""How many CPU threads a training uses: fewer than torch's default on a busy machine.

Torch's CPU kernels run one thread per core by default and wait for each other at every
operation. When other processes keep some of those cores busy, the threads wait on the
slowest one and a training runs many times slower than with fewer threads, while a thread too
few costs at most that thread's share. :func:`training_threads` therefore leaves the cores
that other processes are using at the start of training to them. A number chosen by the user
(``scvi.settings.num_threads``, or ``OMP_NUM_THREADS`` / ``MKL_NUM_THREADS`` in the
environment) is used as it is.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import scvi
import torch

logger = logging.getLogger(__name__)

#: Environment variables through which a user fixes the number of CPU threads.
_THREAD_VARIABLES = ("OMP_NUM_THREADS", "MKL_NUM_THREADS")


def busy_cores(
    samples: int = 5, interval: float = 0.02, loadavg: Path | None = None
) -> int | None:
    """Processes other than this one running now, from ``/proc/loadavg`` (``None``: unknown).

    The kernel's count of runnable threads is sampled ``samples`` times ``interval`` seconds
    apart; the smallest count, less the thread reading it, is taken, so a process that only
    wakes up briefly is not counted.
    """
    path = Path("/proc/loadavg") if loadavg is None else loadavg
    counts = []
    for sample in range(samples):
        try:
            running = path.read_text().split()[3].split("/")[0]
            counts.append(int(running))
        except (OSError, IndexError, ValueError):
            return None
        if sample < samples - 1:
            time.sleep(interval)
    return max(0, min(counts) - 1)


def available_cores() -> int:
    """CPU cores this process may run on (its affinity where the platform reports one)."""
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


def training_threads(busy: int | None, cores: int, current: int) -> int:
    """Threads for a training: ``current`` (torch's setting), less the ``busy`` cores.

    Never more than ``current`` and never fewer than one. ``current`` is kept when the user
    chose the number (``scvi.settings.num_threads`` or a thread variable of the environment)
    or when ``busy`` is unknown.
    """
    chosen = scvi.settings.num_threads is not None or any(
        os.environ.get(name) for name in _THREAD_VARIABLES
    )
    if chosen or busy is None:
        return current
    return max(1, min(current, cores - busy))


@contextmanager
def threads_for_training() -> Iterator[int]:
    """Run the ``with`` block on :func:`training_threads` threads; torch's setting after it.

    Yields the number of threads used, and logs it when it is lower than torch's setting.
    """
    current = torch.get_num_threads()
    busy, cores = busy_cores(), available_cores()
    threads = training_threads(busy, cores, current)
    if threads < current:
        logger.info(
            "Training on %d CPU thread(s) instead of %d: other processes are running on %d of "
            "this machine's %d cores. Set `scvi.settings.num_threads` to choose.",
            threads,
            current,
            busy,
            cores,
        )
    torch.set_num_threads(threads)
    try:
        yield threads
    finally:
        torch.set_num_threads(current)
