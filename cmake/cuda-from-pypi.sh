#!/usr/bin/env bash
# Installs a CUDA 13.0 compiler and the CUTLASS headers from PyPI wheels into a
# cache outside the source tree, and prints the nvcc path on the last line.
#
#   bash cmake/cuda-from-pypi.sh            # -> <cache>/cuda-13.0/nvidia/cu13/bin/nvcc
#
# Cache: $LOWBIT_CACHE or ~/.cache/lowbit. Versions are pinned: an unpinned
# nvidia-nvvm brings a cicc whose PTX the 13.0 ptxas rejects.
set -euo pipefail
cache="${LOWBIT_CACHE:-$HOME/.cache/lowbit}"
cuda="$cache/cuda-13.0"
cu13="$cuda/nvidia/cu13"
py="${PYTHON:-python3}"
if [ ! -x "$cu13/bin/nvcc" ]; then
  mkdir -p "$cache"
  "$py" -m pip install --quiet --disable-pip-version-check --no-deps --target "$cuda.tmp" \
    nvidia-cuda-nvcc==13.0.88 nvidia-cuda-runtime==13.0.96 nvidia-cuda-cccl==13.0.85 \
    nvidia-cuda-crt==13.0.88 nvidia-nvvm==13.0.88 >&2
  rm -rf "$cuda" && mv "$cuda.tmp" "$cuda"
fi
# The wheels ship lib/ with libcudart.so.13 only; nvcc.profile and CMake look in
# lib64/ and for libcudart.so.
[ -e "$cu13/lib64" ] || ln -s lib "$cu13/lib64"
[ -e "$cu13/lib/libcudart.so" ] || ln -s libcudart.so.13 "$cu13/lib/libcudart.so"
echo "$cu13/bin/nvcc"
