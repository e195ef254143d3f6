#!/usr/bin/env bash
# The README's first command: installs what is missing, builds, and runs the default job on the
# built-in data (Fashion-MNIST from Debian's dataset-fashion-mnist).
set -euo pipefail
cd "$(dirname "$0")/.."
tools/install_deps.sh
cmake -S . -B build -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build build -j"$(nproc)" >/dev/null
./build/pmf_demo "$@"
