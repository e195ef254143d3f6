#!/usr/bin/env bash
# The README's second command: installs what is missing, builds, and runs every test with ctest.
set -euo pipefail
cd "$(dirname "$0")/.."
tools/install_deps.sh
cmake -S . -B build -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build build -j"$(nproc)"
cd build
# One test at a time: each runs two OpenMP threads, and two tests side by side would oversubscribe
# the two cores (spinning OpenMP barriers then cost far more than the parallelism gains).
ctest --output-on-failure
