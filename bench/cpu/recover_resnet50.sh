#!/usr/bin/env bash
# ResNet-50 recovered and compressed (issue 41), on the CPU: the shipped network retrained while it
# is pruned, then quantized and exported. Each stage is one resumable `prunelab sweep` (or export)
# into $OUT; the same command resumes where it stopped. Run it in the background:
#   nohup bench/cpu/recover_resnet50.sh >> runs/r50-recover/recover.log 2>&1 &
# STAGES picks stages (default: all, in order); CHECKPOINT, MODEL (for a plain state dict), SHARED,
# OUT, BUDGET (each gradual run's time budget), MOST_EPOCHS and SWEEP_ARGS override the defaults
# (tests/test_recover_script.py runs every stage on a small network and small files).
#
# Stages:
#   gradual95  global+gradual to 95%: distilled from the dense network, a rewound cosine of peak
#              0.02, the most epochs (at most $MOST_EPOCHS) whose measured cost fits $BUDGET
#              (--fit-epochs: sized when the run folder is new, kept on every resume)
#   gradual97  the same recipe to 97%, in the same run folder (the same epochs)
#   quant      both points quantized to 4 and 3 bits (k-means), batch norm re-estimated (+bn); the
#              97% point's 4-bit codebooks also fine-tuned for 2 epochs (+ft: about an hour)
#   export     the 97% kmeans4+ft network written by `prunelab export --format quantized`, read
#              back, and scored by `prunelab evaluate` on the exact and the 10,000 JPEG test images
set -euo pipefail
cd "$(dirname "$0")/../.."
D=${SHARED:-../shared}/data/cifar10
CHECKPOINT=${CHECKPOINT:-zoo/resnet50-cifar10}
OUT=${OUT:-runs/r50-recover}
EXACT=$D/cifar10_subset.npz
JPEG=$D/cifar10_full_jpeg_q75.npz
export PRUNELAB_CACHE="${PRUNELAB_CACHE:-runs/cache}"
mkdir -p "$OUT"

sweep() {  # on the exact test images, retrained on all 50,000 training images
  echo "== $(date -u +%FT%TZ) prunelab sweep $CHECKPOINT $*"
  prunelab sweep "$CHECKPOINT" ${MODEL:+--model "$MODEL"} --data "$EXACT" --train-data "$JPEG" \
      --retrain rewind --lr 0.02 --distill 0.5 --epochs "${MOST_EPOCHS:-60}" \
      --time-budget "${BUDGET:-8h}" --fit-epochs ${SWEEP_ARGS:-} "$@" --out "$OUT/gradual"
}

gradual95() { sweep --methods global+gradual --levels 0.95; }
gradual97() { sweep --methods global+gradual --levels 0.97; }
quant() {
  sweep --levels 0.95,0.97 --methods global+gradual,global+gradual@kmeans4+bn,global+gradual@kmeans3+bn
  sweep --levels 0.97 --quant-lr 0.002 --quant-epochs 2 --methods global+gradual,global+gradual@kmeans4+ft
}
export_() {
  local file=$OUT/resnet50-g97-kmeans4-ft.quantized
  echo "== $(date -u +%FT%TZ) prunelab export $OUT/gradual to $file, scored on both test sets"
  prunelab export "$OUT/gradual" --method global+gradual@kmeans4+ft --level 0.97 --format quantized --out "$file"
  prunelab evaluate "$file" --data "$EXACT"
  prunelab evaluate "$file" --data "$JPEG"
}

for stage in ${STAGES:-gradual95 gradual97 quant export}; do
  case "$stage" in
    gradual95|gradual97|quant) "$stage" ;;
    export) export_ ;;
    *) echo "error: unknown stage '$stage'; the stages are gradual95 gradual97 quant export" >&2; exit 2 ;;
  esac
done
echo "== $(date -u +%FT%TZ) done: prunelab report $OUT/gradual writes the report"
