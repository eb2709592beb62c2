"""Command line: ``scdcca demo`` trains DCCA on the bundled sci-CAR kidney data."""

from __future__ import annotations

import argparse
import time
import warnings
from collections.abc import Sequence
from pathlib import Path


def run_demo(
    out: Path,
    png: Path,
    max_epochs_per_phase: int,
    seed: int,
    progress_bar: bool = True,
    model_dir: Path | None = None,
    denoised: bool = False,
) -> dict[str, dict[str, float]]:
    """Train on bundled sci-CAR kidney, write the MuData and a UMAP figure, score latents.

    The MuData gets the latents (and the denoised layers only with ``denoised=True``: they
    are dense, about 285 MB here); the trained model is saved to ``model_dir`` (default:
    ``out`` without its suffix, plus ``_model``) so that the denoised values stay one
    :meth:`~scdcca.DCCA.load` away. Existing outputs are replaced.

    Returns
    -------
    ``{"rna" | "epi" | "joint": {"ari": ..., "nmi": ...}}`` for KMeans with k = number of
    cell types (mean of 3 seeds).
    """
    import scvi

    import scdcca

    scvi.settings.seed = seed
    mdata = scdcca.datasets.scicar_kidney()
    print(
        f"sci-CAR kidney: {mdata.n_obs} cells, rna {mdata['rna'].n_vars} genes, "
        f"atac {mdata['atac'].n_vars} peaks, {mdata.obs['cell_type'].nunique()} cell types"
    )
    scdcca.DCCA.setup_mudata(mdata, modalities={"rna_layer": "rna", "epi_layer": "atac"})
    model = scdcca.DCCA(mdata)
    start = time.perf_counter()
    model.train(max_epochs_per_phase=max_epochs_per_phase, enable_progress_bar=progress_bar)
    elapsed = time.perf_counter() - start
    phases = model.history["phases"]
    print(
        f"trained in {elapsed:.0f} s: "
        + ", ".join(f"{row.name} ({row.epochs} epochs)" for row in phases.itertuples())
    )
    model.write_results(mdata, overwrite=True, denoised=denoised)
    mdata.write_h5mu(out)
    model_dir = Path(model_dir) if model_dir is not None else out.with_name(out.stem + "_model")
    model.save(model_dir, overwrite=True)
    scdcca.pl.latents(mdata, color="cell_type", save=str(png))
    scores = {}
    for key, embedding in {
        "rna": mdata["rna"].obsm["X_dcca"],
        "epi": mdata["atac"].obsm["X_dcca"],
        "joint": mdata.obsm["X_dcca"],
    }.items():
        result = scdcca.tl.clustering_scores(embedding, mdata.obs["cell_type"])
        scores[key] = {"ari": result["ari"], "nmi": result["nmi"]}
    n_types = mdata.obs["cell_type"].nunique()
    print(f"KMeans (k = {n_types} cell types, 3 seeds) against published labels:")
    for key, value in scores.items():
        print(f"  {key:>5} latent: ARI {value['ari']:.3f}  NMI {value['nmi']:.3f}")
    print(
        f"joint latent = [z_rna, {model.joint_epi_weight:.2f} * z_epi]: the epigenome half is "
        "weighted by how well the epigenome latent predicts the RNA latent of cells held out "
        "from training (0: it adds nothing, and the joint scores equal the RNA latent's)"
    )
    written = "obsm 'X_dcca'" + (", layers 'dcca_denoised'" if denoised else "")
    print(f"wrote {out} ({written}), {png} and the model in {model_dir}/")
    if not denoised:
        print(
            "denoised values: mdata = mudata.read_h5mu("
            f"{str(out)!r}); model = scdcca.DCCA.load({str(model_dir)!r}, adata=mdata); "
            "model.get_normalized_expression(), model.get_normalized_accessibility()"
        )
    return scores


def build_parser() -> argparse.ArgumentParser:
    """The ``scdcca`` argument parser (building it imports nothing heavy)."""
    from scdcca import __version__

    parser = argparse.ArgumentParser(
        prog="scdcca",
        description="DCCA for paired single-cell multi-omics. 'scdcca demo' trains it on the "
        "sci-CAR kidney data shipped in the package.",
    )
    parser.add_argument("--version", action="version", version=f"scdcca {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, help="what to run")
    demo = sub.add_parser(
        "demo",
        help="train on the bundled sci-CAR kidney data",
        description="Train DCCA on the sci-CAR kidney data shipped in the package, write the "
        "MuData with its results and a figure of both latents, and score the latents "
        "against the published cell types.",
    )
    demo.add_argument(
        "--out",
        type=Path,
        default=Path("dcca_demo.h5mu"),
        help="MuData file to write, with the latents (the denoised layers too with "
        "--denoised) (default: %(default)s)",
    )
    demo.add_argument(
        "--png",
        type=Path,
        default=Path("dcca_demo.png"),
        help="figure of UMAPs of the RNA and the epigenome latent side by side; the joint "
        "latent adds the epigenome latent weighted by joint_epi_weight, which the demo prints "
        "(default: %(default)s)",
    )
    demo.add_argument(
        "--model-dir",
        type=Path,
        default=None,
        help="folder for the trained model (default: the --out name plus '_model')",
    )
    demo.add_argument(
        "--denoised",
        action="store_true",
        help="also write the dense denoised layers into --out (about 285 MB); without it "
        "they are computed from the saved model when needed",
    )
    demo.add_argument(
        "--max-epochs-per-phase",
        type=int,
        default=200,
        help="upper bound on each training phase's epochs; phases usually stop earlier on "
        "a plateau (default: %(default)s)",
    )
    demo.add_argument(
        "--seed", type=int, default=0, help="scvi-tools random seed (default: %(default)s)"
    )
    demo.add_argument(
        "--no-progress-bar", action="store_true", help="train without the progress bar"
    )
    return parser


def main(argv: Sequence[str] | None = None) -> None:
    """Entry point of the ``scdcca`` console script (torch is loaded only to run a command)."""
    args = build_parser().parse_args(argv)
    warnings.filterwarnings("ignore", category=FutureWarning)
    if args.command == "demo":
        run_demo(
            args.out,
            args.png,
            args.max_epochs_per_phase,
            args.seed,
            progress_bar=not args.no_progress_bar,
            model_dir=args.model_dir,
            denoised=args.denoised,
        )


if __name__ == "__main__":
    main()
