"""The results page: targets and comparisons against the seeds' spread, its figures, its length."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
from details import _mean, _reached


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


def _synthetic(path: Path) -> None:
    """A small results CSV: every task, a capped and a converged peer, old and new rows."""
    rows = []
    for seed in (0, 1, 2):
        new = {"version": "0.1.0+gabc1234", "stopped_by": "early_stopping"}
        old = {"version": "", "stopped_by": ""}
        for method, extra in (("scdcca", new), ("pca_lsi", old), ("multivi", old)):
            capped = {"max_time_min": 5.0} if method == "multivi" else {}
            rows.append(
                {"task": "embedding", "method": method, "latent": "joint", "seed": seed,
                 "bio_conservation": 0.5 + 0.01 * seed, "bio_conservation_graph": 0.6,
                 **extra, **capped}
            )  # fmt: skip
        rows.append(
            {"task": "embedding", "method": "scvi_rna", "latent": "joint", "seed": seed,
             "bio_conservation": 0.45, "bio_conservation_graph": 0.55,
             "version": "0.1.0+gabc1234", "stopped_by": "early_stopping"}
        )  # fmt: skip
        rows.append(
            {"task": "embedding", "method": "wnn", "latent": "graph", "seed": seed,
             "bio_conservation_graph": 0.58}
        )  # fmt: skip
        for method in ("scdcca", "multivi", "knn"):
            rows.append(
                {"task": "cross_modal", "method": method, "latent": "prediction", "seed": seed,
                 "rna2epi_auroc": 0.7 - 0.05 * (method != "scdcca"),
                 "rna2epi_pseudobulk_specific_r": 0.2, "epi2rna_pseudobulk_specific_r": 0.3,
                 "max_epochs": 20 if method == "multivi" else None}
            )  # fmt: skip
        for method in ("scdcca", "scvi_peakvi"):
            for latent in ("joint", "epi"):
                rows.append(
                    {"task": "heldout", "method": method, "latent": latent, "seed": seed,
                     "knn_acc_heldout": 0.8, "majority_heldout": 0.3,
                     "stopped_by": "max_epochs" if method == "scvi_peakvi" else "early_stopping"}
                )  # fmt: skip
    table = pd.DataFrame(rows).assign(dataset="toy", status="ok")
    table.to_csv(path, index=False)


def _converged(folder: Path) -> Path:
    """MULTIVI's joint embedding trained until its own early stopping, kept apart."""
    folder.mkdir()
    pd.DataFrame(
        {"dataset": "toy", "task": "embedding", "method": "multivi", "latent": "joint",
         "seed": [0], "status": "ok", "bio_conservation": [0.55], "max_time_min": [0],
         "version": "0.1.0+gabc1234", "stopped_by": "early_stopping"}
    ).to_csv(folder / "toy.csv", index=False)  # fmt: skip
    return folder


def test_figures_draw_one_file_per_task(tmp_path):
    from figures import draw_all

    _synthetic(tmp_path / "toy.csv")
    extra = _converged(tmp_path / "converged")
    written = draw_all(tmp_path, tmp_path / "figures", (extra,))
    assert sorted(p.name for p in written) == ["cross_modal.png", "embedding.png", "heldout.png"]
    assert all(p.stat().st_size > 0 for p in written)


def test_summary_names_caps_and_rows_without_a_version(tmp_path):
    from page import summary

    _synthetic(tmp_path / "toy.csv")
    text = summary(tmp_path, _converged(tmp_path / "converged"))
    assert "| MULTIVI (early_stopping) | **0.550 (1 seed)** |" in text  # apart from capped
    assert "MULTIVI (capped at 5 min per fit)" in text  # an old row run under max_time
    assert "MULTIVI (capped at 20 epochs)" in text
    assert "scVI + PeakVI (max_epochs)" in text  # a new row names what stopped it
    assert "scVI of RNA (early_stopping)" in text
    assert "rows without a version predate the column" in text
    assert "WNN" not in text.split("graph bio conservation")[0]  # no bio conservation of its own


def test_older_rows_of_an_own_method_are_shown_apart_and_not_ranked(tmp_path):
    from page import entries, summary

    rows = [
        {"dataset": dataset, "task": "embedding", "method": "scdcca_cycle", "latent": "joint",
         "seed": seed, "status": "ok", "bio_conservation": score, "version": version,
         "stopped_by": stopped}
        for dataset, score, version, stopped in (
            ("toy", 0.9, "", ""), ("toy2", 0.4, "0.1.0+gabc1234", "early_stopping"))
        for seed in (0, 1)
    ] + [
        {"dataset": dataset, "task": "embedding", "method": "scdcca", "latent": "joint",
         "seed": seed, "status": "ok", "bio_conservation": 0.5 + 0.01 * seed,
         "version": "0.1.0+gabc1234", "stopped_by": "early_stopping"}
        for dataset in ("toy", "toy2")
        for seed in (0, 1)
    ]  # fmt: skip
    pd.DataFrame(rows).to_csv(tmp_path / "toy.csv", index=False)
    found = {label: ranked for _, label, _, ranked in entries(pd.read_csv(tmp_path / "toy.csv"))}
    assert found["scdcca, cycle schedule (older code)"] is False
    assert found["scdcca, cycle schedule (early_stopping)"] is True
    text = summary(tmp_path)
    assert "| scdcca, cycle schedule (older code) | 0.900 ± 0.000 |  |" in text  # not bold
    assert "| scdcca (early_stopping) | **0.505 ± 0.007** | **0.505 ± 0.007** |" in text


