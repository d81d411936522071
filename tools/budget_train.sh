# Sourced by tools/train_camvid.sh and tools/train_isbi.sh: the budgeted run they share.
#   budget_train RUN BUDGET_S START PROBE_EPOCHS NOTE KSEG_TRAIN_ARGS...
# Probe PROBE_EPOCHS epochs on a provisional 100-epoch schedule (so the learning rate barely
# decays), fit the epoch count to the budget (tools/budget_epochs.py -> RUN/budget.json), then let
# kseg resume the run with that count. A rerun after an interruption resumes where it stopped.
budget_train() {
  local run=$1 budget=$2 start=$3 probe=$4 note=$5
  shift 5
  if [ ! -f "$run/budget.json" ]; then
    $KSEG train "$@" --epochs 100 --stop-after "$probe"
    python3 "$(dirname "${BASH_SOURCE[0]}")/budget_epochs.py" "$run" "$budget" "$start" "$probe" "$note"
  fi
  local epochs
  epochs=$(python3 -c "import json,sys; print(json.load(open(sys.argv[1]))['epochs'])" "$run/budget.json")
  $KSEG train "$@" --epochs "$epochs"
}
