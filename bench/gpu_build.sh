#!/usr/bin/env bash
# Builds the GPU kit that bench/gpu_device.sh runs on a lent GPU machine: llama.cpp's shared
# libraries (CUDA) for llama-cpp-python, and llama-bench and llama-server from the same sources,
# configured once, so the node and the reference tools share one set of CUDA libraries.
#
# Usage: bench/gpu_build.sh [ARCH]   (ARCH: CUDA compute capability without the dot, default 90)
# Needs: nvcc (CUDA_HOME, default /usr/local/cuda), cmake, ninja, and cuBLAS headers and libraries:
# CUBLAS_ROOT holds include/ and lib/ (the nvidia-cublas wheel's nvidia/cu13 folder).
# Output: the build in .gpu-build/build-smARCH, packed by bench/gpu_kit.sh into .gpu-build/kit.tar.xz
# (git-ignored), which the run tool carries to the device for bench/gpu_device.sh.
set -euo pipefail
cd "$(dirname "$0")/.."
arch=${1:-90}
llama_version=0.3.36
work=.gpu-build
src=$work/src/llama_cpp_python-$llama_version
build=$work/build-sm$arch

# The sources are llama-cpp-python's own sdist, so the vendored llama.cpp is the one its bindings expect.
if [ ! -d "$src" ]; then
  mkdir -p $work/src
  python3 -m pip download --quiet --no-deps --no-binary :all: "llama-cpp-python==$llama_version" -d $work/src
  tar -xzf $work/src/llama_cpp_python-$llama_version.tar.gz -C $work/src
fi

source scripts/cuda_env.sh
home=$(cuda_home)
[ -n "$home" ] || { echo "no CUDA toolkit (nvcc) found; set CUDA_HOME" >&2; exit 1; }
# cuBLAS comes from NVIDIA's wheel (the toolkit here has none), kept under .gpu-build.
if ! cublas=$(cublas_root_in $work/cublas-wheel); then
  python3 -m pip install --quiet --no-deps --target $work/cublas-wheel "$(cublas_wheel "$(cuda_major "$home")")"
  cublas=$(cublas_root_in $work/cublas-wheel)
fi

start=$(date +%s)
# shellcheck disable=SC2046  # the arguments are words by design
cmake -S "$src/vendor/llama.cpp" -B "$build" -G Ninja \
  -DCMAKE_BUILD_TYPE=Release -DBUILD_SHARED_LIBS=ON \
  -DCMAKE_BUILD_WITH_INSTALL_RPATH=ON -DCMAKE_INSTALL_RPATH='$ORIGIN' \
  $(cuda_cmake_args "$arch" "$cublas" $work) \
  -DLLAMA_CURL=OFF -DLLAMA_OPENSSL=OFF -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=OFF \
  -DLLAMA_BUILD_TOOLS=ON -DLLAMA_BUILD_SERVER=ON -DLLAMA_BUILD_UI=OFF -DLLAMA_USE_PREBUILT_UI=OFF
ninja -C "$build" -j "${JOBS:-2}" llama llama-bench llama-server
echo "build took $(( $(date +%s) - start )) s" >&2
bench/gpu_kit.sh "$arch"
