#!/usr/bin/env bash
# Train a CamVid model from scratch inside a time budget (exported/camvid/: docs/results.md).
#
#   tools/train_camvid.sh [DATA] [RUN] [PRESET]
#       DATA    CamVid folder (train/, val/, classes.txt)      default ../shared/data/camvid
#       RUN     run folder                                      default runs/camvid
#       PRESET  cpu: slim DeepLabv3+ (0.59 M parameters), batch 8, for a 2-core CPU
#               gpu: wider DeepLabv3+ (2.2 M parameters), batch 16, Keras on JAX: the shipped
#                    exported/camvid/ (two budgeted runs: docs/results.md)
#   env: BUDGET_S  wall-clock budget for the whole run, seconds   default 9000 (2.5 h)
#        KSEG      how to call kseg                               default kseg
#        EXTRA     more `kseg train` options, appended (a later option wins)
#
# `kseg train --time-budget` fits the epoch count to the budget after a 3-epoch probe and rebuilds
# the schedule over it, so the learning rate decays to 0 on time. Run the same command again after
# an interruption: kseg resumes from the last finished epoch with the epoch count chosen first
# (RUN/budget.json). Export and scoring: docs/results.md.
set -euo pipefail
DATA=${1:-../shared/data/camvid}
RUN=${2:-runs/camvid}
PRESET=${3:-cpu}
BUDGET_S=${BUDGET_S:-9000}
KSEG=${KSEG:-kseg}
start=$(date +%s)

common=(--data "camvid:$DATA" --model deeplabv3plus --backbone mobilenetv2 --image-size 360 480
        --schedule poly --warmup-epochs 2 --class-weights median-frequency --augment strong
        --copy-paste 0.3 --copy-paste-classes Pole,SignSymbol,Car,Pedestrian,Bicyclist,Fence
        --cache memory --out "$RUN")
case "$PRESET" in
  cpu) args=(-o width=0.5 -o aspp_channels=64 -o low_level_channels=24 -o decoder_channels=64
             --batch-size 8 --learning-rate 3e-3 --precise-bn 20 "${common[@]}") ;;
  gpu) args=(-o width=1.0 -o aspp_channels=128 -o low_level_channels=48 -o decoder_channels=96
             --batch-size 16 --learning-rate 4e-3 --backend jax "${common[@]}") ;;
  *) echo "unknown preset $PRESET (cpu or gpu)" >&2; exit 2 ;;
esac
args+=(--epochs 100 --time-budget "${BUDGET_S}s")  # at most 100 epochs, fitted to the budget
# shellcheck disable=SC2206
args+=(${EXTRA:-})

$KSEG train "${args[@]}"
echo "trained $RUN in $(( $(date +%s) - start )) s (preset $PRESET)"