def test_verdict_needs_a_gap_beyond_both_seed_spreads():
    from page import verdict

    a = pd.Series([0.50, 0.52, 0.54])  # sample sd 0.02
    assert verdict(a, pd.Series([0.50])) == "level"  # gap 0.02, not beyond 0.02
    assert verdict(a, pd.Series([0.49])) == "ahead"
    assert verdict(pd.Series([0.49]), a) == "behind"
    assert verdict(a, pd.Series([0.45, 0.50, 0.55])) == "level"  # paired gap 0.02 +- 0.06


def test_verdict_of_shared_seeds_reads_the_paired_differences():
    from page import verdict

    a = pd.Series([0.60, 0.52, 0.64], index=[0, 1, 2])
    b = pd.Series([0.50, 0.50, 0.54], index=[0, 1, 2])
    # differences 0.10, 0.02, 0.10: mean 0.073, 95 % half-width 4.30 * 0.046 / 1.73 = 0.115
    assert verdict(a, b) == "level"
    # the same means, but every seed ahead by about 0.07: the interval excludes zero
    assert verdict(b + 0.07 + pd.Series([0.0, 0.001, 0.002]), b) == "ahead"
    assert verdict(b, b + 0.07 + pd.Series([0.0, 0.001, 0.002])) == "behind"
    # seeds in common are paired; a seed one method lacks is left out of the pairs
    assert verdict(pd.Series([0.80, 0.80, 0.10], index=[0, 1, 5]), b) == "ahead"


def test_the_results_page_reads_in_five_minutes():
    root = Path(__file__).resolve().parents[1] / "benchmarks"
    page = (root / "README.md").read_text()
    assert len(page.splitlines()) <= 300
    for task in ("embedding", "cross_modal", "heldout"):
        assert f"results/figures/{task}.png" in page
    assert "(DETAILS.md)" in page
    assert (root / "DETAILS.md").exists()


def test_a_converged_or_newer_row_replaces_the_capped_or_older_one(tmp_path):
    from page import load, newest

    _synthetic(tmp_path / "toy.csv")
    table = newest(load(tmp_path, _converged(tmp_path / "converged")))
    multivi = table[(table["method"] == "multivi") & (table["task"] == "embedding")]
    assert multivi.set_index("seed")["stopped_by"].fillna("").to_dict() == {
        0: "early_stopping",  # the converged seed 0 replaced the capped one
        1: "",
        2: "",
    }
    again = _converged(tmp_path / "again")  # the same row once more, later: one row stays
    assert len(newest(load(tmp_path, tmp_path / "converged", again))) == len(table)
    # a row without a version never replaces one that has it, wherever it comes
    older = tmp_path / "older"
    older.mkdir()
    row = multivi[multivi["seed"] == 0].assign(version="", bio_conservation=0.1)
    row.to_csv(older / "toy.csv", index=False)
    kept = newest(load(tmp_path, tmp_path / "converged", older))
    mine = kept[(kept["method"] == "multivi") & (kept["task"] == "embedding")]
    assert mine.loc[mine["seed"] == 0, "bio_conservation"].tolist() == [0.55]


def test_budget_table_shows_each_method_under_the_shared_budget(tmp_path):
    from page import budget_table

    base = {
        "dataset": "snare_cortex",
        "task": "embedding",
        "latent": "joint",
        "version": "v",
        "status": "ok",
    }
    rows = [
        {**base, "method": "multivi", "seed": s, "max_time_min": 5, "fit_s": 300 + s,
         "epochs": 20 + s, "stopped_by": "max_time", "bio_conservation": b, "kmeans_ari": 0.2}
        for s, b in ((0, 0.40), (1, 0.44))
    ] + [
        {**base, "method": "scdcca", "seed": 0, "max_time_min": 5, "fit_s": 200.0,
         "epochs": 60, "stopped_by": "early_stopping", "bio_conservation": 0.5,
         "kmeans_ari": 0.3},
    ]  # fmt: skip
    pd.DataFrame(rows).to_csv(tmp_path / "snare_cortex.csv", index=False)
    lines = budget_table(tmp_path).splitlines()
    assert lines[0] == "SNARE cortex:"
    scdcca, multivi = lines[4], lines[5]  # in the page's method order
    assert scdcca == (
        "| scdcca | 5 | 200 | 60 | early_stopping | 0.500 (1 seed) | 0.300 (1 seed) | 1 |"
    )
    assert multivi.startswith("| MULTIVI | 5 | 300 | 20 / 21 | max_time | 0.420 ± 0.028 |")
    assert multivi.endswith("| 2 |")
