#!/usr/bin/env bash
# Installs Avocado into .venv in the repository root.  Usage: scripts/install.sh [--dev]
#
# llama.cpp (through llama-cpp-python) is built for this machine:
# - with CUDA when a CUDA toolkit (nvcc) and an NVIDIA GPU are present, for that GPU's compute
#   capability only (a build for every architecture takes far longer); cuBLAS comes from NVIDIA's
#   wheel on PyPI. A machine without a GPU can build for one: AVOCADO_GPU=cuda AVOCADO_CUDA_ARCH=75.
#   The wheel is kept in AVOCADO_WHEEL_CACHE (default ~/.cache/avocado/wheels): a later install of
#   the same build takes seconds (on Colab, point it at Google Drive to keep it between sessions).
# - otherwise (or with AVOCADO_GPU=cpu) the portable CPU build.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/cuda_env.sh

python=${PYTHON:-python3}
if ! "$python" -c 'import sys; sys.exit(sys.version_info < (3, 11))'; then
  echo "Python 3.11 or newer is required (found $("$python" --version 2>&1))" >&2
  exit 1
fi
[ -x .venv/bin/python ] || "$python" -m venv .venv
.venv/bin/python -m pip install --quiet --upgrade pip
pip_install() { .venv/bin/python -m pip install --quiet --disable-pip-version-check "$@"; }

llama_version=$(sed -n 's/.*"llama-cpp-python==\([^"]*\)".*/\1/p' pyproject.toml)
gpu=${AVOCADO_GPU:-auto}
arch=${AVOCADO_CUDA_ARCH:-}
cuda=$(cuda_home)
if [ "$gpu" = auto ] && [ -n "$cuda" ] && [ -z "$arch" ]; then
  arch=$(cuda_gpu_arch)
fi
case "$gpu" in
  cuda) use_cuda=1 ;;
  auto) use_cuda=$([ -n "$cuda" ] && [ -n "$arch" ] && echo 1 || echo 0) ;;
  cpu) use_cuda=0 ;;
  *) echo "AVOCADO_GPU must be auto, cuda or cpu (got $gpu)" >&2; exit 1 ;;
esac

if [ "$use_cuda" = 1 ]; then
  [ -n "$cuda" ] || { echo "AVOCADO_GPU=cuda: no CUDA toolkit found (nvcc; set CUDA_HOME)" >&2; exit 1; }
  [ -n "$arch" ] || { echo "AVOCADO_GPU=cuda: no GPU to ask; set AVOCADO_CUDA_ARCH (75 for a T4)" >&2; exit 1; }
  major=$(cuda_major "$cuda")
  # cuBLAS from NVIDIA's wheel: the node loads it from the venv at run time (avocado.node.engine.native).
  pip_install "$(cublas_wheel "$major")"
  site=$(.venv/bin/python -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')
  cublas=$(cublas_root_in "$site")
  python_tag=$(.venv/bin/python -c 'import sys; print(f"cp{sys.version_info[0]}{sys.version_info[1]}")')
  cache=${AVOCADO_WHEEL_CACHE:-$HOME/.cache/avocado/wheels}/llama-cpp-python-$llama_version-$python_tag-cuda$major-sm$arch
  wheel=$(ls "$cache"/llama_cpp_python-*.whl 2>/dev/null | head -n1 || true)
  if [ -z "$wheel" ]; then
    echo "building llama.cpp with CUDA $major for sm_$arch (the first time: tens of minutes on few cores)" >&2
    started=$(date +%s)
    # No pip cache: pip keys a built wheel by the source alone, and would hand back a CPU build.
    CMAKE_ARGS="$(cuda_cmake_args "$arch" "$cublas" .venv/cuda)" \
      .venv/bin/python -m pip wheel --quiet --no-deps --no-cache-dir --no-binary llama-cpp-python \
      -w "$cache" "llama-cpp-python==$llama_version"
    echo "built in $(( $(date +%s) - started )) s, kept in $cache" >&2
    wheel=$(ls "$cache"/llama_cpp_python-*.whl | head -n1)
  fi
  pip_install --no-deps --force-reinstall "$wheel"
else
  # A native build (-march=native) crashes on CPUs that advertise AMX (ggml_backend_amx_mul_mat); a
  # portable AVX2 build works everywhere we run.
  export CMAKE_ARGS="${CMAKE_ARGS:-$CPU_CMAKE_ARGS}"
fi

target="."
[ "${1:-}" = "--dev" ] && target=".[dev]"
echo "installing $target into .venv (the first install compiles llama.cpp: a few minutes)" >&2
pip_install -e "$target"

# The web UI the platform serves at /: built from web/ when Node.js (20.19 or newer) and npm are here
# (npm ci on the committed lockfile, then a static build into web/build). Without them the platform
# serves its API only.
node_ok() {
  command -v npm >/dev/null 2>&1 && node -e '
    const [major, minor] = process.versions.node.split(".").map(Number);
    process.exit(major > 20 || (major === 20 && minor >= 19) ? 0 : 1)' 2>/dev/null
}
if node_ok; then
  if [ ! -f web/node_modules/.package-lock.json ] || [ web/package-lock.json -nt web/node_modules/.package-lock.json ]; then
    echo "installing the web UI's packages (npm ci)" >&2
    (cd web && npm ci --no-audit --no-fund --loglevel=error)
  fi
  if [ ! -f web/build/index.html ] || [ -n "$(find web/src web/static web/package-lock.json web/svelte.config.js web/vite.config.ts -newer web/build/index.html -print -quit)" ]; then
    echo "building the web UI into web/build" >&2
    (cd web && npm run --silent build >/dev/null)
  fi
else
  echo "Node.js 20.19+ and npm not found: the web UI is not built (the platform serves its API only)" >&2
fi
