"""Training leaves the cores other processes are busy on to them, unless told a number."""

import logging
import subprocess
import sys
import time

import pytest
import scvi
import torch

from scdcca.train import _threads
from scdcca.train._threads import busy_cores, threads_for_training, training_threads


@pytest.fixture
def unchosen(monkeypatch):
    """No thread number chosen by the user (the test session fixes one)."""
    monkeypatch.setattr(scvi.settings, "_num_threads", None)
    for name in ("OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        monkeypatch.delenv(name, raising=False)


def test_busy_cores_reads_the_kernel_count_less_the_reader(tmp_path):
    loadavg = tmp_path / "loadavg"
    loadavg.write_text("1.59 1.44 1.56 3/118 5033\n")
    assert busy_cores(samples=2, interval=0.0, loadavg=loadavg) == 2
    loadavg.write_text("garbled")
    assert busy_cores(samples=2, interval=0.0, loadavg=loadavg) is None
    assert busy_cores(loadavg=tmp_path / "absent") is None


def test_busy_cores_sees_a_running_process():
    if busy_cores() is None:
        pytest.skip("the kernel's count of running threads is not readable here")
    spin = "import time\nend = time.monotonic() + 20\nwhile time.monotonic() < end:\n    pass"
    worker = subprocess.Popen([sys.executable, "-c", spin])
    try:
        time.sleep(1.0)  # the interpreter has started and spins
        assert busy_cores() >= 1
    finally:
        worker.kill()
        worker.wait()


@pytest.mark.usefixtures("unchosen")
def test_training_threads_leave_busy_cores_to_others():
    assert training_threads(busy=0, cores=8, current=8) == 8
    assert training_threads(busy=3, cores=8, current=8) == 5
    assert training_threads(busy=1, cores=2, current=2) == 1
    assert training_threads(busy=5, cores=2, current=2) == 1  # at least one
    assert training_threads(busy=0, cores=8, current=4) == 4  # never more than torch's
    assert training_threads(busy=None, cores=8, current=8) == 8  # unknown: unchanged


def test_a_chosen_number_is_kept(monkeypatch):
    monkeypatch.setattr(scvi.settings, "_num_threads", 2)
    assert training_threads(busy=7, cores=8, current=2) == 2
    monkeypatch.setattr(scvi.settings, "_num_threads", None)
    monkeypatch.setenv("OMP_NUM_THREADS", "4")
    assert training_threads(busy=7, cores=8, current=4) == 4


@pytest.mark.usefixtures("unchosen")
def test_threads_are_restored_after_training(monkeypatch, caplog):
    monkeypatch.setattr(_threads, "busy_cores", lambda: 100)
    before = torch.get_num_threads()
    with caplog.at_level(logging.INFO, logger=_threads.__name__):
        with threads_for_training() as threads:
            assert threads == 1 == torch.get_num_threads()
    assert torch.get_num_threads() == before
    if before > 1:
        assert "scvi.settings.num_threads" in caplog.text
