#!/usr/bin/env bash
# Build the native core with AddressSanitizer + UndefinedBehaviorSanitizer and run the tests
# that drive it (transforms on every kernel set, buffer pool, the runtime paths that use them).
# Any out-of-bounds access or undefined behaviour fails the run.
#   usage: native/sanitize.sh [PYTHON]   (PYTHON: an interpreter with numpy, onnx, onnxruntime,
#                                          pytest, hypothesis and pybind11; default python3)
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
python=${1:-python3}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

cmake -S "$repo" -B "$work/build" -DCMAKE_BUILD_TYPE=Debug -DSKBUILD_PROJECT_NAME=hailo_ort \
  -Dpybind11_DIR="$("$python" -m pybind11 --cmakedir)" -DPython_EXECUTABLE="$(command -v "$python")" \
  -DCMAKE_CXX_FLAGS="-fsanitize=address,undefined -fno-sanitize-recover=undefined -fno-omit-frame-pointer" \
  -DCMAKE_MODULE_LINKER_FLAGS="-fsanitize=address,undefined" >"$work/configure.log"
cmake --build "$work/build" -j "$(nproc)" >"$work/build.log"

# A copy of the package with the sanitized extension in it.
cp -r "$repo/hailo_ort" "$work/hailo_ort"
find "$work/hailo_ort" -name '_native*.so' -delete
cp "$work"/build/_native*.so "$work/hailo_ort/"

cd "$repo"
export ASAN_OPTIONS=detect_leaks=0:abort_on_error=1
export UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
LD_PRELOAD="$(${CXX:-g++} -print-file-name=libasan.so):$(${CXX:-g++} -print-file-name=libubsan.so)" \
  "$python" - "$work" <<'PY'
import sys

# Import the sanitized copy, not an editable install's redirect to the normal build.
sys.meta_path[:] = [f for f in sys.meta_path if "ScikitBuild" not in type(f).__name__]
sys.path.insert(0, sys.argv[1])
import hailo_ort._native as native  # noqa: E402

assert native.__file__.startswith(sys.argv[1]), native.__file__
import pytest  # noqa: E402

sys.exit(pytest.main(["-q", "-p", "no:cacheprovider", "tests/test_native_transforms.py",
                      "tests/test_prepared_transforms.py",
                      "tests/test_buffer_pool.py", "tests/test_native_buffers.py",
                      "tests/test_runtime_plan.py", "tests/test_pipelining.py"]))
PY
