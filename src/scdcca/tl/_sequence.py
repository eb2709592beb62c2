"""Peak sequences from a FASTA file (streamed, one chromosome at a time), as base codes."""

from __future__ import annotations

import gzip
import warnings
from collections.abc import Iterator, Mapping
from pathlib import Path

import numpy as np
import pandas as pd

from ._genome import chrom_key

#: Base codes: A, C, G, T are 0-3; anything else (N, IUPAC ambiguity codes, gaps) is 4.
_CODE = np.full(256, 4, dtype=np.uint8)
for _i, _b in enumerate("ACGT"):
    _CODE[ord(_b)] = _i
    _CODE[ord(_b.lower())] = _i


def encode(sequence: str | bytes) -> np.ndarray:
    """Base codes (A=0, C=1, G=2, T=3, other=4) of a DNA sequence, case-insensitive."""
    raw = sequence.encode("ascii") if isinstance(sequence, str) else bytes(sequence)
    return _CODE[np.frombuffer(raw, dtype=np.uint8)]


def _fasta_records(path: Path) -> Iterator[tuple[str, bytes]]:
    opener = gzip.open if path.suffix == ".gz" else open
    name, lines = None, []
    with opener(path, "rb") as handle:
        for line in handle:
            if line.startswith(b">"):
                if name is not None:
                    yield name, b"".join(lines)
                name, lines = line[1:].split()[0].decode(), []
            elif name is not None:
                lines.append(line.rstrip(b"\r\n"))
        if name is not None:
            yield name, b"".join(lines)


def _records(fasta: str | Path | Mapping[str, str]) -> Iterator[tuple[str, bytes | str]]:
    if isinstance(fasta, Mapping):
        yield from fasta.items()
        return
    path = Path(fasta)
    if not path.exists():
        raise FileNotFoundError(
            f"FASTA file {str(path)!r} does not exist. Pass the genome the peaks were called "
            "on (e.g. mm10.fa for sci-CAR kidney), plain or gzipped."
        )
    yield from _fasta_records(path)


def peak_sequences(
    peaks: pd.DataFrame, fasta: str | Path | Mapping[str, str]
) -> tuple[np.ndarray, np.ndarray]:
    """Base codes of every peak, concatenated, with an ``N`` between peaks.

    Parameters
    ----------
    peaks
        Output of :func:`scdcca.tl._genome.parse_peaks` (0-based half-open ``start``/``end``,
        as in BED files and in 10x/ArchR/Signac peak names).
    fasta
        A FASTA file (plain or ``.gz``) or a mapping chromosome -> sequence. Chromosomes are
        matched with :func:`chrom_key`, so ``chr1`` in the FASTA matches peak ``1-100-200``.

    Returns
    -------
    ``codes`` (uint8) and ``offsets`` (int64, ``len(peaks) + 1``): peak ``i`` is
    ``codes[offsets[i]:offsets[i + 1] - 1]``; the last position of each slot is an ``N``.
    """
    lengths = (peaks["end"] - peaks["start"]).to_numpy(dtype=np.int64)
    offsets = np.concatenate([[0], np.cumsum(lengths + 1)])
    codes = np.full(int(offsets[-1]), 4, dtype=np.uint8)
    wanted = peaks.groupby("chrom_key", sort=False).indices
    seen = set()
    for name, sequence in _records(fasta):
        key = chrom_key([name])[0]
        rows = wanted.get(key)
        if rows is None or key in seen:
            continue
        seen.add(key)
        chrom = encode(sequence)
        for i in rows:
            start, end = int(peaks["start"].iat[i]), int(peaks["end"].iat[i])
            piece = chrom[start:end]
            codes[offsets[i] : offsets[i] + len(piece)] = piece
    missing = sorted(set(wanted) - seen)
    if len(missing) == len(wanted):
        raise ValueError(
            "None of the peaks' chromosomes are in the FASTA (peaks use e.g. "
            f"{sorted(wanted)[:3]}). Pass the genome the peaks were called on."
        )
    if missing:
        n = int(sum(len(wanted[key]) for key in missing))
        warnings.warn(
            f"{n} peaks lie on chromosomes missing from the FASTA ({missing[:5]}); they are "
            "scored as unknown sequence (no motif matches, GC content of the other peaks).",
            stacklevel=3,
        )
    return codes, offsets


def gc_content(codes: np.ndarray, offsets: np.ndarray) -> np.ndarray:
    """Fraction of G or C among the A/C/G/T bases of each peak (NaN where there are none)."""
    gc = np.add.reduceat(((codes == 1) | (codes == 2)).astype(np.int64), offsets[:-1])
    acgt = np.add.reduceat((codes < 4).astype(np.int64), offsets[:-1])
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(acgt > 0, gc / np.maximum(acgt, 1), np.nan)


def base_frequencies(codes: np.ndarray) -> np.ndarray:
    """Frequencies of A, C, G, T among the known bases (uniform if there are none)."""
    counts = np.bincount(codes, minlength=5)[:4].astype(np.float64)
    if counts.sum() == 0:
        return np.full(4, 0.25)
    return counts / counts.sum()
