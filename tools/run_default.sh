#!/usr/bin/env bash
# The README's first command: installs what is missing, builds, and trains the default pMF on the
# built-in data (Fashion-MNIST from Debian's dataset-fashion-mnist): configs/fmnist_default.yml.
# Extra arguments go to pmf_train (e.g. --steps 300, --out DIR, training.seed=7).
set -euo pipefail
cd "$(dirname "$0")/.."
tools/install_deps.sh
cmake -S . -B build -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build build -j"$(nproc)" >/dev/null
./build/pmf_train --config configs/fmnist_default.yml "$@"
echo "run_default: sample grid runs/fmnist_default/samples.png (one row per class, 1 network evaluation each),"
echo "             loss plot runs/fmnist_default/loss.png, metrics runs/fmnist_default/metrics.jsonl"
