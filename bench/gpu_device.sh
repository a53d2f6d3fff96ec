#!/usr/bin/env bash
# The GPU check, in one run on a lent GPU machine (docs/benchmarks.md says how to call it):
# installs the carried kit (bench/gpu_build.sh, then bench/gpu_kit.sh, made it), runs the tests
# marked gpu and bench/gpu.py, and leaves the logs and figures in $OUT. About 3-5 minutes on an
# H100; every step has a time limit so that the whole stays well inside one 10-minute call.
#
#   run(command="bash bench/gpu_device.sh", carry=[".gpu-build/kit.tar.xz"], timeout_s=540)
set -uo pipefail
cd "$(dirname "$0")/.." || exit 1
out=${OUT:-/tmp/avocado-gpu-out}
mkdir -p "$out"
exec > >(tee "$out/device.log") 2>&1
began=$(date +%s)
step() { echo; echo "== $* ($(( $(date +%s) - began )) s)"; }

step "machine"
nvidia-smi --query-gpu=name,memory.total,memory.used,driver_version,compute_cap --format=csv
python=${PYTHON:-python3}
"$python" --version
nproc

step "install the kit"
[ -f .gpu-build/kit.tar.xz ] || { echo "no .gpu-build/kit.tar.xz: carry it (bench/gpu_build.sh makes it)"; exit 2; }
kit=/tmp/avocado-kit
rm -rf "$kit" && mkdir -p "$kit/deps"
"$python" -c 'import sys, tarfile; tarfile.open(sys.argv[1]).extractall(sys.argv[2])' .gpu-build/kit.tar.xz "$kit"
"$python" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --target "$kit/deps" "$kit"/wheels/*.whl || exit 3
export PYTHONPATH="$PWD:$PWD/src:$kit/site:$kit/deps"
# The kit links libcublas.so.13 and libcudart.so.13: the toolkit's, or those of the machine's
# Python (PyTorch's nvidia-cublas wheel) when the toolkit has no cuBLAS.
libs=""
for name in libcublas.so.13 libcudart.so.13; do
  found=$(find /usr/local/cuda/lib64 /usr/local/cuda/targets /opt /usr/lib -name "$name" 2>/dev/null | head -n1)
  [ -n "$found" ] && libs="$libs:$(dirname "$found")"
done
export LD_LIBRARY_PATH="${libs#:}${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
echo "LD_LIBRARY_PATH=$LD_LIBRARY_PATH"
lib="$kit/site/llama_cpp/lib"
ldd "$lib/libggml-cuda.so" | grep -E "cublas|cudart|not found"
"$python" -c "from avocado.node.engine.gpu import gpu_devices; print(gpu_devices())" || exit 4

step "tests marked gpu"
PYTHONUNBUFFERED=1 timeout 200 "$python" -m pytest -m gpu tests/node/engine/test_gpu.py -v -s -p no:cacheprovider \
  --junitxml="$out/gpu-tests.xml"
tests=$?

step "bench/gpu.py"
PYTHONUNBUFFERED=1 timeout 280 "$python" bench/gpu.py --llama-cpp "$lib" --reps 5 --json "$out/gpu-bench.json"
bench=$?

step "done: tests exit $tests, bench exit $bench"
exit $(( tests || bench ))
