#!/usr/bin/env bash
# The README's first command: installs what is missing, builds, trains the default pMF on the
# built-in data (Fashion-MNIST from Debian's dataset-fashion-mnist: configs/fmnist_default.yml),
# then scores it as the README does (tools/eval_default.sh).
# Extra arguments go to pmf_train (e.g. --steps 300, --out DIR, training.seed=7).
set -euo pipefail
cd "$(dirname "$0")/.."
tools/install_deps.sh
cmake -S . -B build -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build build -j"$(nproc)" >/dev/null
./build/pmf_train --config configs/fmnist_default.yml "$@"
# where the run went: --out DIR or out=DIR among the arguments, else the config's
OUT=runs/fmnist_default
prev=""
for a in "$@"; do
    [ "$prev" = "--out" ] && OUT=$a
    case $a in out=*) OUT=${a#out=} ;; esac
    prev=$a
done
echo "run_default: sample grid $OUT/samples.png (one row per class, 1 network evaluation each),"
echo "             loss plot $OUT/loss.png, metrics $OUT/metrics.jsonl"
# The figures the README gives (FD, KID, precision/recall, class accuracy, held-out FD, the floor):
# about 2 minutes on 2 cores. PMF_SKIP_EVAL=1 skips them.
[ "${PMF_SKIP_EVAL:-0}" = 1 ] || tools/eval_default.sh "$OUT"
