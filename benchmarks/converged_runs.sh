#!/usr/bin/env bash
# Joint-embedding runs of the deep peers trained until their own early stopping stops them
# (no wall-clock cap: --max-time 0), one thread, one process at a time, appended to
# benchmarks/results/converged/<dataset>.csv (kept apart from the committed CSVs, whose peers
# ran under a 5-minute cap, until the rows are merged). Smaller data sets first: MULTIVI, then
# scVI + PeakVI, then the RNA-only references scVI and PCA.
#
# Started from the repository root as
#   UNTIL="10:35 UTC" nohup bash benchmarks/converged_runs.sh > /tmp/converged_runs/chain.log 2>&1 &
# With UNTIL set, a run starts only if its worst case (below) ends before that time, and its
# worker is given --worker-timeout up to 4 minutes before it (a fit slower than the worst case,
# e.g. on a busy machine, is then killed and recorded as a failed row, never as a result);
# without UNTIL every run starts, with no time limit. SEEDS (default "0") lists the training
# seeds, each seed running the whole chain in turn. Each run's log: $LOGS/<name>_s<seed>.log
# (default /tmp/converged_runs). A run whose row for that seed and task is already in the CSV
# is skipped; with RUNS set (names separated by spaces) only those runs start. Cross-modal
# runs keep each finished fold in $FOLD_CACHE (default /work/fold_cache; run.py --fold-cache),
# so one cut short resumes at its first missing fold; their worst case is that of one fold.
# Multigrate runs need MULTIGRATE_PYTHON, the interpreter of its own environment (see
# benchmarks/_peers.py), and are skipped without it. The Lightning fits (MULTIVI, scVI,
# PeakVI, Multigrate) keep their training state in $CHECKPOINTS (default /work/checkpoints;
# run.py --checkpoints) after every epoch, so a fit cut short resumes at its last epoch: runs
# whose worst case is written "r<minutes>" (longer than one chain may run) start whenever at
# least $RESUME_MIN minutes (default 20) are left before UNTIL, and go on in the next chain.
#
# Worst cases (minutes): Multigrate 200 epochs (its limit) at the seconds per epoch of short
# fits with one thread, times 1.2, plus 4 minutes. Every other model trains to its epoch limit
# (MULTIVI and PeakVI 500, scVI 400 on these sizes) at the seconds per epoch that the
# committed 5-minute-cap rows reached with one thread (MULTIVI: Paired-Tag 90, kidney 50, A549
# 36, SNARE 16 epochs in 5 minutes; scVI + PeakVI: Paired-Tag 110 + 199, kidney 47 + 111, A549
# 118 + 27, SNARE 110 + 19 epochs, each model taken as capped where it could have been), times
# 1.2, plus 4 minutes for loading, the worker processes and scib-metrics. scGLUE has no timed
# converged fit: its two fits (pretraining, fine-tuning) may each run to 48 / (learning rate x
# minibatches per epoch) epochs (1,270 on Paired-Tag, patience 106), hours at about 6 s per
# epoch, so its figure is a budget, not a worst case, and --worker-timeout (with UNTIL) ends a
# fit that needs more.
set -u
cd "$(dirname "$0")/.."
export OMP_NUM_THREADS=1 MKL_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1
D=${DATA:-/work/shared/data}
LOGS=${LOGS:-/tmp/converged_runs}
FOLDS=${FOLD_CACHE:-/work/fold_cache}
CHECKPOINTS=${CHECKPOINTS:-/work/checkpoints}
mkdir -p "$LOGS"
DEADLINE=""
if [ -n "${UNTIL:-}" ]; then DEADLINE=$(date -u -d "$UNTIL" +%s); fi

PTAG="--data $D/pairedtag_h3k4me3.h5mu --rna rna --epi histone --label cell_type"
KIDNEY="--data $D/scicar_kidney.h5mu --rna rna --epi atac --label cell_type"
A549="--data $D/scicar_a549.h5mu --rna rna --epi atac --label treatment_time"
SNARE="--data $D/snare_cortex.h5mu --rna rna --epi atac --label subclass --batch sample --binarize"
MG="--methods multigrate --peer-python multigrate=${MULTIGRATE_PYTHON:-unset}"

