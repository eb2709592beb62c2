"""Hyper-parameter search for DCCA's defaults: KMeans ARI of each latent over training seeds.

Usage::

    python benchmarks/tune.py --datasets scicar_kidney pairedtag_h3k4me3 \
        --configs default beta1_20 --seeds 0 1 2
    python benchmarks/tune.py --summary            # table of everything run so far

Each configuration (``CONFIGS`` below) names the arguments it changes: ``model`` goes to
``scdcca.DCCA(...)``, ``train`` to ``model.train(...)`` (``plan_kwargs`` included), all else
stays at the library's defaults *at the time of the run*, which are recorded with each result.
Every run (dataset, configuration, training seed ``scvi.settings.seed``) appends one JSON line
to ``benchmarks/tune_results.jsonl`` (committed): ARI/NMI of the RNA, epigenome and joint
latents (KMeans, k = number of labels, mean over KMeans seeds 0, 1, 2, as
``scdcca.tl.clustering_scores``), the epochs trained and the wall time. Runs already in the
file (same dataset, seed and effective arguments) are skipped, so the search can be stopped
and resumed.

``--summary`` prints, per dataset and configuration, the mean and the spread (min-max) of
each ARI over the seeds run.
"""

from __future__ import annotations

import argparse
import inspect
import json
import time
import warnings
from pathlib import Path

import mudata
import numpy as np
import pandas as pd
import scvi
import torch

import scdcca

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
OUT = Path(__file__).parent / "tune_results.jsonl"
DATASETS = {
    "scicar_kidney": ("atac", "cell_type"),
    "pairedtag_h3k4me3": ("histone", "cell_type"),
    "scicar_a549": ("atac", "treatment_time"),
}


def _plan(**kwargs) -> dict:
    return {"plan_kwargs": kwargs}


#: name -> {"model": DCCA kwargs, "train": DCCA.train kwargs}; only what differs from defaults.
CONFIGS: dict[str, dict[str, dict]] = {
    "default": {},
    "cycle": {"train": {"schedule": "cycle"}},
    # transfer weights
    "beta1_20": {"train": {"beta1": 20.0}},
    "beta1_50": {"train": {"beta1": 50.0}},
    "beta2_0": {"train": {"beta2": 0.0}},
    "beta2_0.2": {"train": {"beta2": 0.2}},
    "beta2_5": {"train": {"beta2": 5.0}},
    # regularisation / early stopping (RNA latent overfits)
    "dropout_0.2": {"model": {"dropout_rate": 0.2}},
    "dropout_0.3": {"model": {"dropout_rate": 0.3}},
    "lr_3e-4": {"train": {"lr": 3e-4}},
    "patience_3": {"train": {"patience": 3}},
    "patience_10": {"train": {"patience": 10}},
    "tol_1e-2": {"train": _plan(min_relative_improvement=1e-2)},
    "warmup_30": {"train": _plan(n_epochs_kl_warmup=30)},
    "warmup_0": {"train": _plan(n_epochs_kl_warmup=0)},
    "batch_64": {"train": {"batch_size": 64}},
    "batch_256": {"train": {"batch_size": 256}},
    # capacity
    "latent_20": {"model": {"n_latent": 20}},
    "latent_5": {"model": {"n_latent": 5}},
    "hidden_256": {"model": {"n_hidden": 256}},
    "layers_2": {"model": {"n_layers": 2}},
}


def _defaults(function) -> dict:
    return {
        name: p.default
        for name, p in inspect.signature(function).parameters.items()
        if p.default is not inspect.Parameter.empty and name not in ("self", "mdata")
    }


def effective_arguments(config: dict) -> dict:
    """The full model and training arguments of a configuration, defaults filled in."""
    model = {**_defaults(scdcca.DCCA.__init__), **config.get("model", {})}
    train = _defaults(scdcca.DCCA.train)
    for key in ("accelerator", "devices", "datasplitter_kwargs", "validation_size", "plan_kwargs"):
        train.pop(key, None)
    train.update({k: v for k, v in config.get("train", {}).items() if k != "plan_kwargs"})
    plan = {**_defaults(scdcca.model.DCCATrainingPlan.__init__)}
    for key in ("module", "phases", "max_epochs_per_phase", "lr", "patience"):
        plan.pop(key, None)
    plan.update(config.get("train", {}).get("plan_kwargs", {}))
    return {"model": model, "train": train, "plan": plan}


