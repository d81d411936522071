#!/usr/bin/env bash
# Train the issue-#8 models on a lent GPU machine (Keras on JAX; no TensorFlow there), one call.
#
# Prepare here, in the repository root (both folders are git-ignored via .git/info/exclude):
#   mkdir -p .git/info; printf '/.whl/\n/.gpu/\n' >> .git/info/exclude
#   for s in keras==3.15.1 namex==0.1.0 optree==0.20.0 albumentations==2.0.8 albucore==0.0.24 \
#            pydantic==2.13.4 pydantic-core==2.46.4 annotated-types==0.7.0 typing-inspection==0.4.2 \
#            stringzilla==5.3.2 simsimd==6.5.16; do
#     python3 -m pip download --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
#       --platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64 \
#       --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 -d .whl "$s"; done
#   mkdir -p .gpu/isbi2012 && cp -r ../shared/data/camvid .gpu/ && cp -r ../shared/data/isbi2012/train .gpu/isbi2012/
# Then: device run, command `CAMVID_S=420 ISBI_S=400 bash tools/device_train.sh`, carry [".whl", ".gpu"],
# timeout_s about 90 s above the larger budget. Both runs share the GPU (each process gets 45 % of
# its memory). What comes back under $OUT: camvid.log, isbi.log, camvid.tar, isbi.tar (run folders
# without optimizer state, tools/pack_run.py); unpack into runs/ and `kseg export` them here.
set -uo pipefail
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
  --target /tmp/site .whl/*.whl || exit 1
export PYTHONPATH=/tmp/site:$PWD KERAS_BACKEND=jax PYTHONUNBUFFERED=1 KSEG="python3 -m kseg.cli"
export XLA_PYTHON_CLIENT_MEM_FRACTION=0.45 KSEG_LOADER_PROCESSES=6  # two runs share 16 cores
OUT=${OUT:-out}; mkdir -p "$OUT"
nvidia-smi -L; nproc
BUDGET_S=${CAMVID_S:-420} timeout $(( ${CAMVID_S:-420} + 70 )) \
  bash tools/train_camvid.sh .gpu/camvid runs/camvid-gpu gpu > "$OUT/camvid.log" 2>&1 &
BUDGET_S=${ISBI_S:-400} BACKEND=jax timeout $(( ${ISBI_S:-400} + 70 )) \
  bash tools/train_isbi.sh .gpu/isbi2012/train runs/isbi-gpu > "$OUT/isbi.log" 2>&1 &
wait
for r in camvid isbi; do
  python3 tools/pack_run.py "runs/$r-gpu" "/tmp/packed/$r" && tar cf "$OUT/$r.tar" -C "/tmp/packed/$r" .
done
ls -la "$OUT"; tail -n 3 "$OUT/camvid.log" "$OUT/isbi.log"
