#!/usr/bin/env bash
# One check of mrcnn on a machine with one NVIDIA GPU, from the repository
# root of a fresh clone, in about 8 minutes; prints one JSON line last.
#
#   benchmarks/gpu_check.sh            # the GPU check
#   benchmarks/gpu_check.sh --dry-run  # the same steps on this CPU, quickly
#
# Steps:
#   1. install as a GPU user would (README, "GPU"): a virtualenv under
#      build/gpu-check-venv, `pip install ".[gpu]"` (TensorFlow with its
#      CUDA libraries), imgaug without its dependencies, pytest;
#   2. TensorFlow's view of the GPU (version, CUDA, cuDNN, the GPUs, where
#      an op placed on the GPU ran);
#   3. the graph, training, inference and export test files (TF32 off, as
#      tests/conftest.py sets);
#   4. detect() at 1024 px, ResNet50-FPN, float32 and mixed_float16: the
#      first call and the warm median of 10;
#   5. a training step at 1024 px, 2 images: the same;
#   6. the data feed (benchmarks/data_pipeline.py, images/s) against the
#      images/s of the fastest training step: does the feed keep up.
#
# --dry-run installs nothing (it uses $PYTHON, default python3, which
# must have mrcnn's requirements), only collects the test files, and
# times a tiny model (ResNet18, 64 px, 2 repeats; training in float32
# only) and a small feed run:
# a check of the script itself, run by tests/test_gpu_check.py.
#
# The last line is the JSON summary; each step's own line is in the
# folder it names ("steps"). Exit status 1 if a step failed.
set -uo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

mode=gpu
case "${1:-}" in
  "") ;;
  --dry-run) mode=dry ;;
  *) echo "usage: benchmarks/gpu_check.sh [--dry-run]" >&2; exit 2 ;;
esac

TESTS=(tests/test_conv_device.py tests/test_conv.py tests/test_winograd.py
       tests/test_rpn.py tests/test_detection.py tests/test_roi_align.py
       tests/test_xla_flags.py tests/test_gpu_memory.py
       tests/test_anchor_upload.py tests/test_mixed_precision.py
       tests/test_model.py tests/test_export.py)
# tests/test_distribute.py is left out: it runs on logical CPU devices in
# subprocesses (minutes), the same on any machine.
start=$SECONDS
steps=$(mktemp -d "${TMPDIR:-/tmp}/gpu_check.XXXXXX")
failed=0
say() { echo "== gpu_check [$((SECONDS - start)) s] $*" >&2; }

if [ "$mode" = gpu ]; then
  venv=build/gpu-check-venv
  PY=$venv/bin/python
  say "install: $venv, pip install \".[gpu]\""
  if ! { python3 -m venv "$venv" \
         && "$PY" -m pip install -q --upgrade pip \
         && "$PY" -m pip install -q ".[gpu]" "pytest>=8" \
         && "$PY" -m pip install -q --no-deps -r requirements-imgaug.txt; }
  then
    echo "{\"install\": \"failed\"}" > "$steps/install.json"; failed=1
  fi
  measure=(--size 1024 --images 2 --repeats 10 --backbone resnet50)
  pytest_mode=()
  feed=()
else
  PY=${PYTHON:-python3}
  say "dry run: no install, $PY"
  # Training traced once (float32): the float16 step is
  # tests/test_mixed_precision.py's on the CPU.
  measure=(--size 64 --images 2 --repeats 2 --backbone resnet18 --tiny
           --train-precisions float32)
  pytest_mode=(--collect-only)
  feed=(--images 1 --rounds 1 --repeats 1)
fi

say "tests: ${#TESTS[@]} files ${pytest_mode[*]}"
test_start=$SECONDS
"$PY" -m pytest -q -p no:cacheprovider "${pytest_mode[@]}" "${TESTS[@]}" \
  > "$steps/pytest.log" 2>&1
test_rc=$?
tail -n 3 "$steps/pytest.log" >&2
summary_line=$(grep -E "passed|failed|error|tests? collected" \
               "$steps/pytest.log" | tail -n 1 | tr -d '"\\')
echo "{\"rc\": $test_rc, \"seconds\": $((SECONDS - test_start)),\
 \"collect_only\": $([ "$mode" = dry ] && echo true || echo false),\
 \"summary\": \"$summary_line\"}" > "$steps/tests.json"
[ "$test_rc" = 0 ] || failed=1

say "device, detect() and a training step"
if ! "$PY" benchmarks/gpu_check.py device detect train "${measure[@]}" \
       --out "$steps" > "$steps/measure.log" 2>&1; then
  tail -n 20 "$steps/measure.log" >&2; failed=1
fi
if grep -q '"error"' "$steps"/detect.json "$steps"/train.json 2>/dev/null
then
  failed=1
fi

say "data feed: benchmarks/data_pipeline.py ${feed[*]}"
if ! "$PY" benchmarks/data_pipeline.py "${feed[@]}" > "$steps/feed.json" \
       2> "$steps/feed.log"; then
  tail -n 20 "$steps/feed.log" >&2; failed=1
fi

total=$((SECONDS - start))
echo "{\"mode\": \"$mode\", \"total_s\": $total,\
 \"within_8_min\": $([ $total -le 480 ] && echo true || echo false),\
 \"failed\": $([ $failed = 1 ] && echo true || echo false),\
 \"steps\": \"$steps\"}" > "$steps/run.json"
"$PY" benchmarks/gpu_check.py summary "$steps"/*.json
exit $failed
