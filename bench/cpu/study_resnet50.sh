#!/usr/bin/env bash
# The study on the shipped ResNet-50 (issue 37), on the CPU: each stage is one `prunelab sweep` into
# its own run folder under $OUT, every point stored as it finishes, so the same command resumes
# where it stopped (a stage already complete costs seconds). Run it in the background:
#   nohup bench/cpu/study_resnet50.sh >> runs/r50/study.log 2>&1 &
# STAGES picks stages (default: all, in order); CHECKPOINT, MODEL (for a plain state dict), SHARED,
# LEVELS and OUT override the defaults, and SWEEP_ARGS is added to every sweep (tests/test_study_script.py runs every stage on a small
# network and small files).
#
# Stages, cheapest answers first (a 1,017-image evaluation of ResNet-50 is about half a minute here,
# a 10,000-image one several minutes):
#   classic     layerwise L1, classifier pruned, 0..100% by 5% (the classic study's own setting)
#   magnitude   layerwise, global, lamp and random (3 seeds), classifier dense, 0..100% by 5%
#   oneshot     global+bn and obs-global+bn from 50% to 95%; obs-res-global+bn at 80% and 90%
#   quant       the one-shot points at 80-90% quantized to 4 and 3 bits (k-means, +bn), into the
#               oneshot folder: the smallest file within a point without retraining
#   structured  channels-rec-global and blocks, MACs and onnxruntime latency at batch 1 and 64
#   jpeg        on the 10,000 JPEG test images, around the answers: layerwise with the classifier
#               pruned (jpeg-classic), global and lamp; random (3 seeds) at 10-50%
set -euo pipefail
cd "$(dirname "$0")/../.."
D=${SHARED:-../shared}/data/cifar10
CHECKPOINT=${CHECKPOINT:-zoo/resnet50-cifar10}
OUT=${OUT:-runs/r50}
EXACT=$D/cifar10_subset.npz
JPEG=$D/cifar10_full_jpeg_q75.npz
export PRUNELAB_CACHE="${PRUNELAB_CACHE:-runs/cache}"
mkdir -p "$OUT"

score_on() {  # score_on FILE ARGS: the checkpoint scored on FILE's test split
  local data=$1; shift
  echo "== $(date -u +%FT%TZ) prunelab sweep $CHECKPOINT --data $data $*"
  timed prunelab sweep "$CHECKPOINT" ${MODEL:+--model "$MODEL"} --data "$data" ${SWEEP_ARGS:-} "$@"
}
timed() {  # the command, and (where GNU time is installed) its wall and CPU time and peak memory, on stderr
  if [ -x /usr/bin/time ]; then /usr/bin/time -f "== %e s wall, %U+%S s CPU, peak memory %M KB" "$@"; else "$@"; fi
}
# On the exact test images, calibration and batch norm from all 50,000 training images; or on the
# 10,000 JPEG test images (4x tighter intervals), their file's own training split for both.
sweep()   { score_on "$EXACT" --train-data "$JPEG" "$@"; }
on_jpeg() { score_on "$JPEG" "$@"; }

classic()    { sweep --methods layerwise --prune-classifier --levels "${LEVELS:-0:1:0.05}" --out "$OUT/classic"; }
magnitude()  { sweep --methods layerwise,global,lamp,random --seeds 0,1,2 --levels "${LEVELS:-0:1:0.05}" --out "$OUT/magnitude"; }
oneshot() {
  sweep --methods global+bn,obs-global+bn --levels "${LEVELS:-0.5,0.6,0.7,0.8,0.85,0.9,0.95}" --out "$OUT/oneshot"
  sweep --methods obs-res-global+bn --levels "${LEVELS:-0.8,0.9}" --out "$OUT/oneshot-res"
}
quant() {  # the one-shot points quantized (k-means, 4 and 3 bits), batch norm re-estimated: files, no retraining
  # (30x smaller than dense float32 is at most 3.1 MB: at 4 bits, a mask and codes need about 85% zeros)
  sweep --methods global+bn,obs-global+bn,global+bn@kmeans4+bn,global+bn@kmeans3+bn,obs-global+bn@kmeans4+bn,\
obs-global+bn@kmeans3+bn --levels "${LEVELS:-0.8,0.85,0.9}" --out "$OUT/oneshot"
}
structured() {
  sweep --methods channels-rec-global,blocks --levels "${LEVELS:-0.2,0.4,0.6}" --latency --runtime onnxruntime \
        --out "$OUT/structured"
}
jpeg() {  # the levels around the answers; random (3 seeds) where it is still above chance
  on_jpeg --methods layerwise --prune-classifier --levels "${LEVELS:-0.2:0.7:0.05}" --out "$OUT/jpeg-classic"
  on_jpeg --methods global,lamp --levels "${LEVELS:-0.2:0.7:0.05}" --out "$OUT/jpeg"
  on_jpeg --methods random --seeds 0,1,2 --levels "${LEVELS:-0.1:0.5:0.1}" --out "$OUT/jpeg"
}

for stage in ${STAGES:-classic magnitude oneshot quant structured jpeg}; do
  case "$stage" in
    classic|magnitude|oneshot|quant|structured|jpeg) "$stage" ;;
    *) echo "error: unknown stage '$stage'; the stages are classic magnitude oneshot quant structured jpeg" >&2; exit 2 ;;
  esac
done
echo "== $(date -u +%FT%TZ) done: prunelab report $OUT/<stage> writes each stage's report"