def parse_config(text: str) -> tuple[str, dict]:
    """A name from ``CONFIGS``, or ``name=JSON`` with keys ``model`` and ``train``."""
    if "=" in text:
        name, body = text.split("=", 1)
        return name, json.loads(body)
    if text not in CONFIGS:
        raise SystemExit(f"Unknown configuration {text!r}; known: {', '.join(CONFIGS)}")
    return text, CONFIGS[text]


def train_and_score(name: str, config: dict, seed: int) -> dict:
    """Train one model and score its three latents."""
    epi, label = DATASETS[name]
    scvi.settings.seed = seed
    mdata = mudata.read_h5mu(DATA / f"{name}.h5mu")
    scdcca.DCCA.setup_mudata(mdata, modalities={"rna_layer": "rna", "epi_layer": epi})
    model = scdcca.DCCA(mdata, **config.get("model", {}))
    start = time.perf_counter()
    model.train(enable_progress_bar=False, **config.get("train", {}))
    elapsed = time.perf_counter() - start
    result = {"seconds": round(elapsed, 1), "epochs": len(model.history_["epochs"])}
    for modality in ("rna", "epi", "joint"):
        z = model.get_latent_representation(modality=modality)
        score = scdcca.tl.clustering_scores(z, mdata.obs[label])
        result[f"ari_{modality}"] = round(float(score.ari), 4)
        result[f"nmi_{modality}"] = round(float(score.nmi), 4)
    return result


def load() -> list[dict]:
    if not OUT.exists():
        return []
    return [json.loads(line) for line in OUT.read_text().splitlines() if line.strip()]


def summary(records: list[dict]) -> str:
    """Markdown table: mean and min-max over seeds of each latent's ARI, per configuration."""
    if not records:
        return "(no runs yet)"
    frame = pd.DataFrame(records)
    rows = [
        "| dataset | config | seeds | rna ARI | epi ARI | joint ARI | joint min-max | epochs |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for (dataset, config), group in frame.groupby(["dataset", "config"], sort=False):
        cells = [dataset, config, ",".join(str(s) for s in sorted(group["seed"]))]
        for modality in ("rna", "epi", "joint"):
            values = group[f"ari_{modality}"]
            cells.append(f"{values.mean():.3f} ± {values.std(ddof=0):.3f}")
        joint = group["ari_joint"]
        cells.append(f"{joint.min():.3f}-{joint.max():.3f}")
        cells.append(f"{group['epochs'].mean():.0f}")
        rows.append("| " + " | ".join(cells) + " |")
    return "\n".join(rows)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--datasets", nargs="+", default=["scicar_kidney"])
    parser.add_argument("--configs", nargs="+", default=["default"])
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    parser.add_argument("--summary", action="store_true", help="print the table and exit")
    parser.add_argument("--force", action="store_true", help="re-run runs already recorded")
    parser.add_argument(
        "--threads",
        type=int,
        default=2,
        help="torch threads; a run is reproducible at a fixed thread count (1: deterministic)",
    )
    args = parser.parse_args()
    warnings.filterwarnings("ignore")
    torch.set_num_threads(args.threads)
    if args.summary:
        print(summary(load()))
        return
    OUT.parent.mkdir(exist_ok=True)
    for dataset in args.datasets:
        for text in args.configs:
            name, config = parse_config(text)
            arguments = effective_arguments(config)
            for seed in args.seeds:
                done = [
                    r
                    for r in load()
                    if r["dataset"] == dataset
                    and r["seed"] == seed
                    and r["arguments"] == json.loads(json.dumps(arguments))
                    and r.get("threads", 2) == args.threads
                ]
                if done and not args.force:
                    print(f"skip {dataset} {name} seed {seed} (recorded)", flush=True)
                    continue
                result = train_and_score(dataset, config, seed)
                record = {"dataset": dataset, "config": name, "seed": seed, **result}
                record["arguments"] = arguments
                record["threads"] = args.threads
                with OUT.open("a") as handle:
                    handle.write(json.dumps(record) + "\n")
                print(
                    f"{dataset} {name} seed {seed}: ARI rna {result['ari_rna']:.3f} "
                    f"epi {result['ari_epi']:.3f} joint {result['ari_joint']:.3f} "
                    f"({result['epochs']} epochs, {result['seconds']:.0f} s)",
                    flush=True,
                )
    print(summary([r for r in load() if r["dataset"] in args.datasets]))


if __name__ == "__main__":
    np.set_printoptions(precision=3)
    main()
