#!/usr/bin/env bash
# One GPU call: this commit's engine (neural e2e + classic at 1080p), an earlier commit's engine (e2e) on the
# same clip and machine, then pytest -m gpu. Results under $OUT (new/, base/, pytest.log).
# Prepare here, once (both folders are git-ignored and carried: run's carry [".whl", ".bench"]):
#   .whl/      av, onnx2torch, platformdirs wheels for Python 3.12 (scripts/bench_gpu.sh says how)
#   .bench/    python scripts/bench_gpu.py --sections prepare_classic; shared media and YuNet under .bench/shared;
#              the baseline: mkdir -p .bench/baseline/scripts && git archive REV steadyswap | tar -x -C .bench/baseline
#              && git show REV:scripts/bench_gpu.py > .bench/baseline/scripts/bench_gpu.py
#   then:  bash scripts/bench_gpu_vs_baseline.sh
set -uo pipefail
cd "$(dirname "$0")/.."
out="${OUT:-$PWD/out}"; mkdir -p "$out"
began=$(date +%s)
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl || exit 1
export PYTHONPATH="/tmp/site:$PWD" PYTHONUNBUFFERED=1
[ -e ../shared ] || ln -s "$PWD/.bench/shared" ../shared
nvidia-smi --query-gpu=name,memory.total --format=csv > "$out/gpu.txt" 2>&1
quiet() { grep -v -e "UserWarning" -e "pos_axes_slices" -e "warnings.warn"; }
timeout 260 python3 scripts/bench_gpu.py --out "$out/new" --sections env,prepare,e2e,classic --frames 600 \
    --e2e-runs default_auto,ultrafast_auto --no-claim 2>&1 | quiet | tee "$out/new.log" | tail -25
(cd .bench/baseline && PYTHONPATH="/tmp/site:$PWD" timeout 150 python3 scripts/bench_gpu.py --out "$out/base" \
    --sections env,e2e --frames 600 --e2e-runs default_auto,ultrafast_auto --no-claim 2>&1 | quiet \
    | tee "$out/base.log" | tail -8)
left=$(( 575 - ($(date +%s) - began) ))
echo "pytest budget: $left s"
timeout $left python3 -m pytest -q -m gpu -p no:cacheprovider -rs tests/test_gpu_ops.py tests/test_gpu_engine.py \
    tests/test_onnx_detectors.py tests/test_parity.py > "$out/pytest.log" 2>&1
tail -n 15 "$out/pytest.log"
