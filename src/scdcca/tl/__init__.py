"""Tools that work on the MuData DCCA wrote: clustering scores and regulation."""

from ._activity import motif_activity
from ._agreement import crossomics_agreement, matched_kappa
from ._background import background_peaks
from ._clustering import clustering_scores
from ._genome import parse_peaks, peaks_near_genes, read_gtf
from ._links import peak_gene_links
from ._motifs import motif_matches
from ._network import motif_gene_names, tf_target_network

__all__ = [
    "background_peaks",
    "clustering_scores",
    "crossomics_agreement",
    "matched_kappa",
    "motif_activity",
    "motif_gene_names",
    "motif_matches",
    "parse_peaks",
    "peak_gene_links",
    "peaks_near_genes",
    "read_gtf",
    "tf_target_network",
]
