#!/usr/bin/env bash
# Benchmarks on the GPU machine: install the carried wheels (.whl), run the GPU tests, run the benchmark.
# Needs .whl/ (av, onnx2torch, platformdirs, cryptography, cffi, c2pa-python and the Dask stack for Python 3.12;
# wheels, or unpacked wheels as .tar.xz) and .bench/ (media, YuNet,
# classic landmarks) carried beside the checkout. Results in $OUT.
#   bash scripts/bench_gpu.sh [bench_gpu.py options]
#       the GPU engine: pytest -m gpu (at most TEST_SECONDS, default 420), then scripts/bench_gpu.py (bench.json)
#   bash scripts/bench_gpu.sh --distributed [bench_distributed.py overhead options]
#       steadyswap batch with one GPU worker against a plain run, both on the GPU engine with the stand-in
#       models: tests/test_distributed_gpu_engine.py, then bench_distributed.py overhead (bench_distributed_gpu.json)
#   bash scripts/bench_gpu.sh --live [bench_live.py options]
#       steadyswap live on the GPU engine with the stand-in hyperswap and YuNet, the clip played at 60 frames/s
#       for 10 s, most important first: at 1280x720 with the swapper compiled as a CUDA graph (live
#       --compile), one and two frames a step (live_compiled_batch1/2.json); with LIVE_BASE_DIRS (space-separated
#       folders under .bench/, whose shared/ their bench_live.py reads, each an earlier commit's steadyswap/ and
#       scripts/bench_live.py and bench_gpu.py: git archive REV steadyswap scripts/bench_live.py
#       scripts/bench_gpu.py | tar -x -C .bench/vREV), each one's compiled loop at one frame a step
#       (live_base_N.json), to tell the code from the machine; the CUDA tests of the compiled live loop
#       (pytest_live.log); then the overlapped eager loop at 640x480 and 1280x720 (live.json) and a per-phase profile of 40
#       compiled steps under CUDA_LAUNCH_BLOCKING=1 (live_profile.json). LIVE_BATCHES="1" runs one compiled batch
#       size; LIVE_QUICK=1 stops after the CUDA tests. About 6 minutes, a minute more per base (each run builds the
#       engine, about 35 s; the first compiled one compiles, about 40 s)
set -uo pipefail
cd "$(dirname "$0")/.."
out="${OUT:-$PWD/out}"
mkdir -p "$out"
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl || exit 1
for packed in .whl/*.tar.xz; do  # unpacked wheels, xz-compressed to fit the carry (PyAV: 36 MB as a wheel, 25 so)
    [ -e "$packed" ] && tar -xJf "$packed" -C /tmp/site
done
export PYTHONPATH="/tmp/site:$PWD" PYTHONUNBUFFERED=1
[ -e ../shared ] || ln -s "$PWD/.bench/shared" ../shared
nvidia-smi > "$out/nvidia-smi.txt" 2>&1
quiet() { grep -v -e "UserWarning" -e "pos_axes_slices"; }
if [ "${1:-}" = "--distributed" ]; then
    shift
    timeout 300 python3 -m pytest -q -p no:cacheprovider tests/test_distributed_gpu_engine.py \
        > "$out/pytest_distributed.log" 2>&1
    tail -n 3 "$out/pytest_distributed.log"
    python3 scripts/bench_distributed.py overhead --gpus --standin-models --json "$out/bench_distributed_gpu.json" \
        "$@" 2>&1 | quiet | tee "$out/bench_distributed.log"
    exit
fi
if [ "${1:-}" = "--live" ]; then
    shift
    python3 scripts/bench_gpu.py --out "$out/prepare" --sections env,prepare --frames 60 2>&1 | quiet | tail -n 3
    live() {  # $1: the folder holding steadyswap/ and scripts/, then bench_live.py options
        local root=$1; shift
        PYTHONPATH="/tmp/site:$root" python3 "$root/scripts/bench_live.py" --providers cuda \
            --swapper hyperswap_1a_256 --detector yunet --models-dir /tmp/steadyswap-bench/models --output none \
            --input-fps 60 --seconds 10 --hand-occluder off "$@" 2>&1 | quiet | grep -v -e "^W0000" -e "^I0000"
    }  # --hand-occluder off: no MediaPipe on the GPU machine
    for batch in ${LIVE_BATCHES:-1 2}; do  # live --compile: the swapper replayed as a CUDA graph
        live "$PWD" --size 1280x720 --gpu-compile reduce-overhead --batch-frames $batch \
            --json "$out/live_compiled_batch$batch.json" "$@" | tee "$out/live_compiled_batch$batch.log"
    done
    n=0
    for base in ${LIVE_BASE_DIRS:-}; do
        n=$((n + 1)); echo "== base $n: $base"
        live "$base" --size 1280x720 --gpu-compile reduce-overhead --batch-frames 1 --json "$out/live_base_$n.json" \
            "$@" | tee "$out/live_base_$n.log"
    done
    timeout 200 python3 -m pytest -q -m gpu -p no:cacheprovider -rs \
        tests/test_live.py::test_compiled_swapper_gives_the_eager_frames_and_a_second_stream_works \
        > "$out/pytest_live.log" 2>&1
    echo "compiled live test: exit $?"; tail -n 3 "$out/pytest_live.log"
    [ -n "${LIVE_QUICK:-}" ] && exit
    live "$PWD" --size 640x480 --size 1280x720 --json "$out/live.json" "$@" | tee "$out/live.log"
    CUDA_LAUNCH_BLOCKING=1 live "$PWD" --size 1280x720 --seconds 3 --loops serial --profile 40 \
        --gpu-compile reduce-overhead --json "$out/live_profile.json" "$@" | tee "$out/live_profile.log"
    exit
fi
timeout "${TEST_SECONDS:-420}" python3 -m pytest -q -m gpu -p no:cacheprovider -rs tests/test_gpu_ops.py \
    tests/test_gpu_engine.py tests/test_gpu_transfer.py tests/test_gpu_standins.py tests/test_onnx_detectors.py \
    tests/test_sources.py tests/test_enhancer.py tests/test_face_masks.py tests/test_gpu_precision.py \
    tests/test_parity.py tests/test_live.py > "$out/pytest.log" 2>&1
grep -E "passed|failed|error" "$out/pytest.log" | tail -n 3
python3 scripts/bench_gpu.py --out "$out" "$@" 2>&1 | quiet | tee "$out/bench.log"
