#!/usr/bin/env bash
# Joint-embedding rows of scdcca and its controls on the current code, three training seeds,
# one thread, into benchmarks/results/scdcca/<dataset>.csv. One process at a time; each run's
# log in $LOGS. MAX_TIME caps each training phase in minutes (default 5, the setting of the
# committed rows; 0: no cap, every fit runs until its early stopping ends it); DATASETS picks
# data sets (names separated by spaces; default all four). Started from the repository root as
#   METHODS=scdcca nohup bash benchmarks/scdcca_runs.sh > /tmp/scdcca_runs/chain.log 2>&1 &
#   MAX_TIME=0 DATASETS=snare_cortex METHODS=scdcca,scdcca_no_transfer \
#       nohup bash benchmarks/scdcca_runs.sh > /tmp/scdcca_runs/chain.log 2>&1 &
set -u
cd "$(dirname "$0")/.."
export OMP_NUM_THREADS=1 MKL_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1
D=${DATA:-../shared/data}
LOGS=${LOGS:-/tmp/scdcca_runs}
METHODS=${METHODS:-scdcca,scdcca_no_transfer,pca_rna,scdcca_cycle}
SEEDS=${SEEDS:-0 1 2}
DATASETS=${DATASETS:-scicar_kidney pairedtag_h3k4me3 scicar_a549 snare_cortex}
mkdir -p "$LOGS"
O="--tasks embedding --latents joint --max-time ${MAX_TIME:-5} --threads 1"
O="$O --out benchmarks/results/scdcca"
# shellcheck disable=SC2086  # the option strings are split on purpose
for DS in \
    "scicar_kidney --rna rna --epi atac --label cell_type" \
    "pairedtag_h3k4me3 --rna rna --epi histone --label cell_type" \
    "scicar_a549 --rna rna --epi atac --label treatment_time" \
    "snare_cortex --rna rna --epi atac --label subclass --batch sample --binarize"; do
    set -- $DS
    name=$1
    shift
    if [[ " $DATASETS " != *" $name "* ]]; then
        continue
    fi
    echo "[$(date -u +%H:%M:%S)] start $name $METHODS seeds $SEEDS"
    python benchmarks/run.py --data "$D/$name.h5mu" "$@" --methods "$METHODS" --seeds $SEEDS $O \
        > "$LOGS/$name.log" 2>&1
    echo "[$(date -u +%H:%M:%S)] end $name: exit $?"
done
