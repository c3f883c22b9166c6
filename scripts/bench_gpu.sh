#!/usr/bin/env bash
# The GPU benchmark on the GPU machine: install the carried wheels (.whl), run the GPU tests, run bench_gpu.py.
# Needs .whl/ (av, onnx2torch, platformdirs for Python 3.12) and .bench/ (media, YuNet, classic landmarks)
# carried beside the checkout. Usage: bash scripts/bench_gpu.sh [bench_gpu.py options]; results in $OUT.
set -uo pipefail
cd "$(dirname "$0")/.."
out="${OUT:-$PWD/out}"
mkdir -p "$out"
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl || exit 1
export PYTHONPATH="/tmp/site:$PWD" PYTHONUNBUFFERED=1
[ -e ../shared ] || ln -s "$PWD/.bench/shared" ../shared
nvidia-smi > "$out/nvidia-smi.txt" 2>&1
timeout 420 python3 -m pytest -q -m gpu -p no:cacheprovider tests/test_gpu_ops.py tests/test_gpu_engine.py \
    > "$out/pytest.log" 2>&1
tail -n 3 "$out/pytest.log"
python3 scripts/bench_gpu.py --out "$out" "$@" 2>&1 | grep -v -e "UserWarning" -e "pos_axes_slices" | tee "$out/bench.log"
