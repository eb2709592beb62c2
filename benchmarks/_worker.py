"""One method fit per process: the parent's launcher and the worker's entry point.

The parent writes a job description (JSON) and the cell split (``.npz``) into the run's
temporary folder and starts ``python benchmarks/run.py --worker <job.json>`` with the thread
environment of ``--threads`` (``python``: the parent's interpreter, or the one ``--peer-python``
names for the method). The worker loads the compact MuData, runs the method (see
``_methods.py``), and writes ``<job>.npz`` (the method's arrays) and ``<job>.meta.json``:
``fit_s`` (wall time of the training only), ``peak_rss_mib`` (peak resident memory of the
worker process, ``VmHWM``: Python, imports and the data included) and ``info`` (epochs
trained, ``stopped_by``, ...).
"""

from __future__ import annotations

import json
import os
import resource
import subprocess
import sys
import time
import traceback
from dataclasses import dataclass
from pathlib import Path

import numpy as np

RUNNER = Path(__file__).resolve().parent / "run.py"


def thread_environment(threads: int) -> dict[str, str]:
    """Environment variables that cap BLAS/OpenMP/numba/XLA threads at ``threads``."""
    value = str(threads)
    return {
        "OMP_NUM_THREADS": value,
        "OPENBLAS_NUM_THREADS": value,
        "MKL_NUM_THREADS": value,
        "NUMEXPR_NUM_THREADS": value,
        "NUMBA_NUM_THREADS": value,
        "VECLIB_MAXIMUM_THREADS": value,
        "XLA_FLAGS": f"--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads={value}",
        "JAX_PLATFORMS": "cpu",
        "PYTHONWARNINGS": "ignore",
    }


@dataclass
class Outcome:
    """What came back from one worker."""

    arrays: dict[str, np.ndarray]
    fit_s: float
    peak_rss_mib: float
    info: dict
    error: str | None = None


def launch(
    tmp: Path,
    name: str,
    job: dict,
    train: np.ndarray,
    test: np.ndarray,
    threads: int,
    timeout_s: float | None,
    python: str | None = None,
) -> Outcome:
    """Run one job in a fresh Python process and collect its results.

    Parameters
    ----------
    tmp
        The run's temporary folder (holds ``data.h5mu``).
    name
        File stem of this job's files.
    job
        Method, task, seed and caps (see :func:`work`).
    train, test
        Cell indices of the split.
    threads
        Torch/BLAS threads of the worker.
    timeout_s
        The worker is killed after this many seconds (the outcome then carries an error);
        ``None``: no limit.
    python
        Interpreter of the worker (``--peer-python``); ``None``: this process's own.
    """
    np.savez(tmp / f"{name}.split.npz", train=train, test=test)
    spec = {**job, "data": str(tmp / "data.h5mu"), "split": str(tmp / f"{name}.split.npz")}
    spec |= {"out": str(tmp / f"{name}.npz"), "meta": str(tmp / f"{name}.meta.json")}
    spec |= {"threads": threads, "workdir": str(tmp / name)}
    (tmp / f"{name}.json").write_text(json.dumps(spec))
    env = {**os.environ, **thread_environment(threads)}
    log = tmp / f"{name}.log"
    start = time.perf_counter()
    try:
        with open(log, "w") as handle:
            process = subprocess.run(
                [python or sys.executable, str(RUNNER), "--worker", str(tmp / f"{name}.json")],
                stdout=handle,
                stderr=subprocess.STDOUT,
                env=env,
                timeout=timeout_s,
                check=False,
            )
        returncode = process.returncode
    except subprocess.TimeoutExpired:
        return Outcome({}, np.nan, np.nan, {}, f"killed after {timeout_s:.0f} s")
    meta_path = Path(spec["meta"])
    if returncode != 0 or not meta_path.exists():
        tail = log.read_text()[-2000:]
        print(f"    worker {name} failed (exit {returncode}):\n{tail}", flush=True)
        if returncode < 0:
            reason = f"killed by signal {-returncode}"
        else:
            lines = [line.strip() for line in tail.splitlines() if line.strip()]
            errors = [line for line in lines if "Error" in line or "Exception" in line]
            reason = (errors or lines or [f"exit {returncode}"])[-1]
        return Outcome({}, np.nan, np.nan, {}, reason[:300])
    meta = json.loads(meta_path.read_text())
    with np.load(spec["out"], allow_pickle=False) as stored:
        arrays = {key: stored[key] for key in stored.files}
    for path in (spec["out"], spec["split"]):
        Path(path).unlink(missing_ok=True)
    print(
        f"    {name}: fit {meta['fit_s']:.1f} s, peak RSS {meta['peak_rss_mib']:.0f} MiB, "
        f"process {time.perf_counter() - start:.0f} s {meta['info'] or ''}",
        flush=True,
    )
    return Outcome(arrays, meta["fit_s"], meta["peak_rss_mib"], meta["info"])


def peak_rss_mib() -> float:
    """Peak resident memory of this process in MiB.

    Linux: ``VmHWM`` of ``/proc/self/status``, which starts afresh at ``exec`` (the
    ``ru_maxrss`` of ``getrusage`` keeps the parent's resident size from before the ``fork``
    of ``subprocess``, so it would count the parent's memory). Elsewhere: ``ru_maxrss``.
    """
    status = Path("/proc/self/status")
    if status.exists():
        for line in status.read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024  # kB
    divisor = 2**20 if sys.platform == "darwin" else 2**10  # bytes on macOS, KiB on Linux
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / divisor


def work(job_path: str) -> None:
    """Worker entry point: run the job described in ``job_path`` and write its results."""
    spec = json.loads(Path(job_path).read_text())
    import warnings

    warnings.filterwarnings("ignore")
    import torch

    torch.set_num_threads(spec["threads"])
    try:
        torch.set_num_interop_threads(spec["threads"])
    except RuntimeError:
        pass
    import mudata

    from _job import Job
    from _methods import METHODS
    from _provenance import DETERMINISTIC

    mudata.set_options(pull_on_update=False)
    mdata = mudata.read_h5mu(spec["data"])
    with np.load(spec["split"]) as split:
        train, test = split["train"], split["test"]
    workdir = Path(spec["workdir"])
    workdir.mkdir(parents=True, exist_ok=True)
    job = Job(
        mdata=mdata,
        task=spec["task"],
        seed=spec["seed"],
        train=train,
        test=test,
        has_batch=spec["has_batch"],
        binarize=spec["binarize"],
        max_epochs=spec["max_epochs"],
        max_time_min=spec["max_time_min"],
        workdir=workdir,
        options=spec.get("options", {}),
        checkpoint=spec.get("checkpoint"),
    )
    function, _ = METHODS[spec["method"]]
    try:
        arrays = function(job)
    except Exception:
        traceback.print_exc()
        sys.exit(1)
    job.info.setdefault("stopped_by", DETERMINISTIC)  # the deep methods and MOFA+ set theirs
    np.savez(
        spec["out"],
        **{
            k: np.asarray(v, dtype=np.float32) if "graph_indices" not in k else np.asarray(v)
            for k, v in arrays.items()
        },
    )
    peak = peak_rss_mib()
    meta = {"fit_s": job.clock.seconds, "peak_rss_mib": peak, "info": job.info}
    Path(spec["meta"]).write_text(json.dumps(meta))
