"""The README's "Use" block, run as written on more than 8,192 cells (SNARE-seq cortex)."""

from __future__ import annotations

import re
from importlib.resources import files
from pathlib import Path

import matplotlib
import pytest

README = Path(__file__).resolve().parents[1] / "README.md"


def _use_block() -> str:
    text = README.read_text()
    section = text[text.index("## Use") :]
    return re.search(r"```python\n(.*?)```", section, re.S).group(1)


@pytest.mark.slow
def test_the_use_block_runs_on_snare_cortex_and_writes_a_proportionate_file(tmp_path, monkeypatch):
    matplotlib.use("Agg")
    code = _use_block()
    dataset = re.search(r"^mdata, group = .*$", code, re.M).group(0)
    alternative = re.search(r"# or: (\w+\(\)), (\"[^\"]+\")", dataset)
    snare = f"mdata, group = scdcca.datasets.{alternative.group(1)}, {alternative.group(2)}"
    assert "snare_cortex" in snare
    code = code.replace(dataset, snare)
    # the training length is not what this test is about: two epochs per phase
    assert code.count("model.train()") == 1
    code = code.replace("model.train()", "model.train(max_epochs=2, enable_progress_bar=False)")
    monkeypatch.chdir(tmp_path)
    namespace: dict = {}
    exec(compile(code, str(README), "exec"), namespace)

    mdata = namespace["mdata"]
    assert mdata.n_obs > 8192
    for key in ("X_umap", "X_dcca"):
        assert mdata.obsm[key].shape[0] == mdata.n_obs
    assert "wnn" in mdata.uns
    assert "dcca_leiden" in mdata.obs
    assert len(namespace["de"].columns)
    assert len(namespace["da"]) == mdata["atac"].n_vars
    source = files("scdcca.datasets") / "data" / "snare_cortex.h5mu"
    written = (tmp_path / "dcca_results.h5mu").stat().st_size
    assert written <= 5 * Path(str(source)).stat().st_size
