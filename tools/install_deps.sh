#!/usr/bin/env bash
# Installs the Debian 12 packages pmf builds, tests and runs with.
# Idempotent: packages already present are skipped by apt; nothing is downloaded from elsewhere.
set -euo pipefail
PKGS=(
  build-essential cmake pkg-config
  libopenblas-openmp-dev liblapacke-dev   # GEMM (cblas, OpenMP threads) and LAPACK (eigen-decompositions)
  check                                   # unit tests
  libjpeg62-turbo-dev libpng-dev          # images
  libhdf5-dev                             # dataset shards (serial build)
  libyaml-dev libjson-c-dev               # configs, safetensors headers
  libopenmpi-dev openmpi-bin              # multi-machine training (optional at build time)
  dataset-fashion-mnist                   # the built-in default data
  gnuplot-nox                             # loss-curve plots
  python3-yaml python3-pil                # experiments/run (configs, sample-grid montages)
)
missing=()
for p in "${PKGS[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ "${PMF_WITH_TORCH:-0}" = 1 ]; then
  # Only needed to regenerate golden files and to run the PyTorch references and benchmarks.
  for p in python3-torch python3-numpy python3-h5py python3-scipy; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
  done
fi
if [ "${PMF_WITH_FUZZ:-0}" = 1 ]; then
  # Only for the libFuzzer targets (cmake -DPMF_FUZZ=ON with CC=clang).
  for p in clang libclang-rt-14-dev libomp-dev; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
  done
fi
if [ ${#missing[@]} -gt 0 ]; then
  SUDO=""; [ "$(id -u)" = 0 ] || SUDO="sudo"
  echo "install_deps: installing ${missing[*]}"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi
