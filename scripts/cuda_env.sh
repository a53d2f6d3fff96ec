# shellcheck shell=bash
# Sourced by scripts/install.sh and bench/gpu_build.sh: how llama.cpp is configured for CUDA, in one
# place, so the node's libraries and the benchmark's reference tools are built the same way.
#
# cuda_cmake_args ARCH CUBLAS_ROOT WORK prints the CMake arguments for a build for one compute
# capability (ARCH, e.g. 75 or 90).  CUBLAS_ROOT holds the nvidia-cublas wheel's include/ and lib/;
# WORK is a folder for the link helpers made here (kept between builds: a changed path rebuilds all).

# The CPU flags of every build: a native build (-march=native) crashes on CPUs that advertise AMX
# (ggml_backend_amx_mul_mat); a portable AVX2 build works everywhere we run.
CPU_CMAKE_ARGS="-DGGML_NATIVE=OFF -DGGML_AVX=ON -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON -DGGML_BMI2=ON"

cuda_home() {
  if [ -n "${CUDA_HOME:-}" ]; then echo "$CUDA_HOME"; return; fi
  # nvcc on PATH may be a wrapper script (here /usr/local/bin/nvcc execs the real one), so the
  # toolkit is the first candidate that has both bin/nvcc and include/cuda.h.
  local nvcc dir
  nvcc=$(command -v nvcc || true)
  for dir in ${nvcc:+"$(dirname "$(dirname "$(realpath "$nvcc")")")"} /usr/local/cuda; do
    if [ -x "$dir/bin/nvcc" ] && [ -e "$dir/include/cuda.h" ]; then echo "$dir"; return; fi
  done
}

# The compute capability of the first NVIDIA GPU, without the dot ("75" for a T4), or nothing.
cuda_gpu_arch() {
  command -v nvidia-smi >/dev/null || return 0
  # nvidia-smi fails with no device or a driver mismatch: then there is no GPU to build for, and
  # under `set -e` a failed pipeline here would end the install without a word.
  local cap
  cap=$(nvidia-smi --query-gpu=compute_cap --format=csv,noheader 2>/dev/null | head -n1 | tr -d ' .' || true)
  if [[ "$cap" =~ ^[0-9]+$ ]]; then echo "$cap"; fi
  return 0
}

# nvcc's major version: the cuBLAS wheel must be of the same major (nvidia-cublas for 13,
# nvidia-cublas-cu12 for 12).
cuda_major() {
  "$1/bin/nvcc" --version | sed -n 's/.*release \([0-9]*\)\..*/\1/p'
}

# The cuBLAS wheel for nvcc's major version, pinned: 13.0.0.19 is CUDA 13.0's own, so any 13.x
# cuBLAS a machine has at run time is as new or newer.
cublas_wheel() {
  case "$1" in
    13) echo "nvidia-cublas==13.0.0.19" ;;
    12) echo "nvidia-cublas-cu12==12.4.5.8" ;;
    *) echo "CUDA $1 is not supported (12 or 13 are)" >&2; return 1 ;;
  esac
}

# The cuBLAS wheel's files sit in nvidia/cu13/ (CUDA 13) or nvidia/cublas/ (CUDA 12).
cublas_root_in() {
  local site=$1
  for d in "$site/nvidia/cu13" "$site/nvidia/cublas"; do
    if [ -e "$d/include/cublas_v2.h" ]; then echo "$d"; return; fi
  done
  return 1
}

# A link-time stand-in for libcuda.so when the toolkit has none (a machine without the driver, and
# no stubs/ folder): every driver function that cuda.h declares, with libcuda.so.1 as its soname.
# At run time the driver's own libcuda.so.1 is loaded in its place.
cuda_driver_stub() {
  local home=$1 out=$2
  local found
  found=$(find "$home/lib64" "$home/targets" -name libcuda.so 2>/dev/null | head -n1)
  if [ -n "$found" ]; then echo "$found"; return; fi
  mkdir -p "$out"
  if [ ! -e "$out/libcuda.so" ]; then
    gcc -E -P -I"$home/include" "$home/include/cuda.h" \
      | grep -oE '\bcu[A-Z][A-Za-z0-9_]*[[:space:]]*\(' | tr -d '( \t' | sort -u \
      | sed 's/.*/void &(void) {}/' >"$out/stub.c"
    gcc -shared -fPIC -Wl,-soname,libcuda.so.1 -o "$out/libcuda.so" "$out/stub.c"
  fi
  ln -sf libcuda.so "$out/libcuda.so.1"  # the name programs linked against libggml-cuda look for
  echo "$out/libcuda.so"
}

cuda_cmake_args() {
  local arch=$1 cublas=$2 work=$3
  local home
  home=$(cuda_home)
  mkdir -p "$work/cublas-link"
  # The wheel ships versioned libraries only; the linker looks for the unversioned names.
  for name in cublas cublasLt; do
    ln -sf "$(realpath "$cublas/lib/lib$name.so."[0-9]*)" "$work/cublas-link/lib$name.so"
  done
  local inc driver
  inc=$(realpath "$cublas/include")
  driver=$(cuda_driver_stub "$home" "$(realpath "$work")/cuda-stub")
  # Programs (llama-server, llama-bench) link libggml-cuda, whose own libraries the linker must find.
  local needed
  needed="$(realpath "$cublas/lib"):$(dirname "$driver")"
  echo "$CPU_CMAKE_ARGS -DGGML_CUDA=ON -DCMAKE_CUDA_ARCHITECTURES=$arch" \
    "-DCMAKE_CUDA_COMPILER=$home/bin/nvcc -DCUDAToolkit_ROOT=$home -DGGML_CUDA_NCCL=OFF" \
    "-DCUDA_cublas_LIBRARY=$(realpath "$work")/cublas-link/libcublas.so" \
    "-DCUDA_cublasLt_LIBRARY=$(realpath "$work")/cublas-link/libcublasLt.so" \
    "-DCUDA_cuda_driver_LIBRARY=$driver" \
    "-DCMAKE_CXX_FLAGS=-I$inc -DCMAKE_CUDA_FLAGS=-I$inc -DCMAKE_EXE_LINKER_FLAGS=-Wl,-rpath-link,$needed"
}
