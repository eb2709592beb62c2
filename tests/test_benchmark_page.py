"""The results page calls a target reached only where the seeds' spread does not cover the gap."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
from page import _mean, _reached


def _rows(values: dict[str, list[float]]) -> pd.DataFrame:
    return pd.DataFrame(
        [
            {"task": "heldout", "method": "scdcca", "latent": latent, "seed": seed, "score": v}
            for latent, seeds in values.items()
            for seed, v in enumerate(seeds)
        ]
    )


def test_a_gap_inside_the_seed_spread_is_level_not_reached_or_missed():
    table = _rows({"joint": [0.821, 0.817, 0.811], "rna": [0.822, 0.824, 0.813]})
    mine = _mean(table, "heldout", "scdcca", "joint", "score")
    bar = _mean(table, "heldout", "scdcca", "rna", "score")[0]
    assert _reached(mine, bar) == "level (within seed spread)"
    assert _reached(mine, bar - 0.01) == "yes"
    assert _reached(mine, bar + 0.01) == "no"


def test_equal_scores_reach_the_target_and_one_seed_compares_plainly():
    table = _rows({"joint": [0.3720, 0.35, 0.33], "one": [0.30]})
    mine = _mean(table, "heldout", "scdcca", "joint", "score")
    assert _reached(mine, mine[0] + 0.0002) == "yes"  # a zero-weight half's KMeans arithmetic
    single = _mean(table, "heldout", "scdcca", "one", "score")
    assert np.isnan(single[2])
    assert _reached(single, 0.299) == "yes"
    assert _reached(single, 0.301) == "no"
