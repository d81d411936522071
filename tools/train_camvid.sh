#!/usr/bin/env bash
# Train a CamVid model from scratch inside a time budget (exported/camvid/: docs/results.md).
#
#   tools/train_camvid.sh [DATA] [RUN] [PRESET]
#       DATA    CamVid folder (train/, val/, classes.txt)      default ../shared/data/camvid
#       RUN     run folder                                      default runs/camvid
#       PRESET  cpu: slim DeepLabv3+ (0.59 M parameters), batch 8, for a 2-core CPU
#               gpu: wider DeepLabv3+ (2.2 M parameters), batch 16, Keras on JAX: the shipped
#                    exported/camvid/ (two budgeted runs, tools/device_train.sh)
#   env: BUDGET_S  wall-clock budget for the whole run, seconds   default 9000 (2.5 h)
#        KSEG      how to call kseg                               default kseg
#        EXTRA     more `kseg train` options, appended (a later option wins)
#
# The epoch count is fitted to the budget: a probe of PROBE_EPOCHS epochs measures the seconds an
# epoch takes (validation and checkpoints included), then the same run goes on (kseg resumes it)
# for as many epochs as the rest of the budget holds. The probe runs with a provisional 100-epoch
# schedule (`--stop-after`); on resuming, the schedule is rebuilt over the final count N, so the
# learning rate steps from its value at epoch 3 of 100 to that at epoch 3 of N, then decays to 0
# on time.
# Run it again after an interruption: kseg resumes from the last finished epoch and the epoch count
# chosen first (kept in RUN/budget.json). Export and scoring: docs/results.md.
set -euo pipefail
DATA=${1:-../shared/data/camvid}
RUN=${2:-runs/camvid}
PRESET=${3:-cpu}
BUDGET_S=${BUDGET_S:-9000}
PROBE_EPOCHS=3  # > --warmup-epochs
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
# shellcheck disable=SC2206
args+=(${EXTRA:-})

# shellcheck source=tools/budget_train.sh
source "$(dirname "$0")/budget_train.sh"
budget_train "$RUN" "$BUDGET_S" "$start" "$PROBE_EPOCHS" "preset $PRESET" "${args[@]}"
echo "trained $RUN in $(( $(date +%s) - start )) s (preset $PRESET)"
