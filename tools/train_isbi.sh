#!/usr/bin/env bash
# Train the ISBI 2012 membrane U-Net shipped in exported/isbi2012/ from scratch, inside a time budget.
#
#   tools/train_isbi.sh [DATA] [RUN]
#       DATA    folder with images/ and labels/ (0 = membrane, 255 = cell)   default ../shared/data/isbi2012/train
#       RUN     run folder                                                   default runs/isbi2012
#   env: BUDGET_S  wall-clock budget, seconds                     default 3600
#        BACKEND   tensorflow | jax                               default tensorflow
#        KSEG      how to call kseg                               default kseg
#        EXTRA     more `kseg train` options, appended (a later option wins)
#
# The last 5 of the 25 pairs in name order (20..24) are held out and never trained on
# (--val-fraction 0.2 --val-split last): the images are consecutive serial sections, and a
# randomly drawn validation pair would have its near-identical neighbours in training.
# (exported/isbi2012 predates this: it was validated on 5 randomly drawn pairs, which flatters.)
# The epoch count is fitted to the budget (`kseg train --time-budget`: probe, then resume).
# Augmentation: affine and elastic warps, brightness/contrast/gamma, blur — no flips or turns, the
# labels are offset in the image's frame (tools/isbi2012_augment.yaml) — then a random 256x256 window (--crop: a quarter of the
# pixels per example, so about 4x the examples per second; each pair is drawn 4 times per epoch,
# --repeat 4); validated and exported at 512x512.
# To continue a run: EXTRA="--init-from runs/OLD --learning-rate 1e-3 --warmup-epochs 1".
set -euo pipefail
DATA=${1:-../shared/data/isbi2012/train}
RUN=${2:-runs/isbi2012}
BUDGET_S=${BUDGET_S:-3600}
KSEG=${KSEG:-kseg}
here=$(realpath --relative-to=. "$(dirname "$0")")  # one spelling in config.json, however called
start=$(date +%s)

args=(--data "$DATA" --classes membrane,cell --remap 255:1 --val-fraction 0.2 --val-split last
      --model unet -o base_filters=16 -o depth=4 --image-size 512 512 --crop 256 256 --repeat 4
      --batch-size 4
      --loss ce+dice --learning-rate 2e-3 --schedule poly --warmup-epochs 2
      --augment "$here/isbi2012_augment.yaml" --cache memory
      --backend "${BACKEND:-tensorflow}" --out "$RUN")
args+=(--epochs 200 --time-budget "${BUDGET_S}s")  # at most 200 epochs, fitted to the budget
# shellcheck disable=SC2206
args+=(${EXTRA:-})

$KSEG train "${args[@]}"
echo "trained $RUN in $(( $(date +%s) - start )) s"
