#!/usr/bin/env bash
# One GPU call: this commit's engine beside an earlier commit's engine on the same 1080p clip and machine, then
# pytest -m gpu with the time left. Results under $OUT (new/, base/, pytest.log).
# Prepare here, once (both folders are git-ignored and carried: run's carry [".whl", ".bench"]):
#   .whl/      av (unpacked, .tar.xz), onnx2torch, platformdirs, cryptography, cffi, c2pa wheels for Python 3.12
#              (scripts/bench_gpu.sh says how)
#   .bench/    shared media and YuNet under .bench/shared; for the classic section
#              python scripts/bench_gpu.py --sections prepare_classic; the baseline:
#              mkdir -p .bench/baseline/scripts && git archive REV steadyswap | tar -x -C .bench/baseline
#              && git show REV:scripts/bench_gpu.py > .bench/baseline/scripts/bench_gpu.py
#   then:  bash scripts/bench_gpu_vs_baseline.sh
# Environment: NEW_SECTIONS (default env,prepare,e2e,classic), NEW_RUNS and BASE_RUNS (e2e run labels, default
# default_auto,ultrafast_auto), BASE_DIR (the baseline's folder, default .bench/baseline), NEW_SECONDS / BASE_SECONDS
# (time limits), TESTS (pytest files; empty: none).
set -uo pipefail
cd "$(dirname "$0")/.."
out="${OUT:-$PWD/out}"; mkdir -p "$out"
began=$(date +%s)
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl || exit 1
for packed in .whl/*.tar.xz; do
    [ -e "$packed" ] && tar -xJf "$packed" -C /tmp/site
done
export PYTHONPATH="/tmp/site:$PWD" PYTHONUNBUFFERED=1
[ -e ../shared ] || ln -s "$PWD/.bench/shared" ../shared
nvidia-smi --query-gpu=name,memory.total --format=csv > "$out/gpu.txt" 2>&1
quiet() { grep -v -e "UserWarning" -e "pos_axes_slices" -e "warnings.warn"; }
timeout "${NEW_SECONDS:-260}" python3 scripts/bench_gpu.py --out "$out/new" --sections "${NEW_SECTIONS:-env,prepare,e2e,classic}" \
    --frames 600 --e2e-runs "${NEW_RUNS:-default_auto,ultrafast_auto}" --no-claim "$@" 2>&1 | quiet \
    | tee "$out/new.log" | tail -25
(cd "${BASE_DIR:-.bench/baseline}" && PYTHONPATH="/tmp/site:$PWD" timeout "${BASE_SECONDS:-150}" python3 scripts/bench_gpu.py \
    --out "$out/base" --sections env,e2e --frames 600 --e2e-runs "${BASE_RUNS:-default_auto,ultrafast_auto}" \
    --no-claim 2>&1 | quiet | tee "$out/base.log" | tail -8)
left=$(( 575 - ($(date +%s) - began) ))
tests="${TESTS-tests/test_gpu_ops.py tests/test_gpu_engine.py tests/test_onnx_detectors.py tests/test_parity.py}"
if [ -n "$tests" ] && [ "$left" -gt 30 ]; then
    echo "pytest budget: $left s"
    timeout $left python3 -m pytest -q -m gpu -p no:cacheprovider -rs $tests > "$out/pytest.log" 2>&1
    tail -n 15 "$out/pytest.log"
fi