done_already() {  # done_already <dataset> <method> <seed> <task>: an "ok" row is in the CSV
    python -c "import sys, pandas as pd; d = pd.read_csv(sys.argv[1]); \
sys.exit(0 if ((d.method == sys.argv[2]) & (d.seed == int(sys.argv[3])) & (d.task == sys.argv[4]) \
& (d.status == 'ok')).any() else 1)" \
        "benchmarks/results/converged/$1.csv" "$2" "$3" "$4" 2> /dev/null
}

run() {  # run <name> <worst-case minutes> <run.py arguments...>
    local name=${1}_s$SEED minutes=$2
    shift 2
    if [ -n "${RUNS:-}" ] && [[ " $RUNS " != *" ${name%_s*} "* ]]; then
        return
    fi
    local data method task previous=""
    for argument in "$@"; do
        case $previous in
            --data) data=$(basename "$argument" .h5mu) ;;
            --methods) method=$argument ;;
            --tasks) task=$argument ;;
        esac
        previous=$argument
    done
    if done_already "$data" "$method" "$SEED" "$task"; then
        echo "[$(date -u +%H:%M:%S)] skip $name: its row is in the CSV"
        return
    fi
    local now needed=${minutes#r}
    if [[ $minutes == r* ]]; then needed=${RESUME_MIN:-20}; fi
    now=$(date -u +%s)
    if [ -n "$DEADLINE" ] && [ $((now + 60 * needed)) -gt "$DEADLINE" ]; then
        echo "[$(date -u +%H:%M:%S)] skip $name: needs $needed min, ends after $UNTIL"
        return
    fi
    local limit=()
    if [ -n "$DEADLINE" ]; then limit=(--worker-timeout $((DEADLINE - now - 240))); fi
    echo "[$(date -u +%H:%M:%S)] start $name (worst case $minutes min):" \
        "python benchmarks/run.py $* ${limit[*]}"
    python benchmarks/run.py "$@" "${limit[@]}" > "$LOGS/$name.log" 2>&1
    echo "[$(date -u +%H:%M:%S)] end $name: exit $?"
}

# shellcheck disable=SC2086  # the option strings are split on purpose
for SEED in ${SEEDS:-0}; do
    C="--threads 1 --max-time 0 --out benchmarks/results/converged --checkpoints $CHECKPOINTS"
    O="--tasks embedding --latents joint --seeds $SEED $C"
    X="--tasks cross_modal --seeds $SEED $C --fold-cache $FOLDS"
    run scglue_pairedtag 110 $PTAG --methods scglue $O
    run multivi_pairedtag 38 $PTAG --methods multivi $O
    run multivi_kidney 64 $KIDNEY --methods multivi $O
    run multivi_a549 88 $A549 --methods multivi $O
    run scvi_peakvi_pairedtag 41 $PTAG --methods scvi_peakvi $O
    run scvi_peakvi_kidney 82 $KIDNEY --methods scvi_peakvi $O
    run scvi_peakvi_a549 119 $A549 --methods scvi_peakvi $O
    run scglue_kidney 150 $KIDNEY --methods scglue $O
    run scvi_rna_pairedtag 26 $PTAG --methods scvi_rna $O
    run scvi_rna_kidney 55 $KIDNEY --methods scvi_rna $O
    run scvi_rna_a549 8 $A549 --methods scvi_rna $O
    run scvi_rna_snare 25 $SNARE --methods scvi_rna $O
    run pca_rna_pairedtag 4 $PTAG --methods pca_rna $O
    run pca_rna_kidney 4 $KIDNEY --methods pca_rna $O
    run pca_rna_a549 4 $A549 --methods pca_rna $O
    run pca_rna_snare 4 $SNARE --methods pca_rna $O
    run multivi_crossmodal_pairedtag 35 $PTAG --methods multivi $X
    run scvi_peakvi_snare r184 $SNARE --methods scvi_peakvi $O
    run multivi_snare r192 $SNARE --methods multivi $O
    run scglue_a549 150 $A549 --methods scglue $O
    if [ -n "${MULTIGRATE_PYTHON:-}" ]; then
        run multigrate_pairedtag 11 $PTAG $MG $O
        run multigrate_a549 12 $A549 $MG $O
        run multigrate_snare 28 $SNARE $MG $O
        run multigrate_kidney 16 $KIDNEY $MG $O
    fi
done
echo "[$(date -u +%H:%M:%S)] chain done"
